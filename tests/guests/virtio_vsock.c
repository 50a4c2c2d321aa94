/* virtio-vsock end to end, with a minimal stream-socket stack in the guest
 * (virtio 1.2 §5.10.6). The host side is tests/vmm/cases/virtio_vsock.sh.
 *
 *   A  host to guest: the guest listens on port 1234; the host connects
 *      through forkd's Unix socket ("CONNECT 1234"), sends a line and gets
 *      it back uppercased, then streams STREAM_LEN pattern bytes that the
 *      guest checks byte for byte while granting credit (its buf_alloc is
 *      small, so the device must wait for OP_CREDIT_UPDATEs), answers
 *      "GOT <n> OK", and sees the host's close as OP_SHUTDOWN.
 *   B  guest to host: the guest connects to CID 2 port 5000 (a host program
 *      on "<uds>_5000"), asks for credit (OP_CREDIT_REQUEST), sends a line
 *      and checks the answer, then streams STREAM_LEN pattern bytes within
 *      the device's credit; the host checks them and answers "GOT <n> OK";
 *      the guest shuts down and waits for the device's OP_RST.
 *   C  refusals: a request to a port nobody listens on, and data on a
 *      connection that does not exist, are both answered with OP_RST.
 * Receive is interrupt-driven; forkd's --timeout-secs bounds every wait. */
#include "rt/apic.h"
#include "rt/guest.h"
#include "rt/virtio.h"

#define HOST_CID 2
#define HDR_LEN	 44

#define OP_REQUEST	  1
#define OP_RESPONSE	  2
#define OP_RST		  3
#define OP_SHUTDOWN	  4
#define OP_RW		  5
#define OP_CREDIT_UPDATE  6
#define OP_CREDIT_REQUEST 7
#define SHUT_RCV	  1
#define SHUT_SEND	  2

#define RX_BUFS	    8
#define RX_BUF_SIZE (HDR_LEN + 4096)
#define CHUNK	    4096
#define BUF_ALLOC   8192 /* what this guest advertises: tight on purpose */
#define STREAM_LEN  300000

struct conn {
	uint32_t local_port, peer_port;
	bool open, connected, reset;
	uint32_t peer_shut;
	/* our receive side */
	uint32_t fwd_cnt, fwd_sent;
	char line[64];
	unsigned line_len;
	bool stream;	     /* incoming bytes are the pattern, not a line */
	uint32_t stream_off; /* pattern bytes checked so far */
	/* our send side */
	uint32_t tx_cnt, peer_buf_alloc, peer_fwd_cnt;
	unsigned updates; /* OP_CREDIT_UPDATEs received */
};

static struct vdev dev;
static struct vq rxq, txq, evq;
static uint8_t rxbuf[RX_BUFS][RX_BUF_SIZE];
static uint8_t evbuf[4][8];
static uint8_t txdata[CHUNK];
static struct virtio_vsock_hdr txhdr;
static uint64_t cid;
static struct conn ca, cb, cp, cq; /* A, B, and C's two probes */
static struct conn *const conns[] = {&ca, &cb, &cp, &cq};

static uint8_t pattern(uint32_t k)
{
	return (uint8_t)(k * 7 + (k >> 9));
}

static void rx_add(unsigned i)
{
	struct vq_buf b = {rxbuf[i], RX_BUF_SIZE, true};

	CHECK(vq_add(&rxq, &b, 1) >= 0);
}

static void send_pkt(struct conn *c, uint16_t op, uint32_t flags, const void *data, uint32_t len)
{
	struct vq_buf b[2] = {{&txhdr, HDR_LEN, false}, {(void *)data, len, false}};

	txhdr = (struct virtio_vsock_hdr){.src_cid = cid,
					  .dst_cid = HOST_CID,
					  .src_port = c->local_port,
					  .dst_port = c->peer_port,
					  .len = len,
					  .type = 1,
					  .op = op,
					  .flags = flags,
					  .buf_alloc = BUF_ALLOC,
					  .fwd_cnt = c->fwd_cnt};
	c->fwd_sent = c->fwd_cnt;
	CHECK(vq_transfer(&dev, &txq, b, len ? 2 : 1) == 0);
	if (op == OP_RW)
		c->tx_cnt += len;
}

static void send_line(struct conn *c, const char *s)
{
	uint32_t n = 0;

	while (s[n])
		n++;
	send_pkt(c, OP_RW, 0, s, n);
}

static struct conn *find(const struct virtio_vsock_hdr *h)
{
	unsigned i;

	for (i = 0; i < sizeof(conns) / sizeof(conns[0]); i++)
		if (conns[i]->open && conns[i]->local_port == h->dst_port &&
		    conns[i]->peer_port == h->src_port)
			return conns[i];
	return 0;
}

static void on_data(struct conn *c, const uint8_t *p, uint32_t len)
{
	uint32_t i;

	if (c->stream) {
		for (i = 0; i < len; i++)
			if (p[i] != pattern(c->stream_off + i)) {
				puts_("virtio_vsock: stream byte ");
				put_dec(c->stream_off + i);
				puts_(" is wrong\n");
				guest_exit(4);
			}
		c->stream_off += len;
	} else {
		CHECK(c->line_len + len <= sizeof(c->line) - 1);
		memcpy(c->line + c->line_len, p, len);
		c->line_len += len;
		c->line[c->line_len] = 0;
	}
	c->fwd_cnt += len;
	/* Tell the device about freed space before it runs out of credit. */
	if (c->fwd_cnt - c->fwd_sent >= BUF_ALLOC / 2)
		send_pkt(c, OP_CREDIT_UPDATE, 0, 0, 0);
}

/* Take one packet from the receive queue and act on it. */
static void poll_once(void)
{
	uint32_t len;
	int id = vq_wait(&dev, &rxq, &len);
	struct virtio_vsock_hdr h;
	struct conn *c;

	CHECK(id >= 0 && id < RX_BUFS);
	CHECK(len >= HDR_LEN && len <= RX_BUF_SIZE);
	memcpy(&h, rxbuf[id], HDR_LEN);
	CHECK(h.len == len - HDR_LEN);
	CHECK(h.src_cid == HOST_CID && h.dst_cid == cid && h.type == 1);
	c = find(&h);
	if (!c && h.op == OP_RST) {
		/* §5.10.6.4: a reset for a connection already gone. */
		rx_add((unsigned)id);
		vq_kick(&dev, &rxq);
		return;
	}
	if (h.op == OP_REQUEST && h.dst_port == 1234 && !ca.open) {
		/* A: accept the host's connection. */
		ca = (struct conn){.local_port = 1234, .peer_port = h.src_port, .open = true};
		c = &ca;
	}
	if (!c) {
		puts_("virtio_vsock: packet for no connection, op ");
		put_dec(h.op);
		putc_('\n');
		guest_exit(5);
	}
	c->peer_buf_alloc = h.buf_alloc;
	c->peer_fwd_cnt = h.fwd_cnt;
	switch (h.op) {
	case OP_REQUEST:
		CHECK(c == &ca && !ca.connected);
		CHECK(h.buf_alloc > 0);
		ca.connected = true;
		send_pkt(c, OP_RESPONSE, 0, 0, 0);
		break;
	case OP_RESPONSE:
		CHECK(!c->connected);
		c->connected = true;
		break;
	case OP_RST:
		c->reset = true;
		c->open = false;
		break;
	case OP_SHUTDOWN:
		c->peer_shut |= h.flags;
		break;
	case OP_RW:
		CHECK(c->connected && !(c->peer_shut & SHUT_SEND));
		/* The device must stay within the credit we gave: we consume at
		 * once, so what it has in flight is what it has not yet seen
		 * us consume, plus this packet. */
		CHECK(c->fwd_cnt - c->fwd_sent + h.len <= BUF_ALLOC);
		on_data(c, rxbuf[id] + HDR_LEN, h.len);
		break;
	case OP_CREDIT_UPDATE:
		c->updates++;
		break;
	case OP_CREDIT_REQUEST:
		send_pkt(c, OP_CREDIT_UPDATE, 0, 0, 0);
		break;
	default:
		CHECK(!"unknown op from the device");
	}
	rx_add((unsigned)id);
	vq_kick(&dev, &rxq);
}

static bool streq(const char *a, const char *b)
{
	while (*a && *a == *b)
		a++, b++;
	return *a == *b;
}

static bool has_line(const struct conn *c)
{
	return c->line_len && c->line[c->line_len - 1] == '\n';
}

static void wait_line(struct conn *c, const char *want)
{
	while (!has_line(c) && !c->reset)
		poll_once();
	CHECK(!c->reset);
	if (!streq(c->line, want)) {
		puts_("virtio_vsock: got line '");
		puts_(c->line);
		puts_("'\n");
		guest_exit(6);
	}
	c->line_len = 0;
}

static void phase_a(void)
{
	unsigned i;

	while (!ca.connected)
		poll_once();
	puts_("virtio_vsock: A: host connected to port 1234 from port ");
	put_dec(ca.peer_port);
	putc_('\n');
	while (!has_line(&ca))
		poll_once();
	CHECK(streq(ca.line, "hello from host\n"));
	for (i = 0; i < ca.line_len; i++)
		if (ca.line[i] >= 'a' && ca.line[i] <= 'z')
			ca.line[i] = (char)(ca.line[i] - 'a' + 'A');
	send_line(&ca, ca.line);
	ca.line_len = 0;
	puts_("virtio_vsock: A: line echoed uppercased\n");

	ca.stream = true;
	while (ca.stream_off < STREAM_LEN && !ca.reset)
		poll_once();
	CHECK(ca.stream_off == STREAM_LEN);
	ca.stream = false;
	send_line(&ca, "GOT 300000 OK\n");
	puts_("virtio_vsock: A: 300000 bytes from the host checked\n");
	while (!(ca.peer_shut & SHUT_SEND) && !ca.reset)
		poll_once();
	CHECK(!ca.reset && (ca.peer_shut & SHUT_SEND));
	send_pkt(&ca, OP_RST, 0, 0, 0);
	ca.open = false;
	puts_("virtio_vsock: A: host closed (OP_SHUTDOWN), reset sent\n");
}

static void phase_b(void)
{
	uint32_t sent = 0;

	cb = (struct conn){.local_port = 40000, .peer_port = 5000, .open = true};
	send_pkt(&cb, OP_REQUEST, 0, 0, 0);
	while (!cb.connected && !cb.reset)
		poll_once();
	CHECK(cb.connected);
	CHECK(cb.peer_buf_alloc > 0);
	puts_("virtio_vsock: B: connected to host port 5000, device buf_alloc ");
	put_dec(cb.peer_buf_alloc);
	putc_('\n');

	send_pkt(&cb, OP_CREDIT_REQUEST, 0, 0, 0);
	while (!cb.updates && !cb.reset)
		poll_once();
	CHECK(cb.updates == 1);

	send_line(&cb, "ping from guest\n");
	wait_line(&cb, "pong\n");
	puts_("virtio_vsock: B: ping answered\n");

	cb.updates = 0;
	while (sent < STREAM_LEN) {
		uint32_t credit = cb.peer_buf_alloc - (cb.tx_cnt - cb.peer_fwd_cnt);
		uint32_t n = STREAM_LEN - sent, i;

		CHECK(!cb.reset);
		CHECK(credit <= cb.peer_buf_alloc);
		if (!credit) {
			poll_once(); /* wait for the device's OP_CREDIT_UPDATE */
			continue;
		}
		if (n > CHUNK)
			n = CHUNK;
		if (n > credit)
			n = credit;
		for (i = 0; i < n; i++)
			txdata[i] = pattern(sent + i);
		send_pkt(&cb, OP_RW, 0, txdata, n);
		sent += n;
	}
	puts_("virtio_vsock: B: 300000 bytes sent within credit, ");
	put_dec(cb.updates);
	puts_(" credit updates from the device\n");
	CHECK(cb.updates >= 1); /* 300000 bytes > 64 KiB: the device had to top up */
	wait_line(&cb, "GOT 300000 OK\n");
	puts_("virtio_vsock: B: host confirmed the stream\n");

	send_pkt(&cb, OP_SHUTDOWN, SHUT_RCV | SHUT_SEND, 0, 0);
	while (!cb.reset)
		poll_once();
	puts_("virtio_vsock: B: shut down, device completed the close with OP_RST\n");
}

static void phase_c(void)
{
	cp = (struct conn){.local_port = 40001, .peer_port = 5001, .open = true};
	send_pkt(&cp, OP_REQUEST, 0, 0, 0);
	while (!cp.reset && !cp.connected)
		poll_once();
	CHECK(cp.reset && !cp.connected);
	puts_("virtio_vsock: C: request to a port with no host listener reset\n");

	cq = (struct conn){.local_port = 40002, .peer_port = 5000, .open = true, .connected = true};
	send_pkt(&cq, OP_RW, 0, "xyz", 3);
	while (!cq.reset)
		poll_once();
	puts_("virtio_vsock: C: data on an unknown connection reset\n");
}

int main(void);
int main(void)
{
	unsigned i;
	int slot;

	idt_init();
	/* Give the host client time to connect before the driver resets the
	 * device: its request must survive the reset (as when a host agent
	 * connects while a Linux guest is still booting). */
	for (uint64_t t0 = rdtsc(); rdtsc() - t0 < 1000000000ULL;)
		cpu_relax();
	slot = virtio_find(VIRTIO_ID_VSOCK, 0, &dev);
	CHECK(slot >= 0);
	CHECK(virtio_init(&dev, 0) == 0);
	virtio_config_read(&dev, 0, &cid, 8);
	puts_("virtio_vsock: device in slot ");
	put_dec((uint64_t)slot);
	puts_(", guest CID ");
	put_dec(cid);
	putc_('\n');
	CHECK(cid >= 3 && cid < 0xffffffffULL);
	CHECK(virtio_queue_setup(&dev, 0, &rxq, RX_BUFS) == 0);
	CHECK(virtio_queue_setup(&dev, 1, &txq, 8) == 0);
	CHECK(virtio_queue_setup(&dev, 2, &evq, 4) == 0);
	virtio_irq_enable(&dev);
	virtio_driver_ok(&dev);
	for (i = 0; i < RX_BUFS; i++)
		rx_add(i);
	vq_kick(&dev, &rxq);
	for (i = 0; i < 4; i++) {
		struct vq_buf b = {evbuf[i], sizeof(evbuf[i]), true};

		CHECK(vq_add(&evq, &b, 1) >= 0);
	}
	vq_kick(&dev, &evq);

	phase_a();
	phase_b();
	phase_c();
	CHECK(!(virtio_status(&dev) & VIRTIO_STATUS_NEEDS_RESET));
	return 0;
}
