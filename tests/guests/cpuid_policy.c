/* The guest CPUID policy as a guest sees it.
 *
 * The case script runs this guest twice: with the KVM-PVM policy forced
 * (FORKD_PVM=1, command line word "expect-pvm") and with it off
 * (FORKD_PVM=0, "expect-native"). Always: hypervisor bit set, initial APIC
 * id 0 on the BSP. PVM policy: CMPXCHG16B hidden and "noxsave" on the
 * command line (KVM-PVM passes XSAVE/AVX through from the host whatever
 * the table says, so the kernel must be told). Native policy: no noxsave. */
#include "rt/cmdline.h"
#include "rt/guest.h"

static void cpuid(uint32_t leaf, uint32_t sub, uint32_t r[4])
{
	__asm__ volatile("cpuid"
			 : "=a"(r[0]), "=b"(r[1]), "=c"(r[2]), "=d"(r[3])
			 : "a"(leaf), "c"(sub));
}

int main(void);
int main(void)
{
	bool pvm = cmdline_has("expect-pvm");
	uint32_t r[4];

	CHECK(pvm || cmdline_has("expect-native"));
	cpuid(1, 0, r);
	puts_("cpuid.1: ecx ");
	put_hex(r[2]);
	puts_(" ebx ");
	put_hex(r[1]);
	putc_('\n');
	CHECK(r[2] & (1u << 31)); /* hypervisor */
	CHECK((r[1] >> 24) == 0); /* BSP's initial APIC id */
	if (pvm) {
		CHECK(!(r[2] & (1u << 13))); /* CX16 hidden */
		CHECK(cmdline_has("noxsave"));
		CHECK(cmdline_has("nosmap"));
	} else {
		CHECK(!cmdline_has("noxsave") && !cmdline_has("nosmap"));
	}
	return 0;
}
