/* virtio-vsock packets (virtio 1.2 §5.10.6): the header, the checks a
 * packet from the guest must pass, the credit arithmetic and the host
 * handshake line. Pure functions, no device state: unit-tested without KVM
 * (tests/unit/test_vsock_pkt.c). */
#ifndef FORKD_DEVICES_VIRTIO_VSOCK_PKT_H
#define FORKD_DEVICES_VIRTIO_VSOCK_PKT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/log.h"

/* struct virtio_vsock_hdr, §5.10.6, little-endian like the host. */
struct vsock_hdr {
	uint64_t src_cid;
	uint64_t dst_cid;
	uint32_t src_port;
	uint32_t dst_port;
	uint32_t len; /* payload bytes after the header */
	uint16_t type;
	uint16_t op;
	uint32_t flags;
	uint32_t buf_alloc; /* sender's receive buffer, bytes */
	uint32_t fwd_cnt;   /* bytes the sender has consumed, mod 2^32 */
} __attribute__((packed));

#define VSOCK_HDR_LEN 44
_Static_assert(sizeof(struct vsock_hdr) == VSOCK_HDR_LEN, "virtio_vsock_hdr is 44 bytes");

#define VSOCK_HOST_CID 2

#define VSOCK_TYPE_STREAM 1

enum vsock_op {
	VSOCK_OP_INVALID = 0,
	VSOCK_OP_REQUEST = 1,
	VSOCK_OP_RESPONSE = 2,
	VSOCK_OP_RST = 3,
	VSOCK_OP_SHUTDOWN = 4,
	VSOCK_OP_RW = 5,
	VSOCK_OP_CREDIT_UPDATE = 6,
	VSOCK_OP_CREDIT_REQUEST = 7,
};

/* OP_SHUTDOWN flags: the sender will receive / send no more. */
#define VSOCK_SHUTDOWN_RCV  1
#define VSOCK_SHUTDOWN_SEND 2

enum vsock_verdict {
	VSOCK_PKT_OK,
	VSOCK_PKT_DROP,	 /* not addressed to us: ignore it */
	VSOCK_PKT_RESET, /* addressed to us but invalid: answer with RST */
};

/* Check a header the guest sent on its transmit queue; `avail` is the
 * number of chain bytes after the header, so h->len is trusted only when
 * it fits. */
enum vsock_verdict vsock_pkt_check(const struct vsock_hdr *h, uint64_t avail, uint64_t guest_cid);

/* Bytes the peer can still accept (§5.10.6.3): its buffer minus what is
 * in flight. A peer claiming to have consumed more than it was sent gets
 * no credit. */
uint32_t vsock_pkt_peer_free(uint32_t peer_buf_alloc, uint32_t peer_fwd_cnt, uint32_t tx_cnt);

/* Whether to tell the peer about consumed bytes now: it believes less than
 * half of our buffer is free (it saw fwd_cnt_sent) while more really is. */
bool vsock_pkt_need_credit_update(uint32_t buf_alloc, uint32_t rx_cnt, uint32_t fwd_cnt,
				  uint32_t fwd_cnt_sent);

/* Parse the host client's handshake "CONNECT <port>\n" (`len` bytes, the
 * newline included): decimal port, no sign, no spaces around it, at most
 * 4294967295. 0 or -EINVAL. */
int vsock_pkt_parse_connect(const char *line, size_t len, uint32_t *port) __must_check;

#endif
