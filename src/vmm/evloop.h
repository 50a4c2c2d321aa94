/* The VM's event loop: one thread, epoll, for device back-ends (tap, vsock
 * sockets, console input). Callbacks run on the loop thread.
 *
 * Registration is allowed from any thread at any time; a callback may remove
 * its own or another watch. */
#ifndef FORKD_VMM_EVLOOP_H
#define FORKD_VMM_EVLOOP_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "common/log.h"

typedef void (*evloop_fn)(void *opaque, uint32_t events);

struct evloop_watch;

struct evloop {
	int epfd;
	int wakefd; /* eventfd: stop request */
	pthread_t thread;
	bool running;
	volatile bool stop;
	pthread_mutex_t lock;	      /* guards watches */
	struct evloop_watch *watches; /* freed only by evloop_destroy() */
};

int evloop_init(struct evloop *loop) __must_check;
/* Watch fd for `events` (EPOLLIN...). The watch struct is allocated and
 * owned by the loop until evloop_del(). */
int evloop_add(struct evloop *loop, int fd, uint32_t events, evloop_fn fn,
	       void *opaque) __must_check;
int evloop_mod(struct evloop *loop, int fd, uint32_t events) __must_check;
void evloop_del(struct evloop *loop, int fd);
/* Wait up to timeout_ms (-1: no limit) for events and run their callbacks
 * on the calling thread: the loop thread's body, also for a test or fuzz
 * harness that drives a loop without starting it (never both at once).
 * Returns how many events came (0: timeout), or -errno from epoll_wait. */
int evloop_dispatch(struct evloop *loop, int timeout_ms);
int evloop_start(struct evloop *loop) __must_check;
/* Stop and join the loop thread; then free everything. Idempotent. */
void evloop_destroy(struct evloop *loop);

#endif
