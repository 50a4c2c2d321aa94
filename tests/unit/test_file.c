/* common/file.c: file_read() on regular, /proc and refused files and at
 * its size limit; file_remove_tree() on a nested tree, on nothing, and
 * beside a symbolic link whose target must survive. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/file.h"

static char base[256];

static void put(const char *rel, const char *text)
{
	char path[PATH_MAX + 64];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", base, rel);
	f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static void sub(const char *rel, char *out)
{
	snprintf(out, PATH_MAX, "%s/%s", base, rel);
}

static void test_read(void **state)
{
	char path[PATH_MAX], *text = NULL;
	size_t len = 0;

	(void)state;
	put("a", "hello\n");
	sub("a", path);
	assert_int_equal(file_read(path, 100, &text, &len), 0);
	assert_int_equal(len, 6);
	assert_string_equal(text, "hello\n");
	free(text);
	/* Exactly at the limit is fine, one byte over is not. */
	assert_int_equal(file_read(path, 6, &text, NULL), 0);
	free(text);
	assert_int_equal(file_read(path, 5, &text, NULL), -EFBIG);
	put("empty", "");
	sub("empty", path);
	assert_int_equal(file_read(path, 10, &text, &len), 0);
	assert_int_equal(len, 0);
	assert_string_equal(text, "");
	free(text);
	/* /proc files report size 0: read until the end, still bounded. */
	assert_int_equal(file_read("/proc/self/status", 1 << 20, &text, &len), 0);
	assert_non_null(strstr(text, "Pid:"));
	assert_int_equal(strlen(text), len);
	free(text);
	assert_int_equal(file_read("/proc/self/status", 10, &text, NULL), -EFBIG);
	/* Never blocks on a FIFO, never reads a directory or a device. */
	sub("fifo", path);
	assert_int_equal(mkfifo(path, 0600), 0);
	assert_int_equal(file_read(path, 10, &text, NULL), -EINVAL);
	assert_int_equal(file_read(base, 10, &text, NULL), -EINVAL);
	assert_int_equal(file_read("/dev/zero", 10, &text, NULL), -EINVAL);
	sub("missing", path);
	assert_int_equal(file_read(path, 10, &text, NULL), -ENOENT);
}

static void test_remove_tree(void **state)
{
	char path[PATH_MAX], keep[PATH_MAX], link[PATH_MAX];
	struct stat st;

	(void)state;
	sub("keep", keep);
	assert_int_equal(mkdir(keep, 0700), 0);
	put("keep/precious", "x");
	sub("t", path);
	assert_int_equal(mkdir(path, 0700), 0);
	sub("t/d1", path);
	assert_int_equal(mkdir(path, 0700), 0);
	sub("t/d1/d2", path);
	assert_int_equal(mkdir(path, 0700), 0);
	put("t/f", "1");
	put("t/d1/d2/f", "2");
	/* A link to a directory outside: removed as a link, target intact. */
	sub("t/d1/out", link);
	assert_int_equal(symlink(keep, link), 0);
	sub("t", path);
	assert_int_equal(file_remove_tree(path), 0);
	assert_int_equal(lstat(path, &st), -1);
	sub("keep/precious", path);
	assert_int_equal(stat(path, &st), 0);
	/* Nothing there: nothing to do. */
	sub("t", path);
	assert_int_equal(file_remove_tree(path), 0);
	/* A link given as the path itself: the link goes, not its target. */
	sub("l", link);
	assert_int_equal(symlink(keep, link), 0);
	assert_int_equal(file_remove_tree(link), 0);
	assert_int_equal(stat(keep, &st), 0);
	assert_int_equal(file_remove_tree("relative"), -EINVAL);
	sub("..", path);
	assert_int_equal(file_remove_tree(path), -EINVAL);
	/* Clean up the test's own directory with it. */
	assert_int_equal(file_remove_tree(base), 0);
	assert_int_equal(lstat(base, &st), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_read),
	    cmocka_unit_test(test_remove_tree),
	};

	snprintf(base, sizeof(base), "/tmp/forkd-test-file.XXXXXX");
	if (!mkdtemp(base))
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
