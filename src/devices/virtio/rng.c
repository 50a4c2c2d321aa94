/* virtio-rng: one request queue; every chain's writable part is filled
 * from getrandom(2) (virtio 1.2 §5.4.6). The device has no configuration
 * space and no feature bits of its own. */
#include "devices/virtio/rng.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/random.h>

#include "common/util.h"
#include "devices/virtio/mmio.h"

#define RNG_QUEUE_SIZE 64
/* At most this much entropy per chain: a driver asking for more gets a
 * short (but valid) answer, §5.4.6.1 lets the device fill fewer bytes. */
#define RNG_MAX_PER_REQ (64 * KIB)

struct virtio_rng {
	struct virtio_dev vdev; /* first: the transport hands back &vdev */
	struct virtq_req req;	/* scratch for the chain being served */
};

/* Fill up to `want` bytes of the chain's writable buffers; returns the
 * bytes written or -errno when getrandom fails. */
static int64_t rng_fill(const struct virtq_req *req, uint64_t want)
{
	uint64_t done = 0;
	unsigned i;

	for (i = req->nr_out; i < req->nr && done < want; i++) {
		const struct virtq_buf *b = &req->bufs[i];
		uint64_t off = 0;

		while (off < b->len && done < want) {
			size_t n = (size_t)MIN(b->len - off, want - done);
			ssize_t r = getrandom(b->ptr + off, n, 0);

			if (r < 0) {
				if (errno == EINTR)
					continue;
				return log_errno("getrandom(%zu bytes)", n);
			}
			off += (uint64_t)r;
			done += (uint64_t)r;
		}
	}
	return (int64_t)done;
}

static void rng_notify(struct virtio_dev *vdev, unsigned q)
{
	struct virtio_rng *rng = (struct virtio_rng *)vdev;
	const struct guest_mem *mem = &vdev->vm->mem;
	struct virtq *vq = &vdev->queues[q];
	bool pushed = false;
	int r;

	while ((r = virtq_pop(mem, vq, &rng->req)) == 1) {
		int64_t n = rng_fill(&rng->req, MIN(rng->req.in_len, RNG_MAX_PER_REQ));

		/* A failed getrandom still completes the request, with 0 bytes:
		 * the driver retries rather than waiting forever. */
		if (n < 0)
			n = 0;
		if (virtq_push(mem, vq, rng->req.head, (uint32_t)n)) {
			virtio_fail(vdev, "used ring not in guest memory");
			break;
		}
		pushed = true;
	}
	if (r < 0)
		virtio_fail(vdev, "malformed descriptor chain on the request queue");
	if (pushed)
		virtio_notify_used(vdev, q);
}

static void rng_destroy(struct virtio_dev *vdev)
{
	free(vdev);
}

static const struct virtio_dev_ops rng_ops = {
    .name = "virtio-rng",
    .device_id = VIRTIO_ID_RNG,
    .nr_queues = 1,
    .queue_max = RNG_QUEUE_SIZE,
    .notify = rng_notify,
    .destroy = rng_destroy,
};

int virtio_rng_create(struct vm *vm)
{
	struct virtio_rng *rng = calloc(1, sizeof(*rng));

	if (!rng) {
		log_err("virtio-rng: out of memory");
		return -ENOMEM;
	}
	return virtio_mmio_register(vm, &rng->vdev, &rng_ops);
}
