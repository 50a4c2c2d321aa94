/* Starting application processors (APs) in a test guest.
 *
 * An AP wakes in real mode at the SIPI vector page (Intel SDM vol. 3A
 * 9.4.4, INIT-SIPI-SIPI). smp_start_ap() copies a trampoline to
 * SMP_TRAMPOLINE_ADDR (free in forkd's low-memory layout, src/vmm/boot.h),
 * which goes through protected mode into long mode on the BSP's page
 * tables (CR3), then runs the caller's function on a stack of its own with
 * the BSP's IDT and its LAPIC enabled. On KVM-PVM the trampoline runs
 * emulated, like all CPL0 code; it is a few dozen instructions. */
#ifndef FORKD_TEST_GUEST_SMP_H
#define FORKD_TEST_GUEST_SMP_H

#include <stdint.h>

#define SMP_TRAMPOLINE_ADDR 0x10000ULL
#define SMP_MAX_CPUS	    8

typedef void (*smp_ap_fn)(unsigned index);

/* Logical processors in the package: CPUID.1:EBX[23:16] when CPUID.1:EDX.HTT
 * is set (forkd puts the vCPU count there), else 1. */
unsigned smp_cpu_count(void);

/* From the BSP, with its IDT loaded: wake the AP whose APIC id is
 * `apic_id` and make it run fn(index), then halt forever if fn returns.
 * Returns 0 once the AP runs C code, -1 if it did not within 3e9 TSC
 * cycles (1 to 3 s). One AP at a time; index < SMP_MAX_CPUS. */
int smp_start_ap(unsigned apic_id, unsigned index, smp_ap_fn fn);

#endif
