/* PLACEHOLDER: being written; replaced by the real device. */
#include "devices/virtio/vsock.h"

#include <errno.h>

int virtio_vsock_create(struct vm *vm, const struct virtio_vsock_opts *opts)
{
	log_err("virtio-vsock is not implemented yet");
	return -ENOSYS;
}
