/* Entry of every test guest: a stack, then main(), then power off. */
	.section .text.start, "ax"
	.globl _start
_start:
	lea	stack_top(%rip), %rsp
	xor	%ebp, %ebp
	call	main
	mov	%eax, %edi
	call	guest_exit
1:	hlt
	jmp	1b

	.bss
	.balign	16
	.space	65536
stack_top:
