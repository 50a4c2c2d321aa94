#include "vmm/cpuid.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#define CPUID_MAX_ENTRIES 256

/* CPUID.1:ECX */
#define F1_ECX_FMA	  (1u << 12)
#define F1_ECX_CX16	  (1u << 13)
#define F1_ECX_XSAVE	  (1u << 26)
#define F1_ECX_OSXSAVE	  (1u << 27)
#define F1_ECX_AVX	  (1u << 28)
#define F1_ECX_F16C	  (1u << 29)
#define F1_ECX_HYPERVISOR (1u << 31)
/* CPUID.7.0:EBX: AVX2 and the AVX-512 foundation/extension bits */
#define F7_EBX_AVX_MASK                                                                            \
	((1u << 5) | (1u << 16) | (1u << 17) | (1u << 21) | (1u << 26) | (1u << 27) | (1u << 28) | \
	 (1u << 30) | (1u << 31))
/* CPUID.7.0:ECX: AVX512_VBMI, VBMI2, GFNI-on-AVX is fine, VAES, VPCLMULQDQ,
 * VNNI, BITALG, VPOPCNTDQ */
#define F7_ECX_AVX_MASK                                                                            \
	((1u << 1) | (1u << 6) | (1u << 9) | (1u << 10) | (1u << 11) | (1u << 12) | (1u << 14))
/* CPUID.7.0:EDX: AVX512_4VNNIW, 4FMAPS, VP2INTERSECT, AMX-BF16, AVX512_FP16,
 * AMX-TILE, AMX-INT8 */
#define F7_EDX_AVX_MASK                                                                            \
	((1u << 2) | (1u << 3) | (1u << 8) | (1u << 22) | (1u << 23) | (1u << 24) | (1u << 25))
/* CPUID.7.1:EAX: AVX-VNNI, AVX512_BF16 */
#define F71_EAX_AVX_MASK ((1u << 4) | (1u << 5))
/* KVM's paravirtual features (CPUID 0x40000001:EAX) that have the host act
 * on guest state behind the guest's back: asynchronous page faults, steal
 * time, the remote TLB flush that piggybacks on steal time (a preempted
 * vCPU is flushed by the host on its next entry instead of by an IPI), and
 * the hypercall-based IPI and yield. Hidden on KVM-PVM hosts, where how the
 * emulated guest kernel and these interact is unverified; without them
 * every TLB shootdown is an ordinary IPI the guest handles itself. (They
 * were suspected of the rare user-space TLS crash, docs/ARCHITECTURE.md;
 * hiding them did not cure it.) The clock, PV EOI and unhalt stay. */
#define KVM_CPUID_FEATURES_LEAF 0x40000001
#define KVM_PV_EMULATION_UNSAFE                                                                    \
	((1u << 4) | (1u << 5) | (1u << 9) | (1u << 10) | (1u << 11) | (1u << 13) | (1u << 14))
/* CPUID.80000001:ECX: XOP, FMA4 (AMD, VEX-encoded) */
#define F81_ECX_AVX_MASK ((1u << 11) | (1u << 16))

struct kvm_cpuid_entry2 *cpuid_find(struct kvm_cpuid2 *c, unsigned function, unsigned index)
{
	for (unsigned i = 0; i < c->nent; i++) {
		struct kvm_cpuid_entry2 *e = &c->entries[i];

		if (e->function != function)
			continue;
		if ((e->flags & KVM_CPUID_FLAG_SIGNIFCANT_INDEX) && e->index != index)
			continue;
		return e;
	}
	return NULL;
}

void cpuid_mask_pvm(struct kvm_cpuid2 *c)
{
	struct kvm_cpuid_entry2 *e;

	if ((e = cpuid_find(c, 1, 0)))
		e->ecx &= ~(F1_ECX_CX16 | F1_ECX_XSAVE | F1_ECX_OSXSAVE | F1_ECX_AVX | F1_ECX_FMA |
			    F1_ECX_F16C);
	if ((e = cpuid_find(c, 7, 0))) {
		e->ebx &= ~F7_EBX_AVX_MASK;
		e->ecx &= ~F7_ECX_AVX_MASK;
		e->edx &= ~F7_EDX_AVX_MASK;
	}
	if ((e = cpuid_find(c, 7, 1)))
		e->eax &= ~F71_EAX_AVX_MASK;
	if ((e = cpuid_find(c, 0x80000001, 0)))
		e->ecx &= ~F81_ECX_AVX_MASK;
	if ((e = cpuid_find(c, KVM_CPUID_FEATURES_LEAF, 0)))
		e->eax &= ~KVM_PV_EMULATION_UNSAFE;
	/* Leaf 0xD describes XSAVE state components: with XSAVE hidden the
	 * guest must see none. */
	for (unsigned i = 0; i < c->nent; i++)
		if (c->entries[i].function == 0xD)
			c->entries[i].eax = c->entries[i].ebx = c->entries[i].ecx =
			    c->entries[i].edx = 0;
}

int cpuid_policy_build(int kvm_fd, bool pvm, struct kvm_cpuid2 **out)
{
	struct kvm_cpuid2 *c;
	struct kvm_cpuid_entry2 *e;

	c = calloc(1, sizeof(*c) + CPUID_MAX_ENTRIES * sizeof(c->entries[0]));
	if (!c)
		return -ENOMEM;
	c->nent = CPUID_MAX_ENTRIES;
	if (ioctl(kvm_fd, KVM_GET_SUPPORTED_CPUID, c) < 0) {
		int err = log_errno("KVM_GET_SUPPORTED_CPUID");

		free(c);
		return err;
	}
	if ((e = cpuid_find(c, 1, 0)))
		e->ecx |= F1_ECX_HYPERVISOR;
	if (pvm)
		cpuid_mask_pvm(c);
	*out = c;
	return 0;
}

int cpuid_apply(int vcpu_fd, const struct kvm_cpuid2 *policy, int vcpu_id, int nr_vcpus)
{
	size_t size = sizeof(*policy) + policy->nent * sizeof(policy->entries[0]);
	struct kvm_cpuid2 *c = malloc(size);
	int err = 0;

	if (!c)
		return -ENOMEM;
	memcpy(c, policy, size);
	for (unsigned i = 0; i < c->nent; i++) {
		struct kvm_cpuid_entry2 *e = &c->entries[i];

		switch (e->function) {
		case 1:
			/* Initial APIC id and the logical processor count. */
			e->ebx = (e->ebx & 0x0000ffffu) | ((uint32_t)vcpu_id << 24) |
				 ((uint32_t)(nr_vcpus & 0xff) << 16);
			if (nr_vcpus > 1)
				e->edx |= 1u << 28; /* HTT: the count above is valid */
			break;
		case 0xB:
		case 0x1F:
			/* x2APIC topology: each vCPU is one core of one package. */
			e->edx = (uint32_t)vcpu_id;
			break;
		}
	}
	if (ioctl(vcpu_fd, KVM_SET_CPUID2, c) < 0)
		err = log_errno("KVM_SET_CPUID2(vcpu %d)", vcpu_id);
	free(c);
	return err;
}
