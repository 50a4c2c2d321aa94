#include "devices/virtio/mmio.h"

#include <errno.h>
#include <string.h>

#include "common/util.h"

/* Register offsets, virtio 1.2 §4.2.2. */
#define REG_MAGIC            0x000
#define REG_VERSION          0x004
#define REG_DEVICE_ID        0x008
#define REG_VENDOR_ID        0x00c
#define REG_DEVICE_FEATURES  0x010
#define REG_DEVICE_FEAT_SEL  0x014
#define REG_DRIVER_FEATURES  0x020
#define REG_DRIVER_FEAT_SEL  0x024
#define REG_QUEUE_SEL        0x030
#define REG_QUEUE_NUM_MAX    0x034
#define REG_QUEUE_NUM        0x038
#define REG_QUEUE_READY      0x044
#define REG_QUEUE_NOTIFY     0x050
#define REG_INTERRUPT_STATUS 0x060
#define REG_INTERRUPT_ACK    0x064
#define REG_STATUS           0x070
#define REG_QUEUE_DESC_LOW   0x080
#define REG_QUEUE_DESC_HIGH  0x084
#define REG_QUEUE_AVAIL_LOW  0x090
#define REG_QUEUE_AVAIL_HIGH 0x094
#define REG_QUEUE_USED_LOW   0x0a0
#define REG_QUEUE_USED_HIGH  0x0a4
#define REG_CONFIG_GEN       0x0fc
#define REG_CONFIG           0x100

#define MMIO_MAGIC   0x74726976 /* "virt" */
#define MMIO_VERSION 2
#define VENDOR_ID    0x554d4551 /* any value; drivers do not check it */

#define INT_USED   1
#define INT_CONFIG 2

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
	vm_irq_pulse(vdev->vm, vdev->irq);
}

void virtio_notify_used(struct virtio_dev *vdev, unsigned q)
{
	if (q < vdev->ops->nr_queues && virtq_should_interrupt(&vdev->vm->mem, &vdev->queues[q]))
		raise_interrupt(vdev, INT_USED);
}

void virtio_fail(struct virtio_dev *vdev, const char *what)
{
	vdev->errors++;
	log_warn("%s: %s; device needs reset", vdev->ops->name, what);
	if (vdev->status & VIRTIO_STATUS_NEEDS_RESET)
		return;
	vdev->status |= VIRTIO_STATUS_NEEDS_RESET;
	if (vdev->status & VIRTIO_STATUS_DRIVER_OK)
		raise_interrupt(vdev, INT_CONFIG);
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
	/* §3.1.1: FEATURES_OK only sticks if we accept the subset. */
	if ((v & VIRTIO_STATUS_FEATURES_OK) && !(vdev->status & VIRTIO_STATUS_FEATURES_OK)) {
		if ((vdev->driver_features & ~offered_features(vdev)) ||
		    !(vdev->driver_features & (1ULL << VIRTIO_F_VERSION_1)))
			v &= ~(uint32_t)VIRTIO_STATUS_FEATURES_OK;
	}
	/* The device owns NEEDS_RESET; the driver cannot clear it. */
	v = (v & ~(uint32_t)VIRTIO_STATUS_NEEDS_RESET) |
	    (vdev->status & VIRTIO_STATUS_NEEDS_RESET);
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
		reg = off < REG_QUEUE_AVAIL_LOW ? &q->desc_gpa
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

int virtio_mmio_register(struct vm *vm, struct virtio_dev *vdev, const struct virtio_dev_ops *ops)
{
	static const struct device_ops virtio_device_ops = {
		.name = "virtio-mmio",
		.destroy = virtio_device_destroy,
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
