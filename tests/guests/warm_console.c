/* A guest that says it is warm only on its console: `forkd snapshot
 * --warm-console` must take the snapshot at that line (this guest never
 * touches the doorbell port). Children continue after the marker and print
 * their generation, so the case script can tell a restored run (1) from a
 * booted one (0). */
#include "rt/guest.h"

int main(void);
int main(void)
{
	volatile uint64_t spin;

	puts_("warm_console: READY-FOR-SNAPSHOT\n");
	/* Give forkd time to pause here; a booted run just carries on. */
	for (spin = 0; spin < 20000; spin++)
		;
	puts_("warm_console: after the marker, generation ");
	put_dec(inl(0x614));
	putc_('\n');
	return 0;
}
