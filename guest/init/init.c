/* forkd-init: PID 1 of forkd guests, one static binary in two places.
 *
 * As /init of the initramfs (argv[0] "/init", stage 1) it mounts devtmpfs
 * and proc, loads the kernel modules listed in /etc/forkd/modules, mounts
 * the root device named by root= (default /dev/vda, ext4) on /newroot,
 * moves /dev and /proc there, makes it / and executes /sbin/init (or init=).
 *
 * As /sbin/init of the root filesystem (stage 2) it mounts what stage 1 did
 * not, loads still-missing modules, brings up lo and eth0 (10.42.0.2/24, via
 * 10.42.0.1) with ioctls, sets the hostname, starts the agent, reaps zombies,
 * restarts the agent with backoff when it dies, and powers off on SIGTERM,
 * SIGUSR2 or SIGPWR (SIGINT, i.e. ctrl-alt-del: reboot).
 *
 * Every guest system call is slow when the guest kernel is emulated
 * (KVM-PVM), so the boot path makes few of them: stage 1 tells stage 2 what
 * it already did through the environment, and nothing runs periodically
 * once the agent is up (the supervisor sleeps in sigwaitinfo).
 *
 * Host test modes (never touch the host's mounts, modules or power state):
 *   forkd-init --modules-plan FILE         what would be loaded, and why not
 *   forkd-init --net IFACE ADDR/LEN [GW]   configure lo + IFACE (in a netns)
 *   forkd-init --supervise CMD [ARG...]    supervise CMD; must be PID 1 of a
 *                                          PID namespace (unshare --pid --fork)
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <net/if.h>
#include <net/route.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MODULES_LIST   "/etc/forkd/modules"
#define MAX_MODULES    64
#define STAGE1_ENV     "FORKD_STAGE1" /* "1": /dev, /proc mounted, modules loaded */
#define HOSTNAME       "forkd"
#define GUEST_IFACE    "eth0"
#define GUEST_ADDR     "10.42.0.2/24"
#define GUEST_GW       "10.42.0.1"
#define BACKOFF_MIN_MS 250
#define BACKOFF_MAX_MS 30000
#define STABLE_MS      60000 /* an agent that ran this long restarts quickly */
#define ROOT_WAIT_MS   120000

static const char *const agent_argv[] = {
    "/usr/bin/python3", "-I", "/opt/forkd/agent.py", "--guest", NULL,
};
static const char *const agent_envp[] = {
    "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "HOME=/root",
    "LANG=C.UTF-8",
    "TERM=linux",
    NULL,
};

/* Also into the kernel log, at error level so a `quiet` console shows it:
 * printk reaches the serial console synchronously, which the tty path
 * does not always do on KVM-PVM hosts (docs/ARCHITECTURE.md). */
static void kmsg(const char *line, size_t len)
{
	static int fd = -2;
	char buf[520];

	/* Not when a host test stands in for the kernel command line: the
	 * host's log is not ours to write. */
	if (fd == -2)
		fd = getenv("FORKD_INIT_CMDLINE") ? -1 : open("/dev/kmsg", O_WRONLY | O_CLOEXEC);
	if (fd < 0 || len > sizeof(buf) - 4)
		return;
	memcpy(buf, "<3>", 3);
	memcpy(buf + 3, line, len);
	if (write(fd, buf, len + 3) < 0) {
		/* the console copy above is all there is */
	}
}

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...)
{
	char buf[512];
	va_list ap;
	int n;

	n = snprintf(buf, sizeof(buf), "forkd-init: ");
	va_start(ap, fmt);
	n += vsnprintf(buf + n, sizeof(buf) - (size_t)n - 1, fmt, ap);
	va_end(ap);
	if (n > (int)sizeof(buf) - 2)
		n = (int)sizeof(buf) - 2;
	buf[n++] = '\n';
	if (write(STDERR_FILENO, buf, (size_t)n) < 0) {
		/* nowhere left to report it */
	}
	kmsg(buf, (size_t)n);
}

static uint64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts); /* vDSO: no system call */
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void sleep_ms(unsigned int ms)
{
	struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000};

	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
}

/* ---- mounts --------------------------------------------------------------- */

struct mnt {
	const char *src, *dir, *type;
	unsigned long flags;
	const char *data;
};

static int do_mount(const struct mnt *m)
{
	if (mount(m->src, m->dir, m->type, m->flags, m->data) == 0)
		return 0;
	if (errno == ENOENT && mkdir(m->dir, 0755) == 0 &&
	    mount(m->src, m->dir, m->type, m->flags, m->data) == 0)
		return 0;
	say("mount %s on %s: %s", m->type, m->dir, strerror(errno));
	return -1;
}

#define NOSUID_NODEV (MS_NOSUID | MS_NODEV)
static const struct mnt mnt_dev = {"devtmpfs", "/dev", "devtmpfs", MS_NOSUID, "mode=0755"};
static const struct mnt mnt_proc = {"proc", "/proc", "proc", NOSUID_NODEV | MS_NOEXEC, NULL};
static const struct mnt mnt_rest[] = {
    {"sysfs", "/sys", "sysfs", NOSUID_NODEV | MS_NOEXEC, NULL},
    {"devpts", "/dev/pts", "devpts", MS_NOSUID | MS_NOEXEC, "mode=0620,ptmxmode=0666"},
    {"tmpfs", "/dev/shm", "tmpfs", NOSUID_NODEV, "mode=1777"},
    {"tmpfs", "/run", "tmpfs", NOSUID_NODEV, "mode=0755"},
    {"tmpfs", "/tmp", "tmpfs", NOSUID_NODEV, "mode=1777"},
};

/* The kernel opens /dev/console as fds 0-2 only if the node existed when it
 * started init; reopen it from devtmpfs otherwise. */
static void ensure_console(void)
{
	int fd;

	if (fcntl(STDERR_FILENO, F_GETFD) >= 0)
		return;
	fd = open("/dev/console", O_RDWR | O_NOCTTY);
	if (fd < 0)
		return;
	for (int i = 0; i < 3; i++)
		if (fd != i)
			dup2(fd, i);
	if (fd > 2)
		close(fd);
}

/* ---- modules -------------------------------------------------------------- */

struct modlist {
	char buf[8192];
	const char *path[MAX_MODULES];
	char name[MAX_MODULES][64];
	int n;
};

/* Read a module list: one .ko path per line, '#' comments, blank lines.
 * The module name is the file name without ".ko", '-' as '_'. */
static int modlist_read(const char *file, struct modlist *ml)
{
	ssize_t len;
	char *line, *next;
	int fd;

	ml->n = 0;
	fd = open(file, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? 0 : -errno;
	len = read(fd, ml->buf, sizeof(ml->buf) - 1);
	close(fd);
	if (len < 0)
		return -errno;
	if (len == (ssize_t)sizeof(ml->buf) - 1)
		return -EFBIG;
	ml->buf[len] = '\0';
	for (line = ml->buf; line && *line; line = next) {
		const char *base;
		char *end;
		size_t k;

		next = strchr(line, '\n');
		if (next)
			*next++ = '\0';
		while (*line == ' ' || *line == '\t')
			line++;
		end = line + strlen(line);
		while (end > line && (end[-1] == ' ' || end[-1] == '\t' || end[-1] == '\r'))
			*--end = '\0';
		if (*line == '\0' || *line == '#')
			continue;
		if (ml->n == MAX_MODULES)
			return -E2BIG;
		base = strrchr(line, '/');
		base = base ? base + 1 : line;
		k = strlen(base);
		if (*line != '/' || k < 4 || strcmp(base + k - 3, ".ko") || k - 3 >= 64)
			return -EINVAL;
		for (size_t i = 0; i < k - 3; i++)
			ml->name[ml->n][i] = base[i] == '-' ? '_' : base[i];
		ml->name[ml->n][k - 3] = '\0';
		ml->path[ml->n++] = line;
	}
	return 0;
}

/* Is module NAME listed in the text of /proc/modules? */
static bool proc_modules_has(const char *text, const char *name)
{
	size_t k = strlen(name);

	for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
		if (!strncmp(p, name, k) && p[k] == ' ')
			return true;
	return false;
}

/* Read /proc/modules into buf (NUL-terminated); "" if it cannot be read. */
static void proc_modules_read(char *buf, size_t size)
{
	size_t have = 0;
	ssize_t n;
	int fd;

	buf[0] = '\0';
	fd = open("/proc/modules", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	while (have < size - 1 && (n = read(fd, buf + have, size - 1 - have)) > 0)
		have += (size_t)n;
	buf[have] = '\0';
	close(fd);
}

/* finit_module each listed module (in order: the list is dependency-sorted
 * by the image build). Already loaded (EEXIST) is fine. Returns failures. */
static int modules_load(const struct modlist *ml, const char *loaded)
{
	int failed = 0;

	for (int i = 0; i < ml->n; i++) {
		int fd;

		if (loaded && proc_modules_has(loaded, ml->name[i]))
			continue;
		fd = open(ml->path[i], O_RDONLY | O_CLOEXEC);
		if (fd < 0) {
			say("module %s: open %s: %s", ml->name[i], ml->path[i], strerror(errno));
			failed++;
			continue;
		}
		if (syscall(SYS_finit_module, fd, "", 0) && errno != EEXIST) {
			say("module %s: finit_module: %s", ml->name[i], strerror(errno));
			failed++;
		}
		close(fd);
	}
	return failed;
}

static int modules_plan(const char *file)
{
	static struct modlist ml;
	static char loaded[1 << 20];
	int r;

	r = modlist_read(file, &ml);
	if (r) {
		fprintf(stderr, "forkd-init: %s: %s\n", file,
			r == -EINVAL ? "bad line (want an absolute path to a .ko file)"
				     : strerror(-r));
		return 1;
	}
	proc_modules_read(loaded, sizeof(loaded));
	for (int i = 0; i < ml.n; i++) {
		if (proc_modules_has(loaded, ml.name[i]))
			printf("skip %s loaded\n", ml.name[i]);
		else if (access(ml.path[i], R_OK))
			printf("fail %s %s: %s\n", ml.name[i], ml.path[i], strerror(errno));
		else
			printf("load %s %s\n", ml.name[i], ml.path[i]);
	}
	return 0;
}

/* ---- network -------------------------------------------------------------- */

static int ifr_ioctl(int s, unsigned long req, struct ifreq *ifr, const char *what)
{
	if (ioctl(s, req, ifr) == 0)
		return 0;
	say("%s(%s): %s", what, ifr->ifr_name, strerror(errno));
	return -1;
}

static int if_up(int s, const char *ifname)
{
	struct ifreq ifr = {0};

	snprintf(ifr.ifr_name, IFNAMSIZ, "%s", ifname);
	if (ifr_ioctl(s, SIOCGIFFLAGS, &ifr, "SIOCGIFFLAGS"))
		return -1;
	ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
	return ifr_ioctl(s, SIOCSIFFLAGS, &ifr, "SIOCSIFFLAGS");
}

static void set_sin(struct sockaddr *sa, in_addr_t addr)
{
	struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = addr};

	memcpy(sa, &sin, sizeof(sin));
}

/* lo up; IFNAME gets CIDR ("a.b.c.d/len") and comes up; default route via
 * GW when GW is not NULL. */
static int net_setup(const char *ifname, const char *cidr, const char *gw)
{
	char addr[INET_ADDRSTRLEN];
	struct in_addr a, g = {0};
	struct ifreq ifr = {0};
	const char *slash;
	char *end;
	long len;
	int s, r = -1;

	slash = strchr(cidr, '/');
	if (!slash || (size_t)(slash - cidr) >= sizeof(addr) || strlen(ifname) >= IFNAMSIZ) {
		say("bad address %s for %s (want a.b.c.d/len)", cidr, ifname);
		return -1;
	}
	memcpy(addr, cidr, (size_t)(slash - cidr));
	addr[slash - cidr] = '\0';
	len = strtol(slash + 1, &end, 10);
	if (inet_pton(AF_INET, addr, &a) != 1 || *end || len < 1 || len > 32 ||
	    (gw && inet_pton(AF_INET, gw, &g) != 1)) {
		say("bad address %s / gateway %s for %s", cidr, gw ? gw : "-", ifname);
		return -1;
	}

	s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (s < 0) {
		say("socket(AF_INET): %s", strerror(errno));
		return -1;
	}
	if (if_up(s, "lo"))
		goto out;
	snprintf(ifr.ifr_name, IFNAMSIZ, "%s", ifname);
	set_sin(&ifr.ifr_addr, a.s_addr);
	if (ifr_ioctl(s, SIOCSIFADDR, &ifr, "SIOCSIFADDR"))
		goto out;
	set_sin(&ifr.ifr_netmask, htonl(len == 32 ? 0xffffffffu : ~(0xffffffffu >> len)));
	if (ifr_ioctl(s, SIOCSIFNETMASK, &ifr, "SIOCSIFNETMASK") || if_up(s, ifname))
		goto out;
	if (gw) {
		struct rtentry rt = {0};

		set_sin(&rt.rt_dst, INADDR_ANY);
		set_sin(&rt.rt_genmask, INADDR_ANY);
		set_sin(&rt.rt_gateway, g.s_addr);
		rt.rt_flags = RTF_UP | RTF_GATEWAY;
		rt.rt_dev = ifr.ifr_name;
		if (ioctl(s, SIOCADDRT, &rt) && errno != EEXIST) {
			say("SIOCADDRT(default via %s): %s", gw, strerror(errno));
			goto out;
		}
	}
	r = 0;
out:
	close(s);
	return r;
}

/* ---- supervisor ----------------------------------------------------------- */

static void nop_handler(int sig)
{
	(void)sig;
}

/* Block the signals init waits for. PID 1 drops signals whose action is
 * SIG_DFL unless they are blocked; a no-op handler covers both cases. */
static void signals_setup(sigset_t *set)
{
	static const int sigs[] = {SIGCHLD, SIGTERM, SIGUSR2, SIGPWR, SIGINT, SIGHUP};
	struct sigaction sa = {.sa_handler = nop_handler};

	sigemptyset(set);
	for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++) {
		sigaddset(set, sigs[i]);
		sigaction(sigs[i], &sa, NULL);
	}
	sigprocmask(SIG_BLOCK, set, NULL);
}

static pid_t spawn(const char *const *argv, const char *const *envp)
{
	pid_t pid = fork();

	if (pid == 0) {
		sigset_t none;

		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		setsid();
		if (envp)
			execve(argv[0], (char *const *)argv, (char *const *)envp);
		else
			execv(argv[0], (char *const *)argv);
		say("exec %s: %s", argv[0], strerror(errno));
		_exit(127);
	}
	if (pid < 0)
		say("fork: %s", strerror(errno));
	return pid;
}

static void describe_status(int status, char *buf, size_t size)
{
	if (WIFEXITED(status))
		snprintf(buf, size, "exited with status %d", WEXITSTATUS(status));
	else
		snprintf(buf, size, "killed by signal %d", WTERMSIG(status));
}

/* Stop everything, then power off (or reboot). Only PID 1 may call reboot(2):
 * in a PID namespace it ends the namespace, on a guest it stops the VM. */
static __attribute__((noreturn)) void shutdown_now(const sigset_t *set, int how)
{
	struct timespec wait = {.tv_sec = 0, .tv_nsec = 100 * 1000000L};
	uint64_t deadline = mono_ms() + 2000;

	say("%s: stopping processes", how == RB_AUTOBOOT ? "reboot" : "power off");
	kill(-1, SIGTERM);
	while (mono_ms() < deadline) {
		while (waitpid(-1, NULL, WNOHANG) > 0)
			;
		if (kill(-1, 0) && errno == ESRCH)
			break;
		sigtimedwait(set, NULL, &wait);
	}
	kill(-1, SIGKILL);
	while (waitpid(-1, NULL, WNOHANG) > 0)
		;
	sync();
	if (getpid() == 1)
		reboot(how);
	say("reboot(2): %s", getpid() == 1 ? strerror(errno) : "not PID 1");
	_exit(1);
}

/* Run ARGV (with ENVP, or init's environment when NULL) until a power-off
 * signal: reap every child, restart ARGV with backoff whenever it exits. */
static __attribute__((noreturn)) void supervise(const char *const *argv, const char *const *envp)
{
	unsigned int backoff = BACKOFF_MIN_MS;
	uint64_t started = 0, restart_at = 0;
	pid_t agent = 0;
	sigset_t set;

	signals_setup(&set);
	for (;;) {
		siginfo_t si;
		int sig;

		if (agent <= 0 && mono_ms() >= restart_at) {
			agent = spawn(argv, envp);
			started = mono_ms();
			if (agent < 0)
				restart_at = started + backoff;
		}
		if (agent > 0) {
			sig = sigwaitinfo(&set, &si); /* sleeps until something happens */
		} else {
			uint64_t now = mono_ms(), left = restart_at > now ? restart_at - now : 0;
			struct timespec ts = {.tv_sec = (time_t)(left / 1000),
					      .tv_nsec = (long)(left % 1000) * 1000000};

			sig = sigtimedwait(&set, &si, &ts);
		}
		if (sig < 0)
			continue;
		if (sig == SIGTERM || sig == SIGUSR2 || sig == SIGPWR)
			shutdown_now(&set, RB_POWER_OFF);
		if (sig == SIGINT)
			shutdown_now(&set, RB_AUTOBOOT);
		if (sig != SIGCHLD)
			continue;
		for (;;) {
			int status;
			pid_t pid = waitpid(-1, &status, WNOHANG);
			uint64_t ran;
			char why[64];

			if (pid <= 0)
				break;
			if (pid != agent)
				continue;
			ran = mono_ms() - started;
			if (ran >= STABLE_MS)
				backoff = BACKOFF_MIN_MS;
			describe_status(status, why, sizeof(why));
			say("agent (pid %d) %s after %llu ms; restarting in %u ms", (int)pid, why,
			    (unsigned long long)ran, backoff);
			agent = 0;
			restart_at = mono_ms() + backoff;
			backoff = backoff * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : backoff * 2;
		}
	}
}

/* ---- boot stages ---------------------------------------------------------- */

/* Value of kernel parameter KEY (e.g. "root=") in CMDLINE, copied to OUT. */
static bool cmdline_get(const char *cmdline, const char *key, char *out, size_t size)
{
	size_t k = strlen(key);
	const char *p = cmdline;

	while (*p) {
		size_t n;

		while (*p == ' ' || *p == '\n')
			p++;
		n = strcspn(p, " \n");
		if (n >= k && !strncmp(p, key, k) && n - k < size) {
			memcpy(out, p + k, n - k);
			out[n - k] = '\0';
			return true;
		}
		p += n;
	}
	return false;
}

static bool cmdline_flag(const char *cmdline, const char *word)
{
	size_t k = strlen(word);

	for (const char *p = cmdline; (p = strstr(p, word)); p += k)
		if ((p == cmdline || p[-1] == ' ') && (p[k] == ' ' || p[k] == '\n' || !p[k]))
			return true;
	return false;
}

static __attribute__((noreturn)) void fail_boot(const char *what)
{
	sigset_t set;

	say("boot failed: %s; powering off", what);
	signals_setup(&set);
	shutdown_now(&set, RB_POWER_OFF);
}

static __attribute__((noreturn)) void stage1(void)
{
	char cmdline[4096] = "", root[256] = "/dev/vda", fstype[32] = "ext4", flags[256] = "";
	char init[256] = "/sbin/init";
	static struct modlist ml;
	unsigned long mflags = MS_NOATIME;
	uint64_t deadline;
	struct stat st;
	ssize_t n;
	int fd;

	if (do_mount(&mnt_dev))
		fail_boot("no /dev");
	ensure_console();
	if (do_mount(&mnt_proc))
		fail_boot("no /proc");
	/* FORKD_INIT_CMDLINE stands in for the kernel's command line in host
	 * tests (a container holding the initramfs); a kernel never sets it. */
	if (getenv("FORKD_INIT_CMDLINE"))
		snprintf(cmdline, sizeof(cmdline), "%s", getenv("FORKD_INIT_CMDLINE"));
	else if ((fd = open("/proc/cmdline", O_RDONLY | O_CLOEXEC)) >= 0) {
		n = read(fd, cmdline, sizeof(cmdline) - 1);
		cmdline[n > 0 ? n : 0] = '\0';
		close(fd);
	}
	cmdline_get(cmdline, "root=", root, sizeof(root));
	cmdline_get(cmdline, "rootfstype=", fstype, sizeof(fstype));
	cmdline_get(cmdline, "rootflags=", flags, sizeof(flags));
	cmdline_get(cmdline, "init=", init, sizeof(init));
	if (cmdline_flag(cmdline, "ro"))
		mflags |= MS_RDONLY;

	if (modlist_read(MODULES_LIST, &ml))
		say("%s unreadable; loading no modules", MODULES_LIST);
	modules_load(&ml, NULL);

	/* The device node appears when virtio_blk has probed; normally at once. */
	deadline = mono_ms() + ROOT_WAIT_MS;
	while (stat(root, &st) && mono_ms() < deadline)
		sleep_ms(20);
	if (mount(root, "/newroot", fstype, mflags, flags[0] ? flags : NULL)) {
		say("mount %s (%s) on /newroot: %s", root, fstype, strerror(errno));
		fail_boot("cannot mount the root file system");
	}
	if (mount("/dev", "/newroot/dev", NULL, MS_MOVE, NULL) ||
	    mount("/proc", "/newroot/proc", NULL, MS_MOVE, NULL)) {
		say("move /dev, /proc to the new root: %s", strerror(errno));
		fail_boot("root file system lacks /dev or /proc");
	}
	if (chdir("/newroot") || mount(".", "/", NULL, MS_MOVE, NULL) || chroot(".") ||
	    chdir("/")) {
		say("switch to the new root: %s", strerror(errno));
		fail_boot("cannot switch root");
	}
	setenv(STAGE1_ENV, "1", 1);
	execl(init, init, (char *)NULL);
	say("exec %s: %s", init, strerror(errno));
	fail_boot("no init on the root file system");
}

static __attribute__((noreturn)) void stage2(void)
{
	const char *s1 = getenv(STAGE1_ENV);
	bool from_initramfs = s1 && !strcmp(s1, "1");

	if (!from_initramfs) {
		do_mount(&mnt_dev);
		ensure_console();
		do_mount(&mnt_proc);
	}
	for (size_t i = 0; i < sizeof(mnt_rest) / sizeof(mnt_rest[0]); i++)
		do_mount(&mnt_rest[i]);
	if (!from_initramfs) {
		static struct modlist ml;
		static char loaded[16384];

		if (modlist_read(MODULES_LIST, &ml) == 0 && ml.n) {
			proc_modules_read(loaded, sizeof(loaded));
			modules_load(&ml, loaded);
		}
	}
	if (net_setup(GUEST_IFACE, GUEST_ADDR, GUEST_GW))
		say("network: %s not configured", GUEST_IFACE);
	if (sethostname(HOSTNAME, strlen(HOSTNAME)))
		say("sethostname: %s", strerror(errno));
	unsetenv(STAGE1_ENV);
	supervise(agent_argv, agent_envp);
}

static int usage(FILE *f, int rc)
{
	fprintf(f,
		"usage: forkd-init                       (as PID 1 of a forkd guest)\n"
		"       forkd-init --modules-plan FILE    print load/skip/fail per module\n"
		"       forkd-init --net IFACE ADDR/LEN [GW]\n"
		"                                         bring up lo and IFACE (use a netns)\n"
		"       forkd-init --supervise CMD [ARG...]\n"
		"                                         run CMD as PID 1 of a PID namespace:\n"
		"                                         reap, restart CMD, SIGTERM powers off\n");
	return rc;
}

int main(int argc, char **argv)
{
	if (argc > 1 && argv[1][0] == '-' && argv[1][1] == '-') {
		const char *opt = argv[1];

		if (!strcmp(opt, "--help"))
			return usage(stdout, 0);
		if (!strcmp(opt, "--modules-plan") && argc == 3)
			return modules_plan(argv[2]);
		if (!strcmp(opt, "--net") && (argc == 4 || argc == 5))
			return net_setup(argv[2], argv[3], argc == 5 ? argv[4] : NULL) ? 1 : 0;
		if (!strcmp(opt, "--supervise") && argc >= 3) {
			if (getpid() != 1) {
				fprintf(stderr,
					"forkd-init: --supervise must run as PID 1 "
					"(unshare --pid --fork --mount-proc forkd-init ...)\n");
				return 2;
			}
			if (argv[2][0] != '/') {
				fprintf(stderr, "forkd-init: --supervise wants an absolute path\n");
				return 2;
			}
			supervise((const char *const *)argv + 2, NULL);
		}
		return usage(stderr, 2);
	}
	if (getpid() != 1) {
		fprintf(stderr, "forkd-init: not PID 1; this is the init of forkd guests "
				"(see --help for the host test modes)\n");
		return 2;
	}
	if (!strcmp(argv[0], "/init"))
		stage1();
	stage2();
}
