/* The VMM jail's view of the host: who the VMM is and what it can name.
 *
 * jail_fs_enter() (called by jail_enter(), isolate/jail.h), in this order:
 *   1. unshare: a mount namespace of its own and, unless the VMM already
 *      sits in a network namespace of its own (--per-child-netns), a new
 *      empty network namespace, so no abstract Unix socket of the host can
 *      be named (abstract names belong to the network namespace);
 *   2. a new root: a small read-only tmpfs holding only the run directory,
 *      bind mounted (nosuid, nodev, noexec) at the same absolute path, so
 *      "<dir>/vsock.sock_P" still resolves; pivot_root into it and detach
 *      the old root, so no other path of the host (and so no other Unix
 *      socket file) exists for the VMM;
 *   3. (jail_fs_become) the unprivileged ids: setgroups(0), setresgid,
 *      setresuid to the jail's uid/gid, all three of each; the parent-death
 *      signal, which the kernel clears on a uid change, is set again.
 * Step 3 comes after the capabilities' bounding set is dropped (that needs
 * CAP_SETPCAP, which the uid change takes away) and before the filter.
 *
 * forkd not running as root: the process is unprivileged already and step 3
 * is skipped; steps 1-2 run in a new user namespace that maps only its own
 * uid and gid (a failure to make one is an error, never a quiet skip).
 *
 * The ids: one uid and one gid for every jailed VMM, JAIL_FS_UID_DEFAULT or
 * $FORKD_JAIL_UID (gid: $FORKD_JAIL_GID, else the uid's number). A host
 * program that wants the guest to connect to it ("<dir>/vsock.sock_P")
 * makes that socket writable by the jail's gid: the run directory forkd
 * makes is root:<jail gid> 02750 (jail_fs_share_dir), so a socket bound in
 * it gets the group by itself and needs only g+w. */
#ifndef FORKD_ISOLATE_JAIL_FS_H
#define FORKD_ISOLATE_JAIL_FS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "common/log.h"

/* "fork" in ASCII: far above the uids and subordinate ranges hosts give
 * out, so the jailed VMM owns nothing and can signal or trace no one. */
#define JAIL_FS_UID_DEFAULT 0x666f726bu
#define JAIL_FS_UID_ENV	    "FORKD_JAIL_UID"
#define JAIL_FS_GID_ENV	    "FORKD_JAIL_GID"

struct jail_fs_ids {
	uid_t uid;
	gid_t gid;
};

/* The jail's ids: the default or the environment's. -EINVAL (said) for a
 * value that is not a number in 1..2^32-2. */
int jail_fs_ids(struct jail_fs_ids *ids) __must_check;

/* Give a run directory forkd made to the jail's group: root:<gid> 02750,
 * so the VMM may traverse it and sockets made in it later carry the group.
 * Only as root (a no-op otherwise: the VMM keeps forkd's own uid). */
int jail_fs_share_dir(const char *dir, const struct jail_fs_ids *ids) __must_check;

/* A socket the jailed VMM itself bound in dir (as root, before the jail)
 * and must reconnect to afterwards (forkd snapshot's agent poller): it
 * becomes root:<jail gid> 0660. must_reach: dir has to let the jail's ids
 * through, else -EACCES naming the fix. Only as root (a no-op otherwise). */
int jail_fs_share_socket(const char *dir, const char *sock, bool must_reach) __must_check;

/* Steps 1-2. run_dir: the one directory the VMM keeps (must exist).
 * new_netns: also leave the current network namespace for an empty one.
 * Single-threaded callers only. On failure the process is in an unknown
 * state: exit. */
int jail_fs_enter(const char *run_dir, bool new_netns) __must_check;

/* Step 3 (as root; nothing otherwise). */
int jail_fs_become(const struct jail_fs_ids *ids) __must_check;

/* For forkd doctor: fork a process that enters steps 1-3 on a scratch
 * directory and checks what it can still see. 0 and a line saying what is
 * enforced in msg, or -errno and the reason. */
int jail_fs_probe(char *msg, size_t size);

#endif
