/* forkd fork: start N children from a snapshot, report how fast, keep them
 * for a settle period (or until they exit), then stop them; or, with
 * --keep, leave them running under a detached supervisor (fork_keep.h). */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/fork_json.h"
#include "cli/fork_keep.h"
#include "common/util.h"
#include "fork/batch.h"
#include "fork/kept.h"
#include "isolate/cgroup.h"
#include "isolate/jail.h"
#include "isolate/netns.h"

#define MAX_CHILDREN 10000

struct fork_args {
	const char *tag;
	uint64_t n, settle_secs, timeout_secs;
	bool keep_workdir, live_fork, hugepages, wait_exit, no_seccomp, netns;
	bool keep;	 /* --keep: children outlive the command */
	bool json;	 /* --json: the outcome as JSON on stdout */
	bool settle_set; /* --settle-secs was given */
	uint64_t agent_timeout_secs;
	const char *workdir;
	uint64_t memory_limit_mib; /* 0: no memory cgroups */
	const char *cgroup_root;   /* NULL: detect */
};

/* The CLI's own per-child state beside the batch's (fork/batch.h). */
struct fork_run {
	const struct fork_args *a;
	struct batch b;
	char (*ids)[KEPT_ID_LEN + 1]; /* --keep: registry ids, "" once removed */
	bool *early;		      /* ended before the spawner stopped it */
	uint64_t died;		      /* killed before the spawner stopped them */
};

static volatile sig_atomic_t interrupted;

static void on_signal(int sig)
{
	interrupted = sig;
}

static void fork_usage(FILE *f)
{
	fprintf(
	    f,
	    "usage: forkd fork --tag TAG [-n N] [options]\n"
	    "\n"
	    "Start N children from snapshot TAG. Each child is its own process and its\n"
	    "own KVM VM; its RAM maps the snapshot's memory.bin privately, so it only\n"
	    "allocates the pages it writes. Prints the spawn wall time, per-child\n"
	    "restore latency (p50/p99) and how many children are alive after the\n"
	    "settle time, then stops them.\n"
	    "\n"
	    "options:\n"
	    "  --tag TAG              snapshot to fork (see 'forkd snapshot')\n"
	    "  -n, --count N          children to start (default 1, at most %d)\n"
	    "  --settle-secs S        keep children running S seconds (default 2)\n"
	    "  --wait                 instead, wait until every child's guest stops\n"
	    "                         and print each one's exit status\n"
	    "  --timeout-secs S       with --wait: stop children still running after S\n"
	    "  --keep                 leave the children running and return once all\n"
	    "                         are ready, printing 'kept ID PID RUN_DIR' per child;\n"
	    "                         a detached supervisor (log: WORKDIR/supervisor.log)\n"
	    "                         stays their parent and exits after the last one.\n"
	    "                         See them with 'forkd ls', stop them with 'forkd\n"
	    "                         kill ID|--all|--tag TAG', talk to one with 'forkd\n"
	    "                         ping|exec|eval --sandbox ID'. If any child fails to\n"
	    "                         start, all are stopped (exit 1). Implies\n"
	    "                         --keep-workdir (default a new /tmp/forkd-keep-TAG-XXXXXX);\n"
	    "                         not with --wait or --settle-secs\n"
	    "  --json                 print the outcome as one JSON object on stdout\n"
	    "                         (progress lines go to stderr): {tag, n, running,\n"
	    "                         children: [{index, state, restore_ms,\n"
	    "                         after_fork_ms, stage, error, exit_status}],\n"
	    "                         all_running_ms, after_fork_wall_ms}; with\n"
	    "                         --keep {tag, n, kept: [the 'forkd ls' objects]}\n"
	    "  --keep-workdir         keep the work directory (child-N/console.log); by\n"
	    "                         default a new /tmp/forkd-fork-TAG-XXXXXX, removed\n"
	    "  --workdir DIR          use DIR instead: made (0700) when missing; an\n"
	    "                         existing one must be a directory of this user\n"
	    "                         that nobody else can write to\n"
	    "  --live-fork            RAM in a memfd (MAP_SHARED) holding a copy of\n"
	    "                         memory.bin, for live branching of children\n"
	    "  --hugepages            with --live-fork: back RAM with 2 MiB hugetlb pages\n"
	    "  --per-child-netns      child i runs in network namespace forkd-child-<i>\n"
	    "                         (made if missing, removed afterwards if made\n"
	    "                         by this run) holding tap forkd-tap0 10.42.0.1/24,\n"
	    "                         the guest being 10.42.0.2; a snapshot with a\n"
	    "                         network device can only be forked this way;\n"
	    "                         refused while another process is in one\n"
	    "  --agent-timeout-secs S snapshots whose guest runs forkd's agent: wait at\n"
	    "                         most S for the children's after_fork, all of them\n"
	    "                         together (default 120)\n"
	    "  --memory-limit-mib M   cap each child's memory at M MiB (16 or more): a leaf\n"
	    "                         cgroup per child under forkd/ in forkd's own cgroup\n"
	    "                         (v2 memory.max or v1 memory.limit_in_bytes, found\n"
	    "                         automatically); a child over it is OOM-killed alone\n"
	    "                         and reported as oom_killed\n"
	    "  --cgroup-root DIR      with --memory-limit-mib: use the cgroup hierarchy\n"
	    "                         mounted at DIR (v1 or v2), forkd/ directly under it\n"
	    "  --no-seccomp           do not jail the children's VMMs (no seccomp filter;\n"
	    "                         forkd's uid, capabilities, mounts): UNSAFE, debug only\n"
	    "  -h, --help             this text\n"
	    "\n"
	    "Each child's VMM is jailed before its vCPUs run: its own mount namespace\n"
	    "(only its run directory), its own network namespace, an unprivileged uid\n"
	    "($FORKD_JAIL_UID), no new privileges, no capabilities, and a seccomp\n"
	    "allow-list; a forbidden system call kills it with SIGSYS (docs/SECURITY.md).\n"
	    "\n"
	    "When the snapshot's guest runs forkd's agent (snapshot.json agent_port), a\n"
	    "child counts as started only once its agent answered after_fork (fresh\n"
	    "entropy, the time, its index); one whose after_fork fails is reported\n"
	    "with the agent's error and stopped.\n",
	    MAX_CHILDREN);
}

static void parse(int argc, char **argv, struct fork_args *a)
{
	enum {
		O_TAG = 3000,
		O_SETTLE,
		O_KEEP,
		O_WORKDIR,
		O_LIVE,
		O_HUGE,
		O_NETNS,
		O_MEMLIM,
		O_WAIT,
		O_TIMEOUT,
		O_CGROOT,
		O_NOSECCOMP,
		O_AGENT_TO,
		O_KEEP_RUN,
		O_JSON
	};
	static const struct option opts[] = {
	    {"tag", required_argument, NULL, O_TAG},
	    {"count", required_argument, NULL, 'n'},
	    {"settle-secs", required_argument, NULL, O_SETTLE},
	    {"keep-workdir", no_argument, NULL, O_KEEP},
	    {"workdir", required_argument, NULL, O_WORKDIR},
	    {"live-fork", no_argument, NULL, O_LIVE},
	    {"hugepages", no_argument, NULL, O_HUGE},
	    {"per-child-netns", no_argument, NULL, O_NETNS},
	    {"memory-limit-mib", required_argument, NULL, O_MEMLIM},
	    {"wait", no_argument, NULL, O_WAIT},
	    {"timeout-secs", required_argument, NULL, O_TIMEOUT},
	    {"cgroup-root", required_argument, NULL, O_CGROOT},
	    {"no-seccomp", no_argument, NULL, O_NOSECCOMP},
	    {"agent-timeout-secs", required_argument, NULL, O_AGENT_TO},
	    {"keep", no_argument, NULL, O_KEEP_RUN},
	    {"json", no_argument, NULL, O_JSON},
	    {"help", no_argument, NULL, 'h'},
	    {0},
	};
	int c;

	*a = (struct fork_args){.n = 1, .settle_secs = 2, .agent_timeout_secs = 120};
	optind = 1;
	while ((c = cli_getopt(argc, argv, "n:h", opts, "fork")) != -1) {
		switch (c) {
		case O_TAG:
			a->tag = optarg;
			break;
		case 'n':
			a->n = cli_num("fork", "-n", optarg, 1, MAX_CHILDREN);
			break;
		case O_JSON:
			a->json = true;
			break;
		case O_SETTLE:
			a->settle_secs = cli_num("fork", "--settle-secs", optarg, 0, 86400);
			a->settle_set = true;
			break;
		case O_KEEP:
			a->keep_workdir = true;
			break;
		case O_KEEP_RUN:
			a->keep = a->keep_workdir = true;
			break;
		case O_WORKDIR:
			a->workdir = optarg;
			break;
		case O_LIVE:
			a->live_fork = true;
			break;
		case O_HUGE:
			a->hugepages = true;
			break;
		case O_NETNS:
			a->netns = true;
			break;
		case O_AGENT_TO:
			a->agent_timeout_secs =
			    cli_num("fork", "--agent-timeout-secs", optarg, 1, 3600);
			break;
		case O_MEMLIM:
			a->memory_limit_mib =
			    cli_num("fork", "--memory-limit-mib", optarg, 16, 1 << 20);
			break;
		case O_CGROOT:
			a->cgroup_root = optarg;
			break;
		case O_NOSECCOMP:
			a->no_seccomp = true;
			break;
		case O_WAIT:
			a->wait_exit = true;
			break;
		case O_TIMEOUT:
			a->timeout_secs = cli_num("fork", "--timeout-secs", optarg, 1, 86400);
			break;
		case 'h':
			fork_usage(stdout);
			exit(0);
		default:
			cli_usage_error("fork", "unknown option");
		}
	}
	if (optind != argc)
		cli_usage_error("fork", "unexpected argument '%s'", argv[optind]);
	if (!a->tag)
		cli_usage_error("fork", "--tag is required");
	if (a->hugepages && !a->live_fork)
		cli_usage_error("fork", "--hugepages needs --live-fork");
	if (a->keep && (a->wait_exit || a->timeout_secs))
		cli_usage_error("fork", "--keep leaves the children running: it does not go with "
					"--wait or --timeout-secs (stop them with 'forkd kill')");
	if (a->keep && a->settle_set)
		cli_usage_error("fork", "--keep leaves the children running: it does not go with "
					"--settle-secs");
	if (a->cgroup_root && !a->memory_limit_mib)
		cli_usage_error("fork", "--cgroup-root needs --memory-limit-mib");
}

static uint64_t free_hugepages(void)
{
	FILE *f = fopen("/proc/meminfo", "r");
	char line[128];
	unsigned long long v = 0;

	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "HugePages_Free: %llu", &v) == 1)
			break;
	fclose(f);
	return v;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* The work directory: a fresh one (mkdtemp: 0700, ours, never there
 * before, so nothing in it can have been planted), or --workdir, made
 * 0700 when missing and otherwise taken only when it is a real directory
 * of ours that nobody else can write to: forkd runs as root and writes
 * spawner.pid, logs and sockets there. One error line on refusal. */
static int workdir_prepare(const struct fork_args *a, char *out, size_t size)
{
	struct stat st;

	if (!a->workdir) {
		snprintf(out, size, "/tmp/forkd-%s-%.*s-XXXXXX", a->keep ? "keep" : "fork", 64,
			 a->tag);
		if (!mkdtemp(out))
			return log_errno("create a work directory %s", out);
		return 0;
	}
	if ((size_t)snprintf(out, size, "%s", a->workdir) >= size) {
		log_err("--workdir %s: too long", a->workdir);
		return -ENAMETOOLONG;
	}
	if (mkdir(out, 0700) == 0)
		return 0;
	if (errno != EEXIST)
		return log_errno("mkdir %s", out);
	if (lstat(out, &st) < 0)
		return log_errno("%s", out);
	if (!S_ISDIR(st.st_mode)) {
		log_err(
		    "--workdir %s exists and is not a directory (a symbolic link?): refusing it",
		    out);
		return -ENOTDIR;
	}
	if (st.st_uid != geteuid() || (st.st_mode & 022)) {
		log_err("--workdir %s belongs to uid %u with mode %03o: forkd writes its files "
			"there, so it must be a directory of uid %u that nobody else can write to; "
			"give a new path (it is made) or leave --workdir out",
			out, (unsigned)st.st_uid, (unsigned)(st.st_mode & 0777),
			(unsigned)geteuid());
		return -EPERM;
	}
	return 0;
}

static int remove_workdir(const char *dir, uint64_t n)
{
	char path[PATH_MAX + 64];

	for (uint64_t i = 0; i < n; i++) {
		snprintf(path, sizeof(path), "%s/child-%llu/console.log", dir,
			 (unsigned long long)i);
		unlink(path);
		snprintf(path, sizeof(path), "%s/child-%llu", dir, (unsigned long long)i);
		rmdir(path);
	}
	snprintf(path, sizeof(path), "%s/spawner.pid", dir);
	unlink(path);
	return rmdir(dir);
}

static int exit_code(int status)
{
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/* Why a child that ended by itself ended, for the report ("" if it just
 * exited). */
static const char *exit_reason(const struct batch_child *c)
{
	if (c->oom_killed)
		return " (oom_killed)";
	if (WIFSIGNALED(c->wait_status) && WTERMSIG(c->wait_status) == SIGSYS)
		return " (SIGSYS: a system call the VMM jail forbids)";
	if (WIFSIGNALED(c->wait_status))
		return " (killed by a signal)";
	return "";
}

/* A child the batch reaped (batch_reap() calls this). */
static void child_ended(struct batch_child *c, void *arg, bool stopping)
{
	struct fork_run *r = arg;
	int status = c->wait_status;
	uint32_t i = c->index;

	r->early[i] = !stopping;
	if (!stopping && (c->oom_killed || WIFSIGNALED(status)))
		r->died++;
	/* --keep: the supervisor outlives its children, so each one's
	 * namespace, socket and entry go as it ends, not at the end. */
	if (r->a->keep) {
		(void)batch_release(&r->b, c);
		if (r->ids[i][0] && kept_remove(r->ids[i]) == 0)
			printf("fork: kept child %u (%s) ended with status %d%s\n", i, r->ids[i],
			       exit_code(status), exit_reason(c));
		r->ids[i][0] = '\0';
	}
	if (c->oom_killed)
		printf("fork: child %u oom_killed: over its %llu MiB memory limit (%llu OOM "
		       "kill%s in its cgroup)\n",
		       i, (unsigned long long)r->a->memory_limit_mib,
		       (unsigned long long)c->oom_kills, c->oom_kills == 1 ? "" : "s");
	else if (!stopping && WIFSIGNALED(status) && WTERMSIG(status) == SIGSYS)
		printf("fork: child %u killed by SIGSYS: it made a system call the VMM jail "
		       "forbids\n",
		       i);
	else if (!stopping && WIFSIGNALED(status))
		printf("fork: child %u killed by signal %d (%s)\n", i, WTERMSIG(status),
		       strsignal(WTERMSIG(status)));
	fflush(stdout);
}

static void ended_running(struct batch_child *c, void *arg)
{
	child_ended(c, arg, false);
}

static void ended_stopping(struct batch_child *c, void *arg)
{
	child_ended(c, arg, true);
}

static uint64_t reap(struct fork_run *r)
{
	return batch_reap(&r->b, ended_running, r);
}

static void stop_children(struct fork_run *r)
{
	batch_reap(&r->b, ended_running, r);
	batch_stop(&r->b, 5000, ended_stopping, r);
}

static double pct_ms(const uint64_t *sorted, uint64_t n, unsigned pct)
{
	uint64_t k = n * pct / 100;

	return sorted[k < n ? k : n - 1] / 1e6;
}

/* The batch's start, as `forkd fork` reports it: each failure, how fast
 * the children ran and took after_fork. Returns how many run. */
static uint64_t report_start(const struct fork_run *r, uint32_t agent_port)
{
	const struct batch *b = &r->b;
	uint64_t *lat = calloc(b->n, sizeof(*lat)), ready = 0, af = 0;

	for (size_t i = 0; i < b->n; i++) {
		const struct batch_child *c = &b->c[i];

		if (c->failed_at == BATCH_START && c->status != -ETIMEDOUT)
			log_err("child %u failed to start: %s", c->index, c->error);
		else if (c->failed_at == BATCH_START || c->failed_at == BATCH_PREPARE ||
			 c->failed_at == BATCH_FORK)
			log_err("could not start child %u: %s", c->index, c->error);
		if (c->failed_at == BATCH_OK || c->failed_at == BATCH_AFTER_FORK)
			lat[ready++] = c->restore_ns;
	}
	if (ready && lat) {
		qsort(lat, ready, sizeof(lat[0]), cmp_u64);
		printf("fork: %llu children running in %.1f ms, restore p50 %.2f ms p99 %.2f ms\n",
		       (unsigned long long)ready, (b->t_last_report - b->t_start) / 1e6,
		       pct_ms(lat, ready, 50), pct_ms(lat, ready, 99));
	}
	ready = 0;
	for (size_t i = 0; i < b->n; i++) {
		const struct batch_child *c = &b->c[i];

		if (c->failed_at == BATCH_AFTER_FORK)
			printf("fork: child %u after_fork failed: %s; stopping it\n", c->index,
			       c->error);
		else if (c->failed_at == BATCH_OK && lat)
			lat[af++] = c->after_fork_ns;
		ready += c->failed_at == BATCH_OK;
	}
	if (agent_port && af && lat) {
		qsort(lat, af, sizeof(lat[0]), cmp_u64);
		printf("fork: after_fork (agent on vsock port %u) answered by %llu children in "
		       "%.1f ms, p50 %.2f ms p99 %.2f ms\n",
		       agent_port, (unsigned long long)af, b->after_fork_wall_ns / 1e6,
		       pct_ms(lat, af, 50), pct_ms(lat, af, 99));
	}
	fflush(stdout);
	free(lat);
	return ready;
}

/* --keep, in the supervisor, once every child has started or failed:
 * register each and report to the foreground, then stay their parent until
 * the last one ends (child_ended() releases each one's leaf cgroup,
 * namespace and registry entry as it does). All or nothing: if any child
 * did not start or cannot be registered, every one is stopped. */
static int keep_children(struct fork_run *r, int fd, bool ok)
{
	const struct fork_args *a = r->a;
	uint64_t i;

	for (i = 0; ok && i < a->n; i++)
		if (fork_keep_register(fd, a->tag, a->workdir, (uint32_t)i, r->b.c[i].pid,
				       r->ids[i]))
			break;
	if (!ok || i < a->n) {
		stop_children(r);
		fork_keep_report_end(fd, false,
				     ok ? "could not register every child"
					: "not every child started (see the lines above)");
		return 1;
	}
	fork_keep_report_end(fd, true, NULL);
	while (!interrupted && reap(r))
		usleep(100000);
	if (interrupted)
		printf("fork: supervisor interrupted (signal %d); stopping the children\n",
		       (int)interrupted);
	stop_children(r);
	return 0;
}

/* --per-child-netns: child i joins forkd-child-<i>, which must not be
 * anybody else's right now (a daemon's sandbox, another fork's child). */
static int check_netns_free(uint64_t n)
{
	uint32_t *idx = calloc(n, sizeof(*idx));
	pid_t *user = calloc(n, sizeof(*user));
	int err = idx && user ? 0 : -ENOMEM;

	for (uint64_t i = 0; !err && i < n; i++)
		idx[i] = (uint32_t)i;
	if (!err)
		err = netns_users_many(idx, n, user, NULL);
	for (uint64_t i = 0; !err && i < n; i++) {
		if (!user[i])
			continue;
		log_err("--per-child-netns: child %llu would run in %s%llu, but process %d is in "
			"it (a sandbox of 'forkd serve' or a child of another 'forkd fork'); "
			"stop it, or see 'forkd netns ls'",
			(unsigned long long)i, NETNS_PREFIX, (unsigned long long)i, (int)user[i]);
		err = -EBUSY;
	}
	if (err == -ENOMEM)
		log_err("out of memory");
	free(idx);
	free(user);
	return err;
}

/* Memory cgroups for --memory-limit-mib: where, and forkd/ ready. */
static int setup_cgroups(const struct fork_args *a, struct cgroup_layout *cg)
{
	int err = a->cgroup_root ? cgroup_layout_at(a->cgroup_root, cg) : cgroup_layout_detect(cg);

	if (err || (err = cgroup_parent_prepare(cg))) {
		log_err("--memory-limit-mib: no memory cgroups, so no child was started (run "
			"'forkd fork' without the option to start them without a limit)");
		return err;
	}
	printf("fork: memory limit %llu MiB per child: cgroup v%d leaves under %s\n",
	       (unsigned long long)a->memory_limit_mib, (int)cg->version, cg->parent);
	return 0;
}

int cmd_fork(int argc, char **argv)
{
	struct fork_args a;
	struct snapshot_image img;
	struct cgroup_layout cg = {0};
	struct fork_run r = {.a = &a};
	char workdir[PATH_MAX], path[PATH_MAX + 32];
	struct sigaction sa = {.sa_handler = on_signal};
	uint64_t ready = 0;
	int keep_fd = -1, ret = 1, json_fd = -1;
	bool foreground = false;
	int pid_fd;

	parse(argc, argv, &a);
	if (a.json && (json_fd = cli_json_begin()) < 0)
		return 1;
	if (a.no_seccomp)
		log_warn("--no-seccomp: children run WITHOUT the VMM jail (no seccomp filter, "
			 "forkd's uid, capabilities and mounts kept); a guest that breaks out of "
			 "its VMM gets this "
			 "process's privileges on the host. UNSAFE: use it for debugging only");
	if (snapshot_image_load(a.tag, &img))
		return 1;
	if (img.meta.dev.net && !a.netns) {
		log_err("snapshot '%s' has a network device: each child needs a tap of its own, "
			"which comes with a network namespace per child; fork it with "
			"'forkd fork --tag %s --per-child-netns'",
			a.tag, a.tag);
		goto out_img;
	}
	if (a.hugepages) {
		uint64_t need = img.machine.mem_bytes / (2 * MIB) * a.n, have = free_hugepages();

		if (have < need) {
			log_err(
			    "--hugepages: %llu free 2 MiB hugepages, %llu children of %llu MiB "
			    "need %llu; reserve more with 'echo %llu > /proc/sys/vm/nr_hugepages'",
			    (unsigned long long)have, (unsigned long long)a.n,
			    (unsigned long long)(img.machine.mem_bytes / MIB),
			    (unsigned long long)need, (unsigned long long)need);
			goto out_img;
		}
	}
	if (a.netns && check_netns_free(a.n))
		goto out_img;
	if (a.memory_limit_mib && setup_cgroups(&a, &cg))
		goto out_img;
	if (workdir_prepare(&a, workdir, sizeof(workdir)))
		goto out_img;
	a.workdir = workdir;
	if (a.keep) {
		/* From here on this process is either the foreground, which
		 * only reports, or the supervisor, which goes on. */
		ret = fork_keep_detach(workdir, &keep_fd);
		if (keep_fd < 0) {
			foreground = true;
			goto out_img;
		}
		/* The supervisor: its stdout is its log, not the caller's. */
		if (json_fd >= 0)
			close(json_fd);
		json_fd = -1;
	}
	snprintf(path, sizeof(path), "%s/spawner.pid", workdir);
	pid_fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0644);
	if (pid_fd >= 0) {
		dprintf(pid_fd, "%d\n", (int)getpid());
		close(pid_fd);
	}

	r.b = (struct batch){
	    .img = &img,
	    .c = calloc(a.n, sizeof(*r.b.c)),
	    .n = a.n,
	    .workdir = workdir,
	    .live_fork = a.live_fork,
	    .hugepages = a.hugepages,
	    .jail = !a.no_seccomp,
	    .stop_at_failure = true,
	    .memory_limit_mib = a.memory_limit_mib,
	    .cg = &cg,
	    .report_timeout_ms = 60000,
	    .report_idle = true, /* a large batch takes as long as it takes */
	    .agent_timeout_ms = (int)(a.agent_timeout_secs * 1000),
	    .interrupted = &interrupted,
	};
	r.ids = calloc(a.n, sizeof(*r.ids));
	r.early = calloc(a.n, sizeof(*r.early));
	if (!r.b.c || !r.ids || !r.early) {
		log_err("out of memory for %llu children", (unsigned long long)a.n);
		goto out;
	}
	for (uint64_t i = 0; i < a.n; i++) {
		struct batch_child *c = &r.b.c[i];

		c->index = (uint32_t)i;
		c->netns = a.netns;
		c->netns_index = (uint32_t)i;
		snprintf(c->cgroup_name, sizeof(c->cgroup_name), "fork-%d-child-%llu",
			 (int)getpid(), (unsigned long long)i);
	}
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);

	printf("fork: snapshot %s (%llu MiB, %u vCPUs), %llu children%s%s\n", a.tag,
	       (unsigned long long)(img.machine.mem_bytes / MIB), img.machine.nr_vcpus,
	       (unsigned long long)a.n,
	       a.live_fork ? (a.hugepages ? ", live fork on hugepages" : ", live fork") : "",
	       a.no_seccomp ? ", NOT jailed (--no-seccomp)" : "");
	fflush(stdout); /* children inherit the buffer otherwise */
	batch_start(&r.b);
	if (a.netns) {
		uint64_t made = 0;

		for (uint64_t i = 0; i < a.n; i++)
			made += r.b.c[i].netns_created;
		printf("fork: child i in network namespace %si (tap %s, guest %s); %llu made "
		       "now, removed at the end\n",
		       NETNS_PREFIX, NETNS_TAP_NAME, NETNS_GUEST_ADDR, (unsigned long long)made);
	}
	ready = report_start(&r, img.meta.agent_port);
	if (ready < a.n)
		printf("fork: %llu of %llu children failed to start\n",
		       (unsigned long long)(a.n - ready), (unsigned long long)a.n);
	fflush(stdout);

	if (a.keep) {
		ret = keep_children(&r, keep_fd, ready == a.n && !interrupted);
		keep_fd = -1;
		goto out;
	}
	if (a.wait_exit) {
		uint64_t deadline = a.timeout_secs ? now_ns() + a.timeout_secs * 1000000000ULL : 0;
		uint64_t left = a.n;

		while ((left = reap(&r)) && !interrupted && (!deadline || now_ns() < deadline))
			usleep(2000);
		if (left)
			printf("fork: %llu children still running; stopping them\n",
			       (unsigned long long)left);
	} else {
		uint64_t end = now_ns() + a.settle_secs * 1000000000ULL;
		uint64_t alive;

		while (!interrupted && now_ns() < end) {
			reap(&r);
			usleep(10000);
		}
		alive = reap(&r);
		printf("fork: %llu/%llu children alive after %llu s settle\n",
		       (unsigned long long)alive, (unsigned long long)a.n,
		       (unsigned long long)a.settle_secs);
	}
	stop_children(&r);
	ret = ready < a.n ? 1 : 0;
	if (a.wait_exit)
		for (uint64_t i = 0; i < a.n; i++) {
			int code = exit_code(r.b.c[i].wait_status);

			printf("fork: child %llu exit status %d%s\n", (unsigned long long)i, code,
			       r.early[i] ? exit_reason(&r.b.c[i]) : "");
			if (code != 0)
				ret = 1;
		}
	if (r.died) {
		printf("fork: %llu children were killed before they were stopped\n",
		       (unsigned long long)r.died);
		ret = 1;
	}
	if (interrupted) {
		printf("fork: interrupted\n");
		ret = 130;
	}
	if (json_fd >= 0) {
		json_t *o = json_pack("{s:s, s:I, s:I, s:o, s:b}", "tag", a.tag, "n",
				      (json_int_t)a.n, "running", (json_int_t)ready, "children",
				      fork_json_children(&r.b, a.wait_exit), "interrupted",
				      interrupted != 0);

		/* The two walls of the progress lines: first fork() to the last
		 * child running, then the after_fork round that follows it. */
		if (ready)
			json_object_set_new(o, "all_running_ms",
					    json_real((r.b.t_last_report - r.b.t_start) / 1e6));
		if (r.b.after_fork_wall_ns)
			json_object_set_new(o, "after_fork_wall_ms",
					    json_real(r.b.after_fork_wall_ns / 1e6));
		if (a.keep_workdir)
			json_object_set_new(o, "workdir", json_string(workdir));
		cli_json_emit(json_fd, o);
		json_fd = -1;
	}
out:
	if (keep_fd >= 0)
		fork_keep_report_end(keep_fd, false, "the supervisor could not start the children");
	/* Every child has exited: give back what each held. */
	for (uint64_t i = 0; r.b.c && i < a.n; i++)
		(void)batch_release(&r.b, &r.b.c[i]);
	if (a.memory_limit_mib)
		cgroup_parent_remove(&cg);
	if (!a.keep_workdir)
		remove_workdir(workdir, a.n);
	else
		printf("fork: child files kept in %s\n", workdir);
	free(r.b.c);
	free(r.ids);
	free(r.early);
out_img:
	/* --keep's foreground reports what the supervisor registered; a
	 * failure is told on stderr, as without --json. */
	if (json_fd >= 0 && foreground && ret == 0)
		cli_json_emit(json_fd,
			      json_pack("{s:s, s:I, s:o}", "tag", a.tag, "n", (json_int_t)a.n,
					"kept", fork_json_kept(a.tag, workdir)));
	else if (json_fd >= 0)
		close(json_fd);
	snapshot_image_free(&img);
	return ret;
}
