/* A batch of children forked from one snapshot, from first to last. One
 * module for every caller: `forkd fork` (and its --keep supervisor) and
 * the daemon's spawner.
 *
 *   batch_start()    for each child: its leaf memory cgroup, its network
 *                    namespace, the fork (spawner.h); then each child's
 *                    report (running, or the error that stopped it) within
 *                    a deadline, a child that dies before it reports found
 *                    by waitpid(); then, when the snapshot's guest runs the
 *                    agent, after_fork for every running child at once (one
 *                    whose after_fork fails is stopped).
 *   batch_reap()     children that have ended: wait status, OOM kill (from
 *                    the leaf's counter), leaf cgroup removed.
 *   batch_stop()     SIGTERM to every running child, SIGKILL after a grace.
 *   batch_release()  what a child holds besides its process: leaf, the
 *                    namespace made for it, the vsock socket its jail left.
 *
 * The daemon's children are detached (they outlive the spawner, which
 * only starts them): it uses batch_start() and hands the rest to the
 * daemon, which releases a sandbox when it is deleted. Nothing here
 * prints: failures are in each child's status and error, and in the log
 * (common/log.h). */
#ifndef FORKD_FORK_BATCH_H
#define FORKD_FORK_BATCH_H

#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "agent/agent.h"
#include "isolate/cgroup.h"
#include "snapshot/snapshot_image.h"

/* Where a child that does not run stopped. */
enum batch_stage {
	BATCH_OK = 0,
	BATCH_PREPARE,	  /* its cgroup or namespace */
	BATCH_FORK,	  /* fork(2) or the snapshot refused it */
	BATCH_START,	  /* it reported a failure, died or never reported */
	BATCH_AFTER_FORK, /* the guest agent did not take after_fork */
	BATCH_SKIPPED,	  /* not tried: an earlier child failed (stop_at_failure) */
};

struct batch_child {
	/* In. */
	uint32_t index;	      /* the child's index (vmctl, after_fork) */
	char dir[PATH_MAX];   /* its run directory, which must exist; "" for
			       * <workdir>/child-<index>/, made by the fork */
	char cgroup_name[64]; /* its leaf's name, with a memory limit */
	bool netns;	      /* run in forkd-child-<netns_index>, prepared here */
	uint32_t netns_index;
	/* Out. */
	pid_t pid;	     /* 0: not started, or reaped */
	uint64_t start_time; /* its /proc/<pid>/stat field 22 */
	int status;	     /* 0: running; else -errno */
	enum batch_stage failed_at;
	char error[AGENT_ERR_LEN + 64]; /* why not, one sentence */
	uint64_t restore_ns;		/* fork to vCPUs running */
	uint64_t after_fork_ns;		/* first connect to the agent's answer */
	bool running;			/* started and not known to have ended */
	bool netns_created;		/* the namespace was made for this child */
	struct cgroup_leaf leaf;	/* path "" when none (or removed) */
	/* Once reaped (batch_reap(), or a death before its report). */
	bool reaped;
	int wait_status;
	bool oom_killed;
	uint64_t oom_kills;
};

struct batch {
	/* In. */
	const struct snapshot_image *img;
	struct batch_child *c;
	size_t n;
	const char *workdir;	   /* for children without a dir */
	bool live_fork, hugepages; /* spawner.h: struct child_opts */
	bool jail;
	bool detach;		   /* children outlive the caller (the daemon's) */
	bool stop_at_failure;	   /* fork no more children after one fails */
	uint64_t memory_limit_mib; /* 0: no cgroups */
	const struct cgroup_layout *cg;
	const char *log_name; /* each child's stdout and stderr go to
			       * <dir>/<log_name> (NULL: the caller's) */
	const int *close_fds; /* the caller's fds no child may hold */
	size_t nr_close_fds;
	int report_timeout_ms;		    /* for all reports; <= 0: 60 s */
	bool report_idle;		    /* ...counted from the last report instead */
	int agent_timeout_ms;		    /* after_fork, all children together */
	volatile sig_atomic_t *interrupted; /* stop waiting once set (may be NULL) */
	/* Out. */
	uint64_t t_start, t_last_report; /* now_ns() */
	uint64_t after_fork_wall_ns;	 /* 0: no after_fork */
};

/* Start every child (see above). Returns how many run. */
size_t batch_start(struct batch *b);

/* Reap every child that has ended (waitpid(-1): the caller has no other
 * children to wait for); ended() (may be NULL) sees each. Returns how
 * many still run. */
size_t batch_reap(struct batch *b, void (*ended)(struct batch_child *c, void *arg), void *arg);

/* Stop every child still running: SIGTERM (its VMM stops the VM), SIGKILL
 * after grace_ms; every one is reaped. Returns how many were running. */
size_t batch_stop(struct batch *b, int grace_ms, void (*ended)(struct batch_child *c, void *arg),
		  void *arg);

/* Give back the leaf, the namespace made for c and its vsock socket.
 * Call once c's process is gone. Problems are logged; 0 or -errno. */
int batch_release(const struct batch *b, struct batch_child *c);

/* <dir>/<name> of c into buf (false when it does not fit). */
bool batch_child_path(const struct batch *b, const struct batch_child *c, const char *name,
		      char *buf, size_t size);

#endif
