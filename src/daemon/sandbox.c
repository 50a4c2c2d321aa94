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

int sandbox_dir(const char *root, const char *id, char *buf, size_t size)
{
	if (!child_id_valid(id))
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

int sandbox_netns_alloc(const struct child_rec *used, size_t n_used, uint32_t *out, size_t n)
{
	uint32_t *have = NULL;
	pid_t *user = NULL;
	size_t n_have = 0, got = 0, h = 0;
	int err;

	/* Only a namespace that exists can have a process in it. */
	err = netns_list(&have, &n_have);
	if (!err && n_have && !(user = calloc(n_have, sizeof(*user))))
		err = -ENOMEM;
	if (!err)
		err = netns_users_many(have, n_have, user, NULL);
	for (uint32_t k = 0; !err && got < n && k < NETNS_MAX_CHILDREN; k++) {
		bool taken = false;

		for (size_t i = 0; i < n_used && !taken; i++)
			taken = used[i].netns_index == (int64_t)k;
		while (h < n_have && have[h] < k)
			h++;
		if (h < n_have && have[h] == k && user[h])
			taken = true;
		if (!taken)
			out[got++] = k;
	}
	free(have);
	free(user);
	return err ? err : got == n ? 0 : -ENOSPC;
}

/* A leaf path the daemon's spawner would have made: ".../forkd/<id>". */
static bool cgroup_path_ok(const struct child_rec *r)
{
	size_t n = strlen(r->cgroup), tail = strlen(r->id) + strlen(CGROUP_PARENT_NAME) + 2;

	return n > tail && r->cgroup[0] == '/' && !strstr(r->cgroup, "/../") &&
	       !strcmp(r->cgroup + n - strlen(r->id), r->id) &&
	       !strncmp(r->cgroup + n - tail, "/" CGROUP_PARENT_NAME "/",
			strlen(CGROUP_PARENT_NAME) + 2);
}

int sandbox_release(const struct child_rec *r)
{
	int ret = 0, e;

	if (r->cgroup[0]) {
		struct cgroup_leaf leaf = {0};

		if (!child_id_valid(r->id) || !cgroup_path_ok(r)) {
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
