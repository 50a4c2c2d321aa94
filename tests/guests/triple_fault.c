/* A guest that triple-faults: with an empty IDT (limit 0) the #UD from ud2
 * cannot be delivered (#GP), nor can the #GP (#DF), nor the #DF: the CPU
 * shuts down and forkd must stop with status 2. The case script checks the
 * status; reaching guest_exit() is a failure.
 * (Not `int $N`: KVM-PVM's CPL0 emulator rejects software interrupts,
 * which would make this an emulation failure instead.) */
#include "rt/guest.h"

int main(void);
int main(void)
{
	struct {
		uint16_t limit;
		uint64_t base;
	} __attribute__((packed)) idtr = {0, 0};

	puts_("triple_fault: loading an empty IDT, then ud2\n");
	__asm__ volatile("lidt %0\n\t"
			 "ud2" ::"m"(idtr));
	puts_("triple_fault: still running after ud2\n");
	return 1;
}
