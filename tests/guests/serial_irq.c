/* A device interrupt end to end: COM1's transmitter-empty interrupt (IER
 * bit 1, gated by MCR OUT2) raises ISA IRQ 4, which forkd pulses into KVM's
 * irqchip, the IOAPIC routes to a vector, and the LAPIC delivers. Every
 * byte written must bring one interrupt, acknowledged by reading IIR. */
#include "rt/apic.h"
#include "rt/guest.h"

#define COM1	   0x3f8
#define UART_IER   1
#define UART_IIR   2
#define UART_MCR   4
#define IER_THRI   0x02
#define MCR_OUT2   0x08
#define IIR_NONE   0x01
#define IIR_ID	   0x0e
#define IIR_THRI   0x02
#define VEC_COM1   0x34
#define BYTES	   64
#define MAX_CYCLES 10000000000ULL

static volatile unsigned long irqs, thri_seen;

static void on_com1(struct irq_frame *f)
{
	uint8_t iir = inb(COM1 + UART_IIR);

	irqs++;
	if (!(iir & IIR_NONE) && (iir & IIR_ID) == IIR_THRI)
		thri_seen++;
	lapic_eoi();
}

static void wait_irqs(unsigned long n)
{
	uint64_t t0 = rdtsc();

	while (irqs < n) {
		wait_for_irq();
		if (rdtsc() - t0 > MAX_CYCLES) {
			/* Interrupts are off here: printing raises none. */
			puts_("serial_irq: timed out waiting for interrupt ");
			put_dec(n);
			putc_('\n');
			guest_exit(2);
		}
	}
}

int main(void);
int main(void)
{
	static const char msg[] = "serial_irq: one interrupt per byte of this line\n";
	unsigned long i, before;

	idt_init();
	idt_set_handler(VEC_COM1, on_com1);
	pic_mask_all();
	lapic_enable();
	ioapic_route(4, VEC_COM1, (uint8_t)lapic_id());

	/* OUT2 off: the UART's interrupt output is disconnected. */
	outb(COM1 + UART_MCR, 0);
	outb(COM1 + UART_IER, IER_THRI);
	irq_drain();
	CHECK(irqs == 0);
	/* OUT2 on with THR empty: an interrupt at once. */
	outb(COM1 + UART_MCR, MCR_OUT2);
	wait_irqs(1);
	CHECK(thri_seen == 1);

	/* Each byte re-arms THRI; the handler's IIR read acknowledges it. */
	for (i = 0; i < sizeof(msg) - 1; i++) {
		before = irqs;
		outb(COM1, (uint8_t)msg[i]);
		wait_irqs(before + 1);
	}
	puts_("serial_irq: ");
	put_dec(irqs);
	puts_(" interrupts, ");
	put_dec(thri_seen);
	puts_(" with IIR=THRI\n");
	CHECK(irqs == sizeof(msg));
	CHECK(thri_seen == irqs);

	/* IER off: bytes go out with no interrupt. The drain first takes the
	 * interrupt the line above raised while interrupts were off. */
	irq_drain();
	outb(COM1 + UART_IER, 0);
	before = irqs;
	for (i = 0; i < BYTES; i++)
		outb(COM1, (uint8_t)'.');
	outb(COM1, '\n');
	irq_drain();
	CHECK(irqs == before);
	ioapic_mask(4);
	return 0;
}
