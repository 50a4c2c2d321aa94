#include "vmm/vcpu_state.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#include "common/util.h"

struct msrs_buf {
	struct kvm_msrs hdr;
	struct kvm_msr_entry e[VCPU_STATE_MAX_MSRS];
};

int vcpu_state_msr_list(struct vm *vm, uint32_t *indices, uint32_t *nr)
{
	struct {
		struct kvm_msr_list l;
		uint32_t idx[VCPU_STATE_MAX_MSRS];
	} list = {.l.nmsrs = VCPU_STATE_MAX_MSRS};
	struct vcpu *v = &vm->vcpus[0];
	uint32_t i, n = 0;

	if (ioctl(vm->kvm_fd, KVM_GET_MSR_INDEX_LIST, &list) < 0)
		return log_errno("KVM_GET_MSR_INDEX_LIST");
	/* Some listed MSRs exist only with features this guest lacks: keep
	 * just those that read back, so restore can demand every one. */
	for (i = 0; i < list.l.nmsrs && i < VCPU_STATE_MAX_MSRS; i++) {
		struct {
			struct kvm_msrs hdr;
			struct kvm_msr_entry e;
		} one = {.hdr.nmsrs = 1, .e.index = list.idx[i]};

		if (ioctl(v->fd, KVM_GET_MSRS, &one) == 1)
			indices[n++] = list.idx[i];
	}
	*nr = n;
	return 0;
}

int vcpu_state_save(struct vcpu *vcpu, const uint32_t *msr_indices, uint32_t nr_msrs,
		    struct vcpu_state *st)
{
	struct msrs_buf *m;
	int fd = vcpu->fd, id = vcpu->id, n;
	uint32_t i;

	if (nr_msrs > VCPU_STATE_MAX_MSRS)
		return -EINVAL;
	memset(st, 0, sizeof(*st));
	if (ioctl(fd, KVM_GET_MP_STATE, &st->mp_state) < 0)
		return log_errno("KVM_GET_MP_STATE(vcpu %d)", id);
	if (ioctl(fd, KVM_GET_REGS, &st->regs) < 0)
		return log_errno("KVM_GET_REGS(vcpu %d)", id);
	if (ioctl(fd, KVM_GET_SREGS, &st->sregs) < 0)
		return log_errno("KVM_GET_SREGS(vcpu %d)", id);
	if (ioctl(fd, KVM_GET_XSAVE, &st->xsave) < 0)
		return log_errno("KVM_GET_XSAVE(vcpu %d)", id);
	if (ioctl(fd, KVM_GET_XCRS, &st->xcrs) < 0)
		return log_errno("KVM_GET_XCRS(vcpu %d)", id);
	if (ioctl(fd, KVM_GET_LAPIC, &st->lapic) < 0)
		return log_errno("KVM_GET_LAPIC(vcpu %d)", id);
	if (ioctl(fd, KVM_GET_VCPU_EVENTS, &st->events) < 0)
		return log_errno("KVM_GET_VCPU_EVENTS(vcpu %d)", id);
	if (ioctl(fd, KVM_GET_DEBUGREGS, &st->debugregs) < 0)
		return log_errno("KVM_GET_DEBUGREGS(vcpu %d)", id);
	n = ioctl(fd, KVM_GET_TSC_KHZ, 0);
	if (n < 0)
		return log_errno("KVM_GET_TSC_KHZ(vcpu %d)", id);
	st->tsc_khz = (uint32_t)n;

	m = calloc(1, sizeof(*m));
	if (!m)
		return -ENOMEM;
	m->hdr.nmsrs = nr_msrs;
	for (i = 0; i < nr_msrs; i++)
		m->e[i].index = msr_indices[i];
	n = ioctl(fd, KVM_GET_MSRS, m);
	if (n != (int)nr_msrs) {
		int err = n < 0 ? log_errno("KVM_GET_MSRS(vcpu %d)", id) : -EIO;

		if (n >= 0)
			log_err("KVM_GET_MSRS(vcpu %d): read %d of %u MSRs (stopped at 0x%x)", id,
				n, nr_msrs, msr_indices[n]);
		free(m);
		return err;
	}
	st->nr_msrs = nr_msrs;
	memcpy(st->msrs, m->e, nr_msrs * sizeof(m->e[0]));
	free(m);
	return 0;
}

/* Ordering requirements:
 * - MP state first: it decides whether the vCPU is runnable at all.
 * - SREGS before LAPIC: setting SREGS writes the APIC base, which resets the
 *   local APIC's state.
 * - LAPIC before MSRs: the TSC-deadline MSR is only accepted once the LAPIC
 *   is in TSC-deadline mode.
 * - VCPU_EVENTS last: pending exceptions and interrupts must land on the
 *   final register state. */
int vcpu_state_restore(struct vcpu *vcpu, const struct vcpu_state *st)
{
	struct msrs_buf *m;
	int fd = vcpu->fd, id = vcpu->id, n;

	if (st->nr_msrs > VCPU_STATE_MAX_MSRS)
		return -EINVAL;
	if (ioctl(fd, KVM_SET_MP_STATE, &st->mp_state) < 0)
		return log_errno("KVM_SET_MP_STATE(vcpu %d)", id);
	if (ioctl(fd, KVM_SET_REGS, &st->regs) < 0)
		return log_errno("KVM_SET_REGS(vcpu %d)", id);
	if (ioctl(fd, KVM_SET_SREGS, &st->sregs) < 0)
		return log_errno("KVM_SET_SREGS(vcpu %d)", id);
	if (ioctl(fd, KVM_SET_XSAVE, &st->xsave) < 0)
		return log_errno("KVM_SET_XSAVE(vcpu %d)", id);
	if (ioctl(fd, KVM_SET_XCRS, &st->xcrs) < 0)
		return log_errno("KVM_SET_XCRS(vcpu %d)", id);
	if (ioctl(fd, KVM_SET_DEBUGREGS, &st->debugregs) < 0)
		return log_errno("KVM_SET_DEBUGREGS(vcpu %d)", id);
	if (ioctl(fd, KVM_SET_LAPIC, &st->lapic) < 0)
		return log_errno("KVM_SET_LAPIC(vcpu %d)", id);

	m = calloc(1, sizeof(*m));
	if (!m)
		return -ENOMEM;
	m->hdr.nmsrs = st->nr_msrs;
	memcpy(m->e, st->msrs, st->nr_msrs * sizeof(m->e[0]));
	n = ioctl(fd, KVM_SET_MSRS, m);
	free(m);
	if (n != (int)st->nr_msrs) {
		if (n < 0)
			return log_errno("KVM_SET_MSRS(vcpu %d)", id);
		log_err("KVM_SET_MSRS(vcpu %d): set %d of %u MSRs (refused 0x%x)", id, n,
			st->nr_msrs, st->msrs[n].index);
		return -EINVAL;
	}
	if (ioctl(fd, KVM_SET_VCPU_EVENTS, &st->events) < 0)
		return log_errno("KVM_SET_VCPU_EVENTS(vcpu %d)", id);
	return 0;
}
