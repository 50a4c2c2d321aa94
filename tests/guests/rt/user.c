#include "rt/user.h"

#include "rt/guest.h"

#define PTE_U	   (1ULL << 2)
#define PTE_PS	   (1ULL << 7)
#define ADDR_MASK  0x000ffffffffff000ULL
#define STACK_SIZE 16384

/* 64-bit TSS (SDM vol. 3A 8.7): only RSP0 is used. No I/O bitmap, so
 * every port is closed to CPL3 (IOPL is 0). */
struct tss64 {
	uint32_t reserved0;
	uint64_t rsp[3];
	uint64_t reserved1;
	uint64_t ist[7];
	uint64_t reserved2;
	uint16_t reserved3;
	uint16_t iomap_base;
} __attribute__((packed));

static struct tss64 tss __attribute__((aligned(16)));
static uint64_t gdt[10] __attribute__((aligned(16))) = {
    0,
    0,
    0x00af9b000000ffffULL, /* 0x10 kernel code, 64-bit */
    0x00cf93000000ffffULL, /* 0x18 kernel data */
    0x00cffb000000ffffULL, /* 0x20 user code, 32-bit, DPL 3 (unused) */
    0x00cff3000000ffffULL, /* 0x28 user data, DPL 3 */
    0x00affb000000ffffULL, /* 0x30 user code, 64-bit, DPL 3 */
    0,
    0, /* 0x40 TSS, two slots: filled in by user_init() */
    0,
};
static uint8_t kernel_stack[STACK_SIZE] __attribute__((aligned(16)));
static uint8_t user_stack[STACK_SIZE] __attribute__((aligned(16)));

/* Kernel stack pointer saved by user_call_asm(), result left by user code. */
uint64_t user_kernel_rsp, user_result;
uint64_t user_call_asm(user_fn fn, uint64_t arg, uint64_t user_rsp);
__attribute__((noreturn)) void user_resume_asm(uint64_t ret);
extern const char user_thunk_trap[];

static void set_user_bit(void)
{
	uint64_t cr3, *pml4, *pdpt, *pd;
	int i, j, k;

	__asm__ volatile("mov %%cr3, %0" : "=r"(cr3));
	pml4 = (uint64_t *)(cr3 & ADDR_MASK);
	for (i = 0; i < 512; i++) {
		if (!(pml4[i] & 1))
			continue;
		pml4[i] |= PTE_U;
		pdpt = (uint64_t *)(pml4[i] & ADDR_MASK);
		for (j = 0; j < 512; j++) {
			if (!(pdpt[j] & 1))
				continue;
			pdpt[j] |= PTE_U;
			if (pdpt[j] & PTE_PS)
				continue;
			pd = (uint64_t *)(pdpt[j] & ADDR_MASK);
			for (k = 0; k < 512; k++)
				if (pd[k] & 1)
					pd[k] |= PTE_U;
		}
	}
	__asm__ volatile("mov %0, %%cr3" ::"r"(cr3) : "memory");
}

static void on_breakpoint(struct irq_frame *f)
{
	if ((f->cs & 3) != 3 || f->rip != (uint64_t)user_thunk_trap) {
		puts_("user: unexpected int3 at ");
		put_hex(f->rip);
		putc_('\n');
		guest_exit(98);
	}
	user_resume_asm(user_result);
}

void user_init(void)
{
	uint64_t base = (uint64_t)&tss, limit = sizeof(tss) - 1;
	struct {
		uint16_t limit;
		uint64_t base;
	} __attribute__((packed)) gdtr = {sizeof(gdt) - 1, (uint64_t)gdt};

	tss.rsp[0] = (uint64_t)(kernel_stack + STACK_SIZE);
	tss.iomap_base = sizeof(tss);
	/* Available 64-bit TSS (type 9), present, DPL 0. */
	gdt[GDT_TSS / 8] = (limit & 0xffff) | ((base & 0xffffff) << 16) | (0x89ULL << 40) |
			   (((limit >> 16) & 0xf) << 48) | (((base >> 24) & 0xff) << 56);
	gdt[GDT_TSS / 8 + 1] = base >> 32;

	set_user_bit();
	__asm__ volatile("lgdt %0\n\t"
			 "pushq %1\n\t"
			 "lea 1f(%%rip), %%rax\n\t"
			 "pushq %%rax\n\t"
			 "lretq\n"
			 "1:\n\t"
			 "mov %2, %%eax\n\t"
			 "mov %%eax, %%ds\n\t"
			 "mov %%eax, %%es\n\t"
			 "mov %%eax, %%ss\n\t"
			 "mov %3, %%eax\n\t"
			 "ltr %%ax"
			 :
			 : "m"(gdtr), "i"(GDT_KERNEL_CS), "i"(GDT_KERNEL_DS), "i"(GDT_TSS)
			 : "rax", "memory");
	idt_set_handler(3, on_breakpoint);
}

uint64_t user_call(user_fn fn, uint64_t arg)
{
	return user_call_asm(fn, arg, (uint64_t)(user_stack + STACK_SIZE));
}

void user_abort(uint64_t ret)
{
	user_resume_asm(ret);
}
