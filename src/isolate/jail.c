#include "isolate/jail.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <linux/kvm.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/util.h"
#include "isolate/jail_fs.h"

/* Every call below was seen in jailed children running the fork tests
 * (blk, vsock, rng, live fork, several vCPUs) under strace -f, except the
 * few marked "not seen" that the kernel or libc may need on other paths;
 * docs/SECURITY.md has the same list. Calls with argument checks are added
 * in jail_filter_build() and listed here too. */
static const struct jail_rule base_rules[] = {
    {"write", "console, eventfds, report pipe, stderr"},
    {"close", "vsock connections; exit"},
    {"pread64", "virtio-blk image and overlay"},
    {"pwrite64", "virtio-blk overlay"},
    {"futex", "mutexes and condition variables (pause protocol, devices)"},
    {"epoll_wait", "event loop"},
    {"epoll_ctl", "event loop: vsock connections come and go"},
    {"poll", "the main thread waits for the stop eventfd"},
    {"getrandom", "virtio-rng"},
    {"munmap", "malloc, thread stacks"},
    {"madvise", "thread stacks freed at thread exit"},
    {"brk", "malloc (not seen: the main thread's heap may grow)"},
    {"clock_gettime", "time stamps (not seen: the vDSO answers unless the host's "
		      "clock source has no vDSO support)"},
    {"set_robust_list", "thread start"},
    {"rseq", "thread start"},
    {"exit", "thread exit"},
    {"exit_group", "process exit"},
    {"rt_sigaction", "vCPU kick signal handler, set at each vCPU start"},
    {"rt_sigprocmask", "vCPU threads unblock the kick signal; thread creation"},
    {"rt_sigreturn", "return from the kick and stop signal handlers"},
    {"restart_syscall", "a wait interrupted by a signal resumes (not seen)"},
    {"getpid", "tgkill's target"},
    /* the control socket (fork/ctl.h) */
    {"accept4", "control socket clients; host clients of the vsock Unix socket"},
    {"recvmsg", "control requests, with the branch's file descriptors"},
    {"sendto", "control replies; vsock handshake replies and data"},
    /* with argument checks (jail_filter_build): */
    {"ioctl", "the VM's own KVM descriptors only, each with its requests in jail_ioctls()"},
    {"mmap", "malloc, thread stacks; never PROT_EXEC"},
    {"mprotect", "thread stack guard pages; never PROT_EXEC"},
    {"clone", "threads (CLONE_THREAD set), and a live branch's memory writer (flags "
	      "exactly SIGCHLD: a plain fork, jailed like its parent)"},
    {"prctl", "PR_SET_NAME only (vCPU thread names)"},
    {"tgkill", "this process only: kick a vCPU out of KVM_RUN"},
    {"sched_setaffinity", "the calling thread only: pin a vCPU thread (KVM-PVM)"},
#if defined(__SANITIZE_ADDRESS__)
    /* ASan's runtime, in sanitizer builds only (make SANITIZE=1). */
    {"sigaltstack", "ASan: each thread's alternate signal stack"},
    {"gettid", "ASan: thread registry"},
    {"sched_yield", "ASan: allocator spin locks"},
    {"sched_getaffinity", "ASan: thread start"},
#endif
};

static const struct jail_rule vsock_rules[] = {
    {"socket", "AF_UNIX SOCK_STREAM only: guest connections to host port P"},
    {"connect", "... reach <socket>_P"},
    {"readv", "vsock data from host sockets"},
    {"recvfrom", "vsock handshake lines"},
    {"sendmsg", "vsock data"},
    {"shutdown", "vsock half-close"},
};

static const struct jail_rule net_rules[] = {
    {"read", "tap frames (virtio-net)"},
    {"writev", "tap frames (virtio-net)"},
};

/* forkd snapshot's booting VMM, jailed like a child: it also waits on its
 * own eventfd, timer and console pipe. */
static const struct jail_rule boot_rules[] = {
    {"read", "forkd snapshot: the warm eventfd, the progress timer, the console pipe"},
};

/* Rules with argument checks, kept out of the plain loop. */
static const char *const checked[] = {"ioctl", "mmap",	 "mprotect", "clone",
				      "prctl", "tgkill", "socket",   "sched_setaffinity"};

static const unsigned long allowed_ioctls[] = {
    KVM_RUN,
    /* emulation assists and the exit reports */
    KVM_GET_REGS,
    KVM_SET_REGS,
    KVM_GET_SREGS,
    KVM_SET_SREGS,
    KVM_GET_FPU,
    KVM_GET_XSAVE,
    KVM_SET_XSAVE,
    KVM_GET_MSRS,
    KVM_SET_MSRS,
    KVM_TRANSLATE,
    KVM_GET_VCPU_EVENTS,
    KVM_SET_VCPU_EVENTS,
    /* a branch saves the running VM's state (fork/ctl.h); reads only */
    KVM_GET_MP_STATE,
    KVM_GET_XCRS,
    KVM_GET_LAPIC,
    KVM_GET_DEBUGREGS,
    KVM_GET_TSC_KHZ,
    /* on the VM: device interrupts; a branch's VM-wide reads */
    KVM_IRQ_LINE,
    KVM_GET_IRQCHIP,
    KVM_GET_PIT2,
    KVM_GET_CLOCK,
    /* on /dev/kvm: a branch lists the MSRs to save */
    KVM_GET_MSR_INDEX_LIST,
};

#define VCPU_REQS 18 /* the first ones above */
#define VM_REQS	  4  /* then these */

static const enum jail_kvm_fd ioctl_kind[ARRAY_SIZE(allowed_ioctls)] = {
    [0 ... VCPU_REQS - 1] = JAIL_KVM_VCPU,
    [VCPU_REQS... VCPU_REQS + VM_REQS - 1] = JAIL_KVM_VM,
    [VCPU_REQS + VM_REQS] = JAIL_KVM_SYS,
};

static struct jail_rule all_rules[ARRAY_SIZE(base_rules) + ARRAY_SIZE(vsock_rules) +
				  ARRAY_SIZE(net_rules) + ARRAY_SIZE(boot_rules)];

const struct jail_rule *jail_rules(const struct jail_opts *o, size_t *n)
{
	size_t k = ARRAY_SIZE(base_rules);

	/* Same contents for the same options: harmless if threads race. */
	memcpy(all_rules, base_rules, sizeof(base_rules));
	if (o->vsock) {
		memcpy(all_rules + k, vsock_rules, sizeof(vsock_rules));
		k += ARRAY_SIZE(vsock_rules);
	}
	if (o->net) {
		memcpy(all_rules + k, net_rules, sizeof(net_rules));
		k += ARRAY_SIZE(net_rules);
	}
	for (size_t i = 0; o->boot && i < ARRAY_SIZE(boot_rules); i++) {
		bool have = false;

		for (size_t j = 0; j < k && !have; j++)
			have = !strcmp(all_rules[j].name, boot_rules[i].name);
		if (!have)
			all_rules[k++] = boot_rules[i];
	}
	*n = k;
	return all_rules;
}

const unsigned long *jail_ioctls(size_t *n, const enum jail_kvm_fd **kind)
{
	_Static_assert(VCPU_REQS + VM_REQS + 1 == ARRAY_SIZE(allowed_ioctls),
		       "every allowed ioctl has its descriptor");
	*n = ARRAY_SIZE(allowed_ioctls);
	if (kind)
		*kind = ioctl_kind;
	return allowed_ioctls;
}

static bool is_checked(const char *name)
{
	for (size_t i = 0; i < ARRAY_SIZE(checked); i++)
		if (!strcmp(name, checked[i]))
			return true;
	return false;
}

static int add(scmp_filter_ctx ctx, const char *name, unsigned cnt, const struct scmp_arg_cmp *c)
{
	int nr = seccomp_syscall_resolve_name(name), err;

	if (nr == __NR_SCMP_ERROR) {
		log_err("jail: unknown system call %s", name);
		return -EINVAL;
	}
	err = seccomp_rule_add_array(ctx, SCMP_ACT_ALLOW, nr, cnt, c);
	if (err)
		log_err("jail: seccomp rule for %s: %s", name, strerror(-err));
	return err;
}

/* ioctl(fd, request) for each request of this descriptor's kind. The
 * kernel reads fd as an unsigned int and the request's low 32 bits
 * (unsigned int cmd), so those are what is compared. */
static int add_ioctls(scmp_filter_ctx ctx, int fd, enum jail_kvm_fd kind)
{
	int err = 0;

	if (fd < 0)
		return 0;
	for (size_t i = 0; i < ARRAY_SIZE(allowed_ioctls) && !err; i++) {
		struct scmp_arg_cmp c[2] = {
		    SCMP_A0(SCMP_CMP_MASKED_EQ, 0xffffffffULL, (scmp_datum_t)fd),
		    SCMP_A1(SCMP_CMP_MASKED_EQ, 0xffffffffULL,
			    (scmp_datum_t)(allowed_ioctls[i] & 0xffffffffUL)),
		};

		if (ioctl_kind[i] == kind)
			err = add(ctx, "ioctl", 2, c);
	}
	return err;
}

int jail_filter_build(const struct jail_opts *o, scmp_filter_ctx *out)
{
	scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_KILL_PROCESS);
	const struct jail_rule *rules;
	size_t n;
	int err = 0;

	if (!ctx) {
		log_err("jail: seccomp_init failed");
		return -ENOMEM;
	}
	rules = jail_rules(o, &n);
	for (size_t i = 0; i < n && !err; i++)
		if (!is_checked(rules[i].name))
			err = add(ctx, rules[i].name, 0, NULL);
	if (!err && (!o->kvm || o->kvm->vm < 0 || o->kvm->nr_vcpu < 1 || !o->kvm->vcpu)) {
		log_err("jail: the VM's KVM descriptors are not known: ioctl cannot be limited");
		err = -EINVAL;
	}
	if (!err)
		err = add_ioctls(ctx, o->kvm->sys, JAIL_KVM_SYS)
			  ?: add_ioctls(ctx, o->kvm->vm, JAIL_KVM_VM);
	for (int i = 0; !err && i < o->kvm->nr_vcpu; i++)
		err = add_ioctls(ctx, o->kvm->vcpu[i], JAIL_KVM_VCPU);
	if (!err) {
		struct scmp_arg_cmp c = SCMP_A2(SCMP_CMP_MASKED_EQ, PROT_EXEC, 0);

		err = add(ctx, "mmap", 1, &c) ?: add(ctx, "mprotect", 1, &c);
	}
	if (!err) {
		struct scmp_arg_cmp c = SCMP_A0(SCMP_CMP_MASKED_EQ, CLONE_THREAD, CLONE_THREAD);
		struct scmp_arg_cmp f = SCMP_A0(SCMP_CMP_EQ, SIGCHLD);

		err = add(ctx, "clone", 1, &c) ?: add(ctx, "clone", 1, &f);
	}
	if (!err) {
		struct scmp_arg_cmp c = SCMP_A0(SCMP_CMP_EQ, PR_SET_NAME);

		err = add(ctx, "prctl", 1, &c);
	}
	if (!err) {
		struct scmp_arg_cmp c = SCMP_A0(SCMP_CMP_EQ, (scmp_datum_t)getpid());

		err = add(ctx, "tgkill", 1, &c);
	}
	if (!err) {
		struct scmp_arg_cmp c = SCMP_A0(SCMP_CMP_EQ, 0);

		err = add(ctx, "sched_setaffinity", 1, &c);
	}
	if (!err && o->vsock) {
		struct scmp_arg_cmp c[2] = {
		    SCMP_A0(SCMP_CMP_EQ, AF_UNIX),
		    SCMP_A1(SCMP_CMP_MASKED_EQ, ~(scmp_datum_t)(SOCK_NONBLOCK | SOCK_CLOEXEC),
			    SOCK_STREAM),
		};

		err = add(ctx, "socket", 2, c);
	}
	/* clone3 hides its flags behind a pointer: refuse it softly so glibc
	 * falls back to clone, whose flags the rule above checks. */
	if (!err && (err = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(clone3), 0)))
		log_err("jail: seccomp rule for clone3: %s", strerror(-err));
	if (!err && (err = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_TSYNC, 1)))
		log_err("jail: seccomp TSYNC attribute: %s", strerror(-err));
	if (err) {
		seccomp_release(ctx);
		return err;
	}
	*out = ctx;
	return 0;
}

/* Dropping from the bounding set needs CAP_SETPCAP. An unprivileged forkd
 * has none to drop (EPERM): with no_new_privs no exec can raise its
 * capabilities from the bounding set anyway. */
static int drop_bounding(void)
{
	for (int cap = 0; cap <= 63; cap++) {
		int r = prctl(PR_CAPBSET_READ, cap, 0, 0, 0);

		if (r < 0)
			break; /* past the kernel's last capability */
		if (r == 1 && prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0 && errno != EPERM)
			return log_errno("jail: PR_CAPBSET_DROP(%d)", cap);
	}
	return 0;
}

int jail_drop_caps(void)
{
	struct __user_cap_header_struct hdr = {.version = _LINUX_CAPABILITY_VERSION_3, .pid = 0};
	struct __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3];
	int err;

	if ((err = drop_bounding()))
		return err;
	if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL)
		return log_errno("jail: PR_CAP_AMBIENT_CLEAR_ALL");
	memset(data, 0, sizeof(data));
	if (syscall(SYS_capset, &hdr, data) < 0)
		return log_errno("jail: capset (drop all capabilities)");
	return 0;
}

/* The order: the namespaces and the new root need CAP_SYS_ADMIN; the
 * bounding set needs CAP_SETPCAP, which the uid change takes away; the uid
 * change needs CAP_SETUID/CAP_SETGID, which the bounding drop leaves in the
 * effective set; the filter comes last, as it forbids all of these. */
int jail_enter(const struct jail_opts *o)
{
	struct jail_fs_ids ids;
	scmp_filter_ctx ctx;
	int err;

	if ((err = jail_fs_ids(&ids)) || (err = jail_fs_enter(o->run_dir, !o->in_netns)) ||
	    (err = drop_bounding()) || (err = jail_fs_become(&ids)) || (err = jail_drop_caps()))
		return err;
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		return log_errno("jail: PR_SET_NO_NEW_PRIVS");
	if ((err = jail_filter_build(o, &ctx)))
		return err;
	err = seccomp_load(ctx);
	seccomp_release(ctx);
	if (err) {
		log_err("jail: load the seccomp filter: %s", strerror(-err));
		return err;
	}
	return 0;
}

void jail_test_forbidden_call(void)
{
	int fd = open("/etc/hostname", O_RDONLY | O_CLOEXEC);

	/* Only reached if the jail let the call through. */
	log_err("jail: test: open(/etc/hostname) was allowed (fd %d): the jail is not in force",
		fd);
	if (fd >= 0)
		close(fd);
}

void jail_test_connect(const char *paths)
{
	for (const char *p = paths; p && *p;) {
		const char *end = strchrnul(p, ',');
		struct sockaddr_un sa = {.sun_family = AF_UNIX};
		size_t len = (size_t)(end - p);
		int fd;

		if (len > 0 && len < sizeof(sa.sun_path)) {
			memcpy(sa.sun_path, p, len);
			if (p[0] == '@')
				sa.sun_path[0] = 0;
			fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
			if (fd < 0 ||
			    connect(fd, (struct sockaddr *)&sa,
				    (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len)) < 0)
				log_info("jail: test: connect(%.*s): %s", (int)len, p,
					 strerror(errno));
			else
				log_info("jail: test: connect(%.*s): connected", (int)len, p);
			if (fd >= 0)
				close(fd);
		}
		p = *end ? end + 1 : end;
	}
}
