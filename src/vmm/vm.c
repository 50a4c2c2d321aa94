#include "vmm/vm.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "common/util.h"
#include "vmm/cpuid.h"
#include "vmm/pvm_syscall.h"
#include "vmm/vcpu.h"

/* IRQs free for virtio-mmio devices: 4 is COM1; 1, 8, 12 and 13 stay
 * reserved for the legacy devices Linux expects at them. */
static const unsigned virtio_irqs[] = {5, 6, 7, 9, 10, 11, 14, 15};

bool vm_host_is_pvm(void)
{
	const char *env = getenv("FORKD_PVM");

	if (env && (!strcmp(env, "0") || !strcmp(env, "1")))
		return env[0] == '1';
	return access("/sys/module/kvm_pvm", F_OK) == 0;
}

/* Pinning vCPU threads: on KVM-PVM a Linux guest's user memory is seen
 * corrupted (reads of data the process just wrote return 0 or another
 * page's bytes: a fresh process's TLS, malloc's free lists) when a vCPU
 * thread moves between host CPUs; the host seems to keep stale guest
 * translations on the CPU it left. Measured: the image's agent died of
 * SIGSEGV/SIGABRT three times in a row while importing numpy unpinned,
 * and came up on the first try pinned. So on KVM-PVM each vCPU thread
 * stays on one host CPU. FORKD_PIN_VCPUS=0 turns it off, =1 turns it on
 * for any host. vCPU i of process p takes the ((p + i) mod n)-th CPU this
 * process may run on: a VM's vCPUs spread, and so do many one-vCPU
 * children. */
void vm_pin_plan(struct vm *vm)
{
	const char *e = getenv("FORKD_PIN_VCPUS");
	bool want = e && *e ? strcmp(e, "0") != 0 : vm->pvm;

	vm->pin_n = 0;
	if (!want || sched_getaffinity(0, sizeof(vm->pin_cpus), &vm->pin_cpus) < 0)
		return;
	vm->pin_n = CPU_COUNT(&vm->pin_cpus);
	vm->pin_base = (int)((unsigned)getpid() % (unsigned)vm->pin_n); /* n >= 1 */
}

static int set_memory_regions(struct vm *vm)
{
	struct kvm_userspace_memory_region r = {
	    .slot = 0,
	    .guest_phys_addr = 0,
	    .memory_size = vm->mem.low_size,
	    .userspace_addr = (uint64_t)(uintptr_t)vm->mem.base,
	};

	if (ioctl(vm->vm_fd, KVM_SET_USER_MEMORY_REGION, &r) < 0)
		return log_errno("KVM_SET_USER_MEMORY_REGION(slot 0, %llu MiB)",
				 (unsigned long long)(r.memory_size / MIB));
	if (guest_mem_high_size(&vm->mem) == 0)
		return 0;
	r.slot = 1;
	r.guest_phys_addr = MEM_HOLE_END;
	r.memory_size = guest_mem_high_size(&vm->mem);
	r.userspace_addr += vm->mem.low_size;
	if (ioctl(vm->vm_fd, KVM_SET_USER_MEMORY_REGION, &r) < 0)
		return log_errno("KVM_SET_USER_MEMORY_REGION(slot 1, %llu MiB)",
				 (unsigned long long)(r.memory_size / MIB));
	return 0;
}

/* Order: RAM first (see below); the irqchip must exist before vCPUs (their
 * LAPICs are created in the kernel with them) and before the PIT (which
 * feeds it); TSS and identity-map addresses must be set before the first
 * KVM_RUN on Intel. */
int vm_create(struct vm *vm, const struct vm_config *cfg)
{
	struct kvm_pit_config pit = {.flags = KVM_PIT_SPEAKER_DUMMY};
	uint64_t idmap = KVM_IDMAP_ADDR;
	int err, i, api;

	memset(vm, 0, sizeof(*vm));
	vm->kvm_fd = vm->vm_fd = vm->stopfd = -1;
	vm->mem.fd = -1;
	vm->loop.epfd = -1;
	pthread_mutex_init(&vm->pause_lock, NULL);
	pthread_cond_init(&vm->pause_cond, NULL);
	vm->pio.name = "pio";
	vm->mmio.name = "mmio";
	if (cfg->nr_vcpus < 1 || cfg->nr_vcpus > VM_MAX_VCPUS) {
		log_err("vCPU count %d out of range 1..%d", cfg->nr_vcpus, VM_MAX_VCPUS);
		return -EINVAL;
	}
	vm->nr_vcpus = cfg->nr_vcpus;
	vm->pvm = vm_host_is_pvm();
	vm_pin_plan(vm);
	vm->restoring = cfg->cpuid != NULL;
	/* KVM-PVM takes feature bits it does not itself support (XSAVE, SMAP,
	 * AVX...) from the host whatever the CPUID table says; only the
	 * kernel's own switches keep a Linux guest off XSAVE/XRSTOR, which its
	 * CPL0 emulator cannot run, and off CLAC/STAC, which forkd would have
	 * to complete on every user-memory access (see assist.h). */
	if (vm->pvm)
		strcpy(vm->cmdline_extra, PVM_KERNEL_ARGS);

	vm->kvm_fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (vm->kvm_fd < 0) {
		err = log_errno("open /dev/kvm (is KVM available and are you in the kvm group?)");
		goto err;
	}
	api = ioctl(vm->kvm_fd, KVM_GET_API_VERSION, 0);
	if (api != KVM_API_VERSION) {
		log_err("/dev/kvm speaks API version %d, forkd needs %d", api, KVM_API_VERSION);
		err = -ENOTSUP;
		goto err;
	}
	if (ioctl(vm->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_IRQCHIP) <= 0 ||
	    ioctl(vm->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_USER_MEMORY) <= 0) {
		log_err("/dev/kvm lacks the in-kernel irqchip or user memory capability");
		err = -ENOTSUP;
		goto err;
	}
	vm->run_size = ioctl(vm->kvm_fd, KVM_GET_VCPU_MMAP_SIZE, 0);
	if (vm->run_size < (int)sizeof(struct kvm_run)) {
		err = log_errno("KVM_GET_VCPU_MMAP_SIZE");
		goto err;
	}
	vm->vm_fd = ioctl(vm->kvm_fd, KVM_CREATE_VM, 0);
	if (vm->vm_fd < 0) {
		err = log_errno("KVM_CREATE_VM");
		goto err;
	}
	/* RAM goes in before the irqchip and PIT: the first memslot change
	 * after KVM_CREATE_IRQCHIP waits for an SRCU grace period (5-20 ms
	 * measured), which would dominate a forked child's start-up. */
	/* Linux user space needs it on KVM-PVM (see pvm_syscall.h);
	 * FORKD_PVM_SYSCALL_FIX=0 turns it off, for diagnosis. */
	const char *fix = getenv("FORKD_PVM_SYSCALL_FIX");

	if (vm->pvm && !(fix && !strcmp(fix, "0"))) {
		err = pvm_syscall_init(vm);
		if (err)
			goto err;
	}
	err = guest_mem_map(&vm->mem, cfg->mem_bytes, &cfg->mem);
	if (err)
		goto err;
	err = set_memory_regions(vm);
	if (err)
		goto err;
	if (ioctl(vm->vm_fd, KVM_SET_TSS_ADDR, KVM_TSS_ADDR) < 0) {
		err = log_errno("KVM_SET_TSS_ADDR");
		goto err;
	}
	if (ioctl(vm->vm_fd, KVM_SET_IDENTITY_MAP_ADDR, &idmap) < 0) {
		err = log_errno("KVM_SET_IDENTITY_MAP_ADDR");
		goto err;
	}
	if (ioctl(vm->vm_fd, KVM_CREATE_IRQCHIP, 0) < 0) {
		err = log_errno("KVM_CREATE_IRQCHIP");
		goto err;
	}
	if (ioctl(vm->vm_fd, KVM_CREATE_PIT2, &pit) < 0) {
		err = log_errno("KVM_CREATE_PIT2");
		goto err;
	}
	if (cfg->cpuid) {
		vm->cpuid = calloc(1, sizeof(*vm->cpuid) + cfg->nr_cpuid * sizeof(cfg->cpuid[0]));
		if (!vm->cpuid) {
			err = -ENOMEM;
			goto err;
		}
		vm->cpuid->nent = cfg->nr_cpuid;
		memcpy(vm->cpuid->entries, cfg->cpuid, cfg->nr_cpuid * sizeof(cfg->cpuid[0]));
	} else {
		err = cpuid_policy_build(vm->kvm_fd, vm->pvm, &vm->cpuid);
		if (err)
			goto err;
	}
	for (i = 0; i < vm->nr_vcpus; i++)
		vm->vcpus[i].fd = -1;
	for (i = 0; i < vm->nr_vcpus; i++) {
		err = vcpu_create(vm, &vm->vcpus[i], i);
		if (err)
			goto err;
	}
	err = evloop_init(&vm->loop);
	if (err)
		goto err;
	vm->stopfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (vm->stopfd < 0) {
		err = log_errno("eventfd");
		goto err;
	}
	return 0;

err:
	vm_destroy(vm);
	return err;
}

void vm_destroy(struct vm *vm)
{
	int i;

	/* Devices first: their back-ends may still be watched by the loop. */
	evloop_destroy(&vm->loop);
	while (vm->nr_devices) {
		struct device *d = &vm->devices[--vm->nr_devices];

		if (d->ops->destroy)
			d->ops->destroy(d->priv);
	}
	for (i = 0; i < vm->nr_vcpus; i++)
		if (vm->vcpus[i].vm)
			vcpu_destroy(&vm->vcpus[i]);
	free(vm->cpuid);
	vm->cpuid = NULL;
	guest_mem_unmap(&vm->mem);
	if (vm->stopfd >= 0)
		close(vm->stopfd);
	pthread_cond_destroy(&vm->pause_cond);
	pthread_mutex_destroy(&vm->pause_lock);
	if (vm->vm_fd >= 0)
		close(vm->vm_fd);
	if (vm->kvm_fd >= 0)
		close(vm->kvm_fd);
	vm->stopfd = vm->vm_fd = vm->kvm_fd = -1;
}

int vm_add_device(struct vm *vm, const struct device_ops *ops, void *priv)
{
	if (vm->nr_devices == VM_MAX_DEVICES) {
		log_err("too many devices (at most %d)", VM_MAX_DEVICES);
		return -ENOSPC;
	}
	vm->devices[vm->nr_devices++] = (struct device){ops, priv};
	return 0;
}

void vm_virtio_slot(const struct vm *vm, unsigned i, uint64_t *base, unsigned *irq)
{
	*base = VIRTIO_MMIO_BASE + i * VIRTIO_MMIO_SIZE;
	*irq = virtio_irqs[i % ARRAY_SIZE(virtio_irqs)];
}

int vm_alloc_virtio_slot(struct vm *vm, uint64_t *base, unsigned *irq)
{
	size_t used = strlen(vm->cmdline_extra);
	int n;

	if (vm->nr_virtio == ARRAY_SIZE(virtio_irqs)) {
		log_err("too many virtio devices (at most %zu)", ARRAY_SIZE(virtio_irqs));
		return -ENOSPC;
	}
	vm_virtio_slot(vm, vm->nr_virtio, base, irq);
	n = snprintf(vm->cmdline_extra + used, sizeof(vm->cmdline_extra) - used,
		     "%svirtio_mmio.device=4K@0x%llx:%u", used ? " " : "",
		     (unsigned long long)*base, *irq);
	if (n < 0 || (size_t)n >= sizeof(vm->cmdline_extra) - used)
		return -ENOSPC;
	vm->nr_virtio++;
	return 0;
}

int vm_irq_line(struct vm *vm, unsigned irq, int level)
{
	struct kvm_irq_level l = {.irq = irq, .level = level};

	if (ioctl(vm->vm_fd, KVM_IRQ_LINE, &l) < 0)
		return log_errno("KVM_IRQ_LINE(%u, %d)", irq, level);
	return 0;
}

int vm_irq_pulse(struct vm *vm, unsigned irq)
{
	int err = vm_irq_line(vm, irq, 1);

	return err ? err : vm_irq_line(vm, irq, 0);
}

static bool claim_stop(struct vm *vm, int status)
{
	int expected = 0;

	if (!__atomic_compare_exchange_n(&vm->stopping, &expected, 1, false, __ATOMIC_SEQ_CST,
					 __ATOMIC_SEQ_CST))
		return false;
	vm->exit_status = status;
	return true;
}

static void wake_stop(struct vm *vm)
{
	uint64_t one = 1;

	(void)!write(vm->stopfd, &one, sizeof(one));
}

/* Parked vCPUs and a waiting vm_pause() must see a stop. Not from a signal
 * handler: the main loop calls it once it sees the stop. */
static void wake_parked(struct vm *vm)
{
	pthread_mutex_lock(&vm->pause_lock);
	pthread_cond_broadcast(&vm->pause_cond);
	pthread_mutex_unlock(&vm->pause_lock);
}

void vm_pause(struct vm *vm)
{
	int i, running = 0;

	pthread_mutex_lock(&vm->pause_lock);
	vm->pause_requested = 1;
	pthread_mutex_unlock(&vm->pause_lock);
	for (i = 0; i < vm->nr_vcpus; i++) {
		if (vm->vcpus[i].started) {
			running++;
			vcpu_kick(&vm->vcpus[i]);
		}
	}
	pthread_mutex_lock(&vm->pause_lock);
	while (vm->nr_parked < running && !vm->stopping)
		pthread_cond_wait(&vm->pause_cond, &vm->pause_lock);
	pthread_mutex_unlock(&vm->pause_lock);
}

void vm_pause_here(struct vm *vm)
{
	pthread_mutex_lock(&vm->pause_lock);
	vm->pause_requested = 1;
	pthread_mutex_unlock(&vm->pause_lock);
}

void vm_resume(struct vm *vm)
{
	pthread_mutex_lock(&vm->pause_lock);
	vm->pause_requested = 0;
	pthread_cond_broadcast(&vm->pause_cond);
	pthread_mutex_unlock(&vm->pause_lock);
}

void vm_request_stop(struct vm *vm, int status, const char *fmt, ...)
{
	va_list ap;

	if (!claim_stop(vm, status))
		return;
	va_start(ap, fmt);
	vsnprintf(vm->exit_reason, sizeof(vm->exit_reason), fmt, ap);
	va_end(ap);
	wake_stop(vm);
}

void vm_request_stop_signal(struct vm *vm, int status)
{
	if (!claim_stop(vm, status))
		return;
	strcpy(vm->exit_reason, "stopped by signal");
	wake_stop(vm);
}

int vm_start(struct vm *vm)
{
	int err, i;

	err = evloop_start(&vm->loop);
	if (err)
		return err;
	for (i = 0; i < vm->nr_vcpus; i++) {
		err = vcpu_start(&vm->vcpus[i]);
		if (err) {
			vm_request_stop(vm, VM_EXIT_ERROR, "could not start vcpu %d", i);
			return err;
		}
	}
	return 0;
}

int vm_wait(struct vm *vm, int extra_fd, uint64_t deadline_ns)
{
	struct pollfd pfd[2] = {{.fd = vm->stopfd, .events = POLLIN},
				{.fd = extra_fd, .events = POLLIN}};

	while (!vm->stopping) {
		int wait_ms = -1, n;

		if (deadline_ns) {
			uint64_t now = now_ns();

			if (now >= deadline_ns) {
				vm_request_stop(vm, VM_EXIT_TIMEOUT, "timed out");
				return 0;
			}
			wait_ms = (int)MIN((deadline_ns - now) / 1000000ULL + 1, 60000ULL);
		}
		n = poll(pfd, extra_fd >= 0 ? 2 : 1, wait_ms);
		if (n < 0 && errno != EINTR) {
			vm_request_stop(vm, VM_EXIT_ERROR, "poll: %s", strerror(errno));
			return 0;
		}
		if (n > 0 && extra_fd >= 0 && (pfd[1].revents & POLLIN) && !vm->stopping)
			return 1;
	}
	return 0;
}

int vm_finish(struct vm *vm, int status)
{
	int i;

	vm_request_stop(vm, status, "stopped by forkd");
	wake_parked(vm);
	for (i = 0; i < vm->nr_vcpus; i++)
		vcpu_kick(&vm->vcpus[i]);
	for (i = 0; i < vm->nr_vcpus; i++)
		vcpu_join(&vm->vcpus[i]);
	evloop_destroy(&vm->loop);
	return vm->exit_status;
}

int vm_run(struct vm *vm, uint64_t timeout_ms)
{
	if (vm_start(vm) == 0)
		vm_wait(vm, -1, timeout_ms ? now_ns() + timeout_ms * 1000000ULL : 0);
	else
		vm_request_stop(vm, VM_EXIT_ERROR, "could not start the VM");
	if (vm->exit_status == VM_EXIT_TIMEOUT)
		snprintf(vm->exit_reason, sizeof(vm->exit_reason), "timed out after %llu ms",
			 (unsigned long long)timeout_ms);
	return vm_finish(vm, VM_EXIT_ERROR);
}
