#include "devices/vmctl.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "common/sbuf.h"

struct vmctl {
	struct vm *vm;
	pthread_mutex_t lock;
	int warm_fd;
	uint32_t generation, index;
	uint8_t entropy[VMCTL_ENTROPY_BYTES];
	unsigned pos;
};

static void vmctl_read(void *opaque, uint64_t off, void *data, unsigned len)
{
	struct vmctl *c = opaque;
	uint32_t v = 0xffffffff;

	memset(data, 0xff, len);
	if (len != 4)
		return;
	pthread_mutex_lock(&c->lock);
	switch (off) {
	case 4:
		v = c->generation;
		break;
	case 8:
		v = c->index;
		break;
	case 12:
		memcpy(&v, c->entropy + c->pos, 4);
		c->pos = (c->pos + 4) % VMCTL_ENTROPY_BYTES;
		break;
	}
	pthread_mutex_unlock(&c->lock);
	memcpy(data, &v, 4);
}

static void vmctl_write(void *opaque, uint64_t off, const void *data, unsigned len)
{
	struct vmctl *c = opaque;
	uint32_t v = 0;
	uint64_t one = 1;

	if (len != 4)
		return;
	memcpy(&v, data, 4);
	if (off == 0 && v == VMCTL_DOORBELL_WARM && c->warm_fd >= 0) {
		if (write(c->warm_fd, &one, sizeof(one)) < 0)
			log_errno("vmctl: signal warm");
	} else if (off == 12) {
		pthread_mutex_lock(&c->lock);
		c->pos = 0;
		pthread_mutex_unlock(&c->lock);
	}
}

static int vmctl_save(void *priv, struct sbuf *out)
{
	struct vmctl *c = priv;

	sbuf_u32(out, c->generation);
	return 0;
}

static int vmctl_restore(void *priv, const uint8_t *data, size_t len)
{
	struct vmctl *c = priv;
	struct sreader r = sreader_init(data, len);
	uint32_t gen = sreader_u32(&r);

	if (!sreader_done(&r) || gen == UINT32_MAX)
		return -EINVAL;
	c->generation = gen + 1;
	return 0;
}

static void vmctl_destroy(void *priv)
{
	struct vmctl *c = priv;

	pthread_mutex_destroy(&c->lock);
	free(c);
}

static const struct device_ops vmctl_ops = {
    .name = "vmctl",
    .destroy = vmctl_destroy,
    .save = vmctl_save,
    .restore = vmctl_restore,
};

int vmctl_create(struct vm *vm, int warm_fd, struct vmctl **out)
{
	struct vmctl *c = calloc(1, sizeof(*c));
	int err;

	if (!c)
		return -ENOMEM;
	c->vm = vm;
	c->warm_fd = warm_fd;
	c->index = VMCTL_NO_INDEX;
	pthread_mutex_init(&c->lock, NULL);
	err = vm_add_device(vm, &vmctl_ops, c);
	if (err) {
		vmctl_destroy(c);
		return err;
	}
	if (out)
		*out = c;
	return bus_add(&vm->pio, VMCTL_PORT, 16, "vmctl", vmctl_read, vmctl_write, c);
}

int vmctl_set_identity(struct vmctl *c, uint32_t index)
{
	uint8_t fresh[VMCTL_ENTROPY_BYTES];

	if (getrandom(fresh, sizeof(fresh), 0) != (ssize_t)sizeof(fresh))
		return log_errno("getrandom(child entropy)");
	pthread_mutex_lock(&c->lock);
	c->index = index;
	memcpy(c->entropy, fresh, sizeof(fresh));
	c->pos = 0;
	pthread_mutex_unlock(&c->lock);
	return 0;
}
