#include "cli/http_client.h"

#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/util.h"

/* "http://host[:port]" -> host, port. */
static int parse_url(const char *url, char *host, size_t hsize, char *port, size_t psize)
{
	const char *p, *end, *colon;
	size_t n;

	if (strncmp(url, "http://", 7))
		return -EINVAL;
	p = url + 7;
	end = p + strcspn(p, "/");
	if (end[0] == '/' && end[1])
		return -EINVAL; /* a base URL, not a path */
	if (*p == '[') {
		const char *rb = memchr(p, ']', (size_t)(end - p));

		if (!rb)
			return -EINVAL;
		n = (size_t)(rb - p - 1);
		if (!n || n >= hsize)
			return -EINVAL;
		memcpy(host, p + 1, n);
		host[n] = 0;
		colon = rb + 1 < end && rb[1] == ':' ? rb + 1 : NULL;
		if (!colon && rb + 1 != end)
			return -EINVAL;
	} else {
		colon = memchr(p, ':', (size_t)(end - p));
		n = (size_t)((colon ? colon : end) - p);
		if (!n || n >= hsize)
			return -EINVAL;
		memcpy(host, p, n);
		host[n] = 0;
	}
	if (colon) {
		n = (size_t)(end - colon - 1);
		if (!n || n >= psize || strspn(colon + 1, "0123456789") < n)
			return -EINVAL;
		memcpy(port, colon + 1, n);
		port[n] = 0;
	} else {
		snprintf(port, psize, "80");
	}
	return 0;
}

static int wait_fd(int fd, short ev, uint64_t deadline)
{
	struct pollfd p = {.fd = fd, .events = ev};

	for (;;) {
		uint64_t now = now_ns();
		int r;

		if (now >= deadline)
			return -ETIMEDOUT;
		r = poll(&p, 1, (int)MIN((deadline - now) / 1000000 + 1, 1u << 30));
		if (r > 0)
			return 0;
		if (r < 0 && errno != EINTR)
			return -errno;
	}
}

static int connect_to(const char *host, const char *port, uint64_t deadline, int *fdp)
{
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *ai, *a;
	int r, fd = -1, err = -ECONNREFUSED;

	r = getaddrinfo(host, port, &hints, &ai);
	if (r)
		return -EHOSTUNREACH;
	for (a = ai; a; a = a->ai_next) {
		socklen_t sl = sizeof(r);

		fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK,
			    a->ai_protocol);
		if (fd < 0)
			continue;
		if (connect(fd, a->ai_addr, a->ai_addrlen) == 0)
			break;
		if (errno == EINPROGRESS && (err = wait_fd(fd, POLLOUT, deadline)) == 0 &&
		    getsockopt(fd, SOL_SOCKET, SO_ERROR, &r, &sl) == 0 && r == 0)
			break;
		if (errno != EINPROGRESS)
			err = -errno;
		else if (!err)
			err = -r;
		close(fd);
		fd = -1;
	}
	freeaddrinfo(ai);
	if (fd < 0)
		return err;
	*fdp = fd;
	return 0;
}

static int send_all(int fd, const void *buf, size_t n, uint64_t deadline)
{
	const char *p = buf;

	while (n) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);

		if (w < 0) {
			int r;

			if (errno == EINTR)
				continue;
			if (errno != EAGAIN)
				return -errno;
			r = wait_fd(fd, POLLOUT, deadline);
			if (r)
				return r;
			continue;
		}
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* Status line and headers in buf[0..hlen): status, Content-Type,
 * Content-Length (-1 when absent). */
static int parse_head(char *buf, struct http_resp *out, long long *clen)
{
	char *line = buf, *next;

	*clen = -1;
	if (sscanf(buf, "HTTP/1.%*d %d", &out->status) != 1 || out->status < 100 ||
	    out->status > 599)
		return -EPROTO;
	for (; (next = strstr(line, "\r\n")); line = next + 2) {
		*next = 0;
		if (!strncasecmp(line, "Content-Length:", 15)) {
			char *e;

			*clen = strtoll(line + 15, &e, 10);
			if (*clen < 0)
				return -EPROTO;
		} else if (!strncasecmp(line, "Content-Type:", 13)) {
			snprintf(out->content_type, sizeof(out->content_type), "%s",
				 line + 13 + strspn(line + 13, " \t"));
		} else if (!strncasecmp(line, "Transfer-Encoding:", 18) &&
			   strstr(line + 18, "chunked")) {
			return -ENOTSUP;
		}
	}
	return 0;
}

int http_request(const char *base_url, const char *token, const char *method, const char *path,
		 const char *content_type, const void *body, size_t len, int timeout_ms,
		 struct http_resp *out, char *err, size_t errlen)
{
	uint64_t deadline = now_ns() + (uint64_t)timeout_ms * 1000000;
	char host[256], port[16], head[1024 + 4096];
	char *buf = NULL, *hend;
	size_t have = 0, cap = 0, hlen;
	long long clen;
	int fd = -1, r, n;

	memset(out, 0, sizeof(*out));
	if (parse_url(base_url, host, sizeof(host), port, sizeof(port)))
		return errbuf_fail(err, errlen, -EINVAL,
				   "daemon URL '%s' is not of the form http://HOST:PORT", base_url);
	if (strlen(path) > 4000 || path[0] != '/')
		return errbuf_fail(err, errlen, -EINVAL, "bad request path '%.60s'", path);
	r = connect_to(host, port, deadline, &fd);
	if (r)
		return errbuf_fail(err, errlen, r,
				   "cannot reach the daemon at %s: %s (is 'forkd serve' running? "
				   "see --daemon-url / FORKD_URL)",
				   base_url, strerror(-r));
	n = snprintf(head, sizeof(head),
		     "%s %s HTTP/1.1\r\nHost: %s:%s\r\nConnection: close\r\n"
		     "User-Agent: forkd-cli\r\nAccept: application/json\r\n",
		     method, path, host, port);
	if (token && *token)
		n += snprintf(head + n, sizeof(head) - (size_t)n,
			      "Authorization: Bearer %.2048s\r\n", token);
	if (body || !strcmp(method, "POST") || !strcmp(method, "PUT"))
		n += snprintf(head + n, sizeof(head) - (size_t)n,
			      "Content-Type: %s\r\nContent-Length: %zu\r\n",
			      content_type ? content_type : "application/json", body ? len : 0);
	n += snprintf(head + n, sizeof(head) - (size_t)n, "\r\n");
	r = send_all(fd, head, (size_t)n, deadline);
	if (!r && body && len)
		r = send_all(fd, body, len, deadline);
	if (r)
		goto io_fail;

	for (;;) {
		ssize_t got;

		if (cap - have < 65536) {
			char *b;

			cap = cap ? cap * 2 : 65536 * 2;
			b = realloc(buf, cap + 1);
			if (!b) {
				r = -ENOMEM;
				goto io_fail;
			}
			buf = b;
		}
		got = recv(fd, buf + have, cap - have, MSG_DONTWAIT);
		if (got > 0) {
			have += (size_t)got;
			if (have > HTTP_CLIENT_MAX_BODY + sizeof(head)) {
				r = -EMSGSIZE;
				goto io_fail;
			}
			continue;
		}
		if (got == 0)
			break;
		if (errno != EAGAIN && errno != EINTR) {
			r = -errno;
			goto io_fail;
		}
		r = wait_fd(fd, POLLIN, deadline);
		if (r)
			goto io_fail;
	}
	close(fd);
	fd = -1;
	if (!buf)
		return errbuf_fail(err, errlen, -EPROTO,
				   "the daemon closed the connection without a reply");
	buf[have] = 0;
	hend = strstr(buf, "\r\n\r\n");
	if (!hend) {
		free(buf);
		return errbuf_fail(err, errlen, -EPROTO,
				   "the daemon's reply has no complete header");
	}
	hend[2] = 0;
	hlen = (size_t)(hend - buf) + 4;
	r = parse_head(buf, out, &clen);
	if (r || (clen >= 0 && (size_t)clen > have - hlen)) {
		free(buf);
		return errbuf_fail(err, errlen, -EPROTO,
				   "the daemon's reply is malformed or cut short");
	}
	out->len = clen >= 0 ? (size_t)clen : have - hlen;
	memmove(buf, buf + hlen, out->len);
	buf[out->len] = 0;
	out->body = buf;
	return 0;
io_fail:
	free(buf);
	if (fd >= 0)
		close(fd);
	if (r == -ETIMEDOUT)
		return errbuf_fail(err, errlen, r, "the daemon did not answer within %d s",
				   timeout_ms / 1000);
	return errbuf_fail(err, errlen, r, "talking to the daemon at %s: %s", base_url,
			   strerror(-r));
}

void http_resp_free(struct http_resp *r)
{
	free(r->body);
	r->body = NULL;
}
