/* Snapshot and fork, the basic contract.
 *
 * The guest computes half of a deterministic checksum, rings forkd's warm
 * doorbell (snapshot point), then finishes the checksum and prints it with
 * what the vmctl ports say about it: generation (0 when booted, 1 in a
 * child), child index, and 16 bytes of entropy. A booted run and every
 * child must print the same checksum; each child must see generation 1,
 * its own index, and entropy that differs from its siblings'. */
#include "rt/guest.h"

#define VMCTL 0x610

static uint64_t lcg(uint64_t *x)
{
	*x = *x * 6364136223846793005ULL + 1442695040888963407ULL;
	return *x >> 33;
}

int main(void);
int main(void)
{
	uint64_t x = 42, sum = 0;
	uint32_t gen, idx;
	int i;

	for (i = 0; i < 100000; i++)
		sum ^= lcg(&x) + (uint64_t)i;
	puts_("fork_basic: warm\n");
	outl(VMCTL, 1); /* doorbell: snapshot here */
	for (i = 0; i < 100000; i++)
		sum ^= lcg(&x) * 3;
	gen = inl(VMCTL + 4);
	idx = inl(VMCTL + 8);
	puts_("fork_basic: checksum ");
	put_hex(sum);
	puts_(" generation ");
	put_dec(gen);
	puts_(" index ");
	put_dec(idx);
	puts_(" entropy ");
	outl(VMCTL + 12, 0);
	for (i = 0; i < 4; i++)
		put_hex(inl(VMCTL + 12));
	putc_('\n');
	return 0;
}
