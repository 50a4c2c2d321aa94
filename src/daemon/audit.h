/* The daemon's audit log: one JSON object per line per HTTP request
 * (time, remote address, method, path, status, duration, authentication
 * outcome, the sandbox or snapshot it named). Tokens and bodies are never
 * written. Lines from concurrent requests never interleave. */
#ifndef FORKD_DAEMON_AUDIT_H
#define FORKD_DAEMON_AUDIT_H

#include <pthread.h>
#include <stddef.h>

#include "common/log.h"

/* A log file over this is renamed to <path>.1 (replacing the one before)
 * and a new one begun: at most twice this on disk. */
#define AUDIT_MAX_BYTES (64ULL << 20)

struct audit {
	int fd; /* O_APPEND; -1: off */
	pthread_mutex_t lock;
	char *path;		      /* NULL for stderr: never rotated */
	unsigned long long max_bytes; /* AUDIT_MAX_BYTES ($FORKD_TEST_AUDIT_MAX_BYTES) */
};

struct audit_entry {
	const char *remote, *method, *path;
	int status;
	double duration_ms;
	const char *auth;	   /* "open", "ok", "missing", "invalid" */
	const char *sandbox, *tag; /* NULL when the request named none */
	size_t bytes_in, bytes_out;
	const char *error; /* the error message sent, if any */
};

/* path "-": stderr. */
int audit_open(struct audit *a, const char *path) __must_check;
void audit_write(struct audit *a, const struct audit_entry *e);
void audit_close(struct audit *a);

#endif
