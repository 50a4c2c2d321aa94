/* The VMM jail: what a child's VMM process may still do once its VM is
 * built and restored.
 *
 * jail_enter(), in this order:
 *   0. the host's view (isolate/jail_fs.h): a mount namespace whose root
 *      holds only the run directory, a new network namespace unless the VMM
 *      has one of its own, while still privileged enough to build them;
 *   1. capabilities: every one dropped from the bounding set (needs
 *      CAP_SETPCAP, so before the uid change), then the jail's unprivileged
 *      uid and gid (jail_fs_become), then the ambient, inheritable,
 *      permitted and effective sets emptied;
 *   2. PR_SET_NO_NEW_PRIVS: no exec can give anything back;
 *   3. a seccomp allow-list (libseccomp): the system calls the vCPU run
 *      loops, the event loop and the devices make after setup, with
 *      arguments checked where that narrows them (ioctl only on the VM's
 *      own KVM descriptors, each with its requests; clone only for
 *      threads, socket only AF_UNIX streams, mmap/mprotect never
 *      executable, prctl only PR_SET_NAME, tgkill only this process). Any
 *      other call kills the whole process with SIGSYS
 *      (SCMP_ACT_KILL_PROCESS). clone3 fails with ENOSYS instead, because
 *      its flags sit behind a pointer seccomp cannot read; glibc then uses
 *      clone, whose flags are checked.
 *
 * When: after setup (every file, socket, memory mapping and KVM object the
 * VM needs exists) and before vm_start(), while the process has a single
 * thread, so the vCPU and event-loop threads are created under the filter
 * and no guest instruction runs before it is in force. The filter is
 * loaded with TSYNC anyway, so a caller with threads gets them all jailed
 * (or an error). docs/SECURITY.md explains each allowed call. */
#ifndef FORKD_ISOLATE_JAIL_H
#define FORKD_ISOLATE_JAIL_H

#include <seccomp.h>
#include <stdbool.h>
#include <stddef.h>

#include "common/log.h"

/* The KVM descriptors of the jailed VM: ioctl is allowed on these alone,
 * each with its own requests (jail_ioctls()): the system one for the MSR
 * index list, the VM's for interrupts and a branch's VM-wide reads, the
 * vCPUs' for KVM_RUN and the rest. sys may be -1 (not kept open). */
struct jail_kvm_fds {
	int sys;	 /* /dev/kvm */
	int vm;		 /* KVM_CREATE_VM's */
	const int *vcpu; /* nr_vcpu of them, KVM_CREATE_VCPU's */
	int nr_vcpu;
};

struct jail_opts {
	bool vsock;			/* the VM has virtio-vsock: guest-initiated connections need
					 * socket(AF_UNIX, SOCK_STREAM) and connect; host clients accept4 */
	bool net;			/* the VM has virtio-net: tap read/writev */
	bool boot;			/* forkd snapshot's VMM, booting: read on its eventfd, timer
					 * and console pipe */
	bool in_netns;			/* already in a network namespace of its own (one
					 * that allocators count it in): keep it */
	const char *run_dir;		/* the one host directory the VMM still names by
					 * path (its vsock sockets); must exist */
	const struct jail_kvm_fds *kvm; /* required: the descriptors ioctl may name */
};

/* Environment variable, test-only: set to a child index, the jailed child
 * with that index makes a forbidden call (open of /etc/hostname) right
 * after it reported itself running, and so dies with SIGSYS. Read once by
 * the child, before the jail (fork/spawner.c). */
#define JAIL_TEST_FORBIDDEN_ENV "FORKD_TEST_JAIL_FORBIDDEN"

/* A system call the jail allows, and why (for docs and tests). */
struct jail_rule {
	const char *name;
	const char *why;
};

/* The allowed calls for these options: a static table, *n entries. */
const struct jail_rule *jail_rules(const struct jail_opts *o, size_t *n);

/* Which KVM descriptor a request is allowed on. */
enum jail_kvm_fd { JAIL_KVM_SYS, JAIL_KVM_VM, JAIL_KVM_VCPU };

/* The ioctl requests allowed after setup (KVM_RUN and the few the run loop,
 * the emulation assists and the devices use); kind[i] (may be NULL) gets
 * the descriptor each one is allowed on. */
const unsigned long *jail_ioctls(size_t *n, const enum jail_kvm_fd **kind);

/* Build (not load) the filter. The caller releases it with seccomp_release. */
int jail_filter_build(const struct jail_opts *o, scmp_filter_ctx *out) __must_check;

/* Test-only, like the above: a comma-separated list of socket paths ("@"
 * first: an abstract name) every jailed child of forkd fork tries to
 * connect() to once running (it has virtio-vsock), logging
 * "jail: test: connect(PATH): RESULT" for each. Read before the jail. */
#define JAIL_TEST_CONNECT_ENV "FORKD_TEST_JAIL_CONNECT"

/* Step 1 alone, without the uid change (tests check it with capget). */
int jail_drop_caps(void) __must_check;

/* Steps 0-3. On failure the process is in an unknown state: exit. */
int jail_enter(const struct jail_opts *o) __must_check;

/* Test-only hook (see JAIL_TEST_FORBIDDEN_ENV): make one forbidden call. */
void jail_test_forbidden_call(void);

/* Test-only hook (see JAIL_TEST_CONNECT_ENV): paths, as the variable had
 * them (a copy the caller made before the jail). */
void jail_test_connect(const char *paths);

#endif
