/* Timer interrupts through KVM's in-kernel irqchip: the PIT (channel 0,
 * periodic) via the IOAPIC, and the LAPIC timer in periodic mode. The 8259
 * PICs are masked so nothing arrives as ExtINT.
 *
 * Where the PIT arrives: forkd installs no GSI routing, so KVM's default
 * table applies, where GSI n goes to IOAPIC pin n (and to the PIC); the PIT
 * raises GSI 0, hence IOAPIC pin 0, as forkd's MP table states (ISA IRQ 0
 * -> pin 0, no override to pin 2 as ACPI firmware usually declares). Both
 * pins are programmed with distinct vectors and the test checks that the
 * ticks come on pin 0 only. */
#include "rt/apic.h"
#include "rt/guest.h"

#define VEC_PIN0  0x30
#define VEC_PIN2  0x32
#define VEC_LAPIC 0x40
#define TICKS	  100
/* Generous: ~8 s at 2.5 GHz. KVM-PVM emulates every handler at CPL0. */
#define MAX_CYCLES 20000000000ULL

static volatile unsigned long pin0_ticks, pin2_ticks, lapic_ticks;

static void on_irq(struct irq_frame *f)
{
	if (f->vector == VEC_PIN0)
		pin0_ticks++;
	else if (f->vector == VEC_PIN2)
		pin2_ticks++;
	else
		lapic_ticks++;
	lapic_eoi();
}

static void on_spurious(struct irq_frame *f)
{
	/* No EOI for the spurious vector (SDM 11.9). */
}

/* Wait until *counter reaches n; returns the TSC cycles it took. */
static uint64_t wait_ticks(volatile unsigned long *counter, unsigned long n)
{
	uint64_t t0 = rdtsc(), t;

	while (*counter < n) {
		wait_for_irq();
		t = rdtsc() - t0;
		if (t > MAX_CYCLES) {
			puts_("timer_irq: timed out after ");
			put_dec(*counter);
			puts_(" ticks\n");
			guest_exit(2);
		}
	}
	return rdtsc() - t0;
}

static void lapic_timer_start(uint32_t count)
{
	lapic_write(LAPIC_TM_DIV, 0x3); /* divide by 16 */
	lapic_write(LAPIC_LVT_TM, LAPIC_TM_PERIODIC | VEC_LAPIC);
	lapic_write(LAPIC_TM_ICR, count);
}

static void lapic_timer_stop(void)
{
	lapic_write(LAPIC_LVT_TM, LAPIC_LVT_MASKED | VEC_LAPIC);
	lapic_write(LAPIC_TM_ICR, 0);
}

int main(void);
int main(void)
{
	unsigned id;
	uint64_t cyc;

	idt_init();
	idt_set_handler(VEC_PIN0, on_irq);
	idt_set_handler(VEC_PIN2, on_irq);
	idt_set_handler(VEC_LAPIC, on_irq);
	idt_set_handler(LAPIC_SPURIOUS_VEC, on_spurious);
	pic_mask_all();
	lapic_enable();
	id = lapic_id();

	/* 1. PIT at 1 kHz through the IOAPIC. */
	ioapic_route(0, VEC_PIN0, (uint8_t)id);
	ioapic_route(2, VEC_PIN2, (uint8_t)id);
	pit_start(1000);
	cyc = wait_ticks(&pin0_ticks, TICKS);
	pit_stop();
	ioapic_mask(0);
	ioapic_mask(2);
	puts_("timer_irq: PIT: ");
	put_dec(pin0_ticks);
	puts_(" ticks on IOAPIC pin 0, ");
	put_dec(pin2_ticks);
	puts_(" on pin 2, in ");
	put_dec(cyc / 1000000);
	puts_(" M TSC cycles\n");
	CHECK(pin0_ticks >= TICKS);
	CHECK(pin2_ticks == 0);

	/* 2. LAPIC timer, periodic: 62500 x 16 bus cycles = 1 ms with KVM's
	 * 1 GHz APIC bus. */
	lapic_timer_start(62500);
	cyc = wait_ticks(&lapic_ticks, TICKS);
	lapic_timer_stop();
	puts_("timer_irq: LAPIC timer: ");
	put_dec(lapic_ticks);
	puts_(" ticks in ");
	put_dec(cyc / 1000000);
	puts_(" M TSC cycles\n");
	CHECK(lapic_ticks >= TICKS);

	/* 3. Both at once, at the same nominal rate: neither starves the
	 * other, and their counts agree within a factor of two. */
	pin0_ticks = lapic_ticks = 0;
	ioapic_route(0, VEC_PIN0, (uint8_t)id);
	pit_start(1000);
	lapic_timer_start(62500);
	wait_ticks(&lapic_ticks, TICKS);
	lapic_timer_stop();
	pit_stop();
	ioapic_mask(0);
	puts_("timer_irq: together: PIT ");
	put_dec(pin0_ticks);
	puts_(", LAPIC ");
	put_dec(lapic_ticks);
	putc_('\n');
	CHECK(pin0_ticks * 2 >= lapic_ticks && lapic_ticks * 2 >= pin0_ticks);
	return 0;
}
