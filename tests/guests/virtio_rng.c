/* virtio-rng: two 32-byte requests come back full, not all zero, and
 * different from each other; the second one is completed with interrupts
 * on, so the used-buffer interrupt is checked too. */
#include "rt/guest.h"
#include "rt/virtio.h"

static struct vdev dev;
static struct vq q;
static uint8_t a[32], b[32];

static bool all_zero(const uint8_t *p, unsigned n)
{
	while (n--)
		if (*p++)
			return false;
	return true;
}

int main(void);
int main(void)
{
	struct vq_buf buf = {a, sizeof(a), true};
	int slot;

	idt_init();
	slot = virtio_find(VIRTIO_ID_RNG, 0, &dev);
	CHECK(slot >= 0);
	puts_("virtio_rng: device in slot ");
	put_dec((uint64_t)slot);
	puts_(", irq ");
	put_dec(dev.irq);
	putc_('\n');
	CHECK(virtio_init(&dev, 0) == 0);
	CHECK(virtio_queue_setup(&dev, 0, &q, 16) == 0);
	virtio_driver_ok(&dev);

	CHECK(vq_transfer(&dev, &q, &buf, 1) == sizeof(a));
	puts_("virtio_rng: first 32 bytes (polled)\n");

	virtio_irq_enable(&dev);
	buf.addr = b;
	CHECK(vq_transfer(&dev, &q, &buf, 1) == sizeof(b));
	CHECK(dev.irqs >= 1);
	CHECK(dev.int_status & VIRTIO_INT_USED);
	puts_("virtio_rng: second 32 bytes, used-buffer interrupt taken\n");

	CHECK(!all_zero(a, sizeof(a)));
	CHECK(!all_zero(b, sizeof(b)));
	CHECK(memcmp(a, b, sizeof(a)) != 0);
	puts_("virtio_rng: both non-zero and different\n");
	CHECK(!(virtio_status(&dev) & VIRTIO_STATUS_NEEDS_RESET));
	return 0;
}
