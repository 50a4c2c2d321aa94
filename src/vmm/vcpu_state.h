/* A vCPU's complete KVM state, for snapshots.
 *
 * vcpu_state_save() may only run while the vCPU is paused at a clean
 * boundary (no PIO/MMIO exit half-done: see vm_pause()); both functions
 * must be called on the vCPU's own thread or while it is not running. */
#ifndef FORKD_VMM_VCPU_STATE_H
#define FORKD_VMM_VCPU_STATE_H

#include <linux/kvm.h>
#include <stdint.h>

#include "vmm/vm.h"

#define VCPU_STATE_MAX_MSRS 256

struct vcpu_state {
	struct kvm_regs regs;
	struct kvm_sregs sregs;
	struct kvm_xsave xsave; /* legacy 4 KiB area: x87, SSE, and any XSAVE state */
	struct kvm_xcrs xcrs;
	struct kvm_lapic_state lapic;
	struct kvm_vcpu_events events;
	struct kvm_mp_state mp_state;
	struct kvm_debugregs debugregs;
	uint32_t tsc_khz;
	uint32_t nr_msrs;
	struct kvm_msr_entry msrs[VCPU_STATE_MAX_MSRS];
};

/* The MSRs to save: every index KVM lists that reads back on this vCPU.
 * Filled once per VM by vcpu_state_msr_list(). */
int vcpu_state_msr_list(struct vm *vm, uint32_t *indices, uint32_t *nr) __must_check;

int vcpu_state_save(struct vcpu *vcpu, const uint32_t *msr_indices, uint32_t nr_msrs,
		    struct vcpu_state *st) __must_check;
/* Validates st (counts, sizes) before any ioctl. */
int vcpu_state_restore(struct vcpu *vcpu, const struct vcpu_state *st) __must_check;

#endif
