/* Standard base64 (RFC 4648 section 4, with padding): once, for the host
 * side of the agent protocol (after_fork's entropy, the daemon's file
 * transfers). Decoding is strict: what the guest sends is untrusted, so
 * anything but canonical padded base64 is refused. */
#ifndef FORKD_COMMON_BASE64_H
#define FORKD_COMMON_BASE64_H
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Characters base64_encode() writes for n bytes, without the NUL. */
#define BASE64_LEN(n) (((n) + 2) / 3 * 4)

/* Encode n bytes into out, which holds BASE64_LEN(n) + 1 bytes. */
void base64_encode(const void *in, size_t n, char *out);
/* The same into a new malloc'd string; NULL when out of memory. */
char *base64_encode_alloc(const void *in, size_t n);
/* Decode n characters into a new malloc'd buffer (*out); the decoded
 * length, or -1 (nothing allocated) when s is not canonical padded
 * base64 or memory runs out. */
ssize_t base64_decode(const char *s, size_t n, uint8_t **out);
#endif
