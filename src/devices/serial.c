#include "devices/serial.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "common/sbuf.h"
#include "common/util.h"

/* Register offsets (PC16550D datasheet). DLAB in LCR switches 0/1 to the
 * divisor latch. */
#define UART_RBR_THR 0
#define UART_IER     1
#define UART_IIR_FCR 2
#define UART_LCR     3
#define UART_MCR     4
#define UART_LSR     5
#define UART_MSR     6
#define UART_SCR     7

#define IER_RDI	 0x01 /* received data available */
#define IER_THRI 0x02 /* transmitter holding register empty */
#define IER_MASK 0x0f /* the bits a 16550A implements */
#define IIR_NONE 0x01
#define IIR_THRI 0x02
#define IIR_RDI	 0x04
#define IIR_FIFO 0xc0 /* FIFOs enabled: identifies a 16550A */
#define FCR_FIFO 0x01
#define LCR_DLAB 0x80
#define MCR_DTR	 0x01
#define MCR_RTS	 0x02
#define MCR_OUT1 0x04
#define MCR_OUT2 0x08
#define MCR_LOOP 0x10
#define MCR_MASK 0x1f
#define LSR_DR	 0x01
#define LSR_THRE 0x20
#define LSR_TEMT 0x40
#define MSR_CTS	 0x10
#define MSR_DSR	 0x20
#define MSR_RI	 0x40
#define MSR_DCD	 0x80

#define RX_FIFO 64

struct serial {
	struct vm *vm;
	pthread_mutex_t lock;
	int out_fd, in_fd;
	uint64_t max_bytes, written;
	bool truncated;

	uint8_t ier, fcr, lcr, mcr, lsr, msr, scr, dll, dlm;
	bool thri_pending; /* THR-empty interrupt not yet acknowledged */
	bool irq_high;
	uint8_t rx[RX_FIFO];
	unsigned rx_head, rx_len;

	const char *warm_marker;
	int warm_fd;
	char line[256]; /* current output line, for the warm marker */
	unsigned line_len;
};

static uint8_t serial_iir(const struct serial *s)
{
	uint8_t fifo = (s->fcr & FCR_FIFO) ? IIR_FIFO : 0;

	if ((s->ier & IER_RDI) && s->rx_len)
		return IIR_RDI | fifo;
	if ((s->ier & IER_THRI) && s->thri_pending)
		return IIR_THRI | fifo;
	return IIR_NONE | fifo;
}

/* The line is edge-triggered at the IOAPIC: raise an edge when an interrupt
 * condition appears, as OUT2 gating allows. Called with the lock held. */
static void serial_update_irq(struct serial *s)
{
	bool high = (serial_iir(s) & IIR_NONE) == 0 && (s->mcr & MCR_OUT2);

	if (high && !s->irq_high)
		(void)!vm_irq_pulse(s->vm, SERIAL_COM1_IRQ);
	s->irq_high = high;
}

/* Match the warm marker line by line; lines longer than the buffer are
 * matched on their first part. */
static void serial_watch(struct serial *s, uint8_t c)
{
	uint64_t one = 1;

	if (c != '\n') {
		if (s->line_len < sizeof(s->line) - 1)
			s->line[s->line_len++] = (char)c;
		return;
	}
	s->line[s->line_len] = 0;
	s->line_len = 0;
	if (!strstr(s->line, s->warm_marker))
		return;
	/* The snapshot is of the instant this write completed the marker's
	 * line: the writing vCPU parks before the guest runs on. */
	vm_pause_here(s->vm);
	if (write(s->warm_fd, &one, sizeof(one)) < 0)
		log_errno("serial: signal warm");
}

static void serial_output(struct serial *s, uint8_t c)
{
	static const char note[] = "\n[forkd: console output limit reached, rest dropped]\n";

	if (s->warm_marker && s->warm_fd >= 0)
		serial_watch(s, c);
	if (s->out_fd < 0)
		return;
	if (s->max_bytes && s->written >= s->max_bytes) {
		if (!s->truncated && write_full(s->out_fd, note, sizeof(note) - 1) == 0)
			s->truncated = true;
		s->truncated = true;
		return;
	}
	if (write_full(s->out_fd, &c, 1) == 0)
		s->written++;
}

static void serial_rx_push(struct serial *s, uint8_t c)
{
	if (s->rx_len == RX_FIFO)
		return; /* overrun: drop */
	s->rx[(s->rx_head + s->rx_len) % RX_FIFO] = c;
	s->rx_len++;
	s->lsr |= LSR_DR;
}

static void serial_pio_write(void *opaque, uint64_t off, const void *data, unsigned len)
{
	struct serial *s = opaque;
	uint8_t v = *(const uint8_t *)data;

	if (len != 1)
		return;
	pthread_mutex_lock(&s->lock);
	switch (off) {
	case UART_RBR_THR:
		if (s->lcr & LCR_DLAB) {
			s->dll = v;
			break;
		}
		if (s->mcr & MCR_LOOP)
			serial_rx_push(s, v);
		else
			serial_output(s, v);
		/* Transmission is instant: the holding register is empty again. */
		s->thri_pending = true;
		s->lsr |= LSR_THRE | LSR_TEMT;
		break;
	case UART_IER:
		if (s->lcr & LCR_DLAB) {
			s->dlm = v;
			break;
		}
		/* Enabling THRI with the holding register empty interrupts at once. */
		if (!(s->ier & IER_THRI) && (v & IER_THRI))
			s->thri_pending = true;
		s->ier = v & IER_MASK;
		break;
	case UART_IIR_FCR:
		s->fcr = v;
		if (v & 0x02) { /* clear receive FIFO */
			s->rx_len = 0;
			s->lsr &= (uint8_t)~LSR_DR;
		}
		break;
	case UART_LCR:
		s->lcr = v;
		break;
	case UART_MCR:
		s->mcr = v & MCR_MASK;
		break;
	case UART_SCR:
		s->scr = v;
		break;
	default:
		break;
	}
	serial_update_irq(s);
	pthread_mutex_unlock(&s->lock);
}

static void serial_pio_read(void *opaque, uint64_t off, void *data, unsigned len)
{
	struct serial *s = opaque;
	uint8_t v = 0xff;

	if (len != 1) {
		memset(data, 0xff, len);
		return;
	}
	pthread_mutex_lock(&s->lock);
	switch (off) {
	case UART_RBR_THR:
		if (s->lcr & LCR_DLAB) {
			v = s->dll;
		} else if (s->rx_len) {
			v = s->rx[s->rx_head];
			s->rx_head = (s->rx_head + 1) % RX_FIFO;
			if (--s->rx_len == 0)
				s->lsr &= (uint8_t)~LSR_DR;
		} else {
			v = 0;
		}
		break;
	case UART_IER:
		v = (s->lcr & LCR_DLAB) ? s->dlm : s->ier;
		break;
	case UART_IIR_FCR:
		v = serial_iir(s);
		/* Reading IIR acknowledges a THR-empty interrupt. */
		if ((v & 0x0f) == IIR_THRI)
			s->thri_pending = false;
		break;
	case UART_LCR:
		v = s->lcr;
		break;
	case UART_MCR:
		v = s->mcr;
		break;
	case UART_LSR:
		v = s->lsr;
		break;
	case UART_MSR:
		if (s->mcr & MCR_LOOP) {
			/* Loopback wires the modem outputs back to the inputs. */
			v = 0;
			if (s->mcr & MCR_RTS)
				v |= MSR_CTS;
			if (s->mcr & MCR_DTR)
				v |= MSR_DSR;
			if (s->mcr & MCR_OUT1)
				v |= MSR_RI;
			if (s->mcr & MCR_OUT2)
				v |= MSR_DCD;
		} else {
			v = MSR_DCD | MSR_DSR | MSR_CTS;
		}
		break;
	case UART_SCR:
		v = s->scr;
		break;
	}
	serial_update_irq(s);
	pthread_mutex_unlock(&s->lock);
	*(uint8_t *)data = v;
}

static void serial_input(void *opaque, uint32_t events)
{
	struct serial *s = opaque;
	uint8_t buf[RX_FIFO];
	ssize_t n;

	n = read(s->in_fd, buf, sizeof(buf));
	if (n <= 0) {
		if (n == 0 || (errno != EAGAIN && errno != EINTR))
			evloop_del(&s->vm->loop, s->in_fd);
		return;
	}
	pthread_mutex_lock(&s->lock);
	for (ssize_t i = 0; i < n; i++)
		serial_rx_push(s, buf[i]);
	serial_update_irq(s);
	pthread_mutex_unlock(&s->lock);
}

static void serial_destroy(void *priv)
{
	struct serial *s = priv;

	pthread_mutex_destroy(&s->lock);
	free(s);
}

/* Saved state (docs/FORMAT.md, "Device state"): the registers, the
 * interrupt condition already signalled and the receive FIFO, oldest byte
 * first. Console output accounting is not saved: a restored VM writes to
 * its own console with its own limit. */
#define SERIAL_STATE_VERSION 1

static int serial_save(void *priv, struct sbuf *out)
{
	struct serial *s = priv;

	pthread_mutex_lock(&s->lock);
	sbuf_u32(out, SERIAL_STATE_VERSION);
	sbuf_u8(out, s->ier);
	sbuf_u8(out, s->fcr);
	sbuf_u8(out, s->lcr);
	sbuf_u8(out, s->mcr);
	sbuf_u8(out, s->lsr);
	sbuf_u8(out, s->msr);
	sbuf_u8(out, s->scr);
	sbuf_u8(out, s->dll);
	sbuf_u8(out, s->dlm);
	sbuf_u8(out, s->thri_pending);
	sbuf_u8(out, s->irq_high);
	sbuf_u8(out, (uint8_t)s->rx_len);
	for (unsigned i = 0; i < s->rx_len; i++)
		sbuf_u8(out, s->rx[(s->rx_head + i) % RX_FIFO]);
	pthread_mutex_unlock(&s->lock);
	return 0;
}

/* The interrupt line needs no edge here: one the guest has not taken yet
 * is pending in the interrupt controller, whose state is restored before
 * the devices'. irq_high only says no new edge is due until the condition
 * clears. */
static int serial_restore(void *priv, const uint8_t *data, size_t len)
{
	struct serial *s = priv;
	struct sreader r = sreader_init(data, len);
	uint8_t ier, fcr, lcr, mcr, lsr, msr, scr, dll, dlm, thri, high, rx_len;
	uint8_t rx[RX_FIFO];

	if (sreader_u32(&r) != SERIAL_STATE_VERSION)
		return -EINVAL;
	ier = sreader_u8(&r);
	fcr = sreader_u8(&r);
	lcr = sreader_u8(&r);
	mcr = sreader_u8(&r);
	lsr = sreader_u8(&r);
	msr = sreader_u8(&r);
	scr = sreader_u8(&r);
	dll = sreader_u8(&r);
	dlm = sreader_u8(&r);
	thri = sreader_u8(&r);
	high = sreader_u8(&r);
	rx_len = sreader_u8(&r);
	if (r.err || rx_len > RX_FIFO)
		return -EINVAL;
	sreader_get(&r, rx, rx_len);
	if (!sreader_done(&r) || (ier & ~IER_MASK) || (mcr & ~MCR_MASK) || thri > 1 || high > 1)
		return -EINVAL;
	/* THR is always empty (transmission is instant); DR says the FIFO
	 * holds data. No other LSR bit is ever set. */
	if (lsr != (LSR_THRE | LSR_TEMT | (rx_len ? LSR_DR : 0)))
		return -EINVAL;

	pthread_mutex_lock(&s->lock);
	s->ier = ier;
	s->fcr = fcr;
	s->lcr = lcr;
	s->mcr = mcr;
	s->lsr = lsr;
	s->msr = msr;
	s->scr = scr;
	s->dll = dll;
	s->dlm = dlm;
	s->thri_pending = thri;
	s->irq_high = high;
	memcpy(s->rx, rx, rx_len);
	s->rx_head = 0;
	s->rx_len = rx_len;
	pthread_mutex_unlock(&s->lock);
	return 0;
}

static const struct device_ops serial_ops = {
    .name = "serial",
    .destroy = serial_destroy,
    .save = serial_save,
    .restore = serial_restore,
};

int serial_create(struct vm *vm, const struct serial_opts *opts)
{
	struct serial *s = calloc(1, sizeof(*s));
	int err;

	if (!s)
		return -ENOMEM;
	s->vm = vm;
	pthread_mutex_init(&s->lock, NULL);
	s->out_fd = opts->out_fd;
	s->in_fd = opts->in_fd;
	s->max_bytes = opts->max_bytes;
	s->warm_marker = opts->warm_marker && *opts->warm_marker ? opts->warm_marker : NULL;
	s->warm_fd = opts->warm_fd;
	s->lsr = LSR_THRE | LSR_TEMT;
	s->mcr = MCR_OUT2;
	err = vm_add_device(vm, &serial_ops, s);
	if (err) {
		serial_destroy(s);
		return err;
	}
	err =
	    bus_add(&vm->pio, SERIAL_COM1_PORT, 8, "serial", serial_pio_read, serial_pio_write, s);
	if (err)
		return err;
	if (s->in_fd >= 0)
		err = evloop_add(&vm->loop, s->in_fd, EPOLLIN, serial_input, s);
	return err;
}
