/* libFuzzer harness: memory.map (snapshot/memdiff.h), a file from the
 * snapshot directory that a child trusts to lay pages over its RAM. */
#include <stddef.h>
#include <stdint.h>

#include "common/log.h"
#include "snapshot/memdiff.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct memdiff d;

	log_set_level(LOG_ERR);
	/* 64 MiB of RAM: the size the seed corpus's maps were written for. */
	if (!memdiff_parse_map("fuzz", data, size, 64ULL << 20, &d))
		memdiff_free(&d);
	return 0;
}
