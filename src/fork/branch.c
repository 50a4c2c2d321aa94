#include "fork/branch.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/file.h"
#include "common/util.h"
#include "fork/ctl.h"

/* A branch of 2 GiB written to a slow disk takes a while; a child that
 * does not answer at all is given up on after this. */
#define BRANCH_TIMEOUT_MS (10 * 60 * 1000)

static const char *const mode_names[] = {"full", "diff", "live"};

int branch_mode_parse(const char *s, enum branch_mode *m)
{
	for (size_t i = 0; i < ARRAY_SIZE(mode_names); i++)
		if (s && !strcmp(s, mode_names[i])) {
			*m = (enum branch_mode)i;
			return 0;
		}
	return -EINVAL;
}

const char *branch_mode_name(enum branch_mode m)
{
	return (size_t)m < ARRAY_SIZE(mode_names) ? mode_names[m] : "?";
}

/* The child's control socket, checked to be served by a process of our
 * own user (root): a socket planted by someone else is never talked to. */
static int ctl_connect(const char *run_dir)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	struct ucred cred;
	socklen_t len = sizeof(cred);
	int fd;

	if ((size_t)snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/%s", run_dir, CTL_SOCKET) >=
	    sizeof(sa.sun_path)) {
		log_err("%s/%s: too long for a Unix socket", run_dir, CTL_SOCKET);
		return -ENAMETOOLONG;
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return log_errno("socket");
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int err = -errno;

		close(fd);
		if (err == -ENOENT)
			log_err("no control socket %s: the child was started by a forkd without "
				"branching, or its run directory is gone",
				sa.sun_path);
		else
			log_err("connect %s: %s (has the child exited?)", sa.sun_path,
				strerror(-err));
		return err == -ENOENT ? -ENOENT : -ECONNREFUSED;
	}
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0 || cred.uid != geteuid()) {
		log_err("%s is not served by a process of user %u: refusing it", sa.sun_path,
			(unsigned)geteuid());
		close(fd);
		return -EPERM;
	}
	return fd;
}

static int send_request(int sock, const char *line, const int *fds, int nr_fds)
{
	char cbuf[CMSG_SPACE(3 * sizeof(int))] = {0};
	struct iovec iov = {(void *)line, strlen(line)};
	struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1};
	struct cmsghdr *cm;

	if (nr_fds) {
		msg.msg_control = cbuf;
		msg.msg_controllen = CMSG_SPACE((size_t)nr_fds * sizeof(int));
		cm = CMSG_FIRSTHDR(&msg);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN((size_t)nr_fds * sizeof(int));
		memcpy(CMSG_DATA(cm), fds, (size_t)nr_fds * sizeof(int));
	}
	if (sendmsg(sock, &msg, MSG_NOSIGNAL) != (ssize_t)iov.iov_len)
		return log_errno("send to the control socket");
	return 0;
}

/* Read reply lines until the branch is done (and, live, resumed). */
static int read_replies(int sock, enum branch_mode mode, struct branch_result *res)
{
	char buf[4 * CTL_REPLY_MAX];
	size_t have = 0;
	bool done = false, resumed = mode != BRANCH_LIVE;

	while (!done || !resumed) {
		struct pollfd p = {sock, POLLIN, 0};
		char *nl;
		ssize_t n;

		if (poll(&p, 1, BRANCH_TIMEOUT_MS) == 0) {
			log_err("the child's VMM did not finish the branch within %d s",
				BRANCH_TIMEOUT_MS / 1000);
			return -ETIMEDOUT;
		}
		n = read(sock, buf + have, sizeof(buf) - 1 - have);
		if (n <= 0) {
			log_err("the child's VMM closed its control socket before the branch was "
				"written (did the child exit?)");
			return -ECONNRESET;
		}
		have += (size_t)n;
		buf[have] = 0;
		while ((nl = strchr(buf, '\n'))) {
			json_t *o;
			const char *stage = "", *error = "unreadable reply";
			int ok = 0;
			json_int_t pause = -1, bytes = 0, pages = 0, eno = 0;

			*nl = 0;
			o = json_loads(buf, 0, NULL);
			if (o)
				json_unpack(o, "{s:b, s?s, s?s, s?I, s?I, s?I, s?I}", "ok", &ok,
					    "stage", &stage, "error", &error, "pause_us", &pause,
					    "bytes", &bytes, "pages", &pages, "errno", &eno);
			if (!ok) {
				log_err("the child's VMM: %s", error);
				json_decref(o);
				return eno > 0 && eno < 4096 ? -(int)eno : -EIO;
			}
			if (pause >= 0)
				res->pause_us = (uint64_t)pause;
			if (!strcmp(stage, "done")) {
				done = true;
				/* written while paused: a live branch of shared RAM */
				resumed |= pause >= 0;
				res->bytes = (uint64_t)bytes;
				res->pages = (uint64_t)pages;
			} else if (!strcmp(stage, "resumed")) {
				resumed = true;
			}
			json_decref(o);
			have -= (size_t)(nl + 1 - buf);
			memmove(buf, nl + 1, have + 1);
		}
		if (have >= sizeof(buf) - 1) {
			log_err("the child's VMM sent an over-long reply");
			return -EPROTO;
		}
	}
	return 0;
}

static int create_file(const char *dir, const char *name, uint64_t size)
{
	char path[PATH_MAX + 128];
	int fd;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0644);
	if (fd < 0)
		return log_errno("create %s", path);
	if (size && ftruncate(fd, (off_t)size) < 0) {
		int err = log_errno("size %s", path);

		close(fd);
		return err;
	}
	return fd;
}

static int sync_dir(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC), err = 0;

	if (fd < 0 || fsync(fd) < 0)
		err = log_errno("sync %s", dir);
	if (fd >= 0)
		close(fd);
	return err;
}

int branch_pick_tag(const char *source, const char *tag, char *out, size_t size)
{
	uint32_t r;

	if (tag && *tag) {
		if (!snapshot_tag_valid(tag)) {
			log_err("invalid snapshot tag '%s' (letters, digits, '_', '.', '-'; "
				"at most %d)",
				tag, SNAPSHOT_TAG_MAX);
			return -EINVAL;
		}
		snprintf(out, size, "%s", tag);
		return 0;
	}
	if (getrandom(&r, sizeof(r), 0) != sizeof(r))
		return log_errno("getrandom");
	snprintf(out, size, "%.*s-%08x", SNAPSHOT_TAG_MAX - 9, source, r);
	return 0;
}

int branch_take(const char *run_dir, const char *source_tag, const char *tag, enum branch_mode mode,
		struct branch_result *res)
{
	struct snapshot_meta *m = calloc(1, sizeof(*m));
	char src_dir[PATH_MAX], dst[PATH_MAX], tmp[PATH_MAX + 64], line[32];
	int fds[3] = {-1, -1, -1}, nr_fds = mode == BRANCH_DIFF ? 3 : 2, sock = -1, err;
	uint64_t t0 = now_ns();
	uint32_t rnd;
	bool made = false;

	memset(res, 0, sizeof(*res));
	if (!m)
		return -ENOMEM;
	if ((err = snapshot_dir(source_tag, src_dir, sizeof(src_dir))))
		goto out;
	if (access(src_dir, F_OK) < 0) {
		log_err("the child runs from snapshot '%s', which is gone: a branch needs its "
			"description%s",
			source_tag, mode == BRANCH_DIFF ? " and memory" : "");
		err = -ENOENT;
		goto out;
	}
	if ((err = snapshot_meta_read(src_dir, m)) ||
	    (err = branch_pick_tag(source_tag, tag, res->tag, sizeof(res->tag))) ||
	    (err = snapshot_dir(res->tag, dst, sizeof(dst))))
		goto out;
	if (access(dst, F_OK) == 0) {
		log_err("snapshot '%s' exists; choose another tag or delete it first", res->tag);
		err = -EEXIST;
		goto out;
	}
	/* A name no tag can have (tags never start with '.'): listings skip it. */
	if (getrandom(&rnd, sizeof(rnd), 0) != sizeof(rnd))
		rnd = (uint32_t)t0;
	snprintf(tmp, sizeof(tmp), "%.*s/.branch-%s-%d-%08x", (int)(strrchr(dst, '/') - dst), dst,
		 res->tag, (int)getpid(), rnd);
	if (mkdir(tmp, 0755) < 0) {
		err = log_errno("mkdir %s", tmp);
		goto out;
	}
	made = true;
	if ((fds[0] = create_file(tmp, "vmstate", 0)) < 0 ||
	    (fds[1] = create_file(tmp, mode == BRANCH_DIFF ? "memory.diff" : "memory.bin",
				  m->mem_mib * MIB)) < 0 ||
	    (mode == BRANCH_DIFF && (fds[2] = create_file(tmp, "memory.map", 0)) < 0)) {
		err = -EIO;
		goto out;
	}
	sock = ctl_connect(run_dir);
	if (sock < 0) {
		err = sock;
		goto out;
	}
	snprintf(line, sizeof(line), "BRANCH %s\n", branch_mode_name(mode));
	if ((err = send_request(sock, line, fds, nr_fds)) || (err = read_replies(sock, mode, res)))
		goto out;
	for (int i = 0; i < nr_fds; i++)
		if (fsync(fds[i]) < 0) {
			err = log_errno("sync the branch's files");
			goto out;
		}
	snprintf(m->parent_created, sizeof(m->parent_created), "%s", m->created);
	snprintf(m->parent, sizeof(m->parent), "%s", source_tag);
	snprintf(m->tag, sizeof(m->tag), "%s", res->tag);
	m->mem_diff = mode == BRANCH_DIFF;
	snapshot_meta_stamp(m, time(NULL));
	if ((err = snapshot_meta_write(tmp, m)) || (err = sync_dir(tmp)))
		goto out;
	if (renameat2(AT_FDCWD, tmp, AT_FDCWD, dst, RENAME_NOREPLACE) < 0) {
		err = -errno;
		if (err == -EEXIST)
			log_err("snapshot '%s' was created meanwhile; choose another tag",
				res->tag);
		else
			log_errno("rename %s to %s", tmp, dst);
		goto out;
	}
	made = false;
	/* The rename is durable once the snapshots directory is synced; the
	 * snapshot is complete either way, so a failure here is only logged. */
	*strrchr(dst, '/') = 0;
	sync_dir(dst);
	res->total_ns = now_ns() - t0;
out:
	for (int i = 0; i < 3; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	if (sock >= 0)
		close(sock);
	if (made && file_remove_tree(tmp))
		log_warn("could not remove %s", tmp);
	free(m);
	return err;
}
