/* Memory hog for the per-child memory limit (tests/vmm/cases/isolate_mem_hog.sh,
 * tests/daemon/test_isolation.py).
 *
 * With a virtio-vsock device it serves the agent protocol (agent/agent.h:
 * ping, after_fork) on guest port 8888 from the start, rings the warm
 * doorbell and sleeps in hlt until the restore (the snapshot is taken
 * there). Afterwards, by the child index vmctl holds:
 *   index 1      waits HOG_DELAY_TSC (1-2 s: the test first looks at both
 *                leaf cgroups, and a killed child's leaf is removed at
 *                once) and until it answered after_fork (or AF_GRACE_TSC
 *                passed without one: a snapshot with no agent port), then
 *                writes one word into every 4 KiB page of HOG_MIB MiB of
 *                RAM (above the image, from CPL3, where KVM-PVM runs guest
 *                code natively), prints "touched" and powers off. Under a
 *                memory limit below that it never gets there: its VMM is
 *                OOM-killed first.
 *   other index  prints "child N alive K" about twice a second and answers
 *                the agent protocol in between until it is stopped: a
 *                sibling that keeps running and keeps answering ping. It
 *                polls the virtqueues between short CPL3 spins instead of
 *                sleeping, so that the heartbeat needs no timer.
 * Without a vsock device the same happens minus the agent; a VM that is
 * not restored within a few seconds of the doorbell touches 8 MiB, prints
 * one heartbeat and SUCCESS.
 * Needs 256 MiB of guest RAM (HOG_BASE + HOG_MIB must fit). */
#include "agent/agent.h"
#include "rt/guest.h"
#include "rt/user.h"

#define VMCTL	      0x610
#define HOG_BASE      (32ULL << 20)
#define HOG_MIB	      200
#define SPIN_TSC      1000000000ULL /* ~0.3-0.5 s at the usual TSC rates */
#define POLL_TSC      (SPIN_TSC / 16)
#define HOG_DELAY_TSC (4 * SPIN_TSC)
#define AF_GRACE_TSC  (3 * HOG_DELAY_TSC)

static bool agent;
static uint64_t restored_tsc, next_beat;
static unsigned beats;

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

static void heartbeat(uint64_t idx)
{
	puts_("isolate_mem_hog: child ");
	put_dec(idx);
	puts_(" alive ");
	put_dec(beats++);
	putc_('\n');
}

static __attribute__((noreturn)) void hog(void)
{
	uint64_t pages;

	puts_("isolate_mem_hog: child 1 touching 200 MiB\n");
	pages = user_call(user_touch, HOG_MIB);
	CHECK(pages == HOG_MIB * 256ULL);
	puts_("isolate_mem_hog: child 1 touched 200 MiB\n");
	guest_exit(0);
}

/* The child index from the last restore, -1 before one. */
static int64_t child_index(void)
{
	if (agent)
		return agent_child_index();
	return inl(VMCTL + 4) ? (int64_t)inl(VMCTL + 8) : -1;
}

/* agent_serve()'s idle step (interrupts off): before the restore, sleep;
 * afterwards spin POLL_TSC at CPL3, then hog or beat when it is time. */
static bool idle(void)
{
	int64_t idx = child_index();
	uint64_t now = rdtsc();

	if (idx < 0)
		return false;
	if (!restored_tsc) {
		restored_tsc = now;
		next_beat = now + SPIN_TSC;
	}
	if (idx == 1 && now - restored_tsc >= HOG_DELAY_TSC &&
	    (!agent || agent_after_fork_done() || now - restored_tsc >= AF_GRACE_TSC))
		hog();
	user_call(user_spin, POLL_TSC);
	if (idx != 1 && rdtsc() >= next_beat) {
		heartbeat((uint64_t)idx);
		next_beat += SPIN_TSC;
	}
	return true;
}

int main(void);
int main(void)
{
	uint64_t pages, t0;

	idt_init();
	user_init();
	agent = agent_start();
	puts_("isolate_mem_hog: warm\n");
	outl(VMCTL, 1); /* doorbell: snapshot here */
	if (agent)
		agent_serve(idle);
	/* The snapshot is taken a moment after the doorbell: wait until this
	 * runs restored (generation 1), or give up after a few seconds. */
	t0 = rdtsc();
	while (inl(VMCTL + 4) == 0 && rdtsc() - t0 < 4 * SPIN_TSC)
		__asm__ volatile("pause");
	if (child_index() < 0) {
		pages = user_call(user_touch, 8);
		CHECK(pages == 8 * 256);
		heartbeat(0xffffffffu);
		return 0;
	}
	for (;;)
		idle();
}
