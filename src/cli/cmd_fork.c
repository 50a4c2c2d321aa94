/* forkd fork: start N children from a snapshot, report how fast, keep them
 * for a settle period (or until they exit), then stop them. */
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
#include "common/util.h"
#include "fork/spawner.h"

#define MAX_CHILDREN 10000

struct fork_args {
	const char *tag;
	uint64_t n, settle_secs, timeout_secs;
	bool keep_workdir, live_fork, hugepages, wait_exit;
	const char *workdir;
};

static volatile sig_atomic_t interrupted;

static void on_signal(int sig)
{
	interrupted = sig;
}

static void fork_usage(FILE *f)
{
	fprintf(f,
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
		"  --keep-workdir         keep /tmp/forkd-fork-TAG/ (child-N/console.log)\n"
		"  --workdir DIR          use DIR instead of /tmp/forkd-fork-TAG\n"
		"  --live-fork            RAM in a memfd (MAP_SHARED) holding a copy of\n"
		"                         memory.bin, for live branching of children\n"
		"  --hugepages            with --live-fork: back RAM with 2 MiB hugetlb pages\n"
		"  --per-child-netns      network namespace per child (not available yet)\n"
		"  --memory-limit-mib M   memory cgroup per child (not available yet)\n"
		"  -h, --help             this text\n",
		MAX_CHILDREN);
}

static uint64_t num(const char *opt, const char *arg, uint64_t min, uint64_t max)
{
	uint64_t v;

	if (parse_u64(arg, &v) || v < min || v > max)
		cli_usage_error("fork", "%s wants a number from %llu to %llu, got '%s'", opt,
				(unsigned long long)min, (unsigned long long)max, arg);
	return v;
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
		O_TIMEOUT
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
	    {"help", no_argument, NULL, 'h'},
	    {0},
	};
	int c;

	*a = (struct fork_args){.n = 1, .settle_secs = 2};
	optind = 1;
	while ((c = getopt_long(argc, argv, "n:h", opts, NULL)) != -1) {
		switch (c) {
		case O_TAG:
			a->tag = optarg;
			break;
		case 'n':
			a->n = num("-n", optarg, 1, MAX_CHILDREN);
			break;
		case O_SETTLE:
			a->settle_secs = num("--settle-secs", optarg, 0, 86400);
			break;
		case O_KEEP:
			a->keep_workdir = true;
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
			cli_usage_error("fork",
					"--per-child-netns is not available yet; refusing to "
					"start children without the isolation you asked for");
		case O_MEMLIM:
			num("--memory-limit-mib", optarg, 16, 1 << 20);
			cli_usage_error("fork",
					"--memory-limit-mib is not available yet; refusing to "
					"start children without the limit you asked for");
		case O_WAIT:
			a->wait_exit = true;
			break;
		case O_TIMEOUT:
			a->timeout_secs = num("--timeout-secs", optarg, 1, 86400);
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

/* Stop every child still running: SIGTERM (each VMM stops its VM), then
 * SIGKILL for any that ignore it. Returns how many were running. */
static unsigned stop_children(pid_t *pids, int *status, uint64_t n)
{
	unsigned running = 0;
	uint64_t deadline = now_ns() + 5000000000ULL;

	for (uint64_t i = 0; i < n; i++)
		if (pids[i] > 0) {
			kill(pids[i], SIGTERM);
			running++;
		}
	for (uint64_t i = 0; i < n; i++) {
		while (pids[i] > 0) {
			pid_t r = waitpid(pids[i], &status[i], WNOHANG);

			if (r == pids[i] || (r < 0 && errno != EINTR)) {
				pids[i] = 0;
			} else if (now_ns() > deadline) {
				kill(pids[i], SIGKILL);
				waitpid(pids[i], &status[i], 0);
				pids[i] = 0;
			} else {
				usleep(1000);
			}
		}
	}
	return running;
}

int cmd_fork(int argc, char **argv)
{
	struct fork_args a;
	struct snapshot_image img;
	char workdir[PATH_MAX], path[PATH_MAX + 32];
	struct sigaction sa = {.sa_handler = on_signal};
	uint64_t *lat = NULL, t0, t_ready = 0, ready = 0, failed = 0;
	pid_t *pids = NULL;
	int *status = NULL, pipefd[2] = {-1, -1}, ret = 1;
	FILE *pf;

	parse(argc, argv, &a);
	if (snapshot_image_load(a.tag, &img))
		return 1;
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
	snprintf(workdir, sizeof(workdir), "%s", a.workdir ? a.workdir : "");
	if (!a.workdir)
		snprintf(workdir, sizeof(workdir), "/tmp/forkd-fork-%s", a.tag);
	if (mkdir(workdir, 0755) < 0 && errno != EEXIST) {
		log_errno("mkdir %s", workdir);
		goto out_img;
	}
	snprintf(path, sizeof(path), "%s/spawner.pid", workdir);
	if ((pf = fopen(path, "w"))) {
		fprintf(pf, "%d\n", (int)getpid());
		fclose(pf);
	}

	pids = calloc(a.n, sizeof(*pids));
	status = calloc(a.n, sizeof(*status));
	lat = calloc(a.n, sizeof(*lat));
	if (!pids || !status || !lat || pipe2(pipefd, O_CLOEXEC) < 0) {
		log_errno("allocate spawner state");
		goto out;
	}
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);

	printf("fork: snapshot %s (%llu MiB, %u vCPUs), %llu children%s\n", a.tag,
	       (unsigned long long)(img.machine.mem_bytes / MIB), img.machine.nr_vcpus,
	       (unsigned long long)a.n,
	       a.live_fork ? (a.hugepages ? ", live fork on hugepages" : ", live fork") : "");
	t0 = now_ns();
	for (uint64_t i = 0; i < a.n && !interrupted; i++) {
		struct child_opts co = {.index = (uint32_t)i,
					.live_fork = a.live_fork,
					.hugepages = a.hugepages,
					.workdir = workdir,
					.report_fd = pipefd[1],
					.close_fd = pipefd[0],
					.console_max_bytes = 4 * MIB};
		pid_t pid = spawner_fork_child(&img, &co);

		if (pid < 0) {
			log_err("could not start child %llu; stopping", (unsigned long long)i);
			break;
		}
		pids[i] = pid;
	}
	close(pipefd[1]);
	pipefd[1] = -1;

	/* Each child reports once: running, or the error that stopped it. */
	while (ready + failed < a.n && !interrupted) {
		struct pollfd p = {.fd = pipefd[0], .events = POLLIN};
		struct child_report r;
		ssize_t n;

		if (poll(&p, 1, 60000) <= 0) {
			log_err("children stopped reporting (%llu of %llu running)",
				(unsigned long long)ready, (unsigned long long)a.n);
			break;
		}
		n = read(pipefd[0], &r, sizeof(r));
		if (n == 0)
			break; /* every child exited or reported */
		if (n != sizeof(r) || r.index >= a.n)
			continue;
		if (r.status == 0) {
			lat[ready++] = r.restore_ns;
			t_ready = now_ns();
		} else {
			failed++;
			log_err("child %u failed to start: %s", r.index, strerror(-r.status));
		}
	}
	if (ready) {
		qsort(lat, ready, sizeof(lat[0]), cmp_u64);
		printf("fork: %llu children running in %.1f ms, restore p50 %.2f ms p99 %.2f ms\n",
		       (unsigned long long)ready, (t_ready - t0) / 1e6, lat[ready / 2] / 1e6,
		       lat[(ready * 99) / 100 < ready ? (ready * 99) / 100 : ready - 1] / 1e6);
	}
	if (failed || ready < a.n) {
		printf("fork: %llu of %llu children failed to start\n",
		       (unsigned long long)(a.n - ready), (unsigned long long)a.n);
	}

	if (a.wait_exit) {
		uint64_t deadline = a.timeout_secs ? now_ns() + a.timeout_secs * 1000000000ULL : 0;
		uint64_t left = a.n;

		while (left && !interrupted && (!deadline || now_ns() < deadline)) {
			left = 0;
			for (uint64_t i = 0; i < a.n; i++) {
				if (pids[i] > 0 && waitpid(pids[i], &status[i], WNOHANG) == pids[i])
					pids[i] = 0;
				left += pids[i] > 0;
			}
			if (left)
				usleep(2000);
		}
		if (left)
			printf("fork: %llu children still running; stopping them\n",
			       (unsigned long long)left);
	} else {
		uint64_t end = now_ns() + a.settle_secs * 1000000000ULL;
		uint64_t alive = 0;

		while (!interrupted && now_ns() < end)
			usleep(10000);
		for (uint64_t i = 0; i < a.n; i++) {
			if (pids[i] > 0 && waitpid(pids[i], &status[i], WNOHANG) == pids[i])
				pids[i] = 0;
			alive += pids[i] > 0;
		}
		printf("fork: %llu/%llu children alive after %llu s settle\n",
		       (unsigned long long)alive, (unsigned long long)a.n,
		       (unsigned long long)a.settle_secs);
	}
	stop_children(pids, status, a.n);
	ret = failed || ready < a.n ? 1 : 0;
	if (a.wait_exit) {
		for (uint64_t i = 0; i < a.n; i++) {
			int code = WIFEXITED(status[i]) ? WEXITSTATUS(status[i])
							: 128 + WTERMSIG(status[i]);

			printf("fork: child %llu exit status %d\n", (unsigned long long)i, code);
			if (code != 0)
				ret = 1;
		}
	}
	if (interrupted) {
		printf("fork: interrupted\n");
		ret = 130;
	}
out:
	if (pipefd[0] >= 0)
		close(pipefd[0]);
	if (pipefd[1] >= 0)
		close(pipefd[1]);
	if (!a.keep_workdir)
		remove_workdir(workdir, a.n);
	else
		printf("fork: child files kept in %s\n", workdir);
	free(pids);
	free(status);
	free(lat);
out_img:
	snapshot_image_free(&img);
	return ret;
}
