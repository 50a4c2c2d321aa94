/* A virtual machine: one KVM VM, its RAM, vCPUs, buses and devices.
 *
 * Everything a VM owns hangs off struct vm; nothing is global, so one
 * process (a test) can build several VMs. Life cycle:
 *
 *   vm_create()            KVM VM, irqchip, PIT, RAM, vCPUs (not running)
 *   ...devices...          claim bus ranges, IRQs and virtio-mmio slots
 *   boot_load() / restore  guest memory and BSP registers
 *   vm_run()               vCPU threads + event loop until the guest stops
 *   vm_destroy()           devices, vCPUs, RAM, fds
 */
#ifndef FORKD_VMM_VM_H
#define FORKD_VMM_VM_H

#include <linux/kvm.h>
#include <pthread.h>
#include <sched.h>
#include <stdbool.h>
#include <stdint.h>

#include "common/log.h"
#include "vmm/bus.h"
#include "vmm/evloop.h"
#include "vmm/memory.h"

#define VM_MAX_VCPUS 64
/* Linux switches for KVM-PVM guests (see vm_create()):
 *   noxsave          no XSAVE/XRSTOR (the emulator has neither)
 *   nosmap           no CLAC/STAC on every user access (each would exit)
 *   clearcpuid=137   no SSSE3 in the kernel: its built-in SIMD (blake2s in
 *                    the RNG) would run vector code the emulator cannot.
 *                    Guest user code still sees and uses SSSE3 natively. */
#define PVM_KERNEL_ARGS "noxsave nosmap clearcpuid=137"
#define VM_MAX_DEVICES	16

/* Process exit status of a VMM whose guest stopped, so callers can tell a
 * clean poweroff from a crash. */
enum vm_exit {
	VM_EXIT_POWEROFF = 0,  /* guest powered off (ACPI S5): clean stop */
	VM_EXIT_ERROR = 1,     /* the VMM itself failed */
	VM_EXIT_CRASH = 2,     /* triple fault / entry failure: guest crashed */
	VM_EXIT_EMULATION = 3, /* KVM could not emulate a guest instruction */
	VM_EXIT_RESET = 4,     /* guest reset the machine (reboot; a panic with panic=N) */
	VM_EXIT_TIMEOUT = 124, /* --timeout-secs ran out */
	VM_EXIT_SIGNAL = 130,  /* stopped by SIGINT/SIGTERM */
};

/* Layout of the 32-bit hole (all below 4 GiB, above RAM). */
#define VIRTIO_MMIO_BASE 0xD0000000ULL
#define VIRTIO_MMIO_SIZE 0x1000ULL
#define IOAPIC_ADDR	 0xFEC00000ULL
#define LAPIC_ADDR	 0xFEE00000ULL
#define KVM_TSS_ADDR	 0xFFFBD000ULL
#define KVM_IDMAP_ADDR	 0xFFFBC000ULL

struct vm;

struct vcpu {
	struct vm *vm;
	int id;
	int fd;
	struct kvm_run *run; /* mmap of the vCPU fd, run_size bytes */
	pthread_t thread;
	bool started;
	uint64_t nr_exits;
	uint64_t nr_assists; /* emulation failures forkd completed itself */
	/* The last exit was PIO/MMIO, handled in user space but not yet
	 * completed by KVM (which does so on the next KVM_RUN). */
	bool io_pending;
};

struct sbuf;

/* One stateful part of the machine. Devices are kept in creation order,
 * which is also the order their state is saved and restored in: a VM is
 * restored by creating the same devices in the same order, then handing
 * each its saved blob. */
struct device_ops {
	const char *name;
	void (*destroy)(void *priv);
	/* Append the device's state to out. Called with the VM paused (vCPUs
	 * parked, event loop stopped). NULL: nothing to save. */
	int (*save)(void *priv, struct sbuf *out);
	/* Load state written by save. The blob comes from a file and may be
	 * corrupt or hostile: validate every field before using it, and leave
	 * the device unchanged on error (-EINVAL). Called before the vCPUs
	 * run. NULL: the device has no state. */
	int (*restore)(void *priv, const uint8_t *data, size_t len);
};

struct device {
	const struct device_ops *ops;
	void *priv;
};

struct vm_config {
	uint64_t mem_bytes;  /* multiple of 2 MiB */
	int nr_vcpus;	     /* 1..VM_MAX_VCPUS */
	struct mem_opts mem; /* backing of guest RAM */
	/* CPUID policy to use: a snapshot's, which also means the VM is being
	 * restored (vCPUs get no boot-time defaults); NULL: build this host's
	 * and boot. */
	const struct kvm_cpuid_entry2 *cpuid;
	uint32_t nr_cpuid;
};

struct vm {
	int kvm_fd, vm_fd;
	bool pvm;	/* host is KVM-PVM: guest CPL0 is emulated (platform.md) */
	bool restoring; /* built from a snapshot's CPUID policy: state comes next */
	bool vmgenid;	/* has the VM generation ID (devices/vmgenid.h) */
	int run_size;
	struct guest_mem mem;
	struct kvm_cpuid2 *cpuid; /* the guest's CPUID policy, all vCPUs */
	int nr_vcpus;
	struct vcpu vcpus[VM_MAX_VCPUS];
	struct bus pio, mmio;
	struct evloop loop;
	struct device devices[VM_MAX_DEVICES];
	unsigned nr_devices;
	unsigned nr_virtio;	   /* virtio-mmio slots handed out */
	uint64_t pvm_syscall_stub; /* KVM-PVM: the SYSCALL trampoline (pvm_syscall.h) */
	/* Host CPUs vCPU threads are pinned to, vCPU i to the (base + i) mod
	 * n-th of them; n == 0: not pinned. Chosen in vm_create, before any
	 * jail (vm.c, vm_pin_plan, says why). */
	cpu_set_t pin_cpus;
	int pin_n, pin_base;
	char cmdline_extra[1024]; /* appended to the guest command line */

	/* Pause protocol (vm_pause/vm_resume): vCPU threads park on the
	 * condition variable at a clean instruction boundary. */
	pthread_mutex_t pause_lock;
	pthread_cond_t pause_cond;
	volatile int pause_requested;
	int nr_parked;

	/* Stop protocol: the first vm_request_stop() wins and sets status. */
	int stopfd; /* eventfd, written on stop (async-signal-safe) */
	int exit_status;
	volatile int stopping;
	char exit_reason[256];
};

/* Create the VM. On failure everything acquired is released. */
int vm_create(struct vm *vm, const struct vm_config *cfg) __must_check;
void vm_destroy(struct vm *vm);

/* Register a device (takes ownership of priv: ops->destroy frees it). */
int vm_add_device(struct vm *vm, const struct device_ops *ops, void *priv) __must_check;

/* Reserve the next virtio-mmio slot: its MMIO base and IRQ, and announce it
 * on the guest command line (virtio_mmio.device=4K@base:irq). */
int vm_alloc_virtio_slot(struct vm *vm, uint64_t *base, unsigned *irq) __must_check;

/* Base and IRQ of virtio-mmio slot i (< vm->nr_virtio). */
void vm_virtio_slot(const struct vm *vm, unsigned i, uint64_t *base, unsigned *irq);

/* Raise an edge on an ISA/IOAPIC interrupt line. Any thread. 0 or -errno
 * (the devices, which cannot report it, ignore it). */
int vm_irq_pulse(struct vm *vm, unsigned irq);
int vm_irq_line(struct vm *vm, unsigned irq, int level) __must_check;

/* Start every vCPU thread and the event loop; block until the guest stops,
 * vm_request_stop() is called, or timeout_ms passes (0: no limit). Returns
 * the enum vm_exit status. vm_start + vm_wait + vm_finish in one. */
int vm_run(struct vm *vm, uint64_t timeout_ms);

/* Start the event loop and every vCPU thread. */
int vm_start(struct vm *vm) __must_check;
/* Wait until the VM stops (returns 0), extra_fd (-1: none) becomes
 * readable (returns 1), or the monotonic deadline_ns passes (0: none;
 * the VM is then stopped with VM_EXIT_TIMEOUT and 0 returned). */
int vm_wait(struct vm *vm, int extra_fd, uint64_t deadline_ns);
/* Stop what vm_start started (kick, join, stop the loop); returns the
 * enum vm_exit status. The VM must have been asked to stop, or this asks
 * with `status`. */
int vm_finish(struct vm *vm, int status);

/* Park every running vCPU at a clean boundary: any PIO/MMIO exit already
 * handled is completed by KVM first, so saved registers never reflect a
 * half-done instruction. Returns once all are parked (or the VM stops).
 * Call from a thread that is not a vCPU thread. */
void vm_pause(struct vm *vm);
void vm_resume(struct vm *vm);
/* Call on a vCPU thread while it handles an exit (a device's PIO/MMIO
 * hook): that vCPU completes the instruction and parks before it returns
 * to the guest, so a vm_pause() that follows finds the guest exactly after
 * the instruction that signalled (the --warm-console marker), not some way
 * past it. (The doorbell port stays asynchronous: snap_fidelity relies on
 * the pause landing wherever the guest has got to.)
 * The other vCPUs run on until vm_pause() kicks them. vm_resume() or a
 * stop releases it. */
void vm_pause_here(struct vm *vm);

/* Ask the VM to stop with the given status. Thread-safe; the first caller's
 * status and reason are kept. */
void vm_request_stop(struct vm *vm, int status, const char *fmt, ...) __printf(3, 4);
/* Async-signal-safe variant with a fixed reason. */
void vm_request_stop_signal(struct vm *vm, int status);

/* True on KVM-PVM hosts (FORKD_PVM=0/1 in the environment overrides). */
bool vm_host_is_pvm(void);
/* Decide where vCPU threads are pinned (vm->pin_*); vm_create calls it. */
void vm_pin_plan(struct vm *vm);

#endif
