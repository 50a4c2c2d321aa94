#include "isolate/cgroup.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include "common/file.h"
#include "common/util.h"

#define CGROUP_FILE_MAX (4u << 20) /* /proc/self/mountinfo can be long */

/* Is tok one of the comma-separated words of list (length len)? */
static bool has_word(const char *list, size_t len, const char *tok, char sep)
{
	size_t n = strlen(tok);
	const char *p = list, *end = list + len;

	while (p < end) {
		const char *q = memchr(p, sep, (size_t)(end - p));
		size_t w = q ? (size_t)(q - p) : (size_t)(end - p);

		if (w == n && !memcmp(p, tok, n))
			return true;
		if (!q)
			break;
		p = q + 1;
	}
	return false;
}

/* mountinfo escapes space, tab, newline and backslash as \ooo (octal). */
static int unescape(const char *s, size_t len, char *out, size_t out_len)
{
	size_t o = 0;

	for (size_t i = 0; i < len; i++) {
		char c = s[i];

		if (c == '\\' && i + 3 < len && s[i + 1] >= '0' && s[i + 1] <= '3' &&
		    s[i + 2] >= '0' && s[i + 2] <= '7' && s[i + 3] >= '0' && s[i + 3] <= '7') {
			c = (char)((s[i + 1] - '0') * 64 + (s[i + 2] - '0') * 8 + (s[i + 3] - '0'));
			i += 3;
		}
		if (o + 1 >= out_len)
			return -ENAMETOOLONG;
		out[o++] = c;
	}
	out[o] = '\0';
	return 0;
}

struct mount_line {
	const char *f[6]; /* root, mount point, fstype, super options (+ lengths) */
	size_t len[6];
};

enum { ML_ROOT, ML_POINT, ML_FSTYPE, ML_SUPER };

/* Split one mountinfo line: "id parent maj:min root point opts [opt...] -
 * fstype source superopts". 0, or -EINVAL when it has not that shape. */
static int mount_line_parse(const char *line, size_t len, struct mount_line *m)
{
	const char *f[32];
	size_t fl[32];
	unsigned n = 0, dash = 0;
	const char *p = line, *end = line + len;

	while (p < end && n < ARRAY_SIZE(f)) {
		while (p < end && *p == ' ')
			p++;
		if (p == end)
			break;
		f[n] = p;
		while (p < end && *p != ' ')
			p++;
		fl[n] = (size_t)(p - f[n]);
		if (fl[n] == 1 && f[n][0] == '-' && n >= 6 && !dash)
			dash = n;
		n++;
	}
	if (!dash || n < dash + 4)
		return -EINVAL;
	m->f[ML_ROOT] = f[3];
	m->len[ML_ROOT] = fl[3];
	m->f[ML_POINT] = f[4];
	m->len[ML_POINT] = fl[4];
	m->f[ML_FSTYPE] = f[dash + 1];
	m->len[ML_FSTYPE] = fl[dash + 1];
	m->f[ML_SUPER] = f[dash + 3];
	m->len[ML_SUPER] = fl[dash + 3];
	return 0;
}

static bool field_is(const struct mount_line *m, int i, const char *s)
{
	return m->len[i] == strlen(s) && !memcmp(m->f[i], s, m->len[i]);
}

/* The first mount of the hierarchy: cgroup2, or the v1 one with memory. */
static int find_mount(const char *mountinfo, enum cgroup_version v, struct mount_line *out)
{
	const char *p = mountinfo;

	while (p && *p) {
		const char *nl = strchr(p, '\n');
		size_t len = nl ? (size_t)(nl - p) : strlen(p);
		struct mount_line m;

		if (!mount_line_parse(p, len, &m)) {
			if (v == CGROUP_V2 && field_is(&m, ML_FSTYPE, "cgroup2")) {
				*out = m;
				return 0;
			}
			if (v == CGROUP_V1 && field_is(&m, ML_FSTYPE, "cgroup") &&
			    has_word(m.f[ML_SUPER], m.len[ML_SUPER], "memory", ',')) {
				*out = m;
				return 0;
			}
		}
		p = nl ? nl + 1 : NULL;
	}
	return -ENOENT;
}

/* /proc/cgroups: "memory <hierarchy> <num_cgroups> <enabled>". */
static int memory_hierarchy(const char *proc_cgroups, unsigned *hier, unsigned *enabled)
{
	const char *p = proc_cgroups;

	while (p && *p) {
		const char *nl = strchr(p, '\n');
		unsigned h, n, e;

		if (sscanf(p, "memory %u %u %u", &h, &n, &e) == 3) {
			*hier = h;
			*enabled = e;
			return 0;
		}
		p = nl ? nl + 1 : NULL;
	}
	return -ENOENT;
}

/* This process's cgroup path in the hierarchy: /proc/self/cgroup lines are
 * "id:controllers:path"; v2's is "0::path", v1's lists memory. */
static int self_path(const char *self_cgroup, enum cgroup_version v, char *out, size_t out_len)
{
	const char *p = self_cgroup;

	while (p && *p) {
		const char *nl = strchr(p, '\n');
		size_t len = nl ? (size_t)(nl - p) : strlen(p);
		const char *c1 = memchr(p, ':', len), *c2;

		if (c1 && (c2 = memchr(c1 + 1, ':', len - (size_t)(c1 + 1 - p)))) {
			size_t clen = (size_t)(c2 - c1 - 1), plen = len - (size_t)(c2 + 1 - p);
			bool match = v == CGROUP_V2 ? (c1 - p == 1 && *p == '0' && clen == 0)
						    : has_word(c1 + 1, clen, "memory", ',');

			if (match) {
				if (plen == 0 || c2[1] != '/' || plen >= out_len)
					return -EINVAL;
				memcpy(out, c2 + 1, plen);
				out[plen] = '\0';
				return 0;
			}
		}
		p = nl ? nl + 1 : NULL;
	}
	return -ENOENT;
}

static int set_parent(struct cgroup_layout *l)
{
	int n = snprintf(l->parent, sizeof(l->parent), "%s/" CGROUP_PARENT_NAME, l->base);

	return n < 0 || (size_t)n >= sizeof(l->parent) ? -ENAMETOOLONG : 0;
}

int cgroup_layout_parse(const char *mountinfo, const char *proc_cgroups, const char *self_cgroup,
			struct cgroup_layout *l, char *why, size_t why_len)
{
	unsigned hier = 0, enabled = 0;
	struct mount_line m;
	char root[PATH_MAX], self[PATH_MAX];
	const char *rel;
	size_t rlen;
	int n;

	memset(l, 0, sizeof(*l));
	if (memory_hierarchy(proc_cgroups, &hier, &enabled)) {
		snprintf(why, why_len,
			 "this kernel has no memory cgroup controller (no 'memory' line in "
			 "/proc/cgroups); it needs CONFIG_MEMCG");
		return -ENOENT;
	}
	if (!enabled) {
		snprintf(why, why_len,
			 "the memory cgroup controller is disabled (/proc/cgroups); remove "
			 "cgroup_disable=memory from the kernel command line");
		return -ENOENT;
	}
	l->version = hier ? CGROUP_V1 : CGROUP_V2;
	if (find_mount(mountinfo, l->version, &m)) {
		if (l->version == CGROUP_V1)
			snprintf(why, why_len,
				 "the memory controller is on cgroup v1 hierarchy %u, which is not "
				 "mounted here; mount it: mkdir -p /sys/fs/cgroup/memory && mount "
				 "-t cgroup -o memory cgroup /sys/fs/cgroup/memory",
				 hier);
		else
			snprintf(
			    why, why_len,
			    "the memory controller is on cgroup v2, which is not mounted here; "
			    "mount it: mount -t cgroup2 none /sys/fs/cgroup");
		return -ENOENT;
	}
	if (unescape(m.f[ML_POINT], m.len[ML_POINT], l->mount, sizeof(l->mount)) ||
	    unescape(m.f[ML_ROOT], m.len[ML_ROOT], root, sizeof(root))) {
		snprintf(why, why_len, "cgroup mount point too long");
		return -EINVAL;
	}
	if (self_path(self_cgroup, l->version, self, sizeof(self))) {
		snprintf(why, why_len, "/proc/self/cgroup has no %s line",
			 l->version == CGROUP_V2 ? "cgroup v2 ('0::')" : "memory controller");
		return -EINVAL;
	}
	/* The mount may show only a subtree (its root field): this process's
	 * path must lie in it, and is taken relative to it. */
	rlen = strlen(root);
	if (!strcmp(root, "/")) {
		rel = self;
	} else if (!strncmp(self, root, rlen) && (self[rlen] == '/' || self[rlen] == '\0')) {
		rel = self + rlen;
	} else {
		snprintf(why, why_len,
			 "this process's cgroup %s is outside the part of the hierarchy mounted "
			 "at %s (%s)",
			 self, l->mount, root);
		return -EINVAL;
	}
	if (!strcmp(rel, "/"))
		rel = "";
	n = snprintf(l->base, sizeof(l->base), "%s%s", l->mount, rel);
	if (n < 0 || (size_t)n >= sizeof(l->base) || set_parent(l)) {
		snprintf(why, why_len, "cgroup path too long");
		return -ENAMETOOLONG;
	}
	return 0;
}

int cgroup_layout_detect(struct cgroup_layout *l)
{
	char *mi = NULL, *pc = NULL, *sc = NULL, why[512];
	int err;

	if ((err = file_read("/proc/self/mountinfo", CGROUP_FILE_MAX, &mi, NULL)) ||
	    (err = file_read("/proc/cgroups", CGROUP_FILE_MAX, &pc, NULL)) ||
	    (err = file_read("/proc/self/cgroup", CGROUP_FILE_MAX, &sc, NULL))) {
		log_err("memory cgroups: cannot read /proc (mountinfo, cgroups, self/cgroup): %s",
			strerror(-err));
		goto out;
	}
	err = cgroup_layout_parse(mi, pc, sc, l, why, sizeof(why));
	if (err)
		log_err("memory cgroups: %s", why);
out:
	free(mi);
	free(pc);
	free(sc);
	return err;
}

int cgroup_layout_at(const char *root, struct cgroup_layout *l)
{
	struct statfs sfs;
	int n;

	memset(l, 0, sizeof(*l));
	if (statfs(root, &sfs) < 0)
		return log_errno("cgroup root %s", root);
	if (sfs.f_type == CGROUP2_SUPER_MAGIC) {
		l->version = CGROUP_V2;
	} else if (sfs.f_type == CGROUP_SUPER_MAGIC) {
		l->version = CGROUP_V1;
	} else {
		log_err("cgroup root %s is not a cgroup file system (mount one there: mount -t "
			"cgroup2 none %s)",
			root, root);
		return -EINVAL;
	}
	n = snprintf(l->mount, sizeof(l->mount), "%s", root);
	if (n < 0 || (size_t)n >= sizeof(l->mount))
		return -ENAMETOOLONG;
	memcpy(l->base, l->mount, sizeof(l->base));
	if (set_parent(l))
		return -ENAMETOOLONG;
	return 0;
}

/* Write s to dir/file. Returns 0 or -errno (not logged: callers know
 * which failures are expected). */
static int write_at(const char *dir, const char *file, const char *s)
{
	char path[PATH_MAX + 64];
	ssize_t n;
	int fd, err = 0;

	snprintf(path, sizeof(path), "%s/%s", dir, file);
	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	n = write(fd, s, strlen(s));
	if (n < 0)
		err = -errno;
	else if ((size_t)n != strlen(s))
		err = -EIO;
	close(fd);
	return err;
}

static int read_at(const char *dir, const char *file, char **out)
{
	char path[PATH_MAX + 64];

	snprintf(path, sizeof(path), "%s/%s", dir, file);
	return file_read(path, CGROUP_FILE_MAX, out, NULL);
}

static bool file_has_word(const char *dir, const char *file, const char *word)
{
	char *s = NULL;
	bool yes;

	if (read_at(dir, file, &s))
		return false;
	s[strcspn(s, "\n")] = '\0';
	yes = has_word(s, strlen(s), word, ' ');
	free(s);
	return yes;
}

/* v2: memory must be available in dir and enabled for its children. */
static int v2_enable_memory(const char *dir)
{
	int err;

	if (file_has_word(dir, "cgroup.subtree_control", "memory"))
		return 0;
	err = write_at(dir, "cgroup.subtree_control", "+memory");
	if (err == -EBUSY) {
		log_err("memory cgroups: cannot enable the memory controller for the children of "
			"%s: it holds processes, and cgroup v2 lets only cgroups without processes "
			"of their own hand controllers down; start forkd in a cgroup of its own "
			"(e.g. systemd-run --scope -p Delegate=yes forkd ...)",
			dir);
		return err;
	}
	if (err)
		log_err("memory cgroups: write +memory to %s/cgroup.subtree_control: %s", dir,
			strerror(-err));
	return err;
}

int cgroup_parent_prepare(const struct cgroup_layout *l)
{
	char path[PATH_MAX + 64];
	int err;

	if (l->version == CGROUP_V2) {
		char *ctl = NULL;

		err = read_at(l->base, "cgroup.controllers", &ctl);
		if (err) {
			log_err("memory cgroups: read %s/cgroup.controllers: %s", l->base,
				strerror(-err));
			return err;
		}
		ctl[strcspn(ctl, "\n")] = '\0';
		if (!has_word(ctl, strlen(ctl), "memory", ' ')) {
			log_err(
			    "memory cgroups: the memory controller is not available in the "
			    "cgroup v2 hierarchy at %s (its cgroup.controllers lists '%s'): it "
			    "is bound to a cgroup v1 hierarchy (/proc/cgroups) or not delegated "
			    "to this cgroup",
			    l->base, ctl);
			free(ctl);
			return -ENOENT;
		}
		free(ctl);
		if ((err = v2_enable_memory(l->base)))
			return err;
	} else {
		snprintf(path, sizeof(path), "%s/memory.limit_in_bytes", l->base);
		if (access(path, F_OK) < 0)
			return log_errno("memory cgroups: %s is not a v1 memory cgroup (no %s)",
					 l->base, path);
	}
	if (mkdir(l->parent, 0755) < 0 && errno != EEXIST)
		return log_errno("memory cgroups: mkdir %s", l->parent);
	if (l->version == CGROUP_V2)
		return v2_enable_memory(l->parent);
	return 0;
}

void cgroup_parent_remove(const struct cgroup_layout *l)
{
	/* Fails (EBUSY/ENOTEMPTY) while a leaf of any spawner is left. */
	if (l->parent[0])
		rmdir(l->parent);
}

bool cgroup_leaf_name_valid(const char *name)
{
	size_t n = strlen(name);

	if (n == 0 || n > 64 || name[0] == '.')
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = name[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '-' || c == '_' || c == '.'))
			return false;
	}
	return true;
}

int cgroup_leaf_path(const struct cgroup_layout *l, const char *name, struct cgroup_leaf *leaf)
{
	int n;

	if (!cgroup_leaf_name_valid(name)) {
		log_err("memory cgroups: bad leaf name '%s' (letters, digits, '-', '_', '.')",
			name);
		return -EINVAL;
	}
	if (!l->parent[0])
		return -EINVAL;
	memset(leaf, 0, sizeof(*leaf));
	leaf->version = l->version;
	n = snprintf(leaf->path, sizeof(leaf->path), "%s/%s", l->parent, name);
	if (n < 0 || (size_t)n >= sizeof(leaf->path))
		return -ENAMETOOLONG;
	return 0;
}

static int leaf_set_limit(const struct cgroup_leaf *leaf)
{
	char v[32];
	int err;

	if (!leaf->limit_bytes)
		return 0;
	snprintf(v, sizeof(v), "%llu", (unsigned long long)leaf->limit_bytes);
	if (leaf->version == CGROUP_V2) {
		if ((err = write_at(leaf->path, "memory.max", v))) {
			log_err("memory cgroups: write %s to %s/memory.max: %s", v, leaf->path,
				strerror(-err));
			return err;
		}
		/* Over the limit means killed, not swapped out; and the whole
		 * leaf goes, should the child ever have helpers. Both files are
		 * missing on kernels without swap accounting / before 4.19. */
		err = write_at(leaf->path, "memory.swap.max", "0");
		if (err && err != -ENOENT) {
			log_err("memory cgroups: write 0 to %s/memory.swap.max: %s", leaf->path,
				strerror(-err));
			return err;
		}
		err = write_at(leaf->path, "memory.oom.group", "1");
		if (err && err != -ENOENT) {
			log_err("memory cgroups: write 1 to %s/memory.oom.group: %s", leaf->path,
				strerror(-err));
			return err;
		}
		return 0;
	}
	if ((err = write_at(leaf->path, "memory.limit_in_bytes", v))) {
		log_err("memory cgroups: write %s to %s/memory.limit_in_bytes: %s", v, leaf->path,
			strerror(-err));
		return err;
	}
	/* memsw counts memory + swap and must not be below the memory limit,
	 * so it is set second; missing without swap accounting. */
	err = write_at(leaf->path, "memory.memsw.limit_in_bytes", v);
	if (err && err != -ENOENT) {
		log_err("memory cgroups: write %s to %s/memory.memsw.limit_in_bytes: %s", v,
			leaf->path, strerror(-err));
		return err;
	}
	/* A leaf inherits oom_kill_disable from its parent: the limit must
	 * end in a kill, not in a child frozen until memory frees up. */
	if ((err = write_at(leaf->path, "memory.oom_control", "0"))) {
		log_err("memory cgroups: write 0 to %s/memory.oom_control: %s", leaf->path,
			strerror(-err));
		return err;
	}
	return 0;
}

int cgroup_leaf_create(const struct cgroup_layout *l, const char *name, uint64_t limit_bytes,
		       struct cgroup_leaf *leaf)
{
	int err = cgroup_leaf_path(l, name, leaf);

	if (err)
		return err;
	leaf->limit_bytes = limit_bytes;
	if (mkdir(leaf->path, 0755) < 0) {
		err = log_errno("memory cgroups: mkdir %s", leaf->path);
		if (err == -EEXIST)
			log_err("memory cgroups: %s is left from an earlier run; remove it "
				"(rmdir) once no process is in it",
				leaf->path);
		leaf->path[0] = '\0';
		return err;
	}
	err = leaf_set_limit(leaf);
	if (err) {
		rmdir(leaf->path);
		leaf->path[0] = '\0';
	}
	return err;
}

int cgroup_leaf_join(const char *path)
{
	char pid[24];
	int err;

	snprintf(pid, sizeof(pid), "%d", (int)getpid());
	err = write_at(path, "cgroup.procs", pid);
	if (err)
		log_err("memory cgroups: move process %s into %s: %s", pid, path, strerror(-err));
	return err;
}

int cgroup_leaf_oom_kills(const struct cgroup_leaf *leaf, uint64_t *n)
{
	const char *file = leaf->version == CGROUP_V2 ? "memory.events" : "memory.oom_control";
	char *s = NULL, *p;
	int err;

	*n = 0;
	err = read_at(leaf->path, file, &s);
	if (err)
		return err;
	for (p = s; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL) {
		unsigned long long v;

		if (sscanf(p, "oom_kill %llu", &v) == 1) {
			*n = v;
			free(s);
			return 0;
		}
	}
	free(s);
	return -ENOENT; /* kernels before 4.13 do not count OOM kills */
}

int cgroup_leaf_remove(const struct cgroup_leaf *leaf)
{
	int tries = 0;

	if (!leaf->path[0])
		return 0;
	/* A reaped child can still be leaving the cgroup for a moment. */
	while (rmdir(leaf->path) < 0) {
		if (errno == ENOENT)
			return 0;
		if (errno != EBUSY || ++tries == 200)
			return log_errno("memory cgroups: rmdir %s", leaf->path);
		usleep(5000);
	}
	return 0;
}
