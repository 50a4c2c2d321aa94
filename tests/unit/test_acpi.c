/* ACPI tables as written into guest memory: every checksum valid, the
 * pointer chain RSDP -> XSDT -> FADT -> DSDT and XSDT -> MADT intact, one
 * virtio-mmio device per slot in the DSDT, one LAPIC per vCPU in the MADT;
 * with the VM generation ID, its device and the GED that notifies it in the
 * DSDT, every table below its page, and the page itself left alone. */
#include <setjmp.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "common/util.h"
#include "vmm/acpi.h"

static uint8_t sum(const uint8_t *p, size_t n)
{
	uint8_t s = 0;

	while (n--)
		s += *p++;
	return s;
}

static const uint8_t *table_at(struct vm *vm, uint64_t gpa, const char *sig)
{
	const uint8_t *t = guest_ptr(&vm->mem, gpa, 36);
	uint32_t len;

	assert_non_null(t);
	assert_memory_equal(t, sig, 4);
	memcpy(&len, t + 4, 4);
	assert_true(len >= 36);
	assert_non_null(guest_ptr(&vm->mem, gpa, len));
	assert_int_equal(sum(t, len), 0);
	return t;
}

static unsigned count(const uint8_t *p, size_t n, const char *needle)
{
	size_t k = strlen(needle);
	unsigned c = 0;

	for (size_t i = 0; i + k <= n; i++)
		if (!memcmp(p + i, needle, k))
			c++;
	return c;
}

static void check_tables(int nr_vcpus, unsigned nr_virtio, bool vmgenid)
{
	static struct vm vm;
	struct mem_opts mo = {.backing = MEM_ANON};
	const uint8_t *rsdp, *xsdt, *fadt, *dsdt, *madt;
	uint64_t xsdt_addr, e[2];
	uint32_t dsdt_addr, len;
	uint8_t *id;

	memset(&vm, 0, sizeof(vm));
	assert_int_equal(guest_mem_map(&vm.mem, 32 * MIB, &mo), 0);
	vm.nr_vcpus = nr_vcpus;
	vm.nr_virtio = nr_virtio;
	vm.vmgenid = vmgenid;
	id = guest_ptr(&vm.mem, ACPI_VMGENID_ADDR, 16);
	assert_non_null(id);
	memset(id, 0xa5, 16);
	assert_int_equal(acpi_write_tables(&vm), 0);
	for (int i = 0; i < 16; i++)
		assert_int_equal(id[i], 0xa5);

	rsdp = guest_ptr(&vm.mem, ACPI_RSDP_ADDR, 36);
	assert_memory_equal(rsdp, "RSD PTR ", 8);
	assert_int_equal(sum(rsdp, 20), 0);
	assert_int_equal(sum(rsdp, 36), 0);
	memcpy(&xsdt_addr, rsdp + 24, 8);
	xsdt = table_at(&vm, xsdt_addr, "XSDT");
	memcpy(e, xsdt + 36, sizeof(e));
	fadt = table_at(&vm, e[0], "FACP");
	madt = table_at(&vm, e[1], "APIC");
	memcpy(&dsdt_addr, fadt + 40, 4);
	dsdt = table_at(&vm, dsdt_addr, "DSDT");

	memcpy(&len, dsdt + 4, 4);
	assert_int_equal(count(dsdt, len, "LNRO0005"), nr_virtio);
	assert_int_equal(count(dsdt, len, "_S5_"), 1);
	assert_int_equal(count(dsdt, len, "VMGENCTR"), vmgenid);
	assert_int_equal(count(dsdt, len, "ACPI0013"), vmgenid);
	assert_int_equal(count(dsdt, len, "_EVT"), vmgenid);
	assert_true(dsdt_addr + len <= ACPI_VMGENID_ADDR);
	assert_true(e[1] + 44 + 8 * nr_vcpus + 12 + 6 <= ACPI_VMGENID_ADDR);
	memcpy(&len, madt + 4, 4);
	/* header 44, 8 per LAPIC, 12 IOAPIC, 6 LAPIC NMI */
	assert_int_equal(len, 44 + 8 * nr_vcpus + 12 + 6);
	guest_mem_unmap(&vm.mem);
}

static void test_no_devices(void **state)
{
	check_tables(1, 0, false);
}

static void test_devices_and_smp(void **state)
{
	check_tables(2, 3, false);
}

static void test_all_slots_many_vcpus(void **state)
{
	check_tables(64, 8, true);
}

static void test_vmgenid(void **state)
{
	check_tables(2, 4, true);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_no_devices),
	    cmocka_unit_test(test_devices_and_smp),
	    cmocka_unit_test(test_all_slots_many_vcpus),
	    cmocka_unit_test(test_vmgenid),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
