/* Guest memory (src/vmm/memory.c): the layout around the 32-bit hole,
 * guest_ptr()'s refusal of every range that is not entirely RAM (wrapping,
 * crossing the hole or the end), and the three backings. No KVM needed. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/util.h"
#include "vmm/memory.h"

static const struct mem_opts anon = {.backing = MEM_ANON};

static void test_size_must_be_2mib_multiple(void **state)
{
	struct guest_mem mem;

	assert_int_equal(guest_mem_map(&mem, 0, &anon), -EINVAL);
	assert_int_equal(guest_mem_map(&mem, 3 * MIB, &anon), -EINVAL);
	assert_int_equal(guest_mem_map(&mem, 2 * MIB + 4096, &anon), -EINVAL);
	assert_null(mem.base);
	assert_int_equal(mem.fd, -1);
}

static void test_small_layout(void **state)
{
	struct guest_mem mem;
	uint64_t size = 16 * MIB;

	assert_int_equal(guest_mem_map(&mem, size, &anon), 0);
	assert_int_equal(mem.size, size);
	assert_int_equal(mem.low_size, size);
	assert_int_equal(guest_mem_high_size(&mem), 0);
	assert_int_equal(mem.fd, -1);

	assert_ptr_equal(guest_ptr(&mem, 0, size), mem.base);
	assert_ptr_equal(guest_ptr(&mem, size - 1, 1), mem.base + size - 1);
	assert_ptr_equal(guest_ptr(&mem, 4096, 8), mem.base + 4096);
	assert_null(guest_ptr(&mem, size, 1));
	assert_null(guest_ptr(&mem, size - 4, 8));
	assert_null(guest_ptr(&mem, 0, size + 1));
	/* Nothing above the end of low RAM, hole or not. */
	assert_null(guest_ptr(&mem, MEM_HOLE_START, 1));
	assert_null(guest_ptr(&mem, MEM_HOLE_END, 1));
	guest_mem_unmap(&mem);
	assert_null(mem.base);
}

static void test_overflow(void **state)
{
	struct guest_mem mem;

	assert_int_equal(guest_mem_map(&mem, 16 * MIB, &anon), 0);
	assert_null(guest_ptr(&mem, UINT64_MAX, 1));
	assert_null(guest_ptr(&mem, UINT64_MAX, 2));
	assert_null(guest_ptr(&mem, 1, UINT64_MAX));
	assert_null(guest_ptr(&mem, 4096, UINT64_MAX - 4095));
	assert_null(guest_ptr(&mem, UINT64_MAX - 4095, 8192));
	/* Wraps to a small end that would be inside RAM. */
	assert_null(guest_ptr(&mem, 0xfffffffffffff000ULL, 0x2000));
	guest_mem_unmap(&mem);
}

static void test_read_write(void **state)
{
	struct guest_mem mem;
	uint8_t buf[16], out[16];

	assert_int_equal(guest_mem_map(&mem, 4 * MIB, &anon), 0);
	memset(buf, 0x5a, sizeof(buf));
	assert_int_equal(guest_write(&mem, 0x1000, buf, sizeof(buf)), 0);
	assert_memory_equal(mem.base + 0x1000, buf, sizeof(buf));
	assert_int_equal(guest_read(&mem, 0x1000, out, sizeof(out)), 0);
	assert_memory_equal(out, buf, sizeof(buf));
	assert_int_equal(guest_write(&mem, 4 * MIB - 8, buf, sizeof(buf)), -EFAULT);
	assert_int_equal(guest_read(&mem, 4 * MIB - 8, out, sizeof(out)), -EFAULT);
	assert_int_equal(guest_read(&mem, UINT64_MAX - 3, out, sizeof(out)), -EFAULT);
	guest_mem_unmap(&mem);
}

/* 3 GiB + 2 MiB: 3 GiB below the hole, 2 MiB at 4 GiB. Anonymous memory
 * with MAP_NORESERVE: only the pages touched here are ever allocated. */
static void test_hole(void **state)
{
	struct guest_mem mem;
	uint64_t high = 2 * MIB, v = 0x1122334455667788ULL, w = 0;

	if (sizeof(void *) < 8)
		skip();
	assert_int_equal(guest_mem_map(&mem, MEM_HOLE_START + high, &anon), 0);
	assert_int_equal(mem.low_size, MEM_HOLE_START);
	assert_int_equal(guest_mem_high_size(&mem), high);

	/* Low RAM ends at the hole. */
	assert_ptr_equal(guest_ptr(&mem, MEM_HOLE_START - 1, 1), mem.base + MEM_HOLE_START - 1);
	assert_null(guest_ptr(&mem, MEM_HOLE_START - 1, 2));
	/* The hole itself, and anything touching it. */
	assert_null(guest_ptr(&mem, MEM_HOLE_START, 1));
	assert_null(guest_ptr(&mem, 0xFEE00000ULL, 4));
	assert_null(guest_ptr(&mem, MEM_HOLE_END - 1, 1));
	assert_null(guest_ptr(&mem, MEM_HOLE_END - 1, 2));
	assert_null(guest_ptr(&mem, MEM_HOLE_START - 4096, MEM_HOLE_END - MEM_HOLE_START + 8192));
	/* High RAM at 4 GiB follows low RAM in the host mapping. */
	assert_ptr_equal(guest_ptr(&mem, MEM_HOLE_END, 1), mem.base + MEM_HOLE_START);
	assert_ptr_equal(guest_ptr(&mem, MEM_HOLE_END, high), mem.base + MEM_HOLE_START);
	assert_ptr_equal(guest_ptr(&mem, MEM_HOLE_END + high - 1, 1),
			 mem.base + MEM_HOLE_START + high - 1);
	assert_null(guest_ptr(&mem, MEM_HOLE_END, high + 1));
	assert_null(guest_ptr(&mem, MEM_HOLE_END + high, 1));
	assert_null(guest_ptr(&mem, MEM_HOLE_END + high - 4, 8));
	assert_null(guest_ptr(&mem, UINT64_MAX - 1, 1));
	assert_null(guest_ptr(&mem, MEM_HOLE_END + 8, UINT64_MAX - 4));

	assert_int_equal(guest_write(&mem, MEM_HOLE_END + 64, &v, sizeof(v)), 0);
	memcpy(&w, mem.base + MEM_HOLE_START + 64, sizeof(w));
	assert_int_equal(w, v);
	assert_int_equal(guest_write(&mem, MEM_HOLE_START, &v, sizeof(v)), -EFAULT);
	guest_mem_unmap(&mem);
}

static void test_memfd_shared(void **state)
{
	const struct mem_opts opts = {.backing = MEM_MEMFD};
	struct guest_mem mem;
	uint8_t buf[32], back[32];

	assert_int_equal(guest_mem_map(&mem, 4 * MIB, &opts), 0);
	assert_true(mem.fd >= 0);
	assert_int_equal(mem.backing, MEM_MEMFD);
	memset(buf, 0xc3, sizeof(buf));
	assert_int_equal(guest_write(&mem, 2 * MIB + 100, buf, sizeof(buf)), 0);
	/* MAP_SHARED: the memfd sees the guest's writes at the same offset. */
	assert_int_equal(pread(mem.fd, back, sizeof(back), 2 * MIB + 100), (ssize_t)sizeof(back));
	assert_memory_equal(back, buf, sizeof(buf));
	guest_mem_unmap(&mem);
	assert_int_equal(mem.fd, -1);
}

static int make_file(char *path, size_t pathlen, uint64_t size)
{
	uint8_t page[4096];
	uint64_t off;
	int fd;

	snprintf(path, pathlen, "%s/forkd-test-mem.XXXXXX", getenv("TMPDIR") ?: "/tmp");
	fd = mkstemp(path);
	if (fd < 0)
		return -1;
	for (off = 0; off < size; off += sizeof(page)) {
		memset(page, (int)(off / sizeof(page)) & 0xff, sizeof(page));
		if (pwrite(fd, page, sizeof(page), (off_t)off) != (ssize_t)sizeof(page)) {
			close(fd);
			return -1;
		}
	}
	return fd;
}

static void test_file_private(void **state)
{
	char path[256];
	struct mem_opts opts = {.backing = MEM_FILE_PRIVATE, .path = path};
	struct guest_mem mem;
	uint8_t b = 0;
	int fd = make_file(path, sizeof(path), 4 * MIB);

	assert_true(fd >= 0);
	assert_int_equal(guest_mem_map(&mem, 4 * MIB, &opts), 0);
	assert_true(mem.fd >= 0);
	/* The guest sees the file... */
	assert_int_equal(*(uint8_t *)guest_ptr(&mem, 5 * 4096, 1), 5);
	/* ...and its writes stay private to the mapping. */
	assert_int_equal(guest_write(&mem, 5 * 4096, &(uint8_t){0xee}, 1), 0);
	assert_int_equal(*(uint8_t *)guest_ptr(&mem, 5 * 4096, 1), 0xee);
	assert_int_equal(pread(fd, &b, 1, 5 * 4096), 1);
	assert_int_equal(b, 5);
	guest_mem_unmap(&mem);
	close(fd);
	unlink(path);
}

static void test_file_size_mismatch(void **state)
{
	char path[256];
	struct mem_opts opts = {.backing = MEM_FILE_PRIVATE, .path = path};
	struct guest_mem mem;
	int fd = make_file(path, sizeof(path), 4 * MIB);

	assert_true(fd >= 0);
	/* A mapping past end of file would fault later: refused up front. */
	assert_int_equal(guest_mem_map(&mem, 6 * MIB, &opts), -EINVAL);
	assert_int_equal(guest_mem_map(&mem, 2 * MIB, &opts), -EINVAL);
	assert_null(mem.base);
	close(fd);
	unlink(path);
	assert_int_equal(guest_mem_map(&mem, 4 * MIB, &opts), -ENOENT);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_size_must_be_2mib_multiple),
	    cmocka_unit_test(test_small_layout),
	    cmocka_unit_test(test_overflow),
	    cmocka_unit_test(test_read_write),
	    cmocka_unit_test(test_hole),
	    cmocka_unit_test(test_memfd_shared),
	    cmocka_unit_test(test_file_private),
	    cmocka_unit_test(test_file_size_mismatch),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
