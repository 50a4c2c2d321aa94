/* The smallest useful guest: console output, an exception handled through
 * the IDT (int3 at CPL0, which KVM-PVM needs forkd to assist), clean exit. */
#include "rt/guest.h"

static volatile int bp_hits;

static void on_bp(struct irq_frame *f)
{
	bp_hits++;
}

int main(void);
int main(void)
{
	puts_("smoke: hello from the guest\n");
	idt_init();
	idt_set_handler(3, on_bp);
	__asm__ volatile("int3");
	__asm__ volatile("int3");
	CHECK(bp_hits == 2);
	puts_("smoke: int3 handled twice\n");
	return 0;
}
