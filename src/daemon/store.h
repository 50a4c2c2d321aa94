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

int store_sandbox_put(struct store *s, const struct child_rec *r) __must_check;
int store_sandbox_get(struct store *s, const char *id, struct child_rec *r) __must_check;
/* All rows (tag NULL) or those of one snapshot, oldest first; *out is
 * malloc'd (NULL when none). */
int store_sandbox_list(struct store *s, const char *tag, struct child_rec **out,
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
