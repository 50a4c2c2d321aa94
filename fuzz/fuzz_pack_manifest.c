/* libFuzzer harness: manifest.json of a snapshot pack
 * (snapshot/pack_manifest.h), the first thing `forkd snapshot unpack`
 * reads from a file that came from another host. A manifest that parses
 * must also survive being written and read back unchanged. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "snapshot/pack_manifest.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct pack_manifest m, again;
	char err[256];
	json_t *j;
	char *text;

	if (pack_manifest_parse((const char *)data, size, &m, err, sizeof(err)))
		return 0;
	j = pack_manifest_json(&m);
	text = j ? json_dumps(j, JSON_PRESERVE_ORDER) : NULL;
	json_decref(j);
	if (!text)
		return 0;
	if (pack_manifest_parse(text, strlen(text), &again, err, sizeof(err)) ||
	    memcmp(&m, &again, sizeof(m)))
		abort();
	free(text);
	return 0;
}
