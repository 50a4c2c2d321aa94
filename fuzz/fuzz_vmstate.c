/* libFuzzer harness: the vmstate file (snapshot/vmstate.h) and the machine
 * section read from it (vm_persist_machine()), which a child trusts for its
 * RAM size, vCPUs and CPUID policy. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "snapshot/vmstate.h"
#include "vmm/vm_persist.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t *buf = malloc(size ? size : 1);
	struct vmstate vs;
	struct vm_machine m;

	log_set_level(LOG_ERR);
	if (!buf)
		return 0;
	memcpy(buf, data, size);
	if (vmstate_parse("fuzz", buf, size, &vs)) {
		free(buf);
		return 0;
	}
	{
		struct vm_section_source in = vmstate_source(&vs);

		(void)vm_persist_machine("fuzz", &in, &m);
	}
	vmstate_free(&vs);
	return 0;
}
