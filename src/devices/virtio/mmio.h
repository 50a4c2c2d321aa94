/* virtio-mmio transport, version 2 (virtio 1.2 §4.2), shared by every
 * virtio device. A device embeds struct virtio_dev, fills in its ops and
 * calls virtio_mmio_register(); the transport owns the register file,
 * feature negotiation, queue set-up and the interrupt line.
 *
 * Locking: vdev->lock is held around every register access and around
 * ops->notify() and ops->reset(). Back-end code running on the event loop
 * (tap or socket input) takes the same lock before touching queues.
 *
 * Snapshots: the transport registers one struct device per virtio device
 * (named "virtio-mmio") whose state is the transport's (status, features,
 * queues, interrupt status) followed by what ops->save adds; layout in
 * docs/FORMAT.md, "Device state". */
#ifndef FORKD_DEVICES_VIRTIO_MMIO_H
#define FORKD_DEVICES_VIRTIO_MMIO_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "devices/virtio/queue.h"
#include "vmm/vm.h"

#define VIRTIO_MAX_QUEUES 8

/* Device status bits, §2.1 */
#define VIRTIO_STATUS_ACKNOWLEDGE 1
#define VIRTIO_STATUS_DRIVER	  2
#define VIRTIO_STATUS_DRIVER_OK	  4
#define VIRTIO_STATUS_FEATURES_OK 8
#define VIRTIO_STATUS_NEEDS_RESET 64
#define VIRTIO_STATUS_FAILED	  128
#define VIRTIO_STATUS_ALL                                                                          \
	(VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_DRIVER_OK |              \
	 VIRTIO_STATUS_FEATURES_OK | VIRTIO_STATUS_NEEDS_RESET | VIRTIO_STATUS_FAILED)

/* InterruptStatus bits, §4.2.2 */
#define VIRTIO_INT_USED	  1
#define VIRTIO_INT_CONFIG 2

#define VIRTIO_F_VERSION_1 32

/* Device IDs, §5 */
#define VIRTIO_ID_NET	1
#define VIRTIO_ID_BLOCK 2
#define VIRTIO_ID_RNG	4
#define VIRTIO_ID_VSOCK 19

struct virtio_dev;
struct sbuf;
struct sreader;

struct virtio_dev_ops {
	const char *name;
	uint32_t device_id;
	unsigned nr_queues;
	uint16_t queue_max;
	/* Driver kicked queue q. Called on a vCPU thread, lock held. */
	void (*notify)(struct virtio_dev *vdev, unsigned q);
	/* The driver wrote 0 to Status: forget in-flight state. Lock held.
	 * The transport resets queues and registers itself. Optional. */
	void (*reset)(struct virtio_dev *vdev);
	/* The driver set DRIVER_OK: queues are live. Lock held. Optional. */
	void (*activate)(struct virtio_dev *vdev);
	/* The driver wrote config space (already copied in). Without this
	 * hook config space is read-only to the driver. */
	void (*config_write)(struct virtio_dev *vdev, uint32_t off, uint32_t len);
	/* Free the device (the struct embedding vdev). */
	void (*destroy)(struct virtio_dev *vdev);
	/* Append the device's own state (what the transport does not keep)
	 * to out, starting with a version word. VM paused, lock held.
	 * Optional: without it the transport's state is the whole state. */
	int (*save)(struct virtio_dev *vdev, struct sbuf *out);
	/* Load what save wrote. r spans exactly those bytes, which come from
	 * a file: validate all of them (sreader_done() included) before
	 * changing anything, and return -EINVAL with the device unchanged on
	 * any error; the transport then puts its own state back. The
	 * transport's state is already in place (validated), so once the
	 * blob is accepted the hook makes the device live again where the
	 * driver had it running (virtio_driver_ok()): host back-ends are this
	 * process's own, not the saving VM's. Lock held, before any vCPU runs
	 * and before the event loop starts. Optional: without it the saved
	 * device part must be empty. */
	int (*restore)(struct virtio_dev *vdev, struct sreader *r);
};

struct virtio_dev {
	struct vm *vm;
	const struct virtio_dev_ops *ops;
	pthread_mutex_t lock;
	uint64_t base;
	unsigned irq;

	uint64_t device_features; /* offered; VERSION_1 is added by the transport */
	uint64_t driver_features; /* accepted, valid once FEATURES_OK */
	uint8_t *config;	  /* device config space, owned by the device */
	uint32_t config_size;

	uint32_t status;
	uint32_t device_features_sel, driver_features_sel;
	uint32_t queue_sel;
	uint32_t interrupt_status;
	uint32_t config_generation;
	struct virtq queues[VIRTIO_MAX_QUEUES];
	uint64_t errors;	       /* malformed requests seen */
	struct log_ratelimit fail_log; /* virtio_fail()'s lines: the guest causes them */
};

/* Claim a virtio-mmio slot (MMIO range + IRQ, announced to the guest) and
 * register the device. On failure the device is freed: at once if it never
 * joined the VM, else by vm_destroy(). Either way the caller must not free
 * it. */
int virtio_mmio_register(struct vm *vm, struct virtio_dev *vdev,
			 const struct virtio_dev_ops *ops) __must_check;

/* Queue q has new used buffers: interrupt the driver unless it asked not
 * to be. Lock held. */
void virtio_notify_used(struct virtio_dev *vdev, unsigned q);
/* A malformed request: mark the device DEVICE_NEEDS_RESET and tell the
 * driver through a configuration-change interrupt (§2.1.2). Lock held. */
void virtio_fail(struct virtio_dev *vdev, const char *what);

static inline bool virtio_driver_ok(const struct virtio_dev *vdev)
{
	return (vdev->status & VIRTIO_STATUS_DRIVER_OK) &&
	       !(vdev->status & VIRTIO_STATUS_NEEDS_RESET);
}

static inline bool virtio_has_feature(const struct virtio_dev *vdev, unsigned bit)
{
	return (vdev->driver_features >> bit) & 1;
}

#endif
