/* libFuzzer harness: what a guest's agent sends back (agent/agent.h), read
 * by the daemon (as root) and the CLI. The input is the guest's side of the
 * stream after the handshake: agent_request() is called three times on
 * it, as a session of requests would, through a socketpair whose other end
 * wrote the input and shut down. */
#include <stdint.h>
#include <sys/socket.h>
#include <unistd.h>

#include "agent/agent.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct agent_conn c = {.fd = -1};
	char err[AGENT_ERR_LEN];
	int fds[2];

	/* The socket buffer must take the whole input at once. */
	if (size > 65536 || socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) < 0)
		return 0;
	if (write(fds[1], data, size) != (ssize_t)size) {
		close(fds[0]);
		close(fds[1]);
		return 0;
	}
	shutdown(fds[1], SHUT_WR);
	c.fd = fds[0];
	for (int i = 0; i < 3; i++) {
		json_t *req = json_pack("{s:s}", "op", "ping"), *resp = NULL;
		int r = req ? agent_request(&c, req, &resp, 50, err, sizeof(err)) : -1;

		json_decref(req);
		json_decref(resp);
		if (r)
			break;
	}
	agent_close(&c);
	close(fds[1]);
	return 0;
}
