#include "devices/vmgenid.h"

#include <errno.h>
#include <string.h>
#include <sys/random.h>

#include "common/log.h"
#include "vmm/acpi.h"

static int write_id(struct vm *vm)
{
	uint8_t id[VMGENID_SIZE];
	uint8_t *p = guest_ptr(&vm->mem, ACPI_VMGENID_ADDR, VMGENID_SIZE);

	if (!p) {
		log_err("vmgenid: guest memory has no page at 0x%llx",
			(unsigned long long)ACPI_VMGENID_ADDR);
		return -ENOSPC;
	}
	if (getrandom(id, sizeof(id), 0) != (ssize_t)sizeof(id))
		return log_errno("getrandom for the VM generation ID");
	memcpy(p, id, sizeof(id));
	return 0;
}

int vmgenid_create(struct vm *vm)
{
	vm->vmgenid = true;
	/* A restored VM's first ID comes from vmgenid_new_generation(). */
	return vm->restoring ? 0 : write_id(vm);
}

int vmgenid_new_generation(struct vm *vm)
{
	int err;

	if (!vm->vmgenid)
		return 0;
	err = write_id(vm);
	if (err)
		return err;
	/* Edge-triggered (the DSDT says so): a pulse is one event. */
	return vm_irq_pulse(vm, ACPI_VMGENID_GSI);
}
