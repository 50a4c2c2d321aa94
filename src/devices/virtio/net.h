/* virtio-net (virtio 1.2 §5.1) backed by an existing tap interface. Frames
 * the guest transmits are written to the tap; frames read from the tap (on
 * the event loop) fill the guest's receive queue. */
#ifndef FORKD_DEVICES_VIRTIO_NET_H
#define FORKD_DEVICES_VIRTIO_NET_H

#include <stdint.h>

#include "vmm/vm.h"

struct virtio_net_opts {
	const char *tap; /* interface name, must exist (or be creatable: root) */
	uint8_t mac[6];	 /* guest MAC address */
};

int virtio_net_create(struct vm *vm, const struct virtio_net_opts *opts) __must_check;

#endif
