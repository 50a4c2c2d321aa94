/* The test guests' agent: the smallest honest speaker of forkd's agent wire
 * protocol (docs/API.md, "Agent protocol"), for testing the daemon and the
 * CLI without the Linux guest image. Linked into the guests that serve it
 * (tests/guests/Makefile, AGENT_GUESTS): agent_stub.c, isolate_mem_hog.c.
 *
 * With a virtio-vsock device it listens on guest port AGENT_PORT and serves
 * JSON lines on many connections at once, one reply line per request line:
 *   {"op":"ping","id":X}  -> {"id":X,"ok":true,"pong":true,"pid":1,
 *                             "numpy":"none","warm":true,"index":I,
 *                             "after_fork":B,"vmctl_index":V,"entropy_fnv":E}
 *                            I: the index after_fork handed over; before any
 *                            after_fork, the index vmctl holds (V), or null
 *                            in a VM that was not restored from a snapshot.
 *                            B: whether after_fork was received since the
 *                            last restore; E: FNV-1a (32-bit, 8 hex digits)
 *                            of the entropy it carried, or null.
 *   {"op":"after_fork","id":X,"entropy":base64 (>= 32 bytes),
 *    "unix_time":number,"index":integer}
 *                         -> {"id":X,"ok":true,"reseeded":[],"entropy_bytes":N}
 *                            The agent checks the fields, records the index
 *                            and the entropy's hash and says honestly that
 *                            it reseeded nothing: it has no RNG, no clock
 *                            and no interpreter to reseed. A bad field gets
 *                            ok:false naming it.
 *   any other op          -> {"id":X,"ok":false,"error":"agent_stub: op not supported"}
 *   not a JSON object, no op, a line over 4096 bytes -> ok:false with the
 *   reason; the connection stays open.
 * It has no processes, files or Python: exec, eval, write_file, read_file,
 * list_dir and remove are refused rather than imitated (the daemon tests
 * script those answers on the host: tests/daemon/test_files.py). Errors say "agent_stub:"
 * whichever guest serves them (the daemon tests match that text).
 *
 * Guest kernel code is emulated on KVM-PVM hosts, so the byte handling
 * (line assembly, JSON scan, reply) runs at CPL3 through user_call(); only
 * the virtqueue work stays at CPL0. Receive is interrupt-driven: the vCPU
 * sleeps in hlt, which is also where the snapshot is taken. */
#ifndef FORKD_TEST_GUEST_AGENT_H
#define FORKD_TEST_GUEST_AGENT_H

#include <stdbool.h>
#include <stdint.h>

#define AGENT_PORT 8888

/* Find the virtio-vsock device, set it up and listen on AGENT_PORT.
 * Returns false, touching nothing, when the VM has no vsock device. Call
 * after idt_init() and user_init(); leaves interrupts enabled. */
bool agent_start(void);

/* Serve requests forever (after agent_start() returned true). Whenever no
 * packet is waiting, idle (if not NULL) is called with interrupts off: when
 * it returns true the loop looks for packets again at once (idle did the
 * waiting, e.g. spinning at CPL3 for a while), when false the vCPU sleeps
 * in hlt until the next interrupt. A restore (the device's transport reset
 * event) closes every connection and re-reads the CID and the child index. */
__attribute__((noreturn)) void agent_serve(bool (*idle)(void));

/* The child index vmctl held at the last restore; -1 in a VM that was not
 * restored from a snapshot. */
int64_t agent_child_index(void);

/* Whether an after_fork was answered with ok:true since the last restore. */
bool agent_after_fork_done(void);

/* Without a vsock device: feed sample lines through the request handler and
 * check each reply; ends the guest with FAIL on a mismatch. */
void agent_self_test(void);

#endif
