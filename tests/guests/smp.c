/* Two or more vCPUs (run with --vcpus 2): the BSP wakes each AP with
 * INIT-SIPI-SIPI through its LAPIC's ICR; the AP comes up through a
 * real-mode trampoline (rt/smp.c), increments a shared counter with a
 * locked instruction and records its APIC id. Every CPU then waits for all
 * the others, so each one sees that all ran: the counter equals the CPU
 * count and the APIC ids are distinct. Finally every CPU runs a locked
 * increment loop concurrently, checking that no update is lost. */
#include "rt/apic.h"
#include "rt/guest.h"
#include "rt/smp.h"

#define MAX_CYCLES 10000000000ULL
#define INCREMENTS 2000

static volatile unsigned arrived, verified, go, done;
static volatile unsigned apic_ids[SMP_MAX_CPUS];
static volatile uint64_t shared;
static unsigned ncpus;

static void bounded_wait(volatile unsigned *v, unsigned want)
{
	uint64_t t0 = rdtsc();

	while (__atomic_load_n(v, __ATOMIC_SEQ_CST) < want) {
		if (rdtsc() - t0 > MAX_CYCLES) {
			puts_("smp: timed out waiting for the other CPUs\n");
			guest_exit(2);
		}
		cpu_relax();
	}
}

static bool ids_distinct(void)
{
	unsigned i, j;

	for (i = 0; i < ncpus; i++)
		for (j = i + 1; j < ncpus; j++)
			if (apic_ids[i] == apic_ids[j])
				return false;
	return true;
}

/* Every CPU, BSP included: check in, then see that everyone did. */
static void check_in(unsigned index)
{
	apic_ids[index] = lapic_id();
	__asm__ volatile("lock incl %0" : "+m"(arrived)::"memory");
	bounded_wait(&arrived, ncpus);
	if (ids_distinct())
		__atomic_add_fetch(&verified, 1, __ATOMIC_SEQ_CST);
}

static void hammer(void)
{
	unsigned i;

	for (i = 0; i < INCREMENTS; i++)
		__asm__ volatile("lock addq $1, %0" : "+m"(shared)::"memory");
	__atomic_add_fetch(&done, 1, __ATOMIC_SEQ_CST);
}

static void ap_main(unsigned index)
{
	check_in(index);
	bounded_wait(&go, 1);
	hammer();
}

int main(void);
int main(void)
{
	unsigned i;

	idt_init();
	pic_mask_all();
	lapic_enable();
	ncpus = smp_cpu_count();
	puts_("smp: ");
	put_dec(ncpus);
	puts_(" CPUs, BSP APIC id ");
	put_dec(lapic_id());
	putc_('\n');
	CHECK(ncpus >= 2 && ncpus <= SMP_MAX_CPUS);

	/* forkd numbers APIC ids 0..n-1 (its MP table and CPUID agree). */
	for (i = 1; i < ncpus; i++) {
		if (smp_start_ap(i, i, ap_main)) {
			puts_("smp: AP ");
			put_dec(i);
			puts_(" did not start\n");
			guest_exit(3);
		}
		puts_("smp: AP ");
		put_dec(i);
		puts_(" started\n");
	}
	check_in(0);
	bounded_wait(&verified, ncpus);
	CHECK(arrived == ncpus);
	for (i = 0; i < ncpus; i++) {
		puts_("smp: CPU ");
		put_dec(i);
		puts_(" has APIC id ");
		put_dec(apic_ids[i]);
		putc_('\n');
	}
	CHECK(ids_distinct());

	__atomic_store_n(&go, 1, __ATOMIC_SEQ_CST);
	hammer();
	bounded_wait(&done, ncpus);
	puts_("smp: shared counter ");
	put_dec(shared);
	putc_('\n');
	CHECK(shared == (uint64_t)ncpus * INCREMENTS);
	return 0;
}
