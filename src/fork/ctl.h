/* The control channel of a running child: <child dir>/ctl.sock, a Unix
 * stream socket (mode 0600: root, the child's owner, only) served by the
 * VM's event loop inside the child's VMM, in its jail.
 *
 * One request per line, each sent in one sendmsg(2); one JSON reply line
 * per request (two for a live branch, see below):
 *   PING                      {"ok":true}
 *   STATS                     {"ok":true,"paused":B,"mem_bytes":N,
 *                              "changed_pages":N}  (pages written since
 *                              the snapshot: a branch of mode diff's size)
 *   PAUSE / RESUME            {"ok":true,"paused":B}
 *   STOP                      {"ok":true}; the VMM then exits (status 130)
 *   BRANCH full|diff|live     with file descriptors (SCM_RIGHTS), which the
 *                             caller created empty in the new snapshot's
 *                             directory, sized where said:
 *       full, live: vmstate, memory.bin (sized to RAM)
 *       diff:       vmstate, memory.diff (sized to RAM), memory.map
 *     The VM is paused (unless it already is), its vCPU, device and disk
 *     overlay state written into vmstate, then:
 *       full  all of RAM written (holes for zero pages), then resumed;
 *       diff  only the pages changed since the snapshot (snapshot/memdiff.h),
 *             then resumed;
 *       live  the VMM forks: the fork's copy-on-write view of RAM is of the
 *             paused instant; the VM resumes at once and the fork writes
 *             memory.bin and exits. (Shared RAM, --live-fork children, is
 *             not frozen by a fork: written while paused, as full.)
 *     Replies carry "stage": "resumed" (live only: "pause_us") and "done"
 *     ("pause_us" but for live, "bytes", "pages"); a live branch's two
 *     lines may come in either order. On failure {"ok":false,
 *     "error":"..."} and the source VM runs on; the caller removes what
 *     was written. The caller syncs the files and writes snapshot.json
 *     (fork/branch.h).
 * docs/SECURITY.md lists what this needs in the jail. */
#ifndef FORKD_FORK_CTL_H
#define FORKD_FORK_CTL_H

#include <limits.h>
#include <stdbool.h>

#include "common/log.h"
#include "vmm/vm.h"

#define CTL_SOCKET    "ctl.sock"
#define CTL_LINE_MAX  256
#define CTL_REPLY_MAX 512

struct ctl {
	struct vm *vm;
	int listen_fd;
	int pagemap_fd; /* /proc/self/pagemap: which pages the child wrote */
	bool paused;	/* by PAUSE */
	unsigned nr_conns;
};

/* Create <dir>/ctl.sock and serve it on vm's event loop (which starts with
 * the VM). Call before the jail and before any thread exists (it sets the
 * umask for the bind and ignores SIGCHLD, so a live branch's writer needs
 * no reaping). 0 or -errno, logged. */
int ctl_open(struct ctl *c, struct vm *vm, const char *dir) __must_check;

#endif
