#include "fork/ctl.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/util.h"
#include "snapshot/memdiff.h"
#include "snapshot/snapshot.h"

#define CTL_MAX_CONNS 8
#define CTL_MAX_FDS   3

struct ctl_conn {
	struct ctl *c;
	int fd;
};

/* One reply line, whole, in one write (stream sockets keep it together). */
static void reply(int fd, const char *fmt, ...) __printf(2, 3);
static void reply(int fd, const char *fmt, ...)
{
	char line[CTL_REPLY_MAX];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line) - 1, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n > sizeof(line) - 2)
		n = (int)sizeof(line) - 2;
	line[n++] = '\n';
	if (send(fd, line, (size_t)n, MSG_DONTWAIT | MSG_NOSIGNAL) != n)
		log_warn("control socket: reply lost");
}

static void reply_err(int fd, int err, const char *what)
{
	reply(fd, "{\"ok\":false,\"errno\":%d,\"error\":\"%s: %s\"}", -err, what, strerror(-err));
}

static int count_changed(struct ctl *c, uint64_t *pages)
{
	struct memdiff_run *runs;
	uint32_t n;
	int err = memdiff_scan(&c->vm->mem, c->pagemap_fd, &runs, &n, pages);

	if (!err)
		free(runs);
	return err;
}

/* The live branch's writer: a fork of the paused VMM, alone in its
 * process. It writes RAM as it was at the fork and exits; only
 * async-signal-safe work here (no locks another thread may have held). */
static void live_writer(struct ctl *c, int conn, int mem_fd)
{
	int err = snapshot_write_memory_fd(mem_fd, &c->vm->mem);

	if (err)
		reply(conn,
		      "{\"ok\":false,\"stage\":\"done\",\"errno\":%d,\"error\":\"write memory: "
		      "%s\"}",
		      -err, strerror(-err));
	else
		reply(conn, "{\"ok\":true,\"stage\":\"done\",\"bytes\":%llu}",
		      (unsigned long long)c->vm->mem.size);
	syscall(SYS_exit_group, err ? 1 : 0);
}

/* Fork the paused VMM with RAM inherited (guest RAM is MADV_DONTFORK
 * otherwise). A raw clone: only exit signal SIGCHLD, which the jail
 * allows, and SIGCHLD is ignored so the writer needs no reaping. */
static int live_fork(struct ctl *c, int conn, int mem_fd)
{
	struct guest_mem *m = &c->vm->mem;
	long pid;

	if (madvise(m->base, m->size, MADV_DOFORK) < 0)
		return -errno;
	pid = syscall(SYS_clone, (unsigned long)SIGCHLD, 0UL, 0UL, 0UL, 0UL);
	if (pid == 0)
		live_writer(c, conn, mem_fd);
	madvise(m->base, m->size, MADV_DONTFORK);
	return pid < 0 ? -errno : 0;
}

/* BRANCH MODE with its fds (ctl.h). The event loop is this thread, so no
 * back-end runs while the VM is paused here. */
static void do_branch(struct ctl *c, int conn, const char *mode, const int *fds, int nr_fds)
{
	bool diff = !strcmp(mode, "diff"), live = !strcmp(mode, "live");
	struct memdiff_run *runs = NULL;
	uint32_t nr_runs = 0;
	uint64_t t0, pause_ns, pages = 0, bytes = 0;
	bool was_paused = c->paused;
	int err;

	if (!diff && !live && strcmp(mode, "full")) {
		reply(conn, "{\"ok\":false,\"error\":\"mode must be full, diff or live\"}");
		return;
	}
	mode = diff ? "diff" : live ? "live" : "full";
	if (nr_fds != (diff ? 3 : 2)) {
		reply(conn,
		      "{\"ok\":false,\"error\":\"BRANCH %s needs %d file descriptors, got %d\"}",
		      mode, diff ? 3 : 2, nr_fds);
		return;
	}
	if (diff && c->vm->mem.backing != MEM_FILE_PRIVATE) {
		reply(conn, "{\"ok\":false,\"error\":\"a diff branch needs RAM mapped from the "
			    "snapshot (this child was forked with --live-fork)\"}");
		return;
	}
	/* Shared RAM (--live-fork) is not frozen by a fork: written while
	 * paused instead, as full; the one reply line says so. */
	if (live && c->vm->mem.backing == MEM_MEMFD)
		live = false;
	t0 = now_ns();
	if (!was_paused)
		vm_pause(c->vm);
	if (c->vm->stopping) {
		reply(conn, "{\"ok\":false,\"error\":\"the VM is stopping\"}");
		return;
	}
	err = snapshot_save_state_fd(c->vm, fds[0]);
	if (err) {
		reply_err(conn, err, "save vCPU and device state");
	} else if (diff) {
		err = memdiff_scan(&c->vm->mem, c->pagemap_fd, &runs, &nr_runs, &pages);
		if (!err)
			err = memdiff_write(&c->vm->mem, runs, nr_runs, pages, fds[1], fds[2]);
		if (err)
			reply_err(conn, err, "write the memory diff");
		bytes = pages * 4096;
		free(runs);
	} else if (live) {
		err = live_fork(c, conn, fds[1]);
		if (err)
			reply_err(conn, err, "fork the memory writer");
	} else {
		err = snapshot_write_memory_fd(fds[1], &c->vm->mem);
		if (err)
			reply_err(conn, err, "write memory");
		bytes = c->vm->mem.size;
		pages = bytes / 4096;
	}
	pause_ns = now_ns() - t0;
	if (!was_paused)
		vm_resume(c->vm);
	if (err)
		return;
	if (live)
		reply(conn, "{\"ok\":true,\"stage\":\"resumed\",\"pause_us\":%llu}",
		      (unsigned long long)(pause_ns / 1000));
	else
		reply(conn,
		      "{\"ok\":true,\"stage\":\"done\",\"pause_us\":%llu,\"bytes\":%llu,"
		      "\"pages\":%llu,\"runs\":%u}",
		      (unsigned long long)(pause_ns / 1000), (unsigned long long)bytes,
		      (unsigned long long)pages, nr_runs);
}

static void do_request(struct ctl *c, int conn, char *line, const int *fds, int nr_fds)
{
	uint64_t pages = 0;
	int err;

	if (!strncmp(line, "BRANCH ", 7)) {
		do_branch(c, conn, line + 7, fds, nr_fds);
		return;
	}
	if (nr_fds) {
		reply(conn, "{\"ok\":false,\"error\":\"only BRANCH takes file descriptors\"}");
	} else if (!strcmp(line, "PING")) {
		reply(conn, "{\"ok\":true}");
	} else if (!strcmp(line, "PAUSE") || !strcmp(line, "RESUME")) {
		bool want = line[0] == 'P';

		if (want && !c->paused)
			vm_pause(c->vm);
		else if (!want && c->paused)
			vm_resume(c->vm);
		c->paused = want;
		reply(conn, "{\"ok\":true,\"paused\":%s}", want ? "true" : "false");
	} else if (!strcmp(line, "STATS")) {
		err = c->vm->mem.backing == MEM_FILE_PRIVATE ? count_changed(c, &pages) : 0;
		if (err)
			reply_err(conn, err, "read the page map");
		else
			reply(
			    conn,
			    "{\"ok\":true,\"paused\":%s,\"mem_bytes\":%llu,\"changed_pages\":%llu}",
			    c->paused ? "true" : "false", (unsigned long long)c->vm->mem.size,
			    (unsigned long long)pages);
	} else if (!strcmp(line, "STOP")) {
		reply(conn, "{\"ok\":true}");
		if (c->paused)
			vm_resume(c->vm);
		c->paused = false;
		vm_request_stop(c->vm, VM_EXIT_SIGNAL, "stopped over the control socket");
	} else {
		reply(conn, "{\"ok\":false,\"error\":\"unknown request (PING, STATS, PAUSE, "
			    "RESUME, STOP, BRANCH full|diff|live)\"}");
	}
}

static void conn_close(struct ctl_conn *k)
{
	evloop_del(&k->c->vm->loop, k->fd);
	close(k->fd);
	k->c->nr_conns--;
	free(k);
}

static void conn_event(void *opaque, uint32_t events)
{
	struct ctl_conn *k = opaque;
	char line[CTL_LINE_MAX + 1], cbuf[CMSG_SPACE(CTL_MAX_FDS * sizeof(int))];
	struct iovec iov = {line, CTL_LINE_MAX};
	struct msghdr msg = {
	    .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof(cbuf)};
	int fds[CTL_MAX_FDS], nr_fds = 0;
	ssize_t n;

	(void)events;
	n = recvmsg(k->fd, &msg, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	for (struct cmsghdr *cm = CMSG_FIRSTHDR(&msg); cm; cm = CMSG_NXTHDR(&msg, cm)) {
		if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
			continue;
		for (size_t i = 0; i < (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int); i++) {
			int fd;

			memcpy(&fd, CMSG_DATA(cm) + i * sizeof(int), sizeof(int));
			if (nr_fds < CTL_MAX_FDS)
				fds[nr_fds++] = fd;
			else
				close(fd);
		}
	}
	if (n <= 0) {
		for (int i = 0; i < nr_fds; i++)
			close(fds[i]);
		conn_close(k);
		return;
	}
	line[n] = 0;
	if (msg.msg_flags & MSG_CTRUNC || line[n - 1] != '\n' || memchr(line, 0, (size_t)n)) {
		reply(k->fd,
		      "{\"ok\":false,\"error\":\"one request line per message, at most "
		      "%d bytes\"}",
		      CTL_LINE_MAX);
	} else {
		line[n - 1] = 0;
		do_request(k->c, k->fd, line, fds, nr_fds);
	}
	for (int i = 0; i < nr_fds; i++)
		close(fds[i]);
}

static void listen_event(void *opaque, uint32_t events)
{
	struct ctl *c = opaque;
	struct ctl_conn *k;
	int fd;

	(void)events;
	fd = accept4(c->listen_fd, NULL, NULL, SOCK_CLOEXEC);
	if (fd < 0)
		return;
	if (c->nr_conns >= CTL_MAX_CONNS || !(k = malloc(sizeof(*k)))) {
		reply(fd, "{\"ok\":false,\"error\":\"too many control connections\"}");
		close(fd);
		return;
	}
	k->c = c;
	k->fd = fd;
	if (evloop_add(&c->vm->loop, fd, EPOLLIN, conn_event, k)) {
		close(fd);
		free(k);
		return;
	}
	c->nr_conns++;
}

int ctl_open(struct ctl *c, struct vm *vm, const char *dir)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	struct sigaction ign = {.sa_handler = SIG_IGN};
	mode_t old;
	int err;

	memset(c, 0, sizeof(*c));
	c->vm = vm;
	if ((size_t)snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/%s", dir, CTL_SOCKET) >=
	    sizeof(sa.sun_path)) {
		log_err("%s/%s: too long for a Unix socket", dir, CTL_SOCKET);
		return -ENAMETOOLONG;
	}
	c->pagemap_fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	if (c->pagemap_fd < 0)
		return log_errno("open /proc/self/pagemap");
	c->listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (c->listen_fd < 0) {
		err = log_errno("control socket");
		goto fail_pm;
	}
	unlink(sa.sun_path);
	old = umask(077);
	err = bind(c->listen_fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ? -errno : 0;
	umask(old);
	if (err || listen(c->listen_fd, CTL_MAX_CONNS) < 0) {
		errno = err ? -err : errno;
		err = log_errno("control socket %s", sa.sun_path);
		goto fail;
	}
	sigaction(SIGCHLD, &ign, NULL);
	err = evloop_add(&vm->loop, c->listen_fd, EPOLLIN, listen_event, c);
	if (!err)
		return 0;
fail:
	close(c->listen_fd);
fail_pm:
	close(c->pagemap_fd);
	return err;
}
