/* forkd snapshot: boot a VM, wait until the guest says it is warm, pause it
 * and write $FORKD_HOME/snapshots/<tag>/.
 *
 * The warm signal is one of:
 *   - the doorbell (the guest writes 1 to vmctl's port 0x610), or a console
 *     line containing --warm-console TEXT: both arrive on an eventfd;
 *   - with --agent-port (default with --image): forkd's agent
 *     (docs/AGENT.md) answering ping with warm=true over vsock. A poller
 *     thread asks; the doorbell is then not the signal.
 * Meanwhile the console goes through a pipe so the last line can be shown
 * in the progress report printed every PROGRESS_SECS. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <jansson.h>
#include <limits.h>
#include <malloc.h>
#include <linux/kvm.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <sys/timerfd.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "cli/agent_wait.h"
#include "cli/cli.h"
#include "cli/console_tap.h"
#include "cli/vmopts.h"
#include "isolate/jail.h"
#include "isolate/jail_fs.h"
#include "isolate/netns.h"
#include "common/file.h"
#include "common/util.h"
#include "snapshot/guest_image.h"
#include "snapshot/snapshot.h"
#include "vmm/vm.h"
#include "vmm/vm_persist.h"

#define PROGRESS_SECS	   30
#define IMAGE_MEM_MIB	   512
#define IMAGE_VCPUS	   2
#define IMAGE_TIMEOUT_SECS 3600 /* the guest kernel is emulated on KVM-PVM: ~10 min */

static void snapshot_usage(FILE *f)
{
	fprintf(f,
		"usage: forkd snapshot --tag TAG --image IMG [options]\n"
		"       forkd snapshot --tag TAG --kernel PATH [options]\n"
		"       forkd snapshot --from-sandbox ID [--mode full|diff|live] [--tag TAG]\n"
		"                      (branch a running sandbox: see --from-sandbox ID --help)\n"
		"       forkd snapshot compact --from TAG --to NEW   (flatten a chain of diffs)\n"
		"       forkd snapshot ls | info TAG | rm TAG... [--cascade]   (the store)\n"
		"       forkd snapshot pack TAG -o FILE [--no-assets] | unpack FILE [--tag T]\n"
		"                      (carry a snapshot to another host: see pack --help)\n"
		"\n"
		"Boot a VM, wait until the guest is warm, pause it at a clean\n"
		"instruction boundary and write the snapshot to\n"
		"$FORKD_HOME/snapshots/TAG/ ('forkd where' prints it):\n"
		"memory.bin, vmstate, snapshot.json. Then the VM is stopped.\n"
		"\n"
		"--image IMG boots the guest image 'forkd image build --tag IMG' made\n"
		"(~/.cache/forkd/images/IMG/: vmlinuz, initrd.img, rootfs.ext4 as /dev/vda\n"
		"with a private copy-on-write overlay, its cmdline plus lpj=) with a\n"
		"vsock device, and waits until forkd's agent answers ping with warm=true.\n"
		"With --kernel the guest is warm when it writes 1 to forkd's doorbell\n"
		"port 0x610 (or, with --agent-port, when its agent answers).\n"
		"\n"
		"options:\n"
		"  --tag TAG              [A-Za-z0-9_][A-Za-z0-9_.-]{0,63}, required\n"
		"  --image IMG            boot guest image IMG (instead of --kernel/--initrd);\n"
		"                         defaults become --mem-mib %d --vcpus %d (1 on\n"
		"                         KVM-PVM hosts: SMP guests see user memory\n"
		"                         corrupted there) --timeout-secs %d; --cmdline\n"
		"                         adds to its cmdline;\n"
		"                         --disk adds disks after its root (vdb, ...)\n"
		"  --agent-port PORT      warm = the agent on this guest vsock port answers\n"
		"                         ping with warm=true (default %d with --image;\n"
		"                         0: no agent, the doorbell decides); recorded in\n"
		"                         snapshot.json, so children get after_fork. Adds a\n"
		"                         vsock device (private socket) unless --vsock\n"
		"  --net                  give the guest a network: virtio-net on tap\n"
		"                         forkd-tap0 (10.42.0.1/24, the guest is 10.42.0.2)\n"
		"                         in a private network namespace that ends with\n"
		"                         this command; the same network every child of\n"
		"                         'forkd fork --per-child-netns' gets (root)\n"
		"  --force                replace an existing snapshot with this tag\n"
		"  --no-seccomp           boot WITHOUT the VMM jail (by default the VM runs\n"
		"                         in a child process jailed like a fork's children:\n"
		"                         own mount/network namespace and uid, no capabilities,\n"
		"                         a seccomp allow-list, the\n"
		"                         snapshot's files passed to it open); unsafe,\n"
		"                         for debugging\n"
		"  --json                 print {tag, dir, seconds, warm_after_seconds,\n"
		"                         mem_mib, vcpus} on stdout when written; progress\n"
		"                         and a console on stdout go to stderr\n"
		"  --warm-console TEXT    also take the guest as warm when a console line\n"
		"                         contains TEXT (for guests that cannot reach the\n"
		"                         doorbell port; not with an agent port)\n",
		IMAGE_MEM_MIB, IMAGE_VCPUS, IMAGE_TIMEOUT_SECS, AGENT_VSOCK_PORT);
	vmopts_help(f);
	fprintf(f,
		"  -h, --help             this text\n"
		"\n"
		"--timeout-secs bounds the wait for the warm signal (with --image: %d\n"
		"unless given). Every %d s a progress line says how long it has waited,\n"
		"what the last agent poll found and the last console line.\n"
		"Exit status 0 when the snapshot was written; 1 otherwise, and then\n"
		"nothing is left behind.\n",
		IMAGE_TIMEOUT_SECS, PROGRESS_SECS);
}

/* --- the snapshot directory ------------------------------------------------- */

/* snapshot.json's contents for this boot, made before the jail (disk
 * paths are resolved here: children open the images by them). NULL, said,
 * on failure; created and format_version are set when it is written. */
static struct snapshot_meta *meta_for(const struct vmopts *o, const char *tag, uint32_t agent_port)
{
	struct snapshot_meta *meta = calloc(1, sizeof(*meta));

	if (!meta) {
		log_err("out of memory");
		return NULL;
	}
	snprintf(meta->tag, sizeof(meta->tag), "%s", tag);
	snprintf(meta->kernel, sizeof(meta->kernel), "%s", o->boot.kernel);
	snprintf(meta->initrd, sizeof(meta->initrd), "%s", o->boot.initrd ? o->boot.initrd : "");
	snprintf(meta->cmdline, sizeof(meta->cmdline), "%s",
		 o->boot.cmdline ? o->boot.cmdline : "");
	meta->mem_mib = o->spec.mem_mib;
	meta->vcpus = (uint32_t)o->spec.vcpus;
	meta->dev = o->spec.dev;
	for (unsigned i = 0; i < meta->dev.nr_disks; i++) {
		if (!realpath(o->spec.dev.disks[i].path, meta->dev.disks[i].path)) {
			log_errno("resolve disk path %s", o->spec.dev.disks[i].path);
			free(meta);
			return NULL;
		}
	}
	meta->agent_port = agent_port;
	return meta;
}

/* --- --image ----------------------------------------------------------------- */

/* The guest's TSC frequency: what KVM gives vCPU 0, else the host's
 * "cpu MHz" (the way tests/e2e/linux_boot.sh computes lpj). 0 if unknown. */
static uint64_t guest_tsc_khz(struct vm *vm)
{
	int khz = ioctl(vm->vcpus[0].fd, KVM_GET_TSC_KHZ, 0);
	double mhz = 0;
	char line[256];
	FILE *f;

	if (khz > 0)
		return (uint64_t)khz;
	log_debug("KVM_GET_TSC_KHZ(vcpu 0): %s; using /proc/cpuinfo", strerror(errno));
	f = fopen("/proc/cpuinfo", "re");
	while (f && fgets(line, sizeof(line), f))
		if (sscanf(line, "cpu MHz : %lf", &mhz) == 1)
			break;
	if (f)
		fclose(f);
	return mhz > 0 && mhz < 1e6 ? (uint64_t)mhz * 1000 : 0;
}

/* The image's command line, lpj=, then what --cmdline adds. */
static int image_cmdline(struct vm *vm, const struct guest_image *img, const char *extra, char *out,
			 size_t size)
{
	unsigned hz = img->hz ? img->hz : GUEST_IMAGE_DEFAULT_HZ;
	uint64_t lpj = guest_image_lpj(guest_tsc_khz(vm), hz);
	char lpj_arg[32] = "";
	int n;

	if (lpj)
		snprintf(lpj_arg, sizeof(lpj_arg), " lpj=%llu", (unsigned long long)lpj);
	else
		log_warn("guest TSC frequency unknown: no lpj= (the guest calibrates its delay "
			 "loop, slowly where its kernel is emulated)");
	if (!img->hz)
		log_info("image %s: no kernel .config found; assuming CONFIG_HZ=%u", img->dir,
			 GUEST_IMAGE_DEFAULT_HZ);
	n = snprintf(out, size, "%s%s%s%s", img->cmdline, lpj_arg, extra ? " " : "",
		     extra ? extra : "");
	if (n < 0 || (size_t)n >= size) {
		log_err("the kernel command line would be %d bytes; at most %zu", n, size - 1);
		return -E2BIG;
	}
	return 0;
}

/* Apply --image to the options: kernel, initrd, the root disk first,
 * and the image's defaults for what the command line left unset. */
static void image_apply(struct vmopts *o, const struct guest_image *img)
{
	o->boot.kernel = img->kernel;
	o->boot.initrd = img->initrd;
	/* root=/dev/vda: the image's root must be the first disk. */
	struct snapshot_devices *d = &o->spec.dev;

	memmove(&d->disks[1], &d->disks[0], d->nr_disks * sizeof(d->disks[0]));
	memset(&d->disks[0], 0, sizeof(d->disks[0]));
	snprintf(d->disks[0].path, sizeof(d->disks[0].path), "%s", img->rootfs);
	d->nr_disks++;
	if (!o->mem_set)
		o->spec.mem_mib = IMAGE_MEM_MIB;
	/* On KVM-PVM a guest with 2 vCPUs sees its user memory corrupted
	 * (docs/ARCHITECTURE.md, "KVM-PVM hosts"); with one it was clean. */
	if (!o->vcpus_set)
		o->spec.vcpus = vm_host_is_pvm() ? 1 : IMAGE_VCPUS;
	if (!o->timeout_secs)
		o->timeout_secs = IMAGE_TIMEOUT_SECS;
}

/* --- the command ------------------------------------------------------------- */

struct snap_run {
	const char *tag;
	struct vm *vm;
	struct console_tap con;
	struct agent_wait agent;
	uint32_t agent_port;
	int warm_fd, epfd, timer_fd;
	uint64_t t0;
};

static void progress(struct snap_run *s)
{
	char line[CONSOLE_TAP_LINE_MAX], agent[AGENT_ERR_LEN + 64];
	uint64_t elapsed = (now_ns() - s->t0) / 1000000000ULL;

	console_tap_last(&s->con, line, sizeof(line));
	if (s->agent_port) {
		agent_wait_status(&s->agent, agent, sizeof(agent));
		log_info("snapshot '%s': %llu s, waiting for the agent on vsock port %u (%s); "
			 "console: %s",
			 s->tag, (unsigned long long)elapsed, s->agent_port, agent,
			 line[0] ? line : "(nothing yet)");
	} else {
		log_info("snapshot '%s': %llu s, waiting for the guest's warm signal; console: %s",
			 s->tag, (unsigned long long)elapsed, line[0] ? line : "(nothing yet)");
	}
}

/* Wait for the warm signal, reporting progress. True when the guest is
 * warm; false when the VM stopped (timeout included: vm_wait() stops it). */
static bool wait_warm(struct snap_run *s, uint64_t deadline)
{
	struct epoll_event ev[2];
	uint64_t v;
	int n;

	for (;;) {
		if (!vm_wait(s->vm, s->epfd, deadline))
			return false;
		n = epoll_wait(s->epfd, ev, 2, 0);
		for (int i = 0; i < n; i++) {
			if (ev[i].data.fd == s->warm_fd)
				return true;
			if (read(s->timer_fd, &v, sizeof(v)) == sizeof(v))
				progress(s);
		}
	}
}

static int watch(int epfd, int fd)
{
	struct epoll_event ev = {.events = EPOLLIN, .data.fd = fd};

	return epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) < 0 ? log_errno("epoll_ctl") : 0;
}

static void report_failure(struct snap_run *s, int status, uint64_t timeout_secs)
{
	char line[CONSOLE_TAP_LINE_MAX], agent[AGENT_ERR_LEN + 64];
	const char *tag = s->tag;

	console_tap_last(&s->con, line, sizeof(line));
	if (s->agent_port)
		agent_wait_status(&s->agent, agent, sizeof(agent));
	if (status == VM_EXIT_TIMEOUT && s->agent_port)
		log_err("snapshot '%s': no warm answer from the agent on vsock port %u within "
			"%llu s (%s); last console line: %s; nothing was written (raise "
			"--timeout-secs, or check the guest's console)",
			tag, s->agent_port, (unsigned long long)timeout_secs, agent,
			line[0] ? line : "(none)");
	else if (status == VM_EXIT_TIMEOUT)
		log_err("snapshot '%s': no warm signal from the guest within %llu s; last console "
			"line: %s; nothing was written (raise --timeout-secs, or check the "
			"guest's console)",
			tag, (unsigned long long)timeout_secs, line[0] ? line : "(none)");
	else
		log_err("snapshot '%s': the guest stopped before %s: %s (exit status %d); last "
			"console line: %s; nothing was written",
			tag, s->agent_port ? "its agent answered warm" : "it signalled warm",
			s->vm->exit_reason, status, line[0] ? line : "(none)");
}

/* The child of forkd snapshot: build and boot the VM, enter the jail, wait
 * for warm, pause and write the snapshot into the files made for it.
 * Reports "built" (the vsock socket is bound) and "warm NS" (after the
 * start, once written) on rep; its exit status is the outcome, the reason
 * already said. Never tears the VM down: the process only exits. */
static int boot_child(struct snap_run *s, struct vmopts *o, struct guest_image *img,
		      const struct snapshot_fds *files, int rep, const char *run_dir, bool jail)
{
	struct itimerspec every = {{PROGRESS_SECS, 0}, {PROGRESS_SECS, 0}};
	struct snapshot_meta *meta = NULL;
	struct jail_kvm_fds kvm;
	int vcpu_fds[VM_MAX_VCPUS];
	struct boot_info bi;
	char cmdline[4096];
	uint64_t deadline, t_warm;
	bool started = false;
	int status, ret = 1;

	/* One malloc arena: a thread's own arena, when it shrinks, makes glibc
	 * read /proc/sys/vm/overcommit_memory, an open the jail forbids. Every
	 * thread of this process starts below. */
	mallopt(M_ARENA_MAX, 1);
	s->vm = calloc(1, sizeof(*s->vm));
	if (!s->vm || machine_build(s->vm, &o->spec, NULL))
		return 1;
	(void)!write(rep, "built\n", 6);
	if (img) {
		if (image_cmdline(s->vm, img, o->boot.cmdline, cmdline, sizeof(cmdline)))
			return 1;
		o->boot.cmdline = cmdline;
	}
	if (boot_load(s->vm, &o->boot, &bi) || boot_setup_bsp(s->vm, &bi))
		return 1;
	if (console_tap_start(&s->con))
		return 1;
	cli_stop_on_signals(s->vm);
	if (img)
		log_info("snapshot '%s': image %s: %llu MiB, %d vCPUs, cmdline: %s", s->tag,
			 img->dir, (unsigned long long)o->spec.mem_mib, o->spec.vcpus,
			 o->boot.cmdline);
	if (s->vm->pvm && o->spec.vcpus > 1)
		log_warn(
		    "snapshot '%s': %d vCPUs on a KVM-PVM host: Linux guests with more than one "
		    "vCPU have seen their user memory corrupted here (docs/ARCHITECTURE.md, "
		    "\"KVM-PVM hosts\"); --vcpus 1 avoids it",
		    s->tag, o->spec.vcpus);
	if (s->agent_port)
		log_info("snapshot '%s': booting %s, waiting for the agent on vsock port %u to "
			 "answer ping with warm=true (at most %llu s)",
			 s->tag, img ? img->kernel : o->boot.kernel, s->agent_port,
			 (unsigned long long)o->timeout_secs);
	else
		log_info("snapshot '%s': booting, waiting for the guest's warm signal", s->tag);
	if (timerfd_settime(s->timer_fd, 0, &every, NULL) < 0) {
		log_errno("timerfd_settime");
		goto out;
	}
	meta = meta_for(o, s->tag, s->agent_port);
	if (!meta)
		goto out;
	/* What the jail would forbid later: the time zone (snapshot.json's
	 * created, through gmtime_r), jansson's hash seed (read from
	 * /dev/urandom at its first object), the poller's eventfd. The poller's
	 * first connection waits in the device until the VM runs. */
	tzset();
	json_object_seed(0);
	if (s->agent_port && agent_wait_start(&s->agent, o->spec.vsock, s->agent_port, s->warm_fd))
		goto out;
	/* The poller, a thread of this VMM, reconnects to the socket. */
	if (jail && o->spec.dev.vsock &&
	    jail_fs_share_socket(run_dir, o->spec.vsock, s->agent_port != 0))
		goto out;
	machine_kvm_fds(s->vm, &kvm, vcpu_fds);
	if (jail && jail_enter(&(struct jail_opts){.vsock = o->spec.dev.vsock,
						   .net = o->spec.dev.net,
						   .boot = true,
						   .run_dir = run_dir,
						   .kvm = &kvm}))
		goto out;
	deadline = o->timeout_secs ? s->t0 + o->timeout_secs * 1000000000ULL : 0;
	if (vm_start(s->vm)) {
		status = vm_finish(s->vm, VM_EXIT_ERROR);
		log_err("snapshot '%s': the VM did not start (exit status %d); nothing was written",
			s->tag, status);
		goto out;
	}
	started = true;
	if (!wait_warm(s, deadline)) {
		status = vm_finish(s->vm, VM_EXIT_ERROR);
		started = false;
		report_failure(s, status, o->timeout_secs);
		goto out;
	}
	t_warm = now_ns();
	/* The poller closed its connection and ended; the guest's end goes at
	 * restore anyway (the device resets its connections). */
	agent_wait_stop(&s->agent);
	if (s->agent_port)
		log_info("snapshot '%s': agent warm after %.2f s (pid %lld, numpy %s); pausing",
			 s->tag, (t_warm - s->t0) / 1e9, s->agent.pid, s->agent.numpy);
	else
		log_info("snapshot '%s': guest warm after %.2f s; pausing", s->tag,
			 (t_warm - s->t0) / 1e9);
	vm_pause(s->vm);
	/* No more back-end input may touch guest memory or queues. */
	evloop_destroy(&s->vm->loop);
	if (snapshot_create_fds(s->vm, files, meta))
		goto out;
	vm_finish(s->vm, VM_EXIT_POWEROFF);
	started = false;
	/* The console's last bytes, before the parent prints its line. */
	console_tap_close(&s->con);
	/* snprintf + write: dprintf would fstat, which the jail forbids. */
	{
		char line[64];
		int n = snprintf(line, sizeof(line), "warm %llu\n",
				 (unsigned long long)(t_warm - s->t0));

		if (write_full(rep, line, (size_t)n))
			goto out;
	}
	ret = 0;
out:
	if (started)
		vm_finish(s->vm, VM_EXIT_ERROR);
	free(meta);
	return ret;
}

static volatile pid_t signal_child;

static void forward_signal(int sig)
{
	if (signal_child > 0)
		kill(signal_child, sig);
}

/* The parent: pass SIGINT/SIGTERM on, read the child's reports, reap it.
 * 0 when it wrote the snapshot; else -1 (the child said why, or this says
 * how it died). */
static int wait_child(pid_t child, int rfd, bool *built, uint64_t *warm_ns)
{
	struct sigaction sa = {.sa_handler = forward_signal};
	char buf[256], *w;
	size_t len = 0;
	int st;

	signal_child = child;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	while (len < sizeof(buf) - 1) {
		ssize_t n = read(rfd, buf + len, sizeof(buf) - 1 - len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		len += (size_t)n;
	}
	buf[len] = 0;
	while (waitpid(child, &st, 0) < 0 && errno == EINTR)
		;
	signal_child = 0;
	*built = strstr(buf, "built\n") != NULL;
	w = strstr(buf, "warm ");
	if (WIFSIGNALED(st)) {
		log_err(
		    "the snapshot's VMM (pid %d) was killed by signal %d%s; nothing was written",
		    (int)child, WTERMSIG(st),
		    WTERMSIG(st) == SIGSYS ? " (SIGSYS: a system call its jail forbids; "
					     "--no-seccomp runs it unjailed, for debugging)"
					   : "");
		return -1;
	}
	if (!WIFEXITED(st) || WEXITSTATUS(st) || !w)
		return -1;
	*warm_ns = strtoull(w + 5, NULL, 10);
	return 0;
}

int cmd_snapshot(int argc, char **argv)
{
	enum {
		O_TAG = 2000,
		O_FORCE,
		O_WARM_CONSOLE,
		O_IMAGE,
		O_AGENT_PORT,
		O_NET,
		O_JSON,
		O_NOSECCOMP
	};
	struct option opts[40];
	struct vmopts o;
	struct guest_image *img = NULL;
	struct snap_run s = {.warm_fd = -1, .epfd = -1, .timer_fd = -1};
	struct snapshot_fds files = {-1, -1, -1};
	char dir[PATH_MAX], tmpdir[PATH_MAX + 32] = "", vsock_dir[64] = "", vsock_path[128];
	char run_dir[PATH_MAX + 32];
	struct jail_fs_ids jail_ids;
	char err[600];
	const char *tag = NULL, *image = NULL;
	bool force = false, agent_port_set = false, net = false, json = false, no_jail = false;
	bool built = false;
	int console_fd = -1, c, ret = 1, rm_err, json_fd = -1, rep[2] = {-1, -1};
	uint64_t t_warm = 0, t_done = 0, port;
	pid_t child;
	struct stat st;

	if (argc > 1 && !strcmp(argv[1], "compact"))
		return cmd_snapshot_compact(argc - 1, argv + 1);
	if (argc > 1 &&
	    (!strcmp(argv[1], "ls") || !strcmp(argv[1], "info") || !strcmp(argv[1], "rm")))
		return cmd_snapshot_store(argc - 1, argv + 1);
	if (argc > 1 && (!strcmp(argv[1], "pack") || !strcmp(argv[1], "unpack")))
		return cmd_snapshot_pack(argc - 1, argv + 1);
	for (int i = 1; i < argc; i++)
		if (!strcmp(argv[i], "--from-sandbox") || !strncmp(argv[i], "--from-sandbox=", 15))
			return cmd_branch(argc, argv);
	vmopts_table(opts, 40,
		     (const struct option[]){
			 {"tag", required_argument, NULL, O_TAG},
			 {"force", no_argument, NULL, O_FORCE},
			 {"warm-console", required_argument, NULL, O_WARM_CONSOLE},
			 {"image", required_argument, NULL, O_IMAGE},
			 {"agent-port", required_argument, NULL, O_AGENT_PORT},
			 {"net", no_argument, NULL, O_NET},
			 {"json", no_argument, NULL, O_JSON},
			 {"no-seccomp", no_argument, NULL, O_NOSECCOMP},
			 {0},
		     });
	vmopts_init(&o);
	s.t0 = now_ns();
	optind = 1;
	while ((c = cli_getopt(argc, argv, "h", opts, "snapshot")) != -1) {
		if (c == 'h') {
			snapshot_usage(stdout);
			return 0;
		} else if (c == O_TAG) {
			tag = optarg;
		} else if (c == O_FORCE) {
			force = true;
		} else if (c == O_WARM_CONSOLE) {
			if (!*optarg || strlen(optarg) > 200)
				cli_usage_error("snapshot",
						"--warm-console wants 1-200 characters");
			o.spec.warm_console = optarg;
		} else if (c == O_IMAGE) {
			image = optarg;
		} else if (c == O_JSON) {
			json = true;
		} else if (c == O_NOSECCOMP) {
			no_jail = true;
		} else if (c == O_NET) {
			net = true;
		} else if (c == O_AGENT_PORT) {
			if (parse_u64(optarg, &port) || port > 0xfffffffeULL)
				cli_usage_error("snapshot",
						"--agent-port wants a vsock port (0 for none), got "
						"'%s'",
						optarg);
			/* agent_connect() speaks to the agent's one port. */
			if (port && port != AGENT_VSOCK_PORT)
				cli_usage_error(
				    "snapshot",
				    "--agent-port: forkd's agent client connects to vsock "
				    "port %d only; use --agent-port %d (or 0: no agent)",
				    AGENT_VSOCK_PORT, AGENT_VSOCK_PORT);
			s.agent_port = (uint32_t)port;
			agent_port_set = true;
		} else if (!vmopts_parse(&o, "snapshot", c, optarg)) {
			cli_usage_error("snapshot", "unknown option");
		}
	}
	if (optind != argc)
		cli_usage_error("snapshot", "unexpected argument '%s'", argv[optind]);
	if (!tag)
		cli_usage_error("snapshot", "--tag is required");
	if (!snapshot_tag_valid(tag))
		cli_usage_error("snapshot",
				"invalid tag '%s': use 1-64 of A-Z a-z 0-9 _ . - , "
				"starting with a letter, digit or _, and no '..'",
				tag);
	if (image && !agent_port_set)
		s.agent_port = AGENT_VSOCK_PORT;
	if (no_jail)
		log_warn("--no-seccomp: the booting VM runs WITHOUT the VMM jail; a guest that "
			 "breaks out of its VMM gets this process's privileges. Debugging only");
	/* Before the console is opened: it may be stdout, which becomes stderr. */
	if (json && (json_fd = cli_json_begin()) < 0)
		return 1;
	if (s.agent_port && o.spec.warm_console)
		cli_usage_error("snapshot",
				"--warm-console and the agent are two warm signals: with an agent "
				"port (default with --image) drop --warm-console, or give "
				"--agent-port 0");
	if (!image && !o.boot.kernel)
		cli_usage_error("snapshot", "give --image IMG (a guest image) or --kernel PATH");
	if (image && (o.boot.kernel || o.boot.initrd))
		cli_usage_error("snapshot", "--image supplies the kernel and the initrd: drop "
					    "--kernel and --initrd");
	if (image && o.spec.dev.nr_disks == MACHINE_MAX_DISKS)
		cli_usage_error("snapshot",
				"--image adds its root disk: at most %d more --disk options",
				MACHINE_MAX_DISKS - 1);
	if (net && o.spec.tap)
		cli_usage_error("snapshot", "--net gives the guest its own tap: drop --tap");
	s.tag = tag;
	if (snapshot_dir(tag, dir, sizeof(dir)))
		goto out;
	if (stat(dir, &st) == 0 && !force) {
		log_err("snapshot '%s' already exists at %s (use --force to replace it)", tag, dir);
		goto out;
	}
	/* Before any thread starts: unshare() moves only the caller. */
	if (net) {
		if (netns_private_tap())
			goto out;
		o.spec.tap = NETNS_TAP_NAME;
		o.spec.dev.net = true;
	}
	if (image) {
		img = malloc(sizeof(*img));
		if (!img)
			goto out;
		if (guest_image_open(image, img, err, sizeof(err))) {
			log_err("%s", err);
			goto out;
		}
		image_apply(&o, img);
	}
	if (s.agent_port && !o.spec.vsock) {
		/* A private socket: this VM only answers the poller. */
		const char *tmp = getenv("TMPDIR");

		if (!tmp || !*tmp || strlen(tmp) > 40)
			tmp = "/tmp";
		snprintf(vsock_dir, sizeof(vsock_dir), "%s/forkd-snapshot.XXXXXX", tmp);
		if (!mkdtemp(vsock_dir)) {
			log_errno("mkdtemp %s", vsock_dir);
			vsock_dir[0] = 0;
			goto out;
		}
		snprintf(vsock_path, sizeof(vsock_path), "%s/vsock.sock", vsock_dir);
		if (!no_jail && (jail_fs_ids(&jail_ids) || jail_fs_share_dir(vsock_dir, &jail_ids)))
			goto out;
		o.spec.vsock = vsock_path;
		o.spec.dev.vsock = true;
	}
	if (vmopts_finish(&o, "snapshot", &console_fd))
		goto out;
	if (console_tap_open(&s.con, console_fd))
		goto out;
	o.spec.console_fd = s.con.wfd;

	/* Everything is written into a private directory first and renamed at
	 * the end: a failure leaves nothing behind under the tag's name. The
	 * files are made here; the VM runs in a child process that is jailed
	 * like a fork's children (isolate/jail.h) and writes them through the
	 * descriptors it inherits: it can open nothing. */
	snprintf(tmpdir, sizeof(tmpdir), "%s.tmp.%d", dir, (int)getpid());
	if (make_dirs(tmpdir, 0755) || snapshot_fds_create(tmpdir, o.spec.mem_mib * MIB, &files))
		goto out;
	/* The jailed VMM's root keeps one directory: its socket's, else this
	 * private one (it names nothing in it: the files are descriptors). */
	if (o.spec.dev.vsock) {
		char *slash;

		snprintf(run_dir, sizeof(run_dir), "%s", o.spec.vsock);
		slash = strrchr(run_dir, '/');
		if (!slash)
			snprintf(run_dir, sizeof(run_dir), ".");
		else
			*(slash == run_dir ? slash + 1 : slash) = 0;
	} else {
		snprintf(run_dir, sizeof(run_dir), "%s", tmpdir);
	}
	s.warm_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	s.epfd = epoll_create1(EPOLL_CLOEXEC);
	s.timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
	if (s.warm_fd < 0 || s.epfd < 0 || s.timer_fd < 0) {
		log_errno("eventfd/epoll/timerfd");
		goto out;
	}
	if (watch(s.epfd, s.warm_fd) || watch(s.epfd, s.timer_fd))
		goto out;
	/* With an agent the poller signals warm_fd; the doorbell is ignored. */
	o.spec.warm_fd = s.agent_port ? -1 : s.warm_fd;
	if (pipe2(rep, O_CLOEXEC) < 0) {
		log_errno("pipe");
		goto out;
	}
	fflush(stdout);
	fflush(stderr);
	child = fork();
	if (child < 0) {
		log_errno("fork");
		goto out;
	}
	if (child == 0) {
		/* Never outlive the command (a daemon's job may SIGKILL it). */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() == 1)
			_exit(1);
		close(rep[0]);
		if (json_fd >= 0)
			close(json_fd);
		_exit(boot_child(&s, &o, img, &files, rep[1], run_dir, !no_jail));
	}
	close(rep[1]);
	rep[1] = -1;
	/* Its copies are the child's now: the console reaches its end of
	 * file only when every write end is closed. */
	console_tap_close(&s.con);
	if (wait_child(child, rep[0], &built, &t_warm) || snapshot_fds_sync(&files))
		goto out;
	snapshot_fds_close(&files);
	if (force && stat(dir, &st) == 0 && (rm_err = file_remove_tree(dir))) {
		log_err("remove old snapshot %s: %s", dir, strerror(-rm_err));
		goto out;
	}
	if (rename(tmpdir, dir) < 0) {
		log_errno("rename %s to %s", tmpdir, dir);
		goto out;
	}
	t_done = now_ns();
	ret = 0;
out:
	if (ret && tmpdir[0] && (rm_err = file_remove_tree(tmpdir)))
		log_warn("left %s behind: %s", tmpdir, strerror(-rm_err));
	snapshot_fds_close(&files);
	/* The child bound the vsock socket and, jailed, cannot unlink it. */
	if (built && o.spec.dev.vsock && o.spec.vsock && unlink(o.spec.vsock) < 0 &&
	    errno != ENOENT)
		log_errno("unlink %s", o.spec.vsock);
	if (vsock_dir[0] && rmdir(vsock_dir) < 0)
		log_errno("rmdir %s", vsock_dir);
	console_tap_close(&s.con);
	for (int i = 0; i < 2; i++)
		if (rep[i] >= 0)
			close(rep[i]);
	if (s.warm_fd >= 0)
		close(s.warm_fd);
	if (s.epfd >= 0)
		close(s.epfd);
	if (s.timer_fd >= 0)
		close(s.timer_fd);
	if (console_fd > STDOUT_FILENO)
		close(console_fd);
	free(img);
	if (!ret && json_fd >= 0)
		cli_json_emit(json_fd,
			      json_pack("{s:s, s:s, s:f, s:f, s:I, s:i, s:b}", "tag", tag, "dir",
					dir, "seconds", (t_done - s.t0) / 1e9, "warm_after_seconds",
					t_warm / 1e9, "mem_mib", (json_int_t)o.spec.mem_mib,
					"vcpus", o.spec.vcpus, "jailed", !no_jail));
	else if (json_fd >= 0)
		close(json_fd);
	else if (!ret)
		printf("snapshot %s written to %s in %.2f s (guest warm after %.2f s)\n", tag, dir,
		       (t_done - s.t0) / 1e9, t_warm / 1e9);
	return ret;
}
