#include "daemon/sandbox.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/random.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "common/file.h"
#include "common/util.h"
#include "isolate/cgroup.h"
#include "isolate/netns.h"

#define ID_PREFIX "sb-"
#define ID_CHARS  20

static const char b32[] = "abcdefghijklmnopqrstuvwxyz234567";

int sandbox_id_new(char id[SANDBOX_ID_LEN + 1])
{
	uint8_t rnd[ID_CHARS];

	if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd))
		return log_errno("getrandom for a sandbox id");
	memcpy(id, ID_PREFIX, 3);
	for (int i = 0; i < ID_CHARS; i++)
		id[3 + i] = b32[rnd[i] & 31];
	id[SANDBOX_ID_LEN] = 0;
	return 0;
}

bool sandbox_id_valid(const char *id)
{
	if (strlen(id) != SANDBOX_ID_LEN || strncmp(id, ID_PREFIX, 3))
		return false;
	for (int i = 3; i < SANDBOX_ID_LEN; i++)
		if (!strchr(b32, id[i]) || !id[i])
			return false;
	return true;
}

int proc_start_time(pid_t pid, uint64_t *start_time, char *state)
{
	char path[64], buf[1024], *p;
	unsigned long long st;
	ssize_t n;
	int fd, field;

	if (pid <= 0)
		return -ENOENT;
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return -ENOENT;
	buf[n] = 0;
	/* The command name (field 2) may hold spaces and ')': skip to the
	 * last ')'. */
	p = strrchr(buf, ')');
	if (!p || p[1] != ' ')
		return -EPROTO;
	p += 2;
	if (state)
		*state = *p;
	for (field = 3; field < 22 && p; field++) {
		p = strchr(p, ' ');
		if (p)
			p++;
	}
	if (!p || sscanf(p, "%llu", &st) != 1)
		return -EPROTO;
	*start_time = st;
	return 0;
}

bool sandbox_alive(pid_t pid, uint64_t start_time)
{
	uint64_t st;
	char state;

	return proc_start_time(pid, &st, &state) == 0 && st == start_time && state != 'Z' &&
	       state != 'X';
}

static int pidfd_open_(pid_t pid)
{
	return (int)syscall(SYS_pidfd_open, pid, 0);
}

static int pidfd_signal(int pidfd, int sig)
{
	return (int)syscall(SYS_pidfd_send_signal, pidfd, sig, NULL, 0);
}

/* The pidfd turns readable when the process has exited (zombie or
 * reaped). */
static bool wait_exit(int pidfd, pid_t pid, uint64_t start_time, int ms)
{
	struct pollfd p = {.fd = pidfd, .events = POLLIN};
	uint64_t deadline = now_ns() + (uint64_t)ms * 1000000;

	while (now_ns() < deadline) {
		int r = poll(&p, 1, 20);

		if (r > 0 || !sandbox_alive(pid, start_time))
			return true;
	}
	return !sandbox_alive(pid, start_time);
}

int sandbox_stop(pid_t pid, uint64_t start_time, int grace_ms)
{
	int fd, ret = 0;

	if (pid <= 0)
		return 0;
	fd = pidfd_open_(pid);
	if (fd < 0)
		return errno == ESRCH ? 0 : log_errno("pidfd_open(%d)", (int)pid);
	/* The pidfd pins this process: if it is the right one now, every
	 * signal below reaches it and nothing else. */
	if (!sandbox_alive(pid, start_time))
		goto out;
	if (pidfd_signal(fd, SIGTERM) < 0 && errno != ESRCH) {
		ret = log_errno("pidfd_send_signal(%d, SIGTERM)", (int)pid);
		goto out;
	}
	if (wait_exit(fd, pid, start_time, grace_ms))
		goto out;
	if (pidfd_signal(fd, SIGKILL) < 0 && errno != ESRCH) {
		ret = log_errno("pidfd_send_signal(%d, SIGKILL)", (int)pid);
		goto out;
	}
	if (!wait_exit(fd, pid, start_time, 5000)) {
		log_err("sandbox process %d still runs 5 s after SIGKILL", (int)pid);
		ret = -ETIMEDOUT;
	}
out:
	close(fd);
	return ret;
}

int sandbox_dir(const char *root, const char *id, char *buf, size_t size)
{
	if (!sandbox_id_valid(id))
		return -EINVAL;
	if ((size_t)snprintf(buf, size, "%s/%s", root, id) >= size)
		return -ENAMETOOLONG;
	return 0;
}

int sandbox_remove_dir(const char *root, const char *id)
{
	char dir[PATH_MAX];
	int err;

	if (sandbox_dir(root, id, dir, sizeof(dir)))
		return -EINVAL;
	err = file_remove_tree(dir);
	if (err)
		log_err("remove %s: %s", dir, strerror(-err));
	return err;
}

int sandbox_write_pidfile(const char *dir, pid_t pid, uint64_t start_time)
{
	char tmp[PATH_MAX + 16], path[PATH_MAX + 16], line[64];
	int fd, n;

	snprintf(tmp, sizeof(tmp), "%s/.pid.tmp", dir);
	snprintf(path, sizeof(path), "%s/pid", dir);
	n = snprintf(line, sizeof(line), "%d %llu\n", (int)pid, (unsigned long long)start_time);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return log_errno("open %s", tmp);
	if (write_full(fd, line, (size_t)n)) {
		close(fd);
		return log_errno("write %s", tmp);
	}
	close(fd);
	if (rename(tmp, path) < 0)
		return log_errno("rename %s", path);
	return 0;
}

/* The network namespaces live processes are in: /proc/<pid>/ns/net of
 * every process (a VMM enters its namespace before it has threads). */
struct ns_ids {
	ino_t *ino;
	pid_t *pid;
	size_t n, cap;
};

static int ns_in_use_scan(struct ns_ids *ids, dev_t *dev)
{
	DIR *proc = opendir("/proc");
	struct dirent *e;

	if (!proc)
		return log_errno("opendir /proc");
	while ((e = readdir(proc))) {
		char path[64];
		struct stat st;

		if (e->d_name[0] < '1' || e->d_name[0] > '9')
			continue;
		snprintf(path, sizeof(path), "/proc/%.20s/ns/net", e->d_name);
		if (stat(path, &st) < 0)
			continue; /* gone, or a kernel thread */
		*dev = st.st_dev;
		if (ids->n == ids->cap) {
			size_t cap = ids->cap ? ids->cap * 2 : 256;
			ino_t *p = realloc(ids->ino, cap * sizeof(*p));
			pid_t *q = p ? realloc(ids->pid, cap * sizeof(*q)) : NULL;

			if (p)
				ids->ino = p;
			if (!q) {
				closedir(proc);
				return -ENOMEM;
			}
			ids->pid = q;
			ids->cap = cap;
		}
		ids->pid[ids->n] = (pid_t)atoi(e->d_name);
		ids->ino[ids->n++] = st.st_ino;
	}
	closedir(proc);
	return 0;
}

/* A process inside namespace index (its pid), or 0. */
static pid_t ns_busy(const struct ns_ids *ids, dev_t dev, uint32_t index)
{
	struct netns_addrs a;
	struct stat st;

	if (netns_addrs(index, &a) || stat(a.path, &st) < 0)
		return 0; /* no namespace of that name: free */
	for (size_t i = 0; i < ids->n; i++)
		if (ids->ino[i] == st.st_ino && st.st_dev == dev)
			return ids->pid[i];
	return 0;
}

int sandbox_netns_users(const uint32_t *index, size_t n, pid_t *user)
{
	struct ns_ids ids = {0};
	dev_t dev = 0;
	int err = ns_in_use_scan(&ids, &dev);

	for (size_t i = 0; !err && i < n; i++)
		user[i] = ns_busy(&ids, dev, index[i]);
	free(ids.ino);
	free(ids.pid);
	return err;
}

int sandbox_netns_alloc(const struct sandbox_rec *used, size_t n_used, uint32_t *out, size_t n)
{
	struct ns_ids ids = {0};
	dev_t dev = 0;
	size_t got = 0;
	int err = ns_in_use_scan(&ids, &dev);

	if (err) {
		free(ids.ino);
		free(ids.pid);
		return err;
	}
	for (uint32_t k = 0; got < n && k < NETNS_MAX_CHILDREN; k++) {
		bool taken = false;

		for (size_t i = 0; i < n_used && !taken; i++)
			taken = used[i].netns_index == (int64_t)k;
		if (!taken && !ns_busy(&ids, dev, k))
			out[got++] = k;
	}
	free(ids.ino);
	free(ids.pid);
	return got == n ? 0 : -ENOSPC;
}

/* A leaf path the daemon's spawner would have made: ".../forkd/<id>". */
static bool cgroup_path_ok(const struct sandbox_rec *r)
{
	size_t n = strlen(r->cgroup), tail = strlen(r->id) + strlen(CGROUP_PARENT_NAME) + 2;

	return n > tail && r->cgroup[0] == '/' && !strstr(r->cgroup, "/../") &&
	       !strcmp(r->cgroup + n - strlen(r->id), r->id) &&
	       !strncmp(r->cgroup + n - tail, "/" CGROUP_PARENT_NAME "/",
			strlen(CGROUP_PARENT_NAME) + 2);
}

int sandbox_release(const struct sandbox_rec *r)
{
	int ret = 0, e;

	if (r->cgroup[0]) {
		struct cgroup_leaf leaf = {0};

		if (!sandbox_id_valid(r->id) || !cgroup_path_ok(r)) {
			log_warn(
			    "sandbox %s: not removing cgroup '%.200s' (not a leaf forkd makes)",
			    r->id, r->cgroup);
			ret = -EINVAL;
		} else {
			snprintf(leaf.path, sizeof(leaf.path), "%s", r->cgroup);
			e = cgroup_leaf_remove(&leaf);
			if (e && !ret)
				ret = e;
		}
	}
	if (r->netns_index >= 0 && r->netns_created) {
		e = netns_remove((uint32_t)r->netns_index);
		if (e && e != -ENOENT) {
			log_warn("sandbox %s: network namespace %s%lld is left; remove it with "
				 "'forkd netns teardown %lld'",
				 r->id, NETNS_PREFIX, (long long)r->netns_index,
				 (long long)r->netns_index);
			if (!ret)
				ret = e;
		}
	}
	return ret;
}
