/* forkd doctor: check this host for everything forkd uses, one line per
 * check (PASS, WARN or FAIL) with the fix for anything not PASS.
 *
 * FAIL: forkd cannot do its basic work (boot, snapshot, fork) here, or a
 * setting is wrong. WARN: an optional feature is unavailable or slow
 * (per-child namespaces without root, memory limits without a memory
 * controller, hugepages, KSM, the daemon not running). Exit status 1 when
 * any check FAILs. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/vfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <jansson.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <linux/kvm.h>
#include <linux/magic.h>
#include <linux/netlink.h>

#include "cli/cli.h"
#include "cli/http_client.h"
#include "common/file.h"
#include "common/util.h"
#include "isolate/cgroup.h"
#include "isolate/jail.h"
#include "isolate/jail_fs.h"
#include "isolate/netns.h"
#include "isolate/nl.h"
#include "isolate/nl_nft.h"
#include "snapshot/snapshot.h"
#include "vmm/vm.h"

#define DEFAULT_URL  "http://127.0.0.1:8889"
#define MAX_CHECKS   24
#define TEXT	     512
#define HTTP_TIMEOUT 1000 /* ms, for connecting and for the answer */

enum level { PASS, WARN, FAIL };
static const char *const level_name[] = {"PASS", "WARN", "FAIL"};

struct check {
	const char *name;
	enum level level;
	char detail[TEXT];
	char fix[TEXT];
};

struct report {
	struct check c[MAX_CHECKS];
	int n;
};

static void add(struct report *r, const char *name, enum level level, const char *fix,
		const char *fmt, ...) __printf(5, 6);

static void add(struct report *r, const char *name, enum level level, const char *fix,
		const char *fmt, ...)
{
	struct check *c;
	va_list ap;

	if (r->n == MAX_CHECKS)
		return;
	c = &r->c[r->n++];
	c->name = name;
	c->level = level;
	va_start(ap, fmt);
	vsnprintf(c->detail, sizeof(c->detail), fmt, ap);
	va_end(ap);
	snprintf(c->fix, sizeof(c->fix), "%s", level == PASS || !fix ? "" : fix);
}

/* A /proc or /sys file whole, or NULL. */
static char *slurp(const char *path)
{
	char *text;

	return file_read(path, 4u << 20, &text, NULL) ? NULL : text;
}

/* True when /proc/cpuinfo's first "flags" line has the word flag. */
static bool cpu_flag(const char *flag)
{
	char *info = slurp("/proc/cpuinfo"), *line, *end, *p;
	size_t n = strlen(flag);
	bool found = false;

	line = info ? strstr(info, "\nflags") : NULL;
	if (line) {
		end = strchr(line + 1, '\n');
		if (end)
			*end = '\0';
		for (p = strchr(line, ':'); p && !found; p = strchr(p + 1, ' '))
			found = !strncmp(p + 1, flag, n) && (p[1 + n] == ' ' || p[1 + n] == '\0');
	}
	free(info);
	return found;
}

#define NO_KVM_FIX                                                                                 \
	"here, run the tests and the demo in forkd's KVM lab (scripts/kvm-lab; make check and "    \
	"make demo-image use it by themselves); run production on a host with KVM: bare metal, "   \
	"or a VM with nested virtualization (then modprobe kvm_intel or kvm_amd)"

/* No /dev/kvm: say why, as far as this host shows it. */
static void no_kvm(struct report *r)
{
	bool kvm = access("/sys/module/kvm", F_OK) == 0;

	if (kvm && access("/sys/module/kvm_pvm", F_OK) == 0)
		add(r, "kvm", FAIL, NO_KVM_FIX,
		    "kvm and kvm_pvm are loaded but there is no /dev/kvm: kvm_pvm does not bind "
		    "when this kernel is itself a guest of a KVM-PVM hypervisor (dmesg: "
		    "\"not binding\")");
	else if (kvm && cpu_flag("hypervisor") && !cpu_flag("vmx") && !cpu_flag("svm"))
		add(r, "kvm", FAIL, NO_KVM_FIX,
		    "kvm is loaded but there is no /dev/kvm: this host is a virtual machine whose "
		    "CPU shows neither vmx nor svm (no nested virtualization)");
	else if (kvm)
		add(r, "kvm", FAIL,
		    "load the vendor module (modprobe kvm_intel or kvm_amd) with virtualization "
		    "enabled in the firmware; or " NO_KVM_FIX,
		    "kvm is loaded but there is no /dev/kvm");
	else
		add(r, "kvm", FAIL,
		    "load the KVM module (modprobe kvm_intel or kvm_amd) with virtualization "
		    "enabled in the firmware; in a container, pass the device (--device /dev/kvm); "
		    "or " NO_KVM_FIX,
		    "/dev/kvm does not exist");
}

static void check_kvm(struct report *r)
{
	int kvm, vm, api;

	kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (kvm < 0) {
		int e = errno;

		if (e == ENOENT)
			no_kvm(r);
		else
			add(r, "kvm", FAIL,
			    "add this user to the kvm group (usermod -aG kvm USER, then log in "
			    "again) or run forkd as root",
			    "open /dev/kvm: %s", strerror(e));
		return;
	}
	api = ioctl(kvm, KVM_GET_API_VERSION, 0);
	if (api != KVM_API_VERSION) {
		add(r, "kvm", FAIL, "use a Linux kernel with the stable KVM API (2.6.22 or later)",
		    "/dev/kvm speaks API version %d, forkd needs %d", api, KVM_API_VERSION);
		close(kvm);
		return;
	}
	vm = ioctl(kvm, KVM_CREATE_VM, 0);
	if (vm < 0)
		add(r, "kvm", FAIL,
		    "another hypervisor may hold the virtualization extensions, or the kernel "
		    "lacks memory for a VM; see dmesg",
		    "KVM_CREATE_VM: %s", strerror(errno));
	else
		add(r, "kvm", PASS, NULL, "/dev/kvm: API version %d, created a VM", api);
	if (vm >= 0)
		close(vm);
	close(kvm);
}

static void check_pvm(struct report *r)
{
	if (access("/dev/kvm", F_OK) != 0)
		return; /* check_kvm said why there is none */
	if (!vm_host_is_pvm()) {
		if (getenv("FORKD_IN_LAB"))
			add(r, "kvm-pvm", PASS, NULL,
			    "hardware-assisted KVM (no KVM-PVM), inside forkd's KVM lab: the CPU "
			    "is emulated (QEMU TCG with nested SVM), so timings here are only "
			    "meaningful as ratios measured in the same run");
		else
			add(r, "kvm-pvm", PASS, NULL,
			    "hardware-assisted KVM (no KVM-PVM): guest kernels run at native "
			    "speed");
		return;
	}
	add(r, "kvm-pvm", WARN,
	    "for full guest-kernel speed use a host whose KVM has VMX/SVM (bare metal or nested "
	    "virtualization); on this host boot once and fork from snapshots, which skip the "
	    "guest kernel's slow start; FORKD_LAB=1 make check runs the KVM suites in forkd's "
	    "KVM lab (scripts/kvm-lab) instead, with hardware-assisted KVM",
	    "KVM-PVM detected (%s): guest user code runs natively, but guest kernel code is "
	    "emulated, roughly 1000x slower; forkd adds the kernel switches PVM needs (%s)",
	    getenv("FORKD_PVM") ? "FORKD_PVM=1" : "/sys/module/kvm_pvm", PVM_KERNEL_ARGS);
}

static void check_cgroup(struct report *r)
{
	char *mi = slurp("/proc/self/mountinfo"), *pc = slurp("/proc/cgroups"),
	     *sc = slurp("/proc/self/cgroup");
	const char *tree = "unknown";
	struct cgroup_layout l;
	char why[TEXT] = "";
	struct statfs sfs;

	if (statfs("/sys/fs/cgroup", &sfs) == 0)
		tree = sfs.f_type == CGROUP2_SUPER_MAGIC ? "unified (cgroup v2 only)"
		       : sfs.f_type == TMPFS_MAGIC	 ? "cgroup v1 or hybrid"
							 : "unusual";
	if (!mi || !pc || !sc) {
		add(r, "cgroup", WARN, "mount /proc", "cannot read /proc's cgroup files");
	} else if (cgroup_layout_parse(mi, pc, sc, &l, why, sizeof(why))) {
		add(r, "cgroup", WARN, why,
		    "/sys/fs/cgroup is %s; no usable memory controller, so --memory-limit-mib "
		    "cannot work",
		    tree);
	} else if (access(l.base, W_OK) < 0) {
		add(r, "cgroup", WARN,
		    "run forkd as root, or delegate a cgroup to this user (systemd-run --user "
		    "--scope -p Delegate=yes ...)",
		    "/sys/fs/cgroup is %s; memory controller on cgroup v%d at %s, but %s is not "
		    "writable, so --memory-limit-mib cannot create %s/",
		    tree, l.version, l.mount, l.base, CGROUP_PARENT_NAME);
	} else {
		add(r, "cgroup", PASS, NULL,
		    "/sys/fs/cgroup is %s; memory controller on cgroup v%d at %s; children's "
		    "leaves go under %s",
		    tree, l.version, l.mount, l.parent);
	}
	free(mi);
	free(pc);
	free(sc);
}

/* What the probe child found, step by step (netns, tap, veth, nftables). */
struct net_probe {
	int err[4]; /* 0 or -errno of each step; 1: not reached */
};

static int probe_steps(struct net_probe *p)
{
	struct ifreq ifr = {.ifr_flags = IFF_TAP | IFF_NO_PI};
	struct nl nl;
	int fd;

	if (unshare(CLONE_NEWNET) < 0)
		return p->err[0] = -errno;
	p->err[0] = 0;
	fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "forkd-doctor0");
	p->err[1] = fd < 0 ? -errno : ioctl(fd, TUNSETIFF, &ifr) < 0 ? -errno : 0;
	if (fd >= 0)
		close(fd);
	p->err[2] = nl_open(&nl, NETLINK_ROUTE, -1, "doctor probe");
	if (!p->err[2]) {
		p->err[2] = nl_veth_add(&nl, "fkd-doctor-a", "fkd-doctor-b", -1);
		nl_close(&nl);
	}
	p->err[3] = nl_open(&nl, NETLINK_NETFILTER, -1, "doctor probe");
	if (!p->err[3]) {
		p->err[3] = nl_nft_nat_replace(&nl, "lo", htonl(0x0a2a0000), 24);
		nl_close(&nl);
	}
	return 0;
}

/* Probe in a child process that unshares its own network namespace, so
 * nothing it makes survives it and doctor's own namespace is untouched. */
static void check_network(struct report *r)
{
	struct net_probe p = {{1, 1, 1, 1}};
	const char *root_fix = "run forkd as root (per-child namespaces need CAP_NET_ADMIN and "
			       "CAP_SYS_ADMIN)";
	uint32_t *idx = NULL;
	size_t n = 0, bad = 0;
	int pipefd[2], status;
	pid_t pid;

	if (access("/dev/net/tun", F_OK) < 0) {
		add(r, "tun", FAIL,
		    "load the tun module (modprobe tun) or create the node "
		    "(mknod /dev/net/tun c 10 200)",
		    "/dev/net/tun is missing: no tap for guest networking");
	} else {
		add(r, "tun", PASS, NULL, "/dev/net/tun present");
	}
	if (geteuid() != 0) {
		add(r, "netns", WARN, root_fix,
		    "not root: --per-child-netns and 'forkd netns' cannot make namespaces");
		return;
	}
	if (pipe2(pipefd, O_CLOEXEC) < 0) {
		add(r, "netns", FAIL, NULL, "pipe: %s", strerror(errno));
		return;
	}
	fflush(NULL);
	pid = fork();
	if (pid == 0) {
		int null = open("/dev/null", O_WRONLY | O_CLOEXEC);

		/* Failures reach the report through the pipe, not stderr. */
		if (null >= 0)
			dup2(null, STDERR_FILENO);
		close(pipefd[0]);
		probe_steps(&p);
		_exit(write(pipefd[1], &p, sizeof(p)) == sizeof(p) ? 0 : 1);
	}
	close(pipefd[1]);
	if (pid < 0 || read_full(pipefd[0], &p, sizeof(p)) < 0)
		p.err[0] = -EIO;
	close(pipefd[0]);
	if (pid > 0)
		waitpid(pid, &status, 0);

	if (netns_list(&idx, &n) == 0) {
		for (size_t i = 0; i < n; i++) {
			struct netns_status st;

			if (netns_check(idx[i], &st) || !netns_status_ok(&st))
				bad++;
		}
		free(idx);
	}
	if (p.err[0])
		add(r, "netns", FAIL, "use a kernel with CONFIG_NET_NS=y",
		    "unshare(CLONE_NEWNET): %s", strerror(-p.err[0]));
	else
		add(r, "netns", n && bad ? WARN : PASS, "repair them: forkd netns setup N",
		    "network namespaces work; %zu forkd-child-* namespaces exist%s", n,
		    bad ? ", some incomplete" : "");
	if (p.err[1] < 0)
		add(r, "tap", FAIL, "load the tun module (modprobe tun; CONFIG_TUN)",
		    "creating a tap in a fresh namespace: %s", strerror(-p.err[1]));
	else if (!p.err[1])
		add(r, "tap", PASS, NULL, "a tap can be created inside a namespace");
	if (p.err[2] < 0)
		add(r, "veth", FAIL, "load the veth module (modprobe veth; CONFIG_VETH)",
		    "creating a veth pair: %s", strerror(-p.err[2]));
	else if (!p.err[2])
		add(r, "veth", PASS, NULL, "veth pairs can be created");
	if (p.err[3] < 0)
		add(r, "nftables", FAIL,
		    "use a kernel with nf_tables and NAT (CONFIG_NF_TABLES, CONFIG_NFT_NAT, "
		    "CONFIG_NFT_MASQ), or load them (modprobe nft_masq)",
		    "an nf_tables masquerade rule: %s", strerror(-p.err[3]));
	else if (!p.err[3])
		add(r, "nftables", PASS, NULL, "nf_tables NAT (masquerade) works");
}

/* One "Key: value" number from /proc/meminfo. */
static long meminfo(const char *text, const char *key)
{
	const char *p = text;
	size_t k = strlen(key);

	while (p && *p) {
		if (!strncmp(p, key, k) && p[k] == ':')
			return strtol(p + k + 1, NULL, 10);
		p = strchr(p, '\n');
		if (p)
			p++;
	}
	return -1;
}

static void check_hugepages(struct report *r)
{
	char *mi = slurp("/proc/meminfo");
	long total, freep, size;

	total = meminfo(mi, "HugePages_Total");
	freep = meminfo(mi, "HugePages_Free");
	size = meminfo(mi, "Hugepagesize");
	free(mi);
	if (total < 0) {
		add(r, "hugepages", WARN, "use a kernel with CONFIG_HUGETLBFS",
		    "no hugepage support: --hugepages cannot work");
	} else if (total == 0) {
		add(r, "hugepages", WARN,
		    "reserve some: echo N > /proc/sys/vm/nr_hugepages (N = children x guest MiB / "
		    "2)",
		    "no hugepages reserved (%ld kB each): --live-fork --hugepages cannot work",
		    size);
	} else if (freep == 0) {
		add(r, "hugepages", WARN, "reserve more: echo N > /proc/sys/vm/nr_hugepages",
		    "all %ld hugepages (%ld kB each) are in use", total, size);
	} else {
		add(r, "hugepages", PASS, NULL, "%ld of %ld hugepages (%ld kB each) free", freep,
		    total, size);
	}
}

static void check_memfd(struct report *r)
{
	int fd = memfd_create("forkd-doctor", MFD_CLOEXEC);

	if (fd < 0) {
		add(r, "memfd", FAIL, "use Linux 3.17 or later (CONFIG_MEMFD_CREATE)",
		    "memfd_create: %s (--live-fork keeps guest RAM in a memfd)", strerror(errno));
		return;
	}
	if (ftruncate(fd, (off_t)(2 * MIB)) < 0)
		add(r, "memfd", FAIL, "see dmesg", "ftruncate(memfd, 2 MiB): %s", strerror(errno));
	else
		add(r, "memfd", PASS, NULL, "memfd_create works");
	close(fd);
}

/* What the VMM jail enforces (isolate/jail.h), tried in a throwaway
 * process: the view of the host and the ids for real, the filter by what
 * it holds. */
static void check_jail(struct report *r)
{
	struct jail_opts o = {.vsock = true};
	char msg[TEXT - 64];
	size_t calls, ioctls;

	if (jail_fs_probe(msg, sizeof(msg)))
		add(r, "vmm-jail", FAIL,
		    "run forkd as root (or with user namespaces allowed); check "
		    "$" JAIL_FS_UID_ENV " / $" JAIL_FS_GID_ENV,
		    "jailed VMMs cannot start: %s", msg);
	else
		add(r, "vmm-jail", PASS, NULL, "%s", msg);
	jail_rules(&o, &calls);
	jail_ioctls(&ioctls, NULL);
	add(r, "vmm-seccomp", PASS, NULL,
	    "no capabilities, no_new_privs, an allow-list of %zu system calls (others kill the "
	    "VMM), ioctl only on the VM's own KVM descriptors, %zu requests, each on its kind",
	    calls, ioctls);
}

static void check_userfaultfd(struct report *r)
{
	char *knob = slurp("/proc/sys/vm/unprivileged_userfaultfd");
	int fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK), e = errno;
	char setting[48] = "not present";

	if (knob)
		snprintf(setting, sizeof(setting), "%.*s", (int)strcspn(knob, "\n"), knob);
	free(knob);
	if (fd >= 0) {
		close(fd);
		add(r, "userfaultfd", PASS, NULL,
		    "userfaultfd available (vm.unprivileged_userfaultfd = %s)", setting);
	} else if (e == ENOSYS) {
		add(r, "userfaultfd", WARN, "use a kernel with CONFIG_USERFAULTFD=y",
		    "no userfaultfd system call (lazy memory restore cannot be used)");
	} else {
		add(r, "userfaultfd", WARN,
		    "run as root, or allow it: sysctl vm.unprivileged_userfaultfd=1",
		    "userfaultfd: %s (vm.unprivileged_userfaultfd = %s)", strerror(e), setting);
	}
}

static void check_ksm(struct report *r)
{
	char *run = slurp("/sys/kernel/mm/ksm/run"),
	     *sharing = slurp("/sys/kernel/mm/ksm/pages_sharing");

	if (!run)
		add(r, "ksm", WARN, "use a kernel with CONFIG_KSM=y",
		    "no KSM (/sys/kernel/mm/ksm): identical pages children write are never merged");
	else if (run[0] == '1')
		add(r, "ksm", PASS, NULL, "KSM running (pages_sharing %ld)",
		    sharing ? strtol(sharing, NULL, 10) : 0L);
	else
		add(r, "ksm", WARN, "start it: echo 1 > /sys/kernel/mm/ksm/run",
		    "KSM is off: identical pages that children write are not merged (children "
		    "still share every page they did not write)");
	free(run);
	free(sharing);
}

/* Can this process create entries in dir? Tried for real, because
 * permission bits do not tell for root (read-only mounts, /proc). */
static int try_write(const char *dir)
{
	char tmp[PATH_MAX];

	if (snprintf(tmp, sizeof(tmp), "%s/.forkd-doctor.XXXXXX", dir) >= (int)sizeof(tmp))
		return -ENAMETOOLONG;
	if (!mkdtemp(tmp))
		return -errno;
	rmdir(tmp);
	return 0;
}

static void check_snapshot_dir(struct report *r)
{
	const char *fix = "set FORKD_HOME to a writable directory with room for snapshots, or "
			  "fix the permissions";
	char home[PATH_MAX], probe[PATH_MAX];
	struct statvfs vfs;
	struct stat st;
	bool exists;
	int err;

	if (snapshot_home(home, sizeof(home))) {
		add(r, "snapshot-dir", FAIL, fix,
		    "no place for snapshots ($FORKD_HOME, "
		    "$XDG_DATA_HOME and $HOME unset)");
		return;
	}
	/* The directory, or the nearest ancestor that exists (forkd creates
	 * the rest). */
	snprintf(probe, sizeof(probe), "%s", home);
	while (stat(probe, &st) < 0) {
		char *slash = strrchr(probe, '/');

		if (errno != ENOENT || !slash) {
			add(r, "snapshot-dir", FAIL, fix, "%s: %s", probe, strerror(errno));
			return;
		}
		if (slash == probe)
			slash[1] = '\0';
		else
			*slash = '\0';
	}
	exists = !strcmp(probe, home);
	if (!S_ISDIR(st.st_mode)) {
		add(r, "snapshot-dir", FAIL, fix, "%s: %s is not a directory", home, probe);
		return;
	}
	err = try_write(probe);
	if (err) {
		add(r, "snapshot-dir", FAIL, fix, "%s: cannot create files in %s: %s", home, probe,
		    strerror(-err));
		return;
	}
	if (statvfs(probe, &vfs) < 0) {
		add(r, "snapshot-dir", FAIL, fix, "statvfs %s: %s", probe, strerror(errno));
		return;
	}
	{
		uint64_t avail = (uint64_t)vfs.f_bavail * vfs.f_frsize;

		add(r, "snapshot-dir", avail < 2 * GIB ? WARN : PASS,
		    "free space there, or point FORKD_HOME elsewhere (each snapshot needs about "
		    "its guest's memory size)",
		    "%s%s: writable, %.1f GiB free", home, exists ? "" : " (created on first use)",
		    (double)avail / (double)GIB);
	}
}

static void check_image(struct report *r, const char *tag)
{
	static const char *const files[] = {"vmlinuz", "initrd.img", "rootfs.ext4", "cmdline",
					    "image.json"};
	const char *cache = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
	char dir[PATH_MAX], path[PATH_MAX + 32], fix[128];
	json_t *meta;
	json_error_t jerr;

	snprintf(fix, sizeof(fix), "build it: forkd image build --tag %s", tag);
	if (cache && *cache)
		snprintf(dir, sizeof(dir), "%s/forkd/images/%s", cache, tag);
	else if (home && *home)
		snprintf(dir, sizeof(dir), "%s/.cache/forkd/images/%s", home, tag);
	else {
		add(r, "image", WARN, "set HOME or XDG_CACHE_HOME",
		    "no $XDG_CACHE_HOME or $HOME: cannot locate guest images");
		return;
	}
	for (size_t i = 0; i < ARRAY_SIZE(files); i++) {
		struct stat st;

		snprintf(path, sizeof(path), "%s/%s", dir, files[i]);
		if (stat(path, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size == 0) {
			add(r, "image", WARN, fix, "guest image '%s': %s missing or empty", tag,
			    path);
			return;
		}
	}
	snprintf(path, sizeof(path), "%s/image.json", dir);
	meta = json_load_file(path, 0, &jerr);
	if (!meta || !json_is_object(meta)) {
		add(r, "image", WARN, fix, "guest image '%s': %s is not valid JSON (%s)", tag, path,
		    meta ? "not an object" : jerr.text);
		json_decref(meta);
		return;
	}
	{
		const char *kernel = json_string_value(json_object_get(meta, "kernel_version"));

		if (!kernel)
			kernel = json_string_value(json_object_get(meta, "kernel"));
		add(r, "image", PASS, NULL, "guest image '%s' in %s%s%s", tag, dir,
		    kernel ? ", kernel " : "", kernel ? kernel : "");
	}
	json_decref(meta);
}

static void check_daemon(struct report *r)
{
	const char *url = getenv("FORKD_URL");
	char base[512], path[512], err[512];
	struct http_resp resp;
	int e;

	if (!url || !*url)
		url = DEFAULT_URL;
	/* http[s]://HOST[:PORT][/PREFIX]: the client keeps a prefix. */
	snprintf(base, sizeof(base), "%s", url);
	snprintf(path, sizeof(path), "/healthz");
	e = http_request(base, NULL, "GET", path, NULL, NULL, 0, HTTP_TIMEOUT, &resp, err,
			 sizeof(err));
	if (e == -EINVAL) {
		add(r, "daemon", FAIL,
		    "set FORKD_URL to http[s]://HOST:PORT (e.g. " DEFAULT_URL ")",
		    "FORKD_URL '%s' is not an http[s]://HOST[:PORT][/PREFIX] address", url);
		return;
	}
	if (!e) {
		int status = resp.status;

		http_resp_free(&resp);
		if (status == 200)
			add(r, "daemon", PASS, NULL, "daemon at %s answers GET /healthz with 200",
			    url);
		else
			add(r, "daemon", FAIL, "see the daemon's log",
			    "daemon at %s answers GET /healthz with HTTP %d", url, status);
		return;
	}
	add(r, "daemon", WARN, "start it: forkd serve (or point FORKD_URL at the one you run)",
	    "no daemon at %s (%s)", url, err);
}

static void print_text(const struct report *r)
{
	for (int i = 0; i < r->n; i++) {
		const struct check *c = &r->c[i];

		printf("%s %-13s %s\n", level_name[c->level], c->name, c->detail);
		if (c->fix[0])
			printf("     %-13s fix: %s\n", "", c->fix);
	}
}

static int print_json(const struct report *r, const int count[3])
{
	json_t *root = json_object(), *arr = json_array();
	char *text;

	if (!root || !arr)
		return -ENOMEM;
	for (int i = 0; i < r->n; i++) {
		const struct check *c = &r->c[i];

		json_array_append_new(arr, json_pack("{s:s, s:s, s:s, s:s?}", "name", c->name,
						     "status", level_name[c->level], "detail",
						     c->detail, "fix", c->fix[0] ? c->fix : NULL));
	}
	json_object_set_new(root, "checks", arr);
	json_object_set_new(root, "pass", json_integer(count[PASS]));
	json_object_set_new(root, "warn", json_integer(count[WARN]));
	json_object_set_new(root, "fail", json_integer(count[FAIL]));
	json_object_set_new(root, "ok", json_boolean(count[FAIL] == 0));
	text = json_dumps(root, JSON_INDENT(2));
	json_decref(root);
	if (!text)
		return -ENOMEM;
	printf("%s\n", text);
	free(text);
	return 0;
}

static void doctor_usage(FILE *f)
{
	fprintf(
	    f,
	    "usage: forkd doctor [--json] [--tag TAG]\n"
	    "\n"
	    "Check this host for everything forkd uses and print one line per check:\n"
	    "PASS, WARN (an optional feature is unavailable or slow) or FAIL, each\n"
	    "WARN and FAIL with its fix. Checks: /dev/kvm (open, API version, create a\n"
	    "VM), KVM-PVM, cgroup layout and the memory controller, tun, network\n"
	    "namespaces, tap, veth and nf_tables NAT (root only: probed in a throwaway\n"
	    "namespace), hugepages, memfd, userfaultfd, KSM, the snapshot directory\n"
	    "($FORKD_HOME, default /var/lib/forkd as root: 'forkd where') and its free space, the "
	    "guest\n"
	    "image, and the daemon (GET /healthz at $FORKD_URL, default " DEFAULT_URL ").\n"
	    "\n"
	    "options:\n"
	    "  --json       print one JSON document instead: {\"checks\": [{\"name\",\n"
	    "               \"status\", \"detail\", \"fix\"}...], \"pass\", \"warn\", \"fail\",\n"
	    "               \"ok\"}\n"
	    "  --tag TAG    guest image to look for (default py), in\n"
	    "               ${XDG_CACHE_HOME:-~/.cache}/forkd/images/TAG/\n"
	    "  -h, --help   this text\n"
	    "\n"
	    "Exit status: 0 when nothing FAILed, 1 when something did, 2 on a usage error.\n");
}

int cmd_doctor(int argc, char **argv)
{
	static const struct option opts[] = {{"json", no_argument, NULL, 'j'},
					     {"tag", required_argument, NULL, 't'},
					     {"help", no_argument, NULL, 'h'},
					     {NULL, 0, NULL, 0}};
	const char *tag = "py";
	struct report *r;
	int c, count[3] = {0};
	bool json = false;

	while ((c = cli_getopt(argc, argv, "h", opts, "doctor")) != -1) {
		switch (c) {
		case 'j':
			json = true;
			break;
		case 't':
			tag = optarg;
			break;
		case 'h':
			doctor_usage(stdout);
			return 0;
		default:
			cli_usage_error("doctor", "unknown option");
		}
	}
	if (optind != argc)
		cli_usage_error("doctor", "unexpected argument '%s'", argv[optind]);
	if (!snapshot_tag_valid(tag))
		cli_usage_error("doctor",
				"invalid --tag '%s': use 1-64 of A-Z a-z 0-9 _ . -, not starting "
				"with . or -",
				tag);
	r = calloc(1, sizeof(*r));
	if (!r)
		return 1;
	check_kvm(r);
	check_pvm(r);
	check_cgroup(r);
	check_network(r);
	check_hugepages(r);
	check_memfd(r);
	check_jail(r);
	check_userfaultfd(r);
	check_ksm(r);
	check_snapshot_dir(r);
	check_image(r, tag);
	check_daemon(r);
	for (int i = 0; i < r->n; i++)
		count[r->c[i].level]++;
	if (json) {
		if (print_json(r, count)) {
			free(r);
			return 1;
		}
	} else {
		print_text(r);
		printf("doctor: %d passed, %d warnings, %d failed\n", count[PASS], count[WARN],
		       count[FAIL]);
	}
	free(r);
	return count[FAIL] ? 1 : 0;
}
