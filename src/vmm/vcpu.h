/* vCPUs: creation, the run loop (one thread each) and exit handling.
 *
 * PIO and MMIO exits are dispatched on the vCPU's own thread. On KVM-PVM
 * hosts the run loop also completes instructions the CPL0 emulator rejects
 * (see vcpu_assist_emulation() in vcpu.c). */
#ifndef FORKD_VMM_VCPU_H
#define FORKD_VMM_VCPU_H

#include "vmm/vm.h"

/* Create vCPU `id`: KVM_CREATE_VCPU, mmap of kvm_run, CPUID, FPU and LAPIC
 * defaults. Called by vm_create() before any vCPU runs. */
int vcpu_create(struct vm *vm, struct vcpu *vcpu, int id) __must_check;
void vcpu_destroy(struct vcpu *vcpu);

/* Start the vCPU's thread. */
int vcpu_start(struct vcpu *vcpu) __must_check;
/* Make KVM_RUN return and keep the thread from re-entering it. */
void vcpu_kick(struct vcpu *vcpu);
void vcpu_join(struct vcpu *vcpu);

/* Signal used to kick vCPU threads out of KVM_RUN. */
#define VCPU_KICK_SIGNAL SIGUSR1

#endif
