/* Saving a paused VM into a vmstate file and loading one into a freshly
 * created VM (the snapshot half of the VMM; formats in docs/FORMAT.md). */
#ifndef FORKD_VMM_VM_STATE_H
#define FORKD_VMM_VM_STATE_H

#include "snapshot/vmstate.h"
#include "vmm/vm.h"

/* The machine section: what a VM must be created with to take the rest. */
struct vm_machine {
	uint64_t mem_bytes;
	uint32_t nr_vcpus;
	uint32_t pvm;	     /* taken on a KVM-PVM host */
	uint32_t nr_devices; /* in creation order */
	uint32_t nr_cpuid;
	struct kvm_cpuid_entry2 cpuid[256];
};

/* Write every section for vm, which must be paused (vm_pause()) with its
 * event loop stopped, or never started. */
int vm_state_save(struct vm *vm, struct vmstate_writer *w) __must_check;

/* Parse and check the machine section (sizes, counts). */
int vm_state_machine(const char *name, const struct vmstate *vs, struct vm_machine *m) __must_check;

/* Check that this host's KVM can provide the saved CPUID policy: every
 * feature bit the snapshot's guest saw must be one KVM offers here. */
int vm_state_check_cpuid(struct vm *vm, const struct vm_machine *m) __must_check;

/* Load vs into vm, created with the machine section's RAM size and vCPU
 * count, with the same devices in the same order, its RAM already holding
 * the snapshot's memory. Called before any vCPU runs. */
int vm_state_restore(struct vm *vm, const struct vmstate *vs,
		     const struct vm_machine *m) __must_check;

#endif
