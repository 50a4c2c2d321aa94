/* The guest's CPUID policy.
 *
 * Ordinary KVM host: what KVM_GET_SUPPORTED_CPUID reports (host features
 * KVM can virtualise), plus the hypervisor bit.
 * KVM-PVM host: the same, minus features whose instructions the CPL0
 * emulator cannot execute (platform.md): CMPXCHG16B and the whole XSAVE
 * family (XSAVE, OSXSAVE, AVX, AVX2, AVX-512, AMX, ...), so the guest
 * kernel falls back to instructions the emulator knows. */
#ifndef FORKD_VMM_CPUID_H
#define FORKD_VMM_CPUID_H

#include <linux/kvm.h>
#include <stdbool.h>

#include "common/log.h"

/* Build the policy. *out is malloc'ed; the caller frees it. */
int cpuid_policy_build(int kvm_fd, bool pvm, struct kvm_cpuid2 **out) __must_check;

/* Apply the policy to one vCPU: same features, per-vCPU APIC ids. */
int cpuid_apply(int vcpu_fd, const struct kvm_cpuid2 *policy, int vcpu_id, int nr_vcpus)
	__must_check;

/* Look up a leaf (NULL if absent). */
struct kvm_cpuid_entry2 *cpuid_find(struct kvm_cpuid2 *c, unsigned function, unsigned index);

/* Apply the KVM-PVM masks to a policy in place (exposed for unit tests). */
void cpuid_mask_pvm(struct kvm_cpuid2 *c);

#endif
