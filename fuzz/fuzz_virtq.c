/* libFuzzer harness: split virtqueues as a hostile guest drives them
 * (devices/virtio/queue.h). The input is a queue setup, then the guest's
 * RAM: descriptor table, avail and used rings anywhere in it, chains of any
 * shape. The device side pops every chain it is offered, reads its
 * readable part, fills its writable part and pushes it back, as each
 * device does. Every buffer handed out must lie inside guest RAM, a chain
 * must stay within its bounds, and a broken queue must stay broken. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "devices/virtio/queue.h"

#define RAM_SIZE (64 * 1024)

struct setup {
	uint16_t size, pad;
	uint32_t desc, avail, used; /* offsets into RAM */
	uint16_t last_avail, used_idx;
};

static uint8_t ram[RAM_SIZE];
static struct virtq_req req;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct guest_mem mem = {.base = ram, .size = RAM_SIZE, .low_size = RAM_SIZE, .fd = -1};
	struct virtq q = {.max = VIRTQ_MAX_SIZE, .ready = true};
	uint8_t scratch[512];
	struct setup s;

	if (size < sizeof(s))
		return 0;
	memcpy(&s, data, sizeof(s));
	memset(ram, 0, sizeof(ram));
	memcpy(ram, data + sizeof(s), size - sizeof(s) < RAM_SIZE ? size - sizeof(s) : RAM_SIZE);
	q.size = s.size;
	q.desc_gpa = s.desc;
	q.avail_gpa = s.avail;
	q.used_gpa = s.used;
	q.last_avail = s.last_avail;
	q.used_idx = s.used_idx;
	if (virtq_validate(&mem, &q))
		return 0;
	(void)virtq_avail_idx(&mem, &q);
	(void)virtq_should_interrupt(&mem, &q);
	for (int round = 0; round < 2 * VIRTQ_MAX_SIZE; round++) {
		uint64_t out = 0, in = 0;
		int r = virtq_pop(&mem, &q, &req);

		if (r <= 0) {
			/* Once broken, nothing more is consumed. */
			if (r < 0 && (!q.broken || virtq_pop(&mem, &q, &req) > 0))
				__builtin_trap();
			break;
		}
		if (req.nr == 0 || req.nr > VIRTQ_MAX_CHAIN || req.nr_out > req.nr)
			__builtin_trap();
		for (unsigned i = 0; i < req.nr; i++) {
			const struct virtq_buf *b = &req.bufs[i];

			if (b->ptr < ram || b->ptr + b->len > ram + RAM_SIZE ||
			    b->writable != (i >= req.nr_out))
				__builtin_trap();
			(b->writable ? &in : &out)[0] += b->len;
		}
		if (out != req.out_len || in != req.in_len)
			__builtin_trap();
		/* What a device does with it: read the request, write an answer. */
		(void)virtq_req_read(&req, 0, scratch, sizeof(scratch));
		(void)virtq_req_read(&req, req.out_len / 2, scratch, sizeof(scratch));
		(void)virtq_req_write(&req, 0, scratch, sizeof(scratch));
		(void)virtq_req_write(&req, req.in_len > 8 ? req.in_len - 8 : 0, scratch, 16);
		(void)virtq_push(&mem, &q, req.head, (uint32_t)(in < 16 ? in : 16));
	}
	return 0;
}
