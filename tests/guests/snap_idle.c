/* An idle snapshot for memory-sharing checks and spawn benchmarks
 * (tests/vmm/cases/snap_idle.sh, bench/spawn).
 *
 * The guest rings the doorbell and halts. Without options it halts with
 * interrupts off right away, so the snapshot is taken in `hlt` and a child
 * costs no CPU once its vCPU runs. With `snap_idle.write` on the command
 * line it instead spins until vmctl's generation says it runs in a
 * restored child, writes its index into WRITE_PAGES pages (one word each,
 * enough to make each page the child's own copy), reads them back, prints
 * one line and then halts forever: the host can then measure how much
 * memory a child holds privately. */
#include "rt/apic.h"
#include "rt/cmdline.h"
#include "rt/guest.h"

#define VMCTL	       0x610
#define WRITE_PAGES    16
#define RESTORE_CYCLES 90000000000ULL

static uint64_t pages[WRITE_PAGES][512] __attribute__((aligned(4096)));

static __attribute__((noreturn)) void halt_forever(void)
{
	for (;;)
		__asm__ volatile("cli; hlt");
}

int main(void);
int main(void)
{
	uint32_t index;
	uint64_t t0;
	unsigned p;

	if (!cmdline_has("snap_idle.write")) {
		puts_("snap_idle: warm, halting\n");
		outl(VMCTL, 1);
		halt_forever();
	}
	puts_("snap_idle: warm, will write ");
	put_dec(WRITE_PAGES);
	puts_(" pages in each child\n");
	outl(VMCTL, 1);
	t0 = rdtsc();
	while (inl(VMCTL + 4) == 0) {
		cpu_relax();
		if (rdtsc() - t0 > RESTORE_CYCLES) {
			puts_("snap_idle: never restored\n");
			guest_exit(5);
		}
	}
	index = inl(VMCTL + 8);
	for (p = 0; p < WRITE_PAGES; p++)
		((volatile uint64_t *)pages[p])[p * 7 % 512] = 0x1d1e000000000000ULL | index;
	for (p = 0; p < WRITE_PAGES; p++)
		CHECK(((volatile uint64_t *)pages[p])[p * 7 % 512] ==
		      (0x1d1e000000000000ULL | index));
	puts_("snap_idle: child ");
	put_dec(index);
	puts_(" wrote ");
	put_dec(WRITE_PAGES);
	puts_(" pages\n");
	halt_forever();
}
