#include "rt/cmdline.h"

#include "rt/guest.h"

/* The next word of the command line, from p (a word's start or a space)
 * on, that starts with the n bytes of prefix; NULL when there is none. */
static const char *cmdline_next(const char *p, const char *prefix, size_t n)
{
	while (*p) {
		while (*p == ' ')
			p++;
		if (*p && !memcmp(p, prefix, n))
			return p;
		while (*p && *p != ' ')
			p++;
	}
	return NULL;
}

static size_t cmdline_len(const char *s)
{
	size_t n = 0;

	while (s[n])
		n++;
	return n;
}

bool cmdline_has(const char *word)
{
	size_t n = cmdline_len(word);
	const char *p = (const char *)CMDLINE_ADDR;

	while ((p = cmdline_next(p, word, n))) {
		if (p[n] == ' ' || p[n] == 0)
			return true;
		while (*p && *p != ' ')
			p++;
	}
	return false;
}

uint64_t cmdline_u64(const char *key, uint64_t dflt)
{
	size_t n = cmdline_len(key);
	const char *p = (const char *)CMDLINE_ADDR;

	while ((p = cmdline_next(p, key, n))) {
		const char *d = p + n;
		uint64_t v = 0;

		if (*d >= '0' && *d <= '9') {
			for (; *d >= '0' && *d <= '9'; d++)
				v = v * 10 + (uint64_t)(*d - '0');
			return *d == ' ' || *d == 0 ? v : dflt;
		}
		while (*p && *p != ' ')
			p++;
	}
	return dflt;
}
