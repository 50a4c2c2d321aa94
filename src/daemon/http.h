/* The daemon's HTTP listener (libmicrohttpd). */
#ifndef FORKD_DAEMON_HTTP_H
#define FORKD_DAEMON_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

#include "daemon/daemon.h"

struct MHD_Daemon;
struct api_req;
struct api_resp;

/* One endpoint of docs/openapi.yaml (the table is in http.c). */
enum http_param { HTTP_P_NONE, HTTP_P_TAG, HTTP_P_ID };
struct http_route {
	const char *method;
	const char *pattern; /* also the metrics label */
	enum http_param param;
	bool open; /* no authentication */
	size_t max_body;
	void (*fn)(struct api_req *rq, struct api_resp *rs);
};

/* What the router made of a request line, before any header or body. */
struct http_match {
	const struct http_route *route; /* NULL: none (status is 404 or 405) */
	const char *label;		/* route pattern or "other": the metrics label */
	int status;			/* decided before the body: 400, 401, 404, 405 */
	char msg[512];			/* the error message with status */
	char allow[64];			/* the methods the path takes (for a 405) */
	char param[80];			/* the path's {id} or {tag}; "\x01..." when too long */
};

/* Match method and url (already unescaped by http_unescape()) against the
 * routes; m is filled either way. Pure: no daemon, no connection. */
void http_route(const char *method, const char *url, struct http_match *m);
/* m->route found: refuse (400) a {tag} or {id} that is not a valid one.
 * Called after authentication, so an anonymous client learns nothing. */
void http_check_param(struct http_match *m);
/* URL (and query) unescaping in place, returning the new length: as
 * libmicrohttpd's, except that a "%00" leaves the text as sent. Decoded,
 * it would end the C string early, and DELETE /v1/snapshots/a%00b would act
 * on "a"; kept, "a%00b" is no valid tag or id and is refused. */
size_t http_unescape(char *s);

/* Connections: at most HTTP_MAX_CONNECTIONS in all (a thread each), at most
 * cfg.max_client_conns (default HTTP_MAX_PER_CLIENT) from one address, and
 * each closed once idle for cfg.idle_secs (default HTTP_IDLE_SECS): also
 * one that never finishes its headers. A request being handled is not
 * idle (an exec may run for its whole timeout). */
#define HTTP_MAX_CONNECTIONS 512
#define HTTP_MAX_PER_CLIENT  128
#define HTTP_IDLE_SECS	     30

/* Listen on sa and serve the API from threads of libmicrohttpd's. *port:
 * the port bound (for a requested port 0). */
int http_start(struct daemon *d, const struct sockaddr *sa, struct MHD_Daemon **out,
	       unsigned *port) __must_check;
/* Stop accepting; wait up to grace_secs for requests in flight; free. */
void http_stop(struct daemon *d, struct MHD_Daemon *m, unsigned grace_secs);

#endif
