/* The CLI's HTTP client for the verbs that talk to `forkd serve`, on
 * libcurl: http:// and https:// (a daemon serving TLS itself, or behind a
 * proxy), a path prefix in the base URL. For a certificate the system does
 * not trust (a self-signed one), FORKD_CA_CERT names the PEM file to trust.
 * One request per call; every wait bounded by the timeout and the response
 * by HTTP_CLIENT_MAX_BODY. Failures are -errno plus one sentence in `err`;
 * nothing is logged. */
#ifndef FORKD_CLI_HTTP_CLIENT_H
#define FORKD_CLI_HTTP_CLIENT_H

#include <stdbool.h>
#include <stddef.h>

#include "common/log.h"

#define HTTP_CLIENT_MAX_BODY (128u << 20)

struct http_resp {
	int status;
	char *body; /* NUL-terminated (not counted in len); malloc'd */
	size_t len;
	char content_type[128];
};

/* Is `url` a base URL the client takes: "http[s]://HOST[:PORT][/PREFIX]"
 * (an IPv6 HOST in brackets), no query or fragment? */
bool http_base_url_valid(const char *url);

/* `path` starts with '/' and is appended to base_url. `token` (may be
 * NULL) is sent as a bearer token. `body` may be NULL for none.
 *   -ECONNREFUSED  nobody listens there;  -ETIMEDOUT  no answer in time;
 *   -EINVAL        a bad URL or path;     -EMSGSIZE  the answer is too big;
 *   -EPROTO        TLS or HTTP went wrong (the sentence says how). */
int http_request(const char *base_url, const char *token, const char *method, const char *path,
		 const char *content_type, const void *body, size_t len, int timeout_ms,
		 struct http_resp *out, char *err, size_t errlen) __must_check;

void http_resp_free(struct http_resp *r);

#endif
