/* Split virtqueue (src/devices/virtio/queue.c) over a fake guest memory:
 * good rings, every malformation a hostile driver can write, and the
 * exact return codes and q->broken afterwards. No KVM needed. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "devices/virtio/queue.h"

#define RAM	  (1024 * 1024)
#define QSZ	  16
#define DESC_GPA  0x1000
#define AVAIL_GPA 0x2000
#define USED_GPA  0x3000
#define BUF_GPA	  0x10000

struct vring_desc {
	uint64_t addr;
	uint32_t len;
	uint16_t flags;
	uint16_t next;
} __attribute__((packed));

struct fixture {
	struct guest_mem mem;
	struct virtq q;
	struct virtq_req req;
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	f->mem.base = calloc(1, RAM);
	assert_non_null(f->mem.base);
	f->mem.size = f->mem.low_size = RAM;
	f->mem.fd = -1;
	f->q = (struct virtq){.size = QSZ,
			      .max = 256,
			      .ready = true,
			      .desc_gpa = DESC_GPA,
			      .avail_gpa = AVAIL_GPA,
			      .used_gpa = USED_GPA};
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	free(f->mem.base);
	free(f);
	return 0;
}

static struct vring_desc *desc(struct fixture *f, unsigned i)
{
	return (struct vring_desc *)(f->mem.base + DESC_GPA) + i;
}

static void set_desc(struct fixture *f, unsigned i, uint64_t addr, uint32_t len, uint16_t flags,
		     uint16_t next)
{
	struct vring_desc d = {addr, len, flags, next};

	memcpy(desc(f, i), &d, sizeof(d));
}

static uint16_t *avail_idx(struct fixture *f)
{
	return (uint16_t *)(f->mem.base + AVAIL_GPA + 2);
}

static uint16_t *used_idx(struct fixture *f)
{
	return (uint16_t *)(f->mem.base + USED_GPA + 2);
}

/* Publish head in the next avail slot. */
static void post(struct fixture *f, uint16_t head)
{
	uint16_t idx = *avail_idx(f);

	memcpy(f->mem.base + AVAIL_GPA + 4 + 2 * (idx % f->q.size), &head, 2);
	*avail_idx(f) = (uint16_t)(idx + 1);
}

static void expect_broken(struct fixture *f)
{
	assert_int_equal(virtq_pop(&f->mem, &f->q, &f->req), -EINVAL);
	assert_true(f->q.broken);
	/* A broken queue consumes nothing more, even a good chain. */
	set_desc(f, 5, BUF_GPA, 16, VIRTQ_DESC_WRITE, 0);
	post(f, 5);
	assert_int_equal(virtq_pop(&f->mem, &f->q, &f->req), 0);
}

/* ---- virtq_validate ---- */

static void test_validate_good(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(virtq_validate(&f->mem, &f->q), 0);
	f->q.size = 256;
	assert_int_equal(virtq_validate(&f->mem, &f->q), 0);
	f->q.size = 1;
	assert_int_equal(virtq_validate(&f->mem, &f->q), 0);
	/* Rings ending exactly at the end of RAM are fine. */
	f->q.size = QSZ;
	f->q.avail_gpa = RAM - (6 + 2 * QSZ);
	assert_int_equal(virtq_validate(&f->mem, &f->q), 0);
}

static void test_validate_bad_size(void **state)
{
	struct fixture *f = *state;

	f->q.size = 0;
	assert_int_equal(virtq_validate(&f->mem, &f->q), -EINVAL);
	f->q.size = 24;
	assert_int_equal(virtq_validate(&f->mem, &f->q), -EINVAL);
	f->q.size = 512; /* power of 2 above max */
	assert_int_equal(virtq_validate(&f->mem, &f->q), -EINVAL);
	f->q.max = 64;
	f->q.size = 128;
	assert_int_equal(virtq_validate(&f->mem, &f->q), -EINVAL);
}

static void test_validate_misaligned(void **state)
{
	struct fixture *f = *state;

	f->q.desc_gpa = DESC_GPA + 8;
	assert_int_equal(virtq_validate(&f->mem, &f->q), -EINVAL);
	f->q.desc_gpa = DESC_GPA;
	f->q.avail_gpa = AVAIL_GPA + 1;
	assert_int_equal(virtq_validate(&f->mem, &f->q), -EINVAL);
	f->q.avail_gpa = AVAIL_GPA;
	f->q.used_gpa = USED_GPA + 2;
	assert_int_equal(virtq_validate(&f->mem, &f->q), -EINVAL);
}

static void test_validate_outside_ram(void **state)
{
	struct fixture *f = *state;

	f->q.desc_gpa = 0xFFFFF0000000ULL;
	assert_int_equal(virtq_validate(&f->mem, &f->q), -EINVAL);
	f->q.desc_gpa = DESC_GPA;
	f->q.avail_gpa = RAM - 4; /* starts inside, ends outside */
	assert_int_equal(virtq_validate(&f->mem, &f->q), -EINVAL);
	f->q.avail_gpa = AVAIL_GPA;
	f->q.used_gpa = RAM - 132; /* aligned, 2 bytes too long */
	assert_int_equal(virtq_validate(&f->mem, &f->q), -EINVAL);
	f->q.used_gpa = 0xFFFFFFFFFFFFFFF0ULL; /* gpa + len wraps */
	assert_int_equal(virtq_validate(&f->mem, &f->q), -EINVAL);
	f->q.used_gpa = MEM_HOLE_START; /* the MMIO hole */
	assert_int_equal(virtq_validate(&f->mem, &f->q), -EINVAL);
}

/* ---- good chains ---- */

static void test_pop_empty_and_not_ready(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(virtq_pop(&f->mem, &f->q, &f->req), 0);
	set_desc(f, 0, BUF_GPA, 16, 0, 0);
	post(f, 0);
	f->q.ready = false;
	assert_int_equal(virtq_pop(&f->mem, &f->q, &f->req), 0);
	f->q.ready = true;
	assert_int_equal(virtq_pop(&f->mem, &f->q, &f->req), 1);
	assert_int_equal(virtq_pop(&f->mem, &f->q, &f->req), 0);
	assert_false(f->q.broken);
}

static void test_pop_chain(void **state)
{
	struct fixture *f = *state;
	struct virtq_req *r = &f->req;

	/* Out of order descriptor indexes: 3 -> 7 -> 1 -> 9. */
	set_desc(f, 3, BUF_GPA, 16, VIRTQ_DESC_NEXT, 7);
	set_desc(f, 7, BUF_GPA + 0x100, 100, VIRTQ_DESC_NEXT, 1);
	set_desc(f, 1, BUF_GPA + 0x1000, 512, VIRTQ_DESC_WRITE | VIRTQ_DESC_NEXT, 9);
	set_desc(f, 9, BUF_GPA + 0x2000, 1, VIRTQ_DESC_WRITE, 0);
	post(f, 3);
	assert_int_equal(virtq_pop(&f->mem, &f->q, r), 1);
	assert_int_equal(r->head, 3);
	assert_int_equal(r->nr, 4);
	assert_int_equal(r->nr_out, 2);
	assert_int_equal(r->out_len, 116);
	assert_int_equal(r->in_len, 513);
	assert_ptr_equal(r->bufs[0].ptr, f->mem.base + BUF_GPA);
	assert_ptr_equal(r->bufs[1].ptr, f->mem.base + BUF_GPA + 0x100);
	assert_ptr_equal(r->bufs[2].ptr, f->mem.base + BUF_GPA + 0x1000);
	assert_int_equal(r->bufs[2].len, 512);
	assert_false(r->bufs[1].writable);
	assert_true(r->bufs[3].writable);
	assert_int_equal(f->q.last_avail, 1);
	assert_false(f->q.broken);
}

static void test_pop_longest_chain(void **state)
{
	struct fixture *f = *state;
	unsigned i;

	/* size descriptors, each used once: the longest legal chain. */
	for (i = 0; i < QSZ; i++)
		set_desc(f, i, BUF_GPA + 16 * i, 16, i + 1 < QSZ ? VIRTQ_DESC_NEXT : 0,
			 (uint16_t)(i + 1));
	post(f, 0);
	assert_int_equal(virtq_pop(&f->mem, &f->q, &f->req), 1);
	assert_int_equal(f->req.nr, QSZ);
	assert_int_equal(f->req.out_len, 16 * QSZ);
}

static void test_push_and_wrap(void **state)
{
	struct fixture *f = *state;
	unsigned i;

	/* Start both indexes near the 16-bit wrap. */
	f->q.last_avail = 65530;
	*avail_idx(f) = 65530;
	f->q.used_idx = 65530;
	set_desc(f, 2, BUF_GPA, 64, VIRTQ_DESC_WRITE, 0);
	for (i = 0; i < 3 * QSZ; i++) {
		uint32_t id, len;
		uint8_t *elem;

		post(f, 2);
		assert_int_equal(virtq_pop(&f->mem, &f->q, &f->req), 1);
		assert_int_equal(f->req.head, 2);
		assert_int_equal(virtq_push(&f->mem, &f->q, 2, 40 + i), 0);
		assert_int_equal(*used_idx(f), (uint16_t)(65531 + i));
		elem = f->mem.base + USED_GPA + 4 + 8 * ((uint16_t)(65530 + i) % QSZ);
		memcpy(&id, elem, 4);
		memcpy(&len, elem + 4, 4);
		assert_int_equal(id, 2);
		assert_int_equal(len, 40 + i);
	}
	assert_false(f->q.broken);
}

static void test_avail_full_ring(void **state)
{
	struct fixture *f = *state;
	unsigned i;

	/* Exactly size chains outstanding is legal. */
	for (i = 0; i < QSZ; i++) {
		set_desc(f, i, BUF_GPA, 8, 0, 0);
		post(f, (uint16_t)i);
	}
	for (i = 0; i < QSZ; i++) {
		assert_int_equal(virtq_pop(&f->mem, &f->q, &f->req), 1);
		assert_int_equal(f->req.head, i);
	}
	assert_int_equal(virtq_pop(&f->mem, &f->q, &f->req), 0);
}

static void test_should_interrupt(void **state)
{
	struct fixture *f = *state;
	uint16_t flags = 1;

	assert_true(virtq_should_interrupt(&f->mem, &f->q));
	memcpy(f->mem.base + AVAIL_GPA, &flags, 2);
	assert_false(virtq_should_interrupt(&f->mem, &f->q));
}

static void test_req_read_write(void **state)
{
	struct fixture *f = *state;
	uint8_t out[64], in[64];
	unsigned i;

	for (i = 0; i < 64; i++)
		f->mem.base[BUF_GPA + i] = (uint8_t)i;
	set_desc(f, 0, BUF_GPA, 10, VIRTQ_DESC_NEXT, 1);
	set_desc(f, 1, BUF_GPA + 10, 20, VIRTQ_DESC_NEXT, 2);
	set_desc(f, 2, BUF_GPA + 0x100, 5, VIRTQ_DESC_WRITE | VIRTQ_DESC_NEXT, 3);
	set_desc(f, 3, BUF_GPA + 0x200, 7, VIRTQ_DESC_WRITE, 0);
	post(f, 0);
	assert_int_equal(virtq_pop(&f->mem, &f->q, &f->req), 1);

	/* Reads see the readable part only, as one stream. */
	assert_int_equal(virtq_req_read(&f->req, 8, out, 64), 22);
	for (i = 0; i < 22; i++)
		assert_int_equal(out[i], 8 + i);
	assert_int_equal(virtq_req_read(&f->req, 30, out, 4), 0);

	/* Writes fill the writable part only, spilling across buffers. */
	memset(in, 0xab, sizeof(in));
	assert_int_equal(virtq_req_write(&f->req, 3, in, 64), 9);
	assert_int_equal(f->mem.base[BUF_GPA + 0x100 + 2], 0);
	assert_int_equal(f->mem.base[BUF_GPA + 0x100 + 3], 0xab);
	assert_int_equal(f->mem.base[BUF_GPA + 0x200 + 6], 0xab);
	assert_int_equal(f->mem.base[BUF_GPA + 0x200 + 7], 0);
	assert_int_equal(virtq_req_write(&f->req, 12, in, 1), 0);
}

/* ---- malformed chains ---- */

static void test_loop(void **state)
{
	struct fixture *f = *state;

	set_desc(f, 0, BUF_GPA, 16, VIRTQ_DESC_NEXT, 1);
	set_desc(f, 1, BUF_GPA, 16, VIRTQ_DESC_NEXT, 2);
	set_desc(f, 2, BUF_GPA, 16, VIRTQ_DESC_NEXT, 1);
	post(f, 0);
	expect_broken(f);
}

static void test_self_loop(void **state)
{
	struct fixture *f = *state;

	set_desc(f, 4, BUF_GPA, 16, VIRTQ_DESC_WRITE | VIRTQ_DESC_NEXT, 4);
	post(f, 4);
	expect_broken(f);
}

static void test_next_out_of_range(void **state)
{
	struct fixture *f = *state;

	set_desc(f, 0, BUF_GPA, 16, VIRTQ_DESC_NEXT, QSZ);
	post(f, 0);
	expect_broken(f);
}

static void test_next_0xffff(void **state)
{
	struct fixture *f = *state;

	set_desc(f, 0, BUF_GPA, 16, VIRTQ_DESC_NEXT, 0xffff);
	post(f, 0);
	expect_broken(f);
}

static void test_head_out_of_range(void **state)
{
	struct fixture *f = *state;

	post(f, QSZ);
	expect_broken(f);
}

static void test_buffer_outside_ram(void **state)
{
	struct fixture *f = *state;

	set_desc(f, 0, BUF_GPA, 16, VIRTQ_DESC_NEXT, 1);
	set_desc(f, 1, 0xFFFFF0000000ULL, 512, VIRTQ_DESC_WRITE, 0);
	post(f, 0);
	expect_broken(f);
}

static void test_buffer_across_ram_end(void **state)
{
	struct fixture *f = *state;

	set_desc(f, 0, RAM - 256, 512, VIRTQ_DESC_WRITE, 0);
	post(f, 0);
	expect_broken(f);
}

static void test_buffer_wraps(void **state)
{
	struct fixture *f = *state;

	set_desc(f, 0, 0xFFFFFFFFFFFFFF00ULL, 0x200, 0, 0);
	post(f, 0);
	expect_broken(f);
}

static void test_huge_length(void **state)
{
	struct fixture *f = *state;

	set_desc(f, 0, BUF_GPA, 0xFFFFFFF0u, VIRTQ_DESC_WRITE, 0);
	post(f, 0);
	expect_broken(f);
}

static void test_readable_after_writable(void **state)
{
	struct fixture *f = *state;

	set_desc(f, 0, BUF_GPA, 16, VIRTQ_DESC_NEXT, 1);
	set_desc(f, 1, BUF_GPA + 16, 16, VIRTQ_DESC_WRITE | VIRTQ_DESC_NEXT, 2);
	set_desc(f, 2, BUF_GPA + 32, 16, 0, 0);
	post(f, 0);
	expect_broken(f);
}

static void test_indirect(void **state)
{
	struct fixture *f = *state;

	set_desc(f, 0, BUF_GPA, 16, VIRTQ_DESC_INDIRECT, 0);
	post(f, 0);
	expect_broken(f);
}

static void test_avail_idx_jump(void **state)
{
	struct fixture *f = *state;

	set_desc(f, 0, BUF_GPA, 16, 0, 0);
	*avail_idx(f) = QSZ + 1;
	expect_broken(f);
}

static void test_avail_idx_backwards(void **state)
{
	struct fixture *f = *state;

	/* An index that went back looks like a jump of almost 65536. */
	f->q.last_avail = 10;
	*avail_idx(f) = 9;
	expect_broken(f);
}

static void test_rings_outside_ram_at_pop(void **state)
{
	struct fixture *f = *state;

	/* A queue made ready by something that skipped virtq_validate (a
	 * bad restore): pop must still check. */
	f->q.avail_gpa = RAM;
	assert_int_equal(virtq_pop(&f->mem, &f->q, &f->req), -EINVAL);
	assert_true(f->q.broken);
	f->q.broken = false;
	f->q.avail_gpa = AVAIL_GPA;
	f->q.desc_gpa = 0xFFFFF0000000ULL;
	assert_int_equal(virtq_pop(&f->mem, &f->q, &f->req), -EINVAL);
	assert_true(f->q.broken);
}

static void test_push_used_outside_ram(void **state)
{
	struct fixture *f = *state;

	f->q.used_gpa = RAM - 8;
	assert_int_equal(virtq_push(&f->mem, &f->q, 0, 0), -EFAULT);
}

/* More than 4 GiB in one chain. The fake RAM claims 3 GiB over a 1 MiB
 * allocation: virtq_pop only computes buffer pointers, never touches the
 * buffers, and the rings lie in the first MiB. */
static void test_over_4gib(void **state)
{
	struct fixture *f = *state;
	struct guest_mem big = f->mem;

	big.size = big.low_size = 3ULL << 30;
	set_desc(f, 0, 0, 0x80000000u, 0, 1);
	desc(f, 0)->flags = VIRTQ_DESC_NEXT;
	set_desc(f, 1, 0, 0x80000000u, VIRTQ_DESC_WRITE, 0);
	post(f, 0);
	/* Exactly 4 GiB: still one byte too many for a 32-bit used length. */
	assert_int_equal(virtq_pop(&big, &f->q, &f->req), -EINVAL);
	assert_true(f->q.broken);

	/* Just under: accepted. */
	f->q.broken = false;
	set_desc(f, 1, 0, 0x7fffffffu, VIRTQ_DESC_WRITE, 0);
	post(f, 0);
	assert_int_equal(virtq_pop(&big, &f->q, &f->req), 1);
	assert_int_equal(f->req.out_len + f->req.in_len, 0xffffffffULL);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
	    T(test_validate_good),
	    T(test_validate_bad_size),
	    T(test_validate_misaligned),
	    T(test_validate_outside_ram),
	    T(test_pop_empty_and_not_ready),
	    T(test_pop_chain),
	    T(test_pop_longest_chain),
	    T(test_push_and_wrap),
	    T(test_avail_full_ring),
	    T(test_should_interrupt),
	    T(test_req_read_write),
	    T(test_loop),
	    T(test_self_loop),
	    T(test_next_out_of_range),
	    T(test_next_0xffff),
	    T(test_head_out_of_range),
	    T(test_buffer_outside_ram),
	    T(test_buffer_across_ram_end),
	    T(test_buffer_wraps),
	    T(test_huge_length),
	    T(test_readable_after_writable),
	    T(test_indirect),
	    T(test_avail_idx_jump),
	    T(test_avail_idx_backwards),
	    T(test_rings_outside_ram_at_pop),
	    T(test_push_used_outside_ram),
	    T(test_over_4gib),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
