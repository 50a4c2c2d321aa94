/* Entering and leaving CPL3 (rt/user.h).
 *
 * user_call_asm() saves the callee-saved registers and its stack pointer,
 * then IRETQs to user_thunk at CPL3. The thunk calls fn(arg), leaves the
 * result in user_result and executes int3; the #BP handler (rt/user.c),
 * on the TSS RSP0 stack, calls user_resume_asm(), which switches back to
 * the saved stack and returns from user_call_asm(). */
#define USER_DS 0x2b
#define USER_CS 0x33

	.text
	.globl	user_call_asm
user_call_asm:				/* rdi = fn, rsi = arg, rdx = user rsp */
	push	%rbx
	push	%rbp
	push	%r12
	push	%r13
	push	%r14
	push	%r15
	mov	%rsp, user_kernel_rsp(%rip)
	pushq	$USER_DS		/* ss */
	push	%rdx			/* rsp */
	pushq	$0x2			/* rflags: IF clear */
	pushq	$USER_CS		/* cs */
	lea	user_thunk(%rip), %rax
	push	%rax			/* rip */
	iretq

user_thunk:				/* CPL3 */
	mov	%rdi, %rax
	mov	%rsi, %rdi
	call	*%rax
	mov	%rax, user_result(%rip)
	int3
	.globl	user_thunk_trap
user_thunk_trap:			/* the #BP frame's RIP */
	ud2

	.globl	user_resume_asm
user_resume_asm:			/* CPL0, rdi = result */
	mov	user_kernel_rsp(%rip), %rsp
	mov	%rdi, %rax
	pop	%r15
	pop	%r14
	pop	%r13
	pop	%r12
	pop	%rbp
	pop	%rbx
	ret
