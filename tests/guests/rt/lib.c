#include "rt/guest.h"

#define COM1 0x3f8

void putc_(char c)
{
	while (!(inb(COM1 + 5) & 0x20))
		;
	outb(COM1, (uint8_t)c);
}

void puts_(const char *s)
{
	while (*s)
		putc_(*s++);
}

void put_hex(uint64_t v)
{
	static const char digits[] = "0123456789abcdef";
	int i;

	puts_("0x");
	for (i = 60; i >= 0; i -= 4)
		putc_(digits[(v >> i) & 0xf]);
}

void put_dec(uint64_t v)
{
	char buf[21];
	int i = 20;

	buf[i] = 0;
	do {
		buf[--i] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	puts_(&buf[i]);
}

void *memset(void *d, int c, size_t n)
{
	uint8_t *p = d;

	while (n--)
		*p++ = (uint8_t)c;
	return d;
}

void *memcpy(void *d, const void *s, size_t n)
{
	uint8_t *p = d;
	const uint8_t *q = s;

	while (n--)
		*p++ = *q++;
	return d;
}

int memcmp(const void *a, const void *b, size_t n)
{
	const uint8_t *p = a, *q = b;

	for (; n; n--, p++, q++)
		if (*p != *q)
			return *p - *q;
	return 0;
}

void guest_exit(int code)
{
	if (code == 0) {
		puts_("SUCCESS\n");
	} else {
		puts_("FAIL ");
		put_dec((uint64_t)code);
		putc_('\n');
	}
	/* Success: ACPI S5 through the sleep control register (SLP_TYP 5,
	 * SLP_EN): forkd exits 0. Failure: pulse the i8042 reset line, so forkd
	 * exits 4 and a failed guest can never pass for a clean one. */
	if (code == 0)
		outb(0x600, (5 << 2) | (1 << 5));
	else
		outb(0x64, 0xfe);
	for (;;)
		__asm__ volatile("cli; hlt");
}

/* ---- IDT ---- */
struct idt_entry {
	uint16_t off0, sel;
	uint8_t ist, type;
	uint16_t off1;
	uint32_t off2, zero;
} __attribute__((packed));

static struct idt_entry idt[256] __attribute__((aligned(16)));
static irq_handler handlers[256];
extern uint64_t irq_stubs[256];

void idt_set_handler(unsigned vector, irq_handler h)
{
	handlers[vector & 0xff] = h;
}

void irq_dispatch(struct irq_frame *f);
void irq_dispatch(struct irq_frame *f)
{
	irq_handler h = handlers[f->vector & 0xff];

	if (h) {
		h(f);
		return;
	}
	puts_("unexpected exception/interrupt ");
	put_dec(f->vector);
	puts_(" at rip ");
	put_hex(f->rip);
	puts_(" error ");
	put_hex(f->error);
	putc_('\n');
	guest_exit(99);
}

void idt_init(void)
{
	struct {
		uint16_t limit;
		uint64_t base;
	} __attribute__((packed)) idtr = {sizeof(idt) - 1, (uint64_t)idt};
	uint16_t cs;
	int i;

	__asm__ volatile("mov %%cs, %0" : "=r"(cs));
	for (i = 0; i < 256; i++) {
		uint64_t a = irq_stubs[i];

		idt[i].off0 = (uint16_t)a;
		idt[i].sel = cs;
		idt[i].ist = 0;
		idt[i].type = 0xee; /* present, DPL 3 (int3 from user mode), interrupt gate */
		idt[i].off1 = (uint16_t)(a >> 16);
		idt[i].off2 = (uint32_t)(a >> 32);
		idt[i].zero = 0;
	}
	__asm__ volatile("lidt %0" ::"m"(idtr));
}
