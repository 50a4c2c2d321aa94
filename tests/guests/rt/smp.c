#include "rt/smp.h"

#include "rt/apic.h"
#include "rt/guest.h"

#define AP_STACK_SIZE 16384
/* Waits count TSC cycles as if the TSC ran at 3 GHz: on slower TSCs they
 * last longer than asked, never shorter (only minimums matter here). */
#define US_CYCLES 3000ULL

extern const char smp_tramp_start[], smp_tramp_end[];
extern const char smp_tramp_cr3[], smp_tramp_stack[], smp_tramp_entry[];

static uint8_t ap_stacks[SMP_MAX_CPUS][AP_STACK_SIZE] __attribute__((aligned(16)));
static struct {
	uint16_t limit;
	uint64_t base;
} __attribute__((packed)) bsp_idtr;
static volatile smp_ap_fn ap_fn;
static volatile unsigned ap_index;
static volatile int ap_started;

static void tramp_set(const char *field, uint64_t v)
{
	*(volatile uint64_t *)(SMP_TRAMPOLINE_ADDR + (uint64_t)(field - smp_tramp_start)) = v;
}

static void delay_us(uint64_t us)
{
	uint64_t t0 = rdtsc();

	while (rdtsc() - t0 < us * US_CYCLES)
		cpu_relax();
}

static void send_ipi(unsigned apic_id, uint32_t icr)
{
	lapic_write(LAPIC_ICR_HI, apic_id << 24);
	lapic_write(LAPIC_ICR_LO, icr);
	while (lapic_read(LAPIC_ICR_LO) & LAPIC_ICR_PENDING)
		cpu_relax();
}

/* First C code on the AP: 64-bit, BSP's page tables, own stack. */
__attribute__((noreturn)) void smp_ap_entry(void);
void smp_ap_entry(void)
{
	smp_ap_fn fn = ap_fn;
	unsigned index = ap_index;

	__asm__ volatile("lidt %0" ::"m"(bsp_idtr));
	lapic_enable();
	__atomic_store_n(&ap_started, 1, __ATOMIC_SEQ_CST);
	fn(index);
	for (;;)
		__asm__ volatile("cli; hlt");
}

unsigned smp_cpu_count(void)
{
	uint32_t a, b, c, d;

	__asm__ volatile("cpuid" : "=a"(a), "=b"(b), "=c"(c), "=d"(d) : "a"(1), "c"(0));
	if (!(d & (1u << 28)))
		return 1;
	return (b >> 16) & 0xff;
}

int smp_start_ap(unsigned apic_id, unsigned index, smp_ap_fn fn)
{
	uint64_t cr3, t0;

	if (index >= SMP_MAX_CPUS)
		return -1;
	__asm__ volatile("sidt %0" : "=m"(bsp_idtr));
	__asm__ volatile("mov %%cr3, %0" : "=r"(cr3));
	memcpy((void *)SMP_TRAMPOLINE_ADDR, smp_tramp_start,
	       (size_t)(smp_tramp_end - smp_tramp_start));
	tramp_set(smp_tramp_cr3, cr3);
	/* Entered by a jump, as if called: RSP + 8 is 16-byte aligned. */
	tramp_set(smp_tramp_stack, (uint64_t)(ap_stacks[index] + AP_STACK_SIZE) - 8);
	tramp_set(smp_tramp_entry, (uint64_t)smp_ap_entry);
	ap_fn = fn;
	ap_index = index;
	ap_started = 0;
	__atomic_thread_fence(__ATOMIC_SEQ_CST);

	/* INIT (assert, then de-assert), 10 ms, then two STARTUPs 200 us
	 * apart, whose vector is the trampoline's page number. */
	send_ipi(apic_id, LAPIC_ICR_INIT | LAPIC_ICR_LEVEL | LAPIC_ICR_ASSERT);
	send_ipi(apic_id, LAPIC_ICR_INIT | LAPIC_ICR_LEVEL);
	delay_us(10000);
	send_ipi(apic_id, LAPIC_ICR_STARTUP | (uint32_t)(SMP_TRAMPOLINE_ADDR >> 12));
	delay_us(200);
	if (!__atomic_load_n(&ap_started, __ATOMIC_SEQ_CST))
		send_ipi(apic_id, LAPIC_ICR_STARTUP | (uint32_t)(SMP_TRAMPOLINE_ADDR >> 12));

	t0 = rdtsc();
	while (!__atomic_load_n(&ap_started, __ATOMIC_SEQ_CST)) {
		if (rdtsc() - t0 > 1000000 * US_CYCLES)
			return -1;
		cpu_relax();
	}
	return 0;
}
