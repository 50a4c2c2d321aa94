#include "fork/machine.h"

#include <errno.h>
#include <string.h>

#include "common/util.h"
#include "devices/acpi_sleep.h"
#include "devices/i8042.h"
#include "devices/serial.h"
#include "devices/virtio/net.h"
#include "devices/virtio/rng.h"
#include "devices/virtio/vsock.h"
#include "devices/vmctl.h"
#include "devices/vmgenid.h"

void machine_spec_init(struct machine_spec *s)
{
	static const uint8_t mac[6] = {0x52, 0x54, 0x00, 0x12, 0x34, 0x56};

	memset(s, 0, sizeof(*s));
	s->mem_mib = 256;
	s->vcpus = 1;
	memcpy(s->mac, mac, 6);
	s->dev.vsock_cid = 3;
	s->dev.rng = true;
	s->dev.vmgenid = true;
	s->console_fd = -1;
	s->console_max_bytes = 16 * MIB;
	s->warm_fd = -1;
	s->mem.backing = MEM_ANON;
}

int machine_build(struct vm *vm, const struct machine_spec *s, struct vmctl **vmctl)
{
	struct vm_config cfg = {.mem_bytes = s->mem_mib * MIB,
				.nr_vcpus = s->vcpus,
				.mem = s->mem,
				.cpuid = s->cpuid,
				.nr_cpuid = s->nr_cpuid};
	struct serial_opts so = {.out_fd = s->console_fd,
				 .in_fd = -1,
				 .max_bytes = s->console_max_bytes,
				 .warm_marker = s->warm_console,
				 .warm_fd = s->warm_fd};
	int err;

	if (!!s->dev.net != !!s->tap || !!s->dev.vsock != !!s->vsock ||
	    s->dev.nr_disks > MACHINE_MAX_DISKS) {
		log_err("machine: the device set and its attachments disagree (net %d, tap %s; "
			"vsock %d, socket %s; %u disks)",
			s->dev.net, s->tap ? s->tap : "none", s->dev.vsock,
			s->vsock ? s->vsock : "none", s->dev.nr_disks);
		return -EINVAL;
	}
	err = vm_create(vm, &cfg);
	if (err)
		return err;
	/* The order below is part of the snapshot format: see machine.h. */
	if ((err = serial_create(vm, &so)) || (err = i8042_create(vm)) ||
	    (err = acpi_sleep_create(vm)) || (err = vmctl_create(vm, s->warm_fd, vmctl)) ||
	    (s->dev.vmgenid && (err = vmgenid_create(vm))))
		goto fail;
	for (uint32_t i = 0; i < s->dev.nr_disks; i++) {
		struct virtio_blk_opts bo = {.path = s->dev.disks[i].path,
					     .read_only = s->dev.disks[i].read_only,
					     .overlay_dir = s->overlay_dir};

		if ((err = virtio_blk_create(vm, &bo)))
			goto fail;
	}
	if (s->dev.net) {
		struct virtio_net_opts no = {.tap = s->tap};

		memcpy(no.mac, s->mac, 6);
		if ((err = virtio_net_create(vm, &no)))
			goto fail;
	}
	if (s->dev.vsock && (err = virtio_vsock_create(
				 vm, &(struct virtio_vsock_opts){s->dev.vsock_cid, s->vsock})))
		goto fail;
	if (s->dev.rng && (err = virtio_rng_create(vm)))
		goto fail;
	if (vm->nr_devices != snapshot_devices_count(&s->dev)) {
		log_err("machine: %u devices made, the device set counts %u", vm->nr_devices,
			snapshot_devices_count(&s->dev));
		err = -EINVAL;
		goto fail;
	}
	return 0;
fail:
	vm_destroy(vm);
	return err;
}

void machine_kvm_fds(const struct vm *vm, struct jail_kvm_fds *out, int vcpu_fds[VM_MAX_VCPUS])
{
	for (int i = 0; i < vm->nr_vcpus; i++)
		vcpu_fds[i] = vm->vcpus[i].fd;
	*out = (struct jail_kvm_fds){
	    .sys = vm->kvm_fd, .vm = vm->vm_fd, .vcpu = vcpu_fds, .nr_vcpu = vm->nr_vcpus};
}
