/* virtio-vsock (virtio 1.2 §5.10), host side on Unix sockets.
 *
 * Queues: 0 receive (device to guest), 1 transmit, 2 event (buffers are
 * held for the one event sent: a transport reset after a restore). Only
 * stream sockets; the host is CID 2.
 *
 * A connection joins a host Unix socket to a guest port:
 *   host-initiated  a client of uds_path sends "CONNECT <port>\n"; the
 *                   device sends OP_REQUEST from an allocated local port,
 *                   and on OP_RESPONSE writes "OK <local port>\n";
 *   guest-initiated OP_REQUEST to CID 2 port P connects to "<uds_path>_P"
 *                   and is answered with OP_RESPONSE or OP_RST.
 * Then bytes flow both ways as OP_RW under credit flow control (§5.10.6.3):
 * the device reads a host socket only as far as the guest's credit goes,
 * and buffers up to VSOCK_BUF_ALLOC bytes of guest data the host socket
 * did not take yet (what it advertises as buf_alloc).
 *
 * Threads: guest packets are handled on the vCPU thread that kicked the
 * transmit queue; host sockets on the event loop. Both hold vdev->lock,
 * which guards everything here. Connections live in a fixed table, so an
 * event for a connection closed meanwhile finds a free (or reused) slot,
 * never freed memory. Sockets are watched EPOLLONESHOT and re-armed after
 * each event with what the connection can use now (vsock_conn_rearm()), so
 * a hung-up socket the device cannot serve yet does not spin the loop.
 *
 * Receive queue: packets go straight into the next receive chain. When
 * there is none, control packets wait in a bounded ring (in order) and no
 * host socket is read until the driver adds buffers.
 *
 * A driver reset (Status 0) drops the connections the guest knew; host
 * clients still waiting for the guest to accept keep waiting, and their
 * OP_REQUEST goes out again (drivers reset the device as they start, and a
 * host agent may connect while the guest is still booting).
 *
 * Snapshots: connections are not saved (their host sockets belong to the
 * saving process). A restored device tells the driver with a transport
 * reset event (§5.10.6, "Device Events"), on which the guest drops every
 * connection and re-reads its CID; listening sockets survive.
 *
 * Files: this one (guest packets, queues, set-up), vsock_conn.c
 * (connections and host sockets), vsock_rxq.c (receive queue and waiting
 * control packets), vsock_pkt.c (header checks, credit arithmetic, the
 * handshake line; unit-tested). */
#include "devices/virtio/vsock.h"

#include <errno.h>
#include <sys/random.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/sbuf.h"
#include "common/util.h"
#include "devices/virtio/vsock_dev.h"

static struct vsock *to_vsock(struct virtio_dev *vdev)
{
	return (struct vsock *)vdev;
}

/* OP_REQUEST from the guest to host port P: connect to "<uds_path>_P". */
static void guest_connect(struct vsock *vs, const struct vsock_hdr *h)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	struct vsock_conn *c;
	int fd, n;

	n = snprintf(sa.sun_path, sizeof(sa.sun_path), "%s_%u", vs->uds_path, h->dst_port);
	if (n < 0 || (size_t)n >= sizeof(sa.sun_path))
		goto refuse;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		log_errno("socket(AF_UNIX)");
		goto refuse;
	}
	/* A Unix socket connects at once or not at all (EAGAIN: the
	 * listener's backlog is full); either way the guest hears now. */
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		/* Nobody listening is the guest's business; a listener this
		 * process may not reach is the host's (a jailed VMM runs as the
		 * jail's uid/gid: isolate/jail_fs.h). */
		if (errno == EACCES)
			log_warn("virtio-vsock: guest port %u to %s: %s (a jailed VMM runs as the "
				 "jail's uid and gid, forkd doctor names them: the socket must be "
				 "writable by that group)",
				 h->src_port, sa.sun_path, strerror(errno));
		else
			log_debug("virtio-vsock: guest port %u to %s: %s", h->src_port, sa.sun_path,
				  strerror(errno));
		close(fd);
		goto refuse;
	}
	c = vsock_conn_alloc(vs, fd, VSOCK_CONN_ESTABLISHED);
	if (!c) {
		close(fd);
		goto refuse;
	}
	c->local_port = h->dst_port;
	c->peer_port = h->src_port;
	c->peer_buf_alloc = h->buf_alloc;
	c->peer_fwd_cnt = h->fwd_cnt;
	if (evloop_add(&vs->vdev.vm->loop, fd, EPOLLONESHOT, vsock_conn_event, c)) {
		close(fd);
		c->state = VSOCK_CONN_FREE;
		goto refuse;
	}
	if (vsock_conn_ctrl(vs, c, VSOCK_OP_RESPONSE, 0))
		return;
	vsock_conn_rearm(vs, c);
	return;

refuse:
	vsock_rxq_send_rst(vs, h->dst_port, h->src_port);
}

/* OP_RESPONSE to our OP_REQUEST: tell the host client its local port. */
static void guest_accepted(struct vsock *vs, struct vsock_conn *c)
{
	char ok[24];
	int n = snprintf(ok, sizeof(ok), "OK %u\n", c->local_port);

	/* Nothing was written to this socket before, so its buffer has room
	 * for the whole line; a short write means the client is gone. */
	if (send(c->fd, ok, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT) != n) {
		vsock_conn_reset(vs, c, "host client gone before the guest accepted");
		return;
	}
	c->state = VSOCK_CONN_ESTABLISHED;
	vsock_conn_rearm(vs, c);
}

static void guest_packet(struct vsock *vs, const struct virtq_req *req)
{
	struct vsock_hdr h;
	struct vsock_conn *c;

	if (req->out_len < VSOCK_HDR_LEN) {
		vs->vdev.errors++;
		return;
	}
	(void)virtq_req_read(req, 0, &h, sizeof(h));
	switch (vsock_pkt_check(&h, req->out_len - VSOCK_HDR_LEN, vs->guest_cid)) {
	case VSOCK_PKT_OK:
		break;
	case VSOCK_PKT_RESET:
		vs->dropped++;
		c = vsock_conn_find(vs, h.dst_port, h.src_port);
		if (c)
			vsock_conn_reset(vs, c, "invalid packet");
		else
			vsock_rxq_send_rst(vs, h.dst_port, h.src_port);
		return;
	default:
		vs->dropped++;
		return;
	}

	c = vsock_conn_find(vs, h.dst_port, h.src_port);
	if (h.op == VSOCK_OP_REQUEST) {
		if (c) /* a second request on a live connection */
			vsock_conn_reset(vs, c, "repeated OP_REQUEST");
		else
			guest_connect(vs, &h);
		return;
	}
	if (!c) {
		if (h.op != VSOCK_OP_RST)
			vsock_rxq_send_rst(vs, h.dst_port, h.src_port);
		return;
	}
	if (h.op == VSOCK_OP_RST) {
		vsock_conn_close(vs, c);
		return;
	}
	/* Every header carries the sender's credit (§5.10.6.3). */
	c->peer_buf_alloc = h.buf_alloc;
	c->peer_fwd_cnt = h.fwd_cnt;
	if (vsock_conn_peer_free(c))
		c->credit_requested = false;

	switch (h.op) {
	case VSOCK_OP_RESPONSE:
		if (c->state != VSOCK_CONN_CONNECTING) {
			vsock_conn_reset(vs, c, "unexpected OP_RESPONSE");
			return;
		}
		guest_accepted(vs, c);
		return;
	case VSOCK_OP_RW:
		if (c->state != VSOCK_CONN_ESTABLISHED) {
			vsock_conn_reset(vs, c, "data before the connection was accepted");
			return;
		}
		vsock_conn_guest_rw(vs, c, req, h.len);
		break;
	case VSOCK_OP_SHUTDOWN:
		c->guest_no_recv |= !!(h.flags & VSOCK_SHUTDOWN_RCV);
		c->guest_no_send |= !!(h.flags & VSOCK_SHUTDOWN_SEND);
		if (c->state == VSOCK_CONN_ESTABLISHED && vsock_conn_maybe_finish(vs, c))
			return;
		break;
	case VSOCK_OP_CREDIT_REQUEST:
		if (vsock_conn_ctrl(vs, c, VSOCK_OP_CREDIT_UPDATE, 0))
			return;
		break;
	default: /* OP_CREDIT_UPDATE: the credit above is all it says */
		break;
	}
	if (c->state != VSOCK_CONN_FREE)
		vsock_conn_rearm(vs, c);
}

/* A first host port somewhere in [VSOCK_PORT_FIRST, 2^31). */
static uint32_t vsock_random_port(void)
{
	uint32_t r = 0;

	if (getrandom(&r, sizeof(r), 0) != sizeof(r))
		r = (uint32_t)getpid() << 8;
	return VSOCK_PORT_FIRST + r % (0x80000000u - VSOCK_PORT_FIRST);
}

/* Handle the guest's packets; with discard, hand them back unread. */
static void vsock_tx_run(struct vsock *vs, bool discard)
{
	struct virtio_dev *vdev = &vs->vdev;
	struct virtq *q = &vdev->queues[VSOCK_TXQ];
	bool pushed = false;
	int rc;

	while ((rc = virtq_pop(&vdev->vm->mem, q, &vs->tx_req)) > 0) {
		if (!discard)
			guest_packet(vs, &vs->tx_req);
		if (virtq_push(&vdev->vm->mem, q, vs->tx_req.head, 0))
			break;
		pushed = true;
	}
	if (rc < 0)
		virtio_fail(vdev, "malformed transmit chain");
	if (pushed)
		virtio_notify_used(vdev, VSOCK_TXQ);
}

static void vsock_tx(struct vsock *vs)
{
	vsock_tx_run(vs, false);
}

/* The driver added receive buffers (or became ready): deliver what waits
 * and let the sockets be read again. */
static void vsock_rx_refilled(struct vsock *vs)
{
	if (!vsock_rxq_flush(vs))
		return;
	if (vs->rx_starved) {
		vs->rx_starved = false;
		vsock_conn_rearm_all(vs);
	}
}

/* struct virtio_vsock_event: le32 id (§5.10.6, "Device Events"). */
#define VSOCK_EVENT_TRANSPORT_RESET 0
#define VSOCK_EVENT_LEN		    4

/* Send the waiting transport-reset event, if the driver has given an
 * event buffer (else on its next kick of the event queue). */
static void vsock_evt_flush(struct vsock *vs)
{
	struct virtio_dev *vdev = &vs->vdev;
	struct virtq *q = &vdev->queues[VSOCK_EVTQ];
	const uint32_t id = VSOCK_EVENT_TRANSPORT_RESET;
	bool pushed = false;
	int rc;

	if (!vs->evt_reset_pending || !virtio_driver_ok(vdev) || !q->ready)
		return;
	while ((rc = virtq_pop(&vdev->vm->mem, q, &vs->evt_req)) == 1) {
		uint32_t len = 0;

		if (vs->evt_req.in_len >= VSOCK_EVENT_LEN) {
			virtq_req_write(&vs->evt_req, 0, &id, VSOCK_EVENT_LEN);
			len = VSOCK_EVENT_LEN;
		} else {
			vdev->errors++; /* too small: handed back empty */
		}
		if (virtq_push(&vdev->vm->mem, q, vs->evt_req.head, len)) {
			virtio_fail(vdev, "used ring not in guest memory");
			break;
		}
		pushed = true;
		if (len) {
			vs->evt_reset_pending = false;
			vs->evt_reset_unacked = true;
			vs->evt_avail_at_reset = virtq_avail_idx(&vdev->vm->mem, q);
			break;
		}
	}
	if (rc < 0)
		virtio_fail(vdev, "malformed chain on the event queue");
	if (pushed)
		virtio_notify_used(vdev, VSOCK_EVTQ);
}

/* The driver makes the event buffer available again once it has handled
 * the reset (Linux: after dropping every connection), so a newer avail
 * index on the event queue means the reset is over: deferred requests go
 * out. */
static void vsock_evt_acked_check(struct vsock *vs)
{
	if (!vs->evt_reset_unacked ||
	    virtq_avail_idx(&vs->vdev.vm->mem, &vs->vdev.queues[VSOCK_EVTQ]) ==
		vs->evt_avail_at_reset)
		return;
	vs->evt_reset_unacked = false;
	for (unsigned i = 0; i < VSOCK_MAX_CONNS; i++) {
		struct vsock_conn *c = &vs->conns[i];

		if (c->state == VSOCK_CONN_CONNECTING && c->request_deferred) {
			c->request_deferred = false;
			(void)!vsock_conn_ctrl(vs, c, VSOCK_OP_REQUEST, 0);
		}
	}
}

bool vsock_requests_held(struct vsock *vs)
{
	vsock_evt_acked_check(vs);
	/* A driver without an event queue never hears of the reset. */
	return vs->evt_reset_unacked ||
	       (vs->evt_reset_pending && vs->vdev.queues[VSOCK_EVTQ].ready);
}

static void vsock_notify(struct virtio_dev *vdev, unsigned q)
{
	struct vsock *vs = to_vsock(vdev);

	if (q == VSOCK_TXQ)
		vsock_tx(vs);
	else if (q == VSOCK_RXQ)
		vsock_rx_refilled(vs);
	else if (q == VSOCK_EVTQ)
		vsock_evt_flush(vs);
	vsock_evt_acked_check(vs);
	vsock_rxq_kick(vs);
}

static void vsock_activate(struct virtio_dev *vdev)
{
	struct vsock *vs = to_vsock(vdev);

	vsock_rx_refilled(vs);
	vsock_rxq_kick(vs);
	vsock_evt_flush(vs);
}

static void vsock_reset(struct virtio_dev *vdev)
{
	struct vsock *vs = to_vsock(vdev);
	unsigned i;

	vs->ctrl_head = vs->ctrl_len = 0;
	vs->rx_held = vs->rx_used = vs->rx_starved = false;
	vs->evt_reset_pending = false; /* a driver starting afresh has no connections */
	vs->evt_reset_unacked = false;
	/* The driver forgot every connection. Host clients still waiting for
	 * the guest to accept keep waiting: a driver resets the device when it
	 * starts, and a client may well have connected before that. Their
	 * requests go out again once the driver is ready. */
	for (i = 0; i < VSOCK_MAX_CONNS; i++) {
		struct vsock_conn *c = &vs->conns[i];
		struct vsock_ctrl req = {VSOCK_OP_REQUEST, 0, (int16_t)i, c->local_port,
					 c->peer_port};

		c->request_deferred = false;
		if (c->state == VSOCK_CONN_CONNECTING)
			(void)!vsock_rxq_enqueue(vs, &req);
		else if (c->state == VSOCK_CONN_ESTABLISHED)
			vsock_conn_close(vs, c);
	}
}

/* Saved state (docs/FORMAT.md, "Device state"): a version word, flags
 * (a receive chain was held; a reset event was waiting) and the held
 * chain's head. */
#define VSOCK_STATE_VERSION   1
#define VSOCK_STATE_RX_HELD   1u
#define VSOCK_STATE_EVT_RESET 2u

static int vsock_save(struct virtio_dev *vdev, struct sbuf *out)
{
	struct vsock *vs = to_vsock(vdev);

	sbuf_u32(out, VSOCK_STATE_VERSION);
	sbuf_u32(out, (vs->rx_held ? VSOCK_STATE_RX_HELD : 0) |
			  (vs->evt_reset_pending ? VSOCK_STATE_EVT_RESET : 0));
	sbuf_u16(out, vs->rx_held ? vs->rx_req.head : 0);
	return 0;
}

/* The transport's state is in place. Connections start empty, and so does
 * the control ring: what waited there was for connections that are gone.
 * A receive chain the saving device held is given back unused (it cannot
 * be rebuilt from here, and the driver would wait for it forever); the
 * driver drops the empty packet and reposts the buffer. */
static int vsock_restore(struct virtio_dev *vdev, struct sreader *r)
{
	struct vsock *vs = to_vsock(vdev);
	const struct virtq *rxq = &vdev->queues[VSOCK_RXQ];
	uint32_t version = sreader_u32(r), flags = sreader_u32(r);
	uint16_t head = sreader_u16(r);
	bool held = flags & VSOCK_STATE_RX_HELD, live = virtio_driver_ok(vdev);
	unsigned i;

	if (!sreader_done(r) || version != VSOCK_STATE_VERSION ||
	    (flags & ~(VSOCK_STATE_RX_HELD | VSOCK_STATE_EVT_RESET)) || (!held && head))
		return -EINVAL;
	/* A held chain was popped and not pushed: the queue is ready and
	 * holds at least that one outstanding. */
	if (held && (!rxq->ready || head >= rxq->size || rxq->last_avail == rxq->used_idx))
		return -EINVAL;

	for (i = 0; i < VSOCK_MAX_CONNS; i++)
		if (vs->conns[i].state != VSOCK_CONN_FREE)
			vsock_conn_close(vs, &vs->conns[i]);
	vs->ctrl_head = vs->ctrl_len = 0;
	vs->rx_held = vs->rx_used = vs->rx_starved = false;
	/* What the guest queued for sending before the snapshot belongs to
	 * connections that are gone: handled now, a stale RST or SHUTDOWN
	 * would hit this VM's new connection that reuses its host port (a
	 * branch taken just after a host client closed: the children's first
	 * client was refused). The guest drops those connections on the
	 * reset event below. */
	if (live && vdev->queues[VSOCK_TXQ].ready)
		vsock_tx_run(vs, true);
	/* Likewise packets the saving device had already handed the guest
	 * (the close of a host client that had just gone) are still in its
	 * receive ring: the guest answers them with an RST for that host
	 * port. So this VM's host clients get ports the saved one did not
	 * use: a fresh random start, not the first port again. */
	vs->next_port = vsock_random_port();
	if (held) {
		if (virtq_push(&vdev->vm->mem, &vdev->queues[VSOCK_RXQ], head, 0) == 0)
			vs->rx_used = true;
		vsock_rxq_kick(vs);
	}
	/* A driver that never got as far as DRIVER_OK resets the device
	 * before using it: it has no connections to drop. */
	vs->evt_reset_pending = live || (flags & VSOCK_STATE_EVT_RESET);
	vsock_evt_flush(vs);
	return 0;
}

static void vsock_destroy(struct virtio_dev *vdev)
{
	struct vsock *vs = to_vsock(vdev);
	unsigned i;

	/* The event loop is gone by now (vm_destroy() stops it first). */
	for (i = 0; i < VSOCK_MAX_CONNS; i++) {
		if (vs->conns[i].state != VSOCK_CONN_FREE)
			close(vs->conns[i].fd);
		free(vs->conns[i].buf);
	}
	if (vs->listen_fd >= 0)
		close(vs->listen_fd);
	if (vs->bound && unlink(vs->uds_path) < 0 && errno != ENOENT)
		log_errno("unlink %s", vs->uds_path);
	if (vs->dropped || vs->ctrl_dropped || vdev->errors)
		log_debug("virtio-vsock: %llu guest packets dropped, %llu control packets lost, "
			  "%llu malformed",
			  (unsigned long long)vs->dropped, (unsigned long long)vs->ctrl_dropped,
			  (unsigned long long)vdev->errors);
	free(vs);
}

static const struct virtio_dev_ops vsock_ops = {
    .name = "virtio-vsock",
    .device_id = VIRTIO_ID_VSOCK,
    .nr_queues = 3,
    .queue_max = VSOCK_QUEUE_MAX,
    .notify = vsock_notify,
    .reset = vsock_reset,
    .activate = vsock_activate,
    .destroy = vsock_destroy,
    .save = vsock_save,
    .restore = vsock_restore,
};

/* Listen on path. A stale socket file (nobody accepts on it) is replaced;
 * a live one, or anything that is not a socket, is left alone. */
static int vsock_listen(const char *path)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	struct stat st;
	int fd, err;

	memcpy(sa.sun_path, path, strlen(path)); /* length checked by the caller */
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return log_errno("socket(AF_UNIX)");
	if (lstat(path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode)) {
			log_err("virtio-vsock: %s exists and is not a socket", path);
			err = -EEXIST;
			goto err;
		}
		if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 || errno == EAGAIN) {
			log_err("virtio-vsock: %s is in use by a live listener", path);
			err = -EADDRINUSE;
			goto err;
		}
		if (errno != ECONNREFUSED) {
			err = log_errno("connect %s (probing for a stale socket)", path);
			goto err;
		}
		if (unlink(path) < 0) {
			err = log_errno("unlink stale %s", path);
			goto err;
		}
	}
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		err = log_errno("bind %s", path);
		goto err;
	}
	if (listen(fd, 64) < 0) {
		err = log_errno("listen %s", path);
		unlink(path);
		goto err;
	}
	return fd;

err:
	close(fd);
	return err;
}

int virtio_vsock_create(struct vm *vm, const struct virtio_vsock_opts *opts)
{
	struct vsock *vs;
	size_t len = opts->uds_path ? strlen(opts->uds_path) : 0;
	unsigned i;
	int fd, err;

	if (opts->guest_cid < 3 || opts->guest_cid > 0xfffffffeULL) {
		log_err("virtio-vsock: guest CID %llu out of range 3..4294967294",
			(unsigned long long)opts->guest_cid);
		return -EINVAL;
	}
	/* Room for the "_<port>" of guest-initiated connections too. */
	if (len == 0 || len + 11 >= sizeof(((struct sockaddr_un *)0)->sun_path)) {
		log_err("virtio-vsock: socket path must be 1..%zu characters",
			sizeof(((struct sockaddr_un *)0)->sun_path) - 12);
		return -ENAMETOOLONG;
	}
	vs = calloc(1, sizeof(*vs));
	if (!vs)
		return -ENOMEM;
	vs->listen_fd = -1;
	vs->guest_cid = opts->guest_cid;
	vs->next_port = vsock_random_port();
	memcpy(vs->uds_path, opts->uds_path, len);
	memcpy(vs->config, &vs->guest_cid, sizeof(vs->config));
	for (i = 0; i < VSOCK_MAX_CONNS; i++) {
		vs->conns[i].vs = vs;
		vs->conns[i].fd = -1;
	}
	fd = vsock_listen(opts->uds_path);
	if (fd < 0) {
		free(vs);
		return fd;
	}
	vs->listen_fd = fd;
	vs->bound = true;
	vs->vdev.config = vs->config;
	vs->vdev.config_size = sizeof(vs->config);

	err = virtio_mmio_register(vm, &vs->vdev, &vsock_ops);
	if (err)
		return err; /* vsock_destroy() ran, or runs with the VM */
	return evloop_add(&vm->loop, fd, EPOLLIN, vsock_conn_listen_event, vs);
}
