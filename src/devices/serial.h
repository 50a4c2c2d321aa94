/* 16550A UART at COM1 (port 0x3f8, IRQ 4): the guest console.
 *
 * Output goes to a file descriptor (a file or stdout), bounded: after
 * max_bytes the device keeps accepting bytes but writes nothing more, so a
 * chatty or hostile guest cannot fill the disk. Input, if any, comes from
 * an fd watched by the event loop. */
#ifndef FORKD_DEVICES_SERIAL_H
#define FORKD_DEVICES_SERIAL_H

#include <stdint.h>

#include "vmm/vm.h"

#define SERIAL_COM1_PORT 0x3f8
#define SERIAL_COM1_IRQ	 4

struct serial_opts {
	int out_fd;	    /* console output; not owned, -1 discards */
	int in_fd;	    /* console input; not owned, -1 for none */
	uint64_t max_bytes; /* output limit, 0 = unlimited */
	/* When a line of output contains warm_marker, write 1 to warm_fd (an
	 * eventfd): how a guest without forkd's doorbell port says "warm".
	 * NULL / -1: off. Checked whether or not output is being stored. */
	const char *warm_marker;
	int warm_fd;
};

struct serial;

int serial_create(struct vm *vm, const struct serial_opts *opts) __must_check;

#endif
