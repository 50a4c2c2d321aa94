/* Copy-on-write overlay of virtio-blk (src/devices/virtio/blk_overlay.c):
 * read/write/bitmap semantics against an in-memory model, partial sector
 * overlaps, range checks, odd image sizes, and that the image file is
 * never modified. No KVM needed. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "devices/virtio/blk_overlay.h"

#define NSEC 64
#define SZ   (NSEC * 512)

struct fixture {
	char dir[64];
	char image[128];
	uint8_t base[SZ];  /* what the image holds */
	uint8_t model[SZ]; /* what the disk should read as */
	struct blk_overlay o;
};

static void write_file(const char *path, const void *buf, size_t len)
{
	FILE *f = fopen(path, "wb");

	assert_non_null(f);
	assert_int_equal(fwrite(buf, 1, len, f), len);
	assert_int_equal(fclose(f), 0);
}

/* Entries in the directory other than . and the image. */
static int stray_files(const struct fixture *f)
{
	DIR *d = opendir(f->dir);
	struct dirent *e;
	int n = 0;

	assert_non_null(d);
	while ((e = readdir(d)))
		if (e->d_name[0] != '.' && strcmp(e->d_name, "disk.img"))
			n++;
	closedir(d);
	return n;
}

static void assert_image_unchanged(const struct fixture *f)
{
	static uint8_t now[SZ + 1];
	FILE *fp = fopen(f->image, "rb");

	assert_non_null(fp);
	assert_int_equal(fread(now, 1, sizeof(now), fp), SZ);
	fclose(fp);
	assert_memory_equal(now, f->base, SZ);
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	unsigned i;

	assert_non_null(f);
	strcpy(f->dir, "/tmp/test_blk_overlay.XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->image, sizeof(f->image), "%s/disk.img", f->dir);
	for (i = 0; i < SZ; i++)
		f->base[i] = (uint8_t)(i * 13 + (i >> 9) * 7 + 1);
	memcpy(f->model, f->base, SZ);
	write_file(f->image, f->base, SZ);
	assert_int_equal(blk_overlay_open(&f->o, f->image, f->dir), 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	blk_overlay_close(&f->o);
	unlink(f->image);
	rmdir(f->dir);
	free(f);
	return 0;
}

static void model_write(struct fixture *f, uint64_t off, const uint8_t *buf, uint64_t len)
{
	assert_int_equal(blk_overlay_write(&f->o, off, buf, len), 0);
	memcpy(f->model + off, buf, len);
}

static void assert_disk_matches_model(struct fixture *f)
{
	static uint8_t all[SZ];

	assert_int_equal(blk_overlay_read(&f->o, 0, all, SZ), 0);
	assert_memory_equal(all, f->model, SZ);
}

static void test_open(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(f->o.nr_sectors, NSEC);
	assert_int_equal(f->o.image_size, SZ);
	assert_int_equal(f->o.sectors_in_overlay, 0);
	/* The image is read-only to us; the overlay left no name behind. */
	assert_int_equal(fcntl(f->o.base_fd, F_GETFL) & O_ACCMODE, O_RDONLY);
	assert_int_equal(stray_files(f), 0);
	assert_disk_matches_model(f);
}

static void test_aligned_write(void **state)
{
	struct fixture *f = *state;
	uint8_t buf[1024], back[1024];

	memset(buf, 0xa5, sizeof(buf));
	model_write(f, 3 * 512, buf, 1024);
	assert_false(blk_overlay_has(&f->o, 2));
	assert_true(blk_overlay_has(&f->o, 3));
	assert_true(blk_overlay_has(&f->o, 4));
	assert_false(blk_overlay_has(&f->o, 5));
	assert_int_equal(f->o.sectors_in_overlay, 2);
	assert_int_equal(blk_overlay_read(&f->o, 3 * 512, back, 1024), 0);
	assert_memory_equal(back, buf, 1024);
	assert_disk_matches_model(f);
	assert_image_unchanged(f);
}

static void test_partial_write_inside_sector(void **state)
{
	struct fixture *f = *state;
	uint8_t buf[50];

	memset(buf, 0x3c, sizeof(buf));
	model_write(f, 5 * 512 + 100, buf, sizeof(buf));
	/* The whole sector is in the overlay: its other bytes came from the
	 * image. */
	assert_true(blk_overlay_has(&f->o, 5));
	assert_false(blk_overlay_has(&f->o, 4));
	assert_false(blk_overlay_has(&f->o, 6));
	assert_int_equal(f->o.sectors_in_overlay, 1);
	assert_disk_matches_model(f);
	assert_image_unchanged(f);
}

static void test_partial_head_whole_tail(void **state)
{
	struct fixture *f = *state;
	uint8_t buf[1124];
	unsigned i;

	for (i = 0; i < sizeof(buf); i++)
		buf[i] = (uint8_t)(0x80 + i);
	/* 7*512+300: 212 bytes of sector 7, all of 8, 400 bytes of 9. */
	model_write(f, 7 * 512 + 300, buf, sizeof(buf));
	for (i = 6; i <= 10; i++)
		assert_int_equal(blk_overlay_has(&f->o, i), i >= 7 && i <= 9);
	assert_int_equal(f->o.sectors_in_overlay, 3);
	assert_disk_matches_model(f);
	assert_image_unchanged(f);
}

static void test_partial_write_over_overlay_sector(void **state)
{
	struct fixture *f = *state;
	uint8_t full[512], part[10];

	/* Once a sector is in the overlay, a partial write must keep the
	 * overlay's other bytes, not go back to the image. */
	memset(full, 0x11, sizeof(full));
	model_write(f, 20 * 512, full, sizeof(full));
	memset(part, 0x22, sizeof(part));
	model_write(f, 20 * 512 + 500, part, sizeof(part));
	model_write(f, 20 * 512, part, 1);
	assert_int_equal(f->o.sectors_in_overlay, 1);
	assert_disk_matches_model(f);
}

static void test_reads_across_boundaries(void **state)
{
	struct fixture *f = *state;
	uint8_t buf[512], back[SZ];
	uint64_t off, len;

	memset(buf, 0xee, sizeof(buf));
	model_write(f, 10 * 512, buf, 512);
	model_write(f, 12 * 512, buf, 512);
	model_write(f, 13 * 512, buf, 512);
	/* Reads starting and ending mid-sector over base/overlay changes. */
	for (off = 9 * 512 - 3; off < 15 * 512; off += 97) {
		for (len = 1; len < 5 * 512; len += 211) {
			assert_int_equal(blk_overlay_read(&f->o, off, back, len), 0);
			assert_memory_equal(back, f->model + off, len);
		}
	}
}

static void test_range_checks(void **state)
{
	struct fixture *f = *state;
	uint8_t buf[1024] = {0};

	assert_int_equal(blk_overlay_read(&f->o, SZ - 512, buf, 512), 0);
	assert_int_equal(blk_overlay_read(&f->o, SZ, buf, 0), 0);
	assert_int_equal(blk_overlay_read(&f->o, SZ - 512, buf, 513), -EINVAL);
	assert_int_equal(blk_overlay_read(&f->o, SZ, buf, 1), -EINVAL);
	assert_int_equal(blk_overlay_read(&f->o, UINT64_MAX - 10, buf, 512), -EINVAL);
	assert_int_equal(blk_overlay_write(&f->o, SZ - 1, buf, 2), -EINVAL);
	assert_int_equal(blk_overlay_write(&f->o, UINT64_MAX, buf, 1), -EINVAL);
	assert_int_equal(blk_overlay_write(&f->o, 1, buf, UINT64_MAX), -EINVAL);
	/* Nothing was written by the refused calls. */
	assert_int_equal(f->o.sectors_in_overlay, 0);
	assert_false(blk_overlay_has(&f->o, NSEC - 1));
	assert_false(blk_overlay_has(&f->o, NSEC));
	assert_false(blk_overlay_has(&f->o, UINT64_MAX));
	/* The last byte is writable. */
	model_write(f, SZ - 1, buf, 1);
	assert_true(blk_overlay_has(&f->o, NSEC - 1));
	assert_disk_matches_model(f);
}

static void test_random_against_model(void **state)
{
	struct fixture *f = *state;
	static uint8_t buf[4 * 512], back[4 * 512];
	unsigned i, j, seed = 12345;
	uint64_t s, n = 0;

	for (i = 0; i < 2000; i++) {
		uint64_t off = (uint64_t)rand_r(&seed) % SZ;
		uint64_t len = 1 + (uint64_t)rand_r(&seed) % sizeof(buf);

		if (off + len > SZ)
			len = SZ - off;
		if (rand_r(&seed) & 1) {
			for (j = 0; j < len; j++)
				buf[j] = (uint8_t)rand_r(&seed);
			model_write(f, off, buf, len);
		} else {
			assert_int_equal(blk_overlay_read(&f->o, off, back, len), 0);
			assert_memory_equal(back, f->model + off, len);
		}
	}
	assert_disk_matches_model(f);
	for (s = 0; s < NSEC; s++)
		n += blk_overlay_has(&f->o, s);
	assert_int_equal(n, f->o.sectors_in_overlay);
	assert_image_unchanged(f);
}

static void test_siblings_independent(void **state)
{
	struct fixture *f = *state;
	struct blk_overlay other;
	uint8_t buf[512], back[512];

	memset(buf, 0x77, sizeof(buf));
	model_write(f, 0, buf, 512);
	assert_int_equal(blk_overlay_open(&other, f->image, f->dir), 0);
	assert_int_equal(blk_overlay_read(&other, 0, back, 512), 0);
	assert_memory_equal(back, f->base, 512);
	blk_overlay_close(&other);
	blk_overlay_close(&other); /* idempotent */
	assert_image_unchanged(f);
}

static void test_tmpdir_default(void **state)
{
	struct fixture *f = *state;
	struct blk_overlay o;
	char *old = getenv("TMPDIR") ? strdup(getenv("TMPDIR")) : NULL;

	setenv("TMPDIR", f->dir, 1);
	assert_int_equal(blk_overlay_open(&o, f->image, NULL), 0);
	assert_int_equal(stray_files(f), 0);
	blk_overlay_close(&o);
	setenv("TMPDIR", "/nonexistent-forkd-dir", 1);
	assert_int_equal(blk_overlay_open(&o, f->image, NULL), -ENOENT);
	if (old)
		setenv("TMPDIR", old, 1);
	else
		unsetenv("TMPDIR");
	free(old);
}

static void test_odd_sizes(void **state)
{
	struct fixture *f = *state;
	char path[160];
	struct blk_overlay o;
	uint8_t buf[512];

	/* 8 sectors and 100 bytes: the tail is cut off. */
	snprintf(path, sizeof(path), "%s/odd.img", f->dir);
	write_file(path, f->base, 8 * 512 + 100);
	assert_int_equal(blk_overlay_open(&o, path, f->dir), 0);
	assert_int_equal(o.nr_sectors, 8);
	assert_int_equal(o.image_size, 8 * 512 + 100);
	assert_int_equal(blk_overlay_read(&o, 7 * 512, buf, 512), 0);
	assert_memory_equal(buf, f->base + 7 * 512, 512);
	assert_int_equal(blk_overlay_read(&o, 8 * 512, buf, 1), -EINVAL);
	blk_overlay_close(&o);

	/* Smaller than a sector: refused. */
	write_file(path, f->base, 100);
	assert_int_equal(blk_overlay_open(&o, path, f->dir), -EINVAL);
	assert_int_equal(o.base_fd, -1);
	assert_int_equal(o.ovl_fd, -1);
	blk_overlay_close(&o);
	unlink(path);

	/* Missing file, a directory, a missing overlay directory. */
	assert_int_equal(blk_overlay_open(&o, path, f->dir), -ENOENT);
	assert_int_equal(blk_overlay_open(&o, f->dir, f->dir), -EINVAL);
	assert_int_equal(blk_overlay_open(&o, f->image, "/nonexistent-forkd-dir"), -ENOENT);
	assert_int_equal(stray_files(f), 0);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
	    T(test_open),
	    T(test_aligned_write),
	    T(test_partial_write_inside_sector),
	    T(test_partial_head_whole_tail),
	    T(test_partial_write_over_overlay_sector),
	    T(test_reads_across_boundaries),
	    T(test_range_checks),
	    T(test_random_against_model),
	    T(test_siblings_independent),
	    T(test_tmpdir_default),
	    T(test_odd_sizes),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
