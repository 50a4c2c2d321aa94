/* A child: one VMM process forked from a snapshot, by `forkd fork` (its
 * --keep supervisor) or by the daemon's spawner. Whoever tracks one knows
 * it by pid AND process start time (field 22 of /proc/<pid>/stat, clock
 * ticks after boot), so a recycled pid is never taken for it, and signals
 * it only through a pidfd checked against that start time.
 *
 * Ids: a daemon sandbox is "sb-" and 20 characters of [a-z2-7] (100
 * random bits); child_id_valid() is the only gate from a request or a
 * command line to a path or a query. */
#ifndef FORKD_FORK_CHILD_H
#define FORKD_FORK_CHILD_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <limits.h>
#include <sys/types.h>

#include "common/log.h"
#include "snapshot/snapshot.h"

#define CHILD_ID_LEN 23 /* "sb-" + 20 base32 characters */

/* A live child as a registry keeps it: the daemon's SQLite store
 * (daemon/store.h, id "sb-...") or the kept children's files of `forkd
 * fork --keep` (fork/kept.h, id "k-XXXXXXXX"). One record for both; each
 * registry fills what applies to it. */
struct child_rec {
	char id[CHILD_ID_LEN + 1];
	char tag[SNAPSHOT_TAG_MAX + 1];
	uint32_t index;	     /* the child's index in its batch */
	int64_t pid;	     /* its VMM process; 0 while the spawner has not answered */
	uint64_t start_time; /* /proc/<pid>/stat field 22: pid AND this name it */
	char run_dir[PATH_MAX];
	int64_t created_ms; /* Unix time in milliseconds */
	/* The daemon's sandboxes. */
	bool live_fork, hugepages;
	int64_t netns_index;	   /* forkd-child-<netns_index>, or -1: host network */
	bool netns_created;	   /* the spawner made the namespace for this sandbox */
	bool guest_net;		   /* the snapshot has a network device (guest 10.42.0.2) */
	uint64_t memory_limit_mib; /* 0: no limit */
	char cgroup[PATH_MAX];	   /* its leaf memory cgroup, "" for none */
	/* Kept children. */
	int64_t supervisor_pid; /* the detached `forkd fork --keep` that reaps it */
};

/* created_ms as UTC ISO 8601 to the second ("2026-01-31T12:00:00Z"). */
void child_time_iso(int64_t ms, char buf[32]);
/* The reverse, for that exact form; false for anything else. */
bool child_time_parse(const char *iso, int64_t *ms);

/* A fresh id: "sb-" and 20 characters of [a-z2-7] (100 random bits). */
int child_id_new(char id[CHILD_ID_LEN + 1]) __must_check;
/* Exactly that shape: nothing else ever reaches a path or a query. */
bool child_id_valid(const char *id);

/* Field 22 of /proc/<pid>/stat and the state letter (field 3).
 * -ENOENT when there is no such process. */
int child_start_time(pid_t pid, uint64_t *start_time, char *state) __must_check;

/* The process exists, is not a zombie, and started at start_time. */
bool child_alive(pid_t pid, uint64_t start_time);

/* Stop the process if it is still the one that started at start_time:
 * SIGTERM (its VMM stops the VM and exits), SIGKILL after grace_ms.
 * Signals go through a pidfd taken before the start time is checked, so
 * they cannot reach a process that reused the pid. 0 when it is gone
 * (or was already), -ETIMEDOUT if even SIGKILL did not end it in time. */
int child_stop(pid_t pid, uint64_t start_time, int grace_ms) __must_check;
#endif
