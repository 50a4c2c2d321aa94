/* libFuzzer harness: the virtio-vsock inputs from outside the VMM
 * (devices/virtio/vsock_pkt.h): a packet header from the guest's transmit
 * queue with the bytes its chain claims to have left, and the "CONNECT
 * <port>\n" line a host client sends on the device's Unix socket. The
 * first bytes are a header, the rest a CONNECT line. */
#include <stdint.h>
#include <string.h>

#include "devices/virtio/vsock_pkt.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct vsock_hdr h;
	uint64_t avail;
	uint32_t port;

	if (size < sizeof(h) + 8)
		return 0;
	memcpy(&h, data, sizeof(h));
	memcpy(&avail, data + sizeof(h), 8);
	(void)vsock_pkt_check(&h, avail, 3);
	(void)vsock_pkt_peer_free(h.buf_alloc, h.fwd_cnt, (uint32_t)avail);
	(void)vsock_pkt_need_credit_update(h.buf_alloc, (uint32_t)avail, h.fwd_cnt,
					   (uint32_t)(avail >> 32));
	if (vsock_pkt_parse_connect((const char *)data + sizeof(h) + 8, size - sizeof(h) - 8,
				    &port) == 0) {
		/* A line that parses is "CONNECT " + decimal digits + "\n". */
		const char *line = (const char *)data + sizeof(h) + 8;

		if (memcmp(line, "CONNECT ", 8) || line[size - sizeof(h) - 8 - 1] != '\n')
			__builtin_trap();
	}
	return 0;
}
