/* virtio-vsock (virtio 1.2 §5.10), host side on Unix sockets.
 *
 * Host to guest: the VMM listens on uds_path; a client connects, writes
 * "CONNECT <port>\n" and, once the guest accepted, reads "OK <host port>\n";
 * the stream is then spliced to the guest's socket.
 * Guest to host: a guest connection to CID 2, port P is forwarded to the
 * Unix socket "<uds_path>_P" (which a host program listens on). */
#ifndef FORKD_DEVICES_VIRTIO_VSOCK_H
#define FORKD_DEVICES_VIRTIO_VSOCK_H

#include <stdint.h>

#include "vmm/vm.h"

struct virtio_vsock_opts {
	uint64_t guest_cid; /* >= 3 */
	const char *uds_path;
};

int virtio_vsock_create(struct vm *vm, const struct virtio_vsock_opts *opts) __must_check;

#endif
