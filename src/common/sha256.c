/* SHA-256 through OpenSSL's EVP interface (the one not deprecated in 3.0). */
#include "common/sha256.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct sha256 {
	EVP_MD_CTX *ctx;
};

struct sha256 *sha256_new(void)
{
	struct sha256 *h = malloc(sizeof(*h));

	if (!h)
		return NULL;
	h->ctx = EVP_MD_CTX_new();
	if (!h->ctx || EVP_DigestInit_ex(h->ctx, EVP_sha256(), NULL) != 1) {
		EVP_MD_CTX_free(h->ctx);
		free(h);
		return NULL;
	}
	return h;
}

void sha256_update(struct sha256 *h, const void *data, size_t len)
{
	/* Cannot fail for an initialised SHA-256 context in the default provider. */
	(void)EVP_DigestUpdate(h->ctx, data, len);
}

void sha256_final(struct sha256 *h, uint8_t out[SHA256_BYTES])
{
	unsigned n = 0;

	if (EVP_DigestFinal_ex(h->ctx, out, &n) != 1 || n != SHA256_BYTES)
		memset(out, 0, SHA256_BYTES);
	sha256_free(h);
}

void sha256_free(struct sha256 *h)
{
	if (!h)
		return;
	EVP_MD_CTX_free(h->ctx);
	free(h);
}

void sha256_to_hex(const uint8_t d[SHA256_BYTES], char hex[SHA256_HEX])
{
	static const char digits[] = "0123456789abcdef";

	for (int i = 0; i < SHA256_BYTES; i++) {
		hex[2 * i] = digits[d[i] >> 4];
		hex[2 * i + 1] = digits[d[i] & 15];
	}
	hex[2 * SHA256_BYTES] = 0;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

int sha256_from_hex(const char *hex, uint8_t d[SHA256_BYTES])
{
	if (strlen(hex) != 2 * SHA256_BYTES)
		return -EINVAL;
	for (int i = 0; i < SHA256_BYTES; i++) {
		int hi = hexval(hex[2 * i]), lo = hexval(hex[2 * i + 1]);

		if (hi < 0 || lo < 0)
			return -EINVAL;
		d[i] = (uint8_t)(hi << 4 | lo);
	}
	return 0;
}

int sha256_file(const char *path, uint8_t out[SHA256_BYTES], uint64_t *size)
{
	const size_t chunk = 1 << 20;
	struct sha256 *h = NULL;
	uint64_t total = 0;
	struct stat st;
	char *buf = NULL;
	int fd, err = 0;
	ssize_t n;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0) {
		err = -errno;
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		err = -EINVAL;
		goto out;
	}
	buf = malloc(chunk);
	h = sha256_new();
	if (!buf || !h) {
		err = -ENOMEM;
		goto out;
	}
	while ((n = read(fd, buf, chunk)) != 0) {
		if (n < 0) {
			if (errno == EINTR)
				continue;
			err = -errno;
			goto out;
		}
		sha256_update(h, buf, (size_t)n);
		total += (uint64_t)n;
	}
	sha256_final(h, out);
	h = NULL;
	if (size)
		*size = total;
out:
	sha256_free(h);
	free(buf);
	close(fd);
	return err;
}
