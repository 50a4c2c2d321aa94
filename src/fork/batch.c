#include "fork/batch.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "agent/after_fork.h"
#include "common/util.h"
#include "fork/child.h"
#include "fork/ctl.h"
#include "fork/spawner.h"
#include "isolate/netns.h"

static void fail(struct batch_child *c, enum batch_stage at, int status, const char *fmt, ...)
    __printf(4, 5);

static void fail(struct batch_child *c, enum batch_stage at, int status, const char *fmt, ...)
{
	va_list ap;

	c->status = status < 0 ? status : -EIO;
	c->failed_at = at;
	c->running = false;
	va_start(ap, fmt);
	if ((size_t)vsnprintf(c->error, sizeof(c->error), fmt, ap) >= sizeof(c->error))
		c->error[sizeof(c->error) - 1] = 0;
	va_end(ap);
}

/* The error channel's message (common/log.h), or strerror. */
static void fail_logged(struct batch_child *c, enum batch_stage at, int status, const char *what)
{
	char msg[LOG_ERROR_MAX];

	if (!log_take_error(msg, sizeof(msg)))
		snprintf(msg, sizeof(msg), "%s", strerror(status < 0 ? -status : EIO));
	fail(c, at, status, "%s%s", what, msg);
}

bool batch_child_path(const struct batch *b, const struct batch_child *c, const char *name,
		      char *buf, size_t size)
{
	int n = c->dir[0] ? snprintf(buf, size, "%s/%s", c->dir, name)
			  : snprintf(buf, size, "%s/child-%u/%s", b->workdir, c->index, name);

	return n > 0 && (size_t)n < size;
}

/* What one child needs before its fork: its leaf cgroup, its namespace. */
static int prepare(struct batch *b, struct batch_child *c, struct child_opts *co)
{
	int r;

	log_error_clear();
	if (b->memory_limit_mib) {
		r = cgroup_leaf_create(b->cg, c->cgroup_name, b->memory_limit_mib * MIB, &c->leaf);
		if (r) {
			c->leaf.path[0] = 0;
			fail_logged(c, BATCH_PREPARE, r, "");
			return r;
		}
		co->cgroup_leaf = c->leaf.path;
	}
	if (c->netns) {
		r = netns_prepare(c->netns_index);
		if (r < 0) {
			fail_logged(c, BATCH_PREPARE, r, "");
			return r;
		}
		c->netns_created = r == NETNS_CREATED;
		co->netns = true;
		co->netns_index = c->netns_index;
	}
	return 0;
}

/* Fork one child, its output in <dir>/<log_name> when the batch says so.
 * It holds none of the caller's fds that it must not. */
static pid_t fork_one(struct batch *b, struct batch_child *c, struct child_opts *co)
{
	char path[PATH_MAX + 16];
	int log_fd = -1, out = -1, errfd = -1, *fds;
	size_t nfds = 0;
	pid_t pid;

	fds = calloc(b->nr_close_fds + 3, sizeof(*fds));
	if (!fds)
		return -ENOMEM;
	for (size_t i = 0; i < b->nr_close_fds; i++)
		fds[nfds++] = b->close_fds[i];
	if (b->log_name) {
		if (!batch_child_path(b, c, b->log_name, path, sizeof(path))) {
			free(fds);
			return -ENAMETOOLONG;
		}
		log_fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
		if (log_fd < 0) {
			int e = log_errno("open %s", path);

			free(fds);
			return e;
		}
		out = dup(STDOUT_FILENO);
		errfd = dup(STDERR_FILENO);
		dup2(log_fd, STDOUT_FILENO);
		dup2(log_fd, STDERR_FILENO);
		fds[nfds++] = log_fd; /* its stdout and stderr now */
		fds[nfds++] = out;
		fds[nfds++] = errfd;
	}
	co->close_fds = fds;
	co->nr_close_fds = nfds;
	fflush(stdout); /* the child would inherit the buffer */
	/* A detached child inherits the spawner's process name: make it say
	 * what it is. */
	if (b->detach)
		prctl(PR_SET_NAME, "forkd-vmm", 0, 0, 0);
	pid = spawner_fork_child(b->img, co);
	if (b->detach)
		prctl(PR_SET_NAME, "forkd-spawner", 0, 0, 0);
	co->close_fds = NULL;
	co->nr_close_fds = 0;
	if (out >= 0) {
		dup2(out, STDOUT_FILENO);
		close(out);
	}
	if (errfd >= 0) {
		dup2(errfd, STDERR_FILENO);
		close(errfd);
	}
	if (log_fd >= 0)
		close(log_fd);
	free(fds);
	return pid;
}

static struct batch_child *by_pid(struct batch *b, pid_t pid)
{
	for (size_t i = 0; i < b->n; i++)
		if (b->c[i].pid == pid && pid > 0)
			return &b->c[i];
	return NULL;
}

static bool stop_waiting(const struct batch *b)
{
	return b->interrupted && *b->interrupted;
}

/* Each child reports once: running, or the error that stopped it. A
 * child that dies before it reports is found by waitpid(). */
static void collect(struct batch *b, int rfd, bool *reported)
{
	int limit = b->report_timeout_ms > 0 ? b->report_timeout_ms : 60000;
	uint64_t deadline = now_ns() + (uint64_t)limit * 1000000;
	size_t left = 0;

	for (size_t i = 0; i < b->n; i++)
		left += !reported[i];
	while (left && now_ns() < deadline && !stop_waiting(b)) {
		struct pollfd pf = {.fd = rfd, .events = POLLIN};
		struct child_report rep;
		struct batch_child *c;

		if (poll(&pf, 1, 50) > 0 && read(rfd, &rep, sizeof(rep)) == sizeof(rep)) {
			c = by_pid(b, rep.pid);
			if (!c || reported[c - b->c])
				continue;
			reported[c - b->c] = true;
			left--;
			b->t_last_report = now_ns();
			if (b->report_idle)
				deadline = b->t_last_report + (uint64_t)limit * 1000000;
			c->restore_ns = rep.restore_ns;
			if (rep.status)
				fail(c, BATCH_START, rep.status, "%s", strerror(-rep.status));
			else
				c->running = true;
			continue;
		}
		for (size_t i = 0; i < b->n; i++) {
			c = &b->c[i];
			if (reported[i] || waitpid(c->pid, &c->wait_status, WNOHANG) != c->pid)
				continue;
			reported[i] = true;
			left--;
			c->reaped = true;
			c->pid = 0;
			fail(c, BATCH_START, -ECHILD,
			     "the child exited with status %d before it ran",
			     WIFEXITED(c->wait_status) ? WEXITSTATUS(c->wait_status)
						       : 128 + WTERMSIG(c->wait_status));
		}
	}
	for (size_t i = 0; i < b->n; i++)
		if (!reported[i])
			fail(&b->c[i], BATCH_START, -ETIMEDOUT,
			     stop_waiting(b) ? "interrupted before the child reported"
					     : "the child did not report within %d ms",
			     limit);
}

/* after_fork for every running child; one whose after_fork fails is
 * stopped (SIGTERM) and counts as failed. */
static void run_after_fork(struct batch *b)
{
	struct after_fork_target *t = calloc(b->n, sizeof(*t));
	char(*paths)[PATH_MAX + 16] = calloc(b->n, sizeof(*paths));
	size_t *who = calloc(b->n, sizeof(*who)), m = 0;
	uint64_t t0 = now_ns();

	if (!t || !paths || !who) {
		for (size_t i = 0; i < b->n; i++)
			if (b->c[i].running) {
				fail(&b->c[i], BATCH_AFTER_FORK, -ENOMEM, "out of memory");
				kill(b->c[i].pid, SIGTERM);
			}
		goto out;
	}
	for (size_t i = 0; i < b->n; i++) {
		if (!b->c[i].running)
			continue;
		if (!batch_child_path(b, &b->c[i], "vsock.sock", paths[m], sizeof(paths[m]))) {
			fail(&b->c[i], BATCH_AFTER_FORK, -ENAMETOOLONG, "vsock path too long");
			kill(b->c[i].pid, SIGTERM);
			continue;
		}
		t[m].vsock_path = paths[m];
		t[m].index = b->c[i].index;
		who[m++] = i;
	}
	after_fork_run(t, m, b->img->meta.agent_port, b->agent_timeout_ms);
	for (size_t k = 0; k < m; k++) {
		struct batch_child *c = &b->c[who[k]];

		c->after_fork_ns = t[k].ns;
		if (!t[k].status)
			continue;
		fail(c, BATCH_AFTER_FORK, t[k].status, "%s", t[k].error);
		kill(c->pid, SIGTERM);
	}
	b->after_fork_wall_ns = now_ns() - t0;
out:
	free(t);
	free(paths);
	free(who);
}

size_t batch_start(struct batch *b)
{
	bool *reported = calloc(b->n ? b->n : 1, sizeof(*reported));
	int pipefd[2];
	size_t running = 0;
	bool stopped = false;

	b->t_start = b->t_last_report = now_ns();
	b->after_fork_wall_ns = 0;
	if (!reported || pipe2(pipefd, O_CLOEXEC) < 0) {
		for (size_t i = 0; i < b->n; i++)
			fail(&b->c[i], BATCH_FORK, -ENOMEM, "the spawner is out of resources");
		free(reported);
		return 0;
	}
	for (size_t i = 0; i < b->n; i++) {
		struct batch_child *c = &b->c[i];
		struct child_opts co = {
		    .index = c->index,
		    .live_fork = b->live_fork,
		    .hugepages = b->hugepages,
		    .workdir = c->dir[0] ? NULL : b->workdir,
		    .child_dir = c->dir[0] ? c->dir : NULL,
		    .detach = b->detach,
		    .report_fd = pipefd[1],
		    .close_fd = pipefd[0],
		    .console_max_bytes = 4 * MIB,
		    .jail = b->jail,
		};

		c->pid = 0;
		c->status = 0;
		c->failed_at = BATCH_OK;
		c->error[0] = 0;
		c->leaf.path[0] = 0;
		if (stopped || stop_waiting(b)) {
			fail(c, BATCH_SKIPPED, -ECANCELED, "not started: %s",
			     stopped ? "an earlier child failed" : "interrupted");
			reported[i] = true;
			continue;
		}
		if (prepare(b, c, &co)) {
			reported[i] = true;
			stopped = b->stop_at_failure;
			continue;
		}
		log_error_clear();
		c->pid = fork_one(b, c, &co);
		if (c->pid < 0) {
			fail_logged(c, BATCH_FORK, c->pid, "");
			c->pid = 0;
			reported[i] = true;
			stopped = b->stop_at_failure;
			continue;
		}
		if (child_start_time(c->pid, &c->start_time, NULL))
			c->start_time = 0;
	}
	close(pipefd[1]);
	collect(b, pipefd[0], reported);
	close(pipefd[0]);
	free(reported);
	if (b->img->meta.agent_port && !stop_waiting(b)) {
		bool any = false;

		for (size_t i = 0; i < b->n; i++)
			any |= b->c[i].running;
		if (any)
			run_after_fork(b);
	}
	running = 0;
	for (size_t i = 0; i < b->n; i++)
		running += b->c[i].running;
	return running;
}

/* c has ended with status st: was it OOM-killed? Then its leaf goes. */
static void ended(struct batch_child *c, int st)
{
	c->pid = 0;
	c->reaped = true;
	c->running = false;
	c->wait_status = st;
	if (c->leaf.path[0]) {
		/* The kernel's memcg OOM killer sends SIGKILL; the leaf counts it. */
		if (WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL &&
		    !cgroup_leaf_oom_kills(&c->leaf, &c->oom_kills) && c->oom_kills)
			c->oom_killed = true;
		(void)cgroup_leaf_remove(&c->leaf);
		c->leaf.path[0] = 0;
	}
}

size_t batch_reap(struct batch *b, void (*cb)(struct batch_child *c, void *arg), void *arg)
{
	size_t left = 0;
	pid_t pid;
	int st;

	while ((pid = waitpid(-1, &st, WNOHANG)) > 0) {
		struct batch_child *c = by_pid(b, pid);

		if (!c)
			continue;
		ended(c, st);
		if (cb)
			cb(c, arg);
	}
	for (size_t i = 0; i < b->n; i++)
		left += b->c[i].pid > 0;
	return left;
}

size_t batch_stop(struct batch *b, int grace_ms, void (*cb)(struct batch_child *c, void *arg),
		  void *arg)
{
	uint64_t deadline = now_ns() + (uint64_t)grace_ms * 1000000;
	size_t running = 0;

	batch_reap(b, cb, arg);
	for (size_t i = 0; i < b->n; i++)
		if (b->c[i].pid > 0) {
			kill(b->c[i].pid, SIGTERM);
			running++;
		}
	while (batch_reap(b, cb, arg)) {
		if (now_ns() > deadline) {
			for (size_t i = 0; i < b->n; i++)
				if (b->c[i].pid > 0)
					kill(b->c[i].pid, SIGKILL);
			deadline = UINT64_MAX;
		}
		usleep(1000);
	}
	return running;
}

int batch_release(const struct batch *b, struct batch_child *c)
{
	char path[PATH_MAX + 16];
	int ret = 0;

	if (c->leaf.path[0]) {
		ret = cgroup_leaf_remove(&c->leaf);
		c->leaf.path[0] = 0;
	}
	if (c->netns_created) {
		int e = netns_remove(c->netns_index);

		if (e < 0 && e != -ENOENT) {
			log_warn("network namespace %s%u is left behind; remove it with 'forkd "
				 "netns teardown %u'",
				 NETNS_PREFIX, c->netns_index, c->netns_index);
			if (!ret)
				ret = e;
		}
		c->netns_created = false;
	}
	/* A jailed child cannot unlink its sockets; once it is gone nobody
	 * listens there any more. */
	if (batch_child_path(b, c, "vsock.sock", path, sizeof(path)))
		unlink(path);
	if (batch_child_path(b, c, CTL_SOCKET, path, sizeof(path)))
		unlink(path);
	return ret;
}
