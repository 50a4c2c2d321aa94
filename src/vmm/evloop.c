#include "vmm/evloop.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

/* A deleted watch stays allocated (fn == NULL) until the loop is destroyed:
 * its event may already sit in the current epoll_wait batch. */
struct evloop_watch {
	int fd;
	evloop_fn fn;
	void *opaque;
	struct evloop_watch *next;
};

int evloop_init(struct evloop *loop)
{
	struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
	int err;

	loop->running = false;
	loop->stop = false;
	loop->watches = NULL;
	pthread_mutex_init(&loop->lock, NULL);
	loop->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (loop->epfd < 0)
		return log_errno("epoll_create1");
	loop->wakefd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (loop->wakefd < 0) {
		err = log_errno("eventfd");
		goto err_ep;
	}
	if (epoll_ctl(loop->epfd, EPOLL_CTL_ADD, loop->wakefd, &ev) < 0) {
		err = log_errno("epoll_ctl(ADD wake eventfd)");
		goto err_wake;
	}
	return 0;

err_wake:
	close(loop->wakefd);
err_ep:
	close(loop->epfd);
	loop->epfd = -1;
	return err;
}

int evloop_add(struct evloop *loop, int fd, uint32_t events, evloop_fn fn, void *opaque)
{
	struct evloop_watch *w = calloc(1, sizeof(*w));
	struct epoll_event ev = {.events = events};

	if (!w)
		return -ENOMEM;
	w->fd = fd;
	w->fn = fn;
	w->opaque = opaque;
	ev.data.ptr = w;
	pthread_mutex_lock(&loop->lock);
	if (epoll_ctl(loop->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
		int err = log_errno("epoll_ctl(ADD fd %d)", fd);

		pthread_mutex_unlock(&loop->lock);
		free(w);
		return err;
	}
	w->next = loop->watches;
	loop->watches = w;
	pthread_mutex_unlock(&loop->lock);
	return 0;
}

static struct evloop_watch *find_live(struct evloop *loop, int fd)
{
	struct evloop_watch *w;

	for (w = loop->watches; w; w = w->next)
		if (w->fn && w->fd == fd)
			return w;
	return NULL;
}

int evloop_mod(struct evloop *loop, int fd, uint32_t events)
{
	struct epoll_event ev = {.events = events};
	struct evloop_watch *w;
	int err = 0;

	pthread_mutex_lock(&loop->lock);
	w = find_live(loop, fd);
	if (!w) {
		err = -ENOENT;
	} else {
		ev.data.ptr = w;
		if (epoll_ctl(loop->epfd, EPOLL_CTL_MOD, fd, &ev) < 0)
			err = log_errno("epoll_ctl(MOD fd %d)", fd);
	}
	pthread_mutex_unlock(&loop->lock);
	return err;
}

void evloop_del(struct evloop *loop, int fd)
{
	struct evloop_watch *w;

	pthread_mutex_lock(&loop->lock);
	w = find_live(loop, fd);
	if (w) {
		epoll_ctl(loop->epfd, EPOLL_CTL_DEL, fd, NULL);
		w->fn = NULL;
	}
	pthread_mutex_unlock(&loop->lock);
}

int evloop_dispatch(struct evloop *loop, int timeout_ms)
{
	struct epoll_event evs[32];
	int i, n = epoll_wait(loop->epfd, evs, 32, timeout_ms);

	if (n < 0)
		return -errno;
	for (i = 0; i < n; i++) {
		struct evloop_watch *w = evs[i].data.ptr;
		evloop_fn fn;
		void *opaque;

		if (!w)
			continue; /* wake eventfd */
		pthread_mutex_lock(&loop->lock);
		fn = w->fn;
		opaque = w->opaque;
		pthread_mutex_unlock(&loop->lock);
		if (fn)
			fn(opaque, evs[i].events);
	}
	return n;
}

static void *evloop_thread(void *arg)
{
	struct evloop *loop = arg;

	while (!loop->stop) {
		int n = evloop_dispatch(loop, -1);

		if (n == -EINTR)
			continue;
		if (n < 0) {
			errno = -n;
			log_errno("epoll_wait");
			break;
		}
	}
	return NULL;
}

int evloop_start(struct evloop *loop)
{
	int err = pthread_create(&loop->thread, NULL, evloop_thread, loop);

	if (err) {
		errno = err;
		return log_errno("pthread_create(event loop)");
	}
	loop->running = true;
	return 0;
}

void evloop_destroy(struct evloop *loop)
{
	struct evloop_watch *w, *next;
	uint64_t one = 1;

	if (loop->epfd < 0)
		return;
	if (loop->running) {
		loop->stop = true;
		if (write(loop->wakefd, &one, sizeof(one)) < 0)
			log_errno("write(event loop wake)");
		pthread_join(loop->thread, NULL);
		loop->running = false;
	}
	for (w = loop->watches; w; w = next) {
		next = w->next;
		free(w);
	}
	loop->watches = NULL;
	close(loop->wakefd);
	close(loop->epfd);
	loop->epfd = -1;
	pthread_mutex_destroy(&loop->lock);
}
