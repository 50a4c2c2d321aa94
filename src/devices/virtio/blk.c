/* virtio-blk (virtio 1.2 §5.2): one request queue, requests served
 * synchronously in notify() on the vCPU thread that kicked, with the
 * device lock held. Data moves straight between the chain's buffers in
 * guest memory and the copy-on-write view of the image (blk_overlay.h).
 *
 * A request (§5.2.6) is a 16-byte header the device reads, data, and a
 * status byte the device writes (the chain's last writable byte). The
 * framing into descriptors is the driver's choice (§2.7.4), so the header,
 * data and status are located by byte position, not by descriptor. */
#include "devices/virtio/blk.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/sbuf.h"
#include "common/util.h"
#include "devices/virtio/blk_overlay.h"
#include "devices/virtio/mmio.h"

/* Feature bits, §5.2.3 */
#define VIRTIO_BLK_F_SEG_MAX  2
#define VIRTIO_BLK_F_RO	      5
#define VIRTIO_BLK_F_BLK_SIZE 6
#define VIRTIO_BLK_F_FLUSH    9

/* Request types and status values, §5.2.6 */
#define VIRTIO_BLK_T_IN	    0
#define VIRTIO_BLK_T_OUT    1
#define VIRTIO_BLK_T_FLUSH  4
#define VIRTIO_BLK_T_GET_ID 8
#define VIRTIO_BLK_S_OK	    0
#define VIRTIO_BLK_S_IOERR  1
#define VIRTIO_BLK_S_UNSUPP 2

#define VIRTIO_BLK_ID_BYTES 20
#define BLK_QUEUE_SIZE	    128
#define BLK_HDR_SIZE	    16

/* Device configuration layout, §5.2.4, up to num_queues. */
struct virtio_blk_config {
	uint64_t capacity; /* 512-byte sectors */
	uint32_t size_max;
	uint32_t seg_max; /* data buffers per request (VIRTIO_BLK_F_SEG_MAX) */
	struct {
		uint16_t cylinders;
		uint8_t heads;
		uint8_t sectors;
	} geometry;
	uint32_t blk_size; /* VIRTIO_BLK_F_BLK_SIZE */
	struct {
		uint8_t physical_block_exp;
		uint8_t alignment_offset;
		uint16_t min_io_size;
		uint32_t opt_io_size;
	} topology;
	uint8_t writeback;
	uint8_t unused0;
	uint16_t num_queues;
} __attribute__((packed));

struct virtio_blk {
	struct virtio_dev vdev; /* first: the transport hands back &vdev */
	struct blk_overlay disk;
	bool read_only;
	char id[VIRTIO_BLK_ID_BYTES]; /* GET_ID answer, NUL-padded */
	struct virtio_blk_config config;
	struct virtq_req req; /* scratch for the request being served */
};

struct blk_req_hdr {
	uint32_t type;
	uint32_t reserved; /* ioprio in older drivers; ignored */
	uint64_t sector;
};

static void blk_fill_config(struct virtio_blk *blk)
{
	memset(&blk->config, 0, sizeof(blk->config));
	blk->config.capacity = blk->disk.nr_sectors;
	/* Header and status take a descriptor each; the rest may be data. */
	blk->config.seg_max = BLK_QUEUE_SIZE - 2;
	blk->config.blk_size = BLK_SECTOR_SIZE;
	blk->config.num_queues = 1;
}

/* Move `len` bytes between the disk at byte `off` and the chain: out of
 * its readable part (a write to disk) or into its writable part (a read),
 * starting `skip` bytes into that part. */
static int blk_transfer(struct virtio_blk *blk, const struct virtq_req *req, bool to_disk,
			uint64_t skip, uint64_t off, uint64_t len)
{
	unsigned i = to_disk ? 0 : req->nr_out, end = to_disk ? req->nr_out : req->nr;
	int err;

	for (; i < end && len; i++) {
		const struct virtq_buf *b = &req->bufs[i];
		uint64_t n;

		if (skip >= b->len) {
			skip -= b->len;
			continue;
		}
		n = MIN(b->len - skip, len);
		if (to_disk)
			err = blk_overlay_write(&blk->disk, off, b->ptr + skip, n);
		else
			err = blk_overlay_read(&blk->disk, off, b->ptr + skip, n);
		if (err)
			return err;
		off += n;
		len -= n;
		skip = 0;
	}
	return len ? -EINVAL : 0;
}

/* Data length and disk range of an IN/OUT request: a whole number of
 * sectors, all on the disk (§5.2.6.1). */
static bool blk_range_ok(const struct virtio_blk *blk, uint64_t sector, uint64_t len)
{
	uint64_t nr = blk->disk.nr_sectors;

	return len % BLK_SECTOR_SIZE == 0 && sector <= nr && len / BLK_SECTOR_SIZE <= nr - sector;
}

/* Serve one request whose chain has a status byte (in_len >= 1). Returns
 * the status; *data = bytes written to the chain before the status. */
static uint8_t blk_request(struct virtio_blk *blk, const struct virtq_req *req, uint32_t *data)
{
	struct blk_req_hdr hdr;
	uint64_t len;

	*data = 0;
	if (virtq_req_read(req, 0, &hdr, sizeof(hdr)) != sizeof(hdr))
		return VIRTIO_BLK_S_IOERR;
	switch (hdr.type) {
	case VIRTIO_BLK_T_IN:
		len = req->in_len - 1;
		if (!blk_range_ok(blk, hdr.sector, len) ||
		    blk_transfer(blk, req, false, 0, hdr.sector * BLK_SECTOR_SIZE, len))
			return VIRTIO_BLK_S_IOERR;
		*data = (uint32_t)len;
		return VIRTIO_BLK_S_OK;
	case VIRTIO_BLK_T_OUT:
		len = req->out_len - BLK_HDR_SIZE;
		if (blk->read_only || !blk_range_ok(blk, hdr.sector, len) ||
		    blk_transfer(blk, req, true, BLK_HDR_SIZE, hdr.sector * BLK_SECTOR_SIZE, len))
			return VIRTIO_BLK_S_IOERR;
		return VIRTIO_BLK_S_OK;
	case VIRTIO_BLK_T_FLUSH:
		/* Nothing to do: every completed write is already in the
		 * overlay file, so later reads see it, and the overlay is an
		 * unlinked file that cannot outlive this process, so forcing it
		 * to stable storage (fdatasync) would only add latency. */
		return VIRTIO_BLK_S_OK;
	case VIRTIO_BLK_T_GET_ID:
		len = MIN(req->in_len - 1, (uint64_t)VIRTIO_BLK_ID_BYTES);
		*data = (uint32_t)virtq_req_write(req, 0, blk->id, len);
		return VIRTIO_BLK_S_OK;
	default:
		return VIRTIO_BLK_S_UNSUPP;
	}
}

static void blk_notify(struct virtio_dev *vdev, unsigned q)
{
	struct virtio_blk *blk = (struct virtio_blk *)vdev;
	const struct guest_mem *mem = &vdev->vm->mem;
	struct virtq *vq = &vdev->queues[q];
	struct virtq_req *req = &blk->req;
	bool pushed = false;
	int r;

	while ((r = virtq_pop(mem, vq, req)) == 1) {
		uint32_t data = 0;
		uint8_t status;

		if (req->in_len == 0) {
			/* No status byte: nothing to report the error in. */
			if (virtq_push(mem, vq, req->head, 0) == 0)
				pushed = true;
			virtio_fail(vdev, "request without a writable status byte");
			break;
		}
		status = blk_request(blk, req, &data);
		if (status != VIRTIO_BLK_S_OK && log_enabled(LOG_DEBUG)) {
			uint32_t type = ~0u;

			virtq_req_read(req, 0, &type, sizeof(type));
			log_debug("%s: request type %u failed with status %u", vdev->ops->name,
				  type, status);
		}
		virtq_req_write(req, req->in_len - 1, &status, 1);
		if (virtq_push(mem, vq, req->head, data + 1)) {
			virtio_fail(vdev, "used ring not in guest memory");
			break;
		}
		pushed = true;
	}
	if (r < 0)
		virtio_fail(vdev, "malformed descriptor chain on the request queue");
	if (pushed)
		virtio_notify_used(vdev, q);
}

/* Only `writeback` is writable in §5.2.4, and only with CONFIG_WCE, which
 * forkd does not offer: undo whatever the driver wrote. */
static void blk_config_write(struct virtio_dev *vdev, uint32_t off, uint32_t len)
{
	blk_fill_config((struct virtio_blk *)vdev);
}

/* Saved state (docs/FORMAT.md, "Device state"): a version word, then the
 * overlay with the contents of every sector the guest wrote. Requests are
 * served synchronously, so none is in flight at a snapshot. The image
 * itself is not saved: a restored VM opens the same one, and the overlay
 * checks its size. */
#define BLK_STATE_VERSION 1
/* The overlay travels inside the vmstate file, read into memory whole by
 * every restore: keep that bounded. */
#define BLK_STATE_MAX (32 * MIB)

static int blk_save(struct virtio_dev *vdev, struct sbuf *out)
{
	struct virtio_blk *blk = (struct virtio_blk *)vdev;

	sbuf_u32(out, BLK_STATE_VERSION);
	return blk_overlay_save(&blk->disk, out, BLK_STATE_MAX - 4);
}

static int blk_restore(struct virtio_dev *vdev, struct sreader *r)
{
	struct virtio_blk *blk = (struct virtio_blk *)vdev;

	if (sreader_u32(r) != BLK_STATE_VERSION)
		return -EINVAL;
	return blk_overlay_restore(&blk->disk, r);
}

static void blk_destroy(struct virtio_dev *vdev)
{
	struct virtio_blk *blk = (struct virtio_blk *)vdev;

	blk_overlay_close(&blk->disk);
	free(blk);
}

static const struct virtio_dev_ops blk_ops = {
    .name = "virtio-blk",
    .device_id = VIRTIO_ID_BLOCK,
    .nr_queues = 1,
    .queue_max = BLK_QUEUE_SIZE,
    .notify = blk_notify,
    .config_write = blk_config_write,
    .destroy = blk_destroy,
    .save = blk_save,
    .restore = blk_restore,
};

/* The GET_ID serial: the image's file name, cut to 20 bytes. */
static void blk_set_id(struct virtio_blk *blk, const char *path)
{
	const char *base = strrchr(path, '/');

	base = base ? base + 1 : path;
	if (!*base)
		base = "forkd-disk";
	strncpy(blk->id, base, sizeof(blk->id));
}

int virtio_blk_create(struct vm *vm, const struct virtio_blk_opts *opts)
{
	struct virtio_blk *blk = calloc(1, sizeof(*blk));
	int err;

	if (!blk) {
		log_err("virtio-blk: out of memory");
		return -ENOMEM;
	}
	err = blk_overlay_open(&blk->disk, opts->path, opts->overlay_dir);
	if (err) {
		free(blk);
		return err;
	}
	blk->read_only = opts->read_only;
	blk_set_id(blk, opts->path);
	blk_fill_config(blk);
	blk->vdev.device_features = (1ULL << VIRTIO_BLK_F_SEG_MAX) |
				    (1ULL << VIRTIO_BLK_F_BLK_SIZE) | (1ULL << VIRTIO_BLK_F_FLUSH);
	if (blk->read_only)
		blk->vdev.device_features |= 1ULL << VIRTIO_BLK_F_RO;
	blk->vdev.config = (uint8_t *)&blk->config;
	blk->vdev.config_size = sizeof(blk->config);
	log_debug("virtio-blk: %s, %llu sectors%s", opts->path,
		  (unsigned long long)blk->disk.nr_sectors, blk->read_only ? ", read-only" : "");
	/* On failure the transport has called blk_destroy(). */
	return virtio_mmio_register(vm, &blk->vdev, &blk_ops);
}
