/* PLACEHOLDER: being written; replaced by the real device. */
#include "devices/virtio/rng.h"

#include <errno.h>

int virtio_rng_create(struct vm *vm)
{
	log_err("virtio-rng is not implemented yet");
	return -ENOSYS;
}
