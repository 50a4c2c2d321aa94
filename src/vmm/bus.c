#include "vmm/bus.h"

#include <errno.h>
#include <string.h>

int bus_add(struct bus *bus, uint64_t base, uint64_t len, const char *name, bus_read_fn read,
	    bus_write_fn write, void *opaque)
{
	uint64_t end;
	unsigned i;

	if (len == 0 || __builtin_add_overflow(base, len, &end))
		return -EINVAL;
	for (i = 0; i < bus->nr; i++) {
		const struct bus_range *r = &bus->ranges[i];

		if (base < r->base + r->len && r->base < end) {
			log_err("%s bus: %s at 0x%llx overlaps %s at 0x%llx", bus->name, name,
				(unsigned long long)base, r->name, (unsigned long long)r->base);
			return -EBUSY;
		}
	}
	if (bus->nr == BUS_MAX_RANGES)
		return -ENOSPC;
	bus->ranges[bus->nr++] = (struct bus_range){base, len, name, read, write, opaque};
	return 0;
}

static const struct bus_range *bus_find(const struct bus *bus, uint64_t addr, unsigned len)
{
	unsigned i;

	for (i = 0; i < bus->nr; i++) {
		const struct bus_range *r = &bus->ranges[i];

		if (addr >= r->base && addr - r->base < r->len && len <= r->len - (addr - r->base))
			return r;
	}
	return NULL;
}

bool bus_read(struct bus *bus, uint64_t addr, void *data, unsigned len)
{
	const struct bus_range *r = bus_find(bus, addr, len);

	if (!r || !r->read) {
		memset(data, 0xff, len);
		__atomic_add_fetch(&bus->unclaimed, 1, __ATOMIC_RELAXED);
		return false;
	}
	r->read(r->opaque, addr - r->base, data, len);
	return true;
}

bool bus_write(struct bus *bus, uint64_t addr, const void *data, unsigned len)
{
	const struct bus_range *r = bus_find(bus, addr, len);

	if (!r || !r->write) {
		__atomic_add_fetch(&bus->unclaimed, 1, __ATOMIC_RELAXED);
		return false;
	}
	r->write(r->opaque, addr - r->base, data, len);
	return true;
}
