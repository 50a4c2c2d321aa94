/* The kept children's registry (src/fork/kept.c): ids (the only gate from
 * a command line to a path), and an entry's write, read, listing and
 * removal in a private $FORKD_HOME. */
#include <errno.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "fork/kept.h"

static void test_ids(void **state)
{
	static const char *bad[] = {"",		  "k-",		 "k-0123abc",	"k-0123abcde",
				    "k-0123ABCD", "K-0123abcd",	 "k-0123abcg",	"../x",
				    "k-../../x",  "k-0123ab/d",	 "sb-0123abcd", "k-0123abc\n",
				    "x-0123abcd", "k-0123abcd ", "k_0123abcd"};
	char id[KEPT_ID_LEN + 1], path[PATH_MAX];

	(void)state;
	assert_true(kept_id_valid("k-0123abcd"));
	assert_true(kept_id_valid("k-ffffffff"));
	assert_false(kept_id_valid(NULL));
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_false(kept_id_valid(bad[i]));
		assert_int_equal(kept_path(bad[i], path, sizeof(path)), -EINVAL);
		assert_int_equal(kept_remove(bad[i]), -EINVAL);
	}
	for (int i = 0; i < 100; i++) {
		assert_int_equal(kept_id_new(id), 0);
		assert_true(kept_id_valid(id));
	}
}

static void test_registry(void **state)
{
	char home[] = "/tmp/forkd-test-kept.XXXXXX", path[PATH_MAX];
	struct child_rec a = {.index = 1, .pid = 4242, .start_time = 99, .supervisor_pid = 4000};
	struct child_rec b, r, *v;
	size_t n;
	FILE *f;

	(void)state;
	assert_non_null(mkdtemp(home));
	setenv("FORKD_HOME", home, 1);
	assert_int_equal(kept_list(&v, &n), 0); /* no registry yet */
	assert_int_equal(n, 0);
	assert_int_equal(kept_read("k-00000000", &r), -ENOENT);
	strcpy(a.id, "k-0000000b");
	assert_int_equal(kept_write(&a), -EINVAL); /* no tag, no run dir */

	strcpy(a.id, "k-0000000b");
	strcpy(a.tag, "t");
	strcpy(a.run_dir, "/tmp/x/child-1");
	assert_int_equal(kept_write(&a), 0);
	assert_true(a.created_ms > 0);
	b = a;
	b.index = 0;
	strcpy(b.id, "k-0000000a");
	b.created_ms = a.created_ms;
	assert_int_equal(kept_write(&b), 0);

	assert_int_equal(kept_read("k-0000000b", &r), 0);
	assert_string_equal(r.tag, "t");
	assert_string_equal(r.run_dir, "/tmp/x/child-1");
	assert_int_equal(r.pid, 4242);
	assert_int_equal(r.start_time, 99);
	assert_int_equal(r.index, 1);
	/* The file keeps the time to the second. */
	assert_int_equal(r.created_ms, a.created_ms / 1000 * 1000);

	/* A file under another id's name, and a relative run dir, are refused;
	 * files that are not entries are skipped by the listing. */
	snprintf(path, sizeof(path), "%s/kept/k-0000000c.json", home);
	f = fopen(path, "w");
	assert_non_null(f);
	fprintf(f, "{\"id\": \"k-0000000b\"}\n");
	fclose(f);
	assert_int_equal(kept_read("k-0000000c", &r), -EINVAL);
	snprintf(path, sizeof(path), "%s/kept/notes.txt", home);
	f = fopen(path, "w");
	assert_non_null(f);
	fclose(f);

	assert_int_equal(kept_list(&v, &n), 0);
	assert_int_equal(n, 2);
	assert_string_equal(v[0].id, "k-0000000a"); /* same time and fork: by index */
	assert_string_equal(v[1].id, "k-0000000b");
	free(v);

	assert_int_equal(kept_remove("k-0000000a"), 0);
	assert_int_equal(kept_remove("k-0000000a"), 0); /* already gone */
	assert_int_equal(kept_read("k-0000000a", &r), -ENOENT);
	assert_int_equal(kept_remove("k-0000000b"), 0);
	assert_int_equal(kept_remove("k-0000000c"), 0);
	unlink(path);
	snprintf(path, sizeof(path), "%s/kept", home);
	assert_int_equal(rmdir(path), 0);
	assert_int_equal(rmdir(home), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_ids),
	    cmocka_unit_test(test_registry),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
