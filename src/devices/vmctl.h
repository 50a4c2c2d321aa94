/* forkd's guest control ports (0x610-0x61f), a tiny paravirtual device:
 *
 *   0x610  write  doorbell: 1 = "the guest is warm": snapshot it now
 *   0x614  read   generation: 0 in a booted VM, +1 at every restore
 *   0x618  read   child index (0xffffffff in a VM that was not forked)
 *   0x61c  read   the next 4 bytes of 64 bytes of fresh host entropy,
 *                 handed over before the child's vCPUs run; a write
 *                 rewinds to the first byte
 *
 * Test guests use it directly; Linux guests get the same facts from the
 * agent's after_fork request. */
#ifndef FORKD_DEVICES_VMCTL_H
#define FORKD_DEVICES_VMCTL_H

#include <stdint.h>

#include "vmm/vm.h"

#define VMCTL_PORT	    0x610
#define VMCTL_DOORBELL_WARM 1
#define VMCTL_NO_INDEX	    0xffffffffu
#define VMCTL_ENTROPY_BYTES 64

struct vmctl;

/* warm_fd: an eventfd written when the guest rings "warm" (-1: ignore). */
int vmctl_create(struct vm *vm, int warm_fd, struct vmctl **out) __must_check;

/* Give a restored child its identity: index and fresh entropy (from
 * getrandom). Call after vm_persist_restore(), before the vCPUs run. */
int vmctl_set_identity(struct vmctl *c, uint32_t index) __must_check;

#endif
