/* Completing guest instructions that KVM-PVM's CPL0 emulator rejects.
 *
 * On KVM-PVM hosts guest kernel code is emulated, and the emulator fails
 * some instructions with KVM_INTERNAL_ERROR_EMULATION (platform.md). Where
 * no CPUID bit or kernel option keeps the guest off an instruction, forkd
 * performs it in user space and resumes the guest after it:
 *
 *   int3                 RIP+1, then #BP is injected (a trap)
 *   popcnt r, r/m        F3 [REX] 0F B8 /r (Linux's hweight alternatives)
 *   clac / stac          0F 01 CA / CB: clear / set RFLAGS.AC (SMAP)
 *   fwait                9B: #MF if the x87 status word has an unmasked
 *                        exception pending (ES), else nothing
 *   sysretq              48 0F 07: back to CPL3 (RIP = RCX, RFLAGS = R11, CS/SS
 *                        from MSR_STAR), for the SYSCALL path in pvm_syscall.h
 *   ldmxcsr / stmxcsr m32  0F AE /2, /3 (kernel_fpu_begin); #GP for
 *                        reserved MXCSR bits
 *
 * (Measured: the same emulator runs F3 0F BC/BD itself, as BSF/BSR, so
 * tzcnt/lzcnt never reach forkd; Linux uses them only where the results
 * agree.)
 *
 * Memory operands are read through the guest's own page tables
 * (KVM_TRANSLATE) and guest_ptr(). Anything else is left to the caller to
 * report. Only used on KVM-PVM hosts. */
#ifndef FORKD_VMM_ASSIST_H
#define FORKD_VMM_ASSIST_H

#include <stdbool.h>
#include <stdint.h>

#include "vmm/vm.h"

enum assist_op {
	ASSIST_NONE,
	ASSIST_INT3,
	ASSIST_POPCNT,
	ASSIST_CLAC,
	ASSIST_STAC,
	ASSIST_FWAIT,
	ASSIST_LDMXCSR,
	ASSIST_STMXCSR,
	ASSIST_SYSRET
};

/* A decoded instruction (64-bit mode). */
struct assist_insn {
	enum assist_op op;
	unsigned len;	 /* bytes, prefixes included */
	unsigned opsize; /* 2, 4 or 8 */
	unsigned reg;	 /* destination register number 0..15 */
	bool mem;	 /* source is memory */
	unsigned rm;	 /* source register when !mem */
	/* memory source: seg_base + base + index * scale + disp (+ next RIP) */
	int base, index; /* register numbers, -1 when absent */
	unsigned scale;
	int64_t disp;
	bool rip_relative;
	int seg; /* 0x64 (fs), 0x65 (gs) or 0 */
};

/* Decode insn[0..n). Returns 0, or -ENOTSUP for anything not listed. Pure:
 * unit tests call it directly. */
int assist_decode(const uint8_t *insn, unsigned n, struct assist_insn *out) __must_check;

/* Compute op on a source value of `opsize` bytes; sets *cf and *zf as the
 * instruction defines them. */
uint64_t assist_compute(enum assist_op op, unsigned opsize, uint64_t src, bool *cf, bool *zf);

/* Perform the instruction on the vCPU (registers, memory, RIP, flags or
 * the #BP injection). 0 when done, -ENOTSUP when forkd cannot assist. */
int assist_run(struct vcpu *vcpu, const uint8_t *insn, unsigned n) __must_check;

#endif
