/* Stateless, so deliberately not a struct device and absent from the
 * vmstate's device sections (docs/FORMAT.md, "Device state"): a write to
 * the control register either asks for S5 (the VM stops) or is ignored,
 * and the status register always reads 0 (the machine never sleeps, so
 * WAK_STS is never set). Nothing a guest does here leaves anything behind
 * to save or restore. */
#include "devices/acpi_sleep.h"

#include <string.h>

#include "vmm/acpi.h"

#define SLP_TYP_SHIFT 2
#define SLP_TYP_MASK  (7u << SLP_TYP_SHIFT)
#define SLP_EN	      (1u << 5)

static void sleep_control_write(void *opaque, uint64_t off, const void *data, unsigned len)
{
	struct vm *vm = opaque;
	uint8_t v = *(const uint8_t *)data;

	if ((v & SLP_EN) && ((v & SLP_TYP_MASK) >> SLP_TYP_SHIFT) == ACPI_S5_SLP_TYP)
		vm_request_stop(vm, VM_EXIT_POWEROFF, "guest powered off (ACPI S5)");
}

static void sleep_status_read(void *opaque, uint64_t off, void *data, unsigned len)
{
	memset(data, 0, len); /* never asleep, so WAK_STS is clear */
}

int acpi_sleep_create(struct vm *vm)
{
	int err;

	err = bus_add(&vm->pio, ACPI_SLEEP_CONTROL_PORT, 1, "acpi-sleep-control", NULL,
		      sleep_control_write, vm);
	if (err)
		return err;
	return bus_add(&vm->pio, ACPI_SLEEP_STATUS_PORT, 1, "acpi-sleep-status", sleep_status_read,
		       NULL, vm);
}
