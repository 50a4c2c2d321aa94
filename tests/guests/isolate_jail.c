/* Devices in a jailed child (tests/vmm/cases/isolate_jail.sh).
 *
 * Rings the warm doorbell with no driver set up; once restored as child N
 * it drives every device from scratch (reset, queues), so the VMM's whole
 * runtime path runs under the seccomp jail:
 *   virtio-rng    32 bytes, not all zero;
 *   virtio-blk    sector 0 holds "FORKD-ISO-DISK"; sector 1 is written with
 *                 the child's index and read back (the overlay);
 *   virtio-vsock  connects to host port 5000 (the VMM connects a Unix
 *                 socket), sends "hello from child N\n"; meanwhile the host
 *                 connects to guest port 1234, which this guest refuses
 *                 (OP_RST; the VMM accepted the client and closes it); then
 *                 waits for "ok N\n" and shuts the connection down.
 * Prints "isolate_jail: child N: rng blk vsock ok" and powers off. */
#include "rt/apic.h"
#include "rt/guest.h"
#include "rt/virtio.h"

#define VMCTL	     0x610
#define HOST_CID     2
#define HDR_LEN	     44
#define RX_BUFS	     8
#define RX_BUF_SIZE  (HDR_LEN + 512)
#define OP_REQUEST   1
#define OP_RESPONSE  2
#define OP_RST	     3
#define OP_SHUTDOWN  4
#define OP_RW	     5
#define OP_CREDIT_UP 6
#define OP_CREDIT_RQ 7
#define LOCAL_PORT   40000
#define HOST_PORT    5000

struct blk_hdr {
	uint32_t type, reserved;
	uint64_t sector;
};

static struct vdev rng, blk, vs;
static struct vq rngq, blkq, rxq, txq, evq;
static uint8_t rxbuf[RX_BUFS][RX_BUF_SIZE], evbuf[8];
static uint8_t sector[512];
static struct virtio_vsock_hdr txhdr;
static uint64_t cid;
static uint32_t fwd_cnt, index_;
static bool connected, reset;
static unsigned refused;
static char line[64];
static unsigned line_len;

static void do_rng(void)
{
	uint8_t buf[32];
	struct vq_buf b = {buf, sizeof(buf), true};
	unsigned nz = 0;

	CHECK(virtio_find(VIRTIO_ID_RNG, 0, &rng) >= 0);
	CHECK(virtio_init(&rng, 0) == 0);
	CHECK(virtio_queue_setup(&rng, 0, &rngq, 16) == 0);
	virtio_driver_ok(&rng);
	memset(buf, 0, sizeof(buf));
	CHECK(vq_transfer(&rng, &rngq, &b, 1) == sizeof(buf));
	for (unsigned i = 0; i < sizeof(buf); i++)
		nz += buf[i] != 0;
	CHECK(nz > 0);
}

static uint8_t blk_io(uint32_t type, uint64_t sec)
{
	struct blk_hdr h = {type, 0, sec};
	uint8_t status = 0xff;
	struct vq_buf c[3] = {
	    {&h, sizeof(h), false}, {sector, sizeof(sector), type == 0}, {&status, 1, true}};

	CHECK(vq_transfer(&blk, &blkq, c, 3) >= 1);
	return status;
}

static void do_blk(void)
{
	CHECK(virtio_find(VIRTIO_ID_BLOCK, 0, &blk) >= 0);
	CHECK(virtio_init(&blk, 0) == 0);
	CHECK(virtio_queue_setup(&blk, 0, &blkq, 16) == 0);
	virtio_driver_ok(&blk);
	CHECK(blk_io(0, 0) == 0);
	CHECK(memcmp(sector, "FORKD-ISO-DISK", 14) == 0);
	memset(sector, 0, sizeof(sector));
	memcpy(sector, "child ", 6);
	sector[6] = (uint8_t)('0' + index_ % 10);
	CHECK(blk_io(1, 1) == 0);
	memset(sector, 0, sizeof(sector));
	CHECK(blk_io(0, 1) == 0);
	CHECK(memcmp(sector, "child ", 6) == 0 && sector[6] == '0' + index_ % 10);
}

static void rx_add(unsigned i)
{
	struct vq_buf b = {rxbuf[i], RX_BUF_SIZE, true};

	CHECK(vq_add(&rxq, &b, 1) >= 0);
}

static void send_pkt(uint32_t sport, uint32_t dport, uint16_t op, uint32_t flags, const void *data,
		     uint32_t len)
{
	struct vq_buf b[2] = {{&txhdr, HDR_LEN, false}, {(void *)data, len, false}};

	txhdr = (struct virtio_vsock_hdr){.src_cid = cid,
					  .dst_cid = HOST_CID,
					  .src_port = sport,
					  .dst_port = dport,
					  .len = len,
					  .type = 1,
					  .op = op,
					  .flags = flags,
					  .buf_alloc = 4096,
					  .fwd_cnt = fwd_cnt};
	CHECK(vq_transfer(&vs, &txq, b, len ? 2 : 1) == 0);
}

static void poll_once(void)
{
	uint32_t len;
	int id = vq_wait(&vs, &rxq, &len);
	struct virtio_vsock_hdr h;

	CHECK(id >= 0 && id < RX_BUFS);
	CHECK(len >= HDR_LEN && len <= RX_BUF_SIZE);
	memcpy(&h, rxbuf[id], HDR_LEN);
	CHECK(h.len == len - HDR_LEN);
	if (h.op == OP_REQUEST) {
		/* Nobody listens in this guest: refuse (§5.10.6.4). */
		send_pkt(h.dst_port, h.src_port, OP_RST, 0, 0, 0);
		refused++;
	} else if (h.dst_port == LOCAL_PORT && h.src_port == HOST_PORT) {
		if (h.op == OP_RESPONSE)
			connected = true;
		else if (h.op == OP_RST)
			reset = true;
		else if (h.op == OP_CREDIT_RQ)
			send_pkt(LOCAL_PORT, HOST_PORT, OP_CREDIT_UP, 0, 0, 0);
		else if (h.op == OP_RW) {
			CHECK(line_len + h.len < sizeof(line));
			memcpy(line + line_len, rxbuf[id] + HDR_LEN, h.len);
			line_len += h.len;
			line[line_len] = 0;
			fwd_cnt += h.len;
		}
	}
	rx_add((unsigned)id);
	vq_kick(&vs, &rxq);
}

static void do_vsock(void)
{
	char hello[] = "hello from child 0\n", want[] = "ok 0\n";

	CHECK(virtio_find(VIRTIO_ID_VSOCK, 0, &vs) >= 0);
	virtio_config_read(&vs, 0, &cid, 8);
	CHECK(virtio_init(&vs, 0) == 0);
	CHECK(virtio_queue_setup(&vs, 0, &rxq, 16) == 0);
	CHECK(virtio_queue_setup(&vs, 1, &txq, 16) == 0);
	CHECK(virtio_queue_setup(&vs, 2, &evq, 4) == 0);
	virtio_irq_enable(&vs);
	virtio_driver_ok(&vs);
	for (unsigned i = 0; i < RX_BUFS; i++)
		rx_add(i);
	vq_kick(&vs, &rxq);
	{
		struct vq_buf b = {evbuf, sizeof(evbuf), true};

		CHECK(vq_add(&evq, &b, 1) >= 0);
		vq_kick(&vs, &evq);
	}
	send_pkt(LOCAL_PORT, HOST_PORT, OP_REQUEST, 0, 0, 0);
	while (!connected && !reset)
		poll_once();
	CHECK(connected);
	hello[sizeof(hello) - 3] = (char)('0' + index_ % 10);
	want[3] = (char)('0' + index_ % 10);
	send_pkt(LOCAL_PORT, HOST_PORT, OP_RW, 0, hello, sizeof(hello) - 1);
	while (!reset && !(line_len && line[line_len - 1] == '\n'))
		poll_once();
	CHECK(memcmp(line, want, sizeof(want)) == 0);
	CHECK(refused >= 1);
	send_pkt(LOCAL_PORT, HOST_PORT, OP_SHUTDOWN, 3, 0, 0);
	while (!reset)
		poll_once();
}

int main(void);
int main(void)
{
	uint64_t t0;

	idt_init();
	puts_("isolate_jail: warm\n");
	outl(VMCTL, 1);
	t0 = rdtsc();
	while (inl(VMCTL + 4) == 0) {
		cpu_relax();
		if (rdtsc() - t0 > 20000000000ULL) {
			puts_("isolate_jail: never restored (run it with forkd snapshot/fork)\n");
			guest_exit(5);
		}
	}
	index_ = inl(VMCTL + 8);
	do_rng();
	do_blk();
	do_vsock();
	puts_("isolate_jail: child ");
	put_dec(index_);
	puts_(": rng blk vsock ok\n");
	return 0;
}
