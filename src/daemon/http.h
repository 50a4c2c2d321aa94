/* The daemon's HTTP listener (libmicrohttpd). */
#ifndef FORKD_DAEMON_HTTP_H
#define FORKD_DAEMON_HTTP_H

#include <sys/socket.h>

#include "daemon/daemon.h"

struct MHD_Daemon;

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
