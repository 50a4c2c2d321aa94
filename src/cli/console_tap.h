/* A VM's console through a pipe, for `forkd snapshot`: the serial device
 * writes the pipe; a thread copies everything to the real console (a file
 * or stdout) and keeps the last line, which progress reports and errors
 * quote while a guest boots for minutes.
 *
 * Order: console_tap_open() (before the VM is built, whose console_fd is
 * then t->wfd), console_tap_start(), ... console_tap_close() once nothing
 * writes t->wfd any more (after vm_destroy()). */
#ifndef FORKD_CLI_CONSOLE_TAP_H
#define FORKD_CLI_CONSOLE_TAP_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>

#define CONSOLE_TAP_LINE_MAX 160

/* All zero (e.g. in a zeroed struct) until console_tap_open(). */
struct console_tap {
	bool open;
	int rfd, wfd;
	int out_fd; /* not owned; -1 discards (and after a write to it failed) */
	pthread_t thread;
	bool started;
	pthread_mutex_t lock; /* guards the lines */
	char cur[CONSOLE_TAP_LINE_MAX], last[CONSOLE_TAP_LINE_MAX];
	size_t cur_len;
};

/* Make the pipe; out_fd is where the console goes. 0 or -errno (logged).
 * console_tap_close() is safe after a failure, and on a zeroed struct. */
int console_tap_open(struct console_tap *t, int out_fd);
int console_tap_start(struct console_tap *t);

/* The last complete console line (or the one being written when there is
 * none yet), non-printable bytes shown as '?'; "" before any output. */
void console_tap_last(struct console_tap *t, char *out, size_t size);

/* Close the write end, let the thread drain the pipe and end, free all. */
void console_tap_close(struct console_tap *t);

#endif
