#include "vmm/vm_persist.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#include "common/sbuf.h"
#include "common/util.h"
#include "vmm/cpuid.h"
#include "vmm/vcpu_state.h"

#define NR_IRQCHIPS 3 /* PIC master, PIC slave, IOAPIC */

static int save_machine(struct vm *vm, const struct vm_section_sink *out)
{
	struct sbuf b = {0};

	sbuf_u64(&b, vm->mem.size);
	sbuf_u32(&b, (uint32_t)vm->nr_vcpus);
	sbuf_u32(&b, vm->pvm);
	sbuf_u32(&b, vm->nr_devices);
	sbuf_u32(&b, vm->cpuid->nent);
	sbuf_put(&b, vm->cpuid->entries, vm->cpuid->nent * sizeof(vm->cpuid->entries[0]));
	if (b.oom)
		return -ENOMEM;
	out->put(out->ctx, VM_SECTION_MACHINE, 0, b.data, b.len);
	sbuf_free(&b);
	return 0;
}

int vm_persist_machine(const char *name, const struct vm_section_source *in, struct vm_machine *m)
{
	const struct vm_section *s = in->find(in->ctx, VM_SECTION_MACHINE, 0);
	struct sreader r;

	if (!s) {
		log_err("%s: no machine section", name);
		return -EINVAL;
	}
	r = sreader_init(s->data, s->len);
	memset(m, 0, sizeof(*m));
	m->mem_bytes = sreader_u64(&r);
	m->nr_vcpus = sreader_u32(&r);
	m->pvm = sreader_u32(&r);
	m->nr_devices = sreader_u32(&r);
	m->nr_cpuid = sreader_u32(&r);
	if (r.err || m->nr_cpuid > ARRAY_SIZE(m->cpuid)) {
		log_err("%s: machine section is malformed", name);
		return -EINVAL;
	}
	sreader_get(&r, m->cpuid, m->nr_cpuid * sizeof(m->cpuid[0]));
	if (!sreader_done(&r) || m->nr_vcpus < 1 || m->nr_vcpus > VM_MAX_VCPUS ||
	    m->mem_bytes == 0 || m->mem_bytes % (2 * MIB) || m->nr_devices > VM_MAX_DEVICES) {
		log_err("%s: machine section is malformed (RAM %llu bytes, %u vCPUs, %u devices)",
			name, (unsigned long long)m->mem_bytes, m->nr_vcpus, m->nr_devices);
		return -EINVAL;
	}
	return 0;
}

int vm_persist_check_cpuid(struct vm *vm, const struct vm_machine *m)
{
	/* Leaves and registers that carry feature flags. */
	static const struct {
		uint32_t fn, idx;
		int reg; /* 1 ebx, 2 ecx, 3 edx */
		const char *name;
	} feat[] = {
	    {1, 0, 2, "1.ecx"},
	    {1, 0, 3, "1.edx"},
	    {7, 0, 1, "7.ebx"},
	    {7, 0, 2, "7.ecx"},
	    {7, 0, 3, "7.edx"},
	    {0x80000001, 0, 2, "80000001.ecx"},
	    {0x80000001, 0, 3, "80000001.edx"},
	};
	/* Bits forkd sets itself, whatever KVM reports. */
	const uint32_t hypervisor_bit = 1u << 31;

	if ((bool)m->pvm != vm->pvm) {
		log_err("snapshot was taken on a %s host; this host is %s: its guest would run "
			"with the wrong CPUID policy",
			m->pvm ? "KVM-PVM" : "hardware KVM", vm->pvm ? "KVM-PVM" : "hardware KVM");
		return -ENOTSUP;
	}
	for (unsigned i = 0; i < ARRAY_SIZE(feat); i++) {
		struct kvm_cpuid_entry2 *host = cpuid_find(vm->cpuid, feat[i].fn, feat[i].idx);
		const struct kvm_cpuid_entry2 *saved = NULL;
		uint32_t want, have, missing;

		for (uint32_t k = 0; k < m->nr_cpuid; k++)
			if (m->cpuid[k].function == feat[i].fn &&
			    (!(m->cpuid[k].flags & KVM_CPUID_FLAG_SIGNIFCANT_INDEX) ||
			     m->cpuid[k].index == feat[i].idx))
				saved = &m->cpuid[k];
		if (!saved)
			continue;
		want = feat[i].reg == 1 ? saved->ebx : feat[i].reg == 2 ? saved->ecx : saved->edx;
		have = !host		  ? 0
		       : feat[i].reg == 1 ? host->ebx
		       : feat[i].reg == 2 ? host->ecx
					  : host->edx;
		if (feat[i].fn == 1 && feat[i].reg == 2)
			want &= ~hypervisor_bit;
		missing = want & ~have;
		if (missing) {
			log_err("snapshot's CPUID policy needs features this host's KVM lacks "
				"(CPUID %s bits 0x%08x); take the snapshot on this host",
				feat[i].name, missing);
			return -ENOTSUP;
		}
	}
	return 0;
}

static int save_vm_chips(struct vm *vm, const struct vm_section_sink *out)
{
	struct kvm_irqchip chips[NR_IRQCHIPS];
	struct kvm_pit_state2 pit;
	struct kvm_clock_data clock = {0};

	for (uint32_t i = 0; i < NR_IRQCHIPS; i++) {
		memset(&chips[i], 0, sizeof(chips[i]));
		chips[i].chip_id = i;
		if (ioctl(vm->vm_fd, KVM_GET_IRQCHIP, &chips[i]) < 0)
			return log_errno("KVM_GET_IRQCHIP(%u)", i);
	}
	out->put(out->ctx, VM_SECTION_IRQCHIP, 0, chips, sizeof(chips));
	if (ioctl(vm->vm_fd, KVM_GET_PIT2, &pit) < 0)
		return log_errno("KVM_GET_PIT2");
	out->put(out->ctx, VM_SECTION_PIT, 0, &pit, sizeof(pit));
	if (ioctl(vm->vm_fd, KVM_GET_CLOCK, &clock) < 0)
		return log_errno("KVM_GET_CLOCK");
	out->put(out->ctx, VM_SECTION_CLOCK, 0, &clock, sizeof(clock));
	return 0;
}

static int save_devices(struct vm *vm, const struct vm_section_sink *out)
{
	for (unsigned i = 0; i < vm->nr_devices; i++) {
		const struct device *d = &vm->devices[i];
		struct sbuf b = {0};
		uint32_t n = (uint32_t)strlen(d->ops->name);
		int err;

		sbuf_u32(&b, n);
		sbuf_put(&b, d->ops->name, n);
		if (d->ops->save) {
			err = d->ops->save(d->priv, &b);
			if (err) {
				log_err("saving device %u (%s) failed: %s", i, d->ops->name,
					strerror(-err));
				sbuf_free(&b);
				return err;
			}
		}
		if (b.oom) {
			sbuf_free(&b);
			return -ENOMEM;
		}
		out->put(out->ctx, VM_SECTION_DEVICE, i, b.data, b.len);
		sbuf_free(&b);
	}
	return 0;
}

int vm_persist_save(struct vm *vm, const struct vm_section_sink *out)
{
	uint32_t msrs[VCPU_STATE_MAX_MSRS], nr_msrs;
	struct vcpu_state *st;
	int err;

	err = save_machine(vm, out);
	if (err)
		return err;
	err = vcpu_state_msr_list(vm, msrs, &nr_msrs);
	if (err)
		return err;
	st = malloc(sizeof(*st));
	if (!st)
		return -ENOMEM;
	for (int i = 0; i < vm->nr_vcpus; i++) {
		err = vcpu_state_save(&vm->vcpus[i], msrs, nr_msrs, st);
		if (err)
			goto out;
		out->put(out->ctx, VM_SECTION_VCPU, (uint32_t)i, st, sizeof(*st));
	}
	err = save_vm_chips(vm, out);
	if (!err)
		err = save_devices(vm, out);
out:
	free(st);
	return err;
}

static const struct vm_section *need(const struct vm_section_source *in, uint32_t type,
				     uint32_t instance, uint64_t len, const char *what)
{
	const struct vm_section *s = in->find(in->ctx, type, instance);

	if (!s)
		log_err("vmstate: no %s section", what);
	else if (len && s->len != len)
		log_err("vmstate: %s section is %llu bytes, expected %llu", what,
			(unsigned long long)s->len, (unsigned long long)len);
	else
		return s;
	return NULL;
}

/* Ordering requirements: the irqchip (PIC, IOAPIC) and PIT come before the
 * vCPUs, whose LAPICs route through them; the clock is set before any vCPU
 * reads it; devices come last, as they may raise interrupts on restore. */
int vm_persist_restore(struct vm *vm, const struct vm_section_source *in,
		       const struct vm_machine *m)
{
	const struct vm_section *s;
	struct kvm_irqchip chips[NR_IRQCHIPS];
	struct kvm_pit_state2 pit;
	struct kvm_clock_data clock;
	struct vcpu_state *st;
	int err = 0;

	if (m->nr_vcpus != (uint32_t)vm->nr_vcpus || m->mem_bytes != vm->mem.size ||
	    m->nr_devices != vm->nr_devices) {
		log_err("vmstate: VM shape differs from the snapshot's (%u vCPUs, %u devices)",
			m->nr_vcpus, m->nr_devices);
		return -EINVAL;
	}
	if (!(s = need(in, VM_SECTION_CLOCK, 0, sizeof(clock), "clock")))
		return -EINVAL;
	memcpy(&clock, s->data, sizeof(clock));
	clock.flags = 0; /* only the value; KVM rejects flags it did not report */
	if (ioctl(vm->vm_fd, KVM_SET_CLOCK, &clock) < 0)
		return log_errno("KVM_SET_CLOCK");
	if (!(s = need(in, VM_SECTION_IRQCHIP, 0, sizeof(chips), "irqchip")))
		return -EINVAL;
	memcpy(chips, s->data, sizeof(chips));
	for (uint32_t i = 0; i < NR_IRQCHIPS; i++) {
		if (chips[i].chip_id != i) {
			log_err("vmstate: irqchip %u has id %u", i, chips[i].chip_id);
			return -EINVAL;
		}
		if (ioctl(vm->vm_fd, KVM_SET_IRQCHIP, &chips[i]) < 0)
			return log_errno("KVM_SET_IRQCHIP(%u)", i);
	}
	if (!(s = need(in, VM_SECTION_PIT, 0, sizeof(pit), "PIT")))
		return -EINVAL;
	memcpy(&pit, s->data, sizeof(pit));
	if (ioctl(vm->vm_fd, KVM_SET_PIT2, &pit) < 0)
		return log_errno("KVM_SET_PIT2");

	st = malloc(sizeof(*st));
	if (!st)
		return -ENOMEM;
	for (int i = 0; i < vm->nr_vcpus && !err; i++) {
		if (!(s = need(in, VM_SECTION_VCPU, (uint32_t)i, sizeof(*st), "vCPU"))) {
			err = -EINVAL;
			break;
		}
		memcpy(st, s->data, sizeof(*st));
		if (st->nr_msrs > VCPU_STATE_MAX_MSRS) {
			log_err("vmstate: vCPU %d lists %u MSRs", i, st->nr_msrs);
			err = -EINVAL;
			break;
		}
		err = vcpu_state_restore(&vm->vcpus[i], st);
	}
	free(st);
	if (err)
		return err;

	for (unsigned i = 0; i < vm->nr_devices; i++) {
		const struct device *d = &vm->devices[i];
		struct sreader r;
		uint32_t n;

		if (!(s = need(in, VM_SECTION_DEVICE, i, 0, "device")))
			return -EINVAL;
		r = sreader_init(s->data, s->len);
		n = sreader_u32(&r);
		if (r.err || n != strlen(d->ops->name) || n > s->len - 4 ||
		    memcmp(s->data + 4, d->ops->name, n)) {
			log_err("vmstate: device %u is not a %s", i, d->ops->name);
			return -EINVAL;
		}
		if (!d->ops->restore)
			continue;
		err = d->ops->restore(d->priv, s->data + 4 + n, s->len - 4 - n);
		if (err) {
			log_err("vmstate: device %u (%s): saved state rejected", i, d->ops->name);
			return err;
		}
	}
	return 0;
}
