/* libFuzzer harness: snapshot.json (snapshot/snapshot.h), read by every
 * fork, the daemon's listings and `forkd snapshot ls`. */
#include <stdint.h>

#include "common/log.h"
#include "snapshot/snapshot.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct snapshot_meta m;

	log_set_level(LOG_ERR);
	if (size <= SNAPSHOT_META_MAX)
		(void)snapshot_meta_parse("fuzz", (const char *)data, size, &m);
	return 0;
}
