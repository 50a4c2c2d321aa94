/* Intel MultiProcessor Specification 1.4 tables, so an ACPI-less guest
 * finds its CPUs, the IOAPIC and how ISA IRQs reach it. */
#ifndef FORKD_VMM_MPTABLE_H
#define FORKD_VMM_MPTABLE_H

#include <stdint.h>

#include "common/log.h"
#include "vmm/memory.h"

/* Write the floating pointer and configuration table at gpa (16-byte
 * aligned, in the EBDA or BIOS area). Returns 0 or -ENOSPC when the
 * table would not fit in `room` bytes. */
int mptable_write(struct guest_mem *mem, uint64_t gpa, uint64_t room, int nr_vcpus) __must_check;

#endif
