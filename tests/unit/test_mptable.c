/* MP tables (src/vmm/mptable.c), parsed back the way a guest does (MP spec
 * 1.4 ch. 4): floating pointer and configuration table checksums, one
 * enabled CPU entry per vCPU with the BSP flag on CPU 0 only, the entry
 * count, the IOAPIC, and ISA IRQ n on IOAPIC pin n. No KVM needed. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/util.h"
#include "vmm/mptable.h"
#include "vmm/vm.h"

#define TABLE_GPA  0x9fc00ULL
#define TABLE_ROOM 0x400ULL

enum { MP_CPU = 0, MP_BUS = 1, MP_IOAPIC = 2, MP_INTSRC = 3, MP_LINTSRC = 4 };

static uint8_t sum(const uint8_t *p, size_t len)
{
	uint8_t s = 0;

	while (len--)
		s += *p++;
	return s;
}

static uint16_t le16(const uint8_t *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

static uint32_t le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

struct parsed {
	unsigned entries, cpus, bsps, ioapics, intsrcs, lintsrcs, buses;
	uint8_t cpu_ids[VM_MAX_VCPUS];
	uint8_t ioapic_id;
	uint32_t ioapic_addr, lapic_addr;
	int irq_pin[16];
};

static void parse(struct guest_mem *mem, struct parsed *out)
{
	const uint8_t *mpf = guest_ptr(mem, TABLE_GPA, 16), *mpc, *p, *end;
	uint32_t phys;
	uint16_t len;

	memset(out, 0, sizeof(*out));
	memset(out->irq_pin, -1, sizeof(out->irq_pin));
	assert_non_null(mpf);
	assert_memory_equal(mpf, "_MP_", 4);
	assert_int_equal(mpf[8], 1); /* length in 16-byte units */
	assert_int_equal(mpf[9], 4); /* spec revision 1.4 */
	assert_int_equal(sum(mpf, 16), 0);
	phys = le32(mpf + 4);
	assert_true(phys >= TABLE_GPA + 16 && phys < TABLE_GPA + TABLE_ROOM);

	mpc = guest_ptr(mem, phys, 44);
	assert_non_null(mpc);
	assert_memory_equal(mpc, "PCMP", 4);
	len = le16(mpc + 4);
	assert_true(len >= 44 && phys + len <= TABLE_GPA + TABLE_ROOM);
	assert_int_equal(mpc[6], 4);
	assert_int_equal(sum(mpc, len), 0);
	out->lapic_addr = le32(mpc + 36);

	for (p = mpc + 44, end = mpc + len; p < end; out->entries++) {
		switch (p[0]) {
		case MP_CPU:
			assert_true(p + 20 <= end);
			assert_true(out->cpus < VM_MAX_VCPUS);
			assert_int_equal(p[3] & 1, 1); /* enabled */
			out->cpu_ids[out->cpus++] = p[1];
			if (p[3] & 2) {
				out->bsps++;
				assert_int_equal(p[1], 0);
			}
			p += 20;
			break;
		case MP_BUS:
			assert_memory_equal(p + 2, "ISA   ", 6);
			out->buses++;
			p += 8;
			break;
		case MP_IOAPIC:
			out->ioapics++;
			out->ioapic_id = p[1];
			assert_int_equal(p[3] & 1, 1);
			out->ioapic_addr = le32(p + 4);
			p += 8;
			break;
		case MP_INTSRC:
			assert_int_equal(p[1], 0); /* INT */
			assert_true(p[5] < 16);
			assert_int_equal(p[6], out->ioapic_id);
			out->irq_pin[p[5]] = p[7];
			out->intsrcs++;
			p += 8;
			break;
		case MP_LINTSRC:
			out->lintsrcs++;
			p += 8;
			break;
		default:
			fail_msg("unknown MP entry type %u", p[0]);
		}
	}
	assert_ptr_equal(p, end);
	/* Entry count, MP spec 4.2: the number of base table entries. */
	assert_int_equal(le16(mpc + 34), out->entries);
}

static void check_vcpus(int n)
{
	struct guest_mem mem;
	const struct mem_opts anon = {.backing = MEM_ANON};
	struct parsed t;
	int i, j;

	assert_int_equal(guest_mem_map(&mem, 16 * MIB, &anon), 0);
	assert_int_equal(mptable_write(&mem, TABLE_GPA, TABLE_ROOM, n), 0);
	parse(&mem, &t);
	assert_int_equal(t.cpus, n);
	assert_int_equal(t.bsps, 1);
	for (i = 0; i < n; i++)
		for (j = i + 1; j < n; j++)
			assert_int_not_equal(t.cpu_ids[i], t.cpu_ids[j]);
	assert_int_equal(t.buses, 1);
	assert_int_equal(t.ioapics, 1);
	assert_int_equal(t.ioapic_addr, IOAPIC_ADDR);
	assert_int_equal(t.lapic_addr, LAPIC_ADDR);
	/* The IOAPIC id must not collide with a LAPIC id. */
	for (i = 0; i < n; i++)
		assert_int_not_equal(t.cpu_ids[i], t.ioapic_id);
	assert_int_equal(t.intsrcs, 16);
	for (i = 0; i < 16; i++)
		assert_int_equal(t.irq_pin[i], i);
	assert_int_equal(t.lintsrcs, 2);
	guest_mem_unmap(&mem);
}

static void test_one_vcpu(void **state)
{
	check_vcpus(1);
}

static void test_two_vcpus(void **state)
{
	check_vcpus(2);
}

static void test_eight_vcpus(void **state)
{
	check_vcpus(8);
}

static void test_no_room(void **state)
{
	struct guest_mem mem;
	const struct mem_opts anon = {.backing = MEM_ANON};

	assert_int_equal(guest_mem_map(&mem, 16 * MIB, &anon), 0);
	/* 64 CPU entries do not fit in the 1 KiB EBDA slot. */
	assert_int_equal(mptable_write(&mem, TABLE_GPA, TABLE_ROOM, VM_MAX_VCPUS), -ENOSPC);
	assert_int_equal(mptable_write(&mem, TABLE_GPA, 64, 1), -ENOSPC);
	/* Outside RAM. */
	assert_int_equal(mptable_write(&mem, 16 * MIB - 0x100, TABLE_ROOM, 1), -ENOSPC);
	guest_mem_unmap(&mem);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_one_vcpu),
	    cmocka_unit_test(test_two_vcpus),
	    cmocka_unit_test(test_eight_vcpus),
	    cmocka_unit_test(test_no_room),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
