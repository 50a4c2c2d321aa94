/* Port-I/O and MMIO dispatch.
 *
 * Devices claim ranges while the VM is being built; after the vCPUs start
 * the bus is read-only, so vCPU threads look ranges up without a lock. Each
 * device serialises its own state. Accesses nobody claimed read as all-ones
 * and drop writes, as on a real bus with nothing behind the address. */
#ifndef FORKD_VMM_BUS_H
#define FORKD_VMM_BUS_H

#include <stdbool.h>
#include <stdint.h>

#include "common/log.h"

/* `off` is relative to the start of the claimed range; len is 1, 2, 4 or 8. */
typedef void (*bus_read_fn)(void *opaque, uint64_t off, void *data, unsigned len);
typedef void (*bus_write_fn)(void *opaque, uint64_t off, const void *data, unsigned len);

struct bus_range {
	uint64_t base, len;
	const char *name;
	bus_read_fn read;
	bus_write_fn write;
	void *opaque;
};

#define BUS_MAX_RANGES 32

struct bus {
	const char *name; /* "pio" or "mmio", for messages */
	struct bus_range ranges[BUS_MAX_RANGES];
	unsigned nr;
	unsigned long unclaimed; /* accesses that hit no range */
};

/* Claim [base, base+len). -EBUSY on overlap, -ENOSPC when full. */
int bus_add(struct bus *bus, uint64_t base, uint64_t len, const char *name, bus_read_fn read,
	    bus_write_fn write, void *opaque) __must_check;

/* Dispatch one access; returns false when no device claimed it. */
bool bus_read(struct bus *bus, uint64_t addr, void *data, unsigned len);
bool bus_write(struct bus *bus, uint64_t addr, const void *data, unsigned len);

#endif
