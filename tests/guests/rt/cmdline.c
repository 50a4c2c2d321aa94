#include "rt/cmdline.h"

#include "rt/guest.h"

bool cmdline_has(const char *word)
{
	const char *p = (const char *)CMDLINE_ADDR;
	size_t n = 0;

	while (word[n])
		n++;
	while (*p) {
		while (*p == ' ')
			p++;
		if (!memcmp(p, word, n) && (p[n] == ' ' || p[n] == 0))
			return true;
		while (*p && *p != ' ')
			p++;
	}
	return false;
}

uint64_t cmdline_u64(const char *key, uint64_t dflt)
{
	const char *p = (const char *)CMDLINE_ADDR;
	size_t n = 0;

	while (key[n])
		n++;
	while (*p) {
		while (*p == ' ')
			p++;
		if (!memcmp(p, key, n) && p[n] >= '0' && p[n] <= '9') {
			uint64_t v = 0;

			for (p += n; *p >= '0' && *p <= '9'; p++)
				v = v * 10 + (uint64_t)(*p - '0');
			return *p == ' ' || *p == 0 ? v : dflt;
		}
		while (*p && *p != ' ')
			p++;
	}
	return dflt;
}
