#include "daemon/spawnsvc.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/util.h"
#include "daemon/sandbox.h"
#include "fork/batch.h"
#include "fork/spawner.h"
#include "isolate/cgroup.h"
#include "isolate/netns.h"

#define MAX_LINE (16u << 20)
#define MAX_JOBS 64

/* ---- line I/O shared by both ends ---- */

static int send_json(int fd, json_t *o)
{
	char *s = json_dumps(o, JSON_COMPACT);
	size_t n;
	int r;

	if (!s)
		return -ENOMEM;
	n = strlen(s);
	s[n] = '\n';
	r = write_full(fd, s, n + 1);
	free(s);
	return r;
}

/* Read one line into *buf (growing it); -EPIPE at EOF, -ETIMEDOUT. The
 * line is returned NUL-terminated in *line (valid until the next call). */
static int recv_line(int fd, char **buf, size_t *len, size_t *cap, int timeout_ms, char **line,
		     size_t *line_len)
{
	uint64_t deadline = timeout_ms < 0 ? 0 : now_ns() + (uint64_t)timeout_ms * 1000000;
	static const size_t chunk = 65536;

	for (;;) {
		char *nl = *len ? memchr(*buf, '\n', *len) : NULL;
		struct pollfd p = {.fd = fd, .events = POLLIN};
		ssize_t r;
		int ms = -1;

		if (nl) {
			*nl = 0;
			*line = *buf;
			*line_len = (size_t)(nl - *buf);
			return 0;
		}
		if (*len > MAX_LINE)
			return -EMSGSIZE;
		if (*cap - *len < chunk) {
			char *b = realloc(*buf, *cap + chunk * 2);

			if (!b)
				return -ENOMEM;
			*buf = b;
			*cap += chunk * 2;
		}
		if (deadline) {
			uint64_t now = now_ns();

			if (now >= deadline)
				return -ETIMEDOUT;
			ms = (int)((deadline - now) / 1000000 + 1);
		}
		r = poll(&p, 1, ms);
		if (r < 0 && errno != EINTR)
			return -errno;
		if (r <= 0)
			continue;
		r = read(fd, *buf + *len, *cap - *len);
		if (r == 0)
			return -EPIPE;
		if (r < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			return -errno;
		}
		*len += (size_t)r;
	}
}

static void consume_line(char *buf, size_t *len, size_t line_len)
{
	memmove(buf, buf + line_len + 1, *len - line_len - 1);
	*len -= line_len + 1;
}

/* ---- the spawner process ---- */

struct job {
	pid_t pid;
	char dir[PATH_MAX];
};

static struct job jobs[MAX_JOBS];

static void reap(void)
{
	int status;
	pid_t pid;

	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		for (unsigned i = 0; i < MAX_JOBS; i++) {
			char path[PATH_MAX + 8], line[16];
			int fd, code, n;

			if (jobs[i].pid != pid)
				continue;
			jobs[i].pid = 0;
			code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
			snprintf(path, sizeof(path), "%s/exit", jobs[i].dir);
			n = snprintf(line, sizeof(line), "%d\n", code);
			fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
			if (fd < 0 || write_full(fd, line, (size_t)n))
				log_errno("write %s", path);
			if (fd >= 0)
				close(fd);
		}
	}
}

/* The error channel (common/log.h): a call below reports its failure
 * once, in the daemon's log, and its message becomes the API's. */
static void take_error(int r, char *err, size_t errlen)
{
	if (r < 0)
		log_take_error(err, errlen);
}

static int load_image(const char *tag, struct snapshot_image *img, char *err, size_t errlen)
{
	int r;

	log_error_clear();
	r = snapshot_image_load(tag, img);
	take_error(r, err, errlen);
	if (r && !err[0])
		snprintf(err, errlen, "cannot load snapshot '%s': %s", tag, strerror(-r));
	return r;
}

static json_t *spawn_refused(const char *msg, int e)
{
	return json_pack("{s:b,s:s,s:i}", "ok", 0, "error", msg, "errno", e);
}

/* Memory cgroups for a request with a limit: where, and forkd/ ready. */
static int spawn_cgroups(struct cgroup_layout *cg, char *err, size_t errlen)
{
	int r;

	log_error_clear();
	r = cgroup_layout_detect(cg);
	if (!r)
		r = cgroup_parent_prepare(cg);
	take_error(r, err, errlen);
	return r;
}

/* The batch child for request entry k, or false with why not in err. */
static bool child_from_request(json_t *k, bool netns, uint64_t limit_mib, struct batch_child *c,
			       char *err, size_t errlen)
{
	const char *id = json_string_value(json_object_get(k, "id"));
	const char *dir = json_string_value(json_object_get(k, "dir"));
	json_t *ns = json_object_get(k, "netns");

	c->index = (uint32_t)json_integer_value(json_object_get(k, "index"));
	if (!dir || snprintf(c->dir, sizeof(c->dir), "%s", dir) >= (int)sizeof(c->dir)) {
		snprintf(err, errlen, "no run directory");
		return false;
	}
	if (netns && !json_is_integer(ns)) {
		snprintf(err, errlen, "no network namespace index");
		return false;
	}
	if (limit_mib) {
		if (!id || !cgroup_leaf_name_valid(id)) {
			snprintf(err, errlen, "no valid sandbox id for a cgroup");
			return false;
		}
		snprintf(c->cgroup_name, sizeof(c->cgroup_name), "%s", id);
	}
	if (ns && !json_is_null(ns)) {
		json_int_t idx = json_integer_value(ns);

		if (!json_is_integer(ns) || idx < 0 || idx >= NETNS_MAX_CHILDREN) {
			snprintf(err, errlen, "bad network namespace index");
			return false;
		}
		c->netns = true;
		c->netns_index = (uint32_t)idx;
	}
	return true;
}

static json_t *child_reply(json_t *k, const struct batch_child *c, int status, const char *error)
{
	return json_pack("{s:O,s:I,s:I,s:i,s:I,s:I,s:s,s:s,s:b}", "index",
			 json_object_get(k, "index"), "pid", (json_int_t)(c ? c->pid : 0),
			 "start_time", (json_int_t)(c ? c->start_time : 0), "status", status,
			 "restore_ns", (json_int_t)(c ? c->restore_ns : 0), "after_fork_ns",
			 (json_int_t)(c ? c->after_fork_ns : 0), "error", error, "cgroup",
			 c ? c->leaf.path : "", "netns_created", c ? c->netns_created : false);
}

static json_t *do_spawn(json_t *req, int ctl_fd)
{
	const char *tag = json_string_value(json_object_get(req, "tag"));
	json_t *kids = json_object_get(req, "children"), *reply, *arr;
	json_int_t timeout_ms = json_integer_value(json_object_get(req, "timeout_ms"));
	json_int_t agent_ms = json_integer_value(json_object_get(req, "agent_timeout_ms"));
	json_int_t limit_mib = json_integer_value(json_object_get(req, "memory_limit_mib"));
	bool netns = json_is_true(json_object_get(req, "per_child_netns"));
	struct cgroup_layout cg;
	struct snapshot_image img;
	struct batch b = {0};
	char err[512] = "", msg[700], (*bad)[128];
	size_t n = json_array_size(kids), *slot;
	uint32_t agent_port;
	bool net;
	int r;

	if (!tag || !snapshot_tag_valid(tag) || !n || n > 10000 || limit_mib < 0 ||
	    limit_mib > (1 << 20))
		return spawn_refused("bad spawn request", EINVAL);
	r = load_image(tag, &img, err, sizeof(err));
	if (r)
		return spawn_refused(err, -r);
	agent_port = img.meta.agent_port;
	net = img.meta.dev.net;
	if (net && !netns) {
		snapshot_image_free(&img);
		snprintf(msg, sizeof(msg),
			 "snapshot '%s' has a network device: each sandbox needs a tap of its own, "
			 "which comes with a network namespace per sandbox; ask with "
			 "\"per_child_netns\": true",
			 tag);
		return spawn_refused(msg, EINVAL);
	}
	if (limit_mib && spawn_cgroups(&cg, err, sizeof(err))) {
		snapshot_image_free(&img);
		snprintf(msg, sizeof(msg), "memory_limit_mib: no memory cgroups here: %s", err);
		return spawn_refused(msg, ENOTSUP);
	}
	b = (struct batch){
	    .img = &img,
	    .c = calloc(n, sizeof(*b.c)),
	    .live_fork = json_is_true(json_object_get(req, "live_fork")),
	    .hugepages = json_is_true(json_object_get(req, "hugepages")),
	    .jail = json_is_true(json_object_get(req, "jail")),
	    .detach = true,
	    .memory_limit_mib = (uint64_t)limit_mib,
	    .cg = &cg,
	    .log_name = "vmm.log",
	    .close_fds = &ctl_fd,
	    .nr_close_fds = 1,
	    .report_timeout_ms =
		timeout_ms > 0 ? (int)MIN(timeout_ms, (json_int_t)INT32_MAX) : 60000,
	    .agent_timeout_ms = (int)(agent_ms > 0 ? MIN(agent_ms, (json_int_t)INT32_MAX) : 120000),
	};
	bad = calloc(n, sizeof(*bad));
	slot = calloc(n, sizeof(*slot));
	if (!b.c || !bad || !slot) {
		free(b.c);
		free(bad);
		free(slot);
		snapshot_image_free(&img);
		return spawn_refused("spawner out of resources", ENOMEM);
	}
	/* Entries the request got wrong fail alone; the rest form the batch. */
	for (size_t i = 0; i < n; i++) {
		slot[i] = SIZE_MAX;
		if (child_from_request(json_array_get(kids, i), netns, (uint64_t)limit_mib,
				       &b.c[b.n], bad[i], sizeof(bad[i])))
			slot[i] = b.n++;
		else
			memset(&b.c[b.n], 0, sizeof(b.c[b.n]));
	}
	batch_start(&b);
	snapshot_image_free(&img);
	arr = json_array();
	for (size_t i = 0; i < n; i++) {
		json_t *k = json_array_get(kids, i);
		struct batch_child *c = slot[i] == SIZE_MAX ? NULL : &b.c[slot[i]];
		char why[sizeof(c->error) + 16];

		if (!c) {
			json_array_append_new(arr, child_reply(k, NULL, -EINVAL, bad[i]));
			continue;
		}
		if (c->pid > 0 && sandbox_write_pidfile(c->dir, c->pid, c->start_time))
			log_warn("spawner: no pid file for child %d in %s", (int)c->pid, c->dir);
		snprintf(why, sizeof(why), "%s%s",
			 c->failed_at == BATCH_AFTER_FORK ? "after_fork: " : "", c->error);
		json_array_append_new(arr, child_reply(k, c, c->status, why));
	}
	free(b.c);
	free(bad);
	free(slot);
	reply = json_pack("{s:b,s:o,s:b,s:I}", "ok", 1, "children", arr, "net", net, "agent_port",
			  (json_int_t)agent_port);
	return reply;
}

static json_t *do_job(json_t *req)
{
	json_t *argv_j = json_object_get(req, "argv");
	const char *dir = json_string_value(json_object_get(req, "dir"));
	size_t n = json_array_size(argv_j);
	char **argv, path[PATH_MAX + 16];
	unsigned slot;
	uint64_t st = 0;
	pid_t pid;

	for (slot = 0; slot < MAX_JOBS && jobs[slot].pid; slot++)
		;
	if (!dir || !n || n > 256 || slot == MAX_JOBS || strlen(dir) >= sizeof(jobs[0].dir))
		return json_pack("{s:b,s:s}", "ok", 0, "error",
				 slot == MAX_JOBS ? "too many snapshot jobs running" : "bad job");
	argv = calloc(n + 1, sizeof(*argv));
	if (!argv)
		return json_pack("{s:b,s:s}", "ok", 0, "error", "out of memory");
	for (size_t i = 0; i < n; i++)
		argv[i] = (char *)json_string_value(json_array_get(argv_j, i));
	snprintf(path, sizeof(path), "%s/job.log", dir);
	pid = fork();
	if (pid == 0) {
		int fd = open(path, O_WRONLY | O_CREAT | O_APPEND, 0640);
		int null = open("/dev/null", O_RDONLY);

		prctl(PR_SET_PDEATHSIG, SIGTERM);
		signal(SIGINT, SIG_DFL);
		signal(SIGPIPE, SIG_DFL);
		if (fd < 0 || null < 0)
			_exit(126);
		dup2(null, STDIN_FILENO);
		dup2(fd, STDOUT_FILENO);
		dup2(fd, STDERR_FILENO);
		close_range(3, ~0U, 0);
		for (size_t i = 0; i < n; i++)
			if (!argv[i])
				_exit(126);
		execv(argv[0], argv);
		dprintf(STDERR_FILENO, "forkd: error: exec %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	free(argv);
	if (pid < 0)
		return json_pack("{s:b,s:s}", "ok", 0, "error", strerror(errno));
	jobs[slot].pid = pid;
	snprintf(jobs[slot].dir, sizeof(jobs[slot].dir), "%s", dir);
	if (child_start_time(pid, &st, NULL))
		st = 0;
	return json_pack("{s:b,s:I,s:I}", "ok", 1, "pid", (json_int_t)pid, "start_time",
			 (json_int_t)st);
}

static __attribute__((noreturn)) void spawner_main(int fd)
{
	char *buf = NULL, *line;
	size_t len = 0, cap = 0, line_len;
	int null = open("/dev/null", O_RDONLY);

	if (null >= 0) {
		dup2(null, STDIN_FILENO);
		close(null);
	}
	prctl(PR_SET_NAME, "forkd-spawner");
	prctl(PR_SET_PDEATHSIG, SIGTERM);
	/* Ctrl-C reaches the whole foreground group: the daemon stops
	 * gracefully and then closes the socket, which ends this loop. */
	signal(SIGINT, SIG_IGN);
	signal(SIGPIPE, SIG_IGN);
	for (;;) {
		json_t *req, *reply;
		const char *op;
		int r = recv_line(fd, &buf, &len, &cap, 250, &line, &line_len);

		reap();
		if (r == -ETIMEDOUT)
			continue;
		if (r)
			break;
		req = json_loadb(line, line_len, 0, NULL);
		consume_line(buf, &len, line_len);
		op = json_string_value(json_object_get(req, "op"));
		if (op && !strcmp(op, "spawn"))
			reply = do_spawn(req, fd);
		else if (op && !strcmp(op, "job"))
			reply = do_job(req);
		else
			reply = json_pack("{s:b,s:s}", "ok", 0, "error", "unknown spawner request");
		if (reply && req)
			json_object_set(reply, "seq", json_object_get(req, "seq"));
		r = reply ? send_json(fd, reply) : -ENOMEM;
		json_decref(reply);
		json_decref(req);
		if (r)
			break;
	}
	_exit(0);
}

/* ---- the daemon's side ---- */

int spawnsvc_start(struct spawnsvc *s)
{
	int sv[2];
	pid_t pid;

	memset(s, 0, sizeof(*s));
	s->fd = -1;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		return log_errno("socketpair for the spawner");
	fflush(NULL);
	pid = fork();
	if (pid < 0) {
		close(sv[0]);
		close(sv[1]);
		return log_errno("fork the spawner");
	}
	if (pid == 0) {
		close(sv[0]);
		spawner_main(sv[1]);
	}
	close(sv[1]);
	s->pid = pid;
	s->fd = sv[0];
	pthread_mutex_init(&s->lock, NULL);
	return 0;
}

int spawnsvc_call(struct spawnsvc *s, json_t *req, json_t **reply, int timeout_ms)
{
	uint64_t seq, deadline = now_ns() + (uint64_t)timeout_ms * 1000000;
	char *line;
	size_t line_len;
	int r;

	*reply = NULL;
	pthread_mutex_lock(&s->lock);
	seq = ++s->seq;
	json_object_set_new(req, "seq", json_integer((json_int_t)seq));
	r = send_json(s->fd, req);
	if (r == -EPIPE || r == -ECONNRESET)
		r = -EPIPE;
	while (!r) {
		uint64_t now = now_ns();
		json_t *o;

		if (now >= deadline) {
			r = -ETIMEDOUT;
			break;
		}
		r = recv_line(s->fd, &s->buf, &s->len, &s->cap,
			      (int)((deadline - now) / 1000000 + 1), &line, &line_len);
		if (r)
			break;
		o = json_loadb(line, line_len, 0, NULL);
		consume_line(s->buf, &s->len, line_len);
		if (!json_is_object(o)) {
			json_decref(o);
			r = -EPROTO;
			break;
		}
		/* A reply to an earlier request that timed out: skip it. */
		if ((uint64_t)json_integer_value(json_object_get(o, "seq")) != seq) {
			json_decref(o);
			continue;
		}
		*reply = o;
		break;
	}
	pthread_mutex_unlock(&s->lock);
	return r;
}

void spawnsvc_stop(struct spawnsvc *s)
{
	if (s->fd >= 0)
		close(s->fd);
	s->fd = -1;
	if (s->pid > 0) {
		/* It sees the socket close within its 250 ms poll. */
		for (int i = 0; i < 400; i++) {
			if (waitpid(s->pid, NULL, WNOHANG) == s->pid) {
				s->pid = 0;
				break;
			}
			usleep(5000);
		}
		if (s->pid > 0) {
			kill(s->pid, SIGKILL);
			waitpid(s->pid, NULL, 0);
		}
	}
	free(s->buf);
	s->buf = NULL;
}
