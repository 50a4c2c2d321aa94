/* PLACEHOLDER: being written; replaced by the real device. */
#include "devices/virtio/blk.h"

#include <errno.h>

int virtio_blk_create(struct vm *vm, const struct virtio_blk_opts *opts)
{
	log_err("virtio-blk is not implemented yet");
	return -ENOSYS;
}
