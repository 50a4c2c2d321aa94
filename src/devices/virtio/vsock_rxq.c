/* virtio-vsock receive queue (device to guest): the chain the next packet
 * goes into, and the ring of control packets waiting for one. A control
 * packet carries its connection's credit as it is when delivered, not as
 * it was when queued. */
#include <errno.h>
#include <string.h>

#include "devices/virtio/vsock_dev.h"

/* The next receive chain big enough for a header, or NULL. */
struct virtq_req *vsock_rxq_chain(struct vsock *vs)
{
	struct virtio_dev *vdev = &vs->vdev;
	struct virtq *q = &vdev->queues[VSOCK_RXQ];

	while (!vs->rx_held) {
		int rc;

		if (!virtio_driver_ok(vdev))
			return NULL;
		rc = virtq_pop(&vdev->vm->mem, q, &vs->rx_req);
		if (rc < 0)
			virtio_fail(vdev, "malformed receive chain");
		if (rc <= 0)
			return NULL;
		if (vs->rx_req.in_len >= VSOCK_HDR_LEN) {
			vs->rx_held = true;
			break;
		}
		/* A buffer no packet fits in: hand it back unused. */
		vdev->errors++;
		if (virtq_push(&vdev->vm->mem, q, vs->rx_req.head, 0))
			return NULL;
		vs->rx_used = true;
	}
	return &vs->rx_req;
}

/* Hand the held chain to the driver with a header and `len` payload
 * bytes already in place. */
void vsock_rxq_complete(struct vsock *vs, uint32_t len)
{
	struct virtio_dev *vdev = &vs->vdev;

	vs->rx_held = false;
	if (virtq_push(&vdev->vm->mem, &vdev->queues[VSOCK_RXQ], vs->rx_req.head,
		       VSOCK_HDR_LEN + len) == 0)
		vs->rx_used = true;
}

/* Hand the held chain back with nothing written. */
void vsock_rxq_discard(struct vsock *vs)
{
	struct virtio_dev *vdev = &vs->vdev;

	vs->rx_held = false;
	if (virtq_push(&vdev->vm->mem, &vdev->queues[VSOCK_RXQ], vs->rx_req.head, 0) == 0)
		vs->rx_used = true;
}

/* Interrupt the driver for what was pushed. End of every entry point. */
void vsock_rxq_kick(struct vsock *vs)
{
	if (vs->rx_used)
		virtio_notify_used(&vs->vdev, VSOCK_RXQ);
	vs->rx_used = false;
}

void vsock_rxq_fill_hdr(struct vsock *vs, struct vsock_hdr *h, const struct vsock_ctrl *c)
{
	memset(h, 0, sizeof(*h));
	h->src_cid = VSOCK_HOST_CID;
	h->dst_cid = vs->guest_cid;
	h->src_port = c->local_port;
	h->dst_port = c->peer_port;
	h->type = VSOCK_TYPE_STREAM;
	h->op = c->op;
	h->flags = c->flags;
}

/* Fill in the credit fields for connection c (if it is still the same
 * connection) and note that the guest has now seen fwd_cnt. */
void vsock_rxq_fill_credit(struct vsock_hdr *h, struct vsock_conn *c)
{
	if (!c || c->state == VSOCK_CONN_FREE || c->local_port != h->src_port ||
	    c->peer_port != h->dst_port)
		return;
	h->buf_alloc = VSOCK_BUF_ALLOC;
	h->fwd_cnt = c->fwd_cnt;
	c->fwd_cnt_sent = c->fwd_cnt;
	if (h->op == VSOCK_OP_CREDIT_UPDATE)
		c->update_queued = false;
}

static bool deliver_ctrl(struct vsock *vs, const struct vsock_ctrl *ctl)
{
	struct virtq_req *req = vsock_rxq_chain(vs);
	struct vsock_hdr h;

	if (!req)
		return false;
	vsock_rxq_fill_hdr(vs, &h, ctl);
	vsock_rxq_fill_credit(&h, ctl->conn >= 0 ? &vs->conns[ctl->conn] : NULL);
	virtq_req_write(req, 0, &h, sizeof(h));
	vsock_rxq_complete(vs, 0);
	return true;
}

/* Deliver waiting control packets while there are buffers. True when the
 * ring is empty. */
bool vsock_rxq_flush(struct vsock *vs)
{
	while (vs->ctrl_len) {
		if (!deliver_ctrl(vs, &vs->ctrl[vs->ctrl_head])) {
			vs->rx_starved = true;
			return false;
		}
		vs->ctrl_head = (vs->ctrl_head + 1) % VSOCK_CTRL_MAX;
		vs->ctrl_len--;
	}
	return true;
}

/* Send a control packet now or queue it. -ENOBUFS when the ring is full
 * (a driver that gives no receive buffers): the packet is lost. */
int vsock_rxq_enqueue(struct vsock *vs, const struct vsock_ctrl *ctl)
{
	vs->rx_starved = true;
	if (vs->ctrl_len == VSOCK_CTRL_MAX) {
		vs->ctrl_dropped++;
		return -ENOBUFS;
	}
	vs->ctrl[(vs->ctrl_head + vs->ctrl_len) % VSOCK_CTRL_MAX] = *ctl;
	vs->ctrl_len++;
	return 0;
}

int vsock_rxq_send_ctrl(struct vsock *vs, uint16_t op, uint16_t flags, int conn,
			uint32_t local_port, uint32_t peer_port)
{
	struct vsock_ctrl ctl = {op, flags, (int16_t)conn, local_port, peer_port};

	if (vsock_rxq_flush(vs) && deliver_ctrl(vs, &ctl))
		return 0;
	return vsock_rxq_enqueue(vs, &ctl);
}

/* Reset a connection the device does not know (or no longer wants). */
void vsock_rxq_send_rst(struct vsock *vs, uint32_t local_port, uint32_t peer_port)
{
	(void)!vsock_rxq_send_ctrl(vs, VSOCK_OP_RST, 0, -1, local_port, peer_port);
}
