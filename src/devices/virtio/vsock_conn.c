/* virtio-vsock connections: the table, their host Unix sockets (accept,
 * handshake, reads under the guest's credit, writes and buffering of guest
 * data) and the close sequence. */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/util.h"
#include "devices/virtio/vsock_dev.h"

static int conn_index(struct vsock *vs, struct vsock_conn *c)
{
	return (int)(c - vs->conns);
}

struct vsock_conn *vsock_conn_find(struct vsock *vs, uint32_t local_port, uint32_t peer_port)
{
	unsigned i;

	for (i = 0; i < VSOCK_MAX_CONNS; i++) {
		struct vsock_conn *c = &vs->conns[i];

		if (c->state >= VSOCK_CONN_CONNECTING && c->local_port == local_port &&
		    c->peer_port == peer_port)
			return c;
	}
	return NULL;
}

struct vsock_conn *vsock_conn_alloc(struct vsock *vs, int fd, enum vsock_conn_state state)
{
	unsigned i;

	for (i = 0; i < VSOCK_MAX_CONNS; i++) {
		struct vsock_conn *c = &vs->conns[i];

		if (c->state == VSOCK_CONN_FREE) {
			memset(c, 0, sizeof(*c));
			c->vs = vs;
			c->fd = fd;
			c->state = state;
			return c;
		}
	}
	return NULL;
}

void vsock_conn_close(struct vsock *vs, struct vsock_conn *c)
{
	evloop_del(&vs->vdev.vm->loop, c->fd);
	close(c->fd);
	free(c->buf);
	c->buf = NULL;
	c->fd = -1;
	c->state = VSOCK_CONN_FREE;
	c->request_deferred = false;
}

/* Queue a control packet on c; if it cannot even be queued the guest will
 * never hear of c again, so c is closed. 0 or -ENOBUFS (c closed). */
int vsock_conn_ctrl(struct vsock *vs, struct vsock_conn *c, uint16_t op, uint16_t flags)
{
	int err =
	    vsock_rxq_send_ctrl(vs, op, flags, conn_index(vs, c), c->local_port, c->peer_port);

	if (err)
		vsock_conn_close(vs, c);
	return err;
}

/* Tear down c and tell the guest, unless it never heard of c. */
void vsock_conn_reset(struct vsock *vs, struct vsock_conn *c, const char *why)
{
	log_debug("virtio-vsock: reset host port %u, guest port %u: %s", c->local_port,
		  c->peer_port, why);
	if (c->state >= VSOCK_CONN_CONNECTING)
		vsock_rxq_send_rst(vs, c->local_port, c->peer_port);
	vsock_conn_close(vs, c);
}

uint32_t vsock_conn_peer_free(const struct vsock_conn *c)
{
	return vsock_pkt_peer_free(c->peer_buf_alloc, c->peer_fwd_cnt, c->tx_cnt);
}

/* What c can make progress on now. */
static uint32_t conn_wants(const struct vsock *vs, const struct vsock_conn *c)
{
	uint32_t ev = 0;

	switch (c->state) {
	case VSOCK_CONN_HANDSHAKE:
		return EPOLLIN;
	case VSOCK_CONN_ESTABLISHED:
		if (c->buf_len)
			ev |= EPOLLOUT;
		if (!c->host_eof && !c->guest_no_recv && !vs->rx_starved && vsock_conn_peer_free(c))
			ev |= EPOLLIN;
		return ev;
	default:
		return 0;
	}
}

/* Arm c's socket for what it wants (one shot). An armed socket is left
 * alone: its event callback re-arms after running. */
void vsock_conn_rearm(struct vsock *vs, struct vsock_conn *c)
{
	uint32_t want = conn_wants(vs, c);

	if (c->state == VSOCK_CONN_FREE || want == c->armed)
		return;
	/* EPOLLONESHOT alone still reports a hang-up once: harmless, the
	 * callback finds nothing to do and does not re-arm. */
	if (evloop_mod(&vs->vdev.vm->loop, c->fd, want | EPOLLONESHOT) == 0)
		c->armed = want;
}

void vsock_conn_rearm_all(struct vsock *vs)
{
	unsigned i;

	for (i = 0; i < VSOCK_MAX_CONNS; i++)
		vsock_conn_rearm(vs, &vs->conns[i]);
}

static void conn_credit_update(struct vsock *vs, struct vsock_conn *c)
{
	if (c->update_queued ||
	    !vsock_pkt_need_credit_update(VSOCK_BUF_ALLOC, c->rx_cnt, c->fwd_cnt, c->fwd_cnt_sent))
		return;
	/* Cleared when the packet is delivered, which may be right now. */
	c->update_queued = true;
	(void)!vsock_conn_ctrl(vs, c, VSOCK_OP_CREDIT_UPDATE, 0);
}

/* Both directions are finished once the guest will send nothing more, its
 * data reached the host, and either side stopped the other direction:
 * reset to complete the close (§5.10.6.6). Returns true when c is gone. */
bool vsock_conn_maybe_finish(struct vsock *vs, struct vsock_conn *c)
{
	if (c->buf_len || !c->guest_no_send)
		return false;
	if (!c->host_wr_shut) {
		/* The host client reads EOF, and may still write. */
		shutdown(c->fd, SHUT_WR);
		c->host_wr_shut = true;
	}
	if (c->guest_no_recv || c->host_eof) {
		vsock_conn_reset(vs, c, "both sides done");
		return true;
	}
	return false;
}

/* Write buffered guest data to the host socket. False when c was reset. */
static bool conn_flush(struct vsock *vs, struct vsock_conn *c)
{
	ssize_t n;

	if (!c->buf_len)
		return true;
	n = send(c->fd, c->buf, c->buf_len, MSG_NOSIGNAL | MSG_DONTWAIT);
	if (n < 0) {
		if (errno == EAGAIN || errno == EINTR)
			return true;
		vsock_conn_reset(vs, c, strerror(errno)); /* the host client went away */
		return false;
	}
	memmove(c->buf, c->buf + n, c->buf_len - (size_t)n);
	c->buf_len -= (uint32_t)n;
	c->fwd_cnt += (uint32_t)n;
	conn_credit_update(vs, c);
	return c->state != VSOCK_CONN_FREE;
}

/* iovec over the chain's writable bytes from `off`, at most `max` bytes. */
static int req_in_iov(struct vsock *vs, const struct virtq_req *req, uint64_t off, uint64_t max)
{
	unsigned i;
	int nr = 0;

	for (i = req->nr_out; i < req->nr && max; i++) {
		const struct virtq_buf *b = &req->bufs[i];
		uint64_t n;

		if (off >= b->len) {
			off -= b->len;
			continue;
		}
		n = MIN(b->len - off, max);
		vs->iov[nr].iov_base = b->ptr + off;
		vs->iov[nr].iov_len = n;
		nr++;
		max -= n;
		off = 0;
	}
	return nr;
}

/* Whether the host client closed its socket altogether (not just its
 * sending side): then the guest need not send either. Asked of the socket
 * itself, not of an event that may be older than the connection. */
static bool host_gone(int fd)
{
	struct pollfd p = {.fd = fd, .events = POLLOUT};

	return poll(&p, 1, 0) == 1 && (p.revents & (POLLHUP | POLLERR));
}

/* Move what the host client wrote into the guest's receive queue, as far
 * as the guest's credit and buffers go. */
static void conn_host_to_guest(struct vsock *vs, struct vsock_conn *c)
{
	unsigned budget = VSOCK_RX_BUDGET;

	while (budget-- && !c->host_eof && !c->guest_no_recv && !vs->rx_starved) {
		uint32_t credit = vsock_conn_peer_free(c);
		struct vsock_ctrl ctl = {VSOCK_OP_RW, 0, (int16_t)conn_index(vs, c), c->local_port,
					 c->peer_port};
		struct virtq_req *req;
		struct vsock_hdr h;
		uint64_t max;
		ssize_t n;
		int nr;

		if (!credit) {
			if (!c->credit_requested &&
			    vsock_conn_ctrl(vs, c, VSOCK_OP_CREDIT_REQUEST, 0) == 0)
				c->credit_requested = true;
			return;
		}
		if (vs->ctrl_len || !(req = vsock_rxq_chain(vs))) {
			vs->rx_starved = true;
			return;
		}
		if (req->in_len == VSOCK_HDR_LEN) {
			/* No room for payload: give the buffer back unused. */
			vs->vdev.errors++;
			vsock_rxq_discard(vs);
			continue;
		}
		max = MIN(MIN((uint64_t)credit, req->in_len - VSOCK_HDR_LEN), VSOCK_MAX_PAYLOAD);
		nr = req_in_iov(vs, req, VSOCK_HDR_LEN, max);
		n = readv(c->fd, vs->iov, nr);
		if (n < 0) {
			if (errno != EAGAIN && errno != EINTR)
				vsock_conn_reset(vs, c, strerror(errno));
			return;
		}
		if (n == 0) {
			/* EOF: the client will send no more. */
			c->host_eof = true;
			if (vsock_conn_ctrl(vs, c, VSOCK_OP_SHUTDOWN,
					    VSOCK_SHUTDOWN_SEND |
						(host_gone(c->fd) ? VSOCK_SHUTDOWN_RCV : 0)))
				return;
			vsock_conn_maybe_finish(vs, c);
			return;
		}
		vsock_rxq_fill_hdr(vs, &h, &ctl);
		h.len = (uint32_t)n;
		vsock_rxq_fill_credit(&h, c);
		virtq_req_write(req, 0, &h, sizeof(h));
		vsock_rxq_complete(vs, (uint32_t)n);
		c->tx_cnt += (uint32_t)n;
	}
}

static bool local_port_used(const struct vsock *vs, const struct vsock_conn *self)
{
	unsigned i;

	for (i = 0; i < VSOCK_MAX_CONNS; i++) {
		const struct vsock_conn *c = &vs->conns[i];

		if (c != self && c->state != VSOCK_CONN_FREE && c->local_port == self->local_port)
			return true;
	}
	return false;
}

/* Read the client's "CONNECT <port>\n" without consuming what follows it
 * (data for the guest may come in the same segment). */
static void conn_handshake(struct vsock *vs, struct vsock_conn *c)
{
	char peek[VSOCK_LINE_MAX];
	size_t room = VSOCK_LINE_MAX - c->line_len, take;
	char *nl;
	ssize_t n;
	uint32_t port;

	n = recv(c->fd, peek, room, MSG_PEEK | MSG_DONTWAIT);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0)
		goto bad;
	nl = memchr(peek, '\n', (size_t)n);
	take = nl ? (size_t)(nl - peek) + 1 : (size_t)n;
	n = recv(c->fd, c->line + c->line_len, take, MSG_DONTWAIT);
	if (n != (ssize_t)take)
		goto bad;
	c->line_len += (unsigned)take;
	if (!nl) {
		if (c->line_len == VSOCK_LINE_MAX)
			goto bad;
		return;
	}
	if (vsock_pkt_parse_connect(c->line, c->line_len, &port))
		goto bad;

	/* A local port no other connection uses; there are fewer connections
	 * than candidates, so this ends. */
	do {
		c->local_port = vs->next_port;
		vs->next_port =
		    vs->next_port == UINT32_MAX - 1 ? VSOCK_PORT_FIRST : vs->next_port + 1;
	} while (local_port_used(vs, c));
	c->peer_port = port;
	c->state = VSOCK_CONN_CONNECTING;
	c->request_deferred = vsock_requests_held(vs);
	if (!c->request_deferred)
		(void)!vsock_conn_ctrl(vs, c, VSOCK_OP_REQUEST, 0);
	return;

bad:
	vsock_conn_close(vs, c);
}

void vsock_conn_event(void *opaque, uint32_t events)
{
	struct vsock_conn *c = opaque;
	struct vsock *vs = c->vs;

	pthread_mutex_lock(&vs->vdev.lock);
	if (c->state == VSOCK_CONN_FREE)
		goto out; /* closed while the event was on its way */
	/* One shot: the socket is disarmed now. The events may be older than
	 * the connection in this slot (slots are reused), so they only say
	 * what to try; what happens depends on what the nonblocking calls on
	 * the socket return. */
	c->armed = 0;
	if (c->state == VSOCK_CONN_HANDSHAKE) {
		conn_handshake(vs, c);
	} else if (c->state == VSOCK_CONN_ESTABLISHED) {
		if ((events & (EPOLLOUT | EPOLLERR | EPOLLHUP)) &&
		    (!conn_flush(vs, c) || vsock_conn_maybe_finish(vs, c)))
			goto out;
		if (events & (EPOLLIN | EPOLLERR | EPOLLHUP))
			conn_host_to_guest(vs, c);
	}
	vsock_conn_rearm(vs, c);
out:
	vsock_rxq_kick(vs);
	pthread_mutex_unlock(&vs->vdev.lock);
}

void vsock_conn_listen_event(void *opaque, uint32_t events)
{
	struct vsock *vs = opaque;
	unsigned budget = VSOCK_ACCEPT_BUDGET;

	pthread_mutex_lock(&vs->vdev.lock);
	while (budget--) {
		struct vsock_conn *c;
		int fd = accept4(vs->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (fd < 0) {
			if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED &&
			    !vs->accept_logged) {
				log_errno("accept(%s)", vs->uds_path);
				vs->accept_logged = true;
			}
			break;
		}
		c = vsock_conn_alloc(vs, fd, VSOCK_CONN_HANDSHAKE);
		if (!c) {
			if (!vs->full_logged)
				log_warn("virtio-vsock: %d connections open, refusing more",
					 VSOCK_MAX_CONNS);
			vs->full_logged = true;
			close(fd);
			continue;
		}
		vs->full_logged = false;
		if (evloop_add(&vs->vdev.vm->loop, fd, EPOLLIN | EPOLLONESHOT, vsock_conn_event,
			       c)) {
			close(fd);
			c->state = VSOCK_CONN_FREE;
			continue;
		}
		c->armed = EPOLLIN;
	}
	pthread_mutex_unlock(&vs->vdev.lock);
}

/* Guest data for the host socket: straight through while nothing waits,
 * the rest into the connection's buffer. */
void vsock_conn_guest_rw(struct vsock *vs, struct vsock_conn *c, const struct virtq_req *req,
			 uint32_t len)
{
	uint64_t off = VSOCK_HDR_LEN;
	uint32_t left = len;

	if (c->guest_no_send || (uint64_t)c->buf_len + len > VSOCK_BUF_ALLOC) {
		/* Data after its own shutdown, or beyond the credit we gave. */
		vs->dropped++;
		vsock_conn_reset(vs, c, "guest data beyond its credit or after its shutdown");
		return;
	}
	c->rx_cnt += len;
	if (!c->buf_len && len) {
		unsigned i, nr = 0;
		uint64_t skip = off;
		struct msghdr msg = {.msg_iov = vs->iov};
		ssize_t n;

		for (i = 0; i < req->nr_out && nr < VIRTQ_MAX_CHAIN; i++) {
			const struct virtq_buf *b = &req->bufs[i];
			uint64_t take;

			if (skip >= b->len) {
				skip -= b->len;
				continue;
			}
			take = MIN(b->len - skip, (uint64_t)left);
			vs->iov[nr].iov_base = b->ptr + skip;
			vs->iov[nr].iov_len = take;
			nr++;
			skip = 0;
			left -= (uint32_t)take;
			if (!left)
				break;
		}
		left = len;
		msg.msg_iovlen = nr;
		n = sendmsg(c->fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0 && errno != EAGAIN && errno != EINTR) {
			vsock_conn_reset(vs, c, strerror(errno));
			return;
		}
		if (n > 0) {
			c->fwd_cnt += (uint32_t)n;
			off += (uint64_t)n;
			left -= (uint32_t)n;
		}
	}
	if (left) {
		if (!c->buf && !(c->buf = malloc(VSOCK_BUF_ALLOC))) {
			log_err("virtio-vsock: out of memory for a connection buffer");
			vsock_conn_reset(vs, c, "out of memory");
			return;
		}
		virtq_req_read(req, off, c->buf + c->buf_len, left);
		c->buf_len += left;
	}
	conn_credit_update(vs, c);
}
