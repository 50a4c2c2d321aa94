/* virtio-vsock packet logic (src/devices/virtio/vsock_pkt.c): which guest
 * headers are accepted, dropped or reset; credit arithmetic across 2^32
 * wrap-around and against a lying peer; when a credit update is due; and
 * the host handshake line. No KVM needed. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "devices/virtio/vsock_pkt.h"

#define CID 3

static struct vsock_hdr hdr(uint16_t op, uint32_t len)
{
	return (struct vsock_hdr){.src_cid = CID,
				  .dst_cid = VSOCK_HOST_CID,
				  .src_port = 40000,
				  .dst_port = 5000,
				  .len = len,
				  .type = VSOCK_TYPE_STREAM,
				  .op = op};
}

static void test_check_accepts_valid(void **state)
{
	struct vsock_hdr h;
	uint16_t op;

	for (op = VSOCK_OP_REQUEST; op <= VSOCK_OP_CREDIT_REQUEST; op++) {
		h = hdr(op, 0);
		assert_int_equal(vsock_pkt_check(&h, 0, CID), VSOCK_PKT_OK);
	}
	h = hdr(VSOCK_OP_RW, 4096);
	assert_int_equal(vsock_pkt_check(&h, 4096, CID), VSOCK_PKT_OK);
	assert_int_equal(vsock_pkt_check(&h, 100000, CID), VSOCK_PKT_OK);
}

static void test_check_addresses(void **state)
{
	struct vsock_hdr h = hdr(VSOCK_OP_RW, 0);

	h.src_cid = CID + 1; /* spoofed source */
	assert_int_equal(vsock_pkt_check(&h, 0, CID), VSOCK_PKT_DROP);
	h = hdr(VSOCK_OP_REQUEST, 0);
	h.dst_cid = CID; /* to itself, not the host */
	assert_int_equal(vsock_pkt_check(&h, 0, CID), VSOCK_PKT_DROP);
	h.dst_cid = 0xffffffffULL | (1ULL << 32); /* upper bits matter */
	assert_int_equal(vsock_pkt_check(&h, 0, CID), VSOCK_PKT_DROP);
	h = hdr(VSOCK_OP_REQUEST, 0);
	h.src_cid = CID | (1ULL << 40);
	assert_int_equal(vsock_pkt_check(&h, 0, CID), VSOCK_PKT_DROP);
}

static void test_check_len_never_trusted(void **state)
{
	struct vsock_hdr h = hdr(VSOCK_OP_RW, 4097);

	assert_int_equal(vsock_pkt_check(&h, 4096, CID), VSOCK_PKT_RESET);
	h.len = UINT32_MAX;
	assert_int_equal(vsock_pkt_check(&h, 65536, CID), VSOCK_PKT_RESET);
	h.len = 1;
	assert_int_equal(vsock_pkt_check(&h, 0, CID), VSOCK_PKT_RESET);
	/* Payload on a control packet. */
	h = hdr(VSOCK_OP_CREDIT_UPDATE, 8);
	assert_int_equal(vsock_pkt_check(&h, 8, CID), VSOCK_PKT_RESET);
}

static void test_check_type_and_op(void **state)
{
	struct vsock_hdr h = hdr(VSOCK_OP_REQUEST, 0);

	h.type = 2; /* SEQPACKET: not offered */
	assert_int_equal(vsock_pkt_check(&h, 0, CID), VSOCK_PKT_RESET);
	h = hdr(VSOCK_OP_INVALID, 0);
	assert_int_equal(vsock_pkt_check(&h, 0, CID), VSOCK_PKT_RESET);
	h = hdr(8, 0);
	assert_int_equal(vsock_pkt_check(&h, 0, CID), VSOCK_PKT_RESET);
	h = hdr(0xffff, 0);
	assert_int_equal(vsock_pkt_check(&h, 0, CID), VSOCK_PKT_RESET);
	/* A bad reset is dropped, never answered with another reset. */
	h = hdr(VSOCK_OP_RST, 0);
	h.type = 2;
	assert_int_equal(vsock_pkt_check(&h, 0, CID), VSOCK_PKT_DROP);
	h = hdr(VSOCK_OP_RST, 5);
	assert_int_equal(vsock_pkt_check(&h, 5, CID), VSOCK_PKT_DROP);
}

static void test_peer_free(void **state)
{
	assert_int_equal(vsock_pkt_peer_free(8192, 0, 0), 8192);
	assert_int_equal(vsock_pkt_peer_free(8192, 0, 4096), 4096);
	assert_int_equal(vsock_pkt_peer_free(8192, 0, 8192), 0);
	assert_int_equal(vsock_pkt_peer_free(8192, 4096, 8192), 4096);
	assert_int_equal(vsock_pkt_peer_free(0, 0, 0), 0);
	/* Counters wrap mod 2^32. */
	assert_int_equal(vsock_pkt_peer_free(8192, UINT32_MAX - 99, 100), 8192 - 200);
	/* The peer shrank its buffer below what is in flight. */
	assert_int_equal(vsock_pkt_peer_free(1000, 0, 4096), 0);
	/* A peer claiming to have consumed more than it got earns nothing. */
	assert_int_equal(vsock_pkt_peer_free(8192, 5000, 4096), 0);
}

static void test_credit_update_due(void **state)
{
	const uint32_t a = 65536;

	/* Nothing consumed since last told: never. */
	assert_false(vsock_pkt_need_credit_update(a, 60000, 0, 0));
	/* The peer still sees more than half free: not yet. */
	assert_false(vsock_pkt_need_credit_update(a, 30000, 30000, 0));
	/* It sees less than half free and more has been consumed: now. */
	assert_true(vsock_pkt_need_credit_update(a, 40000, 40000, 0));
	assert_true(vsock_pkt_need_credit_update(a, 65536, 1, 0));
	/* Once told, quiet again. */
	assert_false(vsock_pkt_need_credit_update(a, 40000, 40000, 40000));
	/* Across wrap-around. */
	assert_true(vsock_pkt_need_credit_update(a, 40000 - 50000, 40000 - 50000, -50000));
	assert_false(vsock_pkt_need_credit_update(a, 10, 10, -20));
}

static int parse(const char *s, uint32_t *port)
{
	return vsock_pkt_parse_connect(s, strlen(s), port);
}

static void test_parse_connect(void **state)
{
	static const char *bad[] = {
	    "",
	    "\n",
	    "CONNECT\n",
	    "CONNECT \n",
	    "CONNECT 12",
	    "CONNECT 12 \n",
	    "CONNECT  12\n",
	    "CONNECT +12\n",
	    "CONNECT -1\n",
	    "CONNECT 0x10\n",
	    "CONNECT 4294967296\n",
	    "CONNECT 99999999999\n",
	    "CONNECT 12\r\n",
	    "connect 12\n",
	    "CONNECTX12\n",
	    "CONNECT 1\n2\n",
	};
	uint32_t port = 7;
	unsigned i;

	assert_int_equal(parse("CONNECT 1234\n", &port), 0);
	assert_int_equal(port, 1234);
	assert_int_equal(parse("CONNECT 0\n", &port), 0);
	assert_int_equal(port, 0);
	assert_int_equal(parse("CONNECT 4294967295\n", &port), 0);
	assert_int_equal(port, UINT32_MAX);
	assert_int_equal(parse("CONNECT 0000000052\n", &port), 0);
	assert_int_equal(port, 52);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		port = 7;
		if (parse(bad[i], &port) != -EINVAL)
			fail_msg("accepted '%s'", bad[i]);
		assert_int_equal(port, 7);
	}
	/* The length given is what counts, not a NUL. */
	assert_int_equal(vsock_pkt_parse_connect("CONNECT 5\nxyz", 10, &port), 0);
	assert_int_equal(port, 5);
	assert_int_equal(vsock_pkt_parse_connect("CONNECT 5\n", 9, &port), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_check_accepts_valid),
	    cmocka_unit_test(test_check_addresses),
	    cmocka_unit_test(test_check_len_never_trusted),
	    cmocka_unit_test(test_check_type_and_op),
	    cmocka_unit_test(test_peer_free),
	    cmocka_unit_test(test_credit_update_due),
	    cmocka_unit_test(test_parse_connect),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
