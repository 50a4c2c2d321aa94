/* A minimal i8042 keyboard controller (ports 0x60, 0x64). It exists so the
 * guest can pulse the CPU reset line (what Linux's reboot=k and most
 * reboots do): the VMM stops with VM_EXIT_RESET. No keyboard or mouse is
 * attached. */
#ifndef FORKD_DEVICES_I8042_H
#define FORKD_DEVICES_I8042_H

#include "vmm/vm.h"

int i8042_create(struct vm *vm) __must_check;

#endif
