/* Branching a running child: a new snapshot of the child as it is now,
 * which children can be forked from like any other (and branched again).
 *
 * The caller (root: `forkd snapshot --from-sandbox`, the daemon) creates
 * the files under a temporary name in the snapshots directory, hands them
 * to the child's VMM over its control socket (fork/ctl.h), which writes
 * them from inside its jail, then syncs them, writes snapshot.json and
 * renames the directory into place: a snapshot appears whole or not at
 * all, and a failure (the child gone, the disk full) leaves nothing and
 * the child running. */
#ifndef FORKD_FORK_BRANCH_H
#define FORKD_FORK_BRANCH_H

#include <stddef.h>
#include <stdint.h>

#include "common/log.h"
#include "snapshot/snapshot.h"

enum branch_mode { BRANCH_FULL, BRANCH_DIFF, BRANCH_LIVE };

/* "full", "diff", "live"; -EINVAL for anything else. */
int branch_mode_parse(const char *s, enum branch_mode *m) __must_check;
const char *branch_mode_name(enum branch_mode m);

struct branch_result {
	char tag[SNAPSHOT_TAG_MAX + 1];
	uint64_t pause_us; /* how long the child's vCPUs were stopped */
	uint64_t bytes;	   /* memory written (a diff: its pages) */
	uint64_t pages;	   /* diff: pages stored */
	uint64_t total_ns; /* request to snapshot in place */
};

/* The new snapshot's tag: `tag` when given (checked), else
 * "<source>-<8 hex digits>". 0 or -EINVAL (logged). */
int branch_pick_tag(const char *source, const char *tag, char *out, size_t size) __must_check;

/* Branch the child whose run directory is run_dir (holding ctl.sock) and
 * which runs from snapshot source_tag, into snapshot `tag` (NULL or "":
 * "<source>-<8 hex digits>"). One error line on failure (log_take_error()
 * hands it on): -EEXIST the tag exists, -ENOENT no such snapshot or no
 * control socket, -ECONNREFUSED the child is gone, -ENOSPC & co as the
 * VMM met them writing, else -errno. */
int branch_take(const char *run_dir, const char *source_tag, const char *tag, enum branch_mode mode,
		struct branch_result *res) __must_check;

#endif
