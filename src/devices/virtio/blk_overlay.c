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

#include "common/sbuf.h"
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

/* ---- Snapshot state ---- */

/* The first sector at or after `from` whose bit is `set`, or nr_sectors. */
static uint64_t find_bit(const struct blk_overlay *o, uint64_t from, bool set)
{
	uint64_t words = (o->nr_sectors + BITS_PER_WORD - 1) / BITS_PER_WORD;
	uint64_t w = from / BITS_PER_WORD, v;

	if (from >= o->nr_sectors)
		return o->nr_sectors;
	v = (set ? o->bitmap[w] : ~o->bitmap[w]) & (~0ULL << (from % BITS_PER_WORD));
	while (!v) {
		if (++w == words)
			return o->nr_sectors;
		v = set ? o->bitmap[w] : ~o->bitmap[w];
	}
	/* Bits past the end are clear, so a clear one may be found there. */
	return MIN(w * BITS_PER_WORD + (uint64_t)__builtin_ctzll(v), o->nr_sectors);
}

/* The first run of overlay sectors at or after `from`, as [*first,
 * *first + *count); false when there is none. */
static bool next_run(const struct blk_overlay *o, uint64_t from, uint64_t *first, uint64_t *count)
{
	uint64_t s = find_bit(o, from, true);

	if (s >= o->nr_sectors)
		return false;
	*first = s;
	*count = find_bit(o, s, false) - s;
	return true;
}

#define HDR_BYTES  (3 * 8 + 4)
#define RUN_BYTES  16
#define COPY_CHUNK (256 * KIB)

int blk_overlay_save(const struct blk_overlay *o, struct sbuf *out, uint64_t max_bytes)
{
	uint64_t first, count, from = 0, nr_runs = 0, sectors = 0, bytes;
	uint8_t *chunk;
	int err = 0;

	while (next_run(o, from, &first, &count)) {
		nr_runs++;
		sectors += count;
		from = first + count;
	}
	bytes = HDR_BYTES + nr_runs * RUN_BYTES + sectors * BLK_SECTOR_SIZE;
	if (bytes > max_bytes) {
		log_err("disk overlay: the guest has written %llu KiB to its disk, more than a "
			"snapshot carries (%llu KiB); snapshot it before it writes so much",
			(unsigned long long)(sectors * BLK_SECTOR_SIZE / KIB),
			(unsigned long long)(max_bytes / KIB));
		return -EFBIG;
	}
	sbuf_u64(out, o->image_size);
	sbuf_u64(out, o->nr_sectors);
	sbuf_u64(out, sectors);
	sbuf_u32(out, (uint32_t)nr_runs);
	for (from = 0; next_run(o, from, &first, &count); from = first + count) {
		sbuf_u64(out, first);
		sbuf_u64(out, count);
	}
	if (!sectors)
		return 0;
	chunk = malloc(COPY_CHUNK);
	if (!chunk)
		return -ENOMEM;
	for (from = 0; !err && next_run(o, from, &first, &count); from = first + count) {
		uint64_t off = first * BLK_SECTOR_SIZE, left = count * BLK_SECTOR_SIZE;

		while (left) {
			size_t n = (size_t)MIN(left, (uint64_t)COPY_CHUNK);

			err = pread_full(o->ovl_fd, chunk, n, off);
			if (err) {
				err = io_error("pread", "overlay", off, n, err);
				break;
			}
			sbuf_put(out, chunk, n);
			off += n;
			left -= n;
		}
	}
	free(chunk);
	return err;
}

int blk_overlay_restore(struct blk_overlay *o, struct sreader *r)
{
	uint64_t image_bytes, nr_sectors, sectors, total = 0, end = 0;
	const uint8_t *runs, *data;
	uint32_t nr_runs;
	int err;

	image_bytes = sreader_u64(r);
	nr_sectors = sreader_u64(r);
	sectors = sreader_u64(r);
	nr_runs = sreader_u32(r);
	if (r->err)
		return -EINVAL;
	if (image_bytes != o->image_size || nr_sectors != o->nr_sectors) {
		log_err("disk overlay: the snapshot's disk image had %llu bytes (%llu sectors), "
			"this one has %llu (%llu): not the image the snapshot was taken with",
			(unsigned long long)image_bytes, (unsigned long long)nr_sectors,
			(unsigned long long)o->image_size, (unsigned long long)o->nr_sectors);
		return -EINVAL;
	}
	/* Sizes first, so the products below cannot overflow. */
	if (nr_runs > nr_sectors || sectors > nr_sectors ||
	    (uint64_t)nr_runs * RUN_BYTES > r->len - r->off ||
	    sectors * BLK_SECTOR_SIZE != r->len - r->off - (uint64_t)nr_runs * RUN_BYTES)
		goto bad;
	runs = r->p + r->off;
	data = runs + (size_t)nr_runs * RUN_BYTES;
	/* Runs in order, apart (as blk_overlay_save() finds them), on the
	 * disk, adding up to the sectors given. */
	for (uint32_t i = 0; i < nr_runs; i++) {
		uint64_t first, count;

		memcpy(&first, runs + (size_t)i * RUN_BYTES, 8);
		memcpy(&count, runs + (size_t)i * RUN_BYTES + 8, 8);
		if (count == 0 || (i && first <= end) || first >= nr_sectors ||
		    count > nr_sectors - first)
			goto bad;
		end = first + count;
		total += count;
	}
	if (total != sectors)
		goto bad;
	if (o->sectors_in_overlay) {
		log_err("disk overlay: restore needs a fresh overlay; this one holds %llu sectors",
			(unsigned long long)o->sectors_in_overlay);
		return -EBUSY;
	}

	/* Data first, bits after: until a bit is set the image still shows
	 * through, so a failed write changes nothing the guest can read. */
	for (uint32_t i = 0; i < nr_runs; i++) {
		uint64_t first, count;

		memcpy(&first, runs + (size_t)i * RUN_BYTES, 8);
		memcpy(&count, runs + (size_t)i * RUN_BYTES + 8, 8);
		err = pwrite_full(o->ovl_fd, data, (size_t)(count * BLK_SECTOR_SIZE),
				  first * BLK_SECTOR_SIZE);
		if (err)
			return io_error("pwrite", "overlay", first * BLK_SECTOR_SIZE,
					count * BLK_SECTOR_SIZE, err);
		data += count * BLK_SECTOR_SIZE;
	}
	for (uint32_t i = 0; i < nr_runs; i++) {
		uint64_t first, count;

		memcpy(&first, runs + (size_t)i * RUN_BYTES, 8);
		memcpy(&count, runs + (size_t)i * RUN_BYTES + 8, 8);
		for (uint64_t s = first; s < first + count; s++)
			bit_set(o->bitmap, s);
	}
	o->sectors_in_overlay = sectors;
	r->off = r->len;
	return 0;

bad:
	log_err("disk overlay: saved sector runs are malformed (%u runs, %llu sectors)", nr_runs,
		(unsigned long long)sectors);
	return -EINVAL;
}
