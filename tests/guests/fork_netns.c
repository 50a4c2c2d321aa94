/* Forked children on the network, one namespace each (`forkd fork
 * --per-child-netns`, tests/vmm/cases/fork_netns.sh).
 *
 * The guest brings up virtio-net (receive buffers posted), rings forkd's
 * warm doorbell and is snapshotted there. Every child then, as 10.42.0.2:
 *   - asks for 10.42.0.1's MAC (ARP), again every ~0.1 s until answered;
 *   - sends the UDP datagram "forkd child <index>" (its vmctl index) to
 *     10.42.0.1:5555, again every ~0.1 s until a datagram from there
 *     comes back, which it prints ("fork_netns: reply '...'");
 *   - answers ARP requests for its own address on the way;
 * and powers off (status 0), or gives up after ~40 s (status 2). Since
 * every child has the same addresses and MAC, only its namespace tells
 * whose datagram a listener on that namespace's forkd-tap0 receives.
 * Booted without a snapshot it waits at the doorbell for ever. */
#include "rt/apic.h"
#include "rt/guest.h"
#include "rt/virtio.h"

#define VMCTL		    0x610
#define VIRTIO_NET_F_MAC    5
#define VIRTIO_NET_F_STATUS 16
#define HDR_LEN		    12 /* virtio_net_hdr_v1 */
#define RX_BUFS		    8
#define RX_BUF_SIZE	    2048
#define UDP_PORT	    5555
#define RETRY_TSC	    300000000ULL
#define GIVE_UP_TSC	    120000000000ULL

static struct vdev dev;
static struct vq rxq, txq;
static uint8_t rxbuf[RX_BUFS][RX_BUF_SIZE];
static uint8_t txbuf[HDR_LEN + 128];
static uint8_t mac[6], gw_mac[6];
static const uint8_t my_ip[4] = {10, 42, 0, 2}, gw_ip[4] = {10, 42, 0, 1};
static const uint8_t bcast[6] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};

static uint16_t be16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static void put_be16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

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

static void rx_add(unsigned i)
{
	struct vq_buf b = {rxbuf[i], RX_BUF_SIZE, true};

	CHECK(vq_add(&rxq, &b, 1) >= 0);
}

static void send_frame(unsigned len)
{
	struct vq_buf b = {txbuf, HDR_LEN + len, false};

	memset(txbuf, 0, HDR_LEN);
	CHECK(vq_transfer(&dev, &txq, &b, 1) == 0);
}

static void arp_send(const uint8_t *dst, uint16_t op, const uint8_t *tha, const uint8_t *tpa)
{
	uint8_t *f = txbuf + HDR_LEN, *a = f + 14;

	memcpy(f, dst, 6);
	memcpy(f + 6, mac, 6);
	put_be16(f + 12, 0x0806);
	put_be16(a, 1);
	put_be16(a + 2, 0x0800);
	a[4] = 6;
	a[5] = 4;
	put_be16(a + 6, op);
	memcpy(a + 8, mac, 6);
	memcpy(a + 14, my_ip, 4);
	memcpy(a + 18, tha, 6);
	memcpy(a + 24, tpa, 4);
	memset(a + 28, 0, 60 - 42);
	send_frame(60);
}

/* "forkd child <index>" to 10.42.0.1:5555 (UDP checksum 0: none). */
static void udp_send(uint32_t index)
{
	uint8_t *f = txbuf + HDR_LEN, *ip = f + 14, *udp = ip + 20, *data = udp + 8;
	char num[12];
	unsigned n = 0, len = 0, i = 12;

	do {
		num[--i] = (char)('0' + index % 10);
		index /= 10;
	} while (index);
	memcpy(data, "forkd child ", 12);
	len = 12;
	for (n = i; n < 12; n++)
		data[len++] = (uint8_t)num[n];
	memcpy(f, gw_mac, 6);
	memcpy(f + 6, mac, 6);
	put_be16(f + 12, 0x0800);
	memset(ip, 0, 20);
	ip[0] = 0x45;
	put_be16(ip + 2, (uint16_t)(20 + 8 + len));
	ip[8] = 64;
	ip[9] = 17;
	memcpy(ip + 12, my_ip, 4);
	memcpy(ip + 16, gw_ip, 4);
	put_be16(ip + 10, csum(ip, 20));
	put_be16(udp, 40000);
	put_be16(udp + 2, UDP_PORT);
	put_be16(udp + 4, (uint16_t)(8 + len));
	put_be16(udp + 6, 0);
	send_frame(14 + 20 + 8 + len);
}

/* One received frame. Returns true when it is the UDP answer. */
static bool on_frame(const uint8_t *f, unsigned len)
{
	const uint8_t *a = f + 14, *ip = f + 14;

	if (len >= 42 && be16(f + 12) == 0x0806) {
		if (be16(a + 6) == 1 && !memcmp(a + 24, my_ip, 4)) {
			uint8_t sha[6], spa[4];

			memcpy(sha, a + 8, 6);
			memcpy(spa, a + 14, 4);
			arp_send(sha, 2, sha, spa);
		} else if (be16(a + 6) == 2 && !memcmp(a + 14, gw_ip, 4) && !(a[8] & 1)) {
			memcpy(gw_mac, a + 8, 6);
		}
		return false;
	}
	if (len >= 14 + 28 && be16(f + 12) == 0x0800 && ip[0] == 0x45 && ip[9] == 17 &&
	    !memcmp(ip + 12, gw_ip, 4) && !memcmp(ip + 16, my_ip, 4) && be16(ip + 20) == UDP_PORT &&
	    be16(ip + 22) == 40000) {
		unsigned ulen = be16(ip + 24);

		if (ulen < 8 || 14 + 20 + ulen > len || ulen - 8 > 64)
			return false;
		puts_("fork_netns: reply '");
		for (unsigned i = 0; i < ulen - 8; i++) {
			char c = (char)ip[28 + i];

			putc_(c >= 0x20 && c < 0x7f ? c : '?');
		}
		puts_("'\n");
		return true;
	}
	return false;
}

static int talk(uint32_t index)
{
	uint64_t start = rdtsc(), next = start;
	bool have_gw = false;

	for (;;) {
		uint64_t now = rdtsc();
		uint32_t len;
		int id;

		if (now - start > GIVE_UP_TSC) {
			puts_(have_gw ? "fork_netns: no UDP reply, giving up\n"
				      : "fork_netns: no ARP reply from 10.42.0.1, giving up\n");
			return 2;
		}
		if (now >= next) {
			static const uint8_t zero[6];

			if (have_gw)
				udp_send(index);
			else
				arp_send(bcast, 1, zero, gw_ip);
			next = now + RETRY_TSC;
		}
		id = vq_poll(&rxq, &len);
		if (id < 0) {
			cpu_relax();
			continue;
		}
		CHECK(id < RX_BUFS);
		if (len > HDR_LEN && on_frame(rxbuf[id] + HDR_LEN, len - HDR_LEN))
			return 0;
		rx_add((unsigned)id);
		vq_kick(&dev, &rxq);
		if (!have_gw &&
		    (gw_mac[0] | gw_mac[1] | gw_mac[2] | gw_mac[3] | gw_mac[4] | gw_mac[5])) {
			have_gw = true;
			next = 0;
			puts_("fork_netns: 10.42.0.1 answered ARP\n");
		}
	}
}

int main(void);
int main(void)
{
	uint32_t gen, index;
	uint16_t status;

	idt_init();
	CHECK(virtio_find(VIRTIO_ID_NET, 0, &dev) >= 0);
	CHECK(virtio_init(&dev, (1ULL << VIRTIO_NET_F_MAC) | (1ULL << VIRTIO_NET_F_STATUS)) == 0);
	virtio_config_read(&dev, 0, mac, 6);
	virtio_config_read(&dev, 6, &status, 2);
	CHECK(status & 1);
	CHECK(virtio_queue_setup(&dev, 0, &rxq, RX_BUFS) == 0);
	CHECK(virtio_queue_setup(&dev, 1, &txq, 8) == 0);
	virtio_driver_ok(&dev);
	for (unsigned i = 0; i < RX_BUFS; i++)
		rx_add(i);
	vq_kick(&dev, &rxq);
	puts_("fork_netns: warm\n");
	outl(VMCTL, 1); /* doorbell: snapshot here */
	/* The snapshot is taken a moment later; only children go on. */
	while (!(gen = inl(VMCTL + 4)))
		cpu_relax();
	index = inl(VMCTL + 8);
	puts_("fork_netns: child ");
	put_dec(index);
	putc_('\n');
	return talk(index);
}
