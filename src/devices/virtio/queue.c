#include "devices/virtio/queue.h"

#include <errno.h>
#include <string.h>

#include "common/util.h"

/* Ring layouts, virtio 1.2 §2.7.5-§2.7.8 (little-endian, as the host). */
struct vring_desc {
	uint64_t addr;
	uint32_t len;
	uint16_t flags;
	uint16_t next;
} __attribute__((packed));

#define AVAIL_F_NO_INTERRUPT 1

static uint64_t desc_bytes(uint16_t n)
{
	return 16ULL * n;
}
static uint64_t avail_bytes(uint16_t n)
{
	return 6 + 2ULL * n;
}
static uint64_t used_bytes(uint16_t n)
{
	return 6 + 8ULL * n;
}

int virtq_validate(const struct guest_mem *mem, const struct virtq *q)
{
	if (q->size == 0 || q->size > q->max || (q->size & (q->size - 1)))
		return -EINVAL;
	/* §2.7: alignment 16 (descriptors), 2 (driver area), 4 (device area). */
	if ((q->desc_gpa & 15) || (q->avail_gpa & 1) || (q->used_gpa & 3))
		return -EINVAL;
	if (!guest_ptr(mem, q->desc_gpa, desc_bytes(q->size)) ||
	    !guest_ptr(mem, q->avail_gpa, avail_bytes(q->size)) ||
	    !guest_ptr(mem, q->used_gpa, used_bytes(q->size)))
		return -EINVAL;
	return 0;
}

static uint16_t load16(const volatile void *p)
{
	uint16_t v;

	memcpy(&v, (const void *)p, 2);
	return v;
}

int virtq_pop(const struct guest_mem *mem, struct virtq *q, struct virtq_req *req)
{
	const uint8_t *avail;
	const struct vring_desc *descs;
	uint16_t avail_idx, idx;
	unsigned i;

	if (!q->ready || q->broken)
		return 0;
	avail = guest_ptr(mem, q->avail_gpa, avail_bytes(q->size));
	descs = guest_ptr(mem, q->desc_gpa, desc_bytes(q->size));
	if (!avail || !descs) {
		q->broken = true;
		return -EINVAL;
	}
	avail_idx = __atomic_load_n((const uint16_t *)(avail + 2), __ATOMIC_ACQUIRE);
	if (avail_idx == q->last_avail)
		return 0;
	/* The driver cannot have more than size chains outstanding. */
	if ((uint16_t)(avail_idx - q->last_avail) > q->size) {
		q->broken = true;
		return -EINVAL;
	}
	idx = load16(avail + 4 + 2 * (q->last_avail % q->size));
	q->last_avail++;

	memset(req, 0, offsetof(struct virtq_req, bufs));
	req->head = idx;
	for (i = 0;; i++) {
		struct vring_desc d;
		uint8_t *p;

		/* A chain visits each descriptor at most once: more than size
		 * links means a loop. */
		if (idx >= q->size || i >= q->size)
			goto bad;
		memcpy(&d, &descs[idx], sizeof(d));
		if (d.flags & VIRTQ_DESC_INDIRECT)
			goto bad; /* not negotiated */
		p = guest_ptr(mem, d.addr, d.len);
		if (!p)
			goto bad;
		if (d.flags & VIRTQ_DESC_WRITE) {
			req->in_len += d.len;
		} else {
			/* §2.7.4.2: readable buffers come before writable ones. */
			if (req->in_len || req->nr != req->nr_out)
				goto bad;
			req->out_len += d.len;
			req->nr_out++;
		}
		if (req->in_len + req->out_len > 0xffffffffULL)
			goto bad;
		req->bufs[req->nr++] = (struct virtq_buf){p, d.len, !!(d.flags & VIRTQ_DESC_WRITE)};
		if (!(d.flags & VIRTQ_DESC_NEXT))
			break;
		idx = d.next;
	}
	return 1;

bad:
	q->broken = true;
	return -EINVAL;
}

int virtq_push(const struct guest_mem *mem, struct virtq *q, uint16_t head, uint32_t written)
{
	uint8_t *used = guest_ptr(mem, q->used_gpa, used_bytes(q->size));
	uint8_t *elem;
	uint32_t id = head;

	if (!used)
		return -EFAULT;
	elem = used + 4 + 8 * (q->used_idx % q->size);
	memcpy(elem, &id, 4);
	memcpy(elem + 4, &written, 4);
	q->used_idx++;
	/* The element must be visible before the index that publishes it. */
	__atomic_store_n((uint16_t *)(used + 2), q->used_idx, __ATOMIC_RELEASE);
	return 0;
}

int virtq_avail_idx(const struct guest_mem *mem, const struct virtq *q)
{
	const uint8_t *avail;

	if (!q->ready || q->broken || !(avail = guest_ptr(mem, q->avail_gpa, 4)))
		return -1;
	return __atomic_load_n((const uint16_t *)(avail + 2), __ATOMIC_ACQUIRE);
}

bool virtq_should_interrupt(const struct guest_mem *mem, const struct virtq *q)
{
	const uint8_t *avail = guest_ptr(mem, q->avail_gpa, 2);

	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	return !avail || !(load16(avail) & AVAIL_F_NO_INTERRUPT);
}

uint64_t virtq_req_read(const struct virtq_req *req, uint64_t off, void *dst, uint64_t len)
{
	uint8_t *out = dst;
	uint64_t done = 0;
	unsigned i;

	for (i = 0; i < req->nr_out && done < len; i++) {
		const struct virtq_buf *b = &req->bufs[i];
		uint64_t n;

		if (off >= b->len) {
			off -= b->len;
			continue;
		}
		n = MIN(b->len - off, len - done);
		memcpy(out + done, b->ptr + off, n);
		done += n;
		off = 0;
	}
	return done;
}

uint64_t virtq_req_write(const struct virtq_req *req, uint64_t off, const void *src, uint64_t len)
{
	const uint8_t *in = src;
	uint64_t done = 0;
	unsigned i;

	for (i = req->nr_out; i < req->nr && done < len; i++) {
		const struct virtq_buf *b = &req->bufs[i];
		uint64_t n;

		if (off >= b->len) {
			off -= b->len;
			continue;
		}
		n = MIN(b->len - off, len - done);
		memcpy(b->ptr + off, in + done, n);
		done += n;
		off = 0;
	}
	return done;
}
