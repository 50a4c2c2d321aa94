/* snapshot.json's device set: "vmgenid" is written and read back; a file
 * from before the VM generation ID existed (no "vmgenid") reads as
 * without it, so its children are not given one; a "vmgenid" that is not
 * a boolean is refused. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/file.h"
#include "snapshot/snapshot.h"

#define DOC(devices)                                                                               \
	"{\"tag\": \"t\", \"created\": \"2026-12-07T12:44:26Z\", \"kernel\": \"k\", "              \
	"\"initrd\": \"\", \"cmdline\": \"\", \"mem_mib\": 16, \"vcpus\": 1, "                     \
	"\"parent\": null, \"format_version\": 1, \"devices\": {\"rng\": true, "                   \
	"\"disks\": [], \"net\": false, \"vsock\": false, \"vsock_cid\": 3" devices "}}"

static int parse(const char *text, struct snapshot_meta *m)
{
	memset(m, 0, sizeof(*m));
	return snapshot_meta_parse("test.json", text, strlen(text), m);
}

static void test_older_file_has_none(void **state)
{
	struct snapshot_meta m;

	assert_int_equal(parse(DOC(""), &m), 0);
	assert_false(m.dev.vmgenid);
	assert_true(m.dev.rng);
}

static void test_read(void **state)
{
	struct snapshot_meta m;

	assert_int_equal(parse(DOC(", \"vmgenid\": true"), &m), 0);
	assert_true(m.dev.vmgenid);
	assert_int_equal(parse(DOC(", \"vmgenid\": false"), &m), 0);
	assert_false(m.dev.vmgenid);
	assert_int_not_equal(parse(DOC(", \"vmgenid\": 1"), &m), 0);
	assert_int_not_equal(parse(DOC(", \"vmgenid\": \"yes\""), &m), 0);
}

static void test_round_trip(void **state)
{
	char dir[] = "/tmp/forkd-test-meta.XXXXXX";
	struct snapshot_meta m, back;

	assert_non_null(mkdtemp(dir));
	for (int on = 0; on <= 1; on++) {
		assert_int_equal(parse(DOC(""), &m), 0);
		m.dev.vmgenid = on;
		assert_int_equal(snapshot_meta_write(dir, &m), 0);
		memset(&back, 0, sizeof(back));
		assert_int_equal(snapshot_meta_read(dir, &back), 0);
		assert_int_equal(back.dev.vmgenid, on);
		assert_string_equal(back.tag, "t");
	}
	assert_int_equal(file_remove_tree(dir), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_older_file_has_none),
	    cmocka_unit_test(test_read),
	    cmocka_unit_test(test_round_trip),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
