/* Waiting for a booting guest's agent (docs/AGENT.md), for `forkd snapshot`:
 * a thread polls the VM's vsock socket with agent/agent.c (connect,
 * "CONNECT <port>", ping) until the agent answers warm=true, then writes 1
 * to an eventfd the caller waits on together with the VM.
 *
 * Polling: a connect still unanswered after AGENT_WAIT_CONNECT_MS (the
 * guest's vsock driver is not up: the device holds the request until it
 * is) is made again at once, so at most one request waits in the device at
 * a time; a refused port (nobody listens yet) or a failed ping is retried
 * after AGENT_WAIT_RETRY_MS; a connection to an agent that is not warm yet
 * is kept for the next ping. Each ping waits at most AGENT_WAIT_PING_MS.
 *
 * Order: agent_wait_start() once the VM is built (its first connection
 * waits in the device until the VM runs); agent_wait_stop() either
 * after the warm signal (the thread has ended) or, on failure, after
 * vm_destroy() (which closes the vsock socket and so ends a connect in
 * progress; otherwise the stop can take up to AGENT_WAIT_CONNECT_MS). */
#ifndef FORKD_CLI_AGENT_WAIT_H
#define FORKD_CLI_AGENT_WAIT_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "agent/agent.h"

#define AGENT_WAIT_CONNECT_MS 30000
#define AGENT_WAIT_PING_MS    10000
#define AGENT_WAIT_RETRY_MS   1000

/* All zero (e.g. in a zeroed struct) until agent_wait_start(). */
struct agent_wait {
	bool started;
	const char *vsock; /* the VM's vsock socket (host end) */
	uint32_t port;
	int stop_fd; /* eventfd: stop polling */
	int warm_fd; /* eventfd, not owned: written when the agent is warm */
	pthread_t thread;
	pthread_mutex_t lock; /* guards what follows */
	unsigned connects;
	char last[AGENT_ERR_LEN]; /* what the last poll found */
	long long pid;		  /* the warm agent's pid (-1: not given) */
	char numpy[32];		  /* and its numpy version */
};

/* Start polling vsock for the agent on port. 0 or -errno (logged). */
int agent_wait_start(struct agent_wait *w, const char *vsock, uint32_t port, int warm_fd);

/* "N connects; last: <what the last poll found>". */
void agent_wait_status(struct agent_wait *w, char *out, size_t size);

/* Stop the thread and free everything; a no-op when not started. */
void agent_wait_stop(struct agent_wait *w);

#endif
