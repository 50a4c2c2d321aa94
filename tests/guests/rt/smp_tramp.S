/* AP start-up trampoline (rt/smp.h), copied to SMP_TRAMPOLINE_ADDR and
 * entered there by a SIPI in real mode with CS = SMP_TRAMPOLINE_ADDR >> 4,
 * IP = 0. Absolute addresses are computed for the copy's location; the
 * BSP fills in the three fields at the end before sending the SIPI. */
#define TRAMP        0x10000
#define ABS(sym)     (TRAMP + ((sym) - smp_tramp_start))
#define SEL_CODE32   0x08
#define SEL_CODE64   0x10
#define SEL_DATA     0x18
#define CR0_PE       0x1
#define CR0_PG       0x80000000
#define CR4_PAE      0x20
#define MSR_EFER     0xc0000080
#define EFER_LME     0x100

	.section .rodata
	.balign	16
	.globl	smp_tramp_start, smp_tramp_end
	.globl	smp_tramp_cr3, smp_tramp_stack, smp_tramp_entry

	.code16
smp_tramp_start:
	cli
	mov	%cs, %ax
	mov	%ax, %ds
	lgdtl	(tramp_gdtr - smp_tramp_start)
	mov	%cr0, %eax
	or	$CR0_PE, %eax
	mov	%eax, %cr0
	ljmpl	$SEL_CODE32, $ABS(tramp32)

	.code32
tramp32:
	mov	$SEL_DATA, %ax
	mov	%ax, %ds
	mov	%ax, %es
	mov	%ax, %ss
	mov	%cr4, %eax
	or	$CR4_PAE, %eax
	mov	%eax, %cr4
	mov	ABS(smp_tramp_cr3), %eax
	mov	%eax, %cr3
	mov	$MSR_EFER, %ecx
	rdmsr
	or	$EFER_LME, %eax
	wrmsr
	mov	%cr0, %eax
	or	$CR0_PG, %eax
	mov	%eax, %cr0
	ljmpl	$SEL_CODE64, $ABS(tramp64)

	.code64
tramp64:
	mov	ABS(smp_tramp_stack), %rsp
	mov	ABS(smp_tramp_entry), %rax
	jmp	*%rax

	.balign	8
tramp_gdt:
	.quad	0
	.quad	0x00cf9b000000ffff	/* 0x08: code, 32-bit */
	.quad	0x00af9b000000ffff	/* 0x10: code, 64-bit (as the boot GDT) */
	.quad	0x00cf93000000ffff	/* 0x18: data (as the boot GDT) */
tramp_gdtr:
	.word	4 * 8 - 1
	.long	ABS(tramp_gdt)
	.balign	8
smp_tramp_cr3:
	.quad	0
smp_tramp_stack:
	.quad	0
smp_tramp_entry:
	.quad	0
smp_tramp_end:
