/* SHA-256 (FIPS 180-4) over OpenSSL's libcrypto, for checksums of files
 * that travel between hosts (snapshot packs). */
#ifndef FORKD_COMMON_SHA256_H
#define FORKD_COMMON_SHA256_H

#include <stddef.h>
#include <stdint.h>

#include "common/log.h"

#define SHA256_BYTES 32
#define SHA256_HEX   (2 * SHA256_BYTES + 1) /* lower-case hex with its NUL */

/* Opaque running hash; sha256_new() returns NULL when out of memory. */
struct sha256;
struct sha256 *sha256_new(void);
void sha256_update(struct sha256 *h, const void *data, size_t len);
/* The digest; h is freed. */
void sha256_final(struct sha256 *h, uint8_t out[SHA256_BYTES]);
void sha256_free(struct sha256 *h);

void sha256_to_hex(const uint8_t d[SHA256_BYTES], char hex[SHA256_HEX]);
/* Exactly 64 lower-case hex digits into d: 0, else -EINVAL. */
int sha256_from_hex(const char *hex, uint8_t d[SHA256_BYTES]) __must_check;

/* Hash the regular file at path whole; its size into *size (may be NULL).
 * 0 or -errno (not logged). */
int sha256_file(const char *path, uint8_t out[SHA256_BYTES], uint64_t *size) __must_check;

#endif
