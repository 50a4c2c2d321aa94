/* Starting children from a snapshot.
 *
 * The spawner is single-threaded: it loads and validates the snapshot once
 * (vmstate parsed, memory.bin opened and size-checked), then forks one
 * process per child. Each child builds its own KVM VM, maps memory.bin
 * MAP_PRIVATE (or copies it into a memfd for live fork), restores the
 * saved state, receives its index and fresh entropy, and runs. */
#ifndef FORKD_FORK_SPAWNER_H
#define FORKD_FORK_SPAWNER_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "snapshot/snapshot_image.h"

struct child_opts {
	uint32_t index;
	bool live_fork;	       /* RAM in a memfd (MAP_SHARED), copied from memory.bin */
	bool hugepages;	       /* with live_fork: MFD_HUGETLB */
	const char *workdir;   /* child files go to <workdir>/child-<index>/ */
	const char *child_dir; /* if set: child files go here instead (must exist) */
	bool detach;	       /* outlive the spawner: own session, no parent-death signal */
	int report_fd;	       /* pipe: one struct child_report when running */
	int close_fd;	       /* the pipe's read end, closed in the child (-1: none) */
	const int *close_fds;  /* more of the caller's fds to close in the child, such
				* as a control socket only the caller may hold (a child
				* holding it keeps it open past the caller's death);
				* negative entries are skipped */
	size_t nr_close_fds;
	uint64_t console_max_bytes;
	/* Isolation; zero means off, so callers that predate it are unchanged. */
	const char *cgroup_leaf; /* join this leaf cgroup (isolate/cgroup.h) before the VM
				  * exists, so all its memory is charged there (NULL: stay) */
	bool jail;		 /* enter the VMM jail (isolate/jail.h) before the vCPUs run.
				  * A jailed child cannot unlink: it leaves its vsock socket
				  * (<child dir>/vsock.sock) for the caller to remove. */
	bool netns;		 /* run in network namespace netns_index (isolate/netns.h),
				  * which the caller made complete with netns_prepare(); the
				  * child enters it after its cgroup, before the VM exists,
				  * and a snapshot's virtio-net attaches to NETNS_TAP_NAME
				  * there. A snapshot with a network device needs this. */
	uint32_t netns_index;
};

/* Sent once by each child, in one write (atomic on a pipe). */
struct child_report {
	uint32_t index;
	int32_t status;	     /* 0: vCPUs running; else the failure's -errno */
	uint64_t restore_ns; /* fork to vCPUs running */
	pid_t pid;
};

/* Fork one child. Returns its pid (>0) in the spawner, or -errno (-EINVAL,
 * reported, for a snapshot with a network device and no o->netns). The
 * child never returns: it exits with its VM's exit status. */
pid_t spawner_fork_child(const struct snapshot_image *img, const struct child_opts *o);

#endif
