/* A small HTTP/1.1 client for the CLI verbs that talk to `forkd serve`.
 *
 * Plain http:// only (the daemon serves loopback; put TLS in front of it
 * for anything else), one request per connection ("Connection: close"),
 * every wait bounded by the timeout and the response by
 * HTTP_CLIENT_MAX_BODY. Failures are -errno plus one sentence in `err`;
 * nothing is logged. */
#ifndef FORKD_CLI_HTTP_CLIENT_H
#define FORKD_CLI_HTTP_CLIENT_H

#include <stddef.h>

#include "common/log.h"

#define HTTP_CLIENT_MAX_BODY (128u << 20)

struct http_resp {
	int status;
	char *body; /* NUL-terminated (not counted in len); malloc'd */
	size_t len;
	char content_type[128];
};

/* `base_url` is "http://HOST[:PORT]" (default port 80, an IPv6 HOST in
 * brackets), `path` starts with '/'. `token` (may be NULL) is sent as a
 * bearer token. `body` may be NULL for none. */
int http_request(const char *base_url, const char *token, const char *method, const char *path,
		 const char *content_type, const void *body, size_t len, int timeout_ms,
		 struct http_resp *out, char *err, size_t errlen) __must_check;

void http_resp_free(struct http_resp *r);

#endif
