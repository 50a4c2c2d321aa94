#include "common/base64.h"

#include <limits.h>
#include <stdlib.h>

static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

void base64_encode(const void *in, size_t n, char *out)
{
	const uint8_t *p = in;

	for (size_t i = 0; i < n; i += 3) {
		uint32_t v = (uint32_t)p[i] << 16;

		if (i + 1 < n)
			v |= (uint32_t)p[i + 1] << 8;
		if (i + 2 < n)
			v |= p[i + 2];
		*out++ = alphabet[v >> 18 & 63];
		*out++ = alphabet[v >> 12 & 63];
		*out++ = i + 1 < n ? alphabet[v >> 6 & 63] : '=';
		*out++ = i + 2 < n ? alphabet[v & 63] : '=';
	}
	*out = 0;
}

char *base64_encode_alloc(const void *in, size_t n)
{
	char *out;

	if (n > (SIZE_MAX - 1) / 4 * 3 - 2)
		return NULL;
	out = malloc(BASE64_LEN(n) + 1);
	if (out)
		base64_encode(in, n, out);
	return out;
}

/* 0-63 for a character of the alphabet, -1 otherwise. */
static int value(char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

ssize_t base64_decode(const char *s, size_t n, uint8_t **out)
{
	uint8_t *buf, *o;
	uint32_t v = 0;
	size_t pad = 0;

	if (n % 4 || n / 4 * 3 > (size_t)SSIZE_MAX)
		return -1;
	/* Padding: at most two '=', only at the end. */
	if (n && s[n - 1] == '=')
		pad = n >= 2 && s[n - 2] == '=' ? 2 : 1;
	buf = o = malloc(n / 4 * 3 + 1);
	if (!buf)
		return -1;
	for (size_t i = 0; i < n; i++) {
		int c = i >= n - pad ? 0 : value(s[i]);

		if (c < 0) {
			free(buf);
			return -1;
		}
		v = v << 6 | (uint32_t)c;
		/* Canonical: the bits that the padding drops are zero. */
		if (i == n - 1 && (v & (pad == 2 ? 0xffffu : pad ? 0xffu : 0))) {
			free(buf);
			return -1;
		}
		if (i % 4 == 3) {
			*o++ = (uint8_t)(v >> 16);
			*o++ = (uint8_t)(v >> 8);
			*o++ = (uint8_t)v;
			v = 0;
		}
	}
	*out = buf;
	return (o - buf) - (ssize_t)pad;
}
