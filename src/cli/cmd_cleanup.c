/* forkd cleanup: find what runs that ended badly left behind (work
 * directories, run directories, memory cgroups, network namespaces, kept
 * children's registry entries), list
 * it with the reason each entry is stale or still in use, and with --yes
 * remove the stale ones. Anything a live process uses is kept, always. */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <jansson.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "common/file.h"
#include "common/util.h"
#include "fork/child.h"
#include "fork/kept.h"
#include "isolate/cgroup.h"
#include "isolate/netns.h"

#define K_WORKDIR (1u << 0)
#define K_RUNDIR  (1u << 1)
#define K_CGROUP  (1u << 2)
#define K_NETNS	  (1u << 3)
#define K_KEPT	  (1u << 4)
#define K_ALL	  (K_WORKDIR | K_RUNDIR | K_CGROUP | K_NETNS | K_KEPT)

static const struct {
	unsigned kind;
	const char *name;
} kinds[] = {{K_WORKDIR, "workdir"},
	     {K_RUNDIR, "rundir"},
	     {K_CGROUP, "cgroup"},
	     {K_NETNS, "netns"},
	     {K_KEPT, "kept"}};

struct item {
	unsigned kind;
	char path[PATH_MAX];
	uint32_t index; /* K_NETNS: namespace index */
	bool host_veth; /* K_NETNS: only a stray host veth is left */
	bool in_use;
	char why[200];
};

struct list {
	struct item *v;
	size_t n, cap;
};

struct opts {
	bool yes, json;
	unsigned kinds;
	uint64_t min_age;
	const char *tmpdir, *rundir, *cgroup_root;
};

static const char *kind_name(unsigned kind)
{
	for (size_t i = 0; i < ARRAY_SIZE(kinds); i++)
		if (kinds[i].kind == kind)
			return kinds[i].name;
	return "?";
}

/* dir/name into out; false (skip the entry) if it does not fit. */
static bool join(char *out, size_t size, const char *dir, const char *name)
{
	int n = snprintf(out, size, "%s/%s", dir, name);

	return n > 0 && (size_t)n < size;
}

static struct item *push(struct list *l, unsigned kind, const char *path)
{
	struct item *it;

	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 32;
		struct item *v = realloc(l->v, cap * sizeof(*v));

		if (!v) {
			fprintf(stderr, "forkd cleanup: error: out of memory\n");
			exit(1);
		}
		l->v = v;
		l->cap = cap;
	}
	it = &l->v[l->n++];
	memset(it, 0, sizeof(*it));
	it->kind = kind;
	snprintf(it->path, sizeof(it->path), "%s", path);
	return it;
}

static void set_use(struct item *it, const char *fmt, ...) __printf(2, 3);

static void set_use(struct item *it, const char *fmt, ...)
{
	va_list ap;

	if (it->in_use)
		return; /* the first reason is enough */
	it->in_use = true;
	va_start(ap, fmt);
	vsnprintf(it->why, sizeof(it->why), fmt, ap);
	va_end(ap);
}

static bool too_young(const struct stat *st, uint64_t min_age)
{
	time_t now = time(NULL);

	return min_age && st->st_mtime > now - (time_t)min_age;
}

static bool pid_alive(long pid)
{
	return pid > 0 && pid <= INT_MAX && (kill((pid_t)pid, 0) == 0 || errno == EPERM);
}

/* The first decimal in dir/name, -1 if none. */
static long read_pid_file(const char *dir, const char *name, unsigned long long *start)
{
	char path[PATH_MAX + 32], buf[64];
	long pid = -1;
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return -1;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return -1;
	buf[n] = '\0';
	if (!isdigit((unsigned char)buf[0]))
		return -1;
	pid = strtol(buf, NULL, 10);
	if (start) {
		char *sp = strchr(buf, ' ');

		*start = sp ? strtoull(sp + 1, NULL, 10) : 0;
	}
	return pid;
}

static void scan_workdirs(struct list *l, const struct opts *o)
{
	struct dirent *de;
	DIR *d = opendir(o->tmpdir);

	if (!d) {
		fprintf(stderr, "forkd cleanup: warning: cannot read %s: %s\n", o->tmpdir,
			strerror(errno));
		return;
	}
	while ((de = readdir(d))) {
		char path[PATH_MAX];
		struct stat st;
		struct item *it;
		long pid;

		if (strncmp(de->d_name, "forkd-", 6))
			continue;
		if (!join(path, sizeof(path), o->tmpdir, de->d_name) || lstat(path, &st) < 0 ||
		    !S_ISDIR(st.st_mode))
			continue;
		if (st.st_uid != geteuid())
			continue; /* another user's (root's too: one planted there is
				   * not forkd's): not ours to judge or remove */
		it = push(l, K_WORKDIR, path);
		pid = read_pid_file(path, "spawner.pid", NULL);
		if (pid_alive(pid))
			set_use(it, "its spawner, pid %ld, is alive", pid);
		else if (too_young(&st, o->min_age))
			set_use(it, "changed less than %llu s ago", (unsigned long long)o->min_age);
	}
	closedir(d);
}

static void scan_rundirs(struct list *l, const struct opts *o)
{
	struct dirent *de;
	DIR *d = opendir(o->rundir);

	if (!d) {
		if (errno != ENOENT)
			fprintf(stderr, "forkd cleanup: warning: cannot read %s: %s\n", o->rundir,
				strerror(errno));
		return;
	}
	while ((de = readdir(d))) {
		unsigned long long start = 0;
		uint64_t now_start;
		char path[PATH_MAX];
		struct stat st;
		struct item *it;
		long pid;

		if (de->d_name[0] == '.')
			continue;
		if (!join(path, sizeof(path), o->rundir, de->d_name) || lstat(path, &st) < 0 ||
		    !S_ISDIR(st.st_mode))
			continue;
		it = push(l, K_RUNDIR, path);
		pid = read_pid_file(path, "pid", &start);
		/* A pid is only the same process if its start time matches:
		 * pids are reused. */
		if (pid <= 0 || pid > INT_MAX || child_start_time((pid_t)pid, &now_start, NULL))
			now_start = 0;
		if (now_start && (start == 0 || now_start == start))
			set_use(it, "its process, pid %ld, is alive", pid);
		else if (too_young(&st, o->min_age))
			set_use(it, "changed less than %llu s ago", (unsigned long long)o->min_age);
	}
	closedir(d);
}

/* Is path one of the candidates' directories or inside one? */
static void match_path(struct list *l, const char *path, long pid, const char *how)
{
	for (size_t i = 0; i < l->n; i++) {
		struct item *it = &l->v[i];
		size_t n = strlen(it->path);

		if (it->in_use || !(it->kind & (K_WORKDIR | K_RUNDIR)))
			continue;
		if (!strncmp(path, it->path, n) && (path[n] == '\0' || path[n] == '/'))
			set_use(it, "pid %ld has %s there", pid, how);
	}
}

static void match_link(struct list *l, int dirfd_, const char *name, long pid, const char *how)
{
	char target[PATH_MAX];
	ssize_t n = readlinkat(dirfd_, name, target, sizeof(target) - 1);

	if (n <= 0 || target[0] != '/')
		return;
	target[n] = '\0';
	match_path(l, target, pid, how);
}

/* Files mapped into the process (a snapshot's memory.bin, a library). */
static void match_maps(struct list *l, int pidfd, long pid)
{
	char line[PATH_MAX + 128];
	int fd = openat(pidfd, "maps", O_RDONLY | O_CLOEXEC);
	FILE *f;

	if (fd < 0)
		return;
	f = fdopen(fd, "r");
	if (!f) {
		close(fd);
		return;
	}
	while (fgets(line, sizeof(line), f)) {
		char *p = strchr(line, '/');

		if (!p)
			continue;
		p[strcspn(p, "\n")] = '\0';
		match_path(l, p, pid, "a file mapped from");
	}
	fclose(f);
}

/* One pass over every process: working directory, root, executable, open
 * files and mappings. */
static void scan_processes(struct list *l)
{
	struct dirent *de;
	DIR *proc = opendir("/proc");

	if (!proc)
		return;
	while ((de = readdir(proc))) {
		struct dirent *fe;
		long pid;
		DIR *fds;
		int pidfd, fd;

		if (!isdigit((unsigned char)de->d_name[0]))
			continue;
		pid = strtol(de->d_name, NULL, 10);
		if (pid == getpid())
			continue;
		pidfd = openat(dirfd(proc), de->d_name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (pidfd < 0)
			continue;
		match_link(l, pidfd, "cwd", pid, "its working directory");
		match_link(l, pidfd, "root", pid, "its root directory");
		match_link(l, pidfd, "exe", pid, "its executable");
		fd = openat(pidfd, "fd", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (fd >= 0 && (fds = fdopendir(fd))) {
			while ((fe = readdir(fds)))
				if (fe->d_name[0] != '.')
					match_link(l, dirfd(fds), fe->d_name, pid, "a file open");
			closedir(fds);
		} else if (fd >= 0) {
			close(fd);
		}
		match_maps(l, pidfd, pid);
		close(pidfd);
	}
	closedir(proc);
}

/* A leftover cgroup or namespace that isolate/ found. */
static void found(unsigned kind, const char *path, uint32_t index, bool host_veth, const char *busy,
		  void *arg)
{
	struct item *it = push(arg, kind, path);

	it->index = index;
	it->host_veth = host_veth;
	if (busy)
		set_use(it, "%s", busy);
}

static void found_cgroup(const char *path, const char *busy, void *arg)
{
	found(K_CGROUP, path, 0, false, busy, arg);
}

static void found_netns(const char *what, uint32_t index, bool host_veth, const char *busy,
			void *arg)
{
	found(K_NETNS, what, index, host_veth, busy, arg);
}

static void scan_cgroups(struct list *l, const struct opts *o)
{
	cgroup_scan_leftovers(o->cgroup_root, o->min_age, found_cgroup, l);
}

static void scan_netns(struct list *l)
{
	if (geteuid() != 0) {
		fprintf(stderr, "forkd cleanup: note: not root, network namespaces not checked\n");
		return;
	}
	if (netns_scan_leftovers(found_netns, l))
		fprintf(stderr, "forkd cleanup: warning: network namespaces not fully checked\n");
}

/* Registry entries of `forkd fork --keep` children: in use while the
 * child runs (pid and start time), stale once it is gone. */
static void scan_kept(struct list *l)
{
	struct child_rec *v;
	size_t n;

	if (kept_list(&v, &n))
		return;
	for (size_t i = 0; i < n; i++) {
		char path[PATH_MAX];
		struct item *it;

		if (kept_path(v[i].id, path, sizeof(path)))
			continue;
		it = push(l, K_KEPT, path);
		if (child_alive(v[i].pid, v[i].start_time))
			set_use(it, "kept child %s, pid %d, is running", v[i].id, (int)v[i].pid);
	}
	free(v);
}

static int remove_item(const struct item *it)
{
	switch (it->kind) {
	case K_WORKDIR:
	case K_RUNDIR:
		return file_remove_tree(it->path);
	case K_CGROUP:
		return rmdir(it->path) < 0 && errno != ENOENT ? -errno : 0;
	case K_KEPT:
		return unlink(it->path) < 0 && errno != ENOENT ? -errno : 0;
	case K_NETNS: {
		int err =
		    it->host_veth ? netns_remove_host_veth(it->index) : netns_remove(it->index);

		return err == -ENOENT ? 0 : err;
	}
	}
	return -EINVAL;
}

static void cleanup_usage(FILE *f)
{
	fprintf(f,
		"usage: forkd cleanup [--yes] [--json] [--only KIND[,KIND...]] [--min-age SECS]\n"
		"                     [--tmpdir DIR] [--rundir DIR] [--cgroup-root DIR]\n"
		"\n"
		"List what runs that ended without cleaning up left behind, each entry\n"
		"marked 'stale' or 'keep' with the reason; with --yes, remove the stale\n"
		"ones. Without --yes nothing is removed.\n"
		"\n"
		"kinds:\n"
		"  workdir  /tmp/forkd-* directories. In use: its spawner.pid names a live\n"
		"           process, or a process has a file open, mapped, or its working or\n"
		"           root directory in it (every /proc/<pid> is looked at).\n"
		"  rundir   directories under /run/forkd/. In use: its pid file\n"
		"           (\"<pid> <starttime>\") names a live process with that start\n"
		"           time, or a process uses it as above.\n"
		"  cgroup   leaf cgroups under any forkd/ in the memory hierarchy (v1 or v2).\n"
		"           In use: a process in it or below it.\n"
		"  netns    forkd-child-* network namespaces (with their veths and NAT\n"
		"           tables), and fkd<i>h host veths whose namespace is gone. In use:\n"
		"           a process inside, or holding it open. Namespaces made ahead of\n"
		"           time with 'forkd netns setup' count as stale until a child runs.\n"
		"  kept     $FORKD_HOME/kept/<id>.json, the registry of 'forkd fork --keep'\n"
		"           children. In use: its pid is alive with the recorded start time\n"
		"           (the child's workdir is kept too: its supervisor is alive).\n"
		"\n"
		"options:\n"
		"  --yes              remove the stale entries\n"
		"  --json             print an array of {kind, path, state: keep|stale|\n"
		"                     removed|failed, why (keep), error (failed)}\n"
		"  --only KINDS       only these kinds (comma-separated; default all)\n"
		"  --min-age SECS     keep workdirs, rundirs and cgroups changed less than\n"
		"                     SECS ago: they may be being set up (default 30)\n"
		"  --tmpdir DIR       look for forkd-* in DIR instead of /tmp\n"
		"  --rundir DIR       run directories under DIR instead of /run/forkd\n"
		"  --cgroup-root DIR  only the cgroup hierarchy mounted at DIR\n"
		"  -h, --help         this text\n"
		"\n"
		"Exit status: 0 when everything stale was removed (or, without --yes,\n"
		"listed), 1 when a removal failed.\n");
}

static unsigned parse_kinds(const char *s)
{
	unsigned k = 0;
	char buf[128], *save = NULL;

	snprintf(buf, sizeof(buf), "%s", s);
	for (char *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
		size_t i;

		for (i = 0; i < ARRAY_SIZE(kinds) && strcmp(t, kinds[i].name); i++)
			;
		if (i == ARRAY_SIZE(kinds))
			cli_usage_error("cleanup",
					"--only: unknown kind '%s' (workdir, rundir, "
					"cgroup, netns, kept)",
					t);
		k |= kinds[i].kind;
	}
	if (!k)
		cli_usage_error("cleanup", "--only wants at least one kind");
	return k;
}

static void parse(int argc, char **argv, struct opts *o)
{
	enum { O_ONLY = 1000, O_AGE, O_TMP, O_RUN, O_CG, O_JSON };
	static const struct option opts[] = {{"yes", no_argument, NULL, 'y'},
					     {"json", no_argument, NULL, O_JSON},
					     {"only", required_argument, NULL, O_ONLY},
					     {"min-age", required_argument, NULL, O_AGE},
					     {"tmpdir", required_argument, NULL, O_TMP},
					     {"rundir", required_argument, NULL, O_RUN},
					     {"cgroup-root", required_argument, NULL, O_CG},
					     {"help", no_argument, NULL, 'h'},
					     {NULL, 0, NULL, 0}};
	int c;

	*o = (struct opts){.kinds = K_ALL, .min_age = 30, .tmpdir = "/tmp", .rundir = "/run/forkd"};
	while ((c = cli_getopt(argc, argv, "yh", opts, "cleanup")) != -1) {
		switch (c) {
		case 'y':
			o->yes = true;
			break;
		case O_JSON:
			o->json = true;
			break;
		case O_ONLY:
			o->kinds = parse_kinds(optarg);
			break;
		case O_AGE:
			o->min_age = cli_num("cleanup", "--min-age", optarg, 0, 365ULL * 86400);
			break;
		case O_TMP:
		case O_RUN:
		case O_CG:
			if (optarg[0] != '/' || strlen(optarg) >= PATH_MAX - 300)
				cli_usage_error("cleanup", "%s wants an absolute path, got '%s'",
						argv[optind - 1], optarg);
			if (c == O_TMP)
				o->tmpdir = optarg;
			else if (c == O_RUN)
				o->rundir = optarg;
			else
				o->cgroup_root = optarg;
			break;
		case 'h':
			cleanup_usage(stdout);
			exit(0);
		default:
			cli_usage_error("cleanup", "unknown option");
		}
	}
	if (optind != argc)
		cli_usage_error("cleanup", "unexpected argument '%s'", argv[optind]);
}

int cmd_cleanup(int argc, char **argv)
{
	struct list l = {0};
	size_t stale = 0, removed = 0, failed = 0;
	json_t *report;
	struct opts o;

	parse(argc, argv, &o);
	report = json_array();
	if (o.kinds & K_WORKDIR)
		scan_workdirs(&l, &o);
	if (o.kinds & K_RUNDIR)
		scan_rundirs(&l, &o);
	if (o.kinds & (K_WORKDIR | K_RUNDIR))
		scan_processes(&l);
	if (o.kinds & K_CGROUP)
		scan_cgroups(&l, &o);
	if (o.kinds & K_NETNS)
		scan_netns(&l);
	if (o.kinds & K_KEPT)
		scan_kept(&l);

	for (size_t i = 0; i < l.n; i++) {
		const struct item *it = &l.v[i];
		const char *state;
		int err = 0;

		if (it->in_use) {
			state = "keep";
		} else if (!o.yes) {
			state = "stale";
			stale++;
		} else {
			stale++;
			err = remove_item(it);
			state = err ? "failed" : "removed";
			failed += !!err;
			removed += !err;
		}
		if (o.json) {
			json_t *e = json_pack("{s:s, s:s, s:s}", "kind", kind_name(it->kind),
					      "path", it->path, "state", state);

			if (it->in_use)
				json_object_set_new(e, "why", json_string(it->why));
			if (err)
				json_object_set_new(e, "error", json_string(strerror(-err)));
			json_array_append_new(report, e);
		} else if (it->in_use) {
			printf("keep    %-8s %s (%s)\n", kind_name(it->kind), it->path, it->why);
		} else if (err) {
			printf("FAILED  %-8s %s (%s)\n", kind_name(it->kind), it->path,
			       strerror(-err));
		} else {
			printf("%-7s %-8s %s\n", state, kind_name(it->kind), it->path);
		}
	}
	if (o.json)
		cli_print_json(report);
	else if (!o.yes)
		printf("cleanup: %zu stale, %zu kept%s\n", stale, l.n - stale,
		       stale ? "; run 'forkd cleanup --yes' to remove the stale ones" : "");
	else
		printf("cleanup: %zu removed, %zu failed, %zu kept\n", removed, failed,
		       l.n - stale);
	json_decref(report);
	free(l.v);
	return failed ? 1 : 0;
}
