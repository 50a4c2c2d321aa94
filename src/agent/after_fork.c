#include "agent/after_fork.h"

#include <errno.h>
#include <jansson.h>
#include <poll.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "common/base64.h"
#include "common/util.h"

#define MAX_INFLIGHT 256	 /* connections open at once (file descriptors) */
#define MAX_LINE     65536	 /* the handshake and the agent's answer */
#define RETRY_NS     50000000ULL /* the guest refused the port: ask again */
#define BUSY_NS	     5000000ULL	 /* the socket's backlog was full */

enum af_state {
	AF_WAIT,  /* not connected: start at retry_at */
	AF_HELLO, /* "CONNECT <port>" sent (or pending), waiting for "OK <n>" */
	AF_PING,  /* ping sent (or pending): is the agent reading this connection? */
	AF_REPLY, /* request sent (or pending), waiting for the answer */
	AF_DONE,
};

struct af_conn {
	enum af_state st;
	int fd;
	uint64_t t0, retry_at;
	unsigned refused; /* times the guest refused the port */
	bool counted;	  /* done, and counted as such */
	char *out;	  /* bytes still to write */
	size_t out_len, out_off;
	char *in;
	size_t in_len;
};

static int fail(struct after_fork_target *t, int code, const char *fmt, ...) __printf(3, 4);

static int fail(struct after_fork_target *t, int code, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(t->error, sizeof(t->error), fmt, ap);
	va_end(ap);
	t->status = code;
	return code;
}

static void conn_close(struct af_conn *c)
{
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	free(c->out);
	free(c->in);
	c->out = c->in = NULL;
	c->out_len = c->out_off = c->in_len = 0;
}

static void finish(struct af_conn *c, struct after_fork_target *t)
{
	conn_close(c);
	c->st = AF_DONE;
	t->ns = now_ns() - c->t0;
}

static int queue(struct af_conn *c, char *s)
{
	if (!s)
		return -ENOMEM;
	free(c->out);
	c->out = s;
	c->out_len = strlen(s);
	c->out_off = 0;
	return 0;
}

/* The request, with this moment's entropy and time. */
static char *request_line(uint32_t index)
{
	uint8_t rnd[AFTER_FORK_ENTROPY_BYTES];
	char enc[BASE64_LEN(sizeof(rnd)) + 1], *s, *line;
	struct timespec ts;
	json_t *o;
	size_t n;

	if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd))
		return NULL;
	base64_encode(rnd, sizeof(rnd), enc);
	clock_gettime(CLOCK_REALTIME, &ts);
	o = json_pack("{s:s,s:i,s:s,s:f,s:I}", "op", "after_fork", "id", 1, "entropy", enc,
		      "unix_time", (double)ts.tv_sec + ts.tv_nsec / 1e9, "index",
		      (json_int_t)index);
	s = o ? json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(17)) : NULL;
	json_decref(o);
	explicit_bzero(rnd, sizeof(rnd));
	explicit_bzero(enc, sizeof(enc));
	if (!s)
		return NULL;
	n = strlen(s);
	/* json_dumps() leaves no newline inside; make room for the one after. */
	line = realloc(s, n + 2);
	if (!line) {
		free(s);
		return NULL;
	}
	line[n] = '\n';
	line[n + 1] = 0;
	return line;
}

/* Start (or restart) the connection. 0, or -errno with t->error set. */
static int conn_start(struct af_conn *c, struct after_fork_target *t, uint32_t port)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	size_t len = strlen(t->vsock_path);
	char hello[32];

	if (len >= sizeof(sa.sun_path))
		return fail(t, -ENAMETOOLONG, "vsock socket path %s is too long", t->vsock_path);
	memcpy(sa.sun_path, t->vsock_path, len + 1);
	c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (c->fd < 0)
		return fail(t, -errno, "socket: %s", strerror(errno));
	if (connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int e = errno;

		conn_close(c);
		if (e == EAGAIN) { /* the VMM has not accepted the earlier ones yet */
			c->st = AF_WAIT;
			c->retry_at = now_ns() + BUSY_NS;
			return 0;
		}
		if (e == ENOENT || e == ECONNREFUSED)
			return fail(t, -e, "nobody listens on %s: the child's VMM has exited",
				    t->vsock_path);
		return fail(t, -e, "connect %s: %s", t->vsock_path, strerror(e));
	}
	snprintf(hello, sizeof(hello), "CONNECT %u\n", port);
	if (queue(c, strdup(hello)))
		return fail(t, -ENOMEM, "out of memory");
	c->st = AF_HELLO;
	return 0;
}

/* Read what is there. 1: a line is buffered; 0: not yet; -ECONNRESET:
 * the peer closed; other -errno. */
static int conn_read(struct af_conn *c)
{
	if (!c->in && !(c->in = malloc(MAX_LINE + 1)))
		return -ENOMEM;
	for (;;) {
		ssize_t r;

		if (c->in_len && memchr(c->in, '\n', c->in_len))
			return 1;
		if (c->in_len >= MAX_LINE)
			return -EMSGSIZE;
		r = recv(c->fd, c->in + c->in_len, MAX_LINE - c->in_len, MSG_DONTWAIT);
		if (r > 0) {
			c->in_len += (size_t)r;
			continue;
		}
		if (r == 0)
			return -ECONNRESET;
		if (errno == EAGAIN || errno == EINTR)
			return 0;
		return errno == EPIPE ? -ECONNRESET : -errno;
	}
}

/* Drop the first line, n bytes and its '\n', from c->in. */
static void drop_line(struct af_conn *c, size_t n)
{
	memmove(c->in, c->in + n + 1, c->in_len - n - 1);
	c->in_len -= n + 1;
}

/* Take the first line out of c->in (NUL-terminated copy in line). */
static size_t take_line(struct af_conn *c, char *line, size_t size)
{
	size_t n = (size_t)((char *)memchr(c->in, '\n', c->in_len) - c->in);

	snprintf(line, size, "%.*s", (int)MIN(n, size - 1), c->in);
	drop_line(c, n);
	return n;
}

static void on_hello(struct af_conn *c, struct after_fork_target *t, uint32_t port)
{
	char line[80];
	unsigned got;
	int r = conn_read(c);

	if (r == 0)
		return;
	if (r == -ECONNRESET) {
		/* The guest refused the port: its agent is not listening (yet). */
		conn_close(c);
		c->refused++;
		c->st = AF_WAIT;
		c->retry_at = now_ns() + RETRY_NS;
		return;
	}
	if (r < 0) {
		fail(t, r, "vsock handshake on %s: %s", t->vsock_path, strerror(-r));
		finish(c, t);
		return;
	}
	take_line(c, line, sizeof(line));
	if (strncmp(line, "OK ", 3) || sscanf(line + 3, "%u", &got) != 1) {
		fail(t, -EPROTO, "vsock handshake for port %u: expected 'OK <port>', got '%s'",
		     port, line);
		finish(c, t);
		return;
	}
	/* The guest kernel accepted the connection; the agent may take a
	 * while (emulated, seconds) to get to it. A ping first, so the time in
	 * after_fork is taken when the agent is known to be reading: the clock
	 * it sets is then late by one request's travel only. */
	if (queue(c, strdup("{\"op\":\"ping\",\"id\":0}\n"))) {
		fail(t, -ENOMEM, "out of memory");
		finish(c, t);
		return;
	}
	c->st = AF_PING;
}

/* The agent's answer to `op`, sent with id `id`. 1: *out is that answer,
 * a JSON object whose "ok" is true (the caller drops it); 0: not all
 * there yet; -1: the target failed (t says why) and is finished. */
static int take_answer(struct af_conn *c, struct after_fork_target *t, const char *op,
		       json_int_t id, json_t **out)
{
	json_error_t jerr;
	json_t *o, *ok, *jid;
	size_t n;
	int r = conn_read(c);

	if (r == 0)
		return 0;
	if (r < 0) {
		if (r == -ECONNRESET)
			fail(t, r, "the agent closed the connection before it answered %s", op);
		else if (r == -EMSGSIZE)
			fail(t, r, "the agent's answer to %s is over %d bytes", op, MAX_LINE);
		else
			fail(t, r, "reading the agent's answer to %s: %s", op, strerror(-r));
		finish(c, t);
		return -1;
	}
	n = (size_t)((char *)memchr(c->in, '\n', c->in_len) - c->in);
	o = json_loadb(c->in, n, JSON_REJECT_DUPLICATES, &jerr);
	drop_line(c, n);
	ok = json_object_get(o, "ok");
	jid = json_object_get(o, "id");
	if (!json_is_object(o) || !json_is_boolean(ok)) {
		fail(t, -EPROTO, "the agent's answer to %s is not a JSON object with \"ok\"", op);
	} else if (!json_is_integer(jid) || json_integer_value(jid) != id) {
		fail(t, -EPROTO, "the agent answered another request (id mismatch)");
	} else if (!json_is_true(ok)) {
		const char *msg = json_string_value(json_object_get(o, "error"));

		fail(t, -EPROTO, "the agent refused %s: %s", op, msg ? msg : "(no error message)");
	} else {
		*out = o;
		return 1;
	}
	json_decref(o);
	finish(c, t);
	return -1;
}

/* The answer to the ping: now send after_fork. */
static void on_ping(struct af_conn *c, struct after_fork_target *t)
{
	json_t *o;

	if (take_answer(c, t, "ping", 0, &o) <= 0)
		return;
	json_decref(o);
	if (queue(c, request_line(t->index))) {
		fail(t, -ENOMEM, "cannot build the after_fork request");
		finish(c, t);
		return;
	}
	c->st = AF_REPLY;
}

static void on_reply(struct af_conn *c, struct after_fork_target *t)
{
	json_t *o;

	if (take_answer(c, t, "after_fork", 1, &o) <= 0)
		return;
	json_decref(o);
	t->status = 0;
	t->error[0] = 0;
	finish(c, t);
}

/* Write what is pending; a failure ends the target. */
static void on_write(struct af_conn *c, struct after_fork_target *t)
{
	while (c->out && c->out_off < c->out_len) {
		ssize_t w = send(c->fd, c->out + c->out_off, c->out_len - c->out_off,
				 MSG_NOSIGNAL | MSG_DONTWAIT);

		if (w < 0) {
			if (errno == EAGAIN || errno == EINTR)
				return;
			if (c->st == AF_HELLO && (errno == EPIPE || errno == ECONNRESET)) {
				conn_close(c); /* refused before we finished asking */
				c->refused++;
				c->st = AF_WAIT;
				c->retry_at = now_ns() + RETRY_NS;
				return;
			}
			fail(t, -errno, "writing to %s: %s", t->vsock_path, strerror(errno));
			finish(c, t);
			return;
		}
		c->out_off += (size_t)w;
	}
	free(c->out);
	c->out = NULL;
	c->out_len = c->out_off = 0;
}

static void time_out(struct af_conn *c, struct after_fork_target *t, uint32_t port, int ms)
{
	if (c->st == AF_WAIT && c->refused)
		fail(t, -ETIMEDOUT,
		     "the guest refused vsock port %u for %d ms (%u tries): its agent is not "
		     "listening there",
		     port, ms, c->refused);
	else if (c->st == AF_REPLY)
		fail(t, -ETIMEDOUT, "the agent did not answer after_fork within %d ms", ms);
	else if (c->st == AF_PING)
		fail(t, -ETIMEDOUT, "the agent did not answer ping within %d ms", ms);
	else
		fail(t, -ETIMEDOUT, "no answer to the vsock handshake for port %u within %d ms",
		     port, ms);
	finish(c, t);
}

size_t after_fork_run(struct after_fork_target *t, size_t n, uint32_t port, int timeout_ms)
{
	uint64_t start = now_ns(), deadline = start + (uint64_t)timeout_ms * 1000000ULL;
	struct af_conn *c = calloc(n, sizeof(*c));
	struct pollfd *pf = calloc(MIN(n, (size_t)MAX_INFLIGHT) + 1, sizeof(*pf));
	size_t *who = calloc(MIN(n, (size_t)MAX_INFLIGHT) + 1, sizeof(*who));
	size_t left = n, ok = 0, next = 0, inflight = 0;

	for (size_t i = 0; i < n; i++) {
		t[i].status = -EINPROGRESS;
		t[i].error[0] = 0;
		t[i].ns = 0;
	}
	if (!c || !pf || !who) {
		for (size_t i = 0; i < n; i++)
			fail(&t[i], -ENOMEM, "out of memory");
		free(c);
		free(pf);
		free(who);
		return 0;
	}
	for (size_t i = 0; i < n; i++) {
		c[i].fd = -1;
		c[i].st = AF_WAIT;
	}
	while (left) {
		uint64_t now = now_ns(), wake = deadline;
		size_t np = 0;
		int ms, r;

		/* Admit new targets while there is room. */
		while (next < n && inflight < MAX_INFLIGHT) {
			c[next].t0 = now;
			c[next].retry_at = now;
			next++;
			inflight++;
		}
		for (size_t i = 0; i < next; i++) {
			if (c[i].counted)
				continue;
			if (c[i].st != AF_DONE && now >= deadline) {
				time_out(&c[i], &t[i], port, timeout_ms);
			} else if (c[i].st == AF_WAIT && c[i].retry_at <= now) {
				if (conn_start(&c[i], &t[i], port))
					finish(&c[i], &t[i]);
				else if (c[i].st == AF_HELLO)
					on_write(&c[i], &t[i]);
			}
			if (c[i].st == AF_DONE) {
				c[i].counted = true;
				left--;
				inflight--;
				ok += t[i].status == 0;
				continue;
			}
			if (c[i].st == AF_WAIT) {
				wake = MIN(wake, c[i].retry_at);
				continue;
			}
			pf[np] = (struct pollfd){
			    .fd = c[i].fd, .events = (short)(POLLIN | (c[i].out ? POLLOUT : 0))};
			who[np++] = i;
		}
		if (!left)
			break;
		if (next < n && inflight < MAX_INFLIGHT)
			continue;
		now = now_ns();
		ms = wake > now ? (int)MIN((wake - now) / 1000000 + 1, (uint64_t)INT32_MAX) : 0;
		r = poll(pf, np, ms);
		if (r < 0 && errno != EINTR) {
			for (size_t i = 0; i < next; i++)
				if (c[i].st != AF_DONE) {
					fail(&t[i], -errno, "poll: %s", strerror(errno));
					finish(&c[i], &t[i]);
				}
			break;
		}
		for (size_t k = 0; r > 0 && k < np; k++) {
			size_t i = who[k];

			if (!pf[k].revents)
				continue;
			if (pf[k].revents & POLLOUT)
				on_write(&c[i], &t[i]);
			if (c[i].st == AF_HELLO && (pf[k].revents & (POLLIN | POLLHUP | POLLERR)))
				on_hello(&c[i], &t[i], port);
			else if (c[i].st == AF_PING &&
				 (pf[k].revents & (POLLIN | POLLHUP | POLLERR)))
				on_ping(&c[i], &t[i]);
			else if (c[i].st == AF_REPLY &&
				 (pf[k].revents & (POLLIN | POLLHUP | POLLERR)))
				on_reply(&c[i], &t[i]);
			/* A line queued by on_hello() or on_ping() goes out at once. */
			if ((c[i].st == AF_PING || c[i].st == AF_REPLY) && c[i].out)
				on_write(&c[i], &t[i]);
		}
	}
	for (size_t i = 0; i < n; i++)
		conn_close(&c[i]);
	free(c);
	free(pf);
	free(who);
	return ok;
}
