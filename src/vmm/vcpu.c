#include "vmm/vcpu.h"

#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "common/util.h"
#include "vmm/assist.h"
#include "vmm/cpuid.h"
#include "vmm/pvm_syscall.h"

#define APIC_LVT0     0x350
#define APIC_LVT1     0x360
#define APIC_MODE_NMI 0x4
#define APIC_MODE_EXT 0x7

static void lapic_set_lvt_mode(struct kvm_lapic_state *lapic, unsigned reg, unsigned mode)
{
	uint32_t v;

	memcpy(&v, &lapic->regs[reg], 4);
	v = (v & ~0x700u) | (mode << 8);
	memcpy(&lapic->regs[reg], &v, 4);
}

int vcpu_create(struct vm *vm, struct vcpu *vcpu, int id)
{
	struct kvm_fpu fpu = {.fcw = 0x37f, .mxcsr = 0x1f80};
	struct kvm_lapic_state lapic;
	int err;

	memset(vcpu, 0, sizeof(*vcpu));
	vcpu->vm = vm;
	vcpu->id = id;
	vcpu->fd = ioctl(vm->vm_fd, KVM_CREATE_VCPU, id);
	if (vcpu->fd < 0)
		return log_errno("KVM_CREATE_VCPU(%d)", id);
	vcpu->run =
	    mmap(NULL, (size_t)vm->run_size, PROT_READ | PROT_WRITE, MAP_SHARED, vcpu->fd, 0);
	if (vcpu->run == MAP_FAILED) {
		err = log_errno("mmap kvm_run(vcpu %d)", id);
		vcpu->run = NULL;
		goto err;
	}
	err = cpuid_apply(vcpu->fd, vm->cpuid, id, vm->nr_vcpus);
	if (err)
		goto err;
	/* A VM built to take a snapshot's state gets FPU and LAPIC from it:
	 * setting boot defaults first would be work thrown away, on the path
	 * every forked child takes. */
	if (vm->restoring)
		return 0;
	if (ioctl(vcpu->fd, KVM_SET_FPU, &fpu) < 0) {
		err = log_errno("KVM_SET_FPU(vcpu %d)", id);
		goto err;
	}
	/* LINT0 delivers the legacy PIC (ExtINT), LINT1 is NMI, as firmware
	 * would leave them (MP spec 1.4 §5.1, virtual wire mode). */
	if (ioctl(vcpu->fd, KVM_GET_LAPIC, &lapic) < 0) {
		err = log_errno("KVM_GET_LAPIC(vcpu %d)", id);
		goto err;
	}
	lapic_set_lvt_mode(&lapic, APIC_LVT0, APIC_MODE_EXT);
	lapic_set_lvt_mode(&lapic, APIC_LVT1, APIC_MODE_NMI);
	if (ioctl(vcpu->fd, KVM_SET_LAPIC, &lapic) < 0) {
		err = log_errno("KVM_SET_LAPIC(vcpu %d)", id);
		goto err;
	}
	return 0;

err:
	vcpu_destroy(vcpu);
	return err;
}

void vcpu_destroy(struct vcpu *vcpu)
{
	if (vcpu->run)
		munmap(vcpu->run, (size_t)vcpu->vm->run_size);
	if (vcpu->fd > 0)
		close(vcpu->fd);
	vcpu->run = NULL;
	vcpu->fd = -1;
}

static void handle_pio(struct vcpu *vcpu)
{
	struct kvm_run *run = vcpu->run;
	uint8_t *data = (uint8_t *)run + run->io.data_offset;
	uint32_t i;

	for (i = 0; i < run->io.count; i++, data += run->io.size) {
		if (run->io.direction == KVM_EXIT_IO_OUT)
			bus_write(&vcpu->vm->pio, run->io.port, data, run->io.size);
		else
			bus_read(&vcpu->vm->pio, run->io.port, data, run->io.size);
	}
}

static void handle_mmio(struct vcpu *vcpu)
{
	struct kvm_run *run = vcpu->run;

	if (run->mmio.len > 8)
		return;
	if (run->mmio.is_write)
		bus_write(&vcpu->vm->mmio, run->mmio.phys_addr, run->mmio.data, run->mmio.len);
	else
		bus_read(&vcpu->vm->mmio, run->mmio.phys_addr, run->mmio.data, run->mmio.len);
}

/* The instruction bytes KVM reported with an emulation failure, if any. */
static unsigned emulation_insn(const struct kvm_run *run, uint8_t *bytes)
{
	unsigned n;

	if (run->internal.suberror != KVM_INTERNAL_ERROR_EMULATION ||
	    !(run->emulation_failure.flags & KVM_INTERNAL_ERROR_EMULATION_FLAG_INSTRUCTION_BYTES))
		return 0;
	n = MIN(run->emulation_failure.insn_size, sizeof(run->emulation_failure.insn_bytes));
	memcpy(bytes, run->emulation_failure.insn_bytes, n);
	return n;
}

/* On KVM-PVM, complete what the CPL0 emulator rejected (assist.h). */
static int vcpu_assist_emulation(struct vcpu *vcpu, const uint8_t *insn, unsigned n)
{
	if (!vcpu->vm->pvm || n == 0)
		return -ENOTSUP;
	if (assist_run(vcpu, insn, n))
		return -ENOTSUP;
	vcpu->nr_assists++;
	return 0;
}

static void report_internal_error(struct vcpu *vcpu)
{
	struct kvm_run *run = vcpu->run;
	struct kvm_regs regs = {0};
	struct kvm_sregs sregs = {0};
	uint8_t insn[16];
	char hex[64] = "", *p = hex;
	unsigned i, n = emulation_insn(run, insn);

	ioctl(vcpu->fd, KVM_GET_REGS, &regs);
	ioctl(vcpu->fd, KVM_GET_SREGS, &sregs);
	for (i = 0; i < n; i++)
		p += sprintf(p, "%02x ", insn[i]);
	if (!n) {
		/* No decoded bytes: show the raw data words instead. */
		for (i = 0; i < MIN(run->internal.ndata, 4u); i++)
			p += sprintf(p, "%llx ", (unsigned long long)run->internal.data[i]);
	}
	vm_request_stop(vcpu->vm, VM_EXIT_EMULATION,
			"vcpu %d: KVM internal error (suberror %u) at RIP 0x%llx (CPL %u), "
			"instruction bytes: %s%s",
			vcpu->id, run->internal.suberror, (unsigned long long)regs.rip,
			sregs.cs.selector & 3, hex,
			vcpu->vm->pvm
			    ? "; KVM-PVM's emulator cannot run this instruction and forkd "
			      "has no assist for it yet"
			    : "");
}

/* Park at a clean boundary until vm_resume() or a stop. An exit handled in
 * user space is completed by entering KVM_RUN once with immediate_exit
 * set: KVM finishes the instruction, then returns EINTR without running
 * guest code. */
static void vcpu_park(struct vcpu *vcpu)
{
	struct vm *vm = vcpu->vm;

	if (vcpu->io_pending) {
		vcpu->run->immediate_exit = 1;
		if (ioctl(vcpu->fd, KVM_RUN, 0) == 0 || (errno != EINTR && errno != EAGAIN))
			log_err("vcpu %d: completing the pending I/O exit before pausing failed",
				vcpu->id);
		vcpu->io_pending = false;
	}
	vcpu->run->immediate_exit = 0;
	pthread_mutex_lock(&vm->pause_lock);
	vm->nr_parked++;
	pthread_cond_broadcast(&vm->pause_cond);
	while (vm->pause_requested && !vm->stopping)
		pthread_cond_wait(&vm->pause_cond, &vm->pause_lock);
	vm->nr_parked--;
	pthread_mutex_unlock(&vm->pause_lock);
}

/* Pin the calling vCPU thread as vm_pin_plan() decided (vm.c says why). */
static void vcpu_pin(struct vcpu *vcpu)
{
	const struct vm *vm = vcpu->vm;
	int k, target = -1;
	cpu_set_t one;

	if (vm->pin_n <= 1)
		return;
	k = (vm->pin_base + vcpu->id) % vm->pin_n;
	for (int c = 0; c < CPU_SETSIZE; c++)
		if (CPU_ISSET(c, &vm->pin_cpus) && k-- == 0) {
			target = c;
			break;
		}
	if (target < 0)
		return;
	CPU_ZERO(&one);
	CPU_SET(target, &one);
	if (sched_setaffinity(0, sizeof(one), &one) < 0)
		log_warn("vcpu %d: could not pin to host CPU %d: %s", vcpu->id, target,
			 strerror(errno));
}

static void *vcpu_thread(void *arg)
{
	struct vcpu *vcpu = arg;
	struct vm *vm = vcpu->vm;
	struct kvm_run *run = vcpu->run;
	uint8_t insn[16];
	char name[16];
	sigset_t set;

	snprintf(name, sizeof(name), "vcpu%d", vcpu->id);
	pthread_setname_np(pthread_self(), name);
	vcpu_pin(vcpu);
	sigemptyset(&set);
	sigaddset(&set, VCPU_KICK_SIGNAL);
	pthread_sigmask(SIG_UNBLOCK, &set, NULL);

	while (!vm->stopping) {
		if (vm->pause_requested) {
			vcpu_park(vcpu);
			continue;
		}
		if (ioctl(vcpu->fd, KVM_RUN, 0) < 0) {
			if (errno == EINTR || errno == EAGAIN) {
				run->immediate_exit = 0;
				continue;
			}
			vm_request_stop(vm, VM_EXIT_ERROR, "KVM_RUN(vcpu %d): %s", vcpu->id,
					strerror(errno));
			break;
		}
		vcpu->nr_exits++;
		vcpu->io_pending = false;
		switch (run->exit_reason) {
		case KVM_EXIT_IO:
			handle_pio(vcpu);
			vcpu->io_pending = true;
			break;
		case KVM_EXIT_MMIO:
			handle_mmio(vcpu);
			vcpu->io_pending = true;
			break;
		case KVM_EXIT_SHUTDOWN:
			vm_request_stop(vm, VM_EXIT_CRASH,
					"vcpu %d: guest shut down (triple fault)", vcpu->id);
			break;
		case KVM_EXIT_FAIL_ENTRY:
			vm_request_stop(
			    vm, VM_EXIT_CRASH, "vcpu %d: KVM entry failed, hardware reason 0x%llx",
			    vcpu->id,
			    (unsigned long long)run->fail_entry.hardware_entry_failure_reason);
			break;
		case KVM_EXIT_INTERNAL_ERROR: {
			unsigned n = emulation_insn(run, insn);

			if (vcpu_assist_emulation(vcpu, insn, n) == 0)
				break;
			report_internal_error(vcpu);
			break;
		}
		case KVM_EXIT_SYSTEM_EVENT:
			vm_request_stop(
			    vm,
			    run->system_event.type == KVM_SYSTEM_EVENT_CRASH ? VM_EXIT_CRASH
									     : VM_EXIT_POWEROFF,
			    "vcpu %d: system event %u", vcpu->id, run->system_event.type);
			break;
		case KVM_EXIT_INTR:
			break;
		case KVM_EXIT_X86_WRMSR:
			if (pvm_syscall_wrmsr(vcpu))
				vm_request_stop(vm, VM_EXIT_ERROR, "vcpu %d: MSR 0x%x write failed",
						vcpu->id, run->msr.index);
			break;
		case KVM_EXIT_X86_RDMSR:
			run->msr.error = 1;
			break;
		default:
			vm_request_stop(vm, VM_EXIT_ERROR, "vcpu %d: unexpected KVM exit %u",
					vcpu->id, run->exit_reason);
			break;
		}
	}
	return NULL;
}

static void kick_handler(int sig)
{
	(void)sig;
}

int vcpu_start(struct vcpu *vcpu)
{
	struct sigaction sa = {.sa_handler = kick_handler};
	sigset_t set, old;
	int err;

	/* No SA_RESTART: the signal must make KVM_RUN return EINTR. */
	sigemptyset(&sa.sa_mask);
	if (sigaction(VCPU_KICK_SIGNAL, &sa, NULL) < 0)
		return log_errno("sigaction(vCPU kick signal)");
	/* The thread starts with the kick signal blocked and unblocks it itself,
	 * so the signal is only ever delivered to vCPU threads that expect it. */
	sigemptyset(&set);
	sigaddset(&set, VCPU_KICK_SIGNAL);
	pthread_sigmask(SIG_BLOCK, &set, &old);
	err = pthread_create(&vcpu->thread, NULL, vcpu_thread, vcpu);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (err) {
		errno = err;
		return log_errno("pthread_create(vcpu %d)", vcpu->id);
	}
	vcpu->started = true;
	return 0;
}

void vcpu_kick(struct vcpu *vcpu)
{
	if (!vcpu->started)
		return;
	__atomic_store_n(&vcpu->run->immediate_exit, 1, __ATOMIC_SEQ_CST);
	pthread_kill(vcpu->thread, VCPU_KICK_SIGNAL);
}

void vcpu_join(struct vcpu *vcpu)
{
	if (!vcpu->started)
		return;
	pthread_join(vcpu->thread, NULL);
	vcpu->started = false;
}
