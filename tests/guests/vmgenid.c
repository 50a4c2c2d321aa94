/* The VM generation ID (devices/vmgenid.h) as a guest sees it.
 *
 * The guest routes IOAPIC pin 16 (the Generic Event Device's GSI in the
 * DSDT) to a vector, prints the 16-byte ID at 0xFF000, and rings the warm
 * doorbell (snapshot point). A restored child then lets every pending
 * interrupt in (irq_drain) and prints the ID again with the number of
 * notifications it took:
 *   vmgenid: boot id <hi><lo>
 *   vmgenid: child <index> id <hi><lo> notified <n>
 * The case script (tests/vmm/cases/vmgenid.sh) checks that each child has
 * a new ID, unlike the parent's and its siblings', and one notification;
 * and that a snapshot made with --no-vmgenid gives neither. */
#include "rt/apic.h"
#include "rt/guest.h"

#define VMCTL	       0x610
#define VMGENID	       0xFF000ULL
#define VMGENID_GSI    16
#define VEC_GED	       0x50
#define RESTORE_CYCLES 90000000000ULL

static volatile unsigned notified;

static void on_ged(struct irq_frame *f)
{
	notified++;
	lapic_eoi();
}

static void on_spurious(struct irq_frame *f)
{
}

static void print_id(void)
{
	const volatile uint64_t *id = (const volatile uint64_t *)VMGENID;

	put_hex(id[1]);
	put_hex(id[0]);
}

int main(void);
int main(void)
{
	uint64_t t0;

	idt_init();
	idt_set_handler(VEC_GED, on_ged);
	idt_set_handler(LAPIC_SPURIOUS_VEC, on_spurious);
	pic_mask_all();
	lapic_enable();
	ioapic_route(VMGENID_GSI, VEC_GED, (uint8_t)lapic_id());
	puts_("vmgenid: boot id ");
	print_id();
	putc_('\n');
	outl(VMCTL, 1); /* doorbell: snapshot here */
	/* The VMM pauses the vCPU some time after the doorbell: spin until
	 * this runs in a restored child (generation 1). */
	t0 = rdtsc();
	while (inl(VMCTL + 4) == 0) {
		if (rdtsc() - t0 > RESTORE_CYCLES) {
			puts_("vmgenid: not restored\n");
			return 1;
		}
		cpu_relax();
	}
	irq_drain();
	puts_("vmgenid: child ");
	put_dec(inl(VMCTL + 8));
	puts_(" id ");
	print_id();
	puts_(" notified ");
	put_dec(notified);
	putc_('\n');
	return 0;
}
