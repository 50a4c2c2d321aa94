/* The COM1 16550A (src/devices/serial.c) driven through the PIO bus as a
 * guest driver would: scratch and status registers, the divisor latch,
 * bounded console output, loopback receive, FIFO reporting, and the
 * interrupt line: which conditions raise an edge, how OUT2 gates it and
 * how reading IIR acknowledges THRE. KVM_IRQ_LINE is captured by a fake
 * ioctl(); no KVM needed. */
#include <errno.h>
#include <linux/kvm.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cmocka.h>

#include "devices/serial.h"

#define FAKE_VM_FD 987
#define RBR_THR	   0
#define IER	   1
#define IIR_FCR	   2
#define LCR	   3
#define MCR	   4
#define LSR	   5
#define MSR	   6
#define SCR	   7

/* Rising edges seen on each interrupt line, and its current level. */
static unsigned edges[24];
static int level[24];

/* Stands in for the C library's ioctl(): the VM's only ioctl the serial
 * device reaches is KVM_IRQ_LINE on the VM fd. */
int ioctl(int fd, unsigned long req, ...)
{
	struct kvm_irq_level *l;
	va_list ap;

	va_start(ap, req);
	l = va_arg(ap, struct kvm_irq_level *);
	va_end(ap);
	if (fd != FAKE_VM_FD || req != KVM_IRQ_LINE || l->irq >= 24) {
		errno = ENOTTY;
		return -1;
	}
	if (l->level && !level[l->irq])
		edges[l->irq]++;
	level[l->irq] = l->level;
	return 0;
}

struct fixture {
	struct vm *vm;
	int out;
};

static int setup_max(void **state, uint64_t max)
{
	struct fixture *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	f->vm = calloc(1, sizeof(*f->vm));
	assert_non_null(f->vm);
	f->vm->vm_fd = FAKE_VM_FD;
	f->vm->kvm_fd = f->vm->stopfd = f->vm->loop.epfd = -1;
	f->vm->pio.name = "pio";
	f->out = memfd_create("serial-out", MFD_CLOEXEC);
	assert_true(f->out >= 0);
	memset(edges, 0, sizeof(edges));
	memset(level, 0, sizeof(level));
	assert_int_equal(
	    serial_create(f->vm,
			  &(struct serial_opts){.out_fd = f->out, .in_fd = -1, .max_bytes = max}),
	    0);
	*state = f;
	return 0;
}

static int setup(void **state)
{
	return setup_max(state, 0);
}

static int setup_limited(void **state)
{
	return setup_max(state, 4);
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	while (f->vm->nr_devices) {
		struct device *d = &f->vm->devices[--f->vm->nr_devices];

		d->ops->destroy(d->priv);
	}
	close(f->out);
	free(f->vm);
	free(f);
	return 0;
}

static void wr(struct fixture *f, unsigned reg, uint8_t v)
{
	assert_true(bus_write(&f->vm->pio, SERIAL_COM1_PORT + reg, &v, 1));
}

static uint8_t rd(struct fixture *f, unsigned reg)
{
	uint8_t v = 0;

	assert_true(bus_read(&f->vm->pio, SERIAL_COM1_PORT + reg, &v, 1));
	return v;
}

static size_t output(struct fixture *f, char *buf, size_t len)
{
	ssize_t n = pread(f->out, buf, len - 1, 0);

	assert_true(n >= 0);
	buf[n] = 0;
	return (size_t)n;
}

static void test_registers(void **state)
{
	struct fixture *f = *state;
	uint16_t w = 0;

	wr(f, SCR, 0xa5);
	assert_int_equal(rd(f, SCR), 0xa5);
	assert_int_equal(rd(f, LSR), 0x60); /* THRE | TEMT, no data */
	assert_int_equal(rd(f, MSR), 0xb0); /* DCD | DSR | CTS */
	assert_int_equal(rd(f, MCR), 0x08); /* OUT2 as firmware leaves it */
	assert_int_equal(rd(f, IIR_FCR), 0x01);
	/* Only byte accesses are meaningful; wider ones read all-ones. */
	assert_true(bus_read(&f->vm->pio, SERIAL_COM1_PORT + SCR - 1, &w, 2));
	assert_int_equal(w, 0xffff);
}

static void test_divisor_latch(void **state)
{
	struct fixture *f = *state;
	char buf[16];

	wr(f, LCR, 0x83); /* DLAB, 8N1 */
	wr(f, RBR_THR, 0x0c);
	wr(f, IER, 0x01);
	assert_int_equal(rd(f, RBR_THR), 0x0c);
	assert_int_equal(rd(f, IER), 0x01);
	wr(f, LCR, 0x03);
	assert_int_equal(rd(f, IER), 0x00);
	assert_int_equal(output(f, buf, sizeof(buf)), 0);
}

static void test_output(void **state)
{
	struct fixture *f = *state;
	const char *s = "hello\n";
	char buf[32];

	for (const char *p = s; *p; p++)
		wr(f, RBR_THR, (uint8_t)*p);
	assert_int_equal(output(f, buf, sizeof(buf)), strlen(s));
	assert_string_equal(buf, s);
	assert_int_equal(rd(f, LSR) & 0x60, 0x60);
}

static void test_output_limit(void **state)
{
	struct fixture *f = *state;
	char buf[256];
	int i;

	for (i = 0; i < 100; i++)
		wr(f, RBR_THR, 'x');
	output(f, buf, sizeof(buf));
	assert_memory_equal(buf, "xxxx\n", 5);
	assert_non_null(strstr(buf, "output limit"));
	/* The note is written once. */
	assert_null(strstr(strstr(buf, "output limit") + 1, "output limit"));
}

static void test_thre_interrupt(void **state)
{
	struct fixture *f = *state;

	/* Enabling THRI with the holding register empty interrupts at once. */
	wr(f, IER, 0x02);
	assert_int_equal(edges[SERIAL_COM1_IRQ], 1);
	assert_int_equal(rd(f, IIR_FCR) & 0x0f, 0x02);
	/* Reading IIR acknowledged it. */
	assert_int_equal(rd(f, IIR_FCR) & 0x0f, 0x01);
	wr(f, RBR_THR, 'a');
	assert_int_equal(edges[SERIAL_COM1_IRQ], 2);
	/* forkd keeps the line asserted until IIR is read, so another byte
	 * before that raises no new edge (a real 16550 drops INTR on the THR
	 * write and raises it again once the byte is sent). */
	wr(f, RBR_THR, 'b');
	assert_int_equal(edges[SERIAL_COM1_IRQ], 2);
	assert_int_equal(rd(f, IIR_FCR) & 0x0f, 0x02);
	wr(f, RBR_THR, 'c');
	assert_int_equal(edges[SERIAL_COM1_IRQ], 3);
	/* IER cleared: bytes go out silently. */
	rd(f, IIR_FCR);
	wr(f, IER, 0);
	wr(f, RBR_THR, 'd');
	assert_int_equal(edges[SERIAL_COM1_IRQ], 3);
	/* No other line was touched. */
	for (unsigned i = 0; i < 24; i++)
		if (i != SERIAL_COM1_IRQ)
			assert_int_equal(edges[i], 0);
}

static void test_out2_gates_interrupt(void **state)
{
	struct fixture *f = *state;

	wr(f, MCR, 0x00);
	wr(f, IER, 0x02);
	assert_int_equal(edges[SERIAL_COM1_IRQ], 0);
	/* The UART still has the interrupt pending... */
	wr(f, MCR, 0x08);
	/* ...and OUT2 connects it to the line. */
	assert_int_equal(edges[SERIAL_COM1_IRQ], 1);
}

static void test_loopback_receive(void **state)
{
	struct fixture *f = *state;
	char buf[8];
	int i;

	wr(f, MCR, 0x10 | 0x08 | 0x03);			  /* LOOP, OUT2, RTS, DTR */
	assert_int_equal(rd(f, MSR) & 0xf0, 0x30 | 0x80); /* CTS, DSR, DCD */
	wr(f, IER, 0x01);
	assert_int_equal(edges[SERIAL_COM1_IRQ], 0);
	wr(f, RBR_THR, 'Q');
	assert_int_equal(edges[SERIAL_COM1_IRQ], 1);
	assert_int_equal(rd(f, LSR) & 0x01, 0x01);
	assert_int_equal(rd(f, IIR_FCR) & 0x0f, 0x04);
	assert_int_equal(rd(f, RBR_THR), 'Q');
	assert_int_equal(rd(f, LSR) & 0x01, 0x00);
	assert_int_equal(rd(f, IIR_FCR) & 0x0f, 0x01);
	/* Looped back bytes never reach the console. */
	assert_int_equal(output(f, buf, sizeof(buf)), 0);

	/* The receive FIFO holds 64 bytes; the rest is dropped. */
	for (i = 0; i < 70; i++)
		wr(f, RBR_THR, (uint8_t)i);
	for (i = 0; i < 64; i++)
		assert_int_equal(rd(f, RBR_THR), i);
	assert_int_equal(rd(f, LSR) & 0x01, 0);
	assert_int_equal(rd(f, RBR_THR), 0);
}

static void test_fifo(void **state)
{
	struct fixture *f = *state;

	wr(f, IIR_FCR, 0x01);
	assert_int_equal(rd(f, IIR_FCR), 0xc1); /* FIFOs enabled: a 16550A */
	wr(f, MCR, 0x10);
	wr(f, RBR_THR, 'x');
	wr(f, RBR_THR, 'y');
	assert_int_equal(rd(f, LSR) & 0x01, 0x01);
	wr(f, IIR_FCR, 0x03); /* clear the receive FIFO */
	assert_int_equal(rd(f, LSR) & 0x01, 0x00);
	assert_int_equal(rd(f, RBR_THR), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_registers, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_divisor_latch, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_output, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_output_limit, setup_limited, teardown),
	    cmocka_unit_test_setup_teardown(test_thre_interrupt, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_out2_gates_interrupt, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_loopback_receive, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_fifo, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
