#include "devices/virtio/blk_overlay.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/util.h"

#define BITS_PER_WORD 64

static void bit_set(uint64_t *map, uint64_t s)
{
	map[s / BITS_PER_WORD] |= 1ULL << (s % BITS_PER_WORD);
}

bool blk_overlay_has(const struct blk_overlay *o, uint64_t sector)
{
	if (sector >= o->nr_sectors)
		return false;
	return (o->bitmap[sector / BITS_PER_WORD] >> (sector % BITS_PER_WORD)) & 1;
}

/* Report a failed pread/pwrite once, with errno, and map it to -EIO (the
 * guest sees an I/O error, whatever the host's reason). */
static int io_error(const char *what, const char *which, uint64_t off, uint64_t len, int err)
{
	errno = -err;
	log_errno("%s %s (%llu bytes at %llu)", what, which, (unsigned long long)len,
		  (unsigned long long)off);
	return -EIO;
}

static int check_range(const struct blk_overlay *o, uint64_t off, uint64_t len)
{
	uint64_t end;

	if (__builtin_add_overflow(off, len, &end) || end > o->nr_sectors * BLK_SECTOR_SIZE)
		return -EINVAL;
	return 0;
}

int blk_overlay_read(const struct blk_overlay *o, uint64_t off, void *buf, uint64_t len)
{
	uint8_t *out = buf;
	int err;

	if (check_range(o, off, len))
		return -EINVAL;
	while (len) {
		uint64_t s = off >> BLK_SECTOR_SHIFT;
		bool in_ovl = blk_overlay_has(o, s);
		uint64_t n;

		/* Extend over every following sector from the same file. */
		n = (s + 1) * BLK_SECTOR_SIZE - off;
		while (n < len && blk_overlay_has(o, ++s) == in_ovl)
			n += BLK_SECTOR_SIZE;
		n = MIN(n, len);
		err = pread_full(in_ovl ? o->ovl_fd : o->base_fd, out, n, off);
		if (err)
			return io_error("pread", in_ovl ? "overlay" : "image", off, n, err);
		out += n;
		off += n;
		len -= n;
	}
	return 0;
}

/* Write part of one sector: bytes [off, off+len) inside sector s. A sector
 * not yet in the overlay is completed from the image first. */
static int write_partial(struct blk_overlay *o, uint64_t off, const uint8_t *buf, uint64_t len)
{
	uint64_t s = off >> BLK_SECTOR_SHIFT, start = s * BLK_SECTOR_SIZE;
	uint8_t sec[BLK_SECTOR_SIZE];
	int err;

	if (blk_overlay_has(o, s)) {
		err = pwrite_full(o->ovl_fd, buf, len, off);
		return err ? io_error("pwrite", "overlay", off, len, err) : 0;
	}
	err = pread_full(o->base_fd, sec, sizeof(sec), start);
	if (err)
		return io_error("pread", "image", start, sizeof(sec), err);
	memcpy(sec + (off - start), buf, len);
	err = pwrite_full(o->ovl_fd, sec, sizeof(sec), start);
	if (err)
		return io_error("pwrite", "overlay", start, sizeof(sec), err);
	bit_set(o->bitmap, s);
	o->sectors_in_overlay++;
	return 0;
}

int blk_overlay_write(struct blk_overlay *o, uint64_t off, const void *buf, uint64_t len)
{
	const uint8_t *in = buf;
	uint64_t head, whole, s;
	int err;

	if (check_range(o, off, len))
		return -EINVAL;
	/* A leading piece up to the next sector boundary. */
	head = MIN(len, ALIGN_UP(off, BLK_SECTOR_SIZE) - off);
	if (head) {
		err = write_partial(o, off, in, head);
		if (err)
			return err;
		in += head;
		off += head;
		len -= head;
	}
	/* Whole sectors need nothing from the image: one write, then bits. */
	whole = ALIGN_DOWN(len, BLK_SECTOR_SIZE);
	if (whole) {
		err = pwrite_full(o->ovl_fd, in, whole, off);
		if (err)
			return io_error("pwrite", "overlay", off, whole, err);
		for (s = off >> BLK_SECTOR_SHIFT; s < (off + whole) >> BLK_SECTOR_SHIFT; s++) {
			if (!blk_overlay_has(o, s)) {
				bit_set(o->bitmap, s);
				o->sectors_in_overlay++;
			}
		}
		in += whole;
		off += whole;
		len -= whole;
	}
	/* A trailing piece of the last sector. */
	if (len)
		return write_partial(o, off, in, len);
	return 0;
}

/* An unlinked file in dir: O_TMPFILE, or mkstemp + unlink where the file
 * system lacks it. */
static int open_overlay_file(const char *dir)
{
	char *name;
	int fd;

	fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	if (fd >= 0)
		return fd;
	if (errno != EOPNOTSUPP && errno != EISDIR && errno != EINVAL)
		return log_errno("create disk overlay in %s (O_TMPFILE)", dir);
	if (asprintf(&name, "%s/forkd-overlay-XXXXXX", dir) < 0) {
		log_err("blk overlay: out of memory");
		return -ENOMEM;
	}
	fd = mkostemp(name, O_CLOEXEC);
	if (fd < 0) {
		fd = log_errno("mkostemp(%s)", name);
	} else if (unlink(name) < 0) {
		int err = log_errno("unlink(%s)", name);

		close(fd);
		fd = err;
	}
	free(name);
	return fd;
}

static int image_size(int fd, const char *path, uint64_t *size)
{
	struct stat st;

	if (fstat(fd, &st) < 0)
		return log_errno("fstat(%s)", path);
	if (S_ISBLK(st.st_mode)) {
		if (ioctl(fd, BLKGETSIZE64, size) < 0)
			return log_errno("BLKGETSIZE64(%s)", path);
		return 0;
	}
	if (!S_ISREG(st.st_mode)) {
		log_err("disk image %s: not a regular file or block device", path);
		return -EINVAL;
	}
	*size = (uint64_t)st.st_size;
	return 0;
}

int blk_overlay_open(struct blk_overlay *o, const char *path, const char *dir)
{
	uint64_t words;
	int err;

	memset(o, 0, sizeof(*o));
	o->ovl_fd = -1;
	if (!dir)
		dir = getenv("TMPDIR");
	if (!dir || !*dir)
		dir = "/var/tmp";

	o->base_fd = open(path, O_RDONLY | O_CLOEXEC);
	if (o->base_fd < 0) {
		err = log_errno("open disk image %s", path);
		goto err;
	}
	err = image_size(o->base_fd, path, &o->image_size);
	if (err)
		goto err_base;
	o->nr_sectors = o->image_size >> BLK_SECTOR_SHIFT;
	if (o->nr_sectors == 0) {
		log_err("disk image %s: %llu bytes, smaller than one 512-byte sector", path,
			(unsigned long long)o->image_size);
		err = -EINVAL;
		goto err_base;
	}
	if (o->image_size % BLK_SECTOR_SIZE)
		log_warn("disk image %s: size %llu is not a multiple of 512; the guest sees "
			 "%llu sectors and not the last %llu bytes",
			 path, (unsigned long long)o->image_size, (unsigned long long)o->nr_sectors,
			 (unsigned long long)(o->image_size % BLK_SECTOR_SIZE));

	words = (o->nr_sectors + BITS_PER_WORD - 1) / BITS_PER_WORD;
	o->bitmap = calloc(words, sizeof(uint64_t));
	if (!o->bitmap) {
		log_err("disk image %s: no memory for a %llu-sector bitmap", path,
			(unsigned long long)o->nr_sectors);
		err = -ENOMEM;
		goto err_base;
	}
	o->ovl_fd = open_overlay_file(dir);
	if (o->ovl_fd < 0) {
		err = o->ovl_fd;
		goto err_bitmap;
	}
	/* Sparse: only written sectors take space. */
	if (ftruncate(o->ovl_fd, (off_t)(o->nr_sectors * BLK_SECTOR_SIZE)) < 0) {
		err = log_errno("ftruncate overlay in %s to %llu bytes", dir,
				(unsigned long long)(o->nr_sectors * BLK_SECTOR_SIZE));
		goto err_ovl;
	}
	return 0;

err_ovl:
	close(o->ovl_fd);
	o->ovl_fd = -1;
err_bitmap:
	free(o->bitmap);
	o->bitmap = NULL;
err_base:
	if (o->base_fd >= 0)
		close(o->base_fd);
err:
	o->base_fd = -1;
	return err;
}

void blk_overlay_close(struct blk_overlay *o)
{
	if (o->ovl_fd >= 0)
		close(o->ovl_fd);
	if (o->base_fd >= 0)
		close(o->base_fd);
	free(o->bitmap);
	o->ovl_fd = o->base_fd = -1;
	o->bitmap = NULL;
}
