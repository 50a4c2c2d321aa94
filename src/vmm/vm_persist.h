/* The VM's persistence: a paused VM's state as typed sections, and those
 * sections loaded into a freshly created VM. Where the sections are kept
 * is not the VMM's business: the caller passes a sink and a source (a
 * snapshot's vmstate file, snapshot/vmstate.h, provides both; section
 * payloads are drawn in docs/FORMAT.md). */
#ifndef FORKD_VMM_VM_PERSIST_H
#define FORKD_VMM_VM_PERSIST_H

#include <stdint.h>

#include "vmm/vm.h"

enum vm_section_type {
	VM_SECTION_MACHINE = 1, /* RAM size, vCPU count, host kind, CPUID policy */
	VM_SECTION_VCPU = 2,	/* one per vCPU */
	VM_SECTION_IRQCHIP = 3, /* PIC master, PIC slave, IOAPIC */
	VM_SECTION_PIT = 4,
	VM_SECTION_CLOCK = 5,  /* kvmclock */
	VM_SECTION_DEVICE = 6, /* one per device, in creation order */
};

/* One section: type, instance (vCPU index, device slot; 0 otherwise) and
 * payload. Payloads from a source are untrusted: every length is checked
 * here before a byte is used. */
struct vm_section {
	uint32_t type, instance;
	uint64_t len;
	const uint8_t *data;
};

/* Where saved sections go; put() copies or writes the payload at once
 * and remembers its own errors. */
struct vm_section_sink {
	void *ctx;
	void (*put)(void *ctx, uint32_t type, uint32_t instance, const void *data, uint64_t len);
};

/* Where sections come from: the section of that type and instance, or
 * NULL. */
struct vm_section_source {
	const void *ctx;
	const struct vm_section *(*find)(const void *ctx, uint32_t type, uint32_t instance);
};

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
int vm_persist_save(struct vm *vm, const struct vm_section_sink *out) __must_check;

/* Parse and check the machine section (sizes, counts). */
int vm_persist_machine(const char *name, const struct vm_section_source *in,
		       struct vm_machine *m) __must_check;

/* Check that this host's KVM can provide the saved CPUID policy: every
 * feature bit the snapshot's guest saw must be one KVM offers here. */
int vm_persist_check_cpuid(struct vm *vm, const struct vm_machine *m) __must_check;

/* Load the sections into vm, created with the machine section's RAM size and vCPU
 * count, with the same devices in the same order, its RAM already holding
 * the snapshot's memory. Called before any vCPU runs. */
int vm_persist_restore(struct vm *vm, const struct vm_section_source *in,
		       const struct vm_machine *m) __must_check;

#endif
