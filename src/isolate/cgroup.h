/* Per-child memory cgroups.
 *
 * Each child that runs under a memory limit gets a leaf cgroup of its own
 * under a `forkd/` parent:
 *
 *   <hierarchy mount><forkd's own cgroup>/forkd/<leaf name>
 *
 * in whichever hierarchy holds the memory controller: cgroup v2 (the
 * leaf's memory.max, memory.swap.max 0, memory.oom.group 1) or cgroup v1
 * (memory.limit_in_bytes, memory.memsw.limit_in_bytes when swap is
 * accounted). The parent sits under forkd's own cgroup, so whatever limit
 * an operator put on forkd also bounds its children (both versions count
 * a child's charges in every ancestor).
 *
 * Life cycle (spawner side unless noted):
 *   cgroup_layout_detect() or cgroup_layout_at(root)   where
 *   cgroup_parent_prepare()                             forkd/ exists, v2: +memory
 *   cgroup_leaf_create()                                one per child, limit set
 *   cgroup_leaf_join()            in the child, first thing, before it maps
 *                                 guest memory, so its pages are charged there
 *   cgroup_leaf_oom_kills()       after the child ended: was it OOM-killed?
 *   cgroup_leaf_remove()          after the child was reaped
 *   cgroup_parent_remove()        on spawner exit (only if empty)
 *
 * Nothing here is global: a layout names its hierarchy explicitly, so tests
 * can point it at a cgroup2 tree they mounted themselves. */
#ifndef FORKD_ISOLATE_CGROUP_H
#define FORKD_ISOLATE_CGROUP_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/log.h"

enum cgroup_version { CGROUP_NONE = 0, CGROUP_V1 = 1, CGROUP_V2 = 2 };

#define CGROUP_PARENT_NAME "forkd"

struct cgroup_layout {
	enum cgroup_version version; /* the hierarchy that holds the memory controller */
	char mount[PATH_MAX];	     /* where that hierarchy is mounted */
	char base[PATH_MAX];	     /* the cgroup forkd/ goes into (a path under mount) */
	char parent[PATH_MAX];	     /* base + "/forkd" */
};

/* Decide the layout from the text of /proc/self/mountinfo, /proc/cgroups
 * and /proc/self/cgroup (pure: reads no files, for unit tests). On failure
 * (-ENOENT: no usable memory controller; -EINVAL: text it cannot make sense
 * of) writes the reason and the fix to why. */
int cgroup_layout_parse(const char *mountinfo, const char *proc_cgroups, const char *self_cgroup,
			struct cgroup_layout *l, char *why, size_t why_len) __must_check;

/* The same, from this process's /proc files; one error line on failure. */
int cgroup_layout_detect(struct cgroup_layout *l) __must_check;

/* Use the hierarchy mounted at root (v1 or v2, told apart by statfs):
 * forkd/ goes directly under root. One error line on failure. */
int cgroup_layout_at(const char *root, struct cgroup_layout *l) __must_check;

/* Make sure the memory controller can be used in leaves under forkd/:
 * v2: it must be listed in base's cgroup.controllers, and is enabled in
 * base's and forkd/'s cgroup.subtree_control; v1: memory.limit_in_bytes
 * exists. Creates forkd/ if missing. One error line (cause and fix). */
int cgroup_parent_prepare(const struct cgroup_layout *l) __must_check;

/* Remove forkd/ if no leaf is left in it (other spawners may share it). */
void cgroup_parent_remove(const struct cgroup_layout *l);

struct cgroup_leaf {
	enum cgroup_version version;
	char path[PATH_MAX];
	uint64_t limit_bytes;
};

/* Leaf names: letters, digits, '-', '_' and '.', 1-64 bytes, not starting
 * with '.'. */
bool cgroup_leaf_name_valid(const char *name);

/* Build the leaf's path (no file system access). */
int cgroup_leaf_path(const struct cgroup_layout *l, const char *name,
		     struct cgroup_leaf *leaf) __must_check;

/* mkdir the leaf and set its limit (limit_bytes 0: no limit, accounting
 * only). An existing leaf of that name is an error (-EEXIST), so two
 * spawners never share one. On failure nothing is left behind. */
int cgroup_leaf_create(const struct cgroup_layout *l, const char *name, uint64_t limit_bytes,
		       struct cgroup_leaf *leaf) __must_check;

/* Move the calling process into the leaf at path. Call before creating
 * threads and before touching the memory that should be charged there. */
int cgroup_leaf_join(const char *path) __must_check;

/* How many times the kernel's OOM killer killed a process in the leaf
 * (v2 memory.events oom_kill, v1 memory.oom_control oom_kill). */
int cgroup_leaf_oom_kills(const struct cgroup_leaf *leaf, uint64_t *n) __must_check;

/* rmdir the leaf; it must hold no process any more (reap the child
 * first). Missing already: 0. */
int cgroup_leaf_remove(const struct cgroup_leaf *leaf);

/* Leftovers for `forkd cleanup` (cgroup_scan.c): every leaf under a
 * "forkd" parent in root (NULL: every memory hierarchy mounted), children
 * before their parent. fn gets each one's path and why it is in use
 * (processes in it or below it, or changed less than min_age seconds ago;
 * 0: no age limit), or NULL when it could be removed. */
typedef void (*cgroup_scan_fn)(const char *path, const char *busy, void *arg);
void cgroup_scan_leftovers(const char *root, uint64_t min_age, cgroup_scan_fn fn, void *arg);

#endif
