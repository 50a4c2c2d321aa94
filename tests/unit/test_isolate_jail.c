/* The VMM jail (src/isolate/jail.c).
 *
 * Filter construction: which calls each device set allows, that the
 * dangerous ones are never on the list, and that libseccomp accepts every
 * rule (exported as BPF). Then the real thing, each case in a forked
 * process that enters the jail: what the run loop and devices need still
 * works (write, getrandom, futex, a thread, ioctl KVM_RUN reaching the
 * kernel on a "vCPU" descriptor, KVM_IRQ_LINE on the "VM" one), clone3
 * fails softly with ENOSYS, and every forbidden call (open, a tap ioctl,
 * KVM_RUN on a descriptor that is no vCPU of the VM, KVM_IRQ_LINE on a
 * vCPU, an AF_INET socket, fork, executable mmap, another prctl, a signal
 * to another process, execve) kills the process with SIGSYS. A filter for
 * the most vCPUs a VM may have still fits the kernel's limit. Capabilities: all sets empty after
 * jail_drop_caps(). No KVM or root needed (root only adds the bounding set check). */
#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <linux/if_tun.h>
#include <linux/kvm.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/util.h"
#include "isolate/jail.h"
#include "vmm/vm.h"

static bool listed(const struct jail_opts *o, const char *name)
{
	size_t n;
	const struct jail_rule *r = jail_rules(o, &n);

	for (size_t i = 0; i < n; i++)
		if (!strcmp(r[i].name, name))
			return true;
	return false;
}

static void test_rules_by_device_set(void **state)
{
	static const char *const never[] = {
	    "open",	"openat",  "openat2",	 "execve",     "execveat",    "unlink",
	    "unlinkat", "rename",  "mkdir",	 "chmod",      "ptrace",      "mount",
	    "setns",	"unshare", "bpf",	 "kexec_load", "init_module", "process_vm_writev",
	    "keyctl",	"capset",  "setuid",	 "chroot",     "pivot_root",  "fork",
	    "vfork",	"clone3",  "socketpair", "bind",       "listen",      "seccomp"};
	struct jail_opts plain = {0}, vsock = {.vsock = true}, net = {.net = true};
	size_t n, nio;
	const enum jail_kvm_fd *kind;
	const unsigned long *io = jail_ioctls(&nio, &kind);

	for (size_t i = 0; i < ARRAY_SIZE(never); i++) {
		assert_false(listed(&plain, never[i]));
		assert_false(listed(&(struct jail_opts){.vsock = true, .net = true}, never[i]));
	}
	assert_true(listed(&plain, "ioctl"));
	assert_true(listed(&plain, "getrandom"));
	assert_true(listed(&plain, "pwrite64"));
	assert_false(listed(&plain, "socket"));
	assert_false(listed(&plain, "connect"));
	/* the control socket (fork/ctl.h), in every child */
	assert_true(listed(&plain, "accept4"));
	assert_true(listed(&plain, "recvmsg"));
	assert_true(listed(&vsock, "socket"));
	assert_true(listed(&vsock, "connect"));
	assert_true(listed(&vsock, "accept4"));
	assert_false(listed(&vsock, "writev"));
	assert_true(listed(&net, "writev"));
	assert_false(listed(&net, "connect"));
	/* Every entry says why it is there. */
	for (const struct jail_rule *r = jail_rules(&vsock, &n); n--; r++)
		assert_true(r->why && strlen(r->why) > 5);

	bool run = false, irq = false;
	for (size_t i = 0; i < nio; i++) {
		run |= io[i] == KVM_RUN && kind[i] == JAIL_KVM_VCPU;
		irq |= io[i] == KVM_IRQ_LINE && kind[i] == JAIL_KVM_VM;
		if (io[i] == KVM_GET_MSR_INDEX_LIST)
			assert_int_equal(kind[i], JAIL_KVM_SYS);
		/* No VM-building or file-system request survives setup. */
		assert_true(io[i] != KVM_CREATE_VCPU && io[i] != KVM_SET_USER_MEMORY_REGION &&
			    io[i] != KVM_CREATE_VM && io[i] != TUNSETIFF &&
			    io[i] != KVM_SET_CPUID2);
	}
	assert_true(run && irq);
}

/* The "KVM descriptors" of the jailed test processes: fds[0] plays a vCPU,
 * fds[1] the VM (pipes: a request that passes the filter gets ENOTTY). */
static int fds[2] = {-1, -1};
static char scratch[] = "/tmp/forkd-test-jail.XXXXXX";

static void test_filter_builds(void **state)
{
	int vcpus[VM_MAX_VCPUS];
	struct jail_kvm_fds k = {.sys = 3, .vm = 4, .vcpu = vcpus, .nr_vcpu = VM_MAX_VCPUS};
	struct jail_opts sets[] = {{.kvm = &k},
				   {.vsock = true, .kvm = &k},
				   {.net = true, .kvm = &k},
				   {.vsock = 1, .net = 1, .kvm = &k}};
	scmp_filter_ctx ctx;

	for (int i = 0; i < VM_MAX_VCPUS; i++)
		vcpus[i] = 5 + i;
	for (size_t i = 0; i < ARRAY_SIZE(sets); i++) {
		static char buf[65536];
		int p[2];
		ssize_t len;

		assert_int_equal(jail_filter_build(&sets[i], &ctx), 0);
		assert_int_equal(seccomp_attr_get(ctx, SCMP_FLTATR_ACT_DEFAULT, &(uint32_t){0}), 0);
		assert_int_equal(pipe(p), 0);
		assert_int_equal(seccomp_export_bpf(ctx, p[1]), 0);
		close(p[1]);
		len = 0;
		for (ssize_t r; (r = read(p[0], buf + len, sizeof(buf) - (size_t)len)) > 0;)
			len += r;
		close(p[0]);
		/* struct sock_filter is 8 bytes; the argument checks alone
		 * take dozens of instructions, and the kernel takes at most
		 * BPF_MAXINSNS (4096) in one filter. */
		assert_true(len > 40 * 8 && len % 8 == 0);
		assert_true(len / 8 < 4096);
		seccomp_release(ctx);
	}
	/* Without the VM's descriptors there is no ioctl rule to make. */
	assert_int_equal(jail_filter_build(&(struct jail_opts){0}, &ctx), -EINVAL);
}

/* Run fn in a forked process after jail_enter(); return its wait status. */
static int jailed(void (*fn)(void), const struct jail_opts *o)
{
	int st;
	pid_t pid;

	fflush(stdout);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct jail_opts c = *o;
		int vcpu[1] = {fds[0]};
		struct jail_kvm_fds k = {.sys = -1, .vm = fds[1], .vcpu = vcpu, .nr_vcpu = 1};

		if (!c.run_dir)
			c.run_dir = scratch;
		if (!c.kvm)
			c.kvm = &k;
		if (jail_enter(&c))
			_exit(90);
		fn();
		_exit(0);
	}
	assert_int_equal(waitpid(pid, &st, 0), pid);
	return st;
}

static void *thread_fn(void *arg)
{
	*(int *)arg = 42;
	return NULL;
}

/* Exit codes tell which check failed. */
static void allowed_after_jail(void)
{
	uint8_t r[16];
	pthread_t t;
	int v = 0;
	void *m;

	if (write(fds[1], "x", 1) != 1)
		_exit(10);
	if (getrandom(r, sizeof(r), 0) != sizeof(r))
		_exit(11);
	/* KVM_RUN passes the filter; the pipe is no vCPU, so ENOTTY. */
	if (ioctl(fds[0], KVM_RUN, 0) != -1 || errno != ENOTTY)
		_exit(12);
	if (ioctl(fds[1], KVM_IRQ_LINE, NULL) != -1 || errno != ENOTTY)
		_exit(17);
	if (pthread_create(&t, NULL, thread_fn, &v) || pthread_join(t, NULL) || v != 42)
		_exit(13);
	m = mmap(NULL, 1 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (m == MAP_FAILED || munmap(m, 1 << 20))
		_exit(14);
	if (syscall(SYS_clone3, NULL, 0) != -1 || errno != ENOSYS)
		_exit(15);
	if (prctl(PR_SET_NAME, "jailed", 0, 0, 0))
		_exit(16);
	free(malloc(100000));
}

static void test_allowed_calls_work(void **state)
{
	int st;

	st = jailed(allowed_after_jail, &(struct jail_opts){0});
	if (WIFSIGNALED(st))
		fail_msg("jailed process killed by signal %d", WTERMSIG(st));
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 0);
}

static void do_open(void)
{
	open("/etc/hostname", O_RDONLY);
}
static void do_tun_ioctl(void)
{
	ioctl(0, TUNSETIFF, NULL);
}
static void do_inet_socket(void)
{
	socket(AF_INET, SOCK_STREAM, 0);
}
static void do_unix_dgram(void)
{
	socket(AF_UNIX, SOCK_DGRAM, 0);
}
static void do_fork(void)
{
	/* glibc's fork() is clone without CLONE_THREAD. */
	if (fork() == 0)
		_exit(0);
}
static void do_exec_mmap(void)
{
	mmap(NULL, 4096, PROT_READ | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
}
static void do_mprotect_exec(void)
{
	void *m = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	mprotect(m, 4096, PROT_READ | PROT_EXEC);
}
static void do_prctl(void)
{
	prctl(PR_SET_DUMPABLE, 1, 0, 0, 0);
}
static void do_kill_other(void)
{
	syscall(SYS_tgkill, 1, 1, 0);
}
static void do_exec(void)
{
	char *argv[] = {"/bin/true", NULL};

	execve("/bin/true", argv, NULL);
}
static void do_ioctl_upper_bits(void)
{
	/* The kernel looks at the low 32 bits only: a forbidden request
	 * with junk above them must not pass as something else. */
	syscall(SYS_ioctl, 0, 0x100000000ULL | TUNSETIFF, 0);
}
static void do_run_on_vm(void)
{
	ioctl(fds[1], KVM_RUN, 0);
}
static void do_run_on_other(void)
{
	ioctl(0, KVM_RUN, 0);
}
static void do_irq_on_vcpu(void)
{
	ioctl(fds[0], KVM_IRQ_LINE, NULL);
}
static void do_test_hook(void)
{
	jail_test_forbidden_call();
}

static void test_forbidden_calls_kill(void **state)
{
	static const struct {
		const char *what;
		void (*fn)(void);
	} cases[] = {
	    {"open", do_open},
	    {"ioctl TUNSETIFF", do_tun_ioctl},
	    {"ioctl with bits above 32", do_ioctl_upper_bits},
	    {"ioctl KVM_RUN on the VM", do_run_on_vm},
	    {"ioctl KVM_RUN on stdin", do_run_on_other},
	    {"ioctl KVM_IRQ_LINE on a vCPU", do_irq_on_vcpu},
	    {"socket AF_INET", do_inet_socket},
	    {"socket AF_UNIX SOCK_DGRAM", do_unix_dgram},
	    {"fork", do_fork},
	    {"mmap PROT_EXEC", do_exec_mmap},
	    {"mprotect PROT_EXEC", do_mprotect_exec},
	    {"prctl PR_SET_DUMPABLE", do_prctl},
	    {"tgkill pid 1", do_kill_other},
	    {"execve", do_exec},
	    {"jail_test_forbidden_call", do_test_hook},
	};

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		int st = jailed(cases[i].fn, &(struct jail_opts){.vsock = true, .net = true});

		if (!WIFSIGNALED(st) || WTERMSIG(st) != SIGSYS)
			fail_msg("%s: not killed by SIGSYS (status 0x%x)", cases[i].what, st);
	}
}

static void do_unix_stream(void)
{
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	if (fd < 0)
		_exit(20);
}

static void test_vsock_socket_only_with_vsock(void **state)
{
	int st = jailed(do_unix_stream, &(struct jail_opts){.vsock = true});

	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 0);
	st = jailed(do_unix_stream, &(struct jail_opts){0});
	assert_true(WIFSIGNALED(st));
	assert_int_equal(WTERMSIG(st), SIGSYS);
}

static void test_caps_dropped(void **state)
{
	int st;
	pid_t pid = fork();

	assert_true(pid >= 0);
	if (pid == 0) {
		struct __user_cap_header_struct h = {_LINUX_CAPABILITY_VERSION_3, 0};
		struct __user_cap_data_struct d[2];

		if (jail_drop_caps())
			_exit(1);
		if (syscall(SYS_capget, &h, d))
			_exit(2);
		for (int i = 0; i < 2; i++)
			if (d[i].effective || d[i].permitted || d[i].inheritable)
				_exit(3);
		if (geteuid() == 0 && prctl(PR_CAPBSET_READ, CAP_SYS_ADMIN, 0, 0, 0) != 0)
			_exit(4);
		if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_IS_SET, CAP_NET_ADMIN, 0, 0) > 0)
			_exit(5);
		_exit(0);
	}
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_rules_by_device_set),
	    cmocka_unit_test(test_filter_builds),
	    cmocka_unit_test(test_allowed_calls_work),
	    cmocka_unit_test(test_forbidden_calls_kill),
	    cmocka_unit_test(test_vsock_socket_only_with_vsock),
	    cmocka_unit_test(test_caps_dropped),
	};

	int r;

	if (pipe(fds) || !mkdtemp(scratch))
		return 1;
	r = cmocka_run_group_tests(tests, NULL, NULL);
	rmdir(scratch);
	return r;
}
