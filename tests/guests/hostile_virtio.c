/* A hostile driver: malformed rings and chains against virtio-blk (slot 0,
 * a disk whose sector 0 starts "FORKD-BLK-MAGIC") and virtio-rng. For
 * each one the guest must see the device refuse it (DEVICE_NEEDS_RESET in
 * Status with a configuration-change interrupt, or QueueReady reading 0),
 * then reset and re-initialise the device and complete a normal request,
 * proving the device (and the VMM) survived. Run by
 * tests/vmm/cases/hostile_virtio.sh with --mem-mib 256, also under the
 * ASan/UBSan build. */
#include "rt/guest.h"
#include "rt/virtio.h"

#define RAM_END	 (256ULL << 20) /* --mem-mib 256 */
#define QSIZE	 32
#define T_IN	 0
#define T_OUT	 1
#define T_GET_ID 8
#define S_OK	 0

struct target {
	const char *name;
	uint32_t device_id;
	struct vdev dev;
	struct vq q;
};

struct blk_hdr {
	uint32_t type;
	uint32_t reserved;
	uint64_t sector;
};

static struct target blk = {.name = "blk", .device_id = VIRTIO_ID_BLOCK};
static struct target rng = {.name = "rng", .device_id = VIRTIO_ID_RNG};
static struct blk_hdr hdr_in = {T_IN, 0, 0}, hdr_out = {T_OUT, 0, 0};
static uint8_t data[4096], status;
static unsigned nr_cases;

static void setup(struct target *t)
{
	CHECK(virtio_find(t->device_id, 0, &t->dev) >= 0);
	CHECK(virtio_init(&t->dev, 0) == 0);
	CHECK(virtio_queue_setup(&t->dev, 0, &t->q, QSIZE) == 0);
	CHECK(t->q.size == QSIZE);
	virtio_driver_ok(&t->dev);
	CHECK(virtio_status(&t->dev) & VIRTIO_STATUS_DRIVER_OK);
	CHECK(!(virtio_status(&t->dev) & VIRTIO_STATUS_NEEDS_RESET));
}

/* A normal request must complete. */
static void good_request(struct target *t)
{
	if (t->device_id == VIRTIO_ID_BLOCK) {
		struct vq_buf c[3] = {
		    {&hdr_in, sizeof(hdr_in), false}, {data, 512, true}, {&status, 1, true}};

		memset(data, 0, 512);
		status = 0xee;
		CHECK(vq_transfer(&t->dev, &t->q, c, 3) == 513);
		CHECK(status == S_OK);
		CHECK(memcmp(data, "FORKD-BLK-MAGIC", 16) == 0);
	} else {
		struct vq_buf c = {data, 64, true};
		unsigned i, nonzero = 0;

		memset(data, 0, 64);
		CHECK(vq_transfer(&t->dev, &t->q, &c, 1) == 64);
		for (i = 0; i < 64; i++)
			nonzero += data[i] != 0;
		CHECK(nonzero > 0);
	}
}

static void desc(struct target *t, unsigned i, uint64_t addr, uint32_t len, uint16_t flags,
		 uint16_t next)
{
	t->q.desc[i] = (struct vq_desc){addr, len, flags, next};
}

/* Descriptor 0 of a request: the header for blk, a first buffer for rng. */
static void first_desc(struct target *t, uint16_t next)
{
	if (t->device_id == VIRTIO_ID_BLOCK)
		desc(t, 0, (uint64_t)&hdr_in, sizeof(hdr_in), VQ_DESC_F_NEXT, next);
	else
		desc(t, 0, (uint64_t)data, 16, VQ_DESC_F_WRITE | VQ_DESC_F_NEXT, next);
}

static void post(struct target *t, uint16_t head)
{
	vq_publish(&t->q, head);
	vq_kick(&t->dev, &t->q);
}

/* ---- malformed chains (the device is live) ---- */

static void loop_chain(struct target *t)
{
	first_desc(t, 1);
	desc(t, 1, (uint64_t)data, 512, VQ_DESC_F_WRITE | VQ_DESC_F_NEXT, 2);
	desc(t, 2, (uint64_t)&status, 1, VQ_DESC_F_WRITE | VQ_DESC_F_NEXT, 1); /* back to 1 */
	post(t, 0);
}

static void self_loop(struct target *t)
{
	first_desc(t, 0); /* next is itself */
	post(t, 0);
}

static void next_out_of_range(struct target *t)
{
	first_desc(t, QSIZE); /* one past the table */
	post(t, 0);
}

static void next_far_out_of_range(struct target *t)
{
	first_desc(t, 0xffff);
	post(t, 0);
}

static void buf_outside_ram(struct target *t)
{
	first_desc(t, 1);
	desc(t, 1, 0xFFFFF0000000ULL, 512, VQ_DESC_F_WRITE | VQ_DESC_F_NEXT, 2);
	desc(t, 2, (uint64_t)&status, 1, VQ_DESC_F_WRITE, 0);
	post(t, 0);
}

static void buf_in_mmio_hole(struct target *t)
{
	first_desc(t, 1);
	desc(t, 1, 0xD0000000ULL, 512, VQ_DESC_F_WRITE | VQ_DESC_F_NEXT, 2);
	desc(t, 2, (uint64_t)&status, 1, VQ_DESC_F_WRITE, 0);
	post(t, 0);
}

static void buf_across_ram_end(struct target *t)
{
	first_desc(t, 1);
	desc(t, 1, RAM_END - 256, 512, VQ_DESC_F_WRITE | VQ_DESC_F_NEXT, 2);
	desc(t, 2, (uint64_t)&status, 1, VQ_DESC_F_WRITE, 0);
	post(t, 0);
}

static void buf_wrapping(struct target *t)
{
	first_desc(t, 1);
	desc(t, 1, 0xFFFFFFFFFFFFFF00ULL, 0x200, VQ_DESC_F_WRITE | VQ_DESC_F_NEXT, 2);
	desc(t, 2, (uint64_t)&status, 1, VQ_DESC_F_WRITE, 0);
	post(t, 0);
}

static void huge_length(struct target *t)
{
	first_desc(t, 1);
	desc(t, 1, (uint64_t)data, 0xFFFFFFF0u, VQ_DESC_F_WRITE | VQ_DESC_F_NEXT, 2);
	desc(t, 2, (uint64_t)&status, 1, VQ_DESC_F_WRITE, 0);
	post(t, 0);
}

static void readable_after_writable(struct target *t)
{
	first_desc(t, 1);
	desc(t, 1, (uint64_t)data, 512, VQ_DESC_F_WRITE | VQ_DESC_F_NEXT, 2);
	desc(t, 2, (uint64_t)data + 512, 512, VQ_DESC_F_NEXT, 3); /* readable */
	desc(t, 3, (uint64_t)&status, 1, VQ_DESC_F_WRITE, 0);
	post(t, 0);
}

static void indirect_desc(struct target *t)
{
	first_desc(t, 1);
	desc(t, 1, (uint64_t)data, 64, VQ_DESC_F_INDIRECT, 0); /* not negotiated */
	post(t, 0);
}

/* Every descriptor valid on its own, each covering all of RAM, together
 * more than the 4 GiB a chain may describe. */
static void over_4gib(struct target *t)
{
	unsigned i;

	desc(t, 0, (uint64_t)&hdr_out, sizeof(hdr_out), VQ_DESC_F_NEXT, 1);
	for (i = 1; i < QSIZE - 1; i++)
		desc(t, i, 0, (uint32_t)RAM_END, VQ_DESC_F_NEXT, (uint16_t)(i + 1));
	desc(t, QSIZE - 1, (uint64_t)&status, 1, VQ_DESC_F_WRITE, 0);
	post(t, 0);
}

static void head_out_of_range(struct target *t)
{
	post(t, 200);
}

static void avail_idx_jump(struct target *t)
{
	first_desc(t, 1);
	desc(t, 1, (uint64_t)&status, 1, VQ_DESC_F_WRITE, 0);
	t->q.avail.idx = (uint16_t)(t->q.avail.idx + QSIZE + 1);
	vq_kick(&t->dev, &t->q);
}

static void no_status_byte(struct target *t)
{
	desc(t, 0, (uint64_t)&hdr_in, sizeof(hdr_in), 0, 0); /* header only */
	post(t, 0);
}

/* ---- bad queue set-up (before DRIVER_OK): QueueReady must stay 0 ---- */

static uint32_t raw_setup(struct target *t, uint16_t size, uint64_t d, uint64_t a, uint64_t u)
{
	CHECK(virtio_init(&t->dev, 0) == 0);
	return virtio_queue_setup_raw(&t->dev, 0, size, d, a, u);
}

static void rings_outside_ram(struct target *t)
{
	CHECK(raw_setup(t, QSIZE, 0xFFFFF0000000ULL, 0xFFFFF0001000ULL, 0xFFFFF0002000ULL) == 0);
}

static void used_ring_across_ram_end(struct target *t)
{
	CHECK(raw_setup(t, QSIZE, (uint64_t)t->q.desc, (uint64_t)&t->q.avail, RAM_END - 64) == 0);
}

static void desc_in_mmio_hole(struct target *t)
{
	CHECK(raw_setup(t, QSIZE, 0xD0000000ULL, (uint64_t)&t->q.avail, (uint64_t)&t->q.used) == 0);
}

static void misaligned_desc(struct target *t)
{
	CHECK(raw_setup(t, QSIZE, (uint64_t)t->q.desc + 8, (uint64_t)&t->q.avail,
			(uint64_t)&t->q.used) == 0);
}

static void size_not_power_of_2(struct target *t)
{
	CHECK(raw_setup(t, 24, (uint64_t)t->q.desc, (uint64_t)&t->q.avail, (uint64_t)&t->q.used) ==
	      0);
}

static void size_above_max(struct target *t)
{
	CHECK(raw_setup(t, 1024, (uint64_t)t->q.desc, (uint64_t)&t->q.avail,
			(uint64_t)&t->q.used) == 0);
}

static void size_zero(struct target *t)
{
	CHECK(raw_setup(t, 0, (uint64_t)t->q.desc, (uint64_t)&t->q.avail, (uint64_t)&t->q.used) ==
	      0);
}

struct hostile_case {
	const char *name;
	void (*run)(struct target *t);
	bool live;     /* posted on a live queue: expect a config interrupt too */
	bool blk_only; /* needs the blk request format */
};

static const struct hostile_case cases[] = {
    {"descriptor loop (2 -> 1)", loop_chain, true, false},
    {"descriptor pointing at itself", self_loop, true, false},
    {"next index == queue size", next_out_of_range, true, false},
    {"next index 0xffff", next_far_out_of_range, true, false},
    {"buffer at 0xFFFFF0000000 (outside RAM)", buf_outside_ram, true, false},
    {"buffer in the MMIO hole", buf_in_mmio_hole, true, false},
    {"buffer across the end of RAM", buf_across_ram_end, true, false},
    {"buffer wrapping the address space", buf_wrapping, true, false},
    {"length 0xFFFFFFF0 at a valid address", huge_length, true, false},
    {"readable descriptor after a writable one", readable_after_writable, true, false},
    {"indirect descriptor (not negotiated)", indirect_desc, true, false},
    {"chain of more than 4 GiB", over_4gib, true, true},
    {"avail ring head index 200 >= queue size", head_out_of_range, true, false},
    {"avail idx jumps by queue size + 1", avail_idx_jump, true, false},
    {"no writable status byte", no_status_byte, true, true},
    {"QueueReady with rings outside RAM", rings_outside_ram, false, false},
    {"QueueReady with used ring across the end of RAM", used_ring_across_ram_end, false, false},
    {"QueueReady with descriptors in the MMIO hole", desc_in_mmio_hole, false, false},
    {"QueueReady with a misaligned descriptor table", misaligned_desc, false, false},
    {"QueueReady with queue size 24", size_not_power_of_2, false, false},
    {"QueueReady with queue size 1024 > max", size_above_max, false, false},
    {"QueueReady with queue size 0", size_zero, false, false},
};

static void run_case(struct target *t, const struct hostile_case *c)
{
	uint16_t used_before;

	if (c->blk_only && t->device_id != VIRTIO_ID_BLOCK)
		return;
	puts_("hostile_virtio: ");
	puts_(t->name);
	puts_(": ");
	puts_(c->name);
	t->dev.int_status = 0;
	used_before = t->q.used.idx;
	c->run(t);
	CHECK(virtio_status(&t->dev) & VIRTIO_STATUS_NEEDS_RESET);
	if (c->live) {
		/* virtio_fail() raised a configuration-change interrupt. */
		CHECK(t->dev.int_status & VIRTIO_INT_CONFIG);
		/* A broken device consumes nothing more. */
		used_before = t->q.used.idx;
		{
			struct vq_buf b = {data, 16, true};

			CHECK(vq_add(&t->q, &b, 1) >= 0);
			vq_kick(&t->dev, &t->q);
		}
		CHECK(t->q.used.idx == used_before);
		/* The driver cannot clear NEEDS_RESET by writing Status. */
		virtio_write32(&t->dev, VIRTIO_MMIO_STATUS,
			       virtio_status(&t->dev) & ~(uint32_t)VIRTIO_STATUS_NEEDS_RESET);
		CHECK(virtio_status(&t->dev) & VIRTIO_STATUS_NEEDS_RESET);
	} else {
		virtio_write32(&t->dev, VIRTIO_MMIO_QUEUE_SEL, 0);
		CHECK(virtio_read32(&t->dev, VIRTIO_MMIO_QUEUE_READY) == 0);
	}
	puts_(" -> refused; ");
	/* Recover: reset, re-initialise, a normal request works. */
	virtio_reset(&t->dev);
	CHECK(virtio_status(&t->dev) == 0);
	setup(t);
	good_request(t);
	puts_("reset, re-initialised, normal request ok\n");
	nr_cases++;
}

/* Odd but harmless accesses: ignored, the device stays healthy. */
static void harmless(struct target *t)
{
	uint8_t small[4];

	virtio_write32(&t->dev, VIRTIO_MMIO_QUEUE_NOTIFY, 5); /* no such queue */
	virtio_write32(&t->dev, VIRTIO_MMIO_QUEUE_NOTIFY, 0xffffffff);
	virtio_write32(&t->dev, VIRTIO_MMIO_QUEUE_SEL, 7);
	CHECK(virtio_read32(&t->dev, VIRTIO_MMIO_QUEUE_NUM_MAX) == 0);
	virtio_write32(&t->dev, VIRTIO_MMIO_QUEUE_READY, 1); /* on a queue that does not exist */
	virtio_write32(&t->dev, VIRTIO_MMIO_QUEUE_SEL, 0);
	virtio_write32(&t->dev, VIRTIO_MMIO_QUEUE_NUM, 2); /* queue is live: ignored */
	virtio_write32(&t->dev, VIRTIO_MMIO_QUEUE_DESC_LOW, 0x1234);
	*(volatile uint8_t *)(t->dev.base + VIRTIO_MMIO_STATUS) = 0; /* 1-byte register write */
	CHECK(*(volatile uint8_t *)(t->dev.base + VIRTIO_MMIO_MAGIC) == 0);
	CHECK(*(volatile uint32_t *)(t->dev.base + 0xffc) == 0); /* past the config space */
	*(volatile uint32_t *)(t->dev.base + 0xffc) = 0xdeadbeef;
	*(volatile uint64_t *)(t->dev.base + VIRTIO_MMIO_CONFIG + 4) = ~0ULL;
	virtio_config_read(&t->dev, 0xe00, small, sizeof(small));
	CHECK(!(virtio_status(&t->dev) & VIRTIO_STATUS_NEEDS_RESET));
	good_request(t);
	if (t->device_id == VIRTIO_ID_BLOCK) {
		/* GET_ID into a 4-byte buffer: truncated, not overrun. */
		static struct blk_hdr id_hdr = {T_GET_ID, 0, 0};
		struct vq_buf c[3] = {
		    {&id_hdr, sizeof(id_hdr), false}, {data, 4, true}, {&status, 1, true}};

		memset(data, 0xaa, 8);
		CHECK(vq_transfer(&t->dev, &t->q, c, 3) == 5);
		CHECK(status == S_OK && data[4] == 0xaa);
	}
	puts_("hostile_virtio: ");
	puts_(t->name);
	puts_(": odd register/config accesses ignored, device still healthy\n");
}

int main(void);
int main(void)
{
	struct target *targets[2] = {&blk, &rng};
	unsigned i, j;

	idt_init();
	for (i = 0; i < 2; i++) {
		struct target *t = targets[i];

		setup(t);
		virtio_irq_enable(&t->dev);
		good_request(t);
		harmless(t);
		for (j = 0; j < sizeof(cases) / sizeof(cases[0]); j++)
			run_case(t, &cases[j]);
	}
	puts_("hostile_virtio: ");
	put_dec(nr_cases);
	puts_(" malformed cases refused and recovered from\n");
	return 0;
}
