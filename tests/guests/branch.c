/* Branching: a running child snapshotted (full, diff, live) and forked
 * again, over generations (tests/vmm/cases/branch.sh drives it).
 *
 * Memory: `region` (512 pages) and two churn buffers (32 pages each).
 * Before the doorbell the guest fills the region with the base pattern.
 * A child of generation g (vmctl's generation: 1 for children of the boot
 * snapshot, 2 for children of a branch of those, ...) then
 *   1. verifies what its lineage wrote: pages [64k, 64k+64) hold the
 *      stamp of generation k for every 1 <= k < g, all other region pages
 *      the base pattern, and the churn buffer named by `commit` holds
 *      exactly that commit's contents;
 *   2. prints "branch: gen G index I: N bad words ..." (the script wants
 *      N = 0), then stamps its own 64 pages (exactly those: a diff branch
 *      taken later holds them plus the churn buffers and a few pages of
 *      stack and page tables);
 *   3. rewrites both churn buffers once, prints "... churning" and goes
 *      on rewriting them for ever: fill
 *      buffer (seq % 2) with seq's contents, then set commit = seq. A
 *      branch that is not of one instant (memory copied while the guest
 *      runs) shows up in the next generation as a committed buffer that
 *      does not match its commit.
 * When its generation changes (it now runs in a child of a branch) it
 * goes back to 1. Filling, stamping and verifying run at CPL3 (native on
 * KVM-PVM); the churn runs at CPL0, so a branch lands in kernel code: on
 * KVM-PVM a vCPU stopped while its user code's int3 was being delivered
 * was saved without that event, and its children ran into the ud2 after
 * it (docs/ARCHITECTURE.md, KVM-PVM hosts). */
#include "rt/apic.h"
#include "rt/guest.h"
#include "rt/user.h"

#define VMCTL	       0x610
#define REGION_PAGES   512
#define GEN_PAGES      64
#define MAX_GEN	       7
#define BUF_PAGES      32
#define WORDS	       512
#define BURST	       1
#define RESTORE_CYCLES 90000000000ULL

static uint64_t region[REGION_PAGES][WORDS] __attribute__((aligned(4096)));
static uint64_t churn[2][BUF_PAGES][WORDS] __attribute__((aligned(4096)));
static volatile uint64_t commit __attribute__((aligned(4096)));

static uint64_t pattern(uint64_t p, uint64_t w)
{
	return 0x5eed000000000000ULL | p << 20 | w;
}

static uint64_t stamp(uint64_t g, uint64_t p, uint64_t w)
{
	return 0xb4a0000000000000ULL | g << 40 | p << 20 | w;
}

static uint64_t churn_word(uint64_t seq, uint64_t i)
{
	return seq * 0x9e3779b97f4a7c15ULL ^ i;
}

static uint64_t user_fill(uint64_t arg)
{
	for (uint64_t p = 0; p < REGION_PAGES; p++)
		for (uint64_t w = 0; w < WORDS; w++)
			region[p][w] = pattern(p, w);
	return arg;
}

static uint64_t user_stamp(uint64_t g)
{
	for (uint64_t p = g * GEN_PAGES; p < (g + 1) * GEN_PAGES; p++)
		for (uint64_t w = 0; w < WORDS; w++)
			((volatile uint64_t *)region[p])[w] = stamp(g, p, w);
	return 0;
}

/* Wrong words: the region as generations 1..g-1 left it, and the
 * committed churn buffer. */
static uint64_t user_verify(uint64_t g)
{
	uint64_t bad = 0, c = commit;

	for (uint64_t p = 0; p < REGION_PAGES; p++) {
		uint64_t k = p / GEN_PAGES;

		for (uint64_t w = 0; w < WORDS; w++)
			bad += ((volatile uint64_t *)region[p])[w] !=
			       (k >= 1 && k < g ? stamp(k, p, w) : pattern(p, w));
	}
	if (c)
		for (uint64_t p = 0; p < BUF_PAGES; p++)
			for (uint64_t w = 0; w < WORDS; w++)
				bad += ((volatile uint64_t *)churn[c % 2][p])[w] !=
				       churn_word(c, p * WORDS + w);
	return bad;
}

static void churn_burst(uint64_t n)
{
	for (uint64_t i = 0; i < n; i++) {
		uint64_t seq = commit + 1;

		for (uint64_t p = 0; p < BUF_PAGES; p++)
			for (uint64_t w = 0; w < WORDS; w++)
				((volatile uint64_t *)churn[seq % 2][p])[w] =
				    churn_word(seq, p * WORDS + w);
		__asm__ volatile("" ::: "memory");
		commit = seq;
	}
}

int main(void);
int main(void)
{
	uint64_t t0;

	idt_init();
	user_init();
	user_call(user_fill, 0);
	puts_("branch: warm: base pattern in 512 pages\n");
	outl(VMCTL, 1);
	t0 = rdtsc();
	while (inl(VMCTL + 4) == 0) {
		cpu_relax();
		if (rdtsc() - t0 > RESTORE_CYCLES) {
			puts_("branch: never restored (run it with forkd snapshot/fork)\n");
			guest_exit(5);
		}
	}
	for (;;) {
		uint32_t g = inl(VMCTL + 4), index = inl(VMCTL + 8);
		uint64_t c = commit, bad = user_call(user_verify, g);

		puts_("branch: gen ");
		put_dec(g);
		puts_(" index ");
		put_dec(index);
		puts_(": ");
		put_dec(bad);
		puts_(" bad words (stamps of gens 1..");
		put_dec(g - 1);
		puts_(", base pattern, churn commit ");
		put_dec(c);
		puts_(")\n");
		if (g <= MAX_GEN)
			user_call(user_stamp, g);
		/* Both churn buffers written before it says so: a diff branch
		 * taken from then on holds all 64 of their pages. */
		churn_burst(2);
		puts_("branch: gen ");
		put_dec(g);
		puts_(" index ");
		put_dec(index);
		puts_(": stamped 64 pages, churning\n");
		while (inl(VMCTL + 4) == g)
			churn_burst(BURST);
	}
}
