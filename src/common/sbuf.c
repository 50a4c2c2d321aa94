#include "common/sbuf.h"

#include <stdlib.h>
#include <string.h>

void sbuf_put(struct sbuf *b, const void *p, size_t n)
{
	if (b->oom)
		return;
	if (b->len + n > b->cap) {
		size_t cap = b->cap ? b->cap : 256;
		uint8_t *d;

		while (cap < b->len + n)
			cap *= 2;
		d = realloc(b->data, cap);
		if (!d) {
			b->oom = true;
			return;
		}
		b->data = d;
		b->cap = cap;
	}
	memcpy(b->data + b->len, p, n);
	b->len += n;
}

void sbuf_u8(struct sbuf *b, uint8_t v)
{
	sbuf_put(b, &v, 1);
}

void sbuf_u16(struct sbuf *b, uint16_t v)
{
	sbuf_put(b, &v, 2);
}

void sbuf_u32(struct sbuf *b, uint32_t v)
{
	sbuf_put(b, &v, 4);
}

void sbuf_u64(struct sbuf *b, uint64_t v)
{
	sbuf_put(b, &v, 8);
}

void sbuf_free(struct sbuf *b)
{
	free(b->data);
	memset(b, 0, sizeof(*b));
}

void sreader_get(struct sreader *r, void *out, size_t n)
{
	if (r->err || n > r->len - r->off) {
		r->err = true;
		memset(out, 0, n);
		return;
	}
	memcpy(out, r->p + r->off, n);
	r->off += n;
}

uint8_t sreader_u8(struct sreader *r)
{
	uint8_t v;

	sreader_get(r, &v, 1);
	return v;
}

uint16_t sreader_u16(struct sreader *r)
{
	uint16_t v;

	sreader_get(r, &v, 2);
	return v;
}

uint32_t sreader_u32(struct sreader *r)
{
	uint32_t v;

	sreader_get(r, &v, 4);
	return v;
}

uint64_t sreader_u64(struct sreader *r)
{
	uint64_t v;

	sreader_get(r, &v, 8);
	return v;
}

bool sreader_done(const struct sreader *r)
{
	return !r->err && r->off == r->len;
}
