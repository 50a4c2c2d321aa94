/* Split virtqueues (virtio 1.2 §2.7), device side.
 *
 * Everything in a ring is written by the guest and may be hostile: every
 * index is range-checked, every chain is bounded by the queue size (a loop
 * cannot run forever), every buffer is checked against guest RAM through
 * guest_ptr(). A malformed chain fails that request; the device then marks
 * itself DEVICE_NEEDS_RESET (§2.1.2) and the VMM carries on.
 * forkd offers neither VIRTIO_F_INDIRECT_DESC nor VIRTIO_F_EVENT_IDX. */
#ifndef FORKD_DEVICES_VIRTIO_QUEUE_H
#define FORKD_DEVICES_VIRTIO_QUEUE_H

#include <stdbool.h>
#include <stdint.h>

#include "common/log.h"
#include "vmm/memory.h"

#define VIRTQ_MAX_SIZE	    256
#define VIRTQ_DESC_NEXT	    1
#define VIRTQ_DESC_WRITE    2
#define VIRTQ_DESC_INDIRECT 4

struct virtq {
	uint16_t size; /* entries, set by the driver, <= max */
	uint16_t max;  /* what the device offers */
	bool ready;
	bool broken; /* a malformed ring was seen; nothing more is consumed */
	uint64_t desc_gpa, avail_gpa, used_gpa;
	uint16_t last_avail; /* next avail ring slot to consume */
	uint16_t used_idx;   /* next used ring slot to fill */
};

/* One buffer of a chain: host pointer, already bounds-checked. */
struct virtq_buf {
	uint8_t *ptr;
	uint32_t len;
	bool writable; /* device writes it (VIRTQ_DESC_F_WRITE) */
};

#define VIRTQ_MAX_CHAIN VIRTQ_MAX_SIZE

struct virtq_req {
	uint16_t head;
	unsigned nr;	  /* buffers in bufs[] */
	unsigned nr_out;  /* leading device-readable buffers */
	uint64_t out_len; /* bytes the device may read */
	uint64_t in_len;  /* bytes the device may write */
	struct virtq_buf bufs[VIRTQ_MAX_CHAIN];
};

/* Check the ring addresses the driver set (when it sets QueueReady).
 * -EINVAL when a ring is misaligned or not inside guest RAM. */
int virtq_validate(const struct guest_mem *mem, const struct virtq *q) __must_check;

/* Take the next available chain.
 *   1        req filled
 *   0        nothing available
 *   -EINVAL  malformed chain (bad index, loop, a buffer outside RAM, a
 *            readable buffer after a writable one, over 4 GiB in total);
 *            q->broken is set.
 */
int virtq_pop(const struct guest_mem *mem, struct virtq *q, struct virtq_req *req) __must_check;

/* Return a chain to the driver with `written` bytes filled in. */
int virtq_push(const struct guest_mem *mem, struct virtq *q, uint16_t head,
	       uint32_t written) __must_check;

/* The driver's avail index (how many chains it has ever made available),
 * or -1 for a queue that is not ready or whose ring is not in RAM. */
int virtq_avail_idx(const struct guest_mem *mem, const struct virtq *q);

/* Whether the driver wants an interrupt now (VIRTQ_AVAIL_F_NO_INTERRUPT). */
bool virtq_should_interrupt(const struct guest_mem *mem, const struct virtq *q);

/* Bytes of a chain as one stream: copy out of the readable part starting at
 * `off`, or into the writable part. They return the bytes copied. */
uint64_t virtq_req_read(const struct virtq_req *req, uint64_t off, void *dst, uint64_t len);
uint64_t virtq_req_write(const struct virtq_req *req, uint64_t off, const void *src, uint64_t len);

#endif
