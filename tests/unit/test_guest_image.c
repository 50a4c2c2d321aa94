/* Guest images as `forkd snapshot --image` reads them
 * (src/snapshot/guest_image.c): the cmdline file, CONFIG_HZ from a kernel
 * .config, lpj=, where the cache is, and guest_image_open() on real
 * directories in a temporary cache (missing image, missing files, a bad
 * cmdline, the kernel's .config found through image.json). No KVM needed. */
#include <errno.h>
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

#include "snapshot/guest_image.h"

static int parse(const char *text, char *out, size_t size)
{
	return guest_image_parse_cmdline(text, strlen(text), out, size);
}

static void test_cmdline(void **state)
{
	char out[64];

	(void)state;
	assert_int_equal(parse("console=ttyS0 quiet\n", out, sizeof(out)), 0);
	assert_string_equal(out, "console=ttyS0 quiet");
	assert_int_equal(parse("  a=1\tb=2 \t\n", out, sizeof(out)), 0);
	assert_string_equal(out, "a=1\tb=2");
	assert_int_equal(parse("no newline", out, sizeof(out)), 0);
	assert_string_equal(out, "no newline");
	/* Not one printable line. */
	assert_int_equal(parse("", out, sizeof(out)), -EBADMSG);
	assert_int_equal(parse("\n", out, sizeof(out)), -EBADMSG);
	assert_int_equal(parse("   \n", out, sizeof(out)), -EBADMSG);
	assert_int_equal(parse("a\nb\n", out, sizeof(out)), -EBADMSG);
	assert_int_equal(parse("a\n\n", out, sizeof(out)), -EBADMSG);
	assert_int_equal(parse("a\r\n", out, sizeof(out)), -EBADMSG);
	assert_int_equal(parse("caf\xc3\xa9\n", out, sizeof(out)), -EBADMSG);
	assert_int_equal(parse("a\x1b[0m\n", out, sizeof(out)), -EBADMSG);
	assert_int_equal(guest_image_parse_cmdline("a\0b", 3, out, sizeof(out)), -EBADMSG);
	/* Length: size - 1 bytes fit, one more does not. */
	assert_int_equal(parse("12345678\n", out, 9), 0);
	assert_string_equal(out, "12345678");
	assert_int_equal(parse("123456789\n", out, 9), -ENAMETOOLONG);
}

static unsigned hz(const char *text)
{
	return guest_image_kconfig_hz(text, strlen(text));
}

static void test_kconfig_hz(void **state)
{
	(void)state;
	assert_int_equal(hz("CONFIG_HZ_250=y\nCONFIG_HZ=250\n"), 250);
	assert_int_equal(hz("# CONFIG_HZ_1000 is not set\nCONFIG_HZ=1000"), 1000);
	assert_int_equal(hz("CONFIG_HZ_PERIODIC=y\nCONFIG_HZ=100\nCONFIG_HZ=300\n"), 100);
	/* Only the exact key, at the start of a line. */
	assert_int_equal(hz("CONFIG_HZ_250=y\n# CONFIG_HZ=250\n XCONFIG_HZ=250\n"), 0);
	assert_int_equal(hz(""), 0);
	assert_int_equal(hz("CONFIG_HZ=\n"), 0);
	assert_int_equal(hz("CONFIG_HZ=0\n"), 0);
	assert_int_equal(hz("CONFIG_HZ=25x\n"), 0);
	assert_int_equal(hz("CONFIG_HZ=-250\n"), 0);
	assert_int_equal(hz("CONFIG_HZ=10001\n"), 0);
	assert_int_equal(hz("CONFIG_HZ=999999999999\n"), 0);
	assert_int_equal(hz("CONFIG_HZ=10000\n"), 10000);
	/* The length given counts, not a NUL. */
	assert_int_equal(guest_image_kconfig_hz("CONFIG_HZ=250", 12), 25);
}

static void test_lpj(void **state)
{
	(void)state;
	/* tests/e2e/linux_boot.sh: 2596 MHz, HZ 250 -> 10384000. */
	assert_int_equal(guest_image_lpj(2596000, 250), 10384000);
	assert_int_equal(guest_image_lpj(2596122, 250), 10384488);
	assert_int_equal(guest_image_lpj(3000000, 1000), 3000000);
	assert_int_equal(guest_image_lpj(0, 250), 0);
	assert_int_equal(guest_image_lpj(2596000, 0), 0);
}

/* --- on real directories ------------------------------------------------------ */

struct tmp {
	char top[64];
	char images[128];
};

static void put(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	assert_int_equal(fputs(text, f) >= 0, 1);
	assert_int_equal(fclose(f), 0);
}

static void put_image(struct tmp *t, const char *tag, const char *cmdline)
{
	static const char *const files[] = {"vmlinuz", "initrd.img", "rootfs.ext4"};
	char path[512];

	snprintf(path, sizeof(path), "%s/%s", t->images, tag);
	assert_int_equal(mkdir(path, 0755), 0);
	for (size_t i = 0; i < 3; i++) {
		snprintf(path, sizeof(path), "%s/%s/%s", t->images, tag, files[i]);
		put(path, "x");
	}
	snprintf(path, sizeof(path), "%s/%s/cmdline", t->images, tag);
	put(path, cmdline);
}

static int setup(void **state)
{
	struct tmp *t = calloc(1, sizeof(*t));

	snprintf(t->top, sizeof(t->top), "/tmp/forkd-test-image.XXXXXX");
	if (!mkdtemp(t->top))
		return -1;
	snprintf(t->images, sizeof(t->images), "%s/images", t->top);
	mkdir(t->images, 0755);
	setenv("FORKD_CACHE", t->top, 1);
	*state = t;
	return 0;
}

static int teardown(void **state)
{
	struct tmp *t = *state;
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", t->top);
	if (system(cmd) != 0)
		return -1;
	unsetenv("FORKD_CACHE");
	free(t);
	return 0;
}

static void test_root(void **state)
{
	char buf[256];

	(void)state;
	unsetenv("FORKD_CACHE");
	setenv("XDG_CACHE_HOME", "/x/cache", 1);
	assert_int_equal(guest_image_root(buf, sizeof(buf)), 0);
	assert_string_equal(buf, "/x/cache/forkd/images");
	unsetenv("XDG_CACHE_HOME");
	setenv("HOME", "/home/u", 1);
	assert_int_equal(guest_image_root(buf, sizeof(buf)), 0);
	assert_string_equal(buf, "/home/u/.cache/forkd/images");
	setenv("FORKD_CACHE", "/c", 1);
	setenv("XDG_CACHE_HOME", "/x/cache", 1);
	assert_int_equal(guest_image_root(buf, sizeof(buf)), 0);
	assert_string_equal(buf, "/c/images");
	assert_int_equal(guest_image_root(buf, 5), -ENAMETOOLONG);
	unsetenv("XDG_CACHE_HOME");
	unsetenv("FORKD_CACHE");
}

static void test_open_missing(void **state)
{
	struct tmp *t = *state;
	struct guest_image *img = malloc(sizeof(*img));
	char err[600], path[512];

	assert_int_equal(guest_image_open("py", img, err, sizeof(err)), -ENOENT);
	assert_non_null(strstr(err, t->images));
	assert_non_null(strstr(err, "forkd image build --tag py"));
	/* Tags are checked before they become paths. */
	assert_int_equal(guest_image_open("..", img, err, sizeof(err)), -EINVAL);
	assert_int_equal(guest_image_open("a/b", img, err, sizeof(err)), -EINVAL);
	assert_int_equal(guest_image_open("", img, err, sizeof(err)), -EINVAL);
	/* Each file is required; the message names the missing one. */
	put_image(t, "py", "console=ttyS0\n");
	snprintf(path, sizeof(path), "%s/py/initrd.img", t->images);
	assert_int_equal(unlink(path), 0);
	assert_int_equal(guest_image_open("py", img, err, sizeof(err)), -ENOENT);
	assert_non_null(strstr(err, path));
	assert_non_null(strstr(err, "forkd image build --tag py"));
	/* A directory where a file should be is no better. */
	assert_int_equal(mkdir(path, 0755), 0);
	assert_int_equal(guest_image_open("py", img, err, sizeof(err)), -ENOENT);
	free(img);
}

static void test_open_bad_cmdline(void **state)
{
	struct tmp *t = *state;
	struct guest_image *img = malloc(sizeof(*img));
	char err[600], big[GUEST_IMAGE_CMDLINE_MAX + 10];

	put_image(t, "two", "a=1\nb=2\n");
	assert_int_equal(guest_image_open("two", img, err, sizeof(err)), -EBADMSG);
	assert_non_null(strstr(err, "/two/cmdline"));
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = 0;
	put_image(t, "big", big);
	assert_int_equal(guest_image_open("big", img, err, sizeof(err)), -EBADMSG);
	free(img);
}

static void test_open_good(void **state)
{
	struct tmp *t = *state;
	struct guest_image *img = malloc(sizeof(*img));
	char err[600], path[512];

	/* No .config anywhere: hz 0 (the caller assumes the default). */
	put_image(t, "py", "  console=ttyS0 root=/dev/vda  \n");
	assert_int_equal(guest_image_open("py", img, err, sizeof(err)), 0);
	assert_string_equal(img->cmdline, "console=ttyS0 root=/dev/vda");
	snprintf(path, sizeof(path), "%s/py/vmlinuz", t->images);
	assert_string_equal(img->kernel, path);
	snprintf(path, sizeof(path), "%s/py/initrd.img", t->images);
	assert_string_equal(img->initrd, path);
	snprintf(path, sizeof(path), "%s/py/rootfs.ext4", t->images);
	assert_string_equal(img->rootfs, path);
	assert_int_equal(img->hz, 0);

	/* The kernel's .config in the cache, named by image.json. */
	snprintf(path, sizeof(path), "%s/py/image.json", t->images);
	put(path,
	    "{\"kernel\": {\"release\": \"6.1.0-56-cloud-amd64\", \"version\": \"6.1.192-2\"}}");
	snprintf(path, sizeof(path), "%s/kernel", t->top);
	assert_int_equal(mkdir(path, 0755), 0);
	snprintf(path, sizeof(path), "%s/kernel/6.1.0-56-cloud-amd64_6.1.192-2", t->top);
	assert_int_equal(mkdir(path, 0755), 0);
	snprintf(path, sizeof(path), "%s/kernel/6.1.0-56-cloud-amd64_6.1.192-2/config", t->top);
	put(path, "CONFIG_HZ_300=y\nCONFIG_HZ=300\n");
	assert_int_equal(guest_image_open("py", img, err, sizeof(err)), 0);
	assert_int_equal(img->hz, 300);
	assert_non_null(strstr(img->hz_source, "6.1.192-2/config"));

	/* A config in the image directory comes first. */
	snprintf(path, sizeof(path), "%s/py/config", t->images);
	put(path, "CONFIG_HZ=1000\n");
	assert_int_equal(guest_image_open("py", img, err, sizeof(err)), 0);
	assert_int_equal(img->hz, 1000);
	assert_int_equal(unlink(path), 0);

	/* image.json cannot send the lookup elsewhere. */
	snprintf(path, sizeof(path), "%s/py/image.json", t->images);
	put(path, "{\"kernel\": {\"release\": \"..\", \"version\": \"x\"}}");
	assert_int_equal(guest_image_open("py", img, err, sizeof(err)), 0);
	assert_int_equal(img->hz, 0);
	put(path, "{\"kernel\": {\"release\": \"a/../../kernel/6.1.0-56-cloud-amd64\", "
		  "\"version\": \"6.1.192-2\"}}");
	assert_int_equal(guest_image_open("py", img, err, sizeof(err)), 0);
	assert_int_equal(img->hz, 0);
	/* Not JSON, or the wrong types: no .config, no failure. */
	put(path, "{\"kernel\": 5");
	assert_int_equal(guest_image_open("py", img, err, sizeof(err)), 0);
	assert_int_equal(img->hz, 0);
	put(path, "{\"kernel\": {\"release\": 1, \"version\": []}}");
	assert_int_equal(guest_image_open("py", img, err, sizeof(err)), 0);
	assert_int_equal(img->hz, 0);
	free(img);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_cmdline),
	    cmocka_unit_test(test_kconfig_hz),
	    cmocka_unit_test(test_lpj),
	    cmocka_unit_test(test_root),
	    cmocka_unit_test_setup_teardown(test_open_missing, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_open_bad_cmdline, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_open_good, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
