/* Copy-on-write view of a raw disk image, for virtio-blk (internal).
 *
 * The image is opened O_RDONLY and never written. Writes go to an unlinked
 * sparse overlay file of the same size, in the same place they have on the
 * disk; a bitmap (one bit per 512-byte sector, in memory) records which
 * sectors the overlay holds. A read takes each sector from the overlay when
 * its bit is set, else from the image. The overlay is private to the
 * process that created it and vanishes with it.
 *
 * Offsets and lengths are bytes and need not be sector-aligned: a write
 * that covers part of a sector not yet in the overlay first copies that
 * sector from the image (read-modify-write), so a bit is only set once the
 * whole sector in the overlay is valid.
 *
 * Not thread-safe: the caller serialises (virtio-blk holds its device
 * lock). Kept apart from the device so unit tests can drive it without
 * KVM. */
#ifndef FORKD_DEVICES_VIRTIO_BLK_OVERLAY_H
#define FORKD_DEVICES_VIRTIO_BLK_OVERLAY_H

#include <stdbool.h>
#include <stdint.h>

#include "common/log.h"

#define BLK_SECTOR_SIZE	 512u
#define BLK_SECTOR_SHIFT 9

struct blk_overlay {
	int base_fd;	     /* the image, O_RDONLY */
	int ovl_fd;	     /* unlinked overlay file, capacity bytes long */
	uint64_t nr_sectors; /* capacity in 512-byte sectors (image size rounded down) */
	uint64_t image_size; /* bytes in the image; > nr_sectors * 512 when it had a tail */
	uint64_t *bitmap;    /* bit s set: sector s lives in the overlay */
	uint64_t sectors_in_overlay;
};

/* Open the image at `path` and create the overlay in `dir` (NULL: $TMPDIR,
 * else /var/tmp), with O_TMPFILE where the file system has it, else a
 * temporary name unlinked at once. An image whose size is not a multiple
 * of 512 is cut down to whole sectors (a warning says so); one smaller
 * than a sector is refused (-EINVAL). On failure nothing is left open. */
int blk_overlay_open(struct blk_overlay *o, const char *path, const char *dir) __must_check;
/* Close both files and free the bitmap. Safe to call again, and after
 * blk_overlay_open() failed. */
void blk_overlay_close(struct blk_overlay *o);

/* Bytes [off, off+len) of the disk into buf / from buf. -EINVAL when the
 * range leaves the disk (or wraps), -EIO (reported) when a file operation
 * fails. A failed write may have written some sectors; each sector is
 * either fully in the overlay with its bit set or untouched. */
int blk_overlay_read(const struct blk_overlay *o, uint64_t off, void *buf,
		     uint64_t len) __must_check;
int blk_overlay_write(struct blk_overlay *o, uint64_t off, const void *buf,
		      uint64_t len) __must_check;

/* Whether sector s is in the overlay (false past the end). */
bool blk_overlay_has(const struct blk_overlay *o, uint64_t sector);

struct sbuf;
struct sreader;

/* Snapshots: the overlay travels inside the device's saved state, as runs
 * of sectors with their contents (layout in docs/FORMAT.md, "Device
 * state"), so a VM restored over the same image sees the writes made
 * before the snapshot in its own fresh overlay.
 *
 * Append the overlay to out. When that would take more than max_bytes,
 * nothing is appended and -EFBIG is returned (reported); -EIO when reading
 * the overlay file fails. */
int blk_overlay_save(const struct blk_overlay *o, struct sbuf *out,
		     uint64_t max_bytes) __must_check;
/* Load what blk_overlay_save() wrote, which is the rest of r, into an
 * overlay nothing was written to yet (else -EBUSY). -EINVAL when the data
 * is malformed or was saved over an image of another size (reported);
 * -EIO when writing the overlay file fails. On any error the disk reads
 * as before. */
int blk_overlay_restore(struct blk_overlay *o, struct sreader *r) __must_check;

#endif
