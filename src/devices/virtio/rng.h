/* virtio-rng / entropy device (virtio 1.2 §5.4): fills each guest buffer
 * from getrandom(2). */
#ifndef FORKD_DEVICES_VIRTIO_RNG_H
#define FORKD_DEVICES_VIRTIO_RNG_H

#include "vmm/vm.h"

int virtio_rng_create(struct vm *vm) __must_check;

#endif
