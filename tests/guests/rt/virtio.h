/* Guest-side virtio-mmio driver for forkd's test guests (virtio 1.2 §4.2,
 * split virtqueues §2.7).
 *
 * forkd puts virtio-mmio slot i at 0xD0000000 + i * 0x1000 with IRQ
 * virtio_slot_irq[i], in device creation order (src/vmm/vm.c). Test guests
 * run identity-mapped, so a pointer is its guest-physical address.
 *
 * Typical use:
 *
 *   static struct vdev dev;
 *   static struct vq q;                       // rings live inside, 4 KiB aligned
 *   if (virtio_find(VIRTIO_ID_BLOCK, 0, &dev) < 0) ...
 *   if (virtio_init(&dev, wanted_features) < 0) ...   // VERSION_1 always asked
 *   if (virtio_queue_setup(&dev, 0, &q, 64) < 0) ...
 *   virtio_driver_ok(&dev);
 *   struct vq_buf b[] = {{&hdr, sizeof(hdr), false}, {data, 512, true}};
 *   int head = vq_add(&q, b, 2);
 *   vq_kick(&dev, &q);
 *   uint32_t len;
 *   vq_wait(&dev, &q, &len);                   // head id, or -1 on timeout
 *
 * Interrupts are optional: after virtio_irq_enable(&dev), vq_wait() sleeps
 * in hlt until the device's IRQ fires instead of spinning, and dev.irqs
 * counts the interrupts taken (idt_init() must have been called).
 *
 * The ring memory is reachable directly (q.desc, q.avail, q.used) so that
 * hostile tests can write malformed chains themselves; vq_publish() then
 * posts any head index. Nothing here is thread-safe: one CPU, and the IRQ
 * handler only reads registers and counts. */
#ifndef FORKD_TEST_GUEST_VIRTIO_H
#define FORKD_TEST_GUEST_VIRTIO_H

#include <stdbool.h>
#include <stdint.h>

/* Transport registers, virtio 1.2 §4.2.2 */
#define VIRTIO_MMIO_MAGIC	     0x000
#define VIRTIO_MMIO_VERSION	     0x004
#define VIRTIO_MMIO_DEVICE_ID	     0x008
#define VIRTIO_MMIO_VENDOR_ID	     0x00c
#define VIRTIO_MMIO_DEVICE_FEATURES  0x010
#define VIRTIO_MMIO_DEVICE_FEAT_SEL  0x014
#define VIRTIO_MMIO_DRIVER_FEATURES  0x020
#define VIRTIO_MMIO_DRIVER_FEAT_SEL  0x024
#define VIRTIO_MMIO_QUEUE_SEL	     0x030
#define VIRTIO_MMIO_QUEUE_NUM_MAX    0x034
#define VIRTIO_MMIO_QUEUE_NUM	     0x038
#define VIRTIO_MMIO_QUEUE_READY	     0x044
#define VIRTIO_MMIO_QUEUE_NOTIFY     0x050
#define VIRTIO_MMIO_INTERRUPT_STATUS 0x060
#define VIRTIO_MMIO_INTERRUPT_ACK    0x064
#define VIRTIO_MMIO_STATUS	     0x070
#define VIRTIO_MMIO_QUEUE_DESC_LOW   0x080
#define VIRTIO_MMIO_QUEUE_DESC_HIGH  0x084
#define VIRTIO_MMIO_QUEUE_AVAIL_LOW  0x090
#define VIRTIO_MMIO_QUEUE_AVAIL_HIGH 0x094
#define VIRTIO_MMIO_QUEUE_USED_LOW   0x0a0
#define VIRTIO_MMIO_QUEUE_USED_HIGH  0x0a4
#define VIRTIO_MMIO_CONFIG_GEN	     0x0fc
#define VIRTIO_MMIO_CONFIG	     0x100

#define VIRTIO_MMIO_MAGIC_VALUE 0x74726976 /* "virt" */

/* Device status bits, §2.1 */
#define VIRTIO_STATUS_ACKNOWLEDGE 1
#define VIRTIO_STATUS_DRIVER	  2
#define VIRTIO_STATUS_DRIVER_OK	  4
#define VIRTIO_STATUS_FEATURES_OK 8
#define VIRTIO_STATUS_NEEDS_RESET 64
#define VIRTIO_STATUS_FAILED	  128

/* InterruptStatus bits, §4.2.2 */
#define VIRTIO_INT_USED	  1
#define VIRTIO_INT_CONFIG 2

#define VIRTIO_F_VERSION_1 32

#define VIRTIO_ID_NET	1
#define VIRTIO_ID_BLOCK 2
#define VIRTIO_ID_RNG	4
#define VIRTIO_ID_VSOCK 19

/* The virtio-vsock packet header (§5.10.6), in front of every packet. */
struct virtio_vsock_hdr {
	uint64_t src_cid, dst_cid;
	uint32_t src_port, dst_port, len;
	uint16_t type, op;
	uint32_t flags, buf_alloc, fwd_cnt;
} __attribute__((packed));

#define VIRTIO_SLOT_BASE(i) (0xD0000000ULL + (uint64_t)(i)*0x1000ULL)
#define VIRTIO_MAX_SLOTS    8
extern const uint8_t virtio_slot_irq[VIRTIO_MAX_SLOTS];

/* Split ring layout, §2.7.5-§2.7.8 */
#define VQ_DESC_F_NEXT		1
#define VQ_DESC_F_WRITE		2
#define VQ_DESC_F_INDIRECT	4
#define VQ_AVAIL_F_NO_INTERRUPT 1

#define VQ_MAX 256 /* largest queue a struct vq can hold */

struct vq_desc {
	uint64_t addr;
	uint32_t len;
	uint16_t flags;
	uint16_t next;
};

struct vq_used_elem {
	uint32_t id;
	uint32_t len;
};

struct vq {
	/* Rings first: desc needs 16-byte, avail 2, used 4 alignment. */
	struct vq_desc desc[VQ_MAX] __attribute__((aligned(4096)));
	struct {
		uint16_t flags;
		uint16_t idx;
		uint16_t ring[VQ_MAX];
		uint16_t used_event;
	} avail __attribute__((aligned(16)));
	struct {
		uint16_t flags;
		uint16_t idx;
		struct vq_used_elem ring[VQ_MAX];
		uint16_t avail_event;
	} used __attribute__((aligned(16)));

	unsigned index;	    /* queue number on its device */
	uint16_t size;	    /* entries in use (power of 2, <= VQ_MAX) */
	uint16_t free_head; /* first free descriptor (free list via .next) */
	uint16_t nr_free;
	uint16_t last_used;	    /* next used ring slot to look at */
	uint16_t chain_len[VQ_MAX]; /* descriptors of the chain headed here */
};

struct vdev {
	uint64_t base; /* MMIO base of the slot */
	unsigned slot, irq;
	uint32_t device_id;
	uint64_t features; /* negotiated (valid after virtio_init) */
	bool irq_enabled;
	volatile uint32_t irqs;	      /* interrupts taken */
	volatile uint32_t int_status; /* InterruptStatus bits seen by the handler, OR'ed */
};

/* Register access on the slot. */
uint32_t virtio_read32(const struct vdev *d, uint32_t off);
void virtio_write32(const struct vdev *d, uint32_t off, uint32_t v);
/* Device config space (§4.2.2 offset 0x100+), byte-wise reads retried
 * until ConfigGeneration is stable (§2.5.1). */
void virtio_config_read(const struct vdev *d, uint32_t off, void *buf, uint32_t len);
uint32_t virtio_status(const struct vdev *d);

/* Look at slot `slot`: 0 and *d filled when a version-2 device is there
 * (d->device_id != 0), -1 otherwise. */
int virtio_probe(unsigned slot, struct vdev *d);
/* The nth (0-based) device with this ID: its slot, or -1. */
int virtio_find(uint32_t device_id, unsigned nth, struct vdev *d);

/* Reset, ACKNOWLEDGE, DRIVER, negotiate (wanted & offered) | VERSION_1,
 * FEATURES_OK and check it stuck. 0, or -1 (device refused; the status is
 * left as it was for the caller to inspect). */
int virtio_init(struct vdev *d, uint64_t wanted);
/* Write 0 to Status and wait until it reads back 0. */
void virtio_reset(struct vdev *d);
/* Set DRIVER_OK: queues go live. */
void virtio_driver_ok(struct vdev *d);

/* Configure queue `index` with the rings inside *q and `size` entries
 * (clamped to QueueNumMax and VQ_MAX, must end up a power of 2) and set
 * QueueReady. 0, or -1 when the device has no such queue or refused it. */
int virtio_queue_setup(struct vdev *d, unsigned index, struct vq *q, uint16_t size);
/* Hostile variant: arbitrary ring addresses. Returns what QueueReady reads
 * back after writing 1 (1 accepted, 0 refused). */
uint32_t virtio_queue_setup_raw(struct vdev *d, unsigned index, uint16_t size, uint64_t desc,
				uint64_t avail, uint64_t used);

/* Route the device's IRQ through the legacy PIC to vector 0x20 + irq and
 * enable interrupts. Needs idt_init(). */
void virtio_irq_enable(struct vdev *d);

struct vq_buf {
	void *addr;
	uint32_t len;
	bool writable; /* device writes it; all writable buffers go last */
};

/* Put a chain of n buffers on the free descriptors and publish it in the
 * avail ring. Returns the head index, or -1 when there are not enough free
 * descriptors. Does not notify the device. */
int vq_add(struct vq *q, const struct vq_buf *bufs, unsigned n);
/* Publish head `head` as-is in the avail ring (for hand-made chains). */
void vq_publish(struct vq *q, uint16_t head);
void vq_kick(struct vdev *d, struct vq *q);
/* Next used element: its id (the head), *len = bytes written; -1 if none.
 * Descriptors of a chain added by vq_add() go back to the free list. */
int vq_poll(struct vq *q, uint32_t *len);
/* vq_poll() until something arrives. Returns the head id, -2 when the
 * device set DEVICE_NEEDS_RESET instead, -1 after about `tsc` TSC cycles
 * without either. With interrupts enabled it sleeps in hlt between checks
 * and relies on the device's interrupt (used buffer or configuration
 * change) to wake it; the VMM's --timeout-secs catches a device that never
 * interrupts. Requests to forkd's blk and rng devices complete during the
 * kick itself, so the wait only matters for asynchronous devices. */
#define VQ_WAIT_TSC 20000000000ULL /* some seconds; CPL0 spinning is slow on KVM-PVM */
int vq_wait_tsc(struct vdev *d, struct vq *q, uint32_t *len, uint64_t tsc);
static inline int vq_wait(struct vdev *d, struct vq *q, uint32_t *len)
{
	return vq_wait_tsc(d, q, len, VQ_WAIT_TSC);
}

/* Add, kick and wait for one chain: bytes written, or negative as
 * vq_wait() (-1 also when the device returned some other chain or the
 * chain did not fit). */
int64_t vq_transfer(struct vdev *d, struct vq *q, const struct vq_buf *bufs, unsigned n);

#endif
