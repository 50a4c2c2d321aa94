/* libFuzzer harness: a kept child's registry entry (fork/kept.h), which
 * `forkd ls`, `kill`, `ping`, `cleanup` and `snapshot --from-sandbox`
 * read as root from $FORKD_HOME/kept/. */
#include <stdint.h>

#include "common/log.h"
#include "fork/kept.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct child_rec r;

	log_set_level(LOG_ERR);
	if (size <= KEPT_ENTRY_MAX)
		(void)kept_parse("fuzz", (const char *)data, size, "k-0123abcd", &r);
	return 0;
}
