#include "devices/virtio/mmio.h"

#include <errno.h>
#include <string.h>

#include "common/sbuf.h"
#include "common/util.h"

/* Register offsets, virtio 1.2 §4.2.2. */
#define REG_MAGIC	     0x000
#define REG_VERSION	     0x004
#define REG_DEVICE_ID	     0x008
#define REG_VENDOR_ID	     0x00c
#define REG_DEVICE_FEATURES  0x010
#define REG_DEVICE_FEAT_SEL  0x014
#define REG_DRIVER_FEATURES  0x020
#define REG_DRIVER_FEAT_SEL  0x024
#define REG_QUEUE_SEL	     0x030
#define REG_QUEUE_NUM_MAX    0x034
#define REG_QUEUE_NUM	     0x038
#define REG_QUEUE_READY	     0x044
#define REG_QUEUE_NOTIFY     0x050
#define REG_INTERRUPT_STATUS 0x060
#define REG_INTERRUPT_ACK    0x064
#define REG_STATUS	     0x070
#define REG_QUEUE_DESC_LOW   0x080
#define REG_QUEUE_DESC_HIGH  0x084
#define REG_QUEUE_AVAIL_LOW  0x090
#define REG_QUEUE_AVAIL_HIGH 0x094
#define REG_QUEUE_USED_LOW   0x0a0
#define REG_QUEUE_USED_HIGH  0x0a4
#define REG_CONFIG_GEN	     0x0fc
#define REG_CONFIG	     0x100

#define MMIO_MAGIC   0x74726976 /* "virt" */
#define MMIO_VERSION 2
#define VENDOR_ID    0x554d4551 /* any value; drivers do not check it */

static uint64_t offered_features(const struct virtio_dev *vdev)
{
	return vdev->device_features | (1ULL << VIRTIO_F_VERSION_1);
}

static struct virtq *selected_queue(struct virtio_dev *vdev)
{
	if (vdev->queue_sel >= vdev->ops->nr_queues)
		return NULL;
	return &vdev->queues[vdev->queue_sel];
}

static void raise_interrupt(struct virtio_dev *vdev, uint32_t why)
{
	vdev->interrupt_status |= why;
	(void)!vm_irq_pulse(vdev->vm, vdev->irq);
}

void virtio_notify_used(struct virtio_dev *vdev, unsigned q)
{
	if (q < vdev->ops->nr_queues && virtq_should_interrupt(&vdev->vm->mem, &vdev->queues[q]))
		raise_interrupt(vdev, VIRTIO_INT_USED);
}

void virtio_fail(struct virtio_dev *vdev, const char *what)
{
	uint64_t dropped;

	vdev->errors++;
	if (log_ratelimit(&vdev->fail_log, now_ns(), &dropped)) {
		if (dropped)
			log_warn("%s: %llu more failures not logged (at most %d lines per %d s)",
				 vdev->ops->name, (unsigned long long)dropped, LOG_RATELIMIT_BURST,
				 LOG_RATELIMIT_WINDOW_S);
		log_warn("%s: %s; device needs reset", vdev->ops->name, what);
	}
	if (vdev->status & VIRTIO_STATUS_NEEDS_RESET)
		return;
	vdev->status |= VIRTIO_STATUS_NEEDS_RESET;
	if (vdev->status & VIRTIO_STATUS_DRIVER_OK)
		raise_interrupt(vdev, VIRTIO_INT_CONFIG);
}

static void device_reset(struct virtio_dev *vdev)
{
	unsigned i;

	if (vdev->ops->reset)
		vdev->ops->reset(vdev);
	vdev->status = 0;
	vdev->driver_features = 0;
	vdev->device_features_sel = vdev->driver_features_sel = 0;
	vdev->queue_sel = 0;
	vdev->interrupt_status = 0;
	for (i = 0; i < vdev->ops->nr_queues; i++) {
		uint16_t max = vdev->queues[i].max;

		memset(&vdev->queues[i], 0, sizeof(vdev->queues[i]));
		vdev->queues[i].max = max;
	}
}

static void write_status(struct virtio_dev *vdev, uint32_t v)
{
	if (v == 0) {
		device_reset(vdev);
		return;
	}
	/* Bits §2.1 does not define mean nothing to the device: drop them,
	 * so the status a snapshot holds is always one restore accepts. */
	v &= VIRTIO_STATUS_ALL;
	/* §3.1.1: FEATURES_OK only sticks if we accept the subset. */
	if ((v & VIRTIO_STATUS_FEATURES_OK) && !(vdev->status & VIRTIO_STATUS_FEATURES_OK)) {
		if ((vdev->driver_features & ~offered_features(vdev)) ||
		    !(vdev->driver_features & (1ULL << VIRTIO_F_VERSION_1)))
			v &= ~(uint32_t)VIRTIO_STATUS_FEATURES_OK;
	}
	/* The device owns NEEDS_RESET; the driver cannot clear it. */
	v = (v & ~(uint32_t)VIRTIO_STATUS_NEEDS_RESET) | (vdev->status & VIRTIO_STATUS_NEEDS_RESET);
	if ((v & VIRTIO_STATUS_DRIVER_OK) && !(vdev->status & VIRTIO_STATUS_DRIVER_OK)) {
		vdev->status = v;
		if (vdev->ops->activate)
			vdev->ops->activate(vdev);
		return;
	}
	vdev->status = v;
}

static void set_high(uint64_t *reg, uint32_t v)
{
	*reg = (*reg & 0xffffffffULL) | ((uint64_t)v << 32);
}

static void set_low(uint64_t *reg, uint32_t v)
{
	*reg = (*reg & ~0xffffffffULL) | v;
}

static void mmio_write(void *opaque, uint64_t off, const void *data, unsigned len)
{
	struct virtio_dev *vdev = opaque;
	struct virtq *q;
	uint32_t v = 0;

	pthread_mutex_lock(&vdev->lock);
	if (off >= REG_CONFIG) {
		uint64_t coff = off - REG_CONFIG;

		/* Config space is read-only unless the device takes writes. */
		if (vdev->ops->config_write && coff < vdev->config_size &&
		    len <= vdev->config_size - coff) {
			memcpy(vdev->config + coff, data, len);
			vdev->ops->config_write(vdev, (uint32_t)coff, len);
		}
		goto out;
	}
	if (len != 4)
		goto out; /* §4.2.2.2: registers are 32-bit */
	memcpy(&v, data, 4);
	q = selected_queue(vdev);
	switch (off) {
	case REG_DEVICE_FEAT_SEL:
		vdev->device_features_sel = v;
		break;
	case REG_DRIVER_FEATURES:
		if (vdev->status & VIRTIO_STATUS_FEATURES_OK)
			break;
		if (vdev->driver_features_sel == 0)
			set_low(&vdev->driver_features, v);
		else if (vdev->driver_features_sel == 1)
			set_high(&vdev->driver_features, v);
		break;
	case REG_DRIVER_FEAT_SEL:
		vdev->driver_features_sel = v;
		break;
	case REG_QUEUE_SEL:
		vdev->queue_sel = v;
		break;
	case REG_QUEUE_NUM:
		if (q && !q->ready)
			q->size = (uint16_t)MIN(v, 0xffffu);
		break;
	case REG_QUEUE_READY:
		if (!q)
			break;
		if (v == 1 && !q->ready) {
			if (virtq_validate(&vdev->vm->mem, q)) {
				virtio_fail(vdev, "queue set up with invalid size or addresses");
				break;
			}
			q->ready = true;
			q->last_avail = q->used_idx = 0;
		} else if (v == 0) {
			q->ready = false;
		}
		break;
	case REG_QUEUE_NOTIFY:
		if (v < vdev->ops->nr_queues && virtio_driver_ok(vdev) && vdev->queues[v].ready)
			vdev->ops->notify(vdev, v);
		break;
	case REG_INTERRUPT_ACK:
		vdev->interrupt_status &= ~v;
		break;
	case REG_STATUS:
		write_status(vdev, v);
		break;
	case REG_QUEUE_DESC_LOW:
	case REG_QUEUE_DESC_HIGH:
	case REG_QUEUE_AVAIL_LOW:
	case REG_QUEUE_AVAIL_HIGH:
	case REG_QUEUE_USED_LOW:
	case REG_QUEUE_USED_HIGH: {
		uint64_t *reg;

		if (!q || q->ready)
			break; /* §4.2.2.3: only while the queue is not ready */
		reg = off < REG_QUEUE_AVAIL_LOW	 ? &q->desc_gpa
		      : off < REG_QUEUE_USED_LOW ? &q->avail_gpa
						 : &q->used_gpa;
		if (off & 4)
			set_high(reg, v);
		else
			set_low(reg, v);
		break;
	}
	default:
		break;
	}
out:
	pthread_mutex_unlock(&vdev->lock);
}

static void mmio_read(void *opaque, uint64_t off, void *data, unsigned len)
{
	struct virtio_dev *vdev = opaque;
	struct virtq *q;
	uint32_t v = 0;

	memset(data, 0, len);
	pthread_mutex_lock(&vdev->lock);
	if (off >= REG_CONFIG) {
		uint64_t coff = off - REG_CONFIG;

		if (coff < vdev->config_size && len <= vdev->config_size - coff)
			memcpy(data, vdev->config + coff, len);
		goto out;
	}
	if (len != 4)
		goto out;
	q = selected_queue(vdev);
	switch (off) {
	case REG_MAGIC:
		v = MMIO_MAGIC;
		break;
	case REG_VERSION:
		v = MMIO_VERSION;
		break;
	case REG_DEVICE_ID:
		v = vdev->ops->device_id;
		break;
	case REG_VENDOR_ID:
		v = VENDOR_ID;
		break;
	case REG_DEVICE_FEATURES:
		if (vdev->device_features_sel < 2)
			v = (uint32_t)(offered_features(vdev) >> (32 * vdev->device_features_sel));
		break;
	case REG_QUEUE_NUM_MAX:
		v = q ? q->max : 0;
		break;
	case REG_QUEUE_READY:
		v = q ? q->ready : 0;
		break;
	case REG_INTERRUPT_STATUS:
		v = vdev->interrupt_status;
		break;
	case REG_STATUS:
		v = vdev->status;
		break;
	case REG_CONFIG_GEN:
		v = vdev->config_generation;
		break;
	default:
		break;
	}
	memcpy(data, &v, 4);
out:
	pthread_mutex_unlock(&vdev->lock);
}

static void virtio_device_destroy(void *priv)
{
	struct virtio_dev *vdev = priv;

	pthread_mutex_destroy(&vdev->lock);
	vdev->ops->destroy(vdev);
}

/* ---- Snapshot state ----
 *
 * The blob (docs/FORMAT.md, "Device state"): a version word, the device ID
 * and queue count (so a blob meant for another kind of device is refused),
 * the registers, each queue, then the device's own part with its length.
 * Restore takes any state a driver can reach through the registers and
 * nothing else: defined status and interrupt bits only, negotiated
 * features this device offers, and a ready queue passes virtq_validate()
 * again, as it did when the driver enabled it. */
#define MMIO_STATE_VERSION 1

/* The transport's part of struct virtio_dev, for restore to fall back on. */
struct mmio_state {
	uint32_t status;
	uint64_t driver_features;
	uint32_t device_features_sel, driver_features_sel, queue_sel;
	uint32_t interrupt_status, config_generation;
	uint64_t errors;
	struct virtq queues[VIRTIO_MAX_QUEUES];
};

static void mmio_state_get(const struct virtio_dev *vdev, struct mmio_state *t)
{
	t->status = vdev->status;
	t->driver_features = vdev->driver_features;
	t->device_features_sel = vdev->device_features_sel;
	t->driver_features_sel = vdev->driver_features_sel;
	t->queue_sel = vdev->queue_sel;
	t->interrupt_status = vdev->interrupt_status;
	t->config_generation = vdev->config_generation;
	t->errors = vdev->errors;
	memcpy(t->queues, vdev->queues, sizeof(t->queues));
}

static void mmio_state_put(struct virtio_dev *vdev, const struct mmio_state *t)
{
	vdev->status = t->status;
	vdev->driver_features = t->driver_features;
	vdev->device_features_sel = t->device_features_sel;
	vdev->driver_features_sel = t->driver_features_sel;
	vdev->queue_sel = t->queue_sel;
	vdev->interrupt_status = t->interrupt_status;
	vdev->config_generation = t->config_generation;
	vdev->errors = t->errors;
	memcpy(vdev->queues, t->queues, sizeof(vdev->queues));
}

static int virtio_mmio_save(void *priv, struct sbuf *out)
{
	struct virtio_dev *vdev = priv;
	const struct virtio_dev_ops *ops = vdev->ops;
	size_t len_at;
	uint32_t dev_len;
	int err = 0;

	pthread_mutex_lock(&vdev->lock);
	sbuf_u32(out, MMIO_STATE_VERSION);
	sbuf_u32(out, ops->device_id);
	sbuf_u32(out, ops->nr_queues);
	sbuf_u32(out, vdev->status);
	sbuf_u64(out, vdev->driver_features);
	sbuf_u32(out, vdev->device_features_sel);
	sbuf_u32(out, vdev->driver_features_sel);
	sbuf_u32(out, vdev->queue_sel);
	sbuf_u32(out, vdev->interrupt_status);
	sbuf_u32(out, vdev->config_generation);
	sbuf_u64(out, vdev->errors);
	for (unsigned i = 0; i < ops->nr_queues; i++) {
		const struct virtq *q = &vdev->queues[i];

		sbuf_u16(out, q->size);
		sbuf_u16(out, q->max);
		sbuf_u8(out, q->ready);
		sbuf_u8(out, q->broken);
		sbuf_u16(out, q->last_avail);
		sbuf_u16(out, q->used_idx);
		sbuf_u64(out, q->desc_gpa);
		sbuf_u64(out, q->avail_gpa);
		sbuf_u64(out, q->used_gpa);
	}
	len_at = out->len;
	sbuf_u32(out, 0); /* the device's part: length filled in below */
	if (ops->save)
		err = ops->save(vdev, out);
	pthread_mutex_unlock(&vdev->lock);
	if (err)
		return err;
	if (out->oom)
		return -ENOMEM;
	if (out->len - len_at - 4 > UINT32_MAX)
		return -EFBIG;
	dev_len = (uint32_t)(out->len - len_at - 4);
	memcpy(out->data + len_at, &dev_len, 4);
	return 0;
}

/* Read and check one queue. Lock held (q->max comes from the device). */
static int mmio_restore_queue(struct virtio_dev *vdev, unsigned i, struct sreader *r,
			      struct virtq *q)
{
	uint16_t max;
	uint8_t ready, broken;

	memset(q, 0, sizeof(*q));
	q->size = sreader_u16(r);
	max = sreader_u16(r);
	ready = sreader_u8(r);
	broken = sreader_u8(r);
	q->last_avail = sreader_u16(r);
	q->used_idx = sreader_u16(r);
	q->desc_gpa = sreader_u64(r);
	q->avail_gpa = sreader_u64(r);
	q->used_gpa = sreader_u64(r);
	q->max = vdev->ops->queue_max;
	if (r->err)
		return -EINVAL;
	if (max != q->max || ready > 1 || broken > 1) {
		log_err("%s: saved queue %u is malformed (max %u where this device offers %u, "
			"ready %u, broken %u)",
			vdev->ops->name, i, max, q->max, ready, broken);
		return -EINVAL;
	}
	q->ready = ready;
	q->broken = broken;
	if (!q->ready)
		return 0; /* checked when the driver makes it ready */
	/* As at QueueReady (virtq_validate), and the device cannot hold more
	 * chains than the ring has. */
	if (virtq_validate(&vdev->vm->mem, q) ||
	    (uint16_t)(q->last_avail - q->used_idx) > q->size) {
		log_err("%s: saved queue %u has a bad size (%u) or rings (desc 0x%llx, avail "
			"0x%llx, used 0x%llx) or indices (%u/%u)",
			vdev->ops->name, i, q->size, (unsigned long long)q->desc_gpa,
			(unsigned long long)q->avail_gpa, (unsigned long long)q->used_gpa,
			q->last_avail, q->used_idx);
		return -EINVAL;
	}
	return 0;
}

/* Parse and check the transport's part of a blob into t. Lock held. */
static int mmio_restore_parse(struct virtio_dev *vdev, struct sreader *r, struct mmio_state *t)
{
	const struct virtio_dev_ops *ops = vdev->ops;
	uint32_t version, device_id, nr_queues;

	memset(t, 0, sizeof(*t));
	version = sreader_u32(r);
	device_id = sreader_u32(r);
	nr_queues = sreader_u32(r);
	if (r->err || version != MMIO_STATE_VERSION) {
		log_err("%s: saved state is truncated or has an unknown version (%u)", ops->name,
			version);
		return -EINVAL;
	}
	if (device_id != ops->device_id || nr_queues != ops->nr_queues) {
		log_err("%s: saved state is for virtio device %u with %u queues, this slot holds "
			"device %u with %u: the machines differ",
			ops->name, device_id, nr_queues, ops->device_id, ops->nr_queues);
		return -EINVAL;
	}
	t->status = sreader_u32(r);
	t->driver_features = sreader_u64(r);
	t->device_features_sel = sreader_u32(r);
	t->driver_features_sel = sreader_u32(r);
	t->queue_sel = sreader_u32(r);
	t->interrupt_status = sreader_u32(r);
	t->config_generation = sreader_u32(r);
	t->errors = sreader_u64(r);
	if (r->err) {
		log_err("%s: saved state is truncated", ops->name);
		return -EINVAL;
	}
	if ((t->status & ~(uint32_t)VIRTIO_STATUS_ALL) ||
	    (t->interrupt_status & ~(uint32_t)(VIRTIO_INT_USED | VIRTIO_INT_CONFIG))) {
		log_err("%s: saved status 0x%x or interrupt status 0x%x has unknown bits",
			ops->name, t->status, t->interrupt_status);
		return -EINVAL;
	}
	/* What write_status() lets become FEATURES_OK: offered here too (a
	 * device configured differently, read-only say, is refused). */
	if ((t->status & VIRTIO_STATUS_FEATURES_OK) &&
	    ((t->driver_features & ~offered_features(vdev)) ||
	     !(t->driver_features & (1ULL << VIRTIO_F_VERSION_1)))) {
		log_err("%s: saved features 0x%llx are not a subset of what this device offers "
			"(0x%llx)",
			ops->name, (unsigned long long)t->driver_features,
			(unsigned long long)offered_features(vdev));
		return -EINVAL;
	}
	for (unsigned i = 0; i < ops->nr_queues; i++) {
		if (mmio_restore_queue(vdev, i, r, &t->queues[i])) {
			if (r->err)
				log_err("%s: saved state is truncated", ops->name);
			return -EINVAL;
		}
	}
	for (unsigned i = ops->nr_queues; i < VIRTIO_MAX_QUEUES; i++)
		t->queues[i] = vdev->queues[i];
	return 0;
}

/* Pending interrupts: a used-buffer or configuration interrupt the driver
 * had not acknowledged is raised again once the device is back. The edge
 * it was signalled with is in the restored interrupt controller already
 * unless the guest was handling it; a second edge then costs one
 * interrupt that finds nothing new, while a lost one could leave the
 * driver waiting forever. */
static int virtio_mmio_restore(void *priv, const uint8_t *data, size_t len)
{
	struct virtio_dev *vdev = priv;
	struct sreader r = sreader_init(data, len), dev;
	struct mmio_state saved, old;
	uint32_t dev_len;
	int err;

	pthread_mutex_lock(&vdev->lock);
	err = mmio_restore_parse(vdev, &r, &saved);
	if (err)
		goto out;
	dev_len = sreader_u32(&r);
	if (r.err || dev_len != r.len - r.off) {
		log_err("%s: saved device state is truncated or has trailing bytes",
			vdev->ops->name);
		err = -EINVAL;
		goto out;
	}
	if (!vdev->ops->restore && dev_len) {
		log_err("%s: saved state has %u bytes of device state; this device keeps none",
			vdev->ops->name, dev_len);
		err = -EINVAL;
		goto out;
	}
	mmio_state_get(vdev, &old);
	mmio_state_put(vdev, &saved);
	if (vdev->ops->restore) {
		dev = sreader_init(r.p + r.off, dev_len);
		err = vdev->ops->restore(vdev, &dev);
		if (err) {
			log_err("%s: saved device state rejected", vdev->ops->name);
			mmio_state_put(vdev, &old);
			goto out;
		}
	}
	if (saved.interrupt_status)
		(void)!vm_irq_pulse(vdev->vm, vdev->irq);
out:
	pthread_mutex_unlock(&vdev->lock);
	return err;
}

int virtio_mmio_register(struct vm *vm, struct virtio_dev *vdev, const struct virtio_dev_ops *ops)
{
	static const struct device_ops virtio_device_ops = {
	    .name = "virtio-mmio",
	    .destroy = virtio_device_destroy,
	    .save = virtio_mmio_save,
	    .restore = virtio_mmio_restore,
	};
	unsigned i;
	int err;

	vdev->vm = vm;
	vdev->ops = ops;
	pthread_mutex_init(&vdev->lock, NULL);
	if (ops->nr_queues > VIRTIO_MAX_QUEUES || ops->queue_max > VIRTQ_MAX_SIZE) {
		virtio_device_destroy(vdev);
		return -EINVAL;
	}
	for (i = 0; i < ops->nr_queues; i++)
		vdev->queues[i].max = ops->queue_max;
	err = vm_alloc_virtio_slot(vm, &vdev->base, &vdev->irq);
	if (err) {
		virtio_device_destroy(vdev);
		return err;
	}
	err = vm_add_device(vm, &virtio_device_ops, vdev);
	if (err) {
		virtio_device_destroy(vdev);
		return err;
	}
	/* From here the VM owns the device: vm_destroy() frees it. */
	return bus_add(&vm->mmio, vdev->base, VIRTIO_MMIO_SIZE, ops->name, mmio_read, mmio_write,
		       vdev);
}
