/* The VMM jail's view of the host (src/isolate/jail_fs.c).
 *
 * The ids from the environment, good and bad. Then, in a forked process,
 * jail_fs_enter() and jail_fs_become() for real: the run directory is still
 * there at its own path and its socket answers; a socket beside it, the
 * host's /etc and an abstract socket of the host's network namespace are
 * gone; as root, the process has the jail's ids afterwards and reaches a
 * socket in its directory only when the jail's group may write it. No KVM
 * needed; without root it runs in a user namespace (skipped where those
 * are not allowed). */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "isolate/jail_fs.h"

static void test_ids(void **state)
{
	struct jail_fs_ids ids;

	(void)state;
	unsetenv(JAIL_FS_UID_ENV);
	unsetenv(JAIL_FS_GID_ENV);
	assert_int_equal(jail_fs_ids(&ids), 0);
	assert_int_equal(ids.uid, JAIL_FS_UID_DEFAULT);
	assert_int_equal(ids.gid, JAIL_FS_UID_DEFAULT);
	setenv(JAIL_FS_UID_ENV, "4242", 1);
	assert_int_equal(jail_fs_ids(&ids), 0);
	assert_int_equal(ids.uid, 4242);
	assert_int_equal(ids.gid, 4242);
	setenv(JAIL_FS_GID_ENV, "77", 1);
	assert_int_equal(jail_fs_ids(&ids), 0);
	assert_int_equal(ids.gid, 77);
	for (const char *const *bad = (const char *const[]){"0", "-1", "x", "4294967295", NULL};
	     *bad; bad++) {
		setenv(JAIL_FS_UID_ENV, *bad, 1);
		assert_int_equal(jail_fs_ids(&ids), -EINVAL);
	}
	unsetenv(JAIL_FS_UID_ENV);
	unsetenv(JAIL_FS_GID_ENV);
}

/* A listening Unix socket at path ("@name": abstract), mode unless 0. */
static int listener(const char *path, mode_t mode)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	size_t len = strlen(path);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	assert_true(fd >= 0 && len < sizeof(sa.sun_path));
	memcpy(sa.sun_path, path, len);
	if (path[0] == '@')
		sa.sun_path[0] = 0;
	assert_int_equal(bind(fd, (struct sockaddr *)&sa,
			      (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len)),
			 0);
	assert_int_equal(listen(fd, 4), 0);
	if (mode)
		assert_int_equal(chmod(path, mode), 0);
	return fd;
}

/* 0 when connect(path) succeeds, else errno. */
static int try_connect(const char *path)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	size_t len = strlen(path);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0), r;

	memcpy(sa.sun_path, path, len);
	if (path[0] == '@')
		sa.sun_path[0] = 0;
	r = connect(fd, (struct sockaddr *)&sa,
		    (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len)) < 0
		? errno
		: 0;
	close(fd);
	return r;
}

struct paths {
	char top[64], run[96], in[128], in_root[128], in_group[128], out[128], abstract[64];
};

/* The jailed side; its exit status names the first check that failed. */
static int jailed(const struct paths *p, const struct jail_fs_ids *ids)
{
	bool root = geteuid() == 0;
	struct stat st;

	if (jail_fs_enter(p->run, true))
		return 10;
	if (try_connect(p->in) || try_connect(p->out) != ENOENT)
		return 11;
	if (stat("/etc", &st) == 0 || stat(p->top, &st) < 0 || !S_ISDIR(st.st_mode))
		return 12;
	if (try_connect(p->abstract) != ECONNREFUSED)
		return 13;
	if (jail_fs_become(ids))
		return 14;
	if (!root) /* the ids stay forkd's */
		return 0;
	if (geteuid() != ids->uid || getegid() != ids->gid || getgroups(0, NULL) != 0)
		return 15;
	if (try_connect(p->in_root) != EACCES || try_connect(p->in_group))
		return 16;
	return 0;
}

static void test_enter(void **state)
{
	struct jail_fs_ids ids = {4243, 4244};
	struct paths p;
	int fds[5], status;
	pid_t pid;

	(void)state;
	snprintf(p.top, sizeof(p.top), "/tmp/forkd-test-jail-fs.XXXXXX");
	assert_non_null(mkdtemp(p.top));
	snprintf(p.run, sizeof(p.run), "%s/run", p.top);
	snprintf(p.in, sizeof(p.in), "%s/vsock.sock", p.run);
	snprintf(p.in_root, sizeof(p.in_root), "%s/root-only.sock", p.run);
	snprintf(p.in_group, sizeof(p.in_group), "%s/vsock.sock_5000", p.run);
	snprintf(p.out, sizeof(p.out), "%s/outside.sock", p.top);
	snprintf(p.abstract, sizeof(p.abstract), "@forkd-test-jail-fs-%d", (int)getpid());
	assert_int_equal(mkdir(p.run, 0755), 0);
	assert_int_equal(jail_fs_share_dir(p.run, &ids), 0);
	fds[0] = listener(p.in, 0666);
	fds[1] = listener(p.in_root, 0755);
	fds[2] = listener(p.in_group, 0660);
	fds[3] = listener(p.out, 0777);
	fds[4] = listener(p.abstract, 0);
	if (geteuid() == 0) {
		struct stat st;

		assert_int_equal(stat(p.run, &st), 0);
		assert_int_equal(st.st_mode & 07777, 02750);
		assert_int_equal(st.st_gid, ids.gid);
		/* Made after the chgrp: the directory's group, by setgid. */
		assert_int_equal(stat(p.in_group, &st), 0);
		assert_int_equal(st.st_gid, ids.gid);
	}
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0)
		_exit(jailed(&p, &ids));
	assert_int_equal(waitpid(pid, &status, 0), pid);
	for (int i = 0; i < 5; i++)
		close(fds[i]);
	unlink(p.in);
	unlink(p.in_root);
	unlink(p.in_group);
	unlink(p.out);
	rmdir(p.run);
	rmdir(p.top);
	if (geteuid() != 0 && WIFEXITED(status) && WEXITSTATUS(status) == 10) {
		print_message("skip: not root and no user namespace for the mount namespace\n");
		skip();
	}
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_ids),
	    cmocka_unit_test(test_enter),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
