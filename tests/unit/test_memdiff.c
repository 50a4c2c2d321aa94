/* snapshot/memdiff.c without KVM: guest RAM as a private mapping of a
 * temporary "memory.bin"; the pages written after mapping are found in
 * /proc/self/pagemap (and nothing else), written as memory.diff +
 * memory.map, read back and laid over a fresh mapping, which then holds
 * exactly what the written one held. A damaged or hostile memory.map
 * (checksum, order, range, count, size, version) is refused. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include <cmocka.h>

#include "common/file.h"
#include "snapshot/memdiff.h"

#define PAGE  4096u
#define MEM   (4u << 20) /* 1024 pages */
#define PAGES (MEM / PAGE)

static char dir[64];
static int base_fd = -1;

static int setup(void **state)
{
	char path[128];
	uint8_t *buf = malloc(MEM);

	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/forkd-test-memdiff.XXXXXX");
	if (!mkdtemp(dir) || !buf)
		return -1;
	/* A base with data in every page, so a diff must carry its own. */
	for (uint32_t i = 0; i < MEM; i++)
		buf[i] = (uint8_t)(i / PAGE + 1);
	snprintf(path, sizeof(path), "%s/memory.bin", dir);
	base_fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	if (base_fd < 0 || write(base_fd, buf, MEM) != MEM)
		return -1;
	free(buf);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	close(base_fd);
	return file_remove_tree(dir);
}

static void map_base(struct guest_mem *m)
{
	assert_int_equal(
	    guest_mem_map(m, MEM, &(struct mem_opts){.backing = MEM_FILE_PRIVATE, .fd = base_fd}),
	    0);
}

static int create(const char *name, uint64_t size)
{
	char path[128];
	int fd;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	unlink(path);
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, (off_t)size), 0);
	return fd;
}

/* Written pages (and only those) found, stored, loaded, laid over. */
static void test_roundtrip(void **state)
{
	static const uint32_t written[] = {0, 1, 2, 10, 500, 1023};
	struct guest_mem m, m2;
	struct memdiff_run *runs;
	struct memdiff d;
	uint32_t nr;
	uint64_t pages;
	int pm = open("/proc/self/pagemap", O_RDONLY), data, map;

	(void)state;
	assert_true(pm >= 0);
	map_base(&m);
	/* Reading a page does not make it ours. */
	assert_int_equal(m.base[300 * PAGE], (uint8_t)301);
	for (size_t i = 0; i < sizeof(written) / sizeof(written[0]); i++)
		memset(m.base + written[i] * PAGE, 0xa0 + (int)i, PAGE);
	m.base[10 * PAGE + 5] = 0; /* a written page may hold zeros too */
	assert_int_equal(memdiff_scan(&m, pm, &runs, &nr, &pages), 0);
	assert_int_equal(pages, 6);
	assert_int_equal(nr, 4);
	assert_int_equal(runs[0].first, 0);
	assert_int_equal(runs[0].count, 3);
	assert_int_equal(runs[3].first, 1023);
	data = create("memory.diff", MEM);
	map = create("memory.map", 0);
	assert_int_equal(memdiff_write(&m, runs, nr, pages, data, map), 0);
	close(data);
	close(map);
	free(runs);

	assert_int_equal(memdiff_load(dir, MEM, &d), 0);
	assert_int_equal(d.nr_runs, 4);
	assert_int_equal(d.pages, 6);
	assert_int_equal(memdiff_load(dir, 2 * MEM, &(struct memdiff){0}), -EINVAL);
	map_base(&m2);
	assert_int_equal(memdiff_apply(&d, &m2), 0);
	assert_memory_equal(m.base, m2.base, MEM);
	/* Laid over, not copied: the pages are still not the process's own. */
	assert_int_equal(memdiff_scan(&m2, pm, &runs, &nr, &pages), 0);
	assert_int_equal(pages, 0);
	free(runs);
	memdiff_free(&d);
	guest_mem_unmap(&m);
	guest_mem_unmap(&m2);
	close(pm);
}

/* Many scattered pages: runs are merged (gaps stored) to stay in bounds. */
static void test_merge(void **state)
{
	struct guest_mem m;
	struct memdiff_run *runs;
	uint32_t nr;
	uint64_t pages;
	int pm = open("/proc/self/pagemap", O_RDONLY);

	(void)state;
	map_base(&m);
	for (uint32_t p = 0; p < PAGES; p += 2)
		m.base[p * PAGE] = 0xff;
	assert_int_equal(memdiff_scan(&m, pm, &runs, &nr, &pages), 0);
	assert_int_equal(nr, PAGES / 2); /* 512 runs fit: none merged */
	free(runs);
	guest_mem_unmap(&m);
	close(pm);
}

/* Write memory.map from raw fields, CRC fixed up unless told not to. */
static void put_map(uint32_t version, uint32_t nr, uint64_t mem, uint64_t pages,
		    const uint64_t *runs, bool good_crc)
{
	uint8_t buf[32 + 16 * 8 + 4];
	size_t len = 32 + 16 * (size_t)nr;
	uint32_t crc;
	int fd = create("memory.map", 0);

	memcpy(buf, MEMDIFF_MAGIC, 8);
	memcpy(buf + 8, &version, 4);
	memcpy(buf + 12, &nr, 4);
	memcpy(buf + 16, &mem, 8);
	memcpy(buf + 24, &pages, 8);
	memcpy(buf + 32, runs, 16 * (size_t)nr);
	crc = (uint32_t)crc32(crc32(0L, Z_NULL, 0), buf, (uInt)len) ^ (good_crc ? 0 : 1);
	memcpy(buf + len, &crc, 4);
	assert_int_equal(write(fd, buf, len + 4), (ssize_t)(len + 4));
	close(fd);
}

static void test_hostile_maps(void **state)
{
	static const uint64_t ok[16] = {0, 2, 5, 1}, overlap[16] = {0, 4, 3, 2},
			      outside[16] = {1020, 8}, empty[16] = {3, 0};
	struct memdiff d;

	(void)state;
	close(create("memory.diff", MEM));
	put_map(1, 2, MEM, 3, ok, true);
	assert_int_equal(memdiff_load(dir, MEM, &d), 0);
	memdiff_free(&d);
	put_map(1, 2, MEM, 3, ok, false);
	assert_int_equal(memdiff_load(dir, MEM, &d), -EINVAL);
	put_map(2, 2, MEM, 3, ok, true);
	assert_int_equal(memdiff_load(dir, MEM, &d), -EPROTO);
	put_map(1, 2, MEM, 4, ok, true); /* pages do not add up */
	assert_int_equal(memdiff_load(dir, MEM, &d), -EINVAL);
	put_map(1, 2, MEM, 6, overlap, true);
	assert_int_equal(memdiff_load(dir, MEM, &d), -EINVAL);
	put_map(1, 1, MEM, 8, outside, true);
	assert_int_equal(memdiff_load(dir, MEM, &d), -EINVAL);
	put_map(1, 1, MEM, 0, empty, true);
	assert_int_equal(memdiff_load(dir, MEM, &d), -EINVAL);
	put_map(1, 8, MEM, 3, ok, true); /* claims more runs than it holds */
	assert_int_equal(memdiff_load(dir, MEM, &d), -EINVAL);
	/* memory.diff of the wrong size */
	put_map(1, 2, MEM, 3, ok, true);
	close(create("memory.diff", MEM / 2));
	assert_int_equal(memdiff_load(dir, MEM, &d), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_roundtrip),
	    cmocka_unit_test(test_merge),
	    cmocka_unit_test(test_hostile_maps),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
