/* 256 interrupt entry stubs. Each pushes a dummy error code where the CPU
 * pushes none, then the vector, and jumps to the common path that saves
 * the caller-saved registers and calls irq_dispatch(frame). */
	.text
.macro stub n
	.balign 16
irq_stub_\n:
	.if (\n == 8 || (\n >= 10 && \n <= 14) || \n == 17 || \n == 21 || \n == 29 || \n == 30)
	.else
	pushq	$0
	.endif
	pushq	$\n
	jmp	irq_common
.endm

	.altmacro
	.set i, 0
	.rept 256
	stub %i
	.set i, i + 1
	.endr

irq_common:
	push	%rax
	push	%rcx
	push	%rdx
	push	%rsi
	push	%rdi
	push	%r8
	push	%r9
	push	%r10
	push	%r11
	push	%rbx
	lea	80(%rsp), %rdi		/* -> vector, error, rip, cs, ... */
	mov	%rsp, %rbx
	and	$-16, %rsp
	call	irq_dispatch
	mov	%rbx, %rsp
	pop	%rbx
	pop	%r11
	pop	%r10
	pop	%r9
	pop	%r8
	pop	%rdi
	pop	%rsi
	pop	%rdx
	pop	%rcx
	pop	%rax
	add	$16, %rsp		/* vector, error code */
	iretq

.macro addr n
	.quad irq_stub_\n
.endm
	.section .rodata
	.balign 8
	.globl irq_stubs
irq_stubs:
	.set i, 0
	.rept 256
	addr %i
	.set i, i + 1
	.endr
