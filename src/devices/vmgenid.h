/* The Virtual Machine Generation ID (Microsoft's "VM Generation ID" spec,
 * Linux >= 5.18 drivers/virt/vmgenid.c): a 16-byte ID in guest memory
 * that forkd changes every time a child is restored, followed by an ACPI
 * notification through a Generic Event Device (ACPI 6.5 §5.6.9). The
 * guest kernel then reseeds its random number generator at once, before
 * user code has a chance to reuse the parent's state.
 *
 * Guest-visible layout (vmm/acpi.c describes it in the DSDT):
 *   \_SB.VGEN  _HID "VMGENCTR", ADDR = Package {ACPI_VMGENID_ADDR, 0}
 *   \_SB.GED0  _HID "ACPI0013", edge interrupt on GSI ACPI_VMGENID_GSI,
 *              _EVT: Notify(\_SB.VGEN, 0x80)
 * The ID lives in the reserved area below 1 MiB, after the ACPI tables.
 *
 * No device state: the ID is in guest memory (saved with it) and the GSI
 * and address are constants, so like the ACPI sleep register it is not in
 * the vmstate's device list; snapshot.json's "vmgenid" says whether a
 * snapshot's guest was given it (older snapshots were not). */
#ifndef FORKD_DEVICES_VMGENID_H
#define FORKD_DEVICES_VMGENID_H

#include "vmm/vm.h"

/* Address and GSI: ACPI_VMGENID_ADDR and ACPI_VMGENID_GSI (vmm/acpi.h). */
#define VMGENID_SIZE 16

/* Give the VM the device (its DSDT entries) and, when it boots, a first
 * random ID. */
int vmgenid_create(struct vm *vm) __must_check;

/* A restored child: write a new random ID and raise the notification.
 * Call after vm_persist_restore() (the IOAPIC and LAPICs hold the guest's
 * routing by then), before the vCPUs run. */
int vmgenid_new_generation(struct vm *vm) __must_check;

#endif
