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

struct ns_want {
	const uint32_t *index;
	size_t n;
	dev_t *dev;
	ino_t *ino; /* 0: no such namespace */
	bool *hit;  /* per process, reset for each */
};

/* Mark in w->hit the wanted namespaces that st (a task's ns/net or an
 * open file) is. */
static void match(struct ns_want *w, const struct stat *st)
{
	for (size_t i = 0; i < w->n; i++)
		if (w->ino[i] && st->st_ino == w->ino[i] && st->st_dev == w->dev[i])
			w->hit[i] = true;
}

/* Which wanted namespaces /proc/<pid> uses: a thread in one, or an open
 * descriptor of one. */
static void pid_uses(int pid_dirfd, struct ns_want *w)
{
	static const char *const dirs[] = {"task", "fd"};
	struct dirent *de;
	struct stat st;
	DIR *d;

	for (size_t k = 0; k < 2; k++) {
		int fd = openat(pid_dirfd, dirs[k], O_RDONLY | O_DIRECTORY | O_CLOEXEC);

		if (fd < 0)
			continue;
		d = fdopendir(fd);
		if (!d) {
			close(fd);
			continue;
		}
		while ((de = readdir(d))) {
			char p[sizeof(de->d_name) + 8];

			if (de->d_name[0] == '.')
				continue;
			snprintf(p, sizeof(p), k ? "%s" : "%s/ns/net", de->d_name);
			if (fstatat(dirfd(d), p, &st, 0) == 0)
				match(w, &st);
		}
		closedir(d);
	}
}

int netns_users_many(const uint32_t *index, size_t n, pid_t *first, int *count)
{
	struct ns_want w = {.index = index, .n = n};
	struct dirent *de;
	int err = 0;
	DIR *proc;

	w.dev = calloc(n ? n : 1, sizeof(*w.dev));
	w.ino = calloc(n ? n : 1, sizeof(*w.ino));
	w.hit = calloc(n ? n : 1, sizeof(*w.hit));
	if (!w.dev || !w.ino || !w.hit) {
		err = -ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		struct netns_addrs a;
		struct stat ns;

		first[i] = 0;
		if (count)
			count[i] = 0;
		if (netns_addrs(index[i], &a)) {
			err = -ERANGE;
			goto out;
		}
		if (stat(a.path, &ns) == 0) {
			w.dev[i] = ns.st_dev;
			w.ino[i] = ns.st_ino;
		}
	}
	proc = opendir("/proc");
	if (!proc) {
		err = log_errno("opendir /proc");
		goto out;
	}
	while ((de = readdir(proc))) {
		int fd;

		if (!isdigit((unsigned char)de->d_name[0]))
			continue;
		fd = openat(dirfd(proc), de->d_name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (fd < 0)
			continue; /* exited meanwhile */
		memset(w.hit, 0, n * sizeof(*w.hit));
		pid_uses(fd, &w);
		close(fd);
		for (size_t i = 0; i < n; i++) {
			if (!w.hit[i])
				continue;
			if (!first[i])
				first[i] = (pid_t)atoi(de->d_name);
			if (count)
				count[i]++;
		}
	}
	closedir(proc);
out:
	free(w.dev);
	free(w.ino);
	free(w.hit);
	return err;
}

int netns_users(uint32_t index, pid_t *first)
{
	struct netns_addrs a;
	int count = 0, err;

	*first = 0;
	if (netns_addrs(index, &a))
		return -ERANGE;
	if (!netns_exists(index))
		return -ENOENT;
	err = netns_users_many(&index, 1, first, &count);
	return err ? err : count;
}

int netns_scan_leftovers(netns_scan_fn fn, void *arg)
{
	uint32_t *ns = NULL, *veths = NULL;
	size_t nns = 0, nveths = 0;
	int err;

	if ((err = netns_list(&ns, &nns)) || (err = netns_host_veths(&veths, &nveths))) {
		free(ns);
		return err;
	}
	for (size_t i = 0; i < nns; i++) {
		char path[64], why[96];
		pid_t pid;
		int users = netns_users(ns[i], &pid);

		snprintf(path, sizeof(path), NETNS_RUN_DIR "/" NETNS_PREFIX "%u", ns[i]);
		if (users > 0)
			snprintf(why, sizeof(why), "pid %d is inside%s", (int)pid,
				 users > 1 ? " (and others)" : "");
		else if (users < 0 && users != -ENOENT)
			snprintf(why, sizeof(why), "cannot tell who uses it: %s", strerror(-users));
		fn(path, ns[i], false, users > 0 || (users < 0 && users != -ENOENT) ? why : NULL,
		   arg);
	}
	for (size_t i = 0; i < nveths; i++) {
		bool has_ns = false;
		char name[48];

		for (size_t k = 0; k < nns; k++)
			has_ns |= ns[k] == veths[i];
		if (has_ns)
			continue;
		snprintf(name, sizeof(name), "host veth " NETNS_IFNAME_PREFIX "%uh", veths[i]);
		fn(name, veths[i], true, NULL, arg);
	}
	free(ns);
	free(veths);
	return 0;
}
