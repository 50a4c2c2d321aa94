/* Per-child memory cgroups (src/isolate/cgroup.c).
 *
 * Layout detection against /proc text (cgroup v1 as on the CI hosts, v2,
 * a mount that shows only a subtree, escaped mount points) and the error
 * cases, each with its reason; leaf names and paths.
 *
 * Then the v2 code path on a real cgroup2 tree (root only): a forked
 * helper unshares its mount namespace, mounts cgroup2 on a temporary
 * directory and drives the API there. Where the memory controller is
 * available in that tree: a leaf with a 64 MiB memory.max, a process in it
 * that writes 200 MiB is OOM-killed and counted. Where it is not (it is
 * bound to a v1 hierarchy, as on the CI hosts), the helper prints exactly
 * why, checks that forkd/ preparation refuses with that reason, and still
 * checks leaf creation, joining and removal without a limit, and that a
 * limit fails cleanly. Skipped (with the reason) when not root. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/util.h"
#include "isolate/cgroup.h"

/* This host's shape: memory on v1 hierarchy 4, an unused cgroup2 mount. */
static const char v1_mountinfo[] =
    "22 1 0:21 / / rw,relatime - overlay overlay rw\n"
    "31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755\n"
    "32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu\n"
    "35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory\n"
    "40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd\n"
    "41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n";
static const char v1_cgroups[] = "#subsys_name\thierarchy\tnum_cgroups\tenabled\n"
				 "cpu\t1\t1\t1\n"
				 "memory\t4\t29\t1\n"
				 "pids\t8\t1\t1\n";
static const char v1_self[] = "9:name=systemd:/\n"
			      "4:memory:/process_api/0b06\n"
			      "1:cpu:/\n"
			      "0::/\n";

static const char v2_mountinfo[] =
    "22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw\n"
    "30 22 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 "
    "rw,nsdelegate,memory_recursiveprot\n";
static const char v2_cgroups[] = "#subsys_name\thierarchy\tnum_cgroups\tenabled\n"
				 "cpu\t0\t80\t1\n"
				 "memory\t0\t80\t1\n";
static const char v2_self[] = "0::/user.slice/user-0.slice/session-1.scope\n";

static void test_v1_layout(void **state)
{
	struct cgroup_layout l;
	char why[512] = "";

	assert_int_equal(
	    cgroup_layout_parse(v1_mountinfo, v1_cgroups, v1_self, &l, why, sizeof(why)), 0);
	assert_int_equal(l.version, CGROUP_V1);
	assert_string_equal(l.mount, "/sys/fs/cgroup/memory");
	assert_string_equal(l.base, "/sys/fs/cgroup/memory/process_api/0b06");
	assert_string_equal(l.parent, "/sys/fs/cgroup/memory/process_api/0b06/forkd");
}

static void test_v1_combined_controllers_and_root(void **state)
{
	static const char mi[] =
	    "35 31 0:32 / /sys/fs/cgroup/cpu,memory rw - cgroup cgroup rw,cpu,memory\n";
	static const char self[] = "4:cpu,memory:/\n";
	struct cgroup_layout l;
	char why[512];

	assert_int_equal(cgroup_layout_parse(mi, v1_cgroups, self, &l, why, sizeof(why)), 0);
	assert_int_equal(l.version, CGROUP_V1);
	assert_string_equal(l.base, "/sys/fs/cgroup/cpu,memory");
	assert_string_equal(l.parent, "/sys/fs/cgroup/cpu,memory/forkd");
}

static void test_v1_memory_word_must_match_exactly(void **state)
{
	/* "memory_recursiveprot" or "nomemory" are not the memory controller. */
	static const char mi[] = "35 31 0:32 / /x rw - cgroup cgroup rw,memory_x,nomemory\n";
	struct cgroup_layout l;
	char why[512];

	assert_int_equal(cgroup_layout_parse(mi, v1_cgroups, v1_self, &l, why, sizeof(why)),
			 -ENOENT);
	assert_non_null(strstr(why, "hierarchy 4, which is not mounted here"));
	assert_non_null(strstr(why, "mount -t cgroup -o memory"));
}

static void test_v2_layout(void **state)
{
	struct cgroup_layout l;
	char why[512];

	assert_int_equal(
	    cgroup_layout_parse(v2_mountinfo, v2_cgroups, v2_self, &l, why, sizeof(why)), 0);
	assert_int_equal(l.version, CGROUP_V2);
	assert_string_equal(l.mount, "/sys/fs/cgroup");
	assert_string_equal(l.base, "/sys/fs/cgroup/user.slice/user-0.slice/session-1.scope");
	assert_string_equal(l.parent,
			    "/sys/fs/cgroup/user.slice/user-0.slice/session-1.scope/forkd");
}

static void test_v2_subtree_mount(void **state)
{
	/* A container sees only its part of the tree: mount root /docker/c1. */
	static const char mi[] = "30 22 0:26 /docker/c1 /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n";
	static const char in[] = "0::/docker/c1/app\n", at_root[] = "0::/docker/c1\n",
			  outside[] = "0::/docker/c2\n", prefix_only[] = "0::/docker/c10\n";
	struct cgroup_layout l;
	char why[512];

	assert_int_equal(cgroup_layout_parse(mi, v2_cgroups, in, &l, why, sizeof(why)), 0);
	assert_string_equal(l.base, "/sys/fs/cgroup/app");
	assert_int_equal(cgroup_layout_parse(mi, v2_cgroups, at_root, &l, why, sizeof(why)), 0);
	assert_string_equal(l.base, "/sys/fs/cgroup");
	assert_string_equal(l.parent, "/sys/fs/cgroup/forkd");
	assert_int_equal(cgroup_layout_parse(mi, v2_cgroups, outside, &l, why, sizeof(why)),
			 -EINVAL);
	assert_non_null(strstr(why, "/docker/c2 is outside"));
	assert_int_equal(cgroup_layout_parse(mi, v2_cgroups, prefix_only, &l, why, sizeof(why)),
			 -EINVAL);
}

static void test_escaped_mount_point(void **state)
{
	static const char mi[] = "30 22 0:26 / /mnt/with\\040space rw - cgroup2 cgroup2 rw\n";
	struct cgroup_layout l;
	char why[512];

	assert_int_equal(cgroup_layout_parse(mi, v2_cgroups, "0::/\n", &l, why, sizeof(why)), 0);
	assert_string_equal(l.mount, "/mnt/with space");
	assert_string_equal(l.parent, "/mnt/with space/forkd");
}

static void test_errors_say_why(void **state)
{
	static const char disabled[] = "memory\t0\t1\t0\n", none[] = "cpu\t0\t1\t1\n";
	struct cgroup_layout l;
	char why[512];

	assert_int_equal(cgroup_layout_parse(v2_mountinfo, disabled, v2_self, &l, why, sizeof(why)),
			 -ENOENT);
	assert_non_null(strstr(why, "cgroup_disable=memory"));
	assert_int_equal(cgroup_layout_parse(v2_mountinfo, none, v2_self, &l, why, sizeof(why)),
			 -ENOENT);
	assert_non_null(strstr(why, "CONFIG_MEMCG"));
	/* Memory on v2, but no cgroup2 mount. */
	assert_int_equal(
	    cgroup_layout_parse(v1_mountinfo + 0, v2_cgroups, v2_self, &l, why, sizeof(why)),
	    0); /* v1_mountinfo has a cgroup2 mount: found */
	assert_int_equal(cgroup_layout_parse("22 1 0:21 / / rw - ext4 /dev/x rw\n", v2_cgroups,
					     v2_self, &l, why, sizeof(why)),
			 -ENOENT);
	assert_non_null(strstr(why, "mount -t cgroup2"));
	/* No line for this process. */
	assert_int_equal(
	    cgroup_layout_parse(v1_mountinfo, v1_cgroups, "0::/\n", &l, why, sizeof(why)), -EINVAL);
	assert_non_null(strstr(why, "no memory controller"));
	/* Malformed text: no crash, no layout. */
	assert_int_equal(
	    cgroup_layout_parse("garbage\n - \n\n", v2_cgroups, "0::\n", &l, why, sizeof(why)),
	    -ENOENT);
	assert_int_equal(cgroup_layout_parse("", "", "", &l, why, sizeof(why)), -ENOENT);
}

static void test_leaf_names_and_paths(void **state)
{
	struct cgroup_layout l;
	struct cgroup_leaf leaf;
	char why[512], long_name[80];

	assert_true(cgroup_leaf_name_valid("fork-123-child-0"));
	assert_true(cgroup_leaf_name_valid("c_1.x"));
	assert_false(cgroup_leaf_name_valid(""));
	assert_false(cgroup_leaf_name_valid(".."));
	assert_false(cgroup_leaf_name_valid(".hidden"));
	assert_false(cgroup_leaf_name_valid("a/b"));
	assert_false(cgroup_leaf_name_valid("../x"));
	assert_false(cgroup_leaf_name_valid("a b"));
	memset(long_name, 'a', sizeof(long_name) - 1);
	long_name[sizeof(long_name) - 1] = '\0';
	assert_false(cgroup_leaf_name_valid(long_name));

	assert_int_equal(
	    cgroup_layout_parse(v1_mountinfo, v1_cgroups, v1_self, &l, why, sizeof(why)), 0);
	assert_int_equal(cgroup_leaf_path(&l, "fork-7-child-3", &leaf), 0);
	assert_int_equal(leaf.version, CGROUP_V1);
	assert_string_equal(leaf.path,
			    "/sys/fs/cgroup/memory/process_api/0b06/forkd/fork-7-child-3");
	assert_int_equal(cgroup_leaf_path(&l, "../../escape", &leaf), -EINVAL);
}

static void test_layout_at_refuses_non_cgroup(void **state)
{
	struct cgroup_layout l;

	assert_int_equal(cgroup_layout_at("/tmp", &l), -EINVAL);
	assert_int_equal(cgroup_layout_at("/nonexistent-forkd-dir", &l), -ENOENT);
}

/* --- the v2 code path on a cgroup2 tree mounted here ------------------ */

static int v2_fail(const char *what)
{
	printf("cgroup2: FAIL: %s (errno %s)\n", what, strerror(errno));
	return 1;
}

static bool in_cgroup(pid_t pid, const char *rel)
{
	char path[64], line[512], want[PATH_MAX + 8];
	bool found = false;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/cgroup", (int)pid);
	snprintf(want, sizeof(want), "0::%s\n", rel);
	f = fopen(path, "r");
	if (!f)
		return false;
	while (fgets(line, sizeof(line), f))
		found |= !strcmp(line, want);
	fclose(f);
	return found;
}

/* A process in leaf that waits on a pipe; returns its pid. */
static pid_t park_in(const char *leaf, int *release)
{
	int p[2], q[2];
	pid_t pid;
	char c;

	if (pipe(p) || pipe(q))
		return -1;
	pid = fork();
	if (pid == 0) {
		close(p[1]);
		close(q[0]);
		c = cgroup_leaf_join(leaf) ? 'E' : 'J';
		(void)!write(q[1], &c, 1);
		(void)!read(p[0], &c, 1);
		_exit(0);
	}
	close(p[0]);
	close(q[1]);
	if (read(q[0], &c, 1) != 1 || c != 'J') {
		close(q[0]);
		return -1;
	}
	close(q[0]);
	*release = p[1];
	return pid;
}

/* Memory controller available: a real OOM kill inside a 64 MiB leaf. */
static int v2_with_memory(const struct cgroup_layout *l)
{
	struct cgroup_leaf leaf;
	uint64_t kills = 0;
	char path[PATH_MAX + 32];
	int st, fd;
	pid_t pid;

	if (cgroup_parent_prepare(l))
		return v2_fail("cgroup_parent_prepare with the memory controller available");
	if (cgroup_leaf_create(l, "t-oom", 64 * MIB, &leaf))
		return v2_fail("cgroup_leaf_create 64 MiB");
	snprintf(path, sizeof(path), "%s/memory.max", leaf.path);
	fd = open(path, O_RDONLY);
	if (fd < 0 || read(fd, path, 32) < 8 || strncmp(path, "67108864", 8))
		return v2_fail("memory.max is not 67108864");
	close(fd);
	pid = fork();
	if (pid == 0) {
		char *p;

		if (cgroup_leaf_join(leaf.path))
			_exit(3);
		p = mmap(NULL, 200 * MIB, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1,
			 0);
		if (p == MAP_FAILED)
			_exit(4);
		for (size_t i = 0; i < 200 * MIB; i += 4096)
			p[i] = 1;
		_exit(0); /* not reached under the limit */
	}
	waitpid(pid, &st, 0);
	if (!WIFSIGNALED(st) || WTERMSIG(st) != SIGKILL)
		return v2_fail("a process writing 200 MiB in a 64 MiB leaf was not SIGKILLed");
	if (cgroup_leaf_oom_kills(&leaf, &kills) || kills < 1)
		return v2_fail("memory.events does not count the OOM kill");
	if (cgroup_leaf_remove(&leaf) || access(leaf.path, F_OK) == 0)
		return v2_fail("leaf not removed");
	cgroup_parent_remove(l);
	printf("cgroup2: memory controller available: 200 MiB writer OOM-killed in a 64 MiB "
	       "leaf (%llu OOM kill), leaf removed\n",
	       (unsigned long long)kills);
	return 0;
}

/* No memory controller in this tree: say why, and check the rest. */
static int v2_without_memory(const struct cgroup_layout *l, const char *ctl)
{
	struct cgroup_leaf leaf;
	uint64_t kills;
	char rel[PATH_MAX];
	int release = -1, st;
	pid_t pid;

	char line[128];
	unsigned hier = 0, num, en;
	FILE *f = fopen("/proc/cgroups", "r");

	while (f && fgets(line, sizeof(line), f))
		if (sscanf(line, "memory %u %u %u", &hier, &num, &en) == 3)
			break;
	if (f)
		fclose(f);
	if (hier)
		printf("cgroup2: the memory controller cannot be enabled in this cgroup2 tree: its "
		       "cgroup.controllers lists '%s', because /proc/cgroups binds 'memory' to "
		       "cgroup v1 hierarchy %u, and a controller serves one hierarchy at a time; "
		       "checking detection, the refusal, and leaves without a limit instead\n",
		       ctl, hier);
	else
		printf("cgroup2: the memory controller is not in this cgroup2 tree's "
		       "cgroup.controllers ('%s') although /proc/cgroups does not bind it to v1: "
		       "it is not delegated to the root of this cgroup namespace; checking "
		       "detection, the refusal, and leaves without a limit instead\n",
		       ctl);
	if (cgroup_parent_prepare(l) != -ENOENT)
		return v2_fail("cgroup_parent_prepare did not refuse a tree without memory");
	if (mkdir(l->parent, 0755) < 0)
		return v2_fail("mkdir forkd/");
	if (cgroup_leaf_create(l, "t-limit", 64 * MIB, &leaf) == 0 || access(leaf.path, F_OK) == 0)
		return v2_fail("a limit without the memory controller did not fail cleanly");
	if (cgroup_leaf_create(l, "t-0", 0, &leaf))
		return v2_fail("cgroup_leaf_create without a limit");
	if (cgroup_leaf_create(l, "t-0", 0, &(struct cgroup_leaf){0}) != -EEXIST)
		return v2_fail("a second leaf of the same name was not refused");
	pid = park_in(leaf.path, &release);
	if (pid < 0)
		return v2_fail("join the leaf");
	snprintf(rel, sizeof(rel), "/forkd-test-%d/%s/t-0", (int)getpid(), CGROUP_PARENT_NAME);
	if (!in_cgroup(pid, rel))
		return v2_fail("the joined process is not in /forkd/t-0");
	if (cgroup_leaf_remove(&(struct cgroup_leaf){.path = "/nonexistent/x"}) != 0)
		return v2_fail("removing a missing leaf is not a no-op");
	if (cgroup_leaf_oom_kills(&leaf, &kills) != -ENOENT)
		return v2_fail("OOM count without memory.events");
	close(release);
	waitpid(pid, &st, 0);
	if (cgroup_leaf_remove(&leaf) || access(leaf.path, F_OK) == 0)
		return v2_fail("leaf not removed after its process ended");
	cgroup_parent_remove(l);
	if (access(l->parent, F_OK) == 0)
		return v2_fail("forkd/ not removed once empty");
	printf("cgroup2: detected v2 at the mount, refused the memory limit with the reason, "
	       "created leaf forkd/t-0, moved a process into it, removed both\n");
	return 0;
}

static int v2_helper(void)
{
	char dir[] = "/tmp/forkd-cg2.XXXXXX", ctl_path[PATH_MAX + 64], ctl[256] = "", sub[128];
	struct cgroup_layout l;
	int rc, fd;
	ssize_t n;

	if (unshare(CLONE_NEWNS) || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL))
		return v2_fail("private mount namespace");
	if (!mkdtemp(dir))
		return v2_fail("mkdtemp");
	if (mount("none", dir, "cgroup2", 0, NULL)) {
		rmdir(dir);
		return v2_fail("mount -t cgroup2");
	}
	/* The tree is the host's one hierarchy: work in a cgroup of this
	 * test's own, so concurrent runs do not meet in one forkd/. */
	snprintf(sub, sizeof(sub), "%s/forkd-test-%d", dir, (int)getpid());
	snprintf(ctl_path, sizeof(ctl_path), "%s/cgroup.subtree_control", dir);
	fd = open(ctl_path, O_WRONLY);
	if (fd >= 0) {
		(void)!write(fd, "+memory", 7); /* fails where memory is not on v2 */
		close(fd);
	}
	if (mkdir(sub, 0755)) {
		rc = v2_fail("mkdir a test cgroup");
		goto out;
	}
	if (cgroup_layout_at(sub, &l) || l.version != CGROUP_V2) {
		rc = v2_fail("cgroup_layout_at did not see cgroup v2");
		goto out;
	}
	snprintf(ctl_path, sizeof(ctl_path), "%s/cgroup.controllers", sub);
	fd = open(ctl_path, O_RDONLY);
	n = fd >= 0 ? read(fd, ctl, sizeof(ctl) - 1) : -1;
	if (fd >= 0)
		close(fd);
	ctl[n > 0 ? n : 0] = '\0';
	ctl[strcspn(ctl, "\n")] = '\0';
	rc = strstr(ctl, "memory") ? v2_with_memory(&l) : v2_without_memory(&l, ctl);
	rmdir(sub);
out:
	umount2(dir, MNT_DETACH);
	rmdir(dir);
	return rc;
}

static void test_v2_on_mounted_tree(void **state)
{
	int st;
	pid_t pid;

	if (geteuid() != 0) {
		printf("cgroup2: SKIP: mounting cgroup2 needs root\n");
		skip();
	}
	fflush(stdout);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		int rc = v2_helper();

		fflush(stdout);
		_exit(rc);
	}
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_v1_layout),
	    cmocka_unit_test(test_v1_combined_controllers_and_root),
	    cmocka_unit_test(test_v1_memory_word_must_match_exactly),
	    cmocka_unit_test(test_v2_layout),
	    cmocka_unit_test(test_v2_subtree_mount),
	    cmocka_unit_test(test_escaped_mount_point),
	    cmocka_unit_test(test_errors_say_why),
	    cmocka_unit_test(test_leaf_names_and_paths),
	    cmocka_unit_test(test_layout_at_refuses_non_cgroup),
	    cmocka_unit_test(test_v2_on_mounted_tree),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
