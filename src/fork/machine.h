/* A machine description and the one function that builds a VM from it.
 *
 * Parent and children must create the same devices in the same order
 * (device state is restored by position), so every VM forkd runs, booted
 * or restored, is built here:
 *   serial (COM1), i8042, vmctl, virtio-blk per disk, virtio-net,
 *   virtio-vsock, virtio-rng.
 * (The ACPI sleep register is created between i8042 and vmctl, and the VM
 * generation ID after vmctl; neither has state nor is in the device list.) */
#ifndef FORKD_FORK_MACHINE_H
#define FORKD_FORK_MACHINE_H

#include <stdbool.h>
#include <stdint.h>

#include "devices/virtio/blk.h"
#include "isolate/jail.h"
#include "snapshot/snapshot.h"
#include "vmm/vm.h"

#define MACHINE_MAX_DISKS SNAPSHOT_MAX_DISKS

struct machine_spec {
	uint64_t mem_mib;
	int vcpus;
	/* The devices (snapshot/snapshot.h), and where net and vsock attach:
	 * tap is needed exactly when dev.net, vsock when dev.vsock. */
	struct snapshot_devices dev;
	const char *tap; /* the tap interface's name */
	uint8_t mac[6];
	const char *vsock;	 /* the host end's Unix socket */
	const char *overlay_dir; /* where disk overlays live (NULL: $TMPDIR) */
	int console_fd;		 /* not owned; -1 discards */
	uint64_t console_max_bytes;
	int warm_fd;		  /* eventfd for vmctl's doorbell, or -1 */
	const char *warm_console; /* also signal warm_fd when the console shows this */
	struct mem_opts mem;
	/* A snapshot's CPUID policy (NULL: this host's). */
	const struct kvm_cpuid_entry2 *cpuid;
	uint32_t nr_cpuid;
};

/* Defaults: 256 MiB, 1 vCPU, rng on, anonymous RAM, console discarded. */
void machine_spec_init(struct machine_spec *s);

struct vmctl;

/* Create the VM and all its devices. On failure everything is released. */
int machine_build(struct vm *vm, const struct machine_spec *s, struct vmctl **vmctl) __must_check;

/* The VM's KVM descriptors, for the jail's ioctl rules (isolate/jail.h);
 * vcpu_fds is the storage out->vcpu points to. */
void machine_kvm_fds(const struct vm *vm, struct jail_kvm_fds *out, int vcpu_fds[VM_MAX_VCPUS]);

#endif
