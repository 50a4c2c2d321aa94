/* snapshot/pack_manifest.c: a pack's manifest.json is read from a file
 * that came from elsewhere. A good manifest parses and survives a round
 * trip through pack_manifest_json(); each broken rule (unknown key, format
 * version, role order and paths, sha256 text, sizes, source paths, the
 * snapshot's own files) is refused with a sentence; a snapshot.json that
 * disagrees with its manifest is refused too. Also common/sha256.c
 * against FIPS 180-4's test vector. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/sha256.h"
#include "common/util.h"
#include "snapshot/pack_manifest.h"

#define SUM "6eba1b2d9b6b7b00e70d0e3601ab5cb75cd63c45ad26db0de7ae9fc8bd923cb4"
#define FILE_(path, role, size, extra)                                                             \
	"{\"path\":\"" path "\",\"role\":\"" role "\",\"size\":" #size ",\"sha256\":\"" SUM        \
	"\",\"included\":true" extra "}"
#define HEAD                                                                                       \
	"{\"format_version\":1,\"tag\":\"t\",\"created\":\"2026-01-01T00:00:00Z\",\"packed\":"     \
	"\"2026-01-02T00:00:00Z\",\"forkd_version\":\"0.2.0\",\"parent\":null,\"files\":["
#define OWN                                                                                        \
	FILE_("snapshot/snapshot.json", "snapshot.json", 400, "")                                  \
	"," FILE_("snapshot/vmstate", "vmstate", 1000, "") "," FILE_("snapshot/memory.bin",        \
								     "memory.bin", 67108864, "")
#define KERNEL FILE_("assets/kernel", "kernel", 5000, ",\"source\":\"/k\"")
#define DISK0  FILE_("assets/disk0", "disk0", 8192, "")

static const char good[] = HEAD OWN "," KERNEL "," DISK0 "]}";

static void test_good_round_trip(void **state)
{
	struct pack_manifest m, again;
	char err[256];
	json_t *j;
	char *text;

	(void)state;
	assert_int_equal(pack_manifest_parse(good, strlen(good), &m, err, sizeof(err)), 0);
	assert_string_equal(m.tag, "t");
	assert_int_equal(m.nr_files, 5);
	assert_int_equal(m.files[4].role, PACK_DISK0);
	assert_string_equal(m.files[3].source, "/k");
	assert_non_null(pack_manifest_find(&m, PACK_KERNEL));
	assert_null(pack_manifest_find(&m, PACK_INITRD));
	j = pack_manifest_json(&m);
	text = json_dumps(j, 0);
	json_decref(j);
	assert_int_equal(pack_manifest_parse(text, strlen(text), &again, err, sizeof(err)), 0);
	assert_memory_equal(&m, &again, sizeof(m));
	free(text);
}

static void refused(const char *text, const char *why)
{
	struct pack_manifest m;
	char err[256] = "";

	assert_int_not_equal(pack_manifest_parse(text, strlen(text), &m, err, sizeof(err)), 0);
	if (!strstr(err, why))
		fail_msg("'%s' does not say '%s'", err, why);
	assert_int_equal(m.nr_files, 0);
}

static void test_refused(void **state)
{
	(void)state;
	refused("{", "line 1");
	refused(HEAD OWN "," KERNEL "],\"extra\":1}", "extra");
	refused("{\"format_version\":2}", "version 2");
	refused(HEAD OWN "]}", "no kernel");
	refused(HEAD KERNEL "," OWN "]}", "out of order");
	refused(HEAD OWN "," KERNEL "," KERNEL "]}", "out of order");
	refused(HEAD OWN "," FILE_("assets/../kernel", "kernel", 1, "") "]}", "must be at");
	refused(HEAD OWN "," FILE_("assets/kernel", "bzImage", 1, "") "]}", "unknown role");
	refused(HEAD FILE_("snapshot/snapshot.json", "snapshot.json", 70000, "") "]}",
		"size out of range");
	refused(HEAD OWN "," FILE_("assets/kernel", "kernel", -1, "") "]}", "size out of range");
	refused(HEAD OWN "," FILE_("assets/kernel", "kernel", 1, ",\"source\":\"rel\"") "]}",
		"absolute");
	refused(HEAD OWN "," FILE_("assets/kernel", "kernel", 1, ",\"source\":\"/a\\nb\"") "]}",
		"absolute");
	refused(HEAD FILE_("snapshot/snapshot.json", "snapshot.json", 1, ",\"source\":\"/x\"") "]}",
		"must be included");
	refused("{\"format_version\":1,\"tag\":\"../x\",\"created\":\"c\",\"packed\":\"p\","
		"\"forkd_version\":\"v\",\"parent\":null,\"files\":[]}",
		"invalid tag");
	refused(HEAD OWN "," KERNEL "]}x", "line 1");
}

static void test_bad_sha256(void **state)
{
	char text[sizeof(good)];
	char *p;

	(void)state;
	memcpy(text, good, sizeof(good));
	p = strstr(text, SUM);
	p[0] = 'A'; /* upper case */
	refused(text, "sha256");
	p[0] = '6';
	p[63] = 0;
	memmove(p + 63, p + 64, strlen(p + 64) + 1); /* 63 digits */
	refused(text, "sha256");
}

static void test_check_meta(void **state)
{
	struct pack_manifest m;
	struct snapshot_meta meta = {0};
	char err[256];

	(void)state;
	assert_int_equal(pack_manifest_parse(good, strlen(good), &m, err, sizeof(err)), 0);
	strcpy(meta.tag, "t");
	strcpy(meta.created, "2026-01-01T00:00:00Z");
	strcpy(meta.kernel, "/k");
	meta.mem_mib = 64;
	meta.dev.nr_disks = 1;
	assert_int_equal(pack_manifest_check_meta(&m, &meta, err, sizeof(err)), 0);
	meta.mem_mib = 128;
	assert_int_equal(pack_manifest_check_meta(&m, &meta, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "memory.bin"));
	meta.mem_mib = 64;
	meta.dev.nr_disks = 2;
	assert_int_equal(pack_manifest_check_meta(&m, &meta, err, sizeof(err)), -EINVAL);
	meta.dev.nr_disks = 1;
	strcpy(meta.initrd, "/i");
	assert_int_equal(pack_manifest_check_meta(&m, &meta, err, sizeof(err)), -EINVAL);
	meta.initrd[0] = 0;
	meta.mem_diff = true;
	assert_int_equal(pack_manifest_check_meta(&m, &meta, err, sizeof(err)), -EINVAL);
	meta.mem_diff = false;
	strcpy(meta.tag, "u");
	assert_int_equal(pack_manifest_check_meta(&m, &meta, err, sizeof(err)), -EINVAL);
}

static void test_sha256(void **state)
{
	struct sha256 *h = sha256_new();
	uint8_t d[SHA256_BYTES], back[SHA256_BYTES];
	char hex[SHA256_HEX];

	(void)state;
	assert_non_null(h);
	sha256_update(h, "a", 1);
	sha256_update(h, "bc", 2);
	sha256_final(h, d);
	sha256_to_hex(d, hex);
	assert_string_equal(hex,
			    "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
	assert_int_equal(sha256_from_hex(hex, back), 0);
	assert_memory_equal(d, back, sizeof(d));
	assert_int_equal(sha256_from_hex("xyz", back), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_good_round_trip), cmocka_unit_test(test_refused),
	    cmocka_unit_test(test_bad_sha256),	    cmocka_unit_test(test_check_meta),
	    cmocka_unit_test(test_sha256),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
