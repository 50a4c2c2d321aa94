/* User mode: CPL3 entered with IRETQ through a guest-built GDT and TSS,
 * left through the DPL3 int3 gate (rt/user.h). A long arithmetic loop runs
 * at CPL3 and a short one at CPL0 to show the cost of each: on KVM-PVM CPL3
 * code runs natively while CPL0 code is emulated; on hardware-assisted KVM
 * both run natively. The loop is a 64-bit linear congruential generator
 * whose n-th value the kernel side computes independently by jump-ahead
 * (square-and-multiply over the affine map x -> M x + A).
 *
 * It also probes two ways user code enters the kernel whose behaviour on
 * KVM-PVM differs from hardware: `int $0x80` through a DPL3 gate, and
 * SYSCALL. With forkd.pvm=0 on the command line (the case script passes it
 * on hosts without kvm_pvm) both must behave architecturally; otherwise
 * what happened is reported and either outcome is accepted. */
#include "rt/apic.h"
#include "rt/cmdline.h"
#include "rt/guest.h"
#include "rt/user.h"

#define LCG_MUL	     6364136223846793005ULL
#define LCG_ADD	     1442695040888963407ULL
#define SEED	     0x0123456789abcdefULL
#define USER_ITERS   500000000ULL
#define KERNEL_ITERS 100000ULL

#define MSR_EFER  0xC0000080
#define MSR_STAR  0xC0000081
#define MSR_LSTAR 0xC0000082
#define MSR_FMASK 0xC0000084

#define GATE_TAKEN     0x80c0de
#define FAULT(vec)     (0xbad00 + (vec))
#define SYSCALL_AT(pl) (0x5c000 + (pl))

static uint64_t iters;
static bool strict;

/* SYSCALL target: the #UD it raises reports the CPL it ran at. */
void syscall_probe_entry(void);
extern const char syscall_probe_ud[];
__asm__(".text\n"
	"syscall_probe_entry:\n"
	"syscall_probe_ud:\n"
	"	ud2\n");

__attribute__((noinline)) static uint64_t lcg_run(uint64_t x, uint64_t n)
{
	while (n--)
		x = x * LCG_MUL + LCG_ADD;
	return x;
}

/* x_n = M^n x_0 + A (M^{n-1} + ... + 1), composed by repeated squaring. */
static uint64_t lcg_jump(uint64_t x, uint64_t n)
{
	uint64_t acc_mul = 1, acc_add = 0, mul = LCG_MUL, add = LCG_ADD;

	while (n) {
		if (n & 1) {
			acc_mul *= mul;
			acc_add = acc_add * mul + add;
		}
		add *= mul + 1;
		mul *= mul;
		n >>= 1;
	}
	return acc_mul * x + acc_add;
}

static uint64_t user_lcg(uint64_t seed)
{
	return lcg_run(seed, iters);
}

static uint64_t user_cpl(uint64_t arg)
{
	uint16_t cs;

	__asm__ volatile("mov %%cs, %0" : "=r"(cs));
	return cs & 3;
}

static uint64_t user_port_io(uint64_t arg)
{
	outb(0x3ff, 0x55); /* no I/O bitmap, IOPL 0: #GP */
	return 0;
}

static uint64_t user_int80(uint64_t arg)
{
	__asm__ volatile("int $0x80");
	return 0;
}

static uint64_t user_syscall(uint64_t arg)
{
	__asm__ volatile("syscall" ::: "rcx", "r11", "memory");
	return 0;
}

static void on_int80(struct irq_frame *f)
{
	if ((f->cs & 3) != 3)
		guest_exit(4);
	user_abort(GATE_TAKEN);
}

static void on_fault(struct irq_frame *f)
{
	if (f->rip == (uint64_t)syscall_probe_ud)
		user_abort(SYSCALL_AT(f->cs & 3));
	if ((f->cs & 3) != 3) {
		puts_("user_mode: exception ");
		put_dec(f->vector);
		puts_(" at CPL0, rip ");
		put_hex(f->rip);
		putc_('\n');
		guest_exit(3);
	}
	user_abort(FAULT(f->vector));
}

static uint64_t rdmsr(uint32_t msr)
{
	uint32_t lo, hi;

	__asm__ volatile("rdmsr" : "=a"(lo), "=d"(hi) : "c"(msr));
	return ((uint64_t)hi << 32) | lo;
}

static void wrmsr(uint32_t msr, uint64_t v)
{
	__asm__ volatile("wrmsr" ::"c"(msr), "a"((uint32_t)v), "d"((uint32_t)(v >> 32)));
}

static void probe_int80(void)
{
	uint64_t got = user_call(user_int80, 0);

	puts_(got == GATE_TAKEN ? "user_mode: int $0x80 at CPL3 took the DPL3 gate\n"
	      : got == FAULT(6) ? "user_mode: int $0x80 at CPL3 raised #UD (KVM-PVM)\n"
				: "user_mode: int $0x80 at CPL3: unexpected outcome\n");
	CHECK(got == GATE_TAKEN || (!strict && got == FAULT(6)));
}

static void probe_syscall(void)
{
	uint64_t got;

	/* Linux's layout: SYSCALL loads CS 0x10, SS 0x18; SYSRET would load
	 * the user segments from STAR[63:48] (user32 CS) + 8 and + 16. */
	wrmsr(MSR_STAR, ((uint64_t)(GDT_USER32_CS & ~3) << 48) | ((uint64_t)GDT_KERNEL_CS << 32));
	wrmsr(MSR_LSTAR, (uint64_t)syscall_probe_entry);
	wrmsr(MSR_FMASK, 0x700);	      /* IF, TF, DF */
	wrmsr(MSR_EFER, rdmsr(MSR_EFER) | 1); /* SCE */
	got = user_call(user_syscall, 0);
	puts_(got == SYSCALL_AT(0)   ? "user_mode: SYSCALL entered LSTAR at CPL0\n"
	      : got == SYSCALL_AT(3) ? "user_mode: SYSCALL entered LSTAR at CPL3 (KVM-PVM)\n"
				     : "user_mode: SYSCALL: unexpected outcome\n");
	CHECK(got == SYSCALL_AT(0) || (!strict && got == SYSCALL_AT(3)));
}

static void put_rate(const char *what, uint64_t n, uint64_t cycles)
{
	puts_(what);
	put_dec(n);
	puts_(" iterations in ");
	put_dec(cycles);
	puts_(" TSC cycles (");
	put_dec(cycles * 100 / n);
	puts_(" cycles per 100 iterations)\n");
}

int main(void);
int main(void)
{
	uint64_t t, user_cyc, kern_cyc, got;
	unsigned v;

	strict = cmdline_has("forkd.pvm=0");
	idt_init();
	for (v = 0; v < 32; v++)
		if (v != 3)
			idt_set_handler(v, on_fault);
	idt_set_handler(0x80, on_int80);
	user_init();

	CHECK(user_call(user_cpl, 0) == 3);
	CHECK(user_call(user_port_io, 0) == FAULT(13));
	puts_("user_mode: CPL3 entered and left; port I/O at CPL3 raises #GP\n");
	probe_int80();
	probe_syscall();

	iters = USER_ITERS;
	t = rdtsc();
	got = user_call(user_lcg, SEED);
	user_cyc = rdtsc() - t;
	put_rate("user_mode: CPL3: ", USER_ITERS, user_cyc);
	CHECK(got == lcg_jump(SEED, USER_ITERS));

	t = rdtsc();
	got = lcg_run(SEED, KERNEL_ITERS);
	kern_cyc = rdtsc() - t;
	put_rate("user_mode: CPL0: ", KERNEL_ITERS, kern_cyc);
	CHECK(got == lcg_jump(SEED, KERNEL_ITERS));
	puts_("user_mode: one iteration costs ");
	put_dec((kern_cyc * USER_ITERS) / (user_cyc * KERNEL_ITERS));
	puts_("x more at CPL0 than at CPL3\n");
	return 0;
}
