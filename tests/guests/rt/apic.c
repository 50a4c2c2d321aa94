#include "rt/apic.h"

#include "rt/guest.h"

#define PIT_HZ	 1193182u
#define PIT_CH0	 0x40
#define PIT_CMD	 0x43
#define PIC1_DAT 0x21
#define PIC2_DAT 0xA1

void lapic_enable(void)
{
	lapic_write(LAPIC_TPR, 0);
	lapic_write(LAPIC_SVR, 0x100 | LAPIC_SPURIOUS_VEC);
}

unsigned lapic_id(void)
{
	return lapic_read(LAPIC_ID) >> 24;
}

void lapic_eoi(void)
{
	lapic_write(LAPIC_EOI, 0);
}

void lapic_self_ipi(uint8_t vector)
{
	lapic_write(LAPIC_ICR_HI, 0);
	lapic_write(LAPIC_ICR_LO, LAPIC_ICR_SELF | vector);
}

static volatile bool drained;

static void on_drain(struct irq_frame *f)
{
	drained = true;
	lapic_eoi();
}

void irq_drain(void)
{
	__asm__ volatile("cli");
	idt_set_handler(IRQ_DRAIN_VEC, on_drain);
	drained = false;
	lapic_self_ipi(IRQ_DRAIN_VEC);
	while (!drained)
		wait_for_irq();
}

uint32_t ioapic_read(unsigned reg)
{
	mmio_write32(IOAPIC_BASE, reg);
	return mmio_read32(IOAPIC_BASE + 0x10);
}

void ioapic_write(unsigned reg, uint32_t v)
{
	mmio_write32(IOAPIC_BASE, reg);
	mmio_write32(IOAPIC_BASE + 0x10, v);
}

void ioapic_route(unsigned pin, uint8_t vector, uint8_t dest)
{
	/* High word first: the entry is unmasked only by the low-word write. */
	ioapic_write(IOAPIC_RED + 2 * pin + 1, (uint32_t)dest << 24);
	ioapic_write(IOAPIC_RED + 2 * pin, vector);
}

void ioapic_mask(unsigned pin)
{
	ioapic_write(IOAPIC_RED + 2 * pin, 1u << 16);
}

void pic_mask_all(void)
{
	outb(PIC1_DAT, 0xff);
	outb(PIC2_DAT, 0xff);
}

void pit_start(unsigned hz)
{
	unsigned div = PIT_HZ / hz;

	outb(PIT_CMD, 0x34); /* channel 0, lobyte/hibyte, mode 2, binary */
	outb(PIT_CH0, (uint8_t)div);
	outb(PIT_CH0, (uint8_t)(div >> 8));
}

void pit_stop(void)
{
	outb(PIT_CMD, 0x30); /* channel 0, lobyte/hibyte, mode 0 */
	outb(PIT_CH0, 0);
	outb(PIT_CH0, 0);
}
