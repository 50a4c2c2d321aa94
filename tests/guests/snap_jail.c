/* A guest that never says it is warm: it prints one line and halts with
 * interrupts off, so `forkd snapshot` waits for it until its time limit.
 * tests/vmm/cases/snap_jail.sh looks at the snapshot's VMM meanwhile. */
#include "rt/guest.h"

int main(void);
int main(void)
{
	puts_("snap_jail: booted, never warm\n");
	for (;;)
		__asm__ volatile("cli; hlt");
	return 0;
}
