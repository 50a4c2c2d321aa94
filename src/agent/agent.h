/* Host-side client of the guest agent.
 *
 * The agent listens on guest vsock port 8888; a child's VMM exposes the
 * guest's vsock as the Unix socket <run dir>/vsock.sock. A client writes
 * "CONNECT 8888\n", reads "OK <port>\n", and from then on the stream is
 * the agent's: one JSON request object per line, one response line per
 * request, in order (docs/API.md, "Agent protocol").
 *
 * Every wait is bounded by the caller's timeout, and a response line is
 * bounded by AGENT_MAX_RESPONSE bytes. Functions report failures as
 * -errno plus one sentence in `err`; they never log, so the daemon can
 * hand the sentence to its HTTP client and the CLI can print it. Safe to
 * use from many threads, one struct agent_conn per thread. */
#ifndef FORKD_AGENT_AGENT_H
#define FORKD_AGENT_AGENT_H

#include <jansson.h>
#include <stddef.h>

#include "common/log.h"

#define AGENT_VSOCK_PORT   8888
#define AGENT_MAX_RESPONSE (96u << 20) /* 64 MiB of data grows by escaping */
/* Values (counted by separators outside strings) an answer may hold before
 * it is refused unparsed: answers are small objects with long strings. */
#define AGENT_MAX_VALUES 4096
/* The same bound for answers that are long lists by design: a list_dir of
 * 10000 entries (docs/AGENT.md) counts 6 values per entry. */
#define AGENT_MAX_VALUES_LIST (1u << 16)
#define AGENT_ERR_LEN	      512

struct agent_conn {
	int fd;
	char *buf; /* bytes read past the last line */
	size_t len, cap;
	unsigned next_id;
};

/* Connect to vsock_path and complete the handshake for the agent's port.
 *   -ENOENT        no socket file (no vsock device, or the VMM is gone)
 *   -ECONNREFUSED  nobody listens on it (the VMM exited)
 *   -ECONNRESET    the guest refused the port (no agent listening yet)
 *   -ETIMEDOUT     no "OK" within timeout_ms
 * On success c owns a socket; release it with agent_close(). */
int agent_connect(struct agent_conn *c, const char *vsock_path, int timeout_ms, char *err,
		  size_t errlen) __must_check;

/* Send `req` (a JSON object; its "id" is set here) and read its response
 * within timeout_ms. *resp is a new reference to the response object,
 * whose "ok" may be false: that is the agent's answer, not an error here.
 *   -ETIMEDOUT, -ECONNRESET (closed mid-way), -EMSGSIZE (response too long),
 *   -EPROTO (not a JSON object, or the id does not match). */
int agent_request(struct agent_conn *c, json_t *req, json_t **resp, int timeout_ms, char *err,
		  size_t errlen) __must_check;

void agent_close(struct agent_conn *c);

/* agent_request() refusing, unparsed, an answer over max_values JSON values
 * (AGENT_MAX_VALUES for agent_request()). */
int agent_request_values(struct agent_conn *c, json_t *req, json_t **resp, int timeout_ms,
			 size_t max_values, char *err, size_t errlen) __must_check;

/* agent_connect() + agent_request() + agent_close(). */
int agent_call(const char *vsock_path, json_t *req, json_t **resp, int timeout_ms, char *err,
	       size_t errlen) __must_check;
/* agent_call() with agent_request_values()'s bound. */
int agent_call_values(const char *vsock_path, json_t *req, json_t **resp, int timeout_ms,
		      size_t max_values, char *err, size_t errlen) __must_check;

#endif
