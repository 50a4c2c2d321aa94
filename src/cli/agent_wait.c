/* Waiting for a booting guest's agent (agent_wait.h). */
#include "cli/agent_wait.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "common/log.h"

static void note(struct agent_wait *w, const char *what)
{
	pthread_mutex_lock(&w->lock);
	snprintf(w->last, sizeof(w->last), "%s", what);
	pthread_mutex_unlock(&w->lock);
}

/* Sleep ms, or less when asked to stop; true when asked to stop. */
static bool nap(struct agent_wait *w, int ms)
{
	struct pollfd p = {.fd = w->stop_fd, .events = POLLIN};

	return poll(&p, 1, ms) > 0;
}

/* One ping on an open connection: 1 warm, 0 not warm (why in `why`),
 * -errno when the connection is no good any more. */
static int ping(struct agent_wait *w, struct agent_conn *c, char *why, size_t size)
{
	json_t *req = json_pack("{s:s}", "op", "ping"), *resp = NULL, *v;
	const char *e;
	int r;

	if (!req)
		return -ENOMEM;
	r = agent_request(c, req, &resp, AGENT_WAIT_PING_MS, why, size);
	json_decref(req);
	if (r)
		return r;
	if (!json_is_true(json_object_get(resp, "ok"))) {
		e = json_string_value(json_object_get(resp, "error"));
		snprintf(why, size, "the agent refused ping: %s", e ? e : "(no error given)");
		r = 0;
	} else if (!json_is_true(json_object_get(resp, "warm"))) {
		snprintf(why, size, "the agent answers ping but is not warm yet");
		r = 0;
	} else {
		pthread_mutex_lock(&w->lock);
		v = json_object_get(resp, "pid");
		w->pid = json_is_integer(v) ? (long long)json_integer_value(v) : -1;
		v = json_object_get(resp, "numpy");
		snprintf(w->numpy, sizeof(w->numpy), "%s",
			 json_is_string(v) ? json_string_value(v) : "?");
		pthread_mutex_unlock(&w->lock);
		r = 1;
	}
	json_decref(resp);
	return r;
}

static void *agent_wait_run(void *arg)
{
	struct agent_wait *w = arg;
	struct agent_conn c = {.fd = -1};
	char why[AGENT_ERR_LEN];
	uint64_t one = 1;
	sigset_t block;
	int r;

	/* SIGINT/SIGTERM are for the main thread (they stop the VM). */
	sigemptyset(&block);
	sigaddset(&block, SIGINT);
	sigaddset(&block, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &block, NULL);
	while (!nap(w, 0)) {
		if (c.fd < 0) {
			pthread_mutex_lock(&w->lock);
			if (!w->connects++)
				snprintf(w->last, sizeof(w->last),
					 "the first connection waits for the guest to accept it "
					 "(its vsock driver is not up yet?)");
			pthread_mutex_unlock(&w->lock);
			r = agent_connect(&c, w->vsock, AGENT_WAIT_CONNECT_MS, why, sizeof(why));
			if (r) {
				note(w, why);
				if (r != -ETIMEDOUT && nap(w, AGENT_WAIT_RETRY_MS))
					break;
				continue;
			}
		}
		r = ping(w, &c, why, sizeof(why));
		if (r == 1) {
			agent_close(&c);
			note(w, "the agent answered ping with warm=true");
			if (write(w->warm_fd, &one, sizeof(one)) < 0)
				log_errno("signal warm");
			break;
		}
		note(w, why);
		if (r < 0)
			agent_close(&c);
		if (nap(w, AGENT_WAIT_RETRY_MS))
			break;
	}
	agent_close(&c);
	return NULL;
}

int agent_wait_start(struct agent_wait *w, const char *vsock, uint32_t port, int warm_fd)
{
	int r;

	memset(w, 0, sizeof(*w));
	w->vsock = vsock;
	w->port = port;
	w->warm_fd = warm_fd;
	w->pid = -1;
	/* agent_connect() speaks to AGENT_VSOCK_PORT; callers check port. */
	if (port != AGENT_VSOCK_PORT) {
		log_err("the agent client reaches vsock port %d only, not %u", AGENT_VSOCK_PORT,
			port);
		return -EINVAL;
	}
	w->stop_fd = eventfd(0, EFD_CLOEXEC);
	if (w->stop_fd < 0)
		return log_errno("eventfd");
	pthread_mutex_init(&w->lock, NULL);
	r = pthread_create(&w->thread, NULL, agent_wait_run, w);
	if (r) {
		log_err("pthread_create (agent poller): %s", strerror(r));
		pthread_mutex_destroy(&w->lock);
		close(w->stop_fd);
		return -r;
	}
	w->started = true;
	return 0;
}

void agent_wait_status(struct agent_wait *w, char *out, size_t size)
{
	if (!w->started) {
		snprintf(out, size, "not polling");
		return;
	}
	pthread_mutex_lock(&w->lock);
	snprintf(out, size, "%u connect%s; last: %s", w->connects, w->connects == 1 ? "" : "s",
		 w->last[0] ? w->last : "nothing yet");
	pthread_mutex_unlock(&w->lock);
}

void agent_wait_stop(struct agent_wait *w)
{
	uint64_t one = 1;

	if (!w->started)
		return;
	if (write(w->stop_fd, &one, sizeof(one)) < 0)
		log_errno("stop the agent poller");
	pthread_join(w->thread, NULL);
	pthread_mutex_destroy(&w->lock);
	close(w->stop_fd);
	w->started = false;
}
