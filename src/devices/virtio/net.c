/* virtio-net (virtio 1.2 §5.1) on a tap interface.
 *
 * Queues: 0 receive, 1 transmit; no control queue, no offloads, no
 * mergeable receive buffers. VERSION_1 is always negotiated, so every
 * frame is preceded by the 12-byte struct virtio_net_hdr_v1 (§5.1.6), and
 * the tap is opened with IFF_VNET_HDR and a header of that same size.
 *
 * Threads: transmit runs on the vCPU thread that kicked queue 1; receive
 * runs on the event loop when the tap is readable (and on the vCPU thread
 * when the driver kicks queue 0 after adding buffers). Both hold
 * vdev->lock. When the receive queue has no buffers the tap is no longer
 * watched, so frames wait in the tap's own queue instead of being read
 * and dropped here; a kick on queue 0 watches it again. */
#include "devices/virtio/net.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/uio.h>
#include <unistd.h>

#include "common/sbuf.h"
#include "common/util.h"
#include "devices/virtio/mmio.h"

/* Feature bits, §5.1.3 */
#define VIRTIO_NET_F_MAC    5
#define VIRTIO_NET_F_STATUS 16

#define VIRTIO_NET_S_LINK_UP 1

#define NET_RXQ 0
#define NET_TXQ 1

#define NET_QUEUE_MAX 256
/* struct virtio_net_hdr_v1 (flags, gso_type, hdr_len, gso_size,
 * csum_start, csum_offset, num_buffers). */
#define NET_HDR_LEN	       12
#define NET_HDR_NUM_BUFFERS_AT 10
/* Largest packet, header included: the receive-buffer size §5.1.6.3.1
 * asks of drivers that take GSO without mergeable buffers. Nothing bigger
 * is ever valid here. */
#define NET_MAX_PACKET 65562
/* Frames moved per event-loop wake-up, so one busy tap cannot starve the
 * other watches. */
#define NET_RX_BUDGET 64

/* Config space, §5.1.4: mac[6], status (le16). */
#define NET_CONFIG_SIZE 8

struct net {
	struct virtio_dev vdev; /* first: container_of by cast */
	int tapfd;
	char ifname[IFNAMSIZ];
	bool registered; /* tapfd is in the event loop */
	bool rx_armed;	 /* ... and watched for EPOLLIN */
	uint8_t config[NET_CONFIG_SIZE];

	/* A frame read from the tap that found no receive buffer yet: it is
	 * delivered first once the driver adds one. */
	uint32_t pending_len;	   /* bytes in rxbuf, header included; 0: none */
	bool tx_logged, rx_logged; /* one report per kind of I/O failure */

	uint64_t tx_frames, tx_dropped, rx_frames, rx_dropped;
	struct iovec iov[VIRTQ_MAX_CHAIN + 1];
	struct virtq_req req;
	uint8_t rxbuf[NET_MAX_PACKET];
};

static struct net *to_net(struct virtio_dev *vdev)
{
	return (struct net *)vdev;
}

/* Lock held. */
static void net_watch_rx(struct net *n, bool on)
{
	if (!n->registered || n->rx_armed == on)
		return;
	if (evloop_mod(&n->vdev.vm->loop, n->tapfd, on ? EPOLLIN : 0) == 0)
		n->rx_armed = on;
}

/* Move frames from the tap into receive buffers until the tap is empty,
 * the queue has no buffer, or the budget is spent. Lock held. */
static void net_rx(struct net *n)
{
	struct virtio_dev *vdev = &n->vdev;
	struct virtq *q = &vdev->queues[NET_RXQ];
	unsigned budget = NET_RX_BUDGET, delivered = 0;
	bool want_more = true;

	if (!virtio_driver_ok(vdev) || !q->ready) {
		net_watch_rx(n, false);
		return;
	}
	while (budget--) {
		int rc;

		if (!n->pending_len) {
			ssize_t r = read(n->tapfd, n->rxbuf, sizeof(n->rxbuf));

			if (r < 0) {
				if (errno != EAGAIN && errno != EINTR && !n->rx_logged) {
					log_errno("read(tap %s)", n->ifname);
					n->rx_logged = true;
				}
				break;
			}
			if (r <= NET_HDR_LEN) {
				n->rx_dropped++;
				continue;
			}
			n->pending_len = (uint32_t)r;
		}
		rc = virtq_pop(&vdev->vm->mem, q, &n->req);
		if (rc < 0) {
			virtio_fail(vdev, "malformed receive chain");
			want_more = false;
			break;
		}
		if (rc == 0) {
			want_more = false; /* no buffer: leave frames in the tap */
			break;
		}
		if (n->req.in_len < n->pending_len) {
			/* §5.1.6.3.1 asks for at least 1526 bytes (header
			 * and a full frame); a driver that offers less
			 * loses this frame only. */
			n->rx_dropped++;
			n->pending_len = 0;
			if (virtq_push(&vdev->vm->mem, q, n->req.head, 0))
				break;
			delivered++;
			continue;
		}
		/* No offloads were negotiated: whatever the tap reported, the
		 * frame is complete and checksummed; one buffer per packet. */
		memset(n->rxbuf, 0, NET_HDR_LEN);
		n->rxbuf[NET_HDR_NUM_BUFFERS_AT] = 1;
		virtq_req_write(&n->req, 0, n->rxbuf, n->pending_len);
		if (virtq_push(&vdev->vm->mem, q, n->req.head, n->pending_len))
			break;
		n->pending_len = 0;
		n->rx_frames++;
		delivered++;
	}
	if (delivered)
		virtio_notify_used(vdev, NET_RXQ);
	net_watch_rx(n, want_more);
}

static void net_tap_event(void *opaque, uint32_t events)
{
	struct net *n = opaque;

	pthread_mutex_lock(&n->vdev.lock);
	if (events & (EPOLLERR | EPOLLHUP)) {
		/* A tap does not normally report these; if it does, stop
		 * watching rather than spin on a condition nobody clears. */
		if (!n->rx_logged)
			log_err("virtio-net: tap %s reported an error; receive stopped", n->ifname);
		n->rx_logged = true;
		evloop_del(&n->vdev.vm->loop, n->tapfd);
		n->registered = false;
		n->rx_armed = false;
	} else {
		net_rx(n);
	}
	pthread_mutex_unlock(&n->vdev.lock);
}

/* iovec for the device-readable bytes [off, end) of a chain, after
 * iov[0] which the caller fills. Returns the iovec count. */
static unsigned net_tx_iov(struct net *n, uint64_t off)
{
	unsigned i, nr = 1;

	for (i = 0; i < n->req.nr_out; i++) {
		const struct virtq_buf *b = &n->req.bufs[i];

		if (off >= b->len) {
			off -= b->len;
			continue;
		}
		n->iov[nr].iov_base = b->ptr + off;
		n->iov[nr].iov_len = b->len - off;
		nr++;
		off = 0;
	}
	return nr;
}

static void net_tx(struct net *n)
{
	static const uint8_t zero_hdr[NET_HDR_LEN];
	struct virtio_dev *vdev = &n->vdev;
	struct virtq *q = &vdev->queues[NET_TXQ];
	unsigned done = 0;
	int rc;

	while ((rc = virtq_pop(&vdev->vm->mem, q, &n->req)) > 0) {
		uint64_t len = n->req.out_len;

		if (len <= NET_HDR_LEN || len > NET_MAX_PACKET) {
			n->tx_dropped++;
		} else {
			/* The driver's header asks for offloads that were not
			 * negotiated at best: the tap gets a clean one. */
			unsigned nr = net_tx_iov(n, NET_HDR_LEN);
			ssize_t w;

			n->iov[0].iov_base = (void *)zero_hdr;
			n->iov[0].iov_len = NET_HDR_LEN;
			w = writev(n->tapfd, n->iov, (int)nr);
			if (w < 0) {
				/* EAGAIN: the tap's queue is full, as a busy
				 * wire would drop the frame. */
				if (errno != EAGAIN && !n->tx_logged) {
					log_errno("writev(tap %s)", n->ifname);
					n->tx_logged = true;
				}
				n->tx_dropped++;
			} else {
				n->tx_frames++;
			}
		}
		if (virtq_push(&vdev->vm->mem, q, n->req.head, 0))
			break;
		done++;
	}
	if (rc < 0)
		virtio_fail(vdev, "malformed transmit chain");
	if (done)
		virtio_notify_used(vdev, NET_TXQ);
}

static void net_notify(struct virtio_dev *vdev, unsigned q)
{
	struct net *n = to_net(vdev);

	if (q == NET_TXQ)
		net_tx(n);
	else if (q == NET_RXQ)
		net_rx(n); /* new buffers: deliver what waits, watch the tap again */
}

static void net_activate(struct virtio_dev *vdev)
{
	net_rx(to_net(vdev));
}

static void net_reset(struct virtio_dev *vdev)
{
	struct net *n = to_net(vdev);

	n->pending_len = 0;
	net_watch_rx(n, false);
}

/* Saved state (docs/FORMAT.md, "Device state"): a version word, the
 * config space the driver read (MAC and link status) and whether receive
 * was waiting for the driver to add buffers. Nothing host-side: a
 * restored VM has its own tap, and a frame read from the saving VM's tap
 * but not delivered yet is dropped, as a busy wire would. */
#define NET_STATE_VERSION 1

static int net_save(struct virtio_dev *vdev, struct sbuf *out)
{
	struct net *n = to_net(vdev);
	bool stalled = virtio_driver_ok(vdev) && vdev->queues[NET_RXQ].ready && !n->rx_armed;

	sbuf_u32(out, NET_STATE_VERSION);
	sbuf_put(out, n->config, NET_CONFIG_SIZE);
	sbuf_u8(out, stalled);
	return 0;
}

static int net_restore(struct virtio_dev *vdev, struct sreader *r)
{
	struct net *n = to_net(vdev);
	uint8_t config[NET_CONFIG_SIZE], stalled;
	uint32_t version = sreader_u32(r);

	sreader_get(r, config, sizeof(config));
	stalled = sreader_u8(r);
	if (!sreader_done(r) || version != NET_STATE_VERSION || stalled > 1)
		return -EINVAL;
	/* A unicast MAC; status holds nothing but LINK_UP (le16). */
	if ((config[0] & 1) || (config[6] & ~VIRTIO_NET_S_LINK_UP) || config[7])
		return -EINVAL;
	if (memcmp(config, n->config, 6))
		log_info("virtio-net %s: keeping the MAC address the guest was given before the "
			 "snapshot, not the one configured",
			 n->ifname);
	/* The guest read config space at probe: it keeps what it saw. */
	memcpy(n->config, config, sizeof(config));
	n->pending_len = 0;
	/* Receive resumes on this VM's tap, unless it waits for the driver's
	 * next kick on the receive queue (which re-arms it). */
	net_watch_rx(n, virtio_driver_ok(vdev) && vdev->queues[NET_RXQ].ready && !stalled);
	return 0;
}

static void net_destroy(struct virtio_dev *vdev)
{
	struct net *n = to_net(vdev);

	/* The event loop is gone by now (vm_destroy() stops it first). */
	if (n->tx_frames || n->rx_frames || n->tx_dropped || n->rx_dropped)
		log_debug("virtio-net %s: tx %llu (dropped %llu), rx %llu (dropped %llu)",
			  n->ifname, (unsigned long long)n->tx_frames,
			  (unsigned long long)n->tx_dropped, (unsigned long long)n->rx_frames,
			  (unsigned long long)n->rx_dropped);
	if (n->tapfd >= 0)
		close(n->tapfd);
	free(n);
}

static const struct virtio_dev_ops net_ops = {
    .name = "virtio-net",
    .device_id = VIRTIO_ID_NET,
    .nr_queues = 2,
    .queue_max = NET_QUEUE_MAX,
    .notify = net_notify,
    .reset = net_reset,
    .activate = net_activate,
    .destroy = net_destroy,
    .save = net_save,
    .restore = net_restore,
};

/* Attach to (or, with CAP_NET_ADMIN, create) tap `name`: nonblocking, no
 * packet-information prefix, a virtio_net_hdr_v1 before every frame. */
static int net_open_tap(const char *name)
{
	struct ifreq ifr;
	int fd, hdr_len = NET_HDR_LEN, err;

	fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0)
		return log_errno("open /dev/net/tun");
	memset(&ifr, 0, sizeof(ifr));
	ifr.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR;
	memcpy(ifr.ifr_name, name, strlen(name)); /* length checked by the caller */
	if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
		err = log_errno("TUNSETIFF(%s)", name);
		goto err;
	}
	if (ioctl(fd, TUNSETVNETHDRSZ, &hdr_len) < 0) {
		err = log_errno("TUNSETVNETHDRSZ(%s, %d)", name, hdr_len);
		goto err;
	}
	/* No checksum or segmentation offload: the host hands over complete
	 * frames, matching the features offered to the driver. */
	if (ioctl(fd, TUNSETOFFLOAD, 0UL) < 0) {
		err = log_errno("TUNSETOFFLOAD(%s, 0)", name);
		goto err;
	}
	return fd;

err:
	close(fd);
	return err;
}

int virtio_net_create(struct vm *vm, const struct virtio_net_opts *opts)
{
	struct net *n;
	size_t len = opts->tap ? strlen(opts->tap) : 0;
	int fd, err;

	if (len == 0 || len >= IFNAMSIZ || strchr(opts->tap, '/')) {
		log_err("virtio-net: bad tap interface name '%s' (1..%d characters)",
			opts->tap ? opts->tap : "", IFNAMSIZ - 1);
		return -EINVAL;
	}
	if (opts->mac[0] & 1) {
		log_err("virtio-net: the MAC address must be unicast");
		return -EINVAL;
	}
	n = calloc(1, sizeof(*n));
	if (!n)
		return -ENOMEM;
	n->tapfd = -1;
	memcpy(n->ifname, opts->tap, len);
	fd = net_open_tap(opts->tap);
	if (fd < 0) {
		free(n);
		return fd;
	}
	n->tapfd = fd;
	memcpy(n->config, opts->mac, 6);
	n->config[6] = VIRTIO_NET_S_LINK_UP; /* le16 status */
	n->vdev.config = n->config;
	n->vdev.config_size = NET_CONFIG_SIZE;
	n->vdev.device_features = (1ULL << VIRTIO_NET_F_MAC) | (1ULL << VIRTIO_NET_F_STATUS);

	err = virtio_mmio_register(vm, &n->vdev, &net_ops);
	if (err)
		return err; /* net_destroy() ran, or runs with the VM */
	/* Watched with no events until the driver is ready for frames. */
	err = evloop_add(&vm->loop, fd, 0, net_tap_event, n);
	if (err)
		return err;
	n->registered = true;
	return 0;
}
