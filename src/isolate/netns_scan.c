/* Per-child network namespaces: finding them, their host veths, and the
 * processes that use them (declared in netns.h, beside the building and
 * removing in netns.c). */
#include "isolate/netns.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <linux/netlink.h>

#include "isolate/nl.h"

static int cmp_u32(const void *x, const void *y)
{
	uint32_t a = *(const uint32_t *)x, b = *(const uint32_t *)y;

	return a < b ? -1 : a > b;
}

/* Append v to a growing array. */
static int push(uint32_t **arr, size_t *n, size_t *cap, uint32_t v)
{
	if (*n == *cap) {
		size_t ncap = *cap ? *cap * 2 : 16;
		uint32_t *p = realloc(*arr, ncap * sizeof(*p));

		if (!p)
			return -ENOMEM;
		*arr = p;
		*cap = ncap;
	}
	(*arr)[(*n)++] = v;
	return 0;
}

int netns_list(uint32_t **out, size_t *n)
{
	size_t cap = 0;
	struct dirent *de;
	DIR *d;
	int err = 0;

	*out = NULL;
	*n = 0;
	d = opendir(NETNS_RUN_DIR);
	if (!d)
		return errno == ENOENT ? 0 : log_errno("opendir " NETNS_RUN_DIR);
	while ((de = readdir(d))) {
		uint32_t i;

		if (netns_parse_name(de->d_name, &i) == 0 && (err = push(out, n, &cap, i)))
			break;
	}
	closedir(d);
	if (err) {
		free(*out);
		*out = NULL;
		*n = 0;
		return err;
	}
	if (*n)
		qsort(*out, *n, sizeof(**out), cmp_u32);
	return 0;
}

struct veth_scan {
	uint32_t *arr;
	size_t n, cap;
};

/* fkd<i>h, i as netns_parse_name() accepts it. */
static int veth_cb(const struct nl_link *l, void *arg)
{
	struct veth_scan *s = arg;
	size_t k = strlen(NETNS_IFNAME_PREFIX), n = strlen(l->name);
	char name[64];
	uint32_t i;

	if (strcmp(l->kind, "veth") || n <= k + 1 || strncmp(l->name, NETNS_IFNAME_PREFIX, k) ||
	    l->name[n - 1] != 'h')
		return 0;
	snprintf(name, sizeof(name), NETNS_PREFIX "%.*s", (int)(n - k - 1), l->name + k);
	if (netns_parse_name(name, &i))
		return 0;
	return push(&s->arr, &s->n, &s->cap, i);
}

int netns_host_veths(uint32_t **out, size_t *n)
{
	struct veth_scan s = {0};
	struct nl nl;
	int err;

	*out = NULL;
	*n = 0;
	err = nl_open(&nl, NETLINK_ROUTE, -1, "host");
	if (err)
		return err;
	err = nl_link_foreach(&nl, veth_cb, &s);
	nl_close(&nl);
	if (err) {
		free(s.arr);
		return err;
	}
	if (s.n)
		qsort(s.arr, s.n, sizeof(*s.arr), cmp_u32);
	*out = s.arr;
	*n = s.n;
	return 0;
}

/* Does /proc/<pid> use the namespace (dev, ino): a thread in it, or an
 * open descriptor of it? */
static bool pid_uses(int pid_dirfd, dev_t dev, ino_t ino)
{
	struct dirent *de;
	struct stat st;
	bool found = false;
	DIR *d;
	int fd;

	fd = openat(pid_dirfd, "task", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd >= 0 && (d = fdopendir(fd))) {
		while (!found && (de = readdir(d))) {
			char p[sizeof(de->d_name) + 8];

			if (de->d_name[0] == '.')
				continue;
			snprintf(p, sizeof(p), "%s/ns/net", de->d_name);
			found = fstatat(dirfd(d), p, &st, 0) == 0 && st.st_dev == dev &&
				st.st_ino == ino;
		}
		closedir(d);
	} else if (fd >= 0) {
		close(fd);
	}
	if (found)
		return true;
	fd = openat(pid_dirfd, "fd", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd >= 0 && (d = fdopendir(fd))) {
		while (!found && (de = readdir(d))) {
			if (de->d_name[0] == '.')
				continue;
			found = fstatat(dirfd(d), de->d_name, &st, 0) == 0 && st.st_dev == dev &&
				st.st_ino == ino;
		}
		closedir(d);
	} else if (fd >= 0) {
		close(fd);
	}
	return found;
}

int netns_users(uint32_t index, pid_t *first)
{
	struct netns_addrs a;
	struct dirent *de;
	struct stat ns;
	int count = 0;
	DIR *proc;

	*first = 0;
	if (netns_addrs(index, &a))
		return -ERANGE;
	if (!netns_exists(index))
		return -ENOENT;
	if (stat(a.path, &ns) < 0)
		return log_errno("stat %s", a.path);
	proc = opendir("/proc");
	if (!proc)
		return log_errno("opendir /proc");
	while ((de = readdir(proc))) {
		int fd;

		if (!isdigit((unsigned char)de->d_name[0]))
			continue;
		fd = openat(dirfd(proc), de->d_name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (fd < 0)
			continue; /* exited meanwhile */
		if (pid_uses(fd, ns.st_dev, ns.st_ino)) {
			if (!count++)
				*first = (pid_t)atoi(de->d_name);
		}
		close(fd);
	}
	closedir(proc);
	return count;
}
