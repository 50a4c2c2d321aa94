/* The daemon's spawner: a single-threaded process forked by `forkd serve`
 * at start-up, before the daemon has any thread, that does every fork the
 * daemon needs.
 *
 * Why a forked process and not fork+exec of a hidden `forkd` mode: the
 * spawner needs nothing but the code already linked in (snapshot loading
 * and spawner_fork_child()), a fork before any thread exists copies no
 * locked mutex, and it inherits the daemon's configuration as is. A fork
 * from the multi-threaded daemon later would not be safe; that is why it
 * happens first.
 *
 * Protocol: JSON lines over a SOCK_STREAM socketpair, one request and one
 * reply at a time (the daemon serialises callers), each carrying "seq":
 *   {"op":"spawn","tag":T,"live_fork":b,"hugepages":b,"timeout_ms":N,
 *    "children":[{"index":i,"dir":D},...]}
 *     -> {"ok":true,"children":[{"index":i,"pid":p,"start_time":s,
 *         "status":0|-errno,"restore_ns":n,"error":"..."}]}
 *        or {"ok":false,"error":"...","errno":e} when the snapshot cannot
 *        be loaded (nothing was started).
 *     The snapshot is loaded once per request. Each child runs detached
 *     (own session, no parent-death signal) with its files in D, its stdout
 *     and stderr in D/vmm.log, and D/pid written right after the fork.
 *   {"op":"job","argv":[...],"dir":D}
 *     -> {"ok":true,"pid":p,"start_time":s}: runs argv (execv, so argv[0]
 *        is a path) with output in D/job.log; when it ends the spawner
 *        writes its exit status to D/exit ("<code>\n", 128+N for signal N).
 *        A job dies with the spawner (parent-death signal).
 * The spawner exits when the daemon's end of the socket closes; children
 * keep running. */
#ifndef FORKD_DAEMON_SPAWNSVC_H
#define FORKD_DAEMON_SPAWNSVC_H

#include <jansson.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/log.h"

struct spawnsvc {
	pid_t pid;
	int fd;
	pthread_mutex_t lock;
	char *buf;
	size_t len, cap;
	uint64_t seq;
};

/* Fork the spawner. Call while the process is single-threaded. */
int spawnsvc_start(struct spawnsvc *s) __must_check;

/* One request, one reply (*reply: new reference) within timeout_ms.
 * -EPIPE when the spawner is gone, -ETIMEDOUT, -EPROTO. Thread-safe. */
int spawnsvc_call(struct spawnsvc *s, json_t *req, json_t **reply, int timeout_ms) __must_check;

/* Close the socket and reap the spawner (children keep running). */
void spawnsvc_stop(struct spawnsvc *s);

#endif
