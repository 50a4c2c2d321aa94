/* The hardware-reduced ACPI sleep control and status registers (ACPI 6.5
 * §4.8.3.7), at the I/O ports the FADT names. A write of SLP_EN with the
 * \_S5 sleep type powers the machine off: the VMM stops with
 * VM_EXIT_POWEROFF. This is how `poweroff` ends a Linux guest cleanly. */
#ifndef FORKD_DEVICES_ACPI_SLEEP_H
#define FORKD_DEVICES_ACPI_SLEEP_H

#include "vmm/vm.h"

int acpi_sleep_create(struct vm *vm) __must_check;

#endif
