#include "vmm/pvm_syscall.h"

#include <errno.h>
#include <string.h>
#include <sys/ioctl.h>

#include "common/util.h"

#define MSR_LSTAR   0xc0000082
#define STUB_LEN    26
#define SEARCH_SPAN (64 * 1024)

int pvm_syscall_init(struct vm *vm)
{
	static uint8_t deny; /* bit 0 clear: guest LSTAR writes exit */
	struct kvm_enable_cap cap = {.cap = KVM_CAP_X86_USER_SPACE_MSR,
				     .args = {KVM_MSR_EXIT_REASON_FILTER}};
	struct kvm_msr_filter filter = {.flags = KVM_MSR_FILTER_DEFAULT_ALLOW};

	if (ioctl(vm->vm_fd, KVM_ENABLE_CAP, &cap) < 0)
		return log_errno("KVM_ENABLE_CAP(X86_USER_SPACE_MSR)");
	filter.ranges[0] = (struct kvm_msr_filter_range){
	    .flags = KVM_MSR_FILTER_WRITE, .nmsrs = 1, .base = MSR_LSTAR, .bitmap = &deny};
	if (ioctl(vm->vm_fd, KVM_X86_SET_MSR_FILTER, &filter) < 0)
		return log_errno("KVM_X86_SET_MSR_FILTER(LSTAR)");
	return 0;
}

static void *gva_ptr(struct vcpu *vcpu, uint64_t gva, uint64_t len)
{
	struct kvm_translation tr = {.linear_address = gva};

	if ((gva & 4095) + len > 4096 || ioctl(vcpu->fd, KVM_TRANSLATE, &tr) < 0 || !tr.valid)
		return NULL;
	return guest_ptr(&vcpu->vm->mem, tr.physical_address, len);
}

/* A run of STUB_LEN int3 bytes (within one page) near lstar. */
static uint64_t find_padding(struct vcpu *vcpu, uint64_t lstar)
{
	for (uint64_t page = ALIGN_DOWN(lstar, 4096ULL) - SEARCH_SPAN;
	     page < ALIGN_DOWN(lstar, 4096ULL) + SEARCH_SPAN; page += 4096) {
		uint8_t *p = gva_ptr(vcpu, page, 4096);
		unsigned run = 0;

		if (!p)
			continue;
		for (unsigned i = 0; i < 4096; i++) {
			run = p[i] == 0xcc ? run + 1 : 0;
			/* keep one int3 on each side of the stub */
			if (run == STUB_LEN + 2)
				return page + i - STUB_LEN;
		}
	}
	return 0;
}

static void put_rel32(uint8_t *at, uint64_t next_ip, uint64_t target)
{
	int32_t rel = (int32_t)(int64_t)(target - next_ip);

	memcpy(at, &rel, 4);
}

static int install(struct vcpu *vcpu, uint64_t lstar)
{
	struct kvm_sregs sregs;
	uint8_t *gate, *stub;
	uint64_t handler, at;
	uint32_t lo;

	if (ioctl(vcpu->fd, KVM_GET_SREGS, &sregs) < 0)
		return log_errno("KVM_GET_SREGS(vcpu %d)", vcpu->id);
	if (sregs.idt.limit < 14 * 16 + 15)
		return -EAGAIN;
	gate = gva_ptr(vcpu, sregs.idt.base + 14 * 16, 16);
	if (!gate)
		return -EAGAIN;
	handler = (uint64_t)(gate[0] | gate[1] << 8) | (uint64_t)(gate[6] | gate[7] << 8) << 16 |
		  (uint64_t)(gate[8] | gate[9] << 8 | gate[10] << 16 | (uint32_t)gate[11] << 24)
		      << 32;
	if ((int64_t)lstar >= 0 || (uint32_t)(lstar >> 32) != 0xffffffffu)
		return -ENOTSUP; /* the stub compares a sign-extended imm32 */
	/* Already in place (a VM restored from a snapshot of a guest that
	 * had it): chaining a second stub to the first would loop. */
	stub = gva_ptr(vcpu, handler, 9);
	lo = (uint32_t)lstar;
	if (stub && !memcmp(stub, "\x48\x81\x7c\x24\x08", 5) && !memcmp(stub + 5, &lo, 4)) {
		vcpu->vm->pvm_syscall_stub = handler;
		return 0;
	}
	at = find_padding(vcpu, lstar);
	stub = at ? gva_ptr(vcpu, at, STUB_LEN) : NULL;
	if (!stub) {
		log_warn("KVM-PVM SYSCALL fix: no int3 padding near LSTAR 0x%llx",
			 (unsigned long long)lstar);
		return -ENOSPC;
	}
	/* Exception frame on entry: error code, RIP, CS, RFLAGS, RSP, SS. */
	lo = (uint32_t)lstar;
	stub[0] = 0x48; /* cmpq $lstar, 8(%rsp) */
	stub[1] = 0x81;
	stub[2] = 0x7c;
	stub[3] = 0x24;
	stub[4] = 0x08;
	memcpy(stub + 5, &lo, 4);
	stub[9] = 0x0f; /* jne handler */
	stub[10] = 0x85;
	put_rel32(stub + 11, at + 15, handler);
	stub[15] = 0xfc; /* cld */
	stub[16] = 0x48; /* mov 0x20(%rsp), %rsp: the user RSP */
	stub[17] = 0x8b;
	stub[18] = 0x64;
	stub[19] = 0x24;
	stub[20] = 0x20;
	stub[21] = 0xe9; /* jmp lstar */
	put_rel32(stub + 22, at + 26, lstar);
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	gate[0] = (uint8_t)at;
	gate[1] = (uint8_t)(at >> 8);
	gate[6] = (uint8_t)(at >> 16);
	gate[7] = (uint8_t)(at >> 24);
	log_info("KVM-PVM SYSCALL fix: #PF gate 0x%llx -> trampoline at 0x%llx",
		 (unsigned long long)handler, (unsigned long long)at);
	vcpu->vm->pvm_syscall_stub = at;
	return 0;
}

int pvm_syscall_wrmsr(struct vcpu *vcpu)
{
	struct kvm_run *run = vcpu->run;
	struct {
		struct kvm_msrs hdr;
		struct kvm_msr_entry e;
	} m = {.hdr.nmsrs = 1};

	if (run->msr.index != MSR_LSTAR) {
		run->msr.error = 1;
		return 0;
	}
	m.e.index = MSR_LSTAR;
	m.e.data = run->msr.data;
	if (ioctl(vcpu->fd, KVM_SET_MSRS, &m) != 1) {
		run->msr.error = 1;
		return log_errno("KVM_SET_MSRS(vcpu %d, LSTAR)", vcpu->id);
	}
	run->msr.error = 0;
	if (!__atomic_load_n(&vcpu->vm->pvm_syscall_stub, __ATOMIC_ACQUIRE))
		(void)install(vcpu, run->msr.data);
	return 0;
}
