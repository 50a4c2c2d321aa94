/* Minimal ACPI for guests whose kernels need it (Debian's cloud kernel has
 * no MP-table parser and no virtio_mmio.device= support):
 *
 *   RSDP (0xE0000) -> XSDT -> FADT -> DSDT
 *                          -> MADT
 *
 * FADT: hardware-reduced ACPI (ACPI 6.5 §4.1), so no PM timer, SCI or GPE
 * blocks exist; poweroff goes through the sleep control register.
 * MADT: one Local APIC per vCPU, the IOAPIC (GSI 0..23), LINT1 = NMI. ISA
 * IRQs map 1:1 to GSIs, as KVM's default routing has them.
 * DSDT: \_SB.Vnnn devices (_HID "LNRO0005", virtio-mmio) with their MMIO
 * window and interrupt, and \_S5 so the guest can power off; with
 * vm->vmgenid, \_SB.VGEN (the VM generation ID) and \_SB.GED0 (the
 * Generic Event Device that notifies it, devices/vmgenid.h).
 * All tables live in the reserved area below 1 MiB, below the generation
 * ID's page. */
#ifndef FORKD_VMM_ACPI_H
#define FORKD_VMM_ACPI_H

#include <stdint.h>

#include "vmm/vm.h"

#define ACPI_RSDP_ADDR 0xE0000ULL
#define ACPI_AREA_END  0x100000ULL
/* The VM generation ID's 16 bytes (the last page of the area; the tables
 * end before it) and the GSI of the event that announces a new one. */
#define ACPI_VMGENID_ADDR 0xFF000ULL
#define ACPI_VMGENID_GSI  16

/* I/O ports of the hardware-reduced sleep registers (devices/acpi_sleep.c). */
#define ACPI_SLEEP_CONTROL_PORT 0x600
#define ACPI_SLEEP_STATUS_PORT	0x601
#define ACPI_S5_SLP_TYP		5

/* Write every table for this VM's vCPUs and virtio-mmio slots. Call after
 * all devices exist. */
int acpi_write_tables(struct vm *vm) __must_check;

#endif
