/* PIO/MMIO dispatch (src/vmm/bus.c): claims that overlap are refused,
 * accesses reach the device owning the whole access with offsets relative
 * to its range, and anything unclaimed reads as all-ones and drops writes.
 * No KVM needed. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "vmm/bus.h"

/* A fake device: remembers its last access, reads back a pattern. */
struct fake {
	int reads, writes;
	uint64_t off;
	unsigned len;
	uint8_t data[8];
	uint8_t pattern;
};

static void fake_read(void *opaque, uint64_t off, void *data, unsigned len)
{
	struct fake *f = opaque;

	f->reads++;
	f->off = off;
	f->len = len;
	memset(data, f->pattern, len);
}

static void fake_write(void *opaque, uint64_t off, const void *data, unsigned len)
{
	struct fake *f = opaque;

	f->writes++;
	f->off = off;
	f->len = len;
	memcpy(f->data, data, len);
}

static void add(struct bus *b, uint64_t base, uint64_t len, struct fake *f)
{
	assert_int_equal(bus_add(b, base, len, "fake", fake_read, fake_write, f), 0);
}

static void test_overlap_refused(void **state)
{
	struct bus b = {.name = "test"};
	struct fake f = {0};

	add(&b, 0x1000, 0x100, &f);
	assert_int_equal(bus_add(&b, 0x1000, 0x100, "same", NULL, NULL, NULL), -EBUSY);
	assert_int_equal(bus_add(&b, 0x1010, 0x10, "inside", NULL, NULL, NULL), -EBUSY);
	assert_int_equal(bus_add(&b, 0xf00, 0x101, "over start", NULL, NULL, NULL), -EBUSY);
	assert_int_equal(bus_add(&b, 0x10ff, 0x10, "over end", NULL, NULL, NULL), -EBUSY);
	assert_int_equal(bus_add(&b, 0x0, 0x10000, "around", NULL, NULL, NULL), -EBUSY);
	assert_int_equal(b.nr, 1);
	/* Touching, not overlapping. */
	assert_int_equal(bus_add(&b, 0xf00, 0x100, "below", NULL, NULL, NULL), 0);
	assert_int_equal(bus_add(&b, 0x1100, 0x100, "above", NULL, NULL, NULL), 0);
	assert_int_equal(b.nr, 3);
}

static void test_bad_ranges(void **state)
{
	struct bus b = {.name = "test"};
	unsigned i;

	assert_int_equal(bus_add(&b, 0x1000, 0, "empty", NULL, NULL, NULL), -EINVAL);
	assert_int_equal(bus_add(&b, UINT64_MAX - 1, 4, "wraps", NULL, NULL, NULL), -EINVAL);
	for (i = 0; i < BUS_MAX_RANGES; i++)
		assert_int_equal(bus_add(&b, i * 0x10, 0x10, "r", NULL, NULL, NULL), 0);
	assert_int_equal(bus_add(&b, 0x100000, 0x10, "one too many", NULL, NULL, NULL), -ENOSPC);
}

static void test_dispatch(void **state)
{
	struct bus b = {.name = "test"};
	struct fake uart = {.pattern = 0x11}, rtc = {.pattern = 0x22};
	uint8_t buf[8];
	uint32_t v = 0xdeadbeef;

	add(&b, 0x3f8, 8, &uart);
	add(&b, 0x70, 2, &rtc);

	assert_true(bus_read(&b, 0x3fd, buf, 1));
	assert_int_equal(uart.reads, 1);
	assert_int_equal(uart.off, 5);
	assert_int_equal(uart.len, 1);
	assert_int_equal(buf[0], 0x11);
	assert_int_equal(rtc.reads, 0);

	assert_true(bus_write(&b, 0x71, &v, 1));
	assert_int_equal(rtc.writes, 1);
	assert_int_equal(rtc.off, 1);
	assert_int_equal(rtc.data[0], 0xef);

	assert_true(bus_write(&b, 0x3f8, &v, 4));
	assert_int_equal(uart.off, 0);
	assert_int_equal(uart.len, 4);
	assert_memory_equal(uart.data, &v, 4);

	/* An access must lie wholly inside one range. */
	assert_false(bus_read(&b, 0x3fe, buf, 4));
	assert_false(bus_write(&b, 0x71, &v, 2));
	assert_int_equal(uart.reads, 1);
	assert_int_equal(rtc.writes, 1);
	assert_int_equal(b.unclaimed, 2);
}

static void test_unclaimed(void **state)
{
	struct bus b = {.name = "test"};
	struct fake f = {.pattern = 0};
	uint64_t q = 0;
	uint8_t buf[8];
	unsigned len;

	add(&b, 0xD0000000ULL, 0x1000, &f);
	for (len = 1; len <= 8; len *= 2) {
		memset(buf, 0, sizeof(buf));
		assert_false(bus_read(&b, 0xD00F0000ULL, buf, len));
		for (unsigned i = 0; i < len; i++)
			assert_int_equal(buf[i], 0xff);
		for (unsigned i = len; i < sizeof(buf); i++)
			assert_int_equal(buf[i], 0);
	}
	assert_false(bus_write(&b, 0xD00F0000ULL, &q, 8));
	assert_false(bus_read(&b, 0xCFFFFFFFULL, buf, 1));
	assert_false(bus_read(&b, 0xD0001000ULL, buf, 1));
	assert_int_equal(f.reads, 0);
	assert_int_equal(f.writes, 0);
	assert_int_equal(b.unclaimed, 7);
}

static void test_missing_callbacks(void **state)
{
	struct bus b = {.name = "test"};
	struct fake f = {.pattern = 0x33};
	uint8_t v = 0;

	/* Write-only and read-only ranges: the other direction is unclaimed. */
	assert_int_equal(bus_add(&b, 0x10, 1, "wo", NULL, fake_write, &f), 0);
	assert_int_equal(bus_add(&b, 0x20, 1, "ro", fake_read, NULL, &f), 0);
	assert_false(bus_read(&b, 0x10, &v, 1));
	assert_int_equal(v, 0xff);
	assert_true(bus_write(&b, 0x10, &v, 1));
	assert_false(bus_write(&b, 0x20, &v, 1));
	assert_true(bus_read(&b, 0x20, &v, 1));
	assert_int_equal(v, 0x33);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_overlap_refused),   cmocka_unit_test(test_bad_ranges),
	    cmocka_unit_test(test_dispatch),	      cmocka_unit_test(test_unclaimed),
	    cmocka_unit_test(test_missing_callbacks),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
