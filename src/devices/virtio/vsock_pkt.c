#include "devices/virtio/vsock_pkt.h"

#include <errno.h>
#include <string.h>

enum vsock_verdict vsock_pkt_check(const struct vsock_hdr *h, uint64_t avail, uint64_t guest_cid)
{
	/* §5.10.6.1: a packet whose addresses are not this guest to the host
	 * belongs to no connection here. */
	if (h->src_cid != guest_cid || h->dst_cid != VSOCK_HOST_CID)
		return VSOCK_PKT_DROP;
	if (h->op == VSOCK_OP_RST)
		return h->type == VSOCK_TYPE_STREAM && h->len == 0 ? VSOCK_PKT_OK : VSOCK_PKT_DROP;
	if (h->type != VSOCK_TYPE_STREAM)
		return VSOCK_PKT_RESET;
	if (h->op < VSOCK_OP_REQUEST || h->op > VSOCK_OP_CREDIT_REQUEST)
		return VSOCK_PKT_RESET;
	if (h->len > avail)
		return VSOCK_PKT_RESET;
	if (h->op != VSOCK_OP_RW && h->len != 0)
		return VSOCK_PKT_RESET;
	return VSOCK_PKT_OK;
}

uint32_t vsock_pkt_peer_free(uint32_t peer_buf_alloc, uint32_t peer_fwd_cnt, uint32_t tx_cnt)
{
	uint32_t in_flight = tx_cnt - peer_fwd_cnt; /* mod 2^32, as the counters */

	return in_flight >= peer_buf_alloc ? 0 : peer_buf_alloc - in_flight;
}

bool vsock_pkt_need_credit_update(uint32_t buf_alloc, uint32_t rx_cnt, uint32_t fwd_cnt,
				  uint32_t fwd_cnt_sent)
{
	uint32_t seen_free = vsock_pkt_peer_free(buf_alloc, fwd_cnt_sent, rx_cnt);

	return fwd_cnt != fwd_cnt_sent && seen_free < buf_alloc / 2;
}

int vsock_pkt_parse_connect(const char *line, size_t len, uint32_t *port)
{
	static const char verb[] = "CONNECT ";
	const size_t vlen = sizeof(verb) - 1;
	uint64_t v = 0;
	size_t i;

	if (len < vlen + 2 || memcmp(line, verb, vlen) || line[len - 1] != '\n')
		return -EINVAL;
	if (len - vlen - 1 > 10)
		return -EINVAL; /* more digits than any u32 has */
	for (i = vlen; i < len - 1; i++) {
		if (line[i] < '0' || line[i] > '9')
			return -EINVAL;
		v = v * 10 + (uint64_t)(line[i] - '0');
	}
	if (v > UINT32_MAX)
		return -EINVAL;
	*port = (uint32_t)v;
	return 0;
}
