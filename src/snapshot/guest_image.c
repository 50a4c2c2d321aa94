/* Guest images from `forkd image build`: find one, check it, read what
 * booting it needs (guest_image.h). */
#include "snapshot/guest_image.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/file.h"
#include "common/util.h"
#include "snapshot/snapshot.h"

#define KCONFIG_MAX (4u << 20) /* a Debian kernel's .config is ~250 KiB */

int guest_image_root(char *buf, size_t size)
{
	const char *cache = getenv("FORKD_CACHE"), *xdg = getenv("XDG_CACHE_HOME");
	const char *home = getenv("HOME");
	int n;

	/* The same order as `forkd image build` (guest/image/build.sh). */
	if (cache && *cache)
		n = snprintf(buf, size, "%s/images", cache);
	else if (xdg && *xdg)
		n = snprintf(buf, size, "%s/forkd/images", xdg);
	else
		n = snprintf(buf, size, "%s/.cache/forkd/images", home && *home ? home : "/root");
	return n < 0 || (size_t)n >= size ? -ENAMETOOLONG : 0;
}

int guest_image_parse_cmdline(const char *text, size_t len, char *out, size_t size)
{
	size_t start = 0, end;

	if (len && text[len - 1] == '\n')
		len--;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)text[i];

		if (c != '\t' && (c < 0x20 || c > 0x7e))
			return -EBADMSG; /* a second line, a NUL, a control byte, non-ASCII */
	}
	end = len;
	while (start < end && (text[start] == ' ' || text[start] == '\t'))
		start++;
	while (end > start && (text[end - 1] == ' ' || text[end - 1] == '\t'))
		end--;
	if (start == end)
		return -EBADMSG;
	if (end - start >= size)
		return -ENAMETOOLONG;
	memcpy(out, text + start, end - start);
	out[end - start] = 0;
	return 0;
}

unsigned guest_image_kconfig_hz(const char *text, size_t len)
{
	static const char key[] = "CONFIG_HZ=";
	const size_t klen = sizeof(key) - 1;
	size_t i = 0;

	while (i < len) {
		const char *line = text + i, *nl = memchr(line, '\n', len - i);
		size_t llen = nl ? (size_t)(nl - line) : len - i;

		i += llen + 1;
		if (llen > klen && llen <= klen + 5 && !memcmp(line, key, klen)) {
			unsigned v = 0;

			for (size_t k = klen; k < llen; k++) {
				if (line[k] < '0' || line[k] > '9')
					return 0;
				v = v * 10 + (unsigned)(line[k] - '0');
			}
			return v >= 1 && v <= 10000 ? v : 0;
		}
	}
	return 0;
}

uint64_t guest_image_lpj(uint64_t tsc_khz, unsigned hz)
{
	return hz ? tsc_khz * 1000 / hz : 0;
}

/* A name for a path component taken from image.json: release and Debian
 * version characters only, never "." or "..". */
static bool component_ok(const char *s)
{
	size_t n = strlen(s);

	if (!n || n > 128 || !strcmp(s, ".") || !strcmp(s, ".."))
		return false;
	return strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789.+~:-_") ==
	       n;
}

static bool try_hz(struct guest_image *img, const char *path)
{
	char *text;
	size_t len;
	unsigned hz;

	if (file_read(path, KCONFIG_MAX, &text, &len))
		return false;
	hz = guest_image_kconfig_hz(text, len);
	free(text);
	if (!hz)
		return false;
	img->hz = hz;
	snprintf(img->hz_source, sizeof(img->hz_source), "%s", path);
	return true;
}

/* CONFIG_HZ: <dir>/config if the image carries one, else the .config of the
 * kernel named in image.json, in the cache's kernel directory
 * (<cache>/kernel/<release>_<version>/config, guest/kernel/fetch-kernel.sh). */
static void find_hz(struct guest_image *img, const char *root)
{
	char path[PATH_MAX + 300];
	const char *release = NULL, *version = NULL;
	json_t *j, *k;

	snprintf(path, sizeof(path), "%s/config", img->dir);
	if (try_hz(img, path))
		return;
	snprintf(path, sizeof(path), "%s/image.json", img->dir);
	j = json_load_file(path, JSON_REJECT_DUPLICATES, NULL);
	k = json_object_get(j, "kernel");
	release = json_string_value(json_object_get(k, "release"));
	version = json_string_value(json_object_get(k, "version"));
	/* root is <cache>/images: the kernel cache is its sibling. */
	if (release && version && component_ok(release) && component_ok(version) &&
	    (size_t)snprintf(path, sizeof(path), "%s/../kernel/%s_%s/config", root, release,
			     version) < sizeof(path))
		try_hz(img, path);
	json_decref(j);
}

static int need_file(const char *tag, const char *path, char *err, size_t errlen)
{
	struct stat st;

	if (stat(path, &st) == 0 && S_ISREG(st.st_mode))
		return 0;
	return errbuf_fail(err, errlen, -ENOENT,
			   "guest image '%s' is incomplete or missing: no file %s (build it with "
			   "'forkd image build --tag %s')",
			   tag, path, tag);
}

int guest_image_open(const char *tag, struct guest_image *img, char *err, size_t errlen)
{
	char root[PATH_MAX], path[PATH_MAX + 16], *text;
	struct stat st;
	size_t len;
	int r;

	memset(img, 0, sizeof(*img));
	if (!snapshot_tag_valid(tag))
		return errbuf_fail(
		    err, errlen, -EINVAL,
		    "invalid image tag '%s': use 1-64 of A-Z a-z 0-9 _ . - , starting "
		    "with a letter, digit or _, and no '..'",
		    tag);
	if (guest_image_root(root, sizeof(root)) ||
	    (size_t)snprintf(img->dir, sizeof(img->dir), "%s/%s", root, tag) >= sizeof(img->dir))
		return errbuf_fail(err, errlen, -ENAMETOOLONG,
				   "the image cache path is too long (set FORKD_CACHE to a shorter "
				   "directory)");
	if (stat(img->dir, &st) < 0 || !S_ISDIR(st.st_mode))
		return errbuf_fail(
		    err, errlen, -ENOENT,
		    "no guest image '%s' at %s (build it with 'forkd image build --tag %s')", tag,
		    img->dir, tag);
	snprintf(img->kernel, sizeof(img->kernel), "%s/vmlinuz", img->dir);
	snprintf(img->initrd, sizeof(img->initrd), "%s/initrd.img", img->dir);
	snprintf(img->rootfs, sizeof(img->rootfs), "%s/rootfs.ext4", img->dir);
	snprintf(path, sizeof(path), "%s/cmdline", img->dir);
	if ((r = need_file(tag, img->kernel, err, errlen)) ||
	    (r = need_file(tag, img->initrd, err, errlen)) ||
	    (r = need_file(tag, img->rootfs, err, errlen)) ||
	    (r = need_file(tag, path, err, errlen)))
		return r;
	r = file_read(path, GUEST_IMAGE_CMDLINE_MAX * 2, &text, &len);
	if (r)
		return errbuf_fail(err, errlen, r,
				   "cannot read %s: %s (rebuild the image with 'forkd image "
				   "build --tag %s --force')",
				   path, strerror(-r), tag);
	r = guest_image_parse_cmdline(text, len, img->cmdline, sizeof(img->cmdline));
	free(text);
	if (r)
		return errbuf_fail(
		    err, errlen, -EBADMSG,
		    "%s must hold one line of printable ASCII of at most %d bytes (rebuild "
		    "the image with 'forkd image build --tag %s --force')",
		    path, GUEST_IMAGE_CMDLINE_MAX - 1, tag);
	find_hz(img, root);
	return 0;
}
