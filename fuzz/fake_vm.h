/* A machine without KVM for the device harnesses (fuzz_mmio.c,
 * fuzz_restore.c), as tests/unit/test_device_state.c builds one: struct vm
 * with RAM from the harness and an event loop nobody starts (the harness
 * runs it with evloop_dispatch()), every device built by its real create
 * function. Host back-ends are real but harmless: the tap is one end of a
 * datagram socketpair (the other in fake_tap_peer), the disk a small image
 * in a private directory that also holds the overlay and the vsock Unix
 * sockets. KVM_IRQ_LINE is answered here. Included once, by one harness. */
#ifndef FORKD_FUZZ_FAKE_VM_H
#define FORKD_FUZZ_FAKE_VM_H

#include <errno.h>
#include <fcntl.h>
#include <linux/if_tun.h>
#include <linux/kvm.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "common/log.h"
#include "common/sbuf.h"
#include "common/util.h"
#include "devices/i8042.h"
#include "devices/serial.h"
#include "devices/virtio/blk.h"
#include "devices/virtio/mmio.h"
#include "devices/virtio/net.h"
#include "devices/virtio/rng.h"
#include "devices/virtio/vsock.h"
#include "devices/vmctl.h"

#define FAKE_VM_FD 987

enum fake_dev { FAKE_RNG, FAKE_BLK, FAKE_NET, FAKE_VSOCK, FAKE_SERIAL, FAKE_I8042, FAKE_VMCTL };
#define FAKE_NR_VIRTIO 4
#define FAKE_NR_DEVS   7

static const unsigned fake_nr_queues[FAKE_NR_VIRTIO] = {1, 1, 2, 3};

static char fake_dir[64] = "/tmp/forkd-fuzz.XXXXXX";
static char fake_image[96];
static int fake_tap_peer = -1; /* the host side of the tap just opened */
static unsigned fake_irq_edges;

/* The C library's ioctl(), for the library: KVM_IRQ_LINE on the fake VM
 * fd is counted, the tap set-up ioctls succeed on the socketpair. */
int ioctl(int fd, unsigned long req, ...)
{
	va_list ap;
	void *arg;

	va_start(ap, req);
	arg = va_arg(ap, void *);
	va_end(ap);
	if (fd == FAKE_VM_FD && req == KVM_IRQ_LINE) {
		if (((struct kvm_irq_level *)arg)->level)
			fake_irq_edges++;
		return 0;
	}
	if (req == TUNSETIFF || req == TUNSETVNETHDRSZ || req == TUNSETOFFLOAD)
		return 0;
	return (int)syscall(SYS_ioctl, fd, req, arg);
}

/* The C library's open(): /dev/net/tun is a socketpair, so no tap (and
 * no root) is needed and frames stay in this process. */
int open(const char *path, int flags, ...)
{
	mode_t mode = 0;
	int sv[2];

	if (flags & O_CREAT || (flags & O_TMPFILE) == O_TMPFILE) {
		va_list ap;

		va_start(ap, flags);
		mode = va_arg(ap, mode_t);
		va_end(ap);
	}
	if (strcmp(path, "/dev/net/tun"))
		return (int)syscall(SYS_openat, AT_FDCWD, path, flags, mode);
	if (socketpair(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) < 0)
		return -1;
	fake_tap_peer = sv[1]; /* the harness takes it */
	return sv[0];
}

static void fake_cleanup(void)
{
	char path[128];

	unlink(fake_image);
	snprintf(path, sizeof(path), "%s/v0.sock_1024", fake_dir);
	unlink(path);
	rmdir(fake_dir);
}

/* Once per process: the directory and a 16-sector disk image. */
static void fake_init(void)
{
	uint8_t sec[512];
	int fd;

	if (!mkdtemp(fake_dir))
		abort();
	snprintf(fake_image, sizeof(fake_image), "%s/disk.img", fake_dir);
	fd = open(fake_image, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		abort();
	for (int i = 0; i < 16; i++) {
		memset(sec, i + 1, sizeof(sec));
		if (write(fd, sec, sizeof(sec)) != (ssize_t)sizeof(sec))
			abort();
	}
	close(fd);
	atexit(fake_cleanup);
}

static struct vm *fake_vm_new(uint8_t *ram, size_t size)
{
	struct vm *vm = calloc(1, sizeof(*vm));

	if (!vm)
		abort();
	vm->vm_fd = FAKE_VM_FD;
	vm->kvm_fd = vm->stopfd = -1;
	vm->pio.name = "pio";
	vm->mmio.name = "mmio";
	if (evloop_init(&vm->loop))
		abort();
	vm->mem.base = ram;
	vm->mem.size = vm->mem.low_size = size;
	vm->mem.fd = -1;
	return vm;
}

static void fake_vm_free(struct vm *vm)
{
	while (vm->nr_devices) {
		struct device *d = &vm->devices[--vm->nr_devices];

		if (d->ops->destroy)
			d->ops->destroy(d->priv);
	}
	evloop_destroy(&vm->loop);
	free(vm);
}

/* Build device `kind` as the VM's first; `n` tells apart the vsock
 * sockets of VMs alive at once. */
static int fake_dev_create(struct vm *vm, enum fake_dev kind, unsigned n)
{
	char path[128];
	struct vmctl *ctl;

	switch (kind) {
	case FAKE_RNG:
		return virtio_rng_create(vm);
	case FAKE_BLK:
		return virtio_blk_create(
		    vm, &(struct virtio_blk_opts){.path = fake_image, .overlay_dir = fake_dir});
	case FAKE_NET:
		return virtio_net_create(
		    vm, &(struct virtio_net_opts){"fuzz0", {0x52, 0x54, 0, 0, 0, 1}});
	case FAKE_VSOCK:
		snprintf(path, sizeof(path), "%s/v%u.sock", fake_dir, n);
		return virtio_vsock_create(vm, &(struct virtio_vsock_opts){3, path});
	case FAKE_SERIAL:
		return serial_create(vm, &(struct serial_opts){.out_fd = -1, .in_fd = -1});
	case FAKE_I8042:
		return i8042_create(vm);
	case FAKE_VMCTL:
		return vmctl_create(vm, -1, &ctl);
	}
	return -EINVAL;
}

/* Device 0's state; aborts where saving fails (it cannot, for a device a
 * guest drove: that would be a snapshot lost). */
static struct sbuf fake_save(struct vm *vm)
{
	struct device *d = &vm->devices[0];
	struct sbuf b = {0};

	if (d->ops->save(d->priv, &b) || b.oom)
		__builtin_trap();
	return b;
}

static int fake_restore(struct vm *vm, const uint8_t *blob, size_t len)
{
	struct device *d = &vm->devices[0];

	return d->ops->restore(d->priv, blob, len);
}

/* ---- Counting the log ----
 *
 * Library code logs with fprintf(stderr): while a harness runs the
 * devices, stderr is a stream that counts lines and writes nothing. */
static unsigned long fake_log_lines;
static FILE *fake_stderr;

static ssize_t fake_log_write(void *cookie, const char *buf, size_t n)
{
	(void)cookie;
	for (size_t i = 0; i < n; i++)
		fake_log_lines += buf[i] == '\n';
	return (ssize_t)n;
}

static void fake_log_capture(void)
{
	static FILE *counter;

	if (!counter) {
		counter = fopencookie(NULL, "w", (cookie_io_functions_t){.write = fake_log_write});
		if (!counter)
			abort();
		setvbuf(counter, NULL, _IONBF, 0);
	}
	fake_stderr = stderr;
	stderr = counter;
	fake_log_lines = 0;
}

static void fake_log_release(void)
{
	stderr = fake_stderr;
}

#endif
