/* Instructions that KVM-PVM's CPL0 emulator rejects and forkd completes in
 * user space (src/vmm/assist.h): int3, and popcnt with register and memory
 * operands (base+index*scale, base+disp8, RIP-relative), 16/32/64-bit
 * operand sizes, and the flags it defines. On ordinary KVM the same
 * instructions run in hardware: the results must be identical. */
#include "rt/guest.h"

static volatile uint64_t mem_val = 0x00f0000000000f00ULL;
static volatile uint64_t table[4] = {0, 0x8000000000000000ULL, 0x10, 0xffffffffffffffffULL};
static volatile int bp_hits;

static void on_bp(struct irq_frame *f)
{
	bp_hits++;
}

#define CF 1ULL
#define ZF (1ULL << 6)
#define AC (1ULL << 18)

static bool smap_supported(void)
{
	uint32_t a = 7, b, c = 0, d;

	__asm__ volatile("cpuid" : "+a"(a), "=b"(b), "+c"(c), "=d"(d));
	return b & (1u << 20);
}

static uint64_t flags_of(uint64_t rflags)
{
	return rflags & (CF | ZF);
}

int main(void);
int main(void)
{
	uint64_t r, fl, idx = 2;
	uint32_t r32;

	idt_init();
	idt_set_handler(3, on_bp);
	__asm__ volatile("int3");
	CHECK(bp_hits == 1);

	/* popcnt r64, r64 */
	__asm__ volatile("popcnt %2, %0; pushfq; pop %1"
			 : "=r"(r), "=r"(fl)
			 : "r"(0xf0f0ULL)
			 : "cc");
	CHECK(r == 8 && flags_of(fl) == 0);
	__asm__ volatile("popcnt %2, %0; pushfq; pop %1" : "=r"(r), "=r"(fl) : "r"(0ULL) : "cc");
	CHECK(r == 0 && flags_of(fl) == ZF);
	/* popcnt r64, m64 (RIP-relative) */
	__asm__ volatile("popcnt mem_val(%%rip), %0" : "=r"(r) : : "cc");
	CHECK(r == 8);
	/* popcnt r32, m32 (base + index*8) */
	__asm__ volatile("popcntl (%1,%2,8), %0" : "=r"(r32) : "r"(table), "r"(idx) : "cc");
	CHECK(r32 == 1);
	/* popcnt r16, r16: upper bits of the destination are kept */
	r = 0xabcd000000000000ULL;
	__asm__ volatile("popcnt %w1, %w0" : "+r"(r) : "r"(0xffffULL) : "cc");
	CHECK(r == 0xabcd000000000010ULL);
	/* popcnt r64, m64 with base + disp8 */
	__asm__ volatile("popcnt 24(%2), %0; pushfq; pop %1"
			 : "=r"(r), "=r"(fl)
			 : "r"(table)
			 : "cc");
	CHECK(r == 64 && flags_of(fl) == 0);
	/* stac / clac toggle RFLAGS.AC (and need CR4.SMAP only for #UD checks
	 * that do not apply at CPL0 with SMAP present) */
	if (smap_supported()) {
		__asm__ volatile("stac; pushfq; pop %0" : "=r"(fl));
		CHECK(fl & AC);
		__asm__ volatile("clac; pushfq; pop %0" : "=r"(fl));
		CHECK(!(fl & AC));
	} else {
		puts_("assist: no SMAP on this CPU, clac/stac not checked\n");
	}
	/* fwait with no x87 exception pending does nothing */
	r = 0x1234;
	__asm__ volatile("fninit; fwait; mov $0x5678, %0" : "+r"(r));
	CHECK(r == 0x5678);
	/* ldmxcsr / stmxcsr round trip (needs CR4.OSFXSR) */
	{
		uint64_t cr4;
		uint32_t in = 0x1f80 | 0x6000, out = 0; /* round toward zero */

		__asm__ volatile("mov %%cr4, %0" : "=r"(cr4));
		__asm__ volatile("mov %0, %%cr4" ::"r"(cr4 | (1 << 9) | (1 << 10)));
		__asm__ volatile("ldmxcsr %0" ::"m"(in));
		__asm__ volatile("stmxcsr %0" : "=m"(out));
		if (out != in) {
			puts_("stmxcsr read ");
			put_hex(out);
			putc_(10);
		}
		CHECK(out == in);
		in = 0x1f80;
		__asm__ volatile("ldmxcsr %0" ::"m"(in));
		__asm__ volatile("stmxcsr %0" : "=m"(out));
		CHECK(out == 0x1f80);
	}
	puts_("assist: int3, popcnt, clac, stac, fwait, ldmxcsr and stmxcsr correct\n");
	return 0;
}
