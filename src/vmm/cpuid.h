/* The guest's CPUID policy.
 *
 * Ordinary KVM host: what KVM_GET_SUPPORTED_CPUID reports (host features
 * KVM can virtualise), plus the hypervisor bit.
 * KVM-PVM host: the same, minus features whose instructions the CPL0
 * emulator cannot execute (platform.md): CMPXCHG16B and the whole XSAVE
 * family (XSAVE, OSXSAVE, AVX, AVX2, AVX-512, AMX, ...), so the guest
 * kernel falls back to instructions the emulator knows.
 *
 * Measured on KVM-PVM: the guest sees the table's value only for bits KVM
 * reports as supported (CX16 here); bits outside that set (XSAVE, AVX...)
 * come from the host CPU whatever the table says. So vm_create() also puts
 * "noxsave" on a Linux guest's command line there; the masks stay, for
 * PVM versions that honour them. */
#ifndef FORKD_VMM_CPUID_H
#define FORKD_VMM_CPUID_H

#include <linux/kvm.h>
#include <stdbool.h>

#include "common/log.h"

/* Build the policy. *out is malloc'ed; the caller frees it. */
int cpuid_policy_build(int kvm_fd, bool pvm, struct kvm_cpuid2 **out) __must_check;

/* Apply the policy to one vCPU: same features, per-vCPU APIC ids. */
int cpuid_apply(int vcpu_fd, const struct kvm_cpuid2 *policy, int vcpu_id,
		int nr_vcpus) __must_check;

/* Look up a leaf (NULL if absent). */
struct kvm_cpuid_entry2 *cpuid_find(struct kvm_cpuid2 *c, unsigned function, unsigned index);

/* Apply the KVM-PVM masks to a policy in place (exposed for unit tests). */
void cpuid_mask_pvm(struct kvm_cpuid2 *c);

#endif
