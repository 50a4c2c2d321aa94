/* Guest-side virtio-mmio driver for test guests; see rt/virtio.h. */
#include "rt/virtio.h"

#include "rt/guest.h"

/* Must match src/vmm/vm.c, which hands slots out in this order. */
const uint8_t virtio_slot_irq[VIRTIO_MAX_SLOTS] = {5, 6, 7, 9, 10, 11, 14, 15};

#define PIC1_CMD   0x20
#define PIC1_DATA  0x21
#define PIC2_CMD   0xa0
#define PIC2_DATA  0xa1
#define PIC_EOI	   0x20
#define IRQ_VECTOR 0x20 /* PIC IRQ n arrives as vector 0x20 + n */

#define LAPIC_BASE 0xfee00000ULL
#define LAPIC_SVR  0x0f0
#define LAPIC_LVT0 0x350

/* Which device owns each legacy IRQ line, for the interrupt handler. */
static struct vdev *irq_owner[16];
static bool pic_ready;

static inline void barrier(void)
{
	__asm__ volatile("" ::: "memory");
}

/* Full fence: orders the avail index store before later loads of the used
 * ring (x86 only reorders stores after loads). */
static inline void mb(void)
{
	__asm__ volatile("lock; addl $0, (%%rsp)" ::: "memory", "cc");
}

static inline uint64_t rdtsc(void)
{
	uint32_t lo, hi;

	__asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
	return ((uint64_t)hi << 32) | lo;
}

uint32_t virtio_read32(const struct vdev *d, uint32_t off)
{
	return mmio_read32(d->base + off);
}

void virtio_write32(const struct vdev *d, uint32_t off, uint32_t v)
{
	mmio_write32(d->base + off, v);
}

uint32_t virtio_status(const struct vdev *d)
{
	return virtio_read32(d, VIRTIO_MMIO_STATUS);
}

void virtio_config_read(const struct vdev *d, uint32_t off, void *buf, uint32_t len)
{
	uint8_t *out = buf;
	uint32_t gen, i;

	do {
		gen = virtio_read32(d, VIRTIO_MMIO_CONFIG_GEN);
		for (i = 0; i < len; i++)
			out[i] = *(volatile uint8_t *)(d->base + VIRTIO_MMIO_CONFIG + off + i);
	} while (gen != virtio_read32(d, VIRTIO_MMIO_CONFIG_GEN));
}

int virtio_probe(unsigned slot, struct vdev *d)
{
	uint64_t base = VIRTIO_SLOT_BASE(slot);

	if (slot >= VIRTIO_MAX_SLOTS)
		return -1;
	memset(d, 0, sizeof(*d));
	d->base = base;
	d->slot = slot;
	d->irq = virtio_slot_irq[slot];
	if (virtio_read32(d, VIRTIO_MMIO_MAGIC) != VIRTIO_MMIO_MAGIC_VALUE ||
	    virtio_read32(d, VIRTIO_MMIO_VERSION) != 2)
		return -1;
	d->device_id = virtio_read32(d, VIRTIO_MMIO_DEVICE_ID);
	return d->device_id ? 0 : -1;
}

int virtio_find(uint32_t device_id, unsigned nth, struct vdev *d)
{
	unsigned slot;

	for (slot = 0; slot < VIRTIO_MAX_SLOTS; slot++) {
		if (virtio_probe(slot, d) == 0 && d->device_id == device_id && nth-- == 0)
			return (int)slot;
	}
	return -1;
}

void virtio_reset(struct vdev *d)
{
	virtio_write32(d, VIRTIO_MMIO_STATUS, 0);
	/* §4.2.3.1: the reset is complete when Status reads 0. */
	while (virtio_status(d) != 0)
		;
}

int virtio_init(struct vdev *d, uint64_t wanted)
{
	uint64_t offered;
	uint32_t st;

	virtio_reset(d);
	st = VIRTIO_STATUS_ACKNOWLEDGE;
	virtio_write32(d, VIRTIO_MMIO_STATUS, st);
	st |= VIRTIO_STATUS_DRIVER;
	virtio_write32(d, VIRTIO_MMIO_STATUS, st);

	virtio_write32(d, VIRTIO_MMIO_DEVICE_FEAT_SEL, 0);
	offered = virtio_read32(d, VIRTIO_MMIO_DEVICE_FEATURES);
	virtio_write32(d, VIRTIO_MMIO_DEVICE_FEAT_SEL, 1);
	offered |= (uint64_t)virtio_read32(d, VIRTIO_MMIO_DEVICE_FEATURES) << 32;
	if (!(offered & (1ULL << VIRTIO_F_VERSION_1)))
		return -1;
	d->features = offered & (wanted | (1ULL << VIRTIO_F_VERSION_1));

	virtio_write32(d, VIRTIO_MMIO_DRIVER_FEAT_SEL, 0);
	virtio_write32(d, VIRTIO_MMIO_DRIVER_FEATURES, (uint32_t)d->features);
	virtio_write32(d, VIRTIO_MMIO_DRIVER_FEAT_SEL, 1);
	virtio_write32(d, VIRTIO_MMIO_DRIVER_FEATURES, (uint32_t)(d->features >> 32));
	st |= VIRTIO_STATUS_FEATURES_OK;
	virtio_write32(d, VIRTIO_MMIO_STATUS, st);
	if (!(virtio_status(d) & VIRTIO_STATUS_FEATURES_OK))
		return -1;
	return 0;
}

void virtio_driver_ok(struct vdev *d)
{
	virtio_write32(d, VIRTIO_MMIO_STATUS, virtio_status(d) | VIRTIO_STATUS_DRIVER_OK);
}

uint32_t virtio_queue_setup_raw(struct vdev *d, unsigned index, uint16_t size, uint64_t desc,
				uint64_t avail, uint64_t used)
{
	virtio_write32(d, VIRTIO_MMIO_QUEUE_SEL, index);
	virtio_write32(d, VIRTIO_MMIO_QUEUE_NUM, size);
	virtio_write32(d, VIRTIO_MMIO_QUEUE_DESC_LOW, (uint32_t)desc);
	virtio_write32(d, VIRTIO_MMIO_QUEUE_DESC_HIGH, (uint32_t)(desc >> 32));
	virtio_write32(d, VIRTIO_MMIO_QUEUE_AVAIL_LOW, (uint32_t)avail);
	virtio_write32(d, VIRTIO_MMIO_QUEUE_AVAIL_HIGH, (uint32_t)(avail >> 32));
	virtio_write32(d, VIRTIO_MMIO_QUEUE_USED_LOW, (uint32_t)used);
	virtio_write32(d, VIRTIO_MMIO_QUEUE_USED_HIGH, (uint32_t)(used >> 32));
	virtio_write32(d, VIRTIO_MMIO_QUEUE_READY, 1);
	return virtio_read32(d, VIRTIO_MMIO_QUEUE_READY);
}

int virtio_queue_setup(struct vdev *d, unsigned index, struct vq *q, uint16_t size)
{
	uint32_t max;
	unsigned i;

	virtio_write32(d, VIRTIO_MMIO_QUEUE_SEL, index);
	if (virtio_read32(d, VIRTIO_MMIO_QUEUE_READY))
		return -1;
	max = virtio_read32(d, VIRTIO_MMIO_QUEUE_NUM_MAX);
	if (max == 0)
		return -1;
	if (size > max)
		size = (uint16_t)max;
	if (size > VQ_MAX)
		size = VQ_MAX;
	while (size & (size - 1))
		size &= (uint16_t)(size - 1); /* round down to a power of 2 */

	memset(q->desc, 0, sizeof(q->desc));
	memset(&q->avail, 0, sizeof(q->avail));
	memset(&q->used, 0, sizeof(q->used));
	memset(q->chain_len, 0, sizeof(q->chain_len));
	for (i = 0; i < size; i++)
		q->desc[i].next = (uint16_t)(i + 1);
	q->index = index;
	q->size = size;
	q->free_head = 0;
	q->nr_free = size;
	q->last_used = 0;
	barrier();
	if (virtio_queue_setup_raw(d, index, size, (uint64_t)q->desc, (uint64_t)&q->avail,
				   (uint64_t)&q->used) != 1)
		return -1;
	return 0;
}

/* ---- interrupts ---- */

static void virtio_irq_handler(struct irq_frame *f)
{
	unsigned irq = (unsigned)(f->vector - IRQ_VECTOR);
	struct vdev *d = irq < 16 ? irq_owner[irq] : 0;

	if (d) {
		uint32_t st = virtio_read32(d, VIRTIO_MMIO_INTERRUPT_STATUS);

		virtio_write32(d, VIRTIO_MMIO_INTERRUPT_ACK, st);
		d->int_status |= st;
		d->irqs++;
	}
	if (irq >= 8)
		outb(PIC2_CMD, PIC_EOI);
	outb(PIC1_CMD, PIC_EOI);
}

/* The 8259 pair in the usual PC cascade, remapped off the exception
 * vectors, everything masked; the LAPIC passes it through (LINT0 ExtINT). */
static void pic_init(void)
{
	outb(PIC1_CMD, 0x11); /* ICW1: edge, cascade, ICW4 follows */
	outb(PIC2_CMD, 0x11);
	outb(PIC1_DATA, IRQ_VECTOR);
	outb(PIC2_DATA, IRQ_VECTOR + 8);
	outb(PIC1_DATA, 4); /* ICW3: slave on IRQ2 */
	outb(PIC2_DATA, 2);
	outb(PIC1_DATA, 1); /* ICW4: 8086 mode */
	outb(PIC2_DATA, 1);
	outb(PIC1_DATA, 0xff & ~(1u << 2));
	outb(PIC2_DATA, 0xff);
	mmio_write32(LAPIC_BASE + LAPIC_SVR, 0x1ff);  /* software-enable, spurious 0xff */
	mmio_write32(LAPIC_BASE + LAPIC_LVT0, 0x700); /* ExtINT, unmasked */
	pic_ready = true;
}

void virtio_irq_enable(struct vdev *d)
{
	uint16_t port;

	__asm__ volatile("cli");
	if (!pic_ready)
		pic_init();
	irq_owner[d->irq & 15] = d;
	idt_set_handler(IRQ_VECTOR + (d->irq & 15), virtio_irq_handler);
	port = d->irq < 8 ? PIC1_DATA : PIC2_DATA;
	outb(port, inb(port) & (uint8_t) ~(1u << (d->irq & 7)));
	d->irq_enabled = true;
	__asm__ volatile("sti");
}

/* ---- queues ---- */

int vq_add(struct vq *q, const struct vq_buf *bufs, unsigned n)
{
	uint16_t head = q->free_head, idx = head, last = head;
	unsigned i;

	if (n == 0 || n > q->nr_free)
		return -1;
	/* Free descriptors are linked through .next, so a chain taken from
	 * the front of the list is already linked; only the flags change. */
	for (i = 0; i < n; i++) {
		struct vq_desc *dd = &q->desc[idx];

		dd->addr = (uint64_t)bufs[i].addr;
		dd->len = bufs[i].len;
		dd->flags = (uint16_t)((bufs[i].writable ? VQ_DESC_F_WRITE : 0) |
				       (i + 1 < n ? VQ_DESC_F_NEXT : 0));
		last = idx;
		idx = dd->next;
	}
	q->free_head = q->desc[last].next;
	q->nr_free = (uint16_t)(q->nr_free - n);
	q->chain_len[head] = (uint16_t)n;
	vq_publish(q, head);
	return head;
}

void vq_publish(struct vq *q, uint16_t head)
{
	q->avail.ring[q->avail.idx % q->size] = head;
	barrier(); /* ring entry before the index that publishes it (x86: stores in order) */
	*(volatile uint16_t *)&q->avail.idx = (uint16_t)(q->avail.idx + 1);
}

void vq_kick(struct vdev *d, struct vq *q)
{
	mb();
	virtio_write32(d, VIRTIO_MMIO_QUEUE_NOTIFY, q->index);
}

int vq_poll(struct vq *q, uint32_t *len)
{
	struct vq_used_elem e;
	uint16_t n, last;

	if (*(volatile uint16_t *)&q->used.idx == q->last_used)
		return -1;
	barrier();
	e = q->used.ring[q->last_used % q->size];
	q->last_used++;
	if (len)
		*len = e.len;
	if (e.id < q->size && (n = q->chain_len[e.id]) != 0) {
		last = (uint16_t)e.id;
		while (--n)
			last = q->desc[last].next;
		q->desc[last].next = q->free_head;
		q->free_head = (uint16_t)e.id;
		q->nr_free = (uint16_t)(q->nr_free + q->chain_len[e.id]);
		q->chain_len[e.id] = 0;
	}
	return (int)e.id;
}

int vq_wait_tsc(struct vdev *d, struct vq *q, uint32_t *len, uint64_t tsc)
{
	uint64_t start = rdtsc();
	unsigned spins = 0;
	int id;

	for (;;) {
		if (d->irq_enabled)
			__asm__ volatile("cli");
		id = vq_poll(q, len);
		if (id >= 0)
			break;
		if ((d->irq_enabled || (++spins & 1023) == 0) &&
		    (virtio_status(d) & VIRTIO_STATUS_NEEDS_RESET)) {
			id = -2;
			break;
		}
		if (d->irq_enabled) {
			/* sti takes effect after hlt starts: no lost wake-up. */
			__asm__ volatile("sti; hlt" ::: "memory");
		} else if (rdtsc() - start > tsc) {
			break;
		}
	}
	if (d->irq_enabled)
		__asm__ volatile("sti");
	return id;
}

int64_t vq_transfer(struct vdev *d, struct vq *q, const struct vq_buf *bufs, unsigned n)
{
	uint32_t len = 0;
	int head, id;

	head = vq_add(q, bufs, n);
	if (head < 0)
		return -1;
	vq_kick(d, q);
	id = vq_wait(d, q, &len);
	if (id < 0)
		return id;
	return id == head ? (int64_t)len : -1;
}
