/* The daemon's HTTP listener (libmicrohttpd). */
#ifndef FORKD_DAEMON_HTTP_H
#define FORKD_DAEMON_HTTP_H

#include <sys/socket.h>

#include "daemon/daemon.h"

struct MHD_Daemon;

/* Listen on sa and serve the API from threads of libmicrohttpd's. *port:
 * the port bound (for a requested port 0). */
int http_start(struct daemon *d, const struct sockaddr *sa, struct MHD_Daemon **out,
	       unsigned *port) __must_check;
/* Stop accepting; wait up to grace_secs for requests in flight; free. */
void http_stop(struct daemon *d, struct MHD_Daemon *m, unsigned grace_secs);

#endif
