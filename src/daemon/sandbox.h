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
#include "fork/child.h"

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
int sandbox_netns_alloc(const struct child_rec *used, size_t n_used, uint32_t *out,
			size_t n) __must_check;

/* Give back what a sandbox holds besides its process and run directory:
 * its leaf memory cgroup, and its network namespace if the spawner made
 * it for this sandbox (one that existed before is left as it was). Call
 * once its process is gone. Problems are logged; 0 or the first -errno. */
int sandbox_release(const struct child_rec *r);

#endif
