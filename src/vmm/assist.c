#include "vmm/assist.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#include "common/util.h"

#define RFLAGS_CF (1ULL << 0)
#define RFLAGS_PF (1ULL << 2)
#define RFLAGS_AF (1ULL << 4)
#define RFLAGS_ZF (1ULL << 6)
#define RFLAGS_SF (1ULL << 7)
#define RFLAGS_OF (1ULL << 11)
#define RFLAGS_AC (1ULL << 18)

int assist_decode(const uint8_t *insn, unsigned n, struct assist_insn *out)
{
	bool rep = false, opsize16 = false;
	unsigned i = 0, rex = 0, modrm, mod, rm;

	memset(out, 0, sizeof(*out));
	out->base = out->index = -1;
	if (n >= 1 && insn[0] == 0xcc) {
		out->op = ASSIST_INT3;
		out->len = 1;
		return 0;
	}
	if (n >= 3 && insn[0] == 0x48 && insn[1] == 0x0f && insn[2] == 0x07) {
		out->op = ASSIST_SYSRET;
		out->len = 3;
		return 0;
	}
	if (n >= 1 && insn[0] == 0x9b) {
		out->op = ASSIST_FWAIT;
		out->len = 1;
		return 0;
	}
	if (n >= 3 && insn[0] == 0x0f && insn[1] == 0x01 && (insn[2] == 0xca || insn[2] == 0xcb)) {
		out->op = insn[2] == 0xca ? ASSIST_CLAC : ASSIST_STAC;
		out->len = 3;
		return 0;
	}
	/* Legacy prefixes, then at most one REX right before the opcode. */
	for (; i < n && i < 14; i++) {
		uint8_t b = insn[i];

		if (b == 0xf3)
			rep = true;
		else if (b == 0x66)
			opsize16 = true;
		else if (b == 0x64 || b == 0x65)
			out->seg = b;
		else if (b == 0x2e || b == 0x3e || b == 0x26 || b == 0x36)
			; /* segment overrides without effect in 64-bit mode */
		else
			break;
	}
	if (i < n && (insn[i] & 0xf0) == 0x40)
		rex = insn[i++];
	if (i + 3 > n || insn[i] != 0x0f)
		return -ENOTSUP;
	if (rep && insn[i + 1] == 0xb8) {
		out->op = ASSIST_POPCNT;
		out->opsize = (rex & 8) ? 8 : opsize16 ? 2 : 4;
	} else if (!rep && !opsize16 && insn[i + 1] == 0xae && (insn[i + 2] >> 6) != 3 &&
		   ((insn[i + 2] >> 3) & 7) == 2) {
		out->op = ASSIST_LDMXCSR;
		out->opsize = 4;
	} else if (!rep && !opsize16 && insn[i + 1] == 0xae && (insn[i + 2] >> 6) != 3 &&
		   ((insn[i + 2] >> 3) & 7) == 3) {
		out->op = ASSIST_STMXCSR;
		out->opsize = 4;
	} else {
		return -ENOTSUP;
	}
	i += 2;
	modrm = insn[i++];
	mod = modrm >> 6;
	out->reg = ((modrm >> 3) & 7) | ((rex & 4) << 1);
	rm = modrm & 7;
	if (mod == 3) {
		out->rm = rm | ((rex & 1) << 3);
		out->len = i;
		return 0;
	}
	out->mem = true;
	if (rm == 4) { /* SIB */
		unsigned sib, idx, base;

		if (i >= n)
			return -ENOTSUP;
		sib = insn[i++];
		out->scale = 1u << (sib >> 6);
		idx = ((sib >> 3) & 7) | ((rex & 2) << 2);
		base = (sib & 7) | ((rex & 1) << 3);
		out->index = idx == 4 ? -1 : (int)idx; /* rsp cannot be an index */
		if ((sib & 7) == 5 && mod == 0) {
			out->base = -1; /* disp32, no base */
			mod = 2;	/* consume a disp32 below */
		} else {
			out->base = (int)base;
		}
	} else if (rm == 5 && mod == 0) {
		out->rip_relative = true;
		mod = 2;
	} else {
		out->base = (int)(rm | ((rex & 1) << 3));
	}
	if (mod == 1) {
		if (i + 1 > n)
			return -ENOTSUP;
		out->disp = (int8_t)insn[i++];
	} else if (mod == 2) {
		int32_t d;

		if (i + 4 > n)
			return -ENOTSUP;
		memcpy(&d, insn + i, 4);
		out->disp = d;
		i += 4;
	}
	out->len = i;
	return 0;
}

uint64_t assist_compute(enum assist_op op, unsigned opsize, uint64_t src, bool *cf, bool *zf)
{
	unsigned bits = opsize * 8;
	uint64_t r;

	if (bits < 64)
		src &= (1ULL << bits) - 1;
	switch (op) {
	case ASSIST_POPCNT:
		r = (uint64_t)__builtin_popcountll(src);
		*cf = false;
		*zf = src == 0;
		return r;
	default:
		*cf = *zf = false;
		return 0;
	}
}

static __u64 *reg_ptr(struct kvm_regs *r, unsigned n)
{
	__u64 *const map[16] = {&r->rax, &r->rcx, &r->rdx, &r->rbx, &r->rsp, &r->rbp,
				&r->rsi, &r->rdi, &r->r8,  &r->r9,  &r->r10, &r->r11,
				&r->r12, &r->r13, &r->r14, &r->r15};

	return map[n & 15];
}

/* Copy between buf and guest-virtual memory through the vCPU's page
 * tables, page by page. -EFAULT when a page is not mapped (or not
 * writable, for a write) or not RAM. */
static int access_guest_virt(struct vcpu *vcpu, uint64_t gva, void *buf, unsigned len, bool write)
{
	uint8_t *p = buf;

	while (len) {
		struct kvm_translation tr = {.linear_address = gva};
		unsigned chunk = (unsigned)MIN((uint64_t)len, 4096 - (gva & 4095));
		int err;

		if (ioctl(vcpu->fd, KVM_TRANSLATE, &tr) < 0)
			return log_errno("KVM_TRANSLATE(vcpu %d, 0x%llx)", vcpu->id,
					 (unsigned long long)gva);
		if (!tr.valid || (write && !tr.writeable))
			return -EFAULT;
		err = write ? guest_write(&vcpu->vm->mem, tr.physical_address, p, chunk)
			    : guest_read(&vcpu->vm->mem, tr.physical_address, p, chunk);
		if (err)
			return -EFAULT;
		p += chunk;
		gva += chunk;
		len -= chunk;
	}
	return 0;
}

static int read_guest_virt(struct vcpu *vcpu, uint64_t gva, void *buf, unsigned len)
{
	return access_guest_virt(vcpu, gva, buf, len, false);
}

static int write_guest_virt(struct vcpu *vcpu, uint64_t gva, const void *buf, unsigned len)
{
	return access_guest_virt(vcpu, gva, (void *)buf, len, true);
}

static int set_regs(struct vcpu *vcpu, const struct kvm_regs *regs)
{
	if (ioctl(vcpu->fd, KVM_SET_REGS, regs) < 0)
		return log_errno("KVM_SET_REGS(vcpu %d)", vcpu->id);
	return 0;
}

/* Deliver exception `vector` at the vCPU's current RIP (set the registers
 * first where the exception is a trap). has_code: push error_code. */
static int inject_exception(struct vcpu *vcpu, uint8_t vector, bool has_code, uint32_t code)
{
	struct kvm_vcpu_events ev;

	if (ioctl(vcpu->fd, KVM_GET_VCPU_EVENTS, &ev) < 0)
		return log_errno("KVM_GET_VCPU_EVENTS(vcpu %d)", vcpu->id);
	ev.exception.injected = 1;
	ev.exception.nr = vector;
	ev.exception.has_error_code = has_code;
	ev.exception.error_code = has_code ? code : 0;
	if (ioctl(vcpu->fd, KVM_SET_VCPU_EVENTS, &ev) < 0)
		return log_errno("KVM_SET_VCPU_EVENTS(vcpu %d)", vcpu->id);
	return 0;
}

/* MXCSR bits defined on the CPUs forkd runs on (DAZ included); setting any
 * other bit is #GP(0). */
#define MXCSR_MASK 0xffffu

/* MXCSR lives at byte 24 of the XSAVE legacy region. KVM takes it from
 * KVM_SET_XSAVE only when XSTATE_BV (header, byte 512) marks the SSE
 * component present. (KVM_GET_FPU's mxcsr reads 0 on KVM-PVM, and
 * KVM_SET_FPU does not reach it.) */
#define XSAVE_MXCSR_OFFSET 24
#define XSAVE_XSTATE_BV	   512
#define XFEATURE_MASK_SSE  (1ULL << 1)

static int assist_mxcsr(struct vcpu *vcpu, struct kvm_regs *regs, const struct assist_insn *d,
			uint64_t ea)
{
	struct kvm_xsave *xs = malloc(sizeof(*xs));
	uint32_t v;
	int err = 0;

	if (!xs)
		return -ENOMEM;
	if (ioctl(vcpu->fd, KVM_GET_XSAVE, xs) < 0) {
		err = log_errno("KVM_GET_XSAVE(vcpu %d)", vcpu->id);
		goto out;
	}
	if (d->op == ASSIST_LDMXCSR) {
		err = read_guest_virt(vcpu, ea, &v, 4);
		if (err)
			goto out;
		if (v & ~MXCSR_MASK) {
			free(xs);
			return inject_exception(vcpu, 13, true, 0); /* #GP(0) */
		}
		uint64_t bv;

		memcpy((uint8_t *)xs->region + XSAVE_MXCSR_OFFSET, &v, 4);
		memcpy(&bv, (uint8_t *)xs->region + XSAVE_XSTATE_BV, 8);
		bv |= XFEATURE_MASK_SSE;
		memcpy((uint8_t *)xs->region + XSAVE_XSTATE_BV, &bv, 8);
		if (ioctl(vcpu->fd, KVM_SET_XSAVE, xs) < 0) {
			err = log_errno("KVM_SET_XSAVE(vcpu %d)", vcpu->id);
			goto out;
		}
	} else {
		memcpy(&v, (uint8_t *)xs->region + XSAVE_MXCSR_OFFSET, 4);
		err = write_guest_virt(vcpu, ea, &v, 4);
		if (err)
			goto out;
	}
	regs->rip += d->len;
	err = set_regs(vcpu, regs);
out:
	free(xs);
	return err == -EFAULT ? -ENOTSUP : err;
}

/* SYSRET to 64-bit user mode (SDM vol. 2B, SYSRET). */
static int assist_sysret(struct vcpu *vcpu, struct kvm_regs *regs)
{
	struct {
		struct kvm_msrs hdr;
		struct kvm_msr_entry e;
	} m = {.hdr.nmsrs = 1, .e.index = 0xc0000081 /* MSR_STAR */};
	struct kvm_sregs sregs;
	uint16_t base;

	if (ioctl(vcpu->fd, KVM_GET_MSRS, &m) != 1)
		return log_errno("KVM_GET_MSRS(vcpu %d, STAR)", vcpu->id);
	if (ioctl(vcpu->fd, KVM_GET_SREGS, &sregs) < 0)
		return log_errno("KVM_GET_SREGS(vcpu %d)", vcpu->id);
	base = (uint16_t)(m.e.data >> 48);
	sregs.cs = (struct kvm_segment){.selector = (uint16_t)((base + 16) | 3),
					.limit = 0xffffffff,
					.type = 0xb,
					.present = 1,
					.dpl = 3,
					.s = 1,
					.l = 1,
					.g = 1};
	sregs.ss = (struct kvm_segment){.selector = (uint16_t)((base + 8) | 3),
					.limit = 0xffffffff,
					.type = 0x3,
					.present = 1,
					.dpl = 3,
					.s = 1,
					.db = 1,
					.g = 1};
	regs->rip = regs->rcx;
	regs->rflags = (regs->r11 & ~((1ULL << 16) | (1ULL << 17))) | 2;
	if (ioctl(vcpu->fd, KVM_SET_SREGS, &sregs) < 0)
		return log_errno("KVM_SET_SREGS(vcpu %d)", vcpu->id);
	return set_regs(vcpu, regs);
}

int assist_run(struct vcpu *vcpu, const uint8_t *insn, unsigned n)
{
	struct assist_insn d;
	struct kvm_regs regs;
	struct kvm_sregs sregs;
	uint64_t src = 0, result, ea = 0;
	__u64 *dst;
	bool cf, zf;
	int err;

	if (assist_decode(insn, n, &d))
		return -ENOTSUP;
	if (ioctl(vcpu->fd, KVM_GET_REGS, &regs) < 0)
		return log_errno("KVM_GET_REGS(vcpu %d)", vcpu->id);
	if (d.op == ASSIST_INT3) {
		regs.rip += 1; /* #BP is a trap: the frame points after int3 */
		return set_regs(vcpu, &regs) ?: inject_exception(vcpu, 3, false, 0);
	}
	if (d.op == ASSIST_SYSRET)
		return assist_sysret(vcpu, &regs);
	if (d.op == ASSIST_FWAIT) {
		struct kvm_fpu fpu;

		if (ioctl(vcpu->fd, KVM_GET_FPU, &fpu) < 0)
			return log_errno("KVM_GET_FPU(vcpu %d)", vcpu->id);
		/* FSW.ES summarises unmasked pending x87 exceptions; #MF is a
		 * fault, raised before fwait completes. */
		if (fpu.fsw & 0x80)
			return inject_exception(vcpu, 16, false, 0);
		regs.rip += 1;
		return set_regs(vcpu, &regs);
	}
	if (d.op == ASSIST_CLAC || d.op == ASSIST_STAC) {
		if (d.op == ASSIST_CLAC)
			regs.rflags &= ~RFLAGS_AC;
		else
			regs.rflags |= RFLAGS_AC;
		regs.rip += d.len;
		return set_regs(vcpu, &regs);
	}

	if (ioctl(vcpu->fd, KVM_GET_SREGS, &sregs) < 0)
		return log_errno("KVM_GET_SREGS(vcpu %d)", vcpu->id);
	if (!sregs.cs.l)
		return -ENOTSUP; /* decoded as 64-bit code only */
	if (d.mem) {
		ea = (uint64_t)d.disp;

		if (d.rip_relative)
			ea += regs.rip + d.len;
		if (d.base >= 0)
			ea += *reg_ptr(&regs, (unsigned)d.base);
		if (d.index >= 0)
			ea += *reg_ptr(&regs, (unsigned)d.index) * d.scale;
		if (d.seg == 0x64)
			ea += sregs.fs.base;
		else if (d.seg == 0x65)
			ea += sregs.gs.base;
	} else {
		src = *reg_ptr(&regs, d.rm);
	}
	if (d.op == ASSIST_LDMXCSR || d.op == ASSIST_STMXCSR)
		return assist_mxcsr(vcpu, &regs, &d, ea);
	if (d.mem) {
		err = read_guest_virt(vcpu, ea, &src, d.opsize);
		if (err)
			return err == -EFAULT ? -ENOTSUP : err;
	}

	result = assist_compute(d.op, d.opsize, src, &cf, &zf);
	dst = reg_ptr(&regs, d.reg);
	if (d.opsize == 2)
		*dst = (*dst & ~0xffffULL) | (result & 0xffff);
	else
		*dst = result; /* 32-bit results zero-extend */
	regs.rflags &= ~(RFLAGS_CF | RFLAGS_PF | RFLAGS_AF | RFLAGS_ZF | RFLAGS_SF | RFLAGS_OF);
	if (cf)
		regs.rflags |= RFLAGS_CF;
	if (zf)
		regs.rflags |= RFLAGS_ZF;
	regs.rip += d.len;
	return set_regs(vcpu, &regs);
}
