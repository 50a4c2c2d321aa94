#include "fork/spawner.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/util.h"
#include "devices/vmctl.h"
#include "devices/vmgenid.h"
#include "fork/ctl.h"
#include "fork/machine.h"
#include "isolate/cgroup.h"
#include "isolate/jail.h"
#include "isolate/jail_fs.h"
#include "isolate/netns.h"

/* Live fork: the child's RAM is a memfd holding a copy of memory.bin. Only
 * the file's data extents are copied; holes stay unallocated. */
static int copy_memory(int src, struct guest_mem *mem)
{
	off_t off = 0, end;

	for (;;) {
		off = lseek(src, off, SEEK_DATA);
		if (off < 0)
			return errno == ENXIO ? 0 : log_errno("lseek(memory.bin, SEEK_DATA)");
		end = lseek(src, off, SEEK_HOLE);
		if (end < 0)
			return log_errno("lseek(memory.bin, SEEK_HOLE)");
		if ((uint64_t)end > mem->size)
			return -EINVAL;
		if (pread_full(src, mem->base + off, (size_t)(end - off), (uint64_t)off))
			return log_errno("read memory.bin");
		off = end;
	}
}

#define CHILD_LOG_MAX_BYTES (4 * MIB)

static struct vm *child_vm;

static void child_on_signal(int sig)
{
	if (child_vm)
		vm_request_stop_signal(child_vm, VM_EXIT_SIGNAL);
}

static void report(const struct child_opts *o, int32_t status, uint64_t restore_ns)
{
	struct child_report r = {o->index, status, restore_ns, getpid()};

	if (o->report_fd >= 0 && write(o->report_fd, &r, sizeof(r)) != sizeof(r))
		log_errno("child %u: report to spawner", o->index);
}

/* The test-only forbidden call (isolate/jail.h): this child's index? */
static bool test_forbidden(const struct child_opts *o)
{
	const char *v = getenv(JAIL_TEST_FORBIDDEN_ENV);
	uint64_t idx;

	return o->jail && v && !parse_u64(v, &idx) && idx == o->index;
}

/* Runs in the forked child. The order matters:
 *   cgroup   first, before any memory is touched, so the child's pages
 *            (guest RAM included) are charged to its own leaf;
 *   netns    before the tap is opened (a tun file belongs to the namespace
 *            of its opener) and before any thread exists;
 *   machine  memory and devices exist before state is loaded into them;
 *   restore  then identity, after the restore (which bumps vmctl's
 *            generation) and before any vCPU runs;
 *   ctl      the control socket (fork/ctl.h), on the loop the VM starts;
 *   jail     last, once every file, socket and KVM object exists, and
 *            before vm_start() creates the first thread, so no guest
 *            instruction runs outside it. */
static int child_run(const struct snapshot_image *img, const struct child_opts *o, uint64_t t_fork)
{
	struct machine_spec spec;
	struct vm_section_source in;
	struct vmctl *vmctl = NULL;
	struct ctl ctl;
	struct sigaction sa = {.sa_handler = child_on_signal};
	char dir[PATH_MAX + 32], path[PATH_MAX + 64], vsock_path[PATH_MAX + 64];
	int console_fd, err, status;
	bool forbidden = test_forbidden(o);
	const char *test_connect = o->jail ? getenv(JAIL_TEST_CONNECT_ENV) : NULL;
	struct jail_fs_ids ids;
	struct jail_kvm_fds kvm;
	int vcpu_fds[VM_MAX_VCPUS];
	struct vm *vm;

	/* Its log (vmm.log, console of the batch) must not grow with what the
	 * guest does: a few MiB of lines, then one saying so. */
	log_set_byte_limit(CHILD_LOG_MAX_BYTES);
	if (o->cgroup_leaf && (err = cgroup_leaf_join(o->cgroup_leaf)))
		return err;
	if (o->netns && (err = netns_enter(o->netns_index)))
		return err;
	if (o->child_dir) {
		snprintf(dir, sizeof(dir), "%s", o->child_dir);
	} else {
		snprintf(dir, sizeof(dir), "%s/child-%u", o->workdir, o->index);
		if (mkdir(dir, 0755) < 0 && errno != EEXIST)
			return log_errno("mkdir %s", dir);
	}
	/* The jailed VMM (another uid) still reaches "<dir>/vsock.sock_P". */
	if (o->jail && ((err = jail_fs_ids(&ids)) || (err = jail_fs_share_dir(dir, &ids))))
		return err;
	snprintf(path, sizeof(path), "%s/console.log", dir);
	console_fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0640);
	if (console_fd < 0)
		return log_errno("open %s", path);

	machine_spec_init(&spec);
	spec.mem_mib = img->machine.mem_bytes / MIB;
	spec.vcpus = (int)img->machine.nr_vcpus;
	spec.cpuid = img->machine.cpuid;
	spec.nr_cpuid = img->machine.nr_cpuid;
	spec.console_fd = console_fd;
	spec.console_max_bytes = o->console_max_bytes;
	/* The device set must match the parent's, device for device. */
	spec.dev = img->meta.dev;
	spec.overlay_dir = dir;
	/* The snapshot's tap name is not reused: every namespace has its own
	 * forkd-tap0. The MAC is the guest's from before the snapshot (the
	 * device state restores it). */
	if (spec.dev.net)
		spec.tap = NETNS_TAP_NAME;
	if (spec.dev.vsock) {
		snprintf(vsock_path, sizeof(vsock_path), "%s/vsock.sock", dir);
		spec.vsock = vsock_path;
	}
	if (o->live_fork) {
		spec.mem.backing = MEM_MEMFD;
		spec.mem.hugetlb = o->hugepages;
	} else {
		spec.mem.backing = MEM_FILE_PRIVATE;
		spec.mem.fd = img->mem_fd;
	}
	vm = calloc(1, sizeof(*vm));
	if (!vm)
		return -ENOMEM;
	err = machine_build(vm, &spec, &vmctl);
	if (err) {
		free(vm);
		return err;
	}
	if (vm->nr_devices != img->machine.nr_devices) {
		log_err("child %u: snapshot has %u devices, this machine %u", o->index,
			img->machine.nr_devices, vm->nr_devices);
		err = -EINVAL;
		goto out;
	}
	if ((o->live_fork && (err = copy_memory(img->mem_fd, &vm->mem))) ||
	    (err = snapshot_image_map_layers(img, &vm->mem)))
		goto out;
	in = vmstate_source(&img->vs);
	if ((err = vm_persist_check_cpuid(vm, &img->machine)) ||
	    (err = vm_persist_restore(vm, &in, &img->machine)) ||
	    (err = vmctl_set_identity(vmctl, o->index)) || (err = vmgenid_new_generation(vm)))
		goto out;
	if ((err = ctl_open(&ctl, vm, dir)))
		goto out;
	child_vm = vm;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	machine_kvm_fds(vm, &kvm, vcpu_fds);
	if (o->jail && (err = jail_enter(&(struct jail_opts){.vsock = img->meta.dev.vsock,
							     .net = img->meta.dev.net,
							     .in_netns = o->netns,
							     .run_dir = dir,
							     .kvm = &kvm})))
		goto out;
	err = vm_start(vm);
	if (err) {
		if (o->jail)
			return err; /* no teardown in the jail, as below */
		goto out;
	}
	report(o, 0, now_ns() - t_fork);
	if (forbidden)
		jail_test_forbidden_call();
	if (test_connect && img->meta.dev.vsock)
		jail_test_connect(test_connect);
	vm_wait(vm, -1, 0);
	status = vm_finish(vm, VM_EXIT_ERROR);
	/* Jailed, the process only exits: tearing down would unlink the vsock
	 * socket, which the jail forbids; the kernel releases the rest. */
	if (o->jail)
		return status;
	vm_destroy(vm);
	free(vm);
	return status;
out:
	vm_destroy(vm);
	free(vm);
	return err;
}

pid_t spawner_fork_child(const struct snapshot_image *img, const struct child_opts *o)
{
	uint64_t t_fork;
	pid_t pid;
	int ret;

	if (img->meta.dev.net && !o->netns) {
		log_err("snapshot '%s' has a network device: each child needs a tap of its own, "
			"which comes with a network namespace per child; fork it with "
			"--per-child-netns (API: \"per_child_netns\": true)",
			img->meta.tag);
		return -EINVAL;
	}
	t_fork = now_ns();
	pid = fork();
	if (pid < 0)
		return log_errno("fork(child %u)", o->index);
	if (pid > 0)
		return pid;
	/* Child: die with the spawner rather than linger as an orphan VM,
	 * unless it is meant to outlive it (children a daemon re-adopts). */
	if (o->detach)
		setsid();
	else
		prctl(PR_SET_PDEATHSIG, SIGTERM);
	if (o->close_fd >= 0)
		close(o->close_fd);
	for (size_t i = 0; i < o->nr_close_fds; i++)
		if (o->close_fds[i] >= 0)
			close(o->close_fds[i]);
	ret = child_run(img, o, t_fork);
	if (ret < 0) {
		report(o, ret, 0);
		_exit(VM_EXIT_ERROR);
	}
	_exit(ret);
}
