/* Snapshot isolation: children share the snapshot's pages until they
 * write them, and never see each other's writes.
 *
 * Before the doorbell the guest fills 2048 pages (8 MiB) with the same
 * non-zero contents (so memory.bin holds 2048 identical data pages, not
 * holes) and rings the doorbell, then spins until vmctl's generation says
 * it runs in a restored child (the parent is paused while it spins, so the
 * snapshot holds the pattern untouched). Each child then
 *   - writes its own index (read from port 0x618) over every word of the
 *     first 1024 pages,
 *   - sleeps ~1 s (LAPIC one-shot timer, hlt) while its siblings write
 *     theirs into the same guest-physical pages,
 *   - checks every word: the 1024 written pages hold its own value, the
 *     1024 untouched pages still hold the snapshot's pattern.
 * The bulk work runs at CPL3 (native on KVM-PVM). The case script checks
 * each child's report and that memory.bin is unchanged (sha256). */
#include "rt/apic.h"
#include "rt/guest.h"
#include "rt/user.h"

#define VMCTL	       0x610
#define NPAGES	       2048
#define WRITTEN	       1024
#define WORDS	       512
#define VEC_TIMER      0x40
#define LINGER_COUNT   62500000u /* 1 s at 1 GHz / 16 */
#define RESTORE_CYCLES 90000000000ULL
#define MAX_CYCLES     60000000000ULL

static uint64_t region[NPAGES][WORDS] __attribute__((aligned(4096)));
static uint64_t own;
static volatile bool timer_fired;

static uint64_t pattern(unsigned w)
{
	return 0x5eed5eed00000000ULL | (uint64_t)w * 0x10001u;
}

static uint64_t user_fill(uint64_t arg)
{
	for (unsigned p = 0; p < NPAGES; p++)
		for (unsigned w = 0; w < WORDS; w++)
			region[p][w] = pattern(w);
	return 0;
}

static uint64_t user_write_own(uint64_t v)
{
	for (unsigned p = 0; p < WRITTEN; p++)
		for (unsigned w = 0; w < WORDS; w++)
			((volatile uint64_t *)region[p])[w] = v;
	return 0;
}

/* Returns the number of wrong words (written pages, then untouched). */
static uint64_t user_verify(uint64_t v)
{
	uint64_t bad = 0;

	for (unsigned p = 0; p < NPAGES; p++)
		for (unsigned w = 0; w < WORDS; w++)
			bad +=
			    ((volatile uint64_t *)region[p])[w] != (p < WRITTEN ? v : pattern(w));
	return bad;
}

static void on_timer(struct irq_frame *f)
{
	timer_fired = true;
	lapic_eoi();
}

static void on_spurious(struct irq_frame *f)
{
}

static void linger(void)
{
	uint64_t t0 = rdtsc();

	timer_fired = false;
	lapic_write(LAPIC_TM_DIV, 0x3);
	lapic_write(LAPIC_LVT_TM, VEC_TIMER); /* one-shot */
	lapic_write(LAPIC_TM_ICR, LINGER_COUNT);
	while (!timer_fired) {
		wait_for_irq();
		CHECK(rdtsc() - t0 < MAX_CYCLES);
	}
}

int main(void);
int main(void)
{
	uint32_t index;
	uint64_t t0, bad;

	idt_init();
	idt_set_handler(VEC_TIMER, on_timer);
	idt_set_handler(LAPIC_SPURIOUS_VEC, on_spurious);
	pic_mask_all();
	lapic_enable();
	user_init();
	user_call(user_fill, 0);
	puts_("snap_isolation: warm: 2048 identical pages\n");
	outl(VMCTL, 1);
	t0 = rdtsc();
	while (inl(VMCTL + 4) == 0) {
		cpu_relax();
		if (rdtsc() - t0 > RESTORE_CYCLES) {
			puts_("snap_isolation: never restored (run it with forkd snapshot/fork)\n");
			guest_exit(5);
		}
	}
	index = inl(VMCTL + 8);
	own = 0xc41d000000000000ULL | index;
	user_call(user_write_own, own);
	linger();
	bad = user_call(user_verify, own);
	puts_("snap_isolation: child ");
	put_dec(index);
	puts_(": ");
	put_dec(bad);
	puts_(" wrong words; 1024 written pages hold ");
	put_hex(own);
	puts_(", 1024 untouched pages the snapshot's pattern\n");
	CHECK(bad == 0);
	return 0;
}
