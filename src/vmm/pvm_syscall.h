/* SYSCALL for unmodified Linux guests on KVM-PVM hosts.
 *
 * Measured: for a guest user-mode SYSCALL, KVM-PVM loads RCX, R11 and
 * RIP = LSTAR but leaves the vCPU at CPL3. The kernel's entry code then
 * faults on its first instruction fetch (kernel text is supervisor-only),
 * and that #PF does reach the guest kernel at CPL0. forkd turns that fault
 * back into the system call it was:
 *
 *  - guest writes to MSR_LSTAR exit to forkd (an MSR filter); forkd
 *    applies the value, and the first time writes a small trampoline into
 *    int3 padding of kernel text near LSTAR and points IDT vector 14 (#PF)
 *    at it;
 *  - the trampoline checks whether the fault is an instruction fetch at
 *    LSTAR from CPL3; if so it clears DF, takes the user RSP from the
 *    exception frame and jumps to LSTAR at CPL0 (with RCX/R11 as SYSCALL
 *    left them and the user GS still loaded: exactly what the kernel's
 *    SYSCALL entry expects); otherwise it jumps to the kernel's own #PF
 *    handler.
 *
 * Only on KVM-PVM hosts, where it is on unless FORKD_PVM_SYSCALL_FIX=0.
 * A VM restored from a snapshot finds the trampoline already in guest
 * memory and leaves it as it is. */
#ifndef FORKD_VMM_PVM_SYSCALL_H
#define FORKD_VMM_PVM_SYSCALL_H

#include "vmm/vm.h"

int pvm_syscall_init(struct vm *vm) __must_check;
/* KVM_EXIT_X86_WRMSR */
int pvm_syscall_wrmsr(struct vcpu *vcpu) __must_check;

#endif
