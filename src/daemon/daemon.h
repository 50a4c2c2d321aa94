/* forkd serve: the controller daemon (docs/API.md, docs/openapi.yaml).
 *
 * Layers: HTTP (http.c, libmicrohttpd, one thread per connection) parses a
 * request into struct api_req; a handler in api_*.c acts on the engine
 * (store.c: SQLite state; sandbox.c: run directories and processes;
 * spawnsvc.c: the spawner process; the guest agent client is src/agent/) and
 * answers with JSON (jansson) in struct api_resp. Every request leaves one
 * line in the audit log (audit.c) and counts in /metrics (metrics.c).
 *
 * Processes: the daemon is multi-threaded, so it never forks. Before any
 * thread exists it forks one single-threaded spawner (spawnsvc.c) and asks
 * it, over a socketpair, to fork children from snapshots and to start
 * snapshot jobs. Children are detached: they outlive the daemon and are
 * re-adopted when it starts again (pid + process start time in SQLite). */
#ifndef FORKD_DAEMON_DAEMON_H
#define FORKD_DAEMON_DAEMON_H

#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "daemon/audit.h"
#include "daemon/metrics.h"
#include "daemon/spawnsvc.h"
#include "daemon/store.h"

#ifndef FORKD_VERSION
#error "FORKD_VERSION comes from the VERSION file (Makefile)"
#endif

#define DAEMON_DEFAULT_BIND	  "127.0.0.1:8889"
#define DAEMON_TOKEN_NAME	  "token" /* in the state directory, made on first start */
#define DAEMON_MAX_CHILDREN	  1000
#define DAEMON_MAX_JSON		  (8u << 20)  /* request bodies other than files */
#define DAEMON_MAX_FILE		  (32u << 20) /* PUT .../files bodies */
#define DAEMON_AGENT_TIMEOUT_SECS 120	      /* the guest kernel is emulated on KVM-PVM */

struct daemon_config {
	const char *bind;	/* HOST:PORT */
	const char *token_file; /* NULL: <state_dir>/token, made on first start */
	bool no_auth;		/* no authentication at all (loopback only) */
	const char *state_dir;	/* SQLite database, snapshot job logs */
	const char *run_root;	/* sandbox run directories: <run_root>/<id>/ */
	const char *audit_log;	/* "-" for stderr */
	const char *guest_dir;	/* test guests for POST /v1/snapshots kind test-guest */
	unsigned spawn_timeout_secs;
	unsigned agent_timeout_secs; /* after_fork per spawn (0: DAEMON_AGENT_TIMEOUT_SECS) */
	bool no_jail;		     /* children without the VMM jail (debugging only) */
	const char *allow_host;	     /* a Host besides loopback names (a reverse proxy's) */
	unsigned idle_secs;	     /* close a connection idle this long (0: default) */
	unsigned max_client_conns;   /* connections per client address (0: default) */
	const char *tls_cert;	     /* PEM certificate (chain) file: serve https */
	const char *tls_key;	     /* its PEM private key, mode 0600 or stricter */
};

struct daemon {
	struct daemon_config cfg;
	char state_dir[PATH_MAX];
	char run_root[PATH_MAX];
	char guest_dir[PATH_MAX];
	char jobs_dir[PATH_MAX];
	char exe[PATH_MAX]; /* this forkd binary, for snapshot jobs */
	char token[4097];
	char token_path[PATH_MAX];
	size_t token_len;		  /* 0: authentication off */
	char *tls_cert_pem, *tls_key_pem; /* NULL: plain http */
	struct store store;
	struct spawnsvc spawner;
	struct audit audit;
	struct metrics metrics;
	pthread_mutex_t lock; /* spawning and killing: one change at a time */
	uint64_t started_ns;
	unsigned inflight; /* requests between headers and completion (atomic) */
};

/* Run the daemon until SIGTERM/SIGINT. Must be called before the process
 * has any thread (it forks the spawner first). Returns an exit status. */
int daemon_run(const struct daemon_config *cfg);

#endif
