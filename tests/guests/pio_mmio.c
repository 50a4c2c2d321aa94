/* Port I/O and MMIO exits: devices forkd emulates in user space (COM1),
 * addresses nobody claims (all-ones reads, dropped writes), string I/O
 * (one exit carrying several items), and the LAPIC and IOAPIC that KVM
 * emulates in the kernel. */
#include "rt/apic.h"
#include "rt/guest.h"

#define COM1_SCR      0x3ff
#define COM1_LSR      0x3fd
#define LSR_IDLE      0x60  /* THRE | TEMT: transmitter empty */
#define UNCLAIMED_PIO 0x2f8 /* COM2: no device there */

#define VIRTIO_SLOT0   0xD0000000ULL
#define VIRTIO_MAGIC   0x74726976u   /* "virt" */
#define UNCLAIMED_MMIO 0xD00F0000ULL /* far beyond the last virtio slot */
#define VIRTIO_RNG_ID  4

static inline uint16_t inw(uint16_t port)
{
	uint16_t v;
	__asm__ volatile("inw %1, %0" : "=a"(v) : "Nd"(port));
	return v;
}

static void check_pio(void)
{
	static const uint8_t pattern[] = {0x00, 0xa5, 0x5a, 0xff, 0x01};
	uint8_t buf[4] = {0};
	unsigned i;

	for (i = 0; i < sizeof(pattern); i++) {
		outb(COM1_SCR, pattern[i]);
		CHECK(inb(COM1_SCR) == pattern[i]);
	}
	CHECK((inb(COM1_LSR) & LSR_IDLE) == LSR_IDLE);

	/* rep outsb/insb: one exit, count > 1, each item dispatched. */
	{
		const uint8_t out[3] = {0x11, 0x22, 0x33};
		const void *src = out;
		void *dst = buf;
		unsigned long n = 3;

		__asm__ volatile("rep outsb" : "+S"(src), "+c"(n) : "d"(COM1_SCR) : "memory");
		CHECK(inb(COM1_SCR) == 0x33);
		n = 4;
		__asm__ volatile("rep insb" : "+D"(dst), "+c"(n) : "d"(COM1_LSR) : "memory");
		for (i = 0; i < 4; i++)
			CHECK((buf[i] & LSR_IDLE) == LSR_IDLE);
	}

	CHECK(inb(UNCLAIMED_PIO) == 0xff);
	CHECK(inw(UNCLAIMED_PIO) == 0xffff);
	CHECK(inl(UNCLAIMED_PIO) == 0xffffffffu);
	outb(UNCLAIMED_PIO, 0);
	CHECK(inb(UNCLAIMED_PIO) == 0xff);
	/* The serial device claims 8 ports: the one past its end is free. */
	CHECK(inb(0x3f8 + 8) == 0xff);
	puts_("pio_mmio: PIO ok (scratch, LSR, string I/O, unclaimed ports)\n");
}

static void check_mmio(void)
{
	volatile uint8_t *b = (volatile uint8_t *)UNCLAIMED_MMIO;
	volatile uint16_t *w = (volatile uint16_t *)UNCLAIMED_MMIO;
	volatile uint64_t *q = (volatile uint64_t *)UNCLAIMED_MMIO;
	uint32_t magic;

	CHECK(*b == 0xff);
	CHECK(*w == 0xffff);
	CHECK(mmio_read32(UNCLAIMED_MMIO) == 0xffffffffu);
	CHECK(*q == ~0ULL);
	mmio_write32(UNCLAIMED_MMIO, 0x12345678);
	*q = 0;
	CHECK(mmio_read32(UNCLAIMED_MMIO) == 0xffffffffu);

	/* Slot 0 holds the default virtio-rng unless the VM was started with
	 * --no-rng; either way the read is safe. */
	magic = mmio_read32(VIRTIO_SLOT0);
	if (magic == VIRTIO_MAGIC) {
		CHECK(mmio_read32(VIRTIO_SLOT0 + 0x004) == 2); /* version: modern */
		CHECK(mmio_read32(VIRTIO_SLOT0 + 0x008) == VIRTIO_RNG_ID);
		puts_("pio_mmio: virtio-rng at slot 0\n");
	} else {
		CHECK(magic == 0xffffffffu);
		puts_("pio_mmio: no device at virtio slot 0\n");
	}
	puts_("pio_mmio: user-space MMIO ok (unclaimed reads all-ones, writes dropped)\n");
}

static void check_irqchip(void)
{
	uint32_t ver = lapic_read(LAPIC_VER), iover;

	/* BSP: APIC id 0 (the MP table says so); KVM's LAPIC is version 0x14
	 * with 6 or 7 LVT entries. */
	CHECK(lapic_id() == 0);
	CHECK((ver & 0xff) == 0x14);
	CHECK(((ver >> 16) & 0xff) >= 5);
	lapic_write(LAPIC_TPR, 0x20);
	CHECK(lapic_read(LAPIC_TPR) == 0x20);
	lapic_write(LAPIC_TPR, 0);

	/* IOAPIC: 24 pins (max redirection entry 23), version 0x11; a
	 * redirection entry reads back what was written. */
	iover = ioapic_read(IOAPIC_VER);
	CHECK((iover & 0xff) == 0x11);
	CHECK(((iover >> 16) & 0xff) == 23);
	ioapic_write(IOAPIC_RED + 2 * 9, (1u << 16) | 0x49);
	CHECK(ioapic_read(IOAPIC_RED + 2 * 9) == ((1u << 16) | 0x49));
	puts_("pio_mmio: LAPIC ver ");
	put_hex(ver);
	puts_(", IOAPIC ver ");
	put_hex(iover);
	putc_('\n');
}

int main(void);
int main(void)
{
	check_pio();
	check_mmio();
	check_irqchip();
	return 0;
}
