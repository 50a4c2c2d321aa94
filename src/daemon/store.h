/* The daemon's state in SQLite (<state dir>/forkd.db):
 *   snapshots      tags the daemon has seen or spawned from
 *   sandboxes      one row per child: pid + process start time (field 22
 *                  of /proc/<pid>/stat, which defeats pid reuse), run dir
 *   snapshot_jobs  `forkd snapshot` runs started by POST /v1/snapshots
 * One connection behind a mutex; every function may be called from any
 * thread. Returns 0 or -errno (-ENOENT: no such row, -EIO: SQLite error,
 * logged once with SQLite's message). */
#ifndef FORKD_DAEMON_STORE_H
#define FORKD_DAEMON_STORE_H

#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/log.h"
#include "fork/child.h"
#include "snapshot/snapshot.h"

struct sqlite3;

struct store {
	struct sqlite3 *db;
	pthread_mutex_t lock;
};

struct sandbox_rec {
	char id[CHILD_ID_LEN + 1];
	char tag[SNAPSHOT_TAG_MAX + 1];
	uint32_t index;	     /* child index within its spawn request */
	int64_t pid;	     /* 0 while the spawner has not answered */
	uint64_t start_time; /* clock ticks after boot, /proc/<pid>/stat field 22 */
	char run_dir[PATH_MAX];
	bool live_fork, hugepages;
	int64_t created_ms; /* Unix time in milliseconds */
	/* Isolation (schema 2): what the sandbox holds until it is deleted. */
	int64_t netns_index;	   /* forkd-child-<netns_index>, or -1: host network */
	bool netns_created;	   /* the spawner made the namespace for this sandbox */
	bool guest_net;		   /* the snapshot has a network device (guest 10.42.0.2) */
	uint64_t memory_limit_mib; /* 0: no limit */
	char cgroup[PATH_MAX];	   /* its leaf memory cgroup, "" for none */
};

struct job_rec {
	char tag[SNAPSHOT_TAG_MAX + 1];
	char kind[32];
	int64_t pid;
	uint64_t start_time;
	int64_t started_ms;
	char dir[PATH_MAX]; /* log, console, exit status */
};

int store_open(struct store *s, const char *path) __must_check;
void store_close(struct store *s);

int store_sandbox_put(struct store *s, const struct sandbox_rec *r) __must_check;
int store_sandbox_get(struct store *s, const char *id, struct sandbox_rec *r) __must_check;
/* All rows (tag NULL) or those of one snapshot, oldest first; *out is
 * malloc'd (NULL when none). */
int store_sandbox_list(struct store *s, const char *tag, struct sandbox_rec **out,
		       size_t *n) __must_check;
int store_sandbox_delete(struct store *s, const char *id) __must_check;

int store_snapshot_seen(struct store *s, const char *tag) __must_check;
int store_snapshot_forget(struct store *s, const char *tag) __must_check;
/* When the daemon first saw the tag (Unix ms), or -ENOENT. */
int store_snapshot_first_seen(struct store *s, const char *tag, int64_t *ms) __must_check;

int store_job_put(struct store *s, const struct job_rec *j) __must_check;
int store_job_get(struct store *s, const char *tag, struct job_rec *j) __must_check;
int store_job_list(struct store *s, struct job_rec **out, size_t *n) __must_check;
int store_job_delete(struct store *s, const char *tag) __must_check;

#endif
