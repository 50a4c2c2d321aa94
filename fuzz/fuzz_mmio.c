/* libFuzzer harness: each virtio-mmio device (rng, blk, net, vsock) driven
 * through its register window as a hostile guest drives it
 * (devices/virtio/mmio.h), with its real host back-end (fake_vm.h).
 *
 * Input: a header (which device, how many operations), the operations,
 * then the guest's RAM, where the guest puts its rings and buffers
 * wherever it likes. An operation is a register access of any offset and
 * size 1..8, a store into RAM (the guest adding buffers between kicks), a
 * host-side event (a frame arriving on the tap; a vsock client connecting,
 * writing or closing), a turn of the event loop, or a driver reset.
 *
 * Checked: registers a driver may not read read as 0, the identity
 * registers never change; a reset (Status 0) puts the transport and the
 * device back where creation left them; the state a guest leaves behind
 * is one restore accepts (into a new device of the kind, same RAM); and
 * the log stays bounded however long the guest keeps failing requests. */
#include <poll.h>
#include <stdint.h>
#include <sys/un.h>

#include "fake_vm.h"

#define RAM_SIZE    (64 * 1024)
#define MAX_OPS	    1024
#define NR_CLIENTS  8
#define GUEST_PORT  1024 /* a host listener for guest-initiated connections */
#define MMIO_WINDOW 0x1000

/* Registers, virtio 1.2 §4.2.2 */
#define R_MAGIC		0x000
#define R_VERSION	0x004
#define R_DEVICE_ID	0x008
#define R_VENDOR_ID	0x00c
#define R_DEVICE_FEAT	0x010
#define R_DEVICE_FEAT_S 0x014
#define R_QUEUE_SEL	0x030
#define R_QUEUE_NUM_MAX 0x034
#define R_QUEUE_READY	0x044
#define R_INT_STATUS	0x060
#define R_STATUS	0x070
#define R_CONFIG_GEN	0x0fc
#define R_CONFIG	0x100

/* The transport's blob (docs/FORMAT.md, "Device state"): the error count
 * is a statistic a reset keeps; the queues start at byte 52, 34 each. */
#define T_ERRORS      44
#define T_QUEUES      52
#define T_DEV_LEN(nq) (T_QUEUES + (nq)*34)

static const uint32_t device_ids[FAKE_NR_VIRTIO] = {VIRTIO_ID_RNG, VIRTIO_ID_BLOCK, VIRTIO_ID_NET,
						    VIRTIO_ID_VSOCK};

struct header {
	uint8_t device;
	uint8_t pad;
	uint16_t nr_ops;
};

enum op_kind { OP_WRITE, OP_WRITE2, OP_READ, OP_POKE, OP_HOST, OP_LOOP, OP_RESET, OP_NR };

struct op {
	uint8_t kind, len;
	uint16_t off;
	uint32_t val;
};

/* One input's machine and what it started from. */
struct run {
	struct vm *vm;
	enum fake_dev kind;
	uint64_t base;
	int tap;
	int clients[NR_CLIENTS];
	struct sbuf initial;   /* device 0's state right after creation */
	uint8_t config0[64];   /* its config space then */
	uint32_t features0[2]; /* DeviceFeatures then */
};

static uint8_t ram[RAM_SIZE], ram2[RAM_SIZE];
static int guest_listener = -1;

static void mmio_rw(struct run *r, bool write, uint64_t off, void *v, unsigned len)
{
	if (write)
		(void)bus_write(&r->vm->mmio, r->base + off, v, len);
	else
		(void)bus_read(&r->vm->mmio, r->base + off, v, len);
}

static uint32_t rd32(struct run *r, uint64_t off)
{
	uint32_t v = 0;

	mmio_rw(r, false, off, &v, 4);
	return v;
}

static void wr32(struct run *r, uint64_t off, uint32_t v)
{
	mmio_rw(r, true, off, &v, 4);
}

/* What a read at off of len bytes may return; traps on anything else. */
static void check_read(struct run *r, uint64_t off, unsigned len, uint64_t v)
{
	struct virtio_dev *vdev = r->vm->devices[0].priv;
	unsigned nq = fake_nr_queues[r->kind];

	if (off + len > MMIO_WINDOW)
		return; /* not (all) the device's: the bus answers */
	if (off >= R_CONFIG) {
		if (off - R_CONFIG + len > vdev->config_size && v)
			__builtin_trap(); /* past config space */
		return;
	}
	if (len != 4) {
		if (v)
			__builtin_trap(); /* registers are 32-bit */
		return;
	}
	switch (off) {
	case R_MAGIC:
		if (v != 0x74726976)
			__builtin_trap();
		break;
	case R_VERSION:
		if (v != 2)
			__builtin_trap();
		break;
	case R_DEVICE_ID:
		if (v != device_ids[r->kind])
			__builtin_trap();
		break;
	case R_VENDOR_ID:
	case R_DEVICE_FEAT:
	case R_CONFIG_GEN:
		break;
	case R_QUEUE_NUM_MAX:
		if (vdev->queue_sel >= nq ? v != 0 : v != vdev->ops->queue_max)
			__builtin_trap();
		break;
	case R_QUEUE_READY:
		if (v > 1 || (vdev->queue_sel >= nq && v))
			__builtin_trap();
		break;
	case R_INT_STATUS:
		if (v & ~(uint64_t)(VIRTIO_INT_USED | VIRTIO_INT_CONFIG))
			__builtin_trap();
		break;
	case R_STATUS:
		if (v & ~(uint64_t)VIRTIO_STATUS_ALL)
			__builtin_trap();
		break;
	default:
		if (v)
			__builtin_trap(); /* write-only or unknown */
	}
}

static void read_config(struct run *r, uint8_t *out)
{
	for (unsigned i = 0; i < 64; i++) {
		out[i] = 0;
		mmio_rw(r, false, R_CONFIG + i, &out[i], 1);
	}
}

/* Status 0, then everything a driver sees, and the saved state, is as
 * creation left it. */
static void reset_and_check(struct run *r)
{
	size_t upto = r->kind == FAKE_BLK ? T_DEV_LEN(1) : r->initial.len;
	uint8_t config[64];
	struct sbuf now;

	wr32(r, R_STATUS, 0);
	if (rd32(r, R_STATUS) || rd32(r, R_INT_STATUS) || rd32(r, R_QUEUE_SEL))
		__builtin_trap();
	for (unsigned q = 0; q < VIRTIO_MAX_QUEUES; q++) {
		wr32(r, R_QUEUE_SEL, q);
		if (rd32(r, R_QUEUE_READY))
			__builtin_trap();
	}
	wr32(r, R_QUEUE_SEL, 0);
	for (unsigned sel = 0; sel < 2; sel++) {
		wr32(r, R_DEVICE_FEAT_S, sel);
		if (rd32(r, R_DEVICE_FEAT) != r->features0[sel])
			__builtin_trap();
	}
	wr32(r, R_DEVICE_FEAT_S, 0);
	read_config(r, config);
	if (memcmp(config, r->config0, sizeof(config)))
		__builtin_trap();
	now = fake_save(r->vm);
	if (now.len < upto || memcmp(now.data, r->initial.data, T_ERRORS) ||
	    memcmp(now.data + T_ERRORS + 8, r->initial.data + T_ERRORS + 8, upto - T_ERRORS - 8))
		__builtin_trap();
	sbuf_free(&now);
}

static void client_add(struct run *r, int fd)
{
	for (unsigned i = 0; i < NR_CLIENTS; i++) {
		if (r->clients[i] < 0) {
			r->clients[i] = fd;
			return;
		}
	}
	close(fd);
}

/* A vsock client of the device's socket, which sends its CONNECT line
 * (well-formed, or bytes from RAM). */
static void vsock_client(struct run *r, const struct op *o)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	char line[32];
	int fd, n;

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/v0.sock", fake_dir);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		close(fd);
		return;
	}
	if (o->off & 1) {
		(void)!send(fd, ram + (o->val % (RAM_SIZE - 32)), 1 + o->off % 31, MSG_NOSIGNAL);
	} else {
		n = snprintf(line, sizeof(line), "CONNECT %u\n", o->val);
		(void)!send(fd, line, (size_t)n, MSG_NOSIGNAL);
	}
	client_add(r, fd);
}

/* The host side moves: bytes from RAM (the input) as the data. */
static void host_event(struct run *r, const struct op *o)
{
	const uint8_t *p = ram + (o->off % (RAM_SIZE / 2));
	size_t n = o->val % (RAM_SIZE / 2);
	int *c = &r->clients[o->off % NR_CLIENTS];
	int fd;

	if (r->kind == FAKE_NET) {
		(void)!send(r->tap, p, n, MSG_DONTWAIT | MSG_NOSIGNAL);
		return;
	}
	if (r->kind != FAKE_VSOCK)
		return;
	switch (o->len % 5) {
	case 0:
		vsock_client(r, o);
		break;
	case 1:
		if (*c >= 0)
			(void)!send(*c, p, n, MSG_DONTWAIT | MSG_NOSIGNAL);
		break;
	case 2:
		if (*c >= 0 && (o->val & 1)) {
			shutdown(*c, SHUT_WR);
		} else if (*c >= 0) {
			close(*c);
			*c = -1;
		}
		break;
	case 3:
		/* What the guest connected to: take it, as a host program. */
		fd = accept4(guest_listener, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd >= 0)
			client_add(r, fd);
		break;
	case 4: {
		/* Every client reads what it was sent, so the device may
		 * flush what it holds. */
		static uint8_t sink[65536];

		for (unsigned i = 0; i < NR_CLIENTS; i++)
			if (r->clients[i] >= 0)
				(void)!recv(r->clients[i], sink, sizeof(sink), MSG_DONTWAIT);
		break;
	}
	}
}

static void run_op(struct run *r, const struct op *o)
{
	uint64_t v = o->val | (uint64_t)o->val << 32;
	unsigned len = 1 + o->len % 8;
	uint64_t off = o->off % (MMIO_WINDOW + 0x100);

	switch ((enum op_kind)(o->kind % OP_NR)) {
	case OP_WRITE:
		len = 4; /* most driver writes: a register */
		off &= ~3ULL;
		/* fall through */
	case OP_WRITE2:
		mmio_rw(r, true, off, &v, len);
		break;
	case OP_READ:
		v = 0;
		mmio_rw(r, false, off, &v, len);
		check_read(r, off, len, v);
		break;
	case OP_POKE: {
		size_t at = MIN((size_t)o->off * 2, (size_t)RAM_SIZE - 4);

		memcpy(ram + at, &o->val, 1 + o->len % 4);
		break;
	}
	case OP_HOST:
		host_event(r, o);
		break;
	case OP_LOOP:
		(void)evloop_dispatch(&r->vm->loop, 0);
		break;
	case OP_RESET:
		reset_and_check(r);
		break;
	case OP_NR:
		break;
	}
}

/* What a snapshot taken now would hold must restore into a new device. */
static void check_restorable(struct run *r)
{
	struct sbuf blob = fake_save(r->vm);
	struct vm *vm2 = fake_vm_new(ram2, RAM_SIZE);

	memcpy(ram2, ram, RAM_SIZE);
	if (fake_dev_create(vm2, r->kind, 1))
		abort();
	log_error_clear();
	fake_log_capture(); /* its own rate limit: warnings for the same chains again */
	if (fake_restore(vm2, blob.data, blob.len)) {
		fake_log_release();
		fprintf(stderr, "restore refused the device's own state: %s\n", log_last_error());
		__builtin_trap();
	}
	fake_vm_free(vm2);
	fake_log_release();
	if (fake_tap_peer >= 0)
		close(fake_tap_peer);
	fake_tap_peer = -1;
	sbuf_free(&blob);
}

static void listen_guest_port(void)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/v0.sock_%u", fake_dir, GUEST_PORT);
	guest_listener = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (guest_listener < 0 || bind(guest_listener, (struct sockaddr *)&sa, sizeof(sa)) ||
	    listen(guest_listener, 16))
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct run r = {.tap = -1};
	struct header h;
	const uint8_t *ops;
	size_t nr_ops, rest;
	unsigned irq;

	if (guest_listener < 0) {
		log_set_level(LOG_INFO);
		fake_init();
		listen_guest_port();
	}
	if (size < sizeof(h))
		return 0;
	memcpy(&h, data, sizeof(h));
	nr_ops =
	    MIN((size_t)h.nr_ops, MIN((size - sizeof(h)) / sizeof(struct op), (size_t)MAX_OPS));
	ops = data + sizeof(h);
	rest = size - sizeof(h) - nr_ops * sizeof(struct op);
	memset(ram, 0, RAM_SIZE);
	memcpy(ram, ops + nr_ops * sizeof(struct op), MIN(rest, (size_t)RAM_SIZE));

	r.kind = (enum fake_dev)(h.device % FAKE_NR_VIRTIO);
	for (unsigned i = 0; i < NR_CLIENTS; i++)
		r.clients[i] = -1;
	r.vm = fake_vm_new(ram, RAM_SIZE);
	if (fake_dev_create(r.vm, r.kind, 0))
		abort();
	r.tap = fake_tap_peer;
	fake_tap_peer = -1;
	vm_virtio_slot(r.vm, 0, &r.base, &irq);
	r.initial = fake_save(r.vm);
	read_config(&r, r.config0);
	for (unsigned sel = 0; sel < 2; sel++) {
		wr32(&r, R_DEVICE_FEAT_S, sel);
		r.features0[sel] = rd32(&r, R_DEVICE_FEAT);
	}
	wr32(&r, R_DEVICE_FEAT_S, 0);

	fake_log_capture();
	for (size_t i = 0; i < nr_ops; i++) {
		struct op o;

		memcpy(&o, ops + i * sizeof(o), sizeof(o));
		run_op(&r, &o);
	}
	/* A guest failing request after request gets a bounded log: the
	 * transport's rate limit plus a line per kind of host I/O error. */
	fake_log_release();
	if (fake_log_lines > LOG_RATELIMIT_BURST + 4)
		__builtin_trap();
	check_restorable(&r);

	for (unsigned i = 0; i < NR_CLIENTS; i++)
		if (r.clients[i] >= 0)
			close(r.clients[i]);
	for (int fd; (fd = accept4(guest_listener, NULL, NULL, SOCK_CLOEXEC)) >= 0;)
		close(fd);
	sbuf_free(&r.initial);
	fake_vm_free(r.vm);
	if (r.tap >= 0)
		close(r.tap);
	return 0;
}
