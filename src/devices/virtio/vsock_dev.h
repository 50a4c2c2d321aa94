/* virtio-vsock device internals, shared by vsock.c (the device: guest
 * packets, queues, set-up), vsock_rxq.c (the receive queue and the control
 * packets waiting for it) and vsock_conn.c (connections and their host
 * sockets). See vsock.c for the design. Not for use outside these files.
 *
 * Locking: every function here is called with vs->vdev.lock held, except
 * the two event-loop callbacks, which take it. */
#ifndef FORKD_DEVICES_VIRTIO_VSOCK_DEV_H
#define FORKD_DEVICES_VIRTIO_VSOCK_DEV_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>
#include <sys/un.h>

#include "devices/virtio/mmio.h"
#include "devices/virtio/vsock_pkt.h"

#define VSOCK_RXQ	0
#define VSOCK_TXQ	1
#define VSOCK_EVTQ	2
#define VSOCK_QUEUE_MAX 256

#define VSOCK_MAX_CONNS	    256
#define VSOCK_BUF_ALLOC	    (64 * 1024) /* per connection, guest to host */
#define VSOCK_MAX_PAYLOAD   (64 * 1024) /* per OP_RW packet to the guest */
#define VSOCK_CTRL_MAX	    1024
#define VSOCK_LINE_MAX	    32
#define VSOCK_PORT_FIRST    1024
#define VSOCK_RX_BUDGET	    16 /* packets per socket event */
#define VSOCK_ACCEPT_BUDGET 16

enum vsock_conn_state {
	VSOCK_CONN_FREE,
	VSOCK_CONN_HANDSHAKE,  /* host client connected, "CONNECT <port>\n" not read yet */
	VSOCK_CONN_CONNECTING, /* OP_REQUEST sent to the guest, no answer yet */
	VSOCK_CONN_ESTABLISHED,
};

struct vsock;

struct vsock_conn {
	struct vsock *vs;
	enum vsock_conn_state state;
	int fd;
	uint32_t armed; /* EPOLLIN/EPOLLOUT armed (one shot); 0: not armed */
	uint32_t local_port, peer_port;

	/* Guest to host: bytes the host socket has not taken yet. */
	uint8_t *buf; /* VSOCK_BUF_ALLOC bytes, allocated on first need */
	uint32_t buf_len;
	uint32_t rx_cnt;       /* payload bytes received from the guest */
	uint32_t fwd_cnt;      /* ... of which written to the host socket */
	uint32_t fwd_cnt_sent; /* fwd_cnt as the guest last saw it */
	bool update_queued;    /* an OP_CREDIT_UPDATE waits in the ring */

	/* Host to guest. */
	uint32_t tx_cnt; /* payload bytes sent to the guest */
	uint32_t peer_buf_alloc, peer_fwd_cnt;
	bool credit_requested;

	bool host_eof;	    /* host client sent EOF; OP_SHUTDOWN(SEND) queued */
	bool host_wr_shut;  /* shutdown(SHUT_WR) done on the host socket */
	bool guest_no_send; /* guest's OP_SHUTDOWN flags */
	bool guest_no_recv;

	char line[VSOCK_LINE_MAX];
	unsigned line_len;
	/* CONNECTING, but its OP_REQUEST waits for the guest to finish its
	 * transport reset (vsock_requests_held). */
	bool request_deferred;
};

/* A control packet waiting for a receive buffer. buf_alloc and fwd_cnt are
 * filled when it is delivered, from the connection as it is then. */
struct vsock_ctrl {
	uint16_t op;
	uint16_t flags;
	int16_t conn; /* slot, or -1 for a reset of an unknown connection */
	uint32_t local_port, peer_port;
};

struct vsock {
	struct virtio_dev vdev; /* first: container_of by cast */
	uint64_t guest_cid;
	uint8_t config[8]; /* §5.10.4: guest_cid, le64 */
	char uds_path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	int listen_fd;
	bool bound;	    /* uds_path is ours to unlink */
	bool accept_logged; /* accept() failures are reported once */
	bool full_logged;   /* refusals for a full table, once per episode */
	uint32_t next_port;

	bool rx_starved; /* a packet found no receive buffer */
	bool rx_used;	 /* receive chains pushed, interrupt not sent yet */
	bool rx_held;	 /* rx_req was popped and not used yet */
	/* A transport-reset event waits for an event-queue buffer (set by
	 * restore: the guest's connections did not survive). */
	bool evt_reset_pending;
	/* The reset event was delivered, and the driver has not yet made
	 * another event buffer available (it gives the used one back once it
	 * has handled the event): it may still be dropping connections, a new
	 * one among them. Host clients' OP_REQUESTs wait until it has. */
	bool evt_reset_unacked;
	int evt_avail_at_reset; /* the event queue's avail index then */
	struct virtq_req rx_req, tx_req, evt_req;
	struct iovec iov[VIRTQ_MAX_CHAIN];

	struct vsock_ctrl ctrl[VSOCK_CTRL_MAX];
	unsigned ctrl_head, ctrl_len;

	uint64_t dropped; /* packets from the guest ignored or reset */
	uint64_t ctrl_dropped;
	struct vsock_conn conns[VSOCK_MAX_CONNS];
};

/* ---- vsock.c ---- */

/* Whether a new host connection's OP_REQUEST must wait: the guest has a
 * transport reset coming or still running (after a restore). The request
 * goes out when it is over. */
bool vsock_requests_held(struct vsock *vs);

/* ---- vsock_rxq.c: receive queue ---- */

/* The receive chain the next packet goes into (popped now or held from
 * before), with room for at least a header; NULL when the driver has none. */
struct virtq_req *vsock_rxq_chain(struct vsock *vs);
/* Give the held chain to the driver: header plus `len` payload bytes
 * written. */
void vsock_rxq_complete(struct vsock *vs, uint32_t len);
/* Give the held chain back with nothing written. */
void vsock_rxq_discard(struct vsock *vs);
/* Interrupt the driver for the chains given back since the last call. At
 * the end of every entry point that may have pushed. */
void vsock_rxq_kick(struct vsock *vs);
/* A host-to-guest header for ctl's ports and op; credit fields zero. */
void vsock_rxq_fill_hdr(struct vsock *vs, struct vsock_hdr *h, const struct vsock_ctrl *ctl);
/* Credit fields from c, if c is still the connection h is addressed to;
 * records that the guest has now seen c's fwd_cnt. */
void vsock_rxq_fill_credit(struct vsock_hdr *h, struct vsock_conn *c);
/* Deliver waiting control packets while the driver has buffers. True when
 * none is left waiting. */
bool vsock_rxq_flush(struct vsock *vs);
/* Queue a control packet behind the others. -ENOBUFS when the ring is
 * full (the packet is lost). */
int vsock_rxq_enqueue(struct vsock *vs, const struct vsock_ctrl *ctl) __must_check;
/* Send a control packet now, or queue it; `conn` is the slot it belongs
 * to or -1. 0 or -ENOBUFS as vsock_rxq_enqueue(). */
int vsock_rxq_send_ctrl(struct vsock *vs, uint16_t op, uint16_t flags, int conn,
			uint32_t local_port, uint32_t peer_port) __must_check;
/* Reset a connection the device does not know (or no longer keeps). */
void vsock_rxq_send_rst(struct vsock *vs, uint32_t local_port, uint32_t peer_port);

/* ---- vsock_conn.c: connections ---- */

/* The connection (at least CONNECTING) between these ports, or NULL. */
struct vsock_conn *vsock_conn_find(struct vsock *vs, uint32_t local_port, uint32_t peer_port);
/* A free slot set up for fd in `state`, or NULL when all are taken. The
 * caller registers fd with the event loop. */
struct vsock_conn *vsock_conn_alloc(struct vsock *vs, int fd, enum vsock_conn_state state);
/* Forget c: unwatch and close its socket, free its buffer. No packet. */
void vsock_conn_close(struct vsock *vs, struct vsock_conn *c);
/* Send or queue a control packet for c; when even queueing fails, c is
 * closed (the guest would never hear of it again). 0 or -ENOBUFS. */
int vsock_conn_ctrl(struct vsock *vs, struct vsock_conn *c, uint16_t op, uint16_t flags);
/* Close c and tell the guest with OP_RST, unless it never heard of c. */
void vsock_conn_reset(struct vsock *vs, struct vsock_conn *c, const char *why);
/* Bytes the guest can still take on c. */
uint32_t vsock_conn_peer_free(const struct vsock_conn *c);
/* Watch c's socket for what c can make progress on now. */
void vsock_conn_rearm(struct vsock *vs, struct vsock_conn *c);
void vsock_conn_rearm_all(struct vsock *vs);
/* Complete a close the guest started, once its data reached the host.
 * True when c is gone. */
bool vsock_conn_maybe_finish(struct vsock *vs, struct vsock_conn *c);
/* OP_RW payload (`len` bytes after the header of req, already checked to
 * be there) for c's host socket. c may be reset. */
void vsock_conn_guest_rw(struct vsock *vs, struct vsock_conn *c, const struct virtq_req *req,
			 uint32_t len);
/* Event-loop callbacks: a connection's socket (opaque: its slot), and the
 * listening socket (opaque: the device). */
void vsock_conn_event(void *opaque, uint32_t events);
void vsock_conn_listen_event(void *opaque, uint32_t events);

#endif
