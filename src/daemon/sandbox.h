/* Sandboxes as processes and directories: ids, liveness, stopping, run
 * directories. A sandbox is one child VMM process; the daemon knows it by
 * pid AND process start time, so a recycled pid is never taken for it.
 *
 * Run directory <run root>/<id>/ (mode 0700): vsock.sock (the guest's
 * vsock, host end), console.log, vmm.log (the VMM's own messages), disk
 * overlays, and `pid` holding "<pid> <starttime>\n" (starttime: field 22
 * of /proc/<pid>/stat) for tools that find children without the daemon
 * (`forkd cleanup`). */
#ifndef FORKD_DAEMON_SANDBOX_H
#define FORKD_DAEMON_SANDBOX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/log.h"
#include "daemon/store.h"

/* A fresh id: "sb-" and 20 characters of [a-z2-7] (100 random bits). */
int sandbox_id_new(char id[SANDBOX_ID_LEN + 1]) __must_check;
/* Exactly that shape: nothing else ever reaches a path or a query. */
bool sandbox_id_valid(const char *id);

/* Field 22 of /proc/<pid>/stat and the state letter (field 3).
 * -ENOENT when there is no such process. */
int proc_start_time(pid_t pid, uint64_t *start_time, char *state) __must_check;

/* The process exists, is not a zombie, and started at start_time. */
bool sandbox_alive(pid_t pid, uint64_t start_time);

/* Stop the process if it is still the one that started at start_time:
 * SIGTERM (its VMM stops the VM and exits), SIGKILL after grace_ms.
 * Signals go through a pidfd taken before the start time is checked, so
 * they cannot reach a process that reused the pid. 0 when it is gone
 * (or was already), -ETIMEDOUT if even SIGKILL did not end it in time. */
int sandbox_stop(pid_t pid, uint64_t start_time, int grace_ms) __must_check;

/* <root>/<id>; the id must be valid. */
int sandbox_dir(const char *root, const char *id, char *buf, size_t size) __must_check;
/* rm -r <root>/<id>/ (common/file.h: no link followed, never another file
 * system; the path is rebuilt from the validated id). */
int sandbox_remove_dir(const char *root, const char *id) __must_check;
/* Write <dir>/pid as "<pid> <starttime>\n" (through a temporary name). */
int sandbox_write_pidfile(const char *dir, pid_t pid, uint64_t start_time) __must_check;

/* Network namespace indices for n new sandboxes (per_child_netns), lowest
 * first, never one that a sandbox in used[] holds (netns_index >= 0) and
 * never one whose namespace a live process is in (a `forkd fork
 * --per-child-netns` on the same host, or a leftover child), so no two
 * sandboxes ever share a namespace. -ENOSPC when the range runs out. */
int sandbox_netns_alloc(const struct sandbox_rec *used, size_t n_used, uint32_t *out,
			size_t n) __must_check;

/* For each index[i]: a live process inside forkd-child-<index[i]>
 * (user[i] = its pid) or none (0); one pass over /proc. 0 or -errno. */
int sandbox_netns_users(const uint32_t *index, size_t n, pid_t *user) __must_check;

/* Give back what a sandbox holds besides its process and run directory:
 * its leaf memory cgroup, and its network namespace if the spawner made
 * it for this sandbox (one that existed before is left as it was). Call
 * once its process is gone. Problems are logged; 0 or the first -errno. */
int sandbox_release(const struct sandbox_rec *r);

#endif
