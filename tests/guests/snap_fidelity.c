/* Snapshot fidelity: a computation snapshotted in flight continues in every
 * child exactly as it does in a VM that was never snapshotted.
 *
 * The guest
 *   - programs the PIT (1 kHz, IOAPIC pin 0) and the LAPIC timer (periodic,
 *     1 ms) and sees a few ticks of each;
 *   - enables SSE itself (CR0.EM clear, CR0.MP set, CR4.OSFXSR and
 *     CR4.OSXMMEXCPT set: a guest starts with them clear) and, at CPL3,
 *     loads distinctive x87 state (FCW 0x067f: double precision, round
 *     down; six stack values, one an arbitrary 80-bit pattern), MXCSR 0xffa0
 *     (flush-to-zero, round toward zero, PE flag set) and 16 distinct XMM
 *     registers, and records them with FXSAVE;
 *   - runs the first iters1 iterations of a computation at CPL3 (integer
 *     mixing in general registers, plus xmm0..7 += xmm8..15 each
 *     iteration), keeping its state in memory between the two calls;
 *   - rings the doorbell (port 0x610) and goes straight back into the loop
 *     at CPL3 with interrupts off for the remaining iterations, so forkd's
 *     asynchronous pause lands in the middle of it, with the live state in
 *     general and XMM registers; `progress` (in memory; the case script
 *     reads it from memory.bin) says how far the loop had got.
 * After the loop it checks
 *   - every XMM register holds initial + iters * increment, and the x87
 *     stack, FCW, FSW, FTW and MXCSR are unchanged;
 *   - the restored control words are in force: 1/10 rounds down in both
 *     the x87 (FCW) and SSE (MXCSR) units, unlike round-to-nearest;
 *   - interrupts of both timers keep arriving.
 * Everything printed after the "warm" line is deterministic, so the case
 * script compares each child's console with an unsnapshotted run's. */
#include "rt/apic.h"
#include "rt/cmdline.h"
#include "rt/guest.h"
#include "rt/user.h"

#define VMCTL 0x610
/* The workload: `iters=N` on the command line (the lab, whose CPU is
 * emulated, asks for fewer); a quarter of it runs before the doorbell. */
#define ITERS_DEFAULT 200000000ULL
static uint64_t iters, iters1; /* in all; before the doorbell */
#define LCG_MUL	  6364136223846793005ULL
#define LCG_ADD	  1442695040888963407ULL
#define VEC_PIT	  0x30
#define VEC_LAPIC 0x40
#define TICKS	  20
/* Generous: every interrupt is emulated at CPL0 on KVM-PVM, and up to 50
 * children share two host cores. */
#define MAX_CYCLES 60000000000ULL

#define CR0_MP	       (1ULL << 1)
#define CR0_EM	       (1ULL << 2)
#define CR0_TS	       (1ULL << 3)
#define CR4_OSFXSR     (1ULL << 9)
#define CR4_OSXMMEXCPT (1ULL << 10)

#define FCW_VALUE   0x067f /* masks set, PC = double, RC = down */
#define MXCSR_VALUE 0xffa0 /* FZ, RC = toward zero, masks set, PE */
/* 0.1 rounded toward zero (both units' modes above) and to nearest. */
#define TENTH_DOWN    0x3fb9999999999999ULL
#define TENTH_NEAREST 0x3fb999999999999aULL

struct fxsave {
	uint16_t fcw, fsw;
	uint8_t ftw, reserved0;
	uint16_t fop;
	uint64_t fip, fdp;
	uint32_t mxcsr, mxcsr_mask;
	uint8_t st[8][16]; /* 10 bytes of each register used */
	uint64_t xmm[16][2];
	uint8_t reserved1[96];
} __attribute__((packed, aligned(16)));
_Static_assert(sizeof(struct fxsave) == 512, "FXSAVE area");

static struct fxsave before, after;
static uint64_t xmm_init[16][2] __attribute__((aligned(16)));
/* An arbitrary 80-bit extended value: mantissa, then sign and exponent. */
static const uint16_t x87_pattern[5]
    __attribute__((aligned(16))) = {0xcdef, 0x89ab, 0x4567, 0xc123, 0xc00a};
static const uint32_t ten = 10;
static volatile uint64_t progress;
static volatile uint64_t tenth_x87, tenth_sse;
static volatile unsigned long pit_ticks, lapic_ticks;

static void on_timer(struct irq_frame *f)
{
	if (f->vector == VEC_PIT)
		pit_ticks++;
	else
		lapic_ticks++;
	lapic_eoi();
}

static void on_spurious(struct irq_frame *f)
{
}

static void on_fault(struct irq_frame *f)
{
	puts_("snap_fidelity: exception ");
	put_dec(f->vector);
	puts_(" at rip ");
	put_hex(f->rip);
	puts_(" cs ");
	put_hex(f->cs);
	putc_('\n');
	guest_exit(90);
}

static void enable_sse(void)
{
	uint64_t cr0, cr4;

	__asm__ volatile("mov %%cr0, %0" : "=r"(cr0));
	cr0 = (cr0 & ~(CR0_EM | CR0_TS)) | CR0_MP;
	__asm__ volatile("mov %0, %%cr0" ::"r"(cr0));
	__asm__ volatile("mov %%cr4, %0" : "=r"(cr4));
	cr4 |= CR4_OSFXSR | CR4_OSXMMEXCPT;
	__asm__ volatile("mov %0, %%cr4" ::"r"(cr4));
}

/* CPL3: load the distinctive FPU/SSE state and record it. */
static uint64_t user_fpu_load(uint64_t arg)
{
	uint16_t fcw = FCW_VALUE;
	uint32_t mxcsr = MXCSR_VALUE;

	__asm__ volatile("fninit\n\t"
			 "fldcw %0\n\t"
			 "fldt %1\n\t"
			 "fldpi\n\t"
			 "fldl2e\n\t"
			 "fldln2\n\t"
			 "fldlg2\n\t"
			 "fld1\n\t"
			 "ldmxcsr %2" ::"m"(fcw),
			 "m"(x87_pattern), "m"(mxcsr)
			 : "memory");
#define LOADX(n) __asm__ volatile("movdqa %0, %%xmm" #n ::"m"(xmm_init[n]))
	LOADX(0);
	LOADX(1);
	LOADX(2);
	LOADX(3);
	LOADX(4);
	LOADX(5);
	LOADX(6);
	LOADX(7);
	LOADX(8);
	LOADX(9);
	LOADX(10);
	LOADX(11);
	LOADX(12);
	LOADX(13);
	LOADX(14);
	LOADX(15);
	__asm__ volatile("fxsave64 %0" : "=m"(before));
	return 0;
}

/* The computation the snapshot interrupts: its state between the two
 * calls, and in registers during each. */
static struct {
	uint64_t x, y, z, i;
} comp = {0x0123456789abcdefULL, ~0x0123456789abcdefULL, 0, 0};

/* CPL3: run the computation up to iteration `end`. */
static uint64_t user_compute(uint64_t end)
{
	uint64_t x = comp.x, y = comp.y, z = comp.z, i;

	for (i = comp.i; i < end; i++) {
		x = x * LCG_MUL + LCG_ADD;
		y ^= x >> 29;
		y = (y << 13) | (y >> 51);
		z += y ^ i;
		__asm__ volatile("paddq %xmm8, %xmm0\n\t"
				 "paddq %xmm9, %xmm1\n\t"
				 "paddq %xmm10, %xmm2\n\t"
				 "paddq %xmm11, %xmm3\n\t"
				 "paddq %xmm12, %xmm4\n\t"
				 "paddq %xmm13, %xmm5\n\t"
				 "paddq %xmm14, %xmm6\n\t"
				 "paddq %xmm15, %xmm7");
		progress = i;
	}
	comp.x = x;
	comp.y = y;
	comp.z = z;
	comp.i = i;
	progress = i;
	return x ^ y ^ z;
}

/* CPL3: record the state after the loop, then use the control words. */
static uint64_t user_fpu_check(uint64_t arg)
{
	uint64_t one = 0x3ff0000000000000ULL, tenf = 0x4024000000000000ULL, r;

	__asm__ volatile("fxsave64 %0" : "=m"(after));
	__asm__ volatile("fld1\n\t"
			 "fidivl %1\n\t"
			 "fstpl %0"
			 : "=m"(r)
			 : "m"(ten));
	tenth_x87 = r;
	__asm__ volatile("movq %1, %%xmm0\n\t"
			 "movq %2, %%xmm1\n\t"
			 "divsd %%xmm1, %%xmm0\n\t"
			 "movq %%xmm0, %0"
			 : "=r"(r)
			 : "r"(one), "r"(tenf));
	tenth_sse = r;
	return 0;
}

static void wait_ticks(unsigned long want_pit, unsigned long want_lapic)
{
	uint64_t t0 = rdtsc();

	while (pit_ticks < want_pit || lapic_ticks < want_lapic) {
		wait_for_irq();
		if (rdtsc() - t0 > MAX_CYCLES) {
			puts_("snap_fidelity: timer interrupts stopped (PIT ");
			put_dec(pit_ticks);
			puts_(" of ");
			put_dec(want_pit);
			puts_(", LAPIC ");
			put_dec(lapic_ticks);
			puts_(" of ");
			put_dec(want_lapic);
			puts_(")\n");
			guest_exit(2);
		}
	}
}

static void check_fpu(void)
{
	unsigned k, bad = 0;

	for (k = 0; k < 16; k++) {
		uint64_t lo = before.xmm[k][0], hi = before.xmm[k][1];

		CHECK(lo == xmm_init[k][0] && hi == xmm_init[k][1]);
		if (k < 8) {
			lo += iters * xmm_init[k + 8][0];
			hi += iters * xmm_init[k + 8][1];
		}
		if (after.xmm[k][0] != lo || after.xmm[k][1] != hi) {
			puts_("snap_fidelity: xmm");
			put_dec(k);
			puts_(" is ");
			put_hex(after.xmm[k][1]);
			put_hex(after.xmm[k][0]);
			puts_(", expected ");
			put_hex(hi);
			put_hex(lo);
			putc_('\n');
			bad++;
		}
	}
	CHECK(bad == 0);
	CHECK(before.fcw == FCW_VALUE && after.fcw == before.fcw);
	CHECK(before.mxcsr == MXCSR_VALUE && after.mxcsr == before.mxcsr);
	CHECK(after.fsw == before.fsw);
	CHECK(before.ftw == 0xfc && after.ftw == before.ftw); /* six registers in use */
	for (k = 0; k < 8; k++)
		CHECK(!memcmp(after.st[k], before.st[k], 10));
	CHECK(!memcmp(before.st[5], x87_pattern, 10));
	puts_("snap_fidelity: x87 stack, FCW, FSW, FTW, MXCSR and xmm0-15 hold the expected "
	      "values\n");
	CHECK(tenth_x87 == TENTH_DOWN && tenth_sse == TENTH_DOWN);
	puts_("snap_fidelity: 1/10 rounds down in x87 and SSE (restored control words in "
	      "force)\n");
}

int main(void);
int main(void)
{
	uint64_t result, s = 0x9e3779b97f4a7c15ULL;
	unsigned long p0, l0;
	unsigned id, k, v;

	iters = cmdline_u64("iters=", ITERS_DEFAULT);
	if (iters < 4)
		iters = ITERS_DEFAULT;
	iters1 = iters / 4;
	idt_init();
	for (v = 0; v < 32; v++)
		if (v != 3)
			idt_set_handler(v, on_fault);
	idt_set_handler(VEC_PIT, on_timer);
	idt_set_handler(VEC_LAPIC, on_timer);
	idt_set_handler(LAPIC_SPURIOUS_VEC, on_spurious);
	user_init();
	pic_mask_all();
	lapic_enable();
	id = lapic_id();

	ioapic_route(0, VEC_PIT, (uint8_t)id);
	pit_start(1000);
	lapic_write(LAPIC_TM_DIV, 0x3); /* divide by 16: 62500 = 1 ms */
	lapic_write(LAPIC_LVT_TM, LAPIC_TM_PERIODIC | VEC_LAPIC);
	lapic_write(LAPIC_TM_ICR, 62500);
	wait_ticks(5, 5);
	puts_("snap_fidelity: PIT and LAPIC timer ticking\n");

	for (k = 0; k < 16; k++) {
		s = s * LCG_MUL + LCG_ADD;
		xmm_init[k][0] = s ^ (0x0101010101010101ULL * (k + 1));
		s = s * LCG_MUL + LCG_ADD;
		xmm_init[k][1] = s;
	}
	enable_sse();
	user_call(user_fpu_load, 0);
	user_call(user_compute, iters1);
	puts_("snap_fidelity: warm: ");
	put_dec(iters1);
	puts_(" of ");
	put_dec(iters);
	puts_(" iterations done at CPL3\n");
	/* Ticks missed while interrupts are off would be re-injected in a burst
	 * afterwards (KVM's PIT re-injects lost ticks). Masking the pin for the
	 * loop drops that backlog when it is unmasked (KVM's PIT mask notifier),
	 * so the count below sees fresh ticks; the PIT itself keeps counting. */
	ioapic_mask(0);
	outl(VMCTL, 1); /* doorbell: the pause lands somewhere in the loop */
	result = user_call(user_compute, iters);
	user_call(user_fpu_check, 0);
	ioapic_route(0, VEC_PIT, (uint8_t)id);

	puts_("snap_fidelity: result ");
	put_hex(result);
	putc_('\n');
	check_fpu();
	p0 = pit_ticks;
	l0 = lapic_ticks;
	wait_ticks(p0 + TICKS, l0 + TICKS);
	puts_("snap_fidelity: PIT and LAPIC timer interrupts still arrive\n");
	return 0;
}
