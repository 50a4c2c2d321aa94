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
