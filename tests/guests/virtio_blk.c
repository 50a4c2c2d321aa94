/* virtio-blk against the images tests/vmm/cases/virtio_blk.sh makes:
 *   vda  vda.img, 1 MiB: "FORKD-BLK-MAGIC" in sector 0, sector s starts
 *        with the 64-bit value s ^ BASE_SALT (the rest zero)
 *   vdb  ro.img, 64 KiB, given with ,ro: "FORKD-RO-DISK" in sector 0
 *   vdc  odd.img, 4096 + 100 bytes: the device must offer 8 sectors
 * It checks config space, reads, writes (single and multi-descriptor,
 * crossing sectors, partial overlaps), error statuses, GET_ID, FLUSH, that
 * writes survive a device reset, and that the read-only disk refuses
 * writes. The case script checks the images are unchanged afterwards. */
#include "rt/guest.h"
#include "rt/virtio.h"

#define VIRTIO_BLK_F_SEG_MAX  2
#define VIRTIO_BLK_F_RO	      5
#define VIRTIO_BLK_F_BLK_SIZE 6
#define VIRTIO_BLK_F_FLUSH    9

#define T_IN	 0
#define T_OUT	 1
#define T_FLUSH	 4
#define T_GET_ID 8
#define S_OK	 0
#define S_IOERR	 1
#define S_UNSUPP 2

#define VDA_SECTORS 2048
#define BASE_SALT   0x5eed5eed00000000ULL

struct blk_hdr {
	uint32_t type;
	uint32_t reserved;
	uint64_t sector;
};

struct disk {
	struct vdev dev;
	struct vq q;
};

static struct disk vda, vdb, vdc;
static uint8_t buf[8192], buf2[8192];

static void say(const char *s)
{
	puts_("virtio_blk: ");
	puts_(s);
	putc_('\n');
}

static void disk_init(struct disk *dk, unsigned nth)
{
	CHECK(virtio_find(VIRTIO_ID_BLOCK, nth, &dk->dev) >= 0);
	CHECK(virtio_init(&dk->dev, (1ULL << VIRTIO_BLK_F_SEG_MAX) | (1ULL << VIRTIO_BLK_F_RO) |
					(1ULL << VIRTIO_BLK_F_BLK_SIZE) |
					(1ULL << VIRTIO_BLK_F_FLUSH)) == 0);
	CHECK(virtio_queue_setup(&dk->dev, 0, &dk->q, 32) == 0);
	virtio_driver_ok(&dk->dev);
}

/* One request: header, the data buffers given (all readable for OUT, all
 * writable otherwise), a status byte. Returns the status; *used = bytes
 * the device reported written. */
static uint8_t blk_req_v(struct disk *dk, uint32_t type, uint64_t sector, const struct vq_buf *data,
			 unsigned n, uint32_t *used)
{
	static struct blk_hdr hdr;
	static uint8_t status;
	struct vq_buf chain[8];
	unsigned i;
	int64_t r;

	CHECK(n + 2 <= 8);
	hdr = (struct blk_hdr){type, 0, sector};
	status = 0xee;
	chain[0] = (struct vq_buf){&hdr, sizeof(hdr), false};
	for (i = 0; i < n; i++) {
		chain[1 + i] = data[i];
		chain[1 + i].writable = type != T_OUT;
	}
	chain[1 + n] = (struct vq_buf){&status, 1, true};
	r = vq_transfer(&dk->dev, &dk->q, chain, n + 2);
	CHECK(r >= 1);
	if (used)
		*used = (uint32_t)r;
	return status;
}

static uint8_t blk_req(struct disk *dk, uint32_t type, uint64_t sector, void *p, uint32_t len)
{
	struct vq_buf b = {p, len, false};

	return blk_req_v(dk, type, sector, &b, len ? 1 : 0, NULL);
}

static uint64_t config_capacity(struct disk *dk)
{
	uint64_t cap;

	virtio_config_read(&dk->dev, 0, &cap, sizeof(cap));
	return cap;
}

static void fill(uint8_t *p, uint32_t len, uint8_t seed)
{
	uint32_t i;

	for (i = 0; i < len; i++)
		p[i] = (uint8_t)(seed + i * 7 + (i >> 9));
}

static uint64_t first_u64(const uint8_t *p)
{
	uint64_t v;

	memcpy(&v, p, 8);
	return v;
}

static void check_base_sector(uint64_t s)
{
	CHECK(blk_req(&vda, T_IN, s, buf, 512) == S_OK);
	CHECK(first_u64(buf) == (s ^ BASE_SALT));
}

int main(void);
int main(void)
{
	uint32_t blk_size, seg_max, used;
	uint8_t id[20];
	unsigned i;

	idt_init();
	disk_init(&vda, 0);
	disk_init(&vdb, 1);
	disk_init(&vdc, 2);

	/* Config space and features. */
	CHECK(config_capacity(&vda) == VDA_SECTORS);
	CHECK(config_capacity(&vdb) == 128);
	CHECK(config_capacity(&vdc) == 8);
	CHECK(vda.dev.features & (1ULL << VIRTIO_BLK_F_FLUSH));
	CHECK(vda.dev.features & (1ULL << VIRTIO_BLK_F_BLK_SIZE));
	CHECK(vda.dev.features & (1ULL << VIRTIO_BLK_F_SEG_MAX));
	CHECK(!(vda.dev.features & (1ULL << VIRTIO_BLK_F_RO)));
	CHECK(vdb.dev.features & (1ULL << VIRTIO_BLK_F_RO));
	virtio_config_read(&vda.dev, 20, &blk_size, 4);
	virtio_config_read(&vda.dev, 12, &seg_max, 4);
	CHECK(blk_size == 512);
	CHECK(seg_max >= 6);
	say("capacity 2048/128/8 sectors, blk_size 512, FLUSH/SEG_MAX offered, vdb RO");

	/* A config write cannot change the capacity. */
	*(volatile uint32_t *)(vda.dev.base + VIRTIO_MMIO_CONFIG) = 12345;
	CHECK(config_capacity(&vda) == VDA_SECTORS);

	/* Sector 0 and base data. */
	CHECK(blk_req(&vda, T_IN, 0, buf, 512) == S_OK);
	CHECK(memcmp(buf, "FORKD-BLK-MAGIC", 16) == 0);
	for (i = 1; i < 40; i++)
		check_base_sector(i);
	check_base_sector(VDA_SECTORS - 1);
	say("sector 0 magic and base pattern read (each VM starts from the image)");

	/* Single-descriptor write of four sectors, read back. */
	fill(buf, 2048, 1);
	CHECK(blk_req(&vda, T_OUT, 10, buf, 2048) == S_OK);
	memset(buf2, 0, sizeof(buf2));
	CHECK(blk_req(&vda, T_IN, 10, buf2, 2048) == S_OK);
	CHECK(memcmp(buf, buf2, 2048) == 0);
	check_base_sector(9);
	check_base_sector(14);
	say("4-sector write at 10 read back; neighbours 9 and 14 untouched");

	/* Multi-descriptor write whose buffers cross sector boundaries:
	 * 100 + 700 + 224 bytes = sectors 20 and 21. */
	{
		struct vq_buf d[3] = {
		    {buf, 100, false}, {buf + 100, 700, false}, {buf + 800, 224, false}};
		struct vq_buf r[3] = {
		    {buf2, 300, true}, {buf2 + 300, 300, true}, {buf2 + 600, 424, true}};

		fill(buf, 1024, 77);
		CHECK(blk_req_v(&vda, T_OUT, 20, d, 3, NULL) == S_OK);
		memset(buf2, 0, sizeof(buf2));
		CHECK(blk_req_v(&vda, T_IN, 20, r, 3, &used) == S_OK);
		CHECK(used == 1024 + 1);
		CHECK(memcmp(buf, buf2, 1024) == 0);
	}
	say("3-descriptor write across a sector boundary read back through 3 other buffers");

	/* Partial overlap: rewrite sector 11 only; read 9..14 in one go. */
	fill(buf, 512, 200);
	CHECK(blk_req(&vda, T_OUT, 11, buf, 512) == S_OK);
	CHECK(blk_req(&vda, T_IN, 9, buf2, 6 * 512) == S_OK);
	CHECK(first_u64(buf2) == (9 ^ BASE_SALT));
	fill(buf, 2048, 1);
	CHECK(memcmp(buf2 + 512, buf, 512) == 0); /* sector 10, first write */
	fill(buf, 512, 200);
	CHECK(memcmp(buf2 + 1024, buf, 512) == 0); /* sector 11, rewritten */
	fill(buf, 2048, 1);
	CHECK(memcmp(buf2 + 1536, buf + 1024, 1024) == 0); /* sectors 12-13 */
	CHECK(first_u64(buf2 + 2560) == (14 ^ BASE_SALT));
	say("read spanning base and overlay sectors (9..14) correct after a partial rewrite");

	/* Last sector writable; anything past the end is an I/O error. */
	fill(buf, 512, 9);
	CHECK(blk_req(&vda, T_OUT, VDA_SECTORS - 1, buf, 512) == S_OK);
	CHECK(blk_req(&vda, T_IN, VDA_SECTORS - 1, buf2, 512) == S_OK);
	CHECK(memcmp(buf, buf2, 512) == 0);
	CHECK(blk_req(&vda, T_OUT, VDA_SECTORS, buf, 512) == S_IOERR);
	CHECK(blk_req(&vda, T_IN, VDA_SECTORS - 1, buf2, 1024) == S_IOERR);
	CHECK(blk_req(&vda, T_IN, 0xffffffffffffffffULL, buf2, 512) == S_IOERR);
	CHECK(blk_req(&vda, T_IN, 0x0080000000000000ULL, buf2, 512) == S_IOERR);
	CHECK(blk_req(&vda, T_OUT, 3, buf, 513) == S_IOERR);
	CHECK(blk_req(&vda, T_IN, 3, buf2, 100) == S_IOERR);
	check_base_sector(3);
	say("last sector ok; past the end, sector overflow, non-512 lengths: IOERR");

	/* A header shorter than 16 bytes. */
	{
		static uint8_t hdr8[8], st;
		struct vq_buf c[2] = {{hdr8, 8, false}, {&st, 1, true}};

		st = 0xee;
		CHECK(vq_transfer(&vda.dev, &vda.q, c, 2) == 1);
		CHECK(st == S_IOERR);
	}
	say("8-byte header: IOERR");

	/* Other request types. */
	CHECK(blk_req(&vda, T_FLUSH, 0, NULL, 0) == S_OK);
	CHECK(blk_req(&vda, 11 /* DISCARD, not offered */, 0, buf, 16) == S_UNSUPP);
	CHECK(blk_req(&vda, 0x7777, 0, buf, 16) == S_UNSUPP);
	memset(id, 0xff, sizeof(id));
	CHECK(blk_req(&vda, T_GET_ID, 0, id, sizeof(id)) == S_OK);
	CHECK(memcmp(id, "vda.img\0", 8) == 0);
	CHECK(blk_req(&vdb, T_GET_ID, 0, id, sizeof(id)) == S_OK);
	CHECK(memcmp(id, "ro.img\0", 7) == 0);
	say("FLUSH ok, unknown types UNSUPP, GET_ID = image file names");

	/* The device was never marked broken by any of that. */
	CHECK(!(virtio_status(&vda.dev) & VIRTIO_STATUS_NEEDS_RESET));

	/* Writes survive a device reset (the disk is not the device). */
	virtio_reset(&vda.dev);
	disk_init(&vda, 0);
	virtio_irq_enable(&vda.dev);
	CHECK(blk_req(&vda, T_IN, 10, buf2, 2048) == S_OK);
	CHECK(blk_req(&vda, T_IN, 10, buf2, 512) == S_OK);
	fill(buf, 512, 1);
	CHECK(memcmp(buf, buf2, 512) == 0);
	CHECK(vda.dev.irqs >= 2);
	say("after reset + re-init (interrupt-driven) the written data is still there");

	/* Read-only disk: reads work, writes fail and change nothing. */
	CHECK(blk_req(&vdb, T_IN, 0, buf2, 512) == S_OK);
	CHECK(memcmp(buf2, "FORKD-RO-DISK", 13) == 0);
	fill(buf, 512, 3);
	CHECK(blk_req(&vdb, T_OUT, 0, buf, 512) == S_IOERR);
	CHECK(blk_req(&vdb, T_OUT, 5, buf, 512) == S_IOERR);
	CHECK(blk_req(&vdb, T_IN, 0, buf2, 512) == S_OK);
	CHECK(memcmp(buf2, "FORKD-RO-DISK", 13) == 0);
	CHECK(blk_req(&vdb, T_FLUSH, 0, NULL, 0) == S_OK);
	say("read-only disk: writes IOERR, content unchanged");

	/* The odd-sized image: 8 whole sectors, the 100-byte tail invisible. */
	CHECK(blk_req(&vdc, T_IN, 7, buf2, 512) == S_OK);
	CHECK(blk_req(&vdc, T_IN, 8, buf2, 512) == S_IOERR);
	CHECK(blk_req(&vdc, T_OUT, 7, buf, 512) == S_OK);
	say("odd-sized image: 8 sectors, sector 8 IOERR");
	return 0;
}
