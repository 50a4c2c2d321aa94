/* Memory hog for the per-child memory limit (tests/vmm/cases/isolate_mem_hog.sh).
 *
 * Rings the warm doorbell, then after the restore reads its child index
 * from vmctl:
 *   index 1      waits HOG_DELAY_TSC (1-2 s: the test first looks at both
 *                leaf cgroups, and a killed child's leaf is removed at
 *                once), then writes one word into every 4 KiB page of
 *                HOG_MIB MiB of RAM (above the image, from CPL3, where
 *                KVM-PVM runs guest code natively), prints "touched" and powers off. Under a
 *                memory limit below that it never gets there: its VMM is
 *                OOM-killed first.
 *   other index  prints "child N alive K" about twice a second (spinning
 *                at CPL3 on the TSC in between) for ALIVE_ROUNDS rounds,
 *                then powers off: a sibling that keeps running.
 *   not forked   (no restore within a few seconds of the doorbell)
 *                touches 8 MiB, one heartbeat, SUCCESS.
 * Needs 256 MiB of guest RAM (HOG_BASE + HOG_MIB must fit). */
#include "rt/guest.h"
#include "rt/user.h"

#define VMCTL	      0x610
#define HOG_BASE      (32ULL << 20)
#define HOG_MIB	      200
#define ALIVE_ROUNDS  240
#define SPIN_TSC      1000000000ULL /* ~0.3-0.5 s at the usual TSC rates */
#define HOG_DELAY_TSC (4 * SPIN_TSC)

static inline uint64_t rdtsc(void)
{
	uint32_t lo, hi;

	__asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
	return ((uint64_t)hi << 32) | lo;
}

/* CPL3: one write per page; returns the pages written. */
static uint64_t user_touch(uint64_t mib)
{
	uint64_t pages = 0;

	for (uint64_t p = HOG_BASE; p < HOG_BASE + (mib << 20); p += 4096, pages++)
		*(volatile uint64_t *)p = p ^ 0x5a5a5a5a5a5a5a5aULL;
	return pages;
}

static uint64_t user_spin(uint64_t tsc)
{
	uint64_t t0 = rdtsc(), n = 0;

	while (rdtsc() - t0 < tsc)
		n++;
	return n;
}

static void heartbeat(uint32_t idx, unsigned k)
{
	user_call(user_spin, SPIN_TSC);
	puts_("isolate_mem_hog: child ");
	put_dec(idx);
	puts_(" alive ");
	put_dec(k);
	putc_('\n');
}

int main(void);
int main(void)
{
	uint32_t idx;
	uint64_t pages, t0;

	idt_init();
	user_init();
	puts_("isolate_mem_hog: warm\n");
	outl(VMCTL, 1); /* doorbell: snapshot here */
	/* The snapshot is taken a moment after the doorbell: wait until this
	 * runs restored (generation 1), or give up after a few seconds. */
	t0 = rdtsc();
	while (inl(VMCTL + 4) == 0 && rdtsc() - t0 < 4 * SPIN_TSC)
		__asm__ volatile("pause");
	idx = inl(VMCTL + 8);
	if (idx == 0xffffffffu) {
		pages = user_call(user_touch, 8);
		CHECK(pages == 8 * 256);
		heartbeat(idx, 0);
		return 0;
	}
	if (idx == 1) {
		user_call(user_spin, HOG_DELAY_TSC);
		puts_("isolate_mem_hog: child 1 touching 200 MiB\n");
		pages = user_call(user_touch, HOG_MIB);
		CHECK(pages == HOG_MIB * 256ULL);
		puts_("isolate_mem_hog: child 1 touched 200 MiB\n");
		return 0;
	}
	for (unsigned k = 0; k < ALIVE_ROUNDS; k++)
		heartbeat(idx, k);
	return 0;
}
