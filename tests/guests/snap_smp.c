/* SMP snapshot (run with --vcpus 2): both vCPUs keep running in a child.
 *
 * Before the doorbell the BSP wakes the AP (INIT-SIPI-SIPI); each CPU runs
 * its own periodic LAPIC timer (1 ms). The AP sleeps in `hlt` and counts
 * every wake-up in `ap_loops` and every tick in `ap_ticks`; it answers a
 * "ping" IPI from the BSP with a "pong" IPI carrying the ping's value
 * back. The BSP checks all of that once, rings the doorbell and then waits
 * (in hlt, timer-driven) until vmctl's generation says it runs in a
 * restored child; forkd's pause lands while it waits, with the AP asleep
 * or in its timer handler. In the child the BSP checks that
 *   - the AP's loop counter and tick counter keep advancing (the AP vCPU
 *     runs, its LAPIC timer was restored and fires),
 *   - its own LAPIC timer fires,
 *   - IPIs work both ways: a ping carrying the child's index comes back
 *     from the AP. */
#include "rt/apic.h"
#include "rt/guest.h"
#include "rt/smp.h"

#define VMCTL	       0x610
#define VEC_BSP_TIMER  0x40
#define VEC_AP_TIMER   0x41
#define VEC_PING       0x50
#define VEC_PONG       0x51
#define AFTER	       50
#define TIMER_1MS      62500 /* with divide-by-16 on KVM's 1 GHz APIC bus */
#define MAX_CYCLES     60000000000ULL
#define RESTORE_CYCLES 90000000000ULL

static volatile unsigned long bsp_ticks, ap_ticks, ap_loops;
static volatile uint32_t ping, pong;

static void on_timer(struct irq_frame *f)
{
	if (f->vector == VEC_BSP_TIMER)
		bsp_ticks++;
	else
		ap_ticks++;
	lapic_eoi();
}

/* On the AP: answer with the value the BSP left in `ping`. */
static void on_ping(struct irq_frame *f)
{
	__atomic_store_n(&pong, ping, __ATOMIC_SEQ_CST);
	lapic_write(LAPIC_ICR_HI, 0); /* the BSP's APIC id */
	lapic_write(LAPIC_ICR_LO, VEC_PONG);
	lapic_eoi();
}

static void on_pong(struct irq_frame *f)
{
	lapic_eoi();
}

static void on_spurious(struct irq_frame *f)
{
}

static void on_fault(struct irq_frame *f)
{
	puts_("snap_smp: exception ");
	put_dec(f->vector);
	puts_(" on APIC id ");
	put_dec(lapic_id());
	puts_(" at rip ");
	put_hex(f->rip);
	putc_('\n');
	guest_exit(90);
}

static void timer_start(uint8_t vector)
{
	lapic_write(LAPIC_TM_DIV, 0x3);
	lapic_write(LAPIC_LVT_TM, LAPIC_TM_PERIODIC | vector);
	lapic_write(LAPIC_TM_ICR, TIMER_1MS);
}

static void ap_main(unsigned index)
{
	timer_start(VEC_AP_TIMER);
	for (;;) {
		wait_for_irq();
		__atomic_add_fetch(&ap_loops, 1, __ATOMIC_SEQ_CST);
	}
}

/* BSP: sleep until the counters reach their targets (timer-driven). */
static void wait_counts(unsigned long bsp, unsigned long ap, unsigned long loops, const char *what)
{
	uint64_t t0 = rdtsc();

	while (bsp_ticks < bsp || ap_ticks < ap || ap_loops < loops) {
		wait_for_irq();
		if (rdtsc() - t0 > MAX_CYCLES) {
			puts_("snap_smp: ");
			puts_(what);
			puts_(": counters stuck: BSP ticks ");
			put_dec(bsp_ticks);
			puts_(", AP ticks ");
			put_dec(ap_ticks);
			puts_(", AP loops ");
			put_dec(ap_loops);
			putc_('\n');
			guest_exit(2);
		}
	}
}

/* BSP: send a ping with value v to the AP; wait for its pong. */
static void ping_pong(uint32_t v)
{
	uint64_t t0 = rdtsc();

	pong = 0;
	ping = v;
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	lapic_write(LAPIC_ICR_HI, 1u << 24);
	lapic_write(LAPIC_ICR_LO, VEC_PING);
	while (__atomic_load_n(&pong, __ATOMIC_SEQ_CST) != v) {
		wait_for_irq();
		if (rdtsc() - t0 > MAX_CYCLES) {
			puts_("snap_smp: no pong from the AP\n");
			guest_exit(3);
		}
	}
}

int main(void);
int main(void)
{
	unsigned long b0, a0, l0;
	uint32_t gen, index;
	uint64_t t0;
	unsigned v;

	idt_init();
	for (v = 0; v < 32; v++)
		idt_set_handler(v, on_fault);
	idt_set_handler(VEC_BSP_TIMER, on_timer);
	idt_set_handler(VEC_AP_TIMER, on_timer);
	idt_set_handler(VEC_PING, on_ping);
	idt_set_handler(VEC_PONG, on_pong);
	idt_set_handler(LAPIC_SPURIOUS_VEC, on_spurious);
	pic_mask_all();
	lapic_enable();
	CHECK(smp_cpu_count() == 2);
	CHECK(lapic_id() == 0);
	if (smp_start_ap(1, 1, ap_main)) {
		puts_("snap_smp: the AP did not start\n");
		guest_exit(4);
	}
	timer_start(VEC_BSP_TIMER);
	wait_counts(5, 5, 5, "before the snapshot");
	ping_pong(0x5eed);
	puts_("snap_smp: warm: AP running, both LAPIC timers ticking, IPIs both ways\n");

	outl(VMCTL, 1); /* doorbell */
	t0 = rdtsc();
	while ((gen = inl(VMCTL + 4)) == 0) {
		wait_for_irq();
		if (rdtsc() - t0 > RESTORE_CYCLES) {
			puts_("snap_smp: never restored (run it with forkd snapshot/fork)\n");
			guest_exit(5);
		}
	}
	index = inl(VMCTL + 8);
	b0 = bsp_ticks;
	a0 = ap_ticks;
	l0 = ap_loops;
	wait_counts(b0 + AFTER, a0 + AFTER, l0 + AFTER, "after the restore");
	puts_("snap_smp: child ");
	put_dec(index);
	puts_(" generation ");
	put_dec(gen);
	puts_(": AP loop counter ");
	put_dec(l0);
	puts_(" -> ");
	put_dec(ap_loops);
	puts_(", AP ticks ");
	put_dec(a0);
	puts_(" -> ");
	put_dec(ap_ticks);
	puts_(", BSP ticks ");
	put_dec(b0);
	puts_(" -> ");
	put_dec(bsp_ticks);
	putc_('\n');
	ping_pong(0xc0de0000u | index);
	puts_("snap_smp: child ");
	put_dec(index);
	puts_(": ping ");
	put_hex(0xc0de0000u | index);
	puts_(" came back from the AP\n");
	return 0;
}
