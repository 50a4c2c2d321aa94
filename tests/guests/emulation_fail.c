/* An instruction KVM-PVM's CPL0 emulator cannot execute and forkd does not
 * assist: `lock cmpxchg16b` (forkd hides CPUID.1:ECX.CX16 so Linux never
 * uses it, but the instruction still exists). On KVM-PVM the vCPU exits
 * with an emulation failure and forkd must stop with status 3, printing
 * the RIP (the symbol emul_fail_insn) and the instruction bytes; the case
 * script checks both. On hardware-assisted KVM the instruction simply runs
 * and the guest checks its effect. */
#include "rt/guest.h"

static volatile uint64_t target[2] __attribute__((aligned(16))) = {1, 2};

int main(void);
int main(void)
{
	uint64_t lo = 1, hi = 2;
	uint8_t zf;

	puts_("emulation_fail: lock cmpxchg16b at CPL0\n");
	__asm__ volatile(".globl emul_fail_insn\n"
			 "emul_fail_insn:\n\t"
			 "lock cmpxchg16b %1\n\t"
			 "sete %0"
			 : "=q"(zf), "+m"(*target), "+a"(lo), "+d"(hi)
			 : "b"(3ULL), "c"(4ULL)
			 : "memory", "cc");
	puts_("emulation_fail: the instruction ran (no KVM-PVM emulator here)\n");
	CHECK(zf);
	CHECK(target[0] == 3 && target[1] == 4);
	return 0;
}
