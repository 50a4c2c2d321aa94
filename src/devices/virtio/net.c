/* PLACEHOLDER: being written; replaced by the real device. */
#include "devices/virtio/net.h"

#include <errno.h>

int virtio_net_create(struct vm *vm, const struct virtio_net_opts *opts)
{
	log_err("virtio-net is not implemented yet");
	return -ENOSYS;
}
