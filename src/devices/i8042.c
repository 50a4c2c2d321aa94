#include "devices/i8042.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "common/sbuf.h"

#define I8042_DATA    0x60
#define I8042_CMD     0x64
#define STATUS_OBF    0x01 /* output buffer full */
#define STATUS_SYS    0x04 /* passed self-test */
#define STATUS_CMD    0x08 /* last write was a command */
#define STATUS_UNLOCK 0x10 /* keyboard not inhibited by the keylock */
#define CMD_READ_CTR  0x20
#define CMD_WRITE_CTR 0x60
#define CMD_AUX_DIS   0xa7
#define CMD_AUX_EN    0xa8
#define CMD_AUX_TEST  0xa9
#define CMD_SELF_TEST 0xaa
#define CMD_KBD_TEST  0xab
#define CMD_KBD_DIS   0xad
#define CMD_KBD_EN    0xae
#define CMD_WRITE_OUT 0xd1
#define CMD_RESET     0xfe

struct i8042 {
	struct vm *vm;
	pthread_mutex_t lock;
	uint8_t status, ctr, out, pending_cmd;
};

static void i8042_reset_line(struct i8042 *k)
{
	vm_request_stop(k->vm, VM_EXIT_RESET, "guest reset the machine (i8042 reset line)");
}

static void i8042_reply(struct i8042 *k, uint8_t v)
{
	k->out = v;
	k->status |= STATUS_OBF;
}

static void i8042_write(struct i8042 *k, unsigned port, const void *data, unsigned len)
{
	uint8_t v = *(const uint8_t *)data;

	if (len != 1)
		return;
	pthread_mutex_lock(&k->lock);
	if (port == I8042_CMD) {
		k->status |= STATUS_CMD;
		k->pending_cmd = 0;
		switch (v) {
		case CMD_READ_CTR:
			i8042_reply(k, k->ctr);
			break;
		case CMD_WRITE_CTR:
		case CMD_WRITE_OUT:
			k->pending_cmd = v;
			break;
		case CMD_SELF_TEST:
			i8042_reply(k, 0x55);
			break;
		case CMD_KBD_TEST:
		case CMD_AUX_TEST:
			i8042_reply(k, 0x00);
			break;
		case CMD_RESET:
			i8042_reset_line(k);
			break;
		default:
			break;
		}
	} else if (port == I8042_DATA) {
		k->status &= (uint8_t)~STATUS_CMD;
		if (k->pending_cmd == CMD_WRITE_CTR)
			k->ctr = v;
		else if (k->pending_cmd == CMD_WRITE_OUT && !(v & 1))
			i8042_reset_line(k); /* output port bit 0 low: CPU reset */
		k->pending_cmd = 0;
	}
	pthread_mutex_unlock(&k->lock);
}

static void i8042_read(struct i8042 *k, unsigned port, void *data, unsigned len)
{
	uint8_t v;

	pthread_mutex_lock(&k->lock);
	if (port == I8042_CMD) {
		v = k->status;
	} else {
		v = k->out;
		k->status &= (uint8_t)~STATUS_OBF;
	}
	pthread_mutex_unlock(&k->lock);
	memset(data, 0, len);
	*(uint8_t *)data = v;
}

static void data_read(void *opaque, uint64_t off, void *data, unsigned len)
{
	i8042_read(opaque, I8042_DATA, data, len);
}

static void data_write(void *opaque, uint64_t off, const void *data, unsigned len)
{
	i8042_write(opaque, I8042_DATA, data, len);
}

static void cmd_read(void *opaque, uint64_t off, void *data, unsigned len)
{
	i8042_read(opaque, I8042_CMD, data, len);
}

static void cmd_write(void *opaque, uint64_t off, const void *data, unsigned len)
{
	i8042_write(opaque, I8042_CMD, data, len);
}

static void i8042_destroy(void *priv)
{
	struct i8042 *k = priv;

	pthread_mutex_destroy(&k->lock);
	free(k);
}

/* Saved state (docs/FORMAT.md, "Device state"): version, then status,
 * controller configuration byte, output buffer and the command waiting for
 * its data byte, one byte each. */
#define I8042_STATE_VERSION 1

static int i8042_save(void *priv, struct sbuf *out)
{
	struct i8042 *k = priv;

	pthread_mutex_lock(&k->lock);
	sbuf_u32(out, I8042_STATE_VERSION);
	sbuf_u8(out, k->status);
	sbuf_u8(out, k->ctr);
	sbuf_u8(out, k->out);
	sbuf_u8(out, k->pending_cmd);
	pthread_mutex_unlock(&k->lock);
	return 0;
}

static int i8042_restore(void *priv, const uint8_t *data, size_t len)
{
	struct i8042 *k = priv;
	struct sreader r = sreader_init(data, len);
	uint32_t version = sreader_u32(&r);
	uint8_t status = sreader_u8(&r), ctr = sreader_u8(&r), out = sreader_u8(&r),
		pending = sreader_u8(&r);

	if (!sreader_done(&r) || version != I8042_STATE_VERSION)
		return -EINVAL;
	/* Only these status bits exist here, and SYS is never cleared. */
	if ((status & ~(STATUS_OBF | STATUS_SYS | STATUS_CMD | STATUS_UNLOCK)) ||
	    !(status & STATUS_SYS))
		return -EINVAL;
	if (pending != 0 && pending != CMD_WRITE_CTR && pending != CMD_WRITE_OUT)
		return -EINVAL;
	pthread_mutex_lock(&k->lock);
	k->status = status;
	k->ctr = ctr;
	k->out = out;
	k->pending_cmd = pending;
	pthread_mutex_unlock(&k->lock);
	return 0;
}

static const struct device_ops i8042_ops = {
    .name = "i8042",
    .destroy = i8042_destroy,
    .save = i8042_save,
    .restore = i8042_restore,
};

int i8042_create(struct vm *vm)
{
	struct i8042 *k = calloc(1, sizeof(*k));
	int err;

	if (!k)
		return -ENOMEM;
	k->vm = vm;
	pthread_mutex_init(&k->lock, NULL);
	k->status = STATUS_SYS | STATUS_UNLOCK;
	k->ctr = 0x30; /* both ports' clocks disabled, no interrupts */
	err = vm_add_device(vm, &i8042_ops, k);
	if (err) {
		i8042_destroy(k);
		return err;
	}
	err = bus_add(&vm->pio, I8042_DATA, 1, "i8042-data", data_read, data_write, k);
	if (err)
		return err;
	return bus_add(&vm->pio, I8042_CMD, 1, "i8042-cmd", cmd_read, cmd_write, k);
}
