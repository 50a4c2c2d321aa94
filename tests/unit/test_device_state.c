/* Device state for snapshots (docs/FORMAT.md, "Device state"): serial,
 * i8042, the virtio-mmio transport (through virtio-rng, which keeps no
 * state of its own), virtio-blk with its overlay, virtio-net and
 * virtio-vsock, each in a fake VM (RAM from calloc, KVM_IRQ_LINE and the
 * tap ioctls captured by a fake ioctl()). No KVM needed.
 *
 * For each device: save, restore into a freshly built device, save again:
 * the bytes are the same. Every truncation, a wrong version and each
 * out-of-range field is refused with -EINVAL, and the device then saves
 * exactly as before. Plus what a restored device must do to be live: the
 * transport re-raises a pending interrupt, blk serves the saved writes,
 * vsock sends the transport-reset event and gives back a held buffer. */
#include <errno.h>
#include <fcntl.h>
#include <linux/if_tun.h>
#include <linux/kvm.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/sbuf.h"
#include "common/util.h"
#include "devices/i8042.h"
#include "devices/serial.h"
#include "devices/virtio/blk.h"
#include "devices/virtio/blk_overlay.h"
#include "devices/virtio/mmio.h"
#include "devices/virtio/net.h"
#include "devices/virtio/rng.h"
#include "devices/virtio/vsock.h"

#define FAKE_VM_FD 987
#define RAM	   (2 * MIB)
#define QSZ	   16
#define BUF_GPA	   0x80000

/* Queue q's rings. */
#define DESC(q)	 (0x10000 + (q)*0x4000)
#define AVAIL(q) (DESC(q) + 0x1000)
#define USED(q)	 (DESC(q) + 0x2000)

/* virtio-mmio registers, §4.2.2 */
#define R_DEVICE_FEAT_SEL 0x014
#define R_DRIVER_FEATURES 0x020
#define R_DRIVER_FEAT_SEL 0x024
#define R_QUEUE_SEL	  0x030
#define R_QUEUE_NUM	  0x038
#define R_QUEUE_READY	  0x044
#define R_QUEUE_NOTIFY	  0x050
#define R_INT_STATUS	  0x060
#define R_STATUS	  0x070
#define R_QUEUE_DESC	  0x080
#define R_QUEUE_AVAIL	  0x090
#define R_QUEUE_USED	  0x0a0
#define R_CONFIG	  0x100

/* Transport blob offsets (FORMAT.md): header, then 34 bytes per queue,
 * then the device part's length and the device part. */
#define T_VERSION     0
#define T_DEVICE_ID   4
#define T_NR_QUEUES   8
#define T_STATUS      12
#define T_FEATURES    16
#define T_INT_STATUS  36
#define T_QUEUES      52
#define Q_BYTES	      34
#define Q_SIZE	      0
#define Q_MAX	      2
#define Q_READY	      4
#define Q_BROKEN      5
#define Q_LAST_AVAIL  6
#define Q_USED_IDX    8
#define Q_DESC	      10
#define Q_AVAIL	      18
#define Q_USED	      26
#define T_DEV_LEN(nq) (T_QUEUES + (nq)*Q_BYTES)

/* Rising edges seen on each interrupt line. */
static unsigned edges[32];
static int level[32];

/* Stands in for the C library's ioctl(): KVM_IRQ_LINE on the fake VM fd
 * is recorded, the tap set-up ioctls succeed without a tap (virtio-net
 * then holds an unattached tun fd), everything else goes to the kernel. */
int ioctl(int fd, unsigned long req, ...)
{
	struct kvm_irq_level *l;
	va_list ap;
	void *arg;

	va_start(ap, req);
	arg = va_arg(ap, void *);
	va_end(ap);
	if (fd == FAKE_VM_FD && req == KVM_IRQ_LINE) {
		l = arg;
		if (l->irq >= 32) {
			errno = EINVAL;
			return -1;
		}
		if (l->level && !level[l->irq])
			edges[l->irq]++;
		level[l->irq] = l->level;
		return 0;
	}
	if (req == TUNSETIFF || req == TUNSETVNETHDRSZ || req == TUNSETOFFLOAD)
		return 0;
	return (int)syscall(SYS_ioctl, fd, req, arg);
}

/* ---- A fake VM ---- */

static struct vm *vm_new(void)
{
	struct vm *vm = calloc(1, sizeof(*vm));

	assert_non_null(vm);
	vm->vm_fd = FAKE_VM_FD;
	vm->kvm_fd = vm->stopfd = -1;
	vm->pio.name = "pio";
	vm->mmio.name = "mmio";
	assert_int_equal(evloop_init(&vm->loop), 0);
	vm->mem.base = calloc(1, RAM);
	assert_non_null(vm->mem.base);
	vm->mem.size = vm->mem.low_size = RAM;
	vm->mem.fd = -1;
	return vm;
}

static void vm_free(struct vm *vm)
{
	while (vm->nr_devices) {
		struct device *d = &vm->devices[--vm->nr_devices];

		if (d->ops->destroy)
			d->ops->destroy(d->priv);
	}
	evloop_destroy(&vm->loop);
	free(vm->mem.base);
	free(vm);
}

static uint8_t *gmem(struct vm *vm, uint64_t gpa)
{
	return vm->mem.base + gpa;
}

/* Device 0's state. */
static struct sbuf save(struct vm *vm)
{
	struct device *d = &vm->devices[0];
	struct sbuf b = {0};

	assert_int_equal(d->ops->save(d->priv, &b), 0);
	assert_false(b.oom);
	return b;
}

static int restore(struct vm *vm, const void *blob, size_t len)
{
	struct device *d = &vm->devices[0];

	return d->ops->restore(d->priv, blob, len);
}

static void assert_saves_as(struct vm *vm, const struct sbuf *want)
{
	struct sbuf now = save(vm);

	assert_int_equal(now.len, want->len);
	assert_memory_equal(now.data, want->data, want->len);
	sbuf_free(&now);
}

/* blob is refused with `err` and vm's device keeps its state. */
static void expect_refused_err(struct vm *vm, const void *blob, size_t len, int err)
{
	struct sbuf before = save(vm);

	assert_int_equal(restore(vm, blob, len), err);
	assert_saves_as(vm, &before);
	sbuf_free(&before);
}

static void expect_refused(struct vm *vm, const void *blob, size_t len)
{
	expect_refused_err(vm, blob, len, -EINVAL);
}

/* restore() with stderr discarded: for loops that would print one
 * refusal per byte. Nothing is asserted while stderr is away. */
static int restore_quietly(struct vm *vm, const void *blob, size_t len)
{
	int saved, null, ret;

	fflush(stderr);
	saved = dup(STDERR_FILENO);
	null = open("/dev/null", O_WRONLY | O_CLOEXEC);
	assert_true(saved >= 0 && null >= 0);
	dup2(null, STDERR_FILENO);
	ret = restore(vm, blob, len);
	fflush(stderr);
	dup2(saved, STDERR_FILENO);
	close(saved);
	close(null);
	return ret;
}

/* Every proper prefix of good, and good with a byte more, are refused. */
static void expect_refused_truncations(struct vm *vm, const struct sbuf *good)
{
	struct sbuf before = save(vm);
	uint8_t *longer = malloc(good->len + 1);

	assert_non_null(longer);
	for (size_t n = 0; n < good->len; n++) {
		assert_int_equal(restore_quietly(vm, good->data, n), -EINVAL);
		assert_saves_as(vm, &before);
	}
	memcpy(longer, good->data, good->len);
	longer[good->len] = 0;
	expect_refused(vm, longer, good->len + 1);
	free(longer);
	sbuf_free(&before);
}

/* good with `n` bytes at `off` replaced by v (little-endian) is refused. */
static void expect_refused_patch(struct vm *vm, const struct sbuf *good, size_t off, uint64_t v,
				 unsigned n)
{
	uint8_t *bad = malloc(good->len);

	assert_non_null(bad);
	assert_true(off + n <= good->len);
	memcpy(bad, good->data, good->len);
	memcpy(bad + off, &v, n);
	expect_refused(vm, bad, good->len);
	free(bad);
}

/* ---- serial ---- */

static void pio_wr(struct vm *vm, uint16_t port, uint8_t v)
{
	assert_true(bus_write(&vm->pio, port, &v, 1));
}

static uint8_t pio_rd(struct vm *vm, uint16_t port)
{
	uint8_t v = 0;

	assert_true(bus_read(&vm->pio, port, &v, 1));
	return v;
}

static struct vm *serial_vm(void)
{
	struct vm *vm = vm_new();
	struct serial_opts o = {.out_fd = -1, .in_fd = -1};

	assert_int_equal(serial_create(vm, &o), 0);
	return vm;
}

#define COM1 SERIAL_COM1_PORT

static void test_serial(void **state)
{
	struct vm *a = serial_vm(), *b = serial_vm();
	struct sbuf blob, again;

	pio_wr(a, COM1 + 3, 0x83); /* DLAB, 8 bits */
	pio_wr(a, COM1 + 0, 0x01);
	pio_wr(a, COM1 + 1, 0x00);
	pio_wr(a, COM1 + 3, 0x03);
	pio_wr(a, COM1 + 2, 0x01); /* FIFO on */
	pio_wr(a, COM1 + 4, 0x1b); /* loopback, OUT2, RTS, DTR */
	pio_wr(a, COM1 + 1, 0x03); /* RDI, THRI */
	pio_wr(a, COM1 + 7, 0x5a);
	for (const char *p = "xabc"; *p; p++)
		pio_wr(a, COM1, (uint8_t)*p);	/* looped back into the FIFO */
	assert_int_equal(pio_rd(a, COM1), 'x'); /* FIFO head moves off 0 */

	blob = save(a);
	assert_int_equal(restore(b, blob.data, blob.len), 0);
	assert_saves_as(b, &blob);
	again = save(b);
	assert_int_equal(pio_rd(b, COM1 + 7), 0x5a);
	assert_int_equal(pio_rd(b, COM1 + 5) & 1, 1);
	assert_int_equal(pio_rd(b, COM1), 'a');
	assert_int_equal(pio_rd(b, COM1), 'b');
	assert_int_equal(pio_rd(b, COM1), 'c');
	assert_int_equal(pio_rd(b, COM1 + 5) & 1, 0);
	/* Put b back in the saved state for the refusals below. */
	assert_int_equal(restore(b, again.data, again.len), 0);

	expect_refused_truncations(b, &blob);
	expect_refused_patch(b, &blob, 0, 2, 4);	   /* version */
	expect_refused_patch(b, &blob, 4, 0x10, 1);	   /* IER bit a 16550A lacks */
	expect_refused_patch(b, &blob, 7, 0x20, 1);	   /* MCR */
	expect_refused_patch(b, &blob, 8, 0x60 | 0x80, 1); /* LSR: unknown bit */
	expect_refused_patch(b, &blob, 8, 0x60, 1);	   /* LSR: no DR, FIFO not empty */
	expect_refused_patch(b, &blob, 13, 2, 1);	   /* thri_pending */
	expect_refused_patch(b, &blob, 14, 2, 1);	   /* irq_high */
	expect_refused_patch(b, &blob, 15, 65, 1);	   /* FIFO over 64 */
	expect_refused_patch(b, &blob, 15, 2, 1);	   /* FIFO length vs bytes */

	sbuf_free(&blob);
	sbuf_free(&again);
	vm_free(a);
	vm_free(b);
}

/* ---- i8042 ---- */

static struct vm *i8042_vm(void)
{
	struct vm *vm = vm_new();

	assert_int_equal(i8042_create(vm), 0);
	return vm;
}

static void test_i8042(void **state)
{
	struct vm *a = i8042_vm(), *b = i8042_vm();
	struct sbuf blob;

	pio_wr(a, 0x64, 0x60); /* write CTR */
	pio_wr(a, 0x60, 0x47);
	pio_wr(a, 0x64, 0xaa); /* self-test: 0x55 waits in the output buffer */
	pio_wr(a, 0x64, 0xd1); /* write output port: waits for its data byte */

	blob = save(a);
	assert_int_equal(restore(b, blob.data, blob.len), 0);
	assert_saves_as(b, &blob);
	assert_int_equal(pio_rd(b, 0x64) & 1, 1);
	assert_int_equal(pio_rd(b, 0x60), 0x55);
	assert_int_equal(restore(b, blob.data, blob.len), 0);

	expect_refused_truncations(b, &blob);
	expect_refused_patch(b, &blob, 0, 0, 4);    /* version */
	expect_refused_patch(b, &blob, 4, 0x85, 1); /* status: unknown bit */
	expect_refused_patch(b, &blob, 4, 0x01, 1); /* status: SYS clear */
	expect_refused_patch(b, &blob, 7, 0x42, 1); /* pending command */

	sbuf_free(&blob);
	vm_free(a);
	vm_free(b);
}

/* ---- a virtio driver, just enough ---- */

static uint64_t vbase(struct vm *vm)
{
	uint64_t base;
	unsigned irq;

	vm_virtio_slot(vm, 0, &base, &irq);
	return base;
}

static unsigned virq(struct vm *vm)
{
	uint64_t base;
	unsigned irq;

	vm_virtio_slot(vm, 0, &base, &irq);
	return irq;
}

static void mmio_wr(struct vm *vm, uint64_t off, uint32_t v)
{
	assert_true(bus_write(&vm->mmio, vbase(vm) + off, &v, 4));
}

static uint32_t mmio_rd(struct vm *vm, uint64_t off)
{
	uint32_t v = 0;

	assert_true(bus_read(&vm->mmio, vbase(vm) + off, &v, 4));
	return v;
}

/* §3.1.1: reset, features (VERSION_1 only), queues, DRIVER_OK unless
 * `live` is false. */
static void drv_init(struct vm *vm, unsigned nr_queues, bool live)
{
	uint32_t st = VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER;

	mmio_wr(vm, R_STATUS, 0);
	mmio_wr(vm, R_STATUS, VIRTIO_STATUS_ACKNOWLEDGE);
	mmio_wr(vm, R_STATUS, st);
	if (!live)
		return;
	mmio_wr(vm, R_DRIVER_FEAT_SEL, 1);
	mmio_wr(vm, R_DRIVER_FEATURES, 1); /* VERSION_1, bit 32 */
	mmio_wr(vm, R_DRIVER_FEAT_SEL, 0);
	mmio_wr(vm, R_DRIVER_FEATURES, 0);
	st |= VIRTIO_STATUS_FEATURES_OK;
	mmio_wr(vm, R_STATUS, st);
	assert_true(mmio_rd(vm, R_STATUS) & VIRTIO_STATUS_FEATURES_OK);
	for (unsigned q = 0; q < nr_queues; q++) {
		mmio_wr(vm, R_QUEUE_SEL, q);
		mmio_wr(vm, R_QUEUE_NUM, QSZ);
		mmio_wr(vm, R_QUEUE_DESC, DESC(q));
		mmio_wr(vm, R_QUEUE_AVAIL, AVAIL(q));
		mmio_wr(vm, R_QUEUE_USED, USED(q));
		mmio_wr(vm, R_QUEUE_READY, 1);
		assert_int_equal(mmio_rd(vm, R_QUEUE_READY), 1);
	}
	mmio_wr(vm, R_STATUS, st | VIRTIO_STATUS_DRIVER_OK);
}

static void set_desc(struct vm *vm, unsigned q, unsigned i, uint64_t addr, uint32_t len,
		     uint16_t flags, uint16_t next)
{
	uint8_t *d = gmem(vm, DESC(q) + 16 * i);

	memcpy(d, &addr, 8);
	memcpy(d + 8, &len, 4);
	memcpy(d + 12, &flags, 2);
	memcpy(d + 14, &next, 2);
}

static uint16_t ring_u16(struct vm *vm, uint64_t gpa)
{
	uint16_t v;

	memcpy(&v, gmem(vm, gpa), 2);
	return v;
}

/* Make chain `head` available on queue q (no kick). */
static void post(struct vm *vm, unsigned q, uint16_t head)
{
	uint16_t idx = ring_u16(vm, AVAIL(q) + 2);

	memcpy(gmem(vm, AVAIL(q) + 4 + 2 * (idx % QSZ)), &head, 2);
	idx++;
	memcpy(gmem(vm, AVAIL(q) + 2), &idx, 2);
}

static uint16_t used_idx(struct vm *vm, unsigned q)
{
	return ring_u16(vm, USED(q) + 2);
}

/* The n-th used element of queue q. */
static void used_elem(struct vm *vm, unsigned q, unsigned n, uint32_t *id, uint32_t *len)
{
	const uint8_t *e = gmem(vm, USED(q) + 4 + 8 * (n % QSZ));

	memcpy(id, e, 4);
	memcpy(len, e + 4, 4);
}

/* The saving VM's RAM goes to the restored one, as memory.bin does. */
static void copy_ram(struct vm *to, struct vm *from)
{
	memcpy(to->mem.base, from->mem.base, RAM);
}

/* ---- transport, through virtio-rng ---- */

static struct vm *rng_vm(void)
{
	struct vm *vm = vm_new();

	assert_int_equal(virtio_rng_create(vm), 0);
	return vm;
}

static void rng_request(struct vm *vm, uint16_t head, uint64_t gpa)
{
	set_desc(vm, 0, head, gpa, 32, VIRTQ_DESC_WRITE, 0);
	post(vm, 0, head);
	mmio_wr(vm, R_QUEUE_NOTIFY, 0);
}

static void test_transport(void **state)
{
	struct vm *a = rng_vm(), *b = rng_vm();
	size_t q0 = T_QUEUES;
	struct sbuf blob;
	uint32_t id, len;

	drv_init(a, 1, true);
	rng_request(a, 0, BUF_GPA);
	assert_int_equal(used_idx(a, 0), 1);
	/* Selectors as a driver may leave them, out of range included. */
	mmio_wr(a, R_DEVICE_FEAT_SEL, 1);
	mmio_wr(a, R_DRIVER_FEAT_SEL, 7);
	mmio_wr(a, R_QUEUE_SEL, 5);
	assert_int_equal(mmio_rd(a, R_INT_STATUS), VIRTIO_INT_USED); /* not acknowledged */
	blob = save(a);
	assert_int_equal(blob.len, T_DEV_LEN(1) + 4);

	copy_ram(b, a);
	memset(edges, 0, sizeof(edges));
	assert_int_equal(restore(b, blob.data, blob.len), 0);
	assert_saves_as(b, &blob);
	/* The unacknowledged interrupt is raised again. */
	assert_int_equal(edges[virq(b)], 1);
	/* Live: the next request is served where the saving VM stopped. */
	mmio_wr(b, R_QUEUE_SEL, 0);
	assert_int_equal(mmio_rd(b, R_QUEUE_READY), 1);
	rng_request(b, 1, BUF_GPA + 64);
	assert_int_equal(used_idx(b, 0), 2);
	used_elem(b, 0, 1, &id, &len);
	assert_int_equal(id, 1);
	assert_int_equal(len, 32);
	assert_int_equal(restore(b, blob.data, blob.len), 0);

	expect_refused_truncations(b, &blob);
	expect_refused_patch(b, &blob, T_VERSION, 2, 4);
	expect_refused_patch(b, &blob, T_DEVICE_ID, VIRTIO_ID_BLOCK, 4);
	expect_refused_patch(b, &blob, T_NR_QUEUES, 2, 4);
	expect_refused_patch(b, &blob, T_STATUS, 0x10f, 4); /* a bit §2.1 lacks */
	expect_refused_patch(b, &blob, T_STATUS, 0x2f, 4);
	/* FEATURES_OK with a feature rng does not offer, or without VERSION_1 */
	expect_refused_patch(b, &blob, T_FEATURES, (1ULL << 32) | (1ULL << 5), 8);
	expect_refused_patch(b, &blob, T_FEATURES, 0, 8);
	expect_refused_patch(b, &blob, T_INT_STATUS, 4, 4);
	/* A ready queue: size a power of two, at most max, not 0 */
	expect_refused_patch(b, &blob, q0 + Q_SIZE, 24, 2);
	expect_refused_patch(b, &blob, q0 + Q_SIZE, 128, 2);
	expect_refused_patch(b, &blob, q0 + Q_SIZE, 0, 2);
	expect_refused_patch(b, &blob, q0 + Q_MAX, 128, 2);
	expect_refused_patch(b, &blob, q0 + Q_READY, 2, 1);
	expect_refused_patch(b, &blob, q0 + Q_BROKEN, 2, 1);
	/* Rings misaligned, outside RAM, in the hole, wrapping */
	expect_refused_patch(b, &blob, q0 + Q_DESC, DESC(0) + 8, 8);
	expect_refused_patch(b, &blob, q0 + Q_AVAIL, AVAIL(0) + 1, 8);
	expect_refused_patch(b, &blob, q0 + Q_USED, USED(0) + 2, 8);
	expect_refused_patch(b, &blob, q0 + Q_USED, RAM - 8, 8);
	expect_refused_patch(b, &blob, q0 + Q_DESC, 0xC0000000ULL, 8);
	expect_refused_patch(b, &blob, q0 + Q_AVAIL, ~0ULL - 15, 8);
	/* More chains outstanding than the ring holds */
	expect_refused_patch(b, &blob, q0 + Q_LAST_AVAIL, 1 + QSZ + 1, 2);
	/* Device bytes for a device that keeps none, or a wrong length */
	{
		uint8_t *more = malloc(blob.len + 1);

		assert_non_null(more);
		memcpy(more, blob.data, blob.len);
		more[T_DEV_LEN(1)] = 1;
		more[blob.len] = 0;
		expect_refused(b, more, blob.len + 1);
		free(more);
	}
	expect_refused_patch(b, &blob, T_DEV_LEN(1), 1, 4);

	/* A queue that is not ready may hold anything the driver wrote: it
	 * is checked when the driver makes it ready. */
	{
		uint8_t *odd = malloc(blob.len);

		assert_non_null(odd);
		memcpy(odd, blob.data, blob.len);
		odd[q0 + Q_READY] = 0;
		memcpy(odd + q0 + Q_SIZE, &(uint16_t){24}, 2);
		memcpy(odd + q0 + Q_DESC, &(uint64_t){~0ULL}, 8);
		assert_int_equal(restore(b, odd, blob.len), 0);
		free(odd);
	}
	sbuf_free(&blob);
	vm_free(a);
	vm_free(b);
}

/* Status bits outside §2.1 never stick, so a snapshot never holds them. */
static void test_transport_status_mask(void **state)
{
	struct vm *a = rng_vm();

	mmio_wr(a, R_STATUS, 0xff00 | VIRTIO_STATUS_ACKNOWLEDGE);
	assert_int_equal(mmio_rd(a, R_STATUS), VIRTIO_STATUS_ACKNOWLEDGE);
	vm_free(a);
}

/* ---- virtio-blk ---- */

#define BLK_NSEC 128

struct blk_env {
	char dir[64], image[96];
};

static void blk_env_init(struct blk_env *e, uint64_t bytes)
{
	uint8_t sec[512];
	int fd;

	strcpy(e->dir, "/tmp/test_device_state.XXXXXX");
	assert_non_null(mkdtemp(e->dir));
	snprintf(e->image, sizeof(e->image), "%s/disk.img", e->dir);
	fd = open(e->image, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	for (uint64_t off = 0; off < bytes; off += sizeof(sec)) {
		size_t n = (size_t)MIN((uint64_t)sizeof(sec), bytes - off);

		memset(sec, (int)(off / 512) + 1, sizeof(sec));
		assert_int_equal(write(fd, sec, n), (ssize_t)n);
	}
	close(fd);
}

static void blk_env_free(struct blk_env *e)
{
	unlink(e->image);
	rmdir(e->dir);
}

static struct vm *blk_vm(const struct blk_env *e)
{
	struct vm *vm = vm_new();
	struct virtio_blk_opts o = {.path = e->image, .overlay_dir = e->dir};

	assert_int_equal(virtio_blk_create(vm, &o), 0);
	return vm;
}

/* One request: header, `n` sectors of data at BUF_GPA, status byte. */
static uint8_t blk_request(struct vm *vm, uint32_t type, uint64_t sector, unsigned n)
{
	const uint64_t hdr = BUF_GPA - 64, st = BUF_GPA - 16;
	uint16_t data_flags = type == 0 ? VIRTQ_DESC_WRITE : 0;

	memcpy(gmem(vm, hdr), &type, 4);
	memset(gmem(vm, hdr + 4), 0, 4);
	memcpy(gmem(vm, hdr + 8), &sector, 8);
	*gmem(vm, st) = 0xee;
	set_desc(vm, 0, 0, hdr, 16, VIRTQ_DESC_NEXT, 1);
	set_desc(vm, 0, 1, BUF_GPA, n * 512, data_flags | VIRTQ_DESC_NEXT, 2);
	set_desc(vm, 0, 2, st, 1, VIRTQ_DESC_WRITE, 0);
	post(vm, 0, 0);
	mmio_wr(vm, R_QUEUE_NOTIFY, 0);
	return *gmem(vm, st);
}

static void blk_write(struct vm *vm, uint64_t sector, unsigned n, uint8_t fill)
{
	memset(gmem(vm, BUF_GPA), fill, n * 512);
	assert_int_equal(blk_request(vm, 1, sector, n), 0);
}

/* Sector s reads as all `fill`. */
static void blk_expect(struct vm *vm, uint64_t sector, uint8_t fill)
{
	uint8_t want[512];

	memset(want, fill, sizeof(want));
	assert_int_equal(blk_request(vm, 0, sector, 1), 0);
	assert_memory_equal(gmem(vm, BUF_GPA), want, sizeof(want));
}

/* blob with its device part replaced by dev[0..len). */
static struct sbuf blk_with_dev(const struct sbuf *blob, const void *dev, uint32_t len)
{
	struct sbuf b = {0};

	sbuf_put(&b, blob->data, T_DEV_LEN(1));
	sbuf_u32(&b, len);
	sbuf_put(&b, dev, len);
	assert_false(b.oom);
	return b;
}

static void expect_blk_dev_refused(struct vm *vm, const struct sbuf *blob, const void *dev,
				   uint32_t len)
{
	struct sbuf b = blk_with_dev(blob, dev, len);

	expect_refused(vm, b.data, b.len);
	sbuf_free(&b);
}

/* Device part (FORMAT.md): version, image bytes, sectors on the disk,
 * sectors saved, runs, (first, count) per run, the sectors' bytes. */
#define B_SECTORS 20
#define B_NR_RUNS 28
#define B_RUNS	  32

static void test_blk(void **state)
{
	struct blk_env e, other;
	struct vm *a, *b, *c;
	struct sbuf blob;
	const uint8_t *dev;
	uint8_t *bad;
	uint32_t dev_len;

	blk_env_init(&e, BLK_NSEC * 512);
	a = blk_vm(&e);
	b = blk_vm(&e);
	drv_init(a, 1, true);
	blk_write(a, 3, 1, 0xaa);
	blk_write(a, 10, 3, 0xbb);
	blk_write(a, 13, 1, 0xcc); /* joins the run before it */
	blk_write(a, BLK_NSEC - 1, 1, 0xdd);

	blob = save(a);
	dev = blob.data + T_DEV_LEN(1) + 4;
	memcpy(&dev_len, blob.data + T_DEV_LEN(1), 4);
	assert_int_equal(dev_len, B_RUNS + 3 * 16 + 6 * 512);
	assert_int_equal(dev[B_NR_RUNS], 3);
	assert_int_equal(dev[B_SECTORS], 6);

	copy_ram(b, a);
	assert_int_equal(restore(b, blob.data, blob.len), 0);
	assert_saves_as(b, &blob);
	blk_expect(b, 3, 0xaa);
	blk_expect(b, 10, 0xbb);
	blk_expect(b, 12, 0xbb);
	blk_expect(b, 13, 0xcc);
	blk_expect(b, BLK_NSEC - 1, 0xdd);
	blk_expect(b, 4, 4 + 1); /* never written: the image */
	/* b's overlay is its own: a second restore on top is refused. */
	expect_refused_err(b, blob.data, blob.len, -EBUSY);

	/* Malformed device parts, into a device with an empty overlay (and
	 * RAM of its own, so its queue starts afresh). */
	c = blk_vm(&e);
	drv_init(c, 1, true);
	expect_refused_truncations(c, &blob);
	bad = malloc(dev_len + 512);
	assert_non_null(bad);
#define PATCH(off, v, n)                                                                           \
	do {                                                                                       \
		uint64_t v_ = (v);                                                                 \
		memcpy(bad, dev, dev_len);                                                         \
		memcpy(bad + (off), &v_, (n));                                                     \
		expect_blk_dev_refused(c, &blob, bad, dev_len);                                    \
	} while (0)
	PATCH(0, 2, 4);			 /* version */
	PATCH(4, BLK_NSEC * 512 + 1, 8); /* another image's size */
	PATCH(12, BLK_NSEC + 1, 8);	 /* capacity */
	PATCH(B_SECTORS, 7, 8);		 /* runs add up to 6 */
	PATCH(B_NR_RUNS, 2, 4);		 /* run list vs data length */
	PATCH(B_RUNS + 16, 3, 8);	 /* second run overlaps the first */
	PATCH(B_RUNS + 16, 4, 8);	 /* ... or touches it */
	PATCH(B_RUNS + 24, 0, 8);	 /* empty run */
	PATCH(B_RUNS + 32, BLK_NSEC, 8); /* past the end */
	PATCH(B_RUNS + 40, 2, 8);	 /* last run runs off the disk */
	PATCH(B_RUNS + 40, ~0ULL, 8);	 /* ... wrapping */
	/* Data short or long by a sector */
	memcpy(bad, dev, dev_len);
	expect_blk_dev_refused(c, &blob, bad, dev_len - 512);
	memset(bad + dev_len, 0, 512);
	expect_blk_dev_refused(c, &blob, bad, dev_len + 512);
#undef PATCH
	free(bad);
	blk_expect(c, 3, 3 + 1); /* nothing of it reached c's disk */
	vm_free(c);

	/* An image of another size is not the snapshot's image. */
	blk_env_init(&other, (BLK_NSEC + 8) * 512);
	c = blk_vm(&other);
	copy_ram(c, a);
	expect_refused(c, blob.data, blob.len);
	vm_free(c);
	blk_env_free(&other);

	sbuf_free(&blob);
	vm_free(a);
	vm_free(b);
	blk_env_free(&e);
}

/* The overlay part is bounded: beyond the limit nothing is appended. */
static void test_blk_overlay_limit(void **state)
{
	struct blk_env e;
	struct blk_overlay o;
	struct sbuf b = {0};
	uint8_t sec[512] = {1};

	blk_env_init(&e, BLK_NSEC * 512);
	assert_int_equal(blk_overlay_open(&o, e.image, e.dir), 0);
	assert_int_equal(blk_overlay_write(&o, 0, sec, 512), 0);
	assert_int_equal(blk_overlay_write(&o, 5 * 512, sec, 512), 0);
	assert_int_equal(blk_overlay_save(&o, &b, 28 + 2 * 16 + 2 * 512 - 1), -EFBIG);
	assert_int_equal(b.len, 0);
	assert_int_equal(blk_overlay_save(&o, &b, 28 + 2 * 16 + 2 * 512), 0);
	assert_int_equal(b.len, 28 + 2 * 16 + 2 * 512);
	sbuf_free(&b);
	blk_overlay_close(&o);
	blk_env_free(&e);
}

/* ---- virtio-net ---- */

static struct vm *net_vm(uint8_t last)
{
	struct vm *vm = vm_new();
	struct virtio_net_opts o = {.tap = "forkd-test0", .mac = {0x52, 0x54, 0, 0, 0, last}};

	assert_int_equal(virtio_net_create(vm, &o), 0);
	return vm;
}

static void test_net(void **state)
{
	int tun = open("/dev/net/tun", O_RDWR | O_CLOEXEC);
	struct vm *a, *b;
	struct sbuf blob, stalled;
	size_t dev;

	if (tun < 0)
		skip(); /* virtio-net needs a tun fd, even an unattached one */
	close(tun);
	a = net_vm(1);
	b = net_vm(2);
	drv_init(a, 2, true);
	blob = save(a);
	dev = T_DEV_LEN(2) + 4;
	assert_int_equal(blob.len, dev + 4 + 8 + 1);
	assert_int_equal(blob.data[dev + 12], 0); /* receive armed */

	copy_ram(b, a);
	assert_int_equal(restore(b, blob.data, blob.len), 0);
	assert_saves_as(b, &blob);
	/* The guest keeps the MAC it read before the snapshot. */
	assert_int_equal(mmio_rd(b, R_CONFIG + 4) & 0xffff, 0x0100);

	/* Receive waiting for buffers stays so until the driver kicks. */
	stalled = save(a);
	stalled.data[dev + 12] = 1;
	assert_int_equal(restore(b, stalled.data, stalled.len), 0);
	assert_saves_as(b, &stalled);

	expect_refused_truncations(b, &blob);
	expect_refused_patch(b, &blob, dev, 2, 4);	  /* version */
	expect_refused_patch(b, &blob, dev + 4, 0x53, 1); /* multicast MAC */
	expect_refused_patch(b, &blob, dev + 10, 0x3, 1); /* unknown link status */
	expect_refused_patch(b, &blob, dev + 11, 0x1, 1);
	expect_refused_patch(b, &blob, dev + 12, 2, 1); /* stalled */

	sbuf_free(&blob);
	sbuf_free(&stalled);
	vm_free(a);
	vm_free(b);
}

/* ---- virtio-vsock ---- */

#define VQ_RX  0
#define VQ_EVT 2

struct vsock_env {
	char dir[64], path[96];
	unsigned n;
};

static struct vm *vsock_vm(struct vsock_env *e)
{
	struct vm *vm = vm_new();

	snprintf(e->path, sizeof(e->path), "%s/v%u.sock", e->dir, e->n++);
	assert_int_equal(virtio_vsock_create(vm, &(struct virtio_vsock_opts){3, e->path}), 0);
	return vm;
}

/* Offer an event buffer (4 bytes at gpa) as descriptor i. */
static void post_evt(struct vm *vm, unsigned i, uint64_t gpa)
{
	memset(gmem(vm, gpa), 0xff, 4);
	set_desc(vm, VQ_EVT, i, gpa, 4, VIRTQ_DESC_WRITE, 0);
	post(vm, VQ_EVT, (uint16_t)i);
}

static void test_vsock(void **state)
{
	struct vsock_env e = {.dir = "/tmp/test_device_state.XXXXXX"};
	struct vm *a, *b, *c, *idle_a, *idle_b;
	struct sbuf blob, held, pending, idle;
	size_t dev, rxq = T_QUEUES + VQ_RX * Q_BYTES;
	uint32_t id, len;

	assert_non_null(mkdtemp(e.dir));
	a = vsock_vm(&e);
	b = vsock_vm(&e);
	c = vsock_vm(&e);
	dev = T_DEV_LEN(3) + 4;

	/* Not live: nothing to do on restore, the bytes come back as saved. */
	idle_a = vsock_vm(&e);
	idle_b = vsock_vm(&e);
	drv_init(idle_a, 3, false);
	idle = save(idle_a);
	assert_int_equal(restore(idle_b, idle.data, idle.len), 0);
	assert_saves_as(idle_b, &idle);

	/* Live, with two event buffers offered: b tells the driver its
	 * connections are gone, in the first one. */
	drv_init(a, 3, true);
	post_evt(a, 0, BUF_GPA);
	post_evt(a, 1, BUF_GPA + 16);
	mmio_wr(a, R_QUEUE_NOTIFY, VQ_EVT);
	assert_int_equal(used_idx(a, VQ_EVT), 0); /* nothing to say yet */
	blob = save(a);
	assert_int_equal(blob.len, dev + 10);

	copy_ram(b, a);
	memset(edges, 0, sizeof(edges));
	assert_int_equal(restore(b, blob.data, blob.len), 0);
	assert_int_equal(used_idx(b, VQ_EVT), 1);
	used_elem(b, VQ_EVT, 0, &id, &len);
	assert_int_equal(id, 0);
	assert_int_equal(len, 4);
	assert_int_equal(ring_u16(b, BUF_GPA), 0); /* VIRTIO_VSOCK_EVENT_TRANSPORT_RESET */
	assert_int_equal(ring_u16(b, BUF_GPA + 2), 0);
	assert_int_equal(edges[virq(b)], 1);
	assert_true(mmio_rd(b, R_INT_STATUS) & VIRTIO_INT_USED);

	/* No event buffer yet: the event waits for the driver's kick. */
	{
		struct vm *d = vsock_vm(&e);

		copy_ram(d, a);
		memset(gmem(d, AVAIL(VQ_EVT) + 2), 0, 2); /* none offered */
		assert_int_equal(restore(d, blob.data, blob.len), 0);
		pending = save(d);
		assert_int_equal(pending.data[dev + 4], 2);
		post_evt(d, 1, BUF_GPA + 16);
		mmio_wr(d, R_QUEUE_NOTIFY, VQ_EVT);
		assert_int_equal(used_idx(d, VQ_EVT), 1);
		used_elem(d, VQ_EVT, 0, &id, &len);
		assert_int_equal(id, 1);
		assert_int_equal(len, 4);
		sbuf_free(&pending);
		pending = save(d);
		assert_int_equal(pending.data[dev + 4], 0);
		sbuf_free(&pending);
		vm_free(d);
	}

	/* A receive buffer the saving device held goes back to the driver
	 * empty: descriptor 5 popped (last_avail 1), not used (used_idx 0). */
	held = save(a);
	memcpy(held.data + rxq + Q_LAST_AVAIL, &(uint16_t){1}, 2);
	held.data[dev + 4] = 1;
	held.data[dev + 8] = 5;
	copy_ram(c, a);
	assert_int_equal(restore(c, held.data, held.len), 0);
	assert_int_equal(used_idx(c, VQ_RX), 1);
	used_elem(c, VQ_RX, 0, &id, &len);
	assert_int_equal(id, 5);
	assert_int_equal(len, 0);

	/* Refusals, transport rollback included: c keeps its state. */
	expect_refused_truncations(c, &blob);
	expect_refused_patch(c, &blob, dev, 2, 4);		  /* version */
	expect_refused_patch(c, &blob, dev + 4, 4, 4);		  /* unknown flag */
	expect_refused_patch(c, &blob, dev + 8, 3, 2);		  /* head without a held chain */
	expect_refused_patch(c, &held, dev + 8, QSZ, 2);	  /* head past the ring */
	expect_refused_patch(c, &held, rxq + Q_LAST_AVAIL, 0, 2); /* held but none outstanding */
	expect_refused_patch(c, &held, rxq + Q_READY, 0, 1);	  /* held on a queue not ready */

	sbuf_free(&blob);
	sbuf_free(&held);
	sbuf_free(&idle);
	vm_free(a);
	vm_free(b);
	vm_free(c);
	vm_free(idle_a);
	vm_free(idle_b);
	rmdir(e.dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_serial),    cmocka_unit_test(test_i8042),
	    cmocka_unit_test(test_transport), cmocka_unit_test(test_transport_status_mask),
	    cmocka_unit_test(test_blk),	      cmocka_unit_test(test_blk_overlay_limit),
	    cmocka_unit_test(test_net),	      cmocka_unit_test(test_vsock),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
