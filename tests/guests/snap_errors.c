/* The snapshot for tests/vmm/cases/snap_errors.sh, which corrupts copies of
 * it in every way forkd must refuse. The guest rings the doorbell, spins
 * until vmctl's generation says it was restored, and powers off cleanly:
 * the unspoilt snapshot's children exit 0. */
#include "rt/apic.h"
#include "rt/guest.h"

#define VMCTL	       0x610
#define RESTORE_CYCLES 90000000000ULL

int main(void);
int main(void)
{
	uint64_t t0;

	puts_("snap_errors: warm\n");
	outl(VMCTL, 1);
	t0 = rdtsc();
	while (inl(VMCTL + 4) == 0) {
		cpu_relax();
		if (rdtsc() - t0 > RESTORE_CYCLES) {
			puts_("snap_errors: never restored\n");
			guest_exit(5);
		}
	}
	puts_("snap_errors: restored\n");
	return 0;
}
