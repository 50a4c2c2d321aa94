/* Interrupt hardware for test guests: the local APIC (xAPIC, MMIO at
 * 0xFEE00000), the IOAPIC at 0xFEC00000, the 8259 PICs and the PIT, as
 * KVM's in-kernel irqchip models them. Intel SDM vol. 3A ch. 11 (APIC),
 * 82093AA datasheet (IOAPIC), 8254 datasheet (PIT). */
#ifndef FORKD_TEST_GUEST_APIC_H
#define FORKD_TEST_GUEST_APIC_H

#include <stdbool.h>
#include <stdint.h>

#define LAPIC_BASE   0xFEE00000ULL
#define LAPIC_ID     0x020
#define LAPIC_VER    0x030
#define LAPIC_TPR    0x080
#define LAPIC_EOI    0x0B0
#define LAPIC_SVR    0x0F0
#define LAPIC_ESR    0x280
#define LAPIC_ICR_LO 0x300
#define LAPIC_ICR_HI 0x310
#define LAPIC_LVT_TM 0x320
#define LAPIC_LVT0   0x350
#define LAPIC_TM_ICR 0x380
#define LAPIC_TM_CCR 0x390
#define LAPIC_TM_DIV 0x3E0

#define LAPIC_LVT_MASKED   (1u << 16)
#define LAPIC_TM_PERIODIC  (1u << 17)
#define LAPIC_ICR_PENDING  (1u << 12)
#define LAPIC_ICR_INIT	   (5u << 8)
#define LAPIC_ICR_STARTUP  (6u << 8)
#define LAPIC_ICR_ASSERT   (1u << 14)
#define LAPIC_ICR_LEVEL	   (1u << 15)
#define LAPIC_ICR_SELF	   (1u << 18)
#define LAPIC_SPURIOUS_VEC 0xFF
/* Lowest usable vector (priority class 2), used by irq_drain(). */
#define IRQ_DRAIN_VEC 0x20

#define IOAPIC_BASE 0xFEC00000ULL
#define IOAPIC_ID   0x00
#define IOAPIC_VER  0x01
#define IOAPIC_RED  0x10 /* + 2 * pin: low word, + 1: high word */

static inline uint32_t lapic_read(unsigned reg)
{
	return *(volatile uint32_t *)(LAPIC_BASE + reg);
}

static inline void lapic_write(unsigned reg, uint32_t v)
{
	*(volatile uint32_t *)(LAPIC_BASE + reg) = v;
}

static inline uint64_t rdtsc(void)
{
	uint32_t lo, hi;

	__asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
	return ((uint64_t)hi << 32) | lo;
}

static inline void cpu_relax(void)
{
	__asm__ volatile("pause" ::: "memory");
}

/* Wait for an interrupt with interrupts enabled; returns with them off.
 * The STI shadow keeps an interrupt from slipping in between STI and HLT. */
static inline void wait_for_irq(void)
{
	__asm__ volatile("sti; hlt; cli" ::: "memory");
}

/* Software-enable this CPU's LAPIC (spurious vector 0xFF) with TPR 0. */
void lapic_enable(void);
unsigned lapic_id(void);
void lapic_eoi(void);
/* Fixed IPI to this CPU. */
void lapic_self_ipi(uint8_t vector);

/* Let every interrupt already pending at this LAPIC run its handler, and
 * return with interrupts off. A bare "sti; nop; cli" is not enough: KVM-PVM
 * emulates a stretch of CPL0 instructions before it injects anything. The
 * drain sends itself a self-IPI on the lowest-priority vector and waits for
 * it; every pending vector of a higher class is delivered first (SDM
 * 11.8.3). Use vectors >= 0x30 for the interrupts being checked. */
void irq_drain(void);

uint32_t ioapic_read(unsigned reg);
void ioapic_write(unsigned reg, uint32_t v);
/* Route IOAPIC `pin` to `vector` on the LAPIC with id `dest` (fixed
 * delivery, physical destination, active high, edge). */
void ioapic_route(unsigned pin, uint8_t vector, uint8_t dest);
void ioapic_mask(unsigned pin);

/* Mask every line of both 8259 PICs, so nothing arrives as ExtINT. */
void pic_mask_all(void);

/* PIT channel 0 in mode 2 (rate generator) at `hz` (19..1193182). */
void pit_start(unsigned hz);
/* PIT channel 0 in mode 0 with count 0: one terminal count ~55 ms later,
 * then no more interrupts. Stops a periodic channel 0. */
void pit_stop(void);

#endif
