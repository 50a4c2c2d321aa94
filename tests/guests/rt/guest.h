/* Runtime for forkd's freestanding test guests.
 *
 * A guest prints to COM1 and ends with guest_exit(): 0 prints "SUCCESS"
 * and powers off through ACPI S5 (forkd exits 0); anything else prints
 * "FAIL <code>" and resets through the i8042 (forkd exits 4). The harness
 * checks both the console and the VMM's exit status. */
#ifndef FORKD_TEST_GUEST_H
#define FORKD_TEST_GUEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

static inline void outb(uint16_t port, uint8_t v)
{
	__asm__ volatile("outb %0, %1" ::"a"(v), "Nd"(port));
}
static inline uint8_t inb(uint16_t port)
{
	uint8_t v;
	__asm__ volatile("inb %1, %0" : "=a"(v) : "Nd"(port));
	return v;
}
static inline void outl(uint16_t port, uint32_t v)
{
	__asm__ volatile("outl %0, %1" ::"a"(v), "Nd"(port));
}
static inline uint32_t inl(uint16_t port)
{
	uint32_t v;
	__asm__ volatile("inl %1, %0" : "=a"(v) : "Nd"(port));
	return v;
}
static inline uint32_t mmio_read32(uint64_t addr)
{
	return *(volatile uint32_t *)addr;
}
static inline void mmio_write32(uint64_t addr, uint32_t v)
{
	*(volatile uint32_t *)addr = v;
}

void putc_(char c);
void puts_(const char *s);
void put_hex(uint64_t v);
void put_dec(uint64_t v);
void *memset(void *d, int c, size_t n);
void *memcpy(void *d, const void *s, size_t n);
int memcmp(const void *a, const void *b, size_t n);

__attribute__((noreturn)) void guest_exit(int code);
#define CHECK(cond)                                                                                \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			puts_("CHECK failed: " #cond " at line ");                                 \
			put_dec(__LINE__);                                                         \
			putc_('\n');                                                               \
			guest_exit(1);                                                             \
		}                                                                                  \
	} while (0)

/* Interrupts: a 256-entry IDT whose stubs call the registered handler with
 * the vector number and the interrupted frame. */
struct irq_frame {
	uint64_t vector, error, rip, cs, rflags, rsp, ss;
};
typedef void (*irq_handler)(struct irq_frame *f);
void idt_init(void);
void idt_set_handler(unsigned vector, irq_handler h);

#endif
