/* Kept children: children of a `forkd fork --keep`, which outlive the
 * command that started them (a detached supervisor is their parent), and
 * the registry through which other commands (ls, kill, ping, cleanup)
 * find them.
 *
 * Registry: one file per child, $FORKD_HOME/kept/<id>.json, written
 * through a temporary name and renamed into place:
 *   {"id": "k-0123abcd", "tag": "<snapshot tag>", "index": 0,
 *    "pid": 1234, "start_time": 5678, "run_dir": "/abs/path/child-0",
 *    "supervisor_pid": 1200, "created_at": "2024-01-01T00:00:00Z"}
 * start_time is field 22 of /proc/<pid>/stat: an entry whose pid is gone,
 * or now names a process with another start time, is stale. Liveness is
 * the caller's to judge (fork/child.h: child_alive()).
 *
 * Ids come from command lines: kept_id_valid() is the only gate to a
 * path, and every path is rebuilt from a validated id. */
#ifndef FORKD_FORK_KEPT_H
#define FORKD_FORK_KEPT_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/log.h"
#include "fork/child.h"
#include "snapshot/snapshot.h"

#define KEPT_ID_PREFIX "k-"
#define KEPT_ID_LEN    10 /* "k-" and 8 lowercase hex digits */

/* Exactly "k-" and 8 characters of [0-9a-f]. */
bool kept_id_valid(const char *id);
/* A fresh random id. */
int kept_id_new(char id[KEPT_ID_LEN + 1]) __must_check;

/* $FORKD_HOME/kept (snapshot_home()); one error line on failure. */
int kept_registry_dir(char *buf, size_t size) __must_check;
/* <registry>/<id>.json for a valid id; -EINVAL otherwise. */
int kept_path(const char *id, char *buf, size_t size) __must_check;

/* Write r's entry (creating the registry directory); r->created_at is
 * filled in when empty. 0 or -errno, one error line. */
int kept_write(struct child_rec *r) __must_check;
/* Read and check one entry. -ENOENT when there is none, -EINVAL (one
 * error line) when it is not a valid entry for that id. */
int kept_read(const char *id, struct child_rec *r) __must_check;
/* The same checks on an entry's text (path names it in messages); an entry
 * is at most KEPT_ENTRY_MAX bytes. */
#define KEPT_ENTRY_MAX (16 * 1024)
int kept_parse(const char *path, const char *text, size_t len, const char *id,
	       struct child_rec *r) __must_check;
/* Remove id's entry; 0 also when there was none. */
int kept_remove(const char *id) __must_check;

/* Every valid entry, sorted by creation time, fork and index; *out is malloc'd
 * (NULL and 0 when the registry is empty or missing). Files that are not
 * entries are skipped. 0 or -errno. */
int kept_list(struct child_rec **out, size_t *n) __must_check;

#endif
