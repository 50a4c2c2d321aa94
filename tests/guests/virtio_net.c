/* virtio-net through a real tap. The guest (addresses from the command
 * line, "fkt.ip=A.B.C.D fkt.host=A.B.C.D", default 10.42.0.2 and 10.42.0.1)
 * sends an ARP request for the host before it gives the device any
 * receive buffer, so the reply must wait rather than be dropped, and
 * checks the reply (receive polled). Then it pings the host (receive by
 * interrupt) and checks the echo reply: addresses, identifier, sequence,
 * payload and both checksums. ARP requests for the guest's address are
 * answered on the way. The host kernel on the other side of the tap does
 * the answering (tests/vmm/cases/virtio_net.sh). */
#include "rt/apic.h"
#include "rt/cmdline.h"
#include "rt/guest.h"
#include "rt/virtio.h"

#define VIRTIO_NET_F_MAC    5
#define VIRTIO_NET_F_STATUS 16
#define HDR_LEN		    12 /* virtio_net_hdr_v1 */
#define RX_BUFS		    8
#define RX_BUF_SIZE	    2048 /* >= 12 + 1514 (§5.1.6.3.1) */
#define MAX_FRAMES	    64	 /* frames looked at before giving up */

static struct vdev dev;
static struct vq rxq, txq;
static uint8_t rxbuf[RX_BUFS][RX_BUF_SIZE];
static uint8_t txbuf[HDR_LEN + 128], arpbuf[HDR_LEN + 60];
static uint8_t mac[6], host_mac[6];
static uint8_t my_ip[4] = {10, 42, 0, 2}, host_ip[4] = {10, 42, 0, 1};

static uint16_t be16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static void put_be16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

/* Internet checksum (RFC 1071). */
static uint16_t csum(const uint8_t *p, unsigned len)
{
	uint32_t s = 0;

	for (; len > 1; p += 2, len -= 2)
		s += be16(p);
	if (len)
		s += (uint32_t)p[0] << 8;
	while (s >> 16)
		s = (s & 0xffff) + (s >> 16);
	return (uint16_t)~s;
}

/* "a.b.c.d" at s; true when four numbers <= 255 were read. */
static bool parse_ip(const char *s, uint8_t ip[4])
{
	unsigned i, v;

	for (i = 0; i < 4; i++) {
		if (*s < '0' || *s > '9')
			return false;
		for (v = 0; *s >= '0' && *s <= '9'; s++)
			v = v * 10 + (unsigned)(*s - '0');
		if (v > 255 || (i < 3 && *s++ != '.'))
			return false;
		ip[i] = (uint8_t)v;
	}
	return true;
}

static void parse_cmdline(void)
{
	const char *s = (const char *)CMDLINE_ADDR;
	unsigned i;

	for (i = 0; s[i] && i < 4096; i++) {
		if (!memcmp(s + i, "fkt.ip=", 7))
			CHECK(parse_ip(s + i + 7, my_ip));
		if (!memcmp(s + i, "fkt.host=", 9))
			CHECK(parse_ip(s + i + 9, host_ip));
	}
}

static void rx_add(unsigned i)
{
	struct vq_buf b = {rxbuf[i], RX_BUF_SIZE, true};

	CHECK(vq_add(&rxq, &b, 1) >= 0);
}

static void send_frame(uint8_t *buf, unsigned len)
{
	struct vq_buf b = {buf, HDR_LEN + len, false};

	memset(buf, 0, HDR_LEN);
	CHECK(vq_transfer(&dev, &txq, &b, 1) == 0);
}

/* An ARP packet (Ethernet, IPv4) in frame f, padded to 60 bytes. */
static void arp_build(uint8_t *f, const uint8_t *dst, uint16_t op, const uint8_t *tha,
		      const uint8_t *tpa)
{
	uint8_t *a = f + 14;

	memcpy(f, dst, 6);
	memcpy(f + 6, mac, 6);
	put_be16(f + 12, 0x0806);
	put_be16(a, 1);		 /* Ethernet */
	put_be16(a + 2, 0x0800); /* IPv4 */
	a[4] = 6;
	a[5] = 4;
	put_be16(a + 6, op);
	memcpy(a + 8, mac, 6);
	memcpy(a + 14, my_ip, 4);
	memcpy(a + 18, tha, 6);
	memcpy(a + 24, tpa, 4);
	memset(a + 28, 0, 60 - 42);
}

/* The host asks who we are (if it did not learn it from our request). */
static void answer_arp(const uint8_t *f, unsigned len)
{
	const uint8_t *a = f + 14;

	if (len < 42 || be16(f + 12) != 0x0806 || be16(a + 6) != 1 || memcmp(a + 24, my_ip, 4))
		return;
	arp_build(arpbuf + HDR_LEN, a + 8, 2, a + 8, a + 14);
	send_frame(arpbuf, 60);
}

typedef bool (*frame_match)(const uint8_t *f, unsigned len);

/* Receive frames until one matches; each buffer goes back to the device.
 * Frames the host sends on its own (IPv6 neighbour discovery...) are
 * skipped. Returns the buffer index holding the match (not re-added). */
static unsigned wait_frame(frame_match match, const char *what)
{
	unsigned n;

	for (n = 0; n < MAX_FRAMES; n++) {
		uint32_t len;
		int id = vq_wait(&dev, &rxq, &len);
		const uint8_t *f;

		if (id < 0) {
			puts_("virtio_net: no frame while waiting for ");
			puts_(what);
			puts_(id == -2 ? " (device needs reset)\n" : " (timeout)\n");
			guest_exit(2);
		}
		CHECK(id < RX_BUFS);
		CHECK(len > HDR_LEN && len <= RX_BUF_SIZE);
		f = rxbuf[id];
		/* No offloads: a zero header but for num_buffers = 1. */
		CHECK(f[0] == 0 && f[1] == 0 && f[10] == 1 && f[11] == 0);
		if (match(f + HDR_LEN, len - HDR_LEN))
			return (unsigned)id;
		answer_arp(f + HDR_LEN, len - HDR_LEN);
		rx_add((unsigned)id);
		vq_kick(&dev, &rxq);
	}
	puts_("virtio_net: too many unrelated frames\n");
	guest_exit(3);
}

static bool is_arp_reply(const uint8_t *f, unsigned len)
{
	const uint8_t *a = f + 14;

	return len >= 42 && be16(f + 12) == 0x0806 && be16(a + 6) == 2 &&
	       !memcmp(a + 14, host_ip, 4) && !memcmp(a + 24, my_ip, 4);
}

static void arp(void)
{
	static const uint8_t bcast[6] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, zero[6];
	uint8_t *f = txbuf + HDR_LEN, *a;
	unsigned id;

	unsigned i;

	/* Ask before there is any receive buffer: the reply must wait (in the
	 * tap, or read and held by forkd) until buffers arrive, not be lost. */
	arp_build(f, bcast, 1, zero, host_ip);
	send_frame(txbuf, 60);
	puts_("virtio_net: ARP request sent, no receive buffer yet\n");
	for (uint64_t t0 = rdtsc(); rdtsc() - t0 < 1000000000ULL;)
		cpu_relax();
	for (i = 0; i < RX_BUFS; i++)
		rx_add(i);
	vq_kick(&dev, &rxq);

	id = wait_frame(is_arp_reply, "the ARP reply");
	f = rxbuf[id] + HDR_LEN;
	a = f + 14;
	CHECK(!memcmp(f, mac, 6));	 /* unicast to us */
	CHECK(!memcmp(a + 18, mac, 6));	 /* target hardware address */
	CHECK(!memcmp(a + 8, f + 6, 6)); /* sender = frame source */
	CHECK(!(a[8] & 1));
	memcpy(host_mac, a + 8, 6);
	rx_add(id);
	vq_kick(&dev, &rxq);
	puts_("virtio_net: ARP reply from the host (it waited for buffers), its MAC learned\n");
}

#define PING_ID	  0x4b46
#define PING_SEQ  7
#define PING_DATA 32

static bool is_echo_reply(const uint8_t *f, unsigned len)
{
	const uint8_t *ip = f + 14, *icmp = ip + 20;

	return len >= 14 + 20 + 8 + PING_DATA && be16(f + 12) == 0x0800 && ip[0] == 0x45 &&
	       ip[9] == 1 && !memcmp(ip + 12, host_ip, 4) && icmp[0] == 0 &&
	       be16(icmp + 4) == PING_ID;
}

static void ping(void)
{
	uint8_t *f = txbuf + HDR_LEN, *ip = f + 14, *icmp = ip + 20;
	const uint8_t *r, *rip, *ricmp;
	unsigned i, id, total = 20 + 8 + PING_DATA;

	memcpy(f, host_mac, 6);
	memcpy(f + 6, mac, 6);
	put_be16(f + 12, 0x0800);
	memset(ip, 0, 20);
	ip[0] = 0x45;
	put_be16(ip + 2, (uint16_t)total);
	put_be16(ip + 4, 0x1234);
	ip[8] = 64;
	ip[9] = 1; /* ICMP */
	memcpy(ip + 12, my_ip, 4);
	memcpy(ip + 16, host_ip, 4);
	put_be16(ip + 10, csum(ip, 20));
	memset(icmp, 0, 8);
	icmp[0] = 8; /* echo request */
	put_be16(icmp + 4, PING_ID);
	put_be16(icmp + 6, PING_SEQ);
	for (i = 0; i < PING_DATA; i++)
		icmp[8 + i] = (uint8_t)(0xa0 + i);
	put_be16(icmp + 2, csum(icmp, 8 + PING_DATA));
	send_frame(txbuf, 14 + total);
	puts_("virtio_net: ICMP echo request sent\n");

	id = wait_frame(is_echo_reply, "the echo reply");
	r = rxbuf[id] + HDR_LEN;
	rip = r + 14;
	ricmp = rip + 20;
	CHECK(!memcmp(r, mac, 6));
	CHECK(!memcmp(r + 6, host_mac, 6));
	CHECK(!memcmp(rip + 16, my_ip, 4));
	CHECK(be16(rip + 2) == total);
	CHECK(csum(rip, 20) == 0);
	CHECK(csum(ricmp, 8 + PING_DATA) == 0);
	CHECK(be16(ricmp + 6) == PING_SEQ);
	CHECK(!memcmp(ricmp + 8, icmp + 8, PING_DATA));
	rx_add(id);
	vq_kick(&dev, &rxq);
	puts_("virtio_net: echo reply checked (addresses, id, seq, payload, checksums)\n");
}

int main(void);
int main(void)
{
	uint16_t status;
	unsigned i;
	int slot;

	idt_init();
	parse_cmdline();
	slot = virtio_find(VIRTIO_ID_NET, 0, &dev);
	CHECK(slot >= 0);
	CHECK(virtio_init(&dev, (1ULL << VIRTIO_NET_F_MAC) | (1ULL << VIRTIO_NET_F_STATUS)) == 0);
	CHECK(dev.features & (1ULL << VIRTIO_NET_F_MAC));
	CHECK(dev.features & (1ULL << VIRTIO_NET_F_STATUS));
	virtio_config_read(&dev, 0, mac, 6);
	virtio_config_read(&dev, 6, &status, 2);
	CHECK(status & 1); /* VIRTIO_NET_S_LINK_UP */
	CHECK(!(mac[0] & 1));
	puts_("virtio_net: device in slot ");
	put_dec((uint64_t)slot);
	puts_(", MAC ");
	for (i = 0; i < 6; i++) {
		putc_("0123456789abcdef"[mac[i] >> 4]);
		putc_("0123456789abcdef"[mac[i] & 15]);
		putc_(i < 5 ? ':' : '\n');
	}
	CHECK(virtio_queue_setup(&dev, 0, &rxq, RX_BUFS) == 0);
	CHECK(virtio_queue_setup(&dev, 1, &txq, 8) == 0);
	virtio_driver_ok(&dev);

	arp();
	virtio_irq_enable(&dev);
	ping();
	CHECK(dev.irqs >= 1);
	CHECK(!(virtio_status(&dev) & VIRTIO_STATUS_NEEDS_RESET));
	puts_("virtio_net: interrupts taken: ");
	put_dec(dev.irqs);
	putc_('\n');
	return 0;
}
