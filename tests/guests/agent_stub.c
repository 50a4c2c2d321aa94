/* agent_stub: the test guests' agent (agent/agent.h) and nothing else, for
 * testing the daemon and the CLI without the Linux guest image.
 *
 * With a virtio-vsock device it listens on guest port 8888, rings the warm
 * doorbell (so `forkd snapshot` takes it there) and serves the agent
 * protocol until it is stopped.
 *
 * Without a vsock device (tests/vmm/run.sh boots every guest plainly) it
 * feeds sample lines through the same request handler, checks each reply
 * and prints SUCCESS. */
#include "agent/agent.h"
#include "rt/guest.h"
#include "rt/user.h"

#define VMCTL 0x610

int main(void);
int main(void)
{
	idt_init();
	user_init();
	if (!agent_start()) {
		agent_self_test();
		return 0;
	}
	outl(VMCTL, 1); /* warm: a snapshot is taken from here */
	agent_serve(0);
}
