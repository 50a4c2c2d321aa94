/* Byte buffers for device state: a growable writer and a bounds-checked
 * reader. Everything is little-endian, fixed-width.
 *
 * The reader never reads past its end: after the first short read every
 * get returns zero and r->err stays set, so a restore function can read
 * all fields and check err once before using any of them. */
#ifndef FORKD_COMMON_SBUF_H
#define FORKD_COMMON_SBUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct sbuf {
	uint8_t *data;
	size_t len, cap;
	bool oom; /* an allocation failed: contents are incomplete */
};

void sbuf_put(struct sbuf *b, const void *p, size_t n);
void sbuf_u8(struct sbuf *b, uint8_t v);
void sbuf_u16(struct sbuf *b, uint16_t v);
void sbuf_u32(struct sbuf *b, uint32_t v);
void sbuf_u64(struct sbuf *b, uint64_t v);
void sbuf_free(struct sbuf *b);

struct sreader {
	const uint8_t *p;
	size_t len, off;
	bool err; /* a get ran past the end */
};

static inline struct sreader sreader_init(const void *p, size_t len)
{
	return (struct sreader){p, len, 0, false};
}

void sreader_get(struct sreader *r, void *out, size_t n);
uint8_t sreader_u8(struct sreader *r);
uint16_t sreader_u16(struct sreader *r);
uint32_t sreader_u32(struct sreader *r);
uint64_t sreader_u64(struct sreader *r);
/* True when every byte was consumed and no get failed. */
bool sreader_done(const struct sreader *r);

#endif
