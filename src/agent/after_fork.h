/* after_fork for a batch of new children, from one thread.
 *
 * A snapshot whose guest runs forkd's agent (snapshot.json "agent_port",
 * docs/AGENT.md) is forked into children that all woke up with the same
 * RNG state, the same clock and no idea which child they are. Before a
 * child counts as ready, its spawner connects to the child's vsock socket
 * (<child dir>/vsock.sock, "CONNECT <agent_port>\n", "OK <n>\n") and sends
 *   {"op":"after_fork","id":1,"entropy":<base64 of 32 bytes from
 *    getrandom>,"unix_time":<now, float seconds>,"index":<child index>}
 * and waits for {"ok":true}. The entropy and the time are taken per child,
 * right before its request is written.
 *
 * after_fork_run() drives every child's connection at once with poll():
 * no threads (the spawners that call it fork), one deadline for all. A
 * guest that refuses the port (its agent is not listening yet) is asked
 * again every 50 ms until the deadline; a VMM that is gone (nobody listens
 * on the socket) fails at once. */
#ifndef FORKD_AGENT_AFTER_FORK_H
#define FORKD_AGENT_AFTER_FORK_H

#include <stddef.h>
#include <stdint.h>

#include "agent/agent.h"

#define AFTER_FORK_ENTROPY_BYTES 32

struct after_fork_target {
	const char *vsock_path;	   /* in: the child's vsock socket */
	uint32_t index;		   /* in: sent as "index" */
	int status;		   /* out: 0 (the agent answered ok:true) or -errno */
	uint64_t ns;		   /* out: first connect attempt to the agent's answer */
	char error[AGENT_ERR_LEN]; /* out: why not, in one sentence (the agent's own
				    * "error" when it answered ok:false) */
};

/* Run after_fork on every target within timeout_ms (all together).
 * Returns how many succeeded; every target's status says how it went. */
size_t after_fork_run(struct after_fork_target *t, size_t n, uint32_t port, int timeout_ms);

#endif
