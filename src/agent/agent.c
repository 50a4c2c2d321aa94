#include "agent/agent.h"

#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/util.h"

static int remaining_ms(uint64_t deadline)
{
	uint64_t now = now_ns();

	return now >= deadline ? 0 : (int)MIN((deadline - now) / 1000000 + 1, (uint64_t)INT32_MAX);
}

/* Wait until fd is ready for `events` or the deadline passes. */
static int wait_fd(int fd, short events, uint64_t deadline)
{
	struct pollfd p = {.fd = fd, .events = events};
	int r;

	for (;;) {
		int ms = remaining_ms(deadline);

		if (!ms)
			return -ETIMEDOUT;
		r = poll(&p, 1, ms);
		if (r > 0)
			return 0;
		if (r < 0 && errno != EINTR)
			return -errno;
	}
}

static int send_all(struct agent_conn *c, const char *p, size_t n, uint64_t deadline)
{
	while (n) {
		ssize_t w = send(c->fd, p, n, MSG_NOSIGNAL | MSG_DONTWAIT);

		if (w < 0) {
			if (errno == EAGAIN || errno == EINTR) {
				int r = wait_fd(c->fd, POLLOUT, deadline);

				if (r)
					return r;
				continue;
			}
			return -errno;
		}
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* Read until a '\n' is buffered; returns the line's length (without the
 * '\n'), which the caller consumes with take_line(). */
static ssize_t read_line(struct agent_conn *c, size_t max, uint64_t deadline)
{
	size_t scanned = 0;

	for (;;) {
		char *nl =
		    c->len > scanned ? memchr(c->buf + scanned, '\n', c->len - scanned) : NULL;
		ssize_t r;
		int w;

		if (nl)
			return nl - c->buf;
		scanned = c->len;
		if (c->len > max)
			return -EMSGSIZE;
		if (c->cap - c->len < 65536) {
			size_t cap = c->cap ? c->cap * 2 : 131072;
			char *b;

			if (cap > (size_t)max + 65536 * 2)
				cap = (size_t)max + 65536 * 2;
			b = realloc(c->buf, cap);
			if (!b)
				return -ENOMEM;
			c->buf = b;
			c->cap = cap;
		}
		r = recv(c->fd, c->buf + c->len, c->cap - c->len, MSG_DONTWAIT);
		if (r > 0) {
			c->len += (size_t)r;
			continue;
		}
		if (r == 0)
			return -ECONNRESET;
		if (errno != EAGAIN && errno != EINTR)
			return -errno;
		w = wait_fd(c->fd, POLLIN, deadline);
		if (w)
			return w;
	}
}

static void take_line(struct agent_conn *c, size_t n)
{
	memmove(c->buf, c->buf + n + 1, c->len - n - 1);
	c->len -= n + 1;
}

/* The port of a vsock handshake answer "OK <port>" (line[0..len), no
 * newline): decimal, no sign or space, at most 2^32 - 1. */
static bool handshake_port(const char *line, size_t len, unsigned *port)
{
	uint64_t v = 0;

	if (len < 4 || len > 13 || memcmp(line, "OK ", 3))
		return false;
	for (size_t i = 3; i < len; i++) {
		if (line[i] < '0' || line[i] > '9')
			return false;
		v = v * 10 + (uint64_t)(line[i] - '0');
	}
	if (v > 0xffffffffULL)
		return false;
	*port = (unsigned)v;
	return true;
}

/* How many JSON values the text may hold, counted without parsing: the
 * separators and openers outside strings. jansson takes ~20 bytes per
 * value, so `[0,0,...]` of 16 MiB would cost the daemon over 300 MiB;
 * an agent's answer is an object of a few fields, however long its
 * strings. */
static size_t json_values(const char *p, size_t n)
{
	size_t count = 0;
	bool in_str = false;

	for (size_t i = 0; i < n; i++) {
		char ch = p[i];

		if (in_str) {
			if (ch == '\\')
				i++;
			else if (ch == '"')
				in_str = false;
		} else if (ch == '"') {
			in_str = true;
		} else if (ch == ',' || ch == '[' || ch == '{') {
			count++;
		}
	}
	return count;
}

int agent_connect(struct agent_conn *c, const char *vsock_path, int timeout_ms, char *err,
		  size_t errlen)
{
	uint64_t deadline = now_ns() + (uint64_t)timeout_ms * 1000000;
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	char hello[32];
	unsigned port;
	ssize_t n;
	int r;

	memset(c, 0, sizeof(*c));
	c->fd = -1;
	if (strlen(vsock_path) >= sizeof(sa.sun_path))
		return errbuf_fail(err, errlen, -ENAMETOOLONG, "vsock socket path %s is too long",
				   vsock_path);
	memcpy(sa.sun_path, vsock_path, strlen(vsock_path) + 1);
	c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (c->fd < 0)
		return errbuf_fail(err, errlen, -errno, "socket: %s", strerror(errno));
	if (connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		r = -errno;
		agent_close(c);
		if (r == -ENOENT)
			return errbuf_fail(
			    err, errlen, r,
			    "no vsock socket at %s: the sandbox has no vsock device, "
			    "or its VMM has exited",
			    vsock_path);
		if (r == -ECONNREFUSED)
			return errbuf_fail(err, errlen, r,
					   "nobody listens on %s: the sandbox's VMM has exited",
					   vsock_path);
		return errbuf_fail(err, errlen, r, "connect %s: %s", vsock_path, strerror(-r));
	}
	snprintf(hello, sizeof(hello), "CONNECT %u\n", AGENT_VSOCK_PORT);
	r = send_all(c, hello, strlen(hello), deadline);
	if (r)
		goto fail_io;
	n = read_line(c, 64, deadline);
	if (n < 0) {
		r = (int)n;
		if (r == -ECONNRESET) {
			agent_close(c);
			return errbuf_fail(
			    err, errlen, r,
			    "the guest refused vsock port %u: no agent listens there "
			    "(yet)",
			    AGENT_VSOCK_PORT);
		}
		goto fail_io;
	}
	/* "OK <port>" up to the newline at n; the buffer holds no NUL. */
	if (!handshake_port(c->buf, (size_t)n, &port)) {
		char got[64];

		snprintf(got, sizeof(got), "%.*s", (int)MIN((size_t)n, sizeof(got) - 1), c->buf);
		agent_close(c);
		return errbuf_fail(err, errlen, -EPROTO,
				   "vsock handshake: expected 'OK <port>', got '%s'", got);
	}
	take_line(c, (size_t)n);
	return 0;
fail_io:
	agent_close(c);
	if (r == -ETIMEDOUT)
		return errbuf_fail(err, errlen, r, "no answer to the vsock handshake within %d ms",
				   timeout_ms);
	return errbuf_fail(err, errlen, r, "vsock handshake on %s: %s", vsock_path, strerror(-r));
}

int agent_request(struct agent_conn *c, json_t *req, json_t **resp, int timeout_ms, char *err,
		  size_t errlen)
{
	return agent_request_values(c, req, resp, timeout_ms, AGENT_MAX_VALUES, err, errlen);
}

int agent_request_values(struct agent_conn *c, json_t *req, json_t **resp, int timeout_ms,
			 size_t max_values, char *err, size_t errlen)
{
	uint64_t deadline = now_ns() + (uint64_t)timeout_ms * 1000000;
	unsigned id = ++c->next_id;
	json_error_t jerr;
	json_t *r, *rid;
	char *line;
	ssize_t n;
	int rc;

	*resp = NULL;
	if (!json_is_object(req))
		return errbuf_fail(err, errlen, -EINVAL, "agent request is not a JSON object");
	json_object_set_new(req, "id", json_integer(id));
	line = json_dumps(req, JSON_COMPACT);
	if (!line)
		return errbuf_fail(err, errlen, -ENOMEM, "cannot encode the agent request");
	n = (ssize_t)strlen(line);
	line[n] = '\n'; /* json_dumps() never puts a raw newline inside */
	rc = send_all(c, line, (size_t)n + 1, deadline);
	free(line);
	if (rc)
		goto io_fail;
	n = read_line(c, AGENT_MAX_RESPONSE, deadline);
	if (n < 0) {
		rc = (int)n;
		goto io_fail;
	}
	if (json_values(c->buf, (size_t)n) > max_values) {
		take_line(c, (size_t)n);
		return errbuf_fail(
		    err, errlen, -EPROTO,
		    "the agent's response holds over %zu JSON values; an answer is a "
		    "few fields (a hostile guest's, not parsed)",
		    max_values);
	}
	r = json_loadb(c->buf, (size_t)n, JSON_REJECT_DUPLICATES, &jerr);
	take_line(c, (size_t)n);
	if (!r || !json_is_object(r) || !json_is_boolean(json_object_get(r, "ok"))) {
		json_decref(r);
		return errbuf_fail(err, errlen, -EPROTO,
				   "the agent's response is not a JSON object with \"ok\"%s%s",
				   r ? "" : ": ", r ? "" : jerr.text);
	}
	rid = json_object_get(r, "id");
	if (!json_is_integer(rid) || json_integer_value(rid) != id) {
		json_decref(r);
		return errbuf_fail(err, errlen, -EPROTO,
				   "the agent answered another request (id mismatch)");
	}
	*resp = r;
	return 0;
io_fail:
	if (rc == -ETIMEDOUT)
		return errbuf_fail(err, errlen, rc, "the agent did not answer within %d ms",
				   timeout_ms);
	if (rc == -ECONNRESET || rc == -EPIPE)
		return errbuf_fail(err, errlen, -ECONNRESET, "the agent closed the connection");
	if (rc == -EMSGSIZE)
		return errbuf_fail(err, errlen, rc, "the agent's response is over %u bytes",
				   AGENT_MAX_RESPONSE);
	return errbuf_fail(err, errlen, rc, "talking to the agent: %s", strerror(-rc));
}

void agent_close(struct agent_conn *c)
{
	if (c->fd >= 0)
		close(c->fd);
	free(c->buf);
	c->fd = -1;
	c->buf = NULL;
	c->len = c->cap = 0;
}

int agent_call(const char *vsock_path, json_t *req, json_t **resp, int timeout_ms, char *err,
	       size_t errlen)
{
	return agent_call_values(vsock_path, req, resp, timeout_ms, AGENT_MAX_VALUES, err, errlen);
}

int agent_call_values(const char *vsock_path, json_t *req, json_t **resp, int timeout_ms,
		      size_t max_values, char *err, size_t errlen)
{
	struct agent_conn c;
	uint64_t t0 = now_ns();
	int r, left;

	r = agent_connect(&c, vsock_path, MIN(timeout_ms, 10000), err, errlen);
	if (r)
		return r;
	left = timeout_ms - (int)((now_ns() - t0) / 1000000);
	r = agent_request_values(&c, req, resp, MAX(left, 1), max_values, err, errlen);
	agent_close(&c);
	return r;
}
