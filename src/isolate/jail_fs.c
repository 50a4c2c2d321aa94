#include "isolate/jail_fs.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include <grp.h>

#include "common/util.h"

static int id_from_env(const char *name, uint64_t dflt, uint64_t *out)
{
	const char *v = getenv(name);

	*out = dflt;
	if (!v)
		return 0;
	if (parse_u64(v, out) || *out == 0 || *out >= 0xffffffffULL) {
		log_err("jail: %s=%s: want an unprivileged id, a number from 1 to 4294967294", name,
			v);
		return -EINVAL;
	}
	return 0;
}

int jail_fs_ids(struct jail_fs_ids *ids)
{
	uint64_t uid, gid;
	int err = id_from_env(JAIL_FS_UID_ENV, JAIL_FS_UID_DEFAULT, &uid);

	if (err || (err = id_from_env(JAIL_FS_GID_ENV, uid, &gid)))
		return err;
	ids->uid = (uid_t)uid;
	ids->gid = (gid_t)gid;
	return 0;
}

int jail_fs_share_dir(const char *dir, const struct jail_fs_ids *ids)
{
	if (geteuid() != 0)
		return 0;
	if (chown(dir, 0, ids->gid) < 0)
		return log_errno("jail: chown %s to root:%u", dir, (unsigned)ids->gid);
	if (chmod(dir, 02750) < 0)
		return log_errno("jail: chmod 02750 %s", dir);
	return 0;
}

int jail_fs_share_socket(const char *dir, const char *sock, bool must_reach)
{
	struct jail_fs_ids ids;
	struct stat st;
	int err;

	if (geteuid() != 0)
		return 0;
	if ((err = jail_fs_ids(&ids)))
		return err;
	if (stat(dir, &st) < 0)
		return log_errno("stat %s", dir);
	if (must_reach && !(st.st_mode & S_IXOTH) &&
	    !(st.st_uid == ids.uid && st.st_mode & S_IXUSR) &&
	    !(st.st_gid == ids.gid && st.st_mode & S_IXGRP)) {
		log_err(
		    "%s (mode %04o, uid %u gid %u) does not let the jailed VMM (uid %u gid %u) "
		    "reach its socket %s: chmod o+x it, chgrp it to %u with g+x, put the socket "
		    "elsewhere, or run unjailed (--no-seccomp)",
		    dir, (unsigned)(st.st_mode & 07777), (unsigned)st.st_uid, (unsigned)st.st_gid,
		    (unsigned)ids.uid, (unsigned)ids.gid, sock, (unsigned)ids.gid);
		return -EACCES;
	}
	if (chown(sock, 0, ids.gid) < 0 || chmod(sock, 0660) < 0)
		return log_errno("jail: give %s to the jail's group %u", sock, (unsigned)ids.gid);
	return 0;
}

static int write_proc(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC), err = 0;

	if (fd < 0)
		return log_errno("jail: open %s", path);
	if (write(fd, text, strlen(text)) != (ssize_t)strlen(text))
		err = log_errno("jail: write %s", path);
	close(fd);
	return err;
}

/* forkd without root: a user namespace mapping only its own ids gives the
 * mount steps their capabilities, and nothing on the host. */
static int enter_userns(int flags)
{
	char map[64];
	uid_t uid = geteuid();
	gid_t gid = getegid();
	int err;

	if (unshare(flags | CLONE_NEWUSER) < 0)
		return log_errno("jail: unshare(CLONE_NEWUSER|CLONE_NEWNS%s) (forkd is not root: "
				 "the mount namespace needs a user namespace)",
				 flags & CLONE_NEWNET ? "|CLONE_NEWNET" : "");
	snprintf(map, sizeof(map), "%u %u 1\n", (unsigned)uid, (unsigned)uid);
	if ((err = write_proc("/proc/self/uid_map", map)) ||
	    (err = write_proc("/proc/self/setgroups", "deny")))
		return err;
	snprintf(map, sizeof(map), "%u %u 1\n", (unsigned)gid, (unsigned)gid);
	return write_proc("/proc/self/gid_map", map);
}

/* mkdir -p of an absolute path below base (both exist as strings only). */
static int make_path(char *path, size_t base_len)
{
	for (char *p = path + base_len + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = 0;
		if (mkdir(path, 0755) < 0 && errno != EEXIST)
			return log_errno("jail: mkdir %s", path);
		*p = '/';
	}
	if (mkdir(path, 0755) < 0 && errno != EEXIST)
		return log_errno("jail: mkdir %s", path);
	return 0;
}

int jail_fs_enter(const char *run_dir, bool new_netns)
{
	char dir[PATH_MAX], cwd[PATH_MAX], stage[2 * PATH_MAX + 2], src[64];
	int flags = CLONE_NEWNS | (new_netns ? CLONE_NEWNET : 0), dfd, err;
	bool root = geteuid() == 0;
	struct statvfs sv;

	if (!run_dir || !realpath(run_dir, dir))
		return run_dir ? log_errno("jail: run directory %s", run_dir)
			       : (log_err("jail: no run directory to keep"), -EINVAL);
	if (!strcmp(dir, "/")) {
		log_err("jail: the run directory cannot be /");
		return -EINVAL;
	}
	if (!getcwd(cwd, sizeof(cwd)))
		snprintf(cwd, sizeof(cwd), "/");
	if (root ? unshare(flags) < 0 : (err = enter_userns(flags)) != 0)
		return root ? log_errno("jail: unshare(CLONE_NEWNS%s)",
					new_netns ? "|CLONE_NEWNET" : "")
			    : err;
	/* Nothing below may reach the host's mounts. */
	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
		return log_errno("jail: make / private (mount MS_REC|MS_PRIVATE)");
	/* Opened in the new namespace (a bind's source must be in it) and held
	 * across the tmpfs mounted on top of it. */
	dfd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return log_errno("jail: open %s", dir);
	if (fstatvfs(dfd, &sv) < 0) {
		err = log_errno("jail: statvfs %s", dir);
		goto out;
	}
	/* The new root is a tmpfs mounted on the run directory itself (it
	 * exists by definition); the directory comes back inside it. */
	if (mount("forkd-jail", dir, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC,
		  "mode=0755,size=64k,nr_inodes=64") < 0) {
		err = log_errno("jail: mount tmpfs on %s", dir);
		goto out;
	}
	snprintf(stage, sizeof(stage), "%s%s", dir, dir);
	snprintf(src, sizeof(src), "/proc/self/fd/%d", dfd);
	if ((err = make_path(stage, strlen(dir))))
		goto out;
	if (mount(src, stage, NULL, MS_BIND, NULL) < 0) {
		err = log_errno("jail: bind mount %s at %s", dir, stage);
		goto out;
	}
	/* Only as root: in a user namespace the bind keeps the host mount's
	 * locked flags, and the host mount's own flags (read-only) stay. */
	if (root && mount(NULL, stage, NULL,
			  MS_REMOUNT | MS_BIND | MS_NOSUID | MS_NODEV | MS_NOEXEC |
			      (sv.f_flag & ST_RDONLY ? MS_RDONLY : 0),
			  NULL) < 0) {
		err = log_errno("jail: remount %s nosuid,nodev,noexec", stage);
		goto out;
	}
	/* pivot_root(".", "."): the old root ends up on top of the new one and
	 * is detached at once, leaving no path to it. */
	if (chdir(dir) < 0) {
		err = log_errno("jail: chdir %s", dir);
		goto out;
	}
	if (syscall(SYS_pivot_root, ".", ".") < 0) {
		err = log_errno("jail: pivot_root to the tmpfs on %s", dir);
		goto out;
	}
	if (umount2(".", MNT_DETACH) < 0) {
		err = log_errno("jail: detach the old root");
		goto out;
	}
	if (mount(NULL, "/", NULL, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC,
		  NULL) < 0) {
		err = log_errno("jail: remount the new root read-only");
		goto out;
	}
	/* Keep relative socket paths working where the old working directory
	 * still exists (a parent of the run directory, or itself). */
	if (chdir(cwd) < 0 && chdir("/") < 0) {
		err = log_errno("jail: chdir /");
		goto out;
	}
	err = 0;
out:
	close(dfd);
	return err;
}

int jail_fs_become(const struct jail_fs_ids *ids)
{
	int pdeath = 0;

	if (geteuid() != 0)
		return 0;
	if (prctl(PR_GET_PDEATHSIG, &pdeath, 0, 0, 0) < 0)
		return log_errno("jail: PR_GET_PDEATHSIG");
	if (setgroups(0, NULL) < 0)
		return log_errno("jail: setgroups(0)");
	if (setresgid(ids->gid, ids->gid, ids->gid) < 0)
		return log_errno("jail: setresgid(%u)", (unsigned)ids->gid);
	if (setresuid(ids->uid, ids->uid, ids->uid) < 0)
		return log_errno("jail: setresuid(%u)", (unsigned)ids->uid);
	/* The kernel clears the parent-death signal on a uid change. */
	if (pdeath && prctl(PR_SET_PDEATHSIG, pdeath, 0, 0, 0) < 0)
		return log_errno("jail: PR_SET_PDEATHSIG");
	return 0;
}

/* The probe's child: 0 when jailed and blind, else a step number. */
static int probe_child(const char *dir, const struct jail_fs_ids *ids)
{
	struct stat st;

	if (jail_fs_enter(dir, true))
		return 2;
	if (jail_fs_become(ids))
		return 3;
	if (stat("/etc", &st) == 0 || stat("/proc", &st) == 0 || stat(dir, &st) < 0)
		return 4;
	if (geteuid() == 0 || getegid() == 0)
		return 5;
	return 0;
}

int jail_fs_probe(char *msg, size_t size)
{
	static const char *const step[] = {"",
					   "",
					   "namespaces and new root",
					   "unprivileged ids",
					   "the new root shows more than the run directory",
					   "still root"};
	char dir[] = "/tmp/forkd-jail-probe.XXXXXX";
	struct jail_fs_ids ids;
	int status, err;
	pid_t pid;

	if ((err = jail_fs_ids(&ids))) {
		snprintf(msg, size, "bad %s/%s", JAIL_FS_UID_ENV, JAIL_FS_GID_ENV);
		return err;
	}
	if (!mkdtemp(dir)) {
		err = -errno;
		snprintf(msg, size, "mkdtemp %s: %s", dir, strerror(errno));
		return err;
	}
	pid = fork();
	if (pid == 0)
		_exit(probe_child(dir, &ids));
	err = pid < 0 ? -errno : 0;
	while (pid > 0 && waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	rmdir(dir);
	if (err) {
		snprintf(msg, size, "fork: %s", strerror(-err));
		return err;
	}
	if (!WIFEXITED(status) || WEXITSTATUS(status)) {
		int s = WIFEXITED(status) ? WEXITSTATUS(status) : 0;

		snprintf(msg, size, "a test process could not be jailed (%s)",
			 s >= 2 && s <= 5 ? step[s] : "killed");
		return -EPERM;
	}
	if (geteuid() == 0)
		snprintf(msg, size,
			 "uid %u gid %u, own mount namespace (root: the run directory only), "
			 "own network namespace unless --per-child-netns gives one",
			 (unsigned)ids.uid, (unsigned)ids.gid);
	else
		snprintf(msg, size,
			 "forkd's own uid %u (not root), own user and mount namespace (root: the "
			 "run directory only), own network namespace",
			 (unsigned)geteuid());
	return 0;
}
