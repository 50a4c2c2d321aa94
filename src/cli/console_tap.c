/* The console through a pipe (console_tap.h). */
#include "cli/console_tap.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "common/util.h"

static void *console_tap_run(void *arg)
{
	struct console_tap *t = arg;
	char buf[16384];
	sigset_t block;
	ssize_t n;

	/* SIGINT/SIGTERM are for the main thread (they stop the VM). */
	sigemptyset(&block);
	sigaddset(&block, SIGINT);
	sigaddset(&block, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &block, NULL);
	while ((n = read(t->rfd, buf, sizeof(buf))) != 0) {
		if (n < 0) {
			if (errno == EINTR)
				continue;
			log_errno("read the console pipe");
			break;
		}
		/* Keep draining even when the console cannot be written, or a
		 * vCPU would block on the full pipe. */
		if (t->out_fd >= 0 && write_full(t->out_fd, buf, (size_t)n))
			t->out_fd = -1;
		pthread_mutex_lock(&t->lock);
		for (ssize_t i = 0; i < n; i++) {
			unsigned char c = (unsigned char)buf[i];

			if (c == '\n') {
				if (t->cur_len) {
					memcpy(t->last, t->cur, t->cur_len);
					t->last[t->cur_len] = 0;
				}
				t->cur_len = 0;
			} else if (c != '\r' && t->cur_len < sizeof(t->cur) - 1) {
				t->cur[t->cur_len++] = c >= 0x20 && c < 0x7f ? (char)c : '?';
			}
		}
		pthread_mutex_unlock(&t->lock);
	}
	return NULL;
}

int console_tap_open(struct console_tap *t, int out_fd)
{
	int p[2];

	memset(t, 0, sizeof(*t));
	t->open = true;
	t->rfd = t->wfd = -1;
	t->out_fd = out_fd;
	pthread_mutex_init(&t->lock, NULL);
	if (pipe2(p, O_CLOEXEC) < 0)
		return log_errno("pipe for the console");
	t->rfd = p[0];
	t->wfd = p[1];
	/* Room for bursts (a kernel's boot log) while the thread catches up. */
	(void)!fcntl(t->wfd, F_SETPIPE_SZ, 1 << 20);
	return 0;
}

int console_tap_start(struct console_tap *t)
{
	int r = pthread_create(&t->thread, NULL, console_tap_run, t);

	if (r) {
		log_err("pthread_create (console): %s", strerror(r));
		return -r;
	}
	t->started = true;
	return 0;
}

void console_tap_last(struct console_tap *t, char *out, size_t size)
{
	pthread_mutex_lock(&t->lock);
	if (t->last[0] || !t->cur_len)
		snprintf(out, size, "%s", t->last);
	else
		snprintf(out, size, "%.*s", (int)t->cur_len, t->cur);
	pthread_mutex_unlock(&t->lock);
}

void console_tap_close(struct console_tap *t)
{
	if (!t->open)
		return;
	if (t->wfd >= 0)
		close(t->wfd);
	if (t->started)
		pthread_join(t->thread, NULL);
	if (t->rfd >= 0)
		close(t->rfd);
	pthread_mutex_destroy(&t->lock);
	t->rfd = t->wfd = -1;
	t->started = t->open = false;
}
