/* A guest image made by `forkd image build` (docs/IMAGE.md), as
 * `forkd snapshot --image` and POST /v1/snapshots kind "image" boot it.
 *
 * An image is the directory <cache>/images/<tag>/ holding vmlinuz,
 * initrd.img, rootfs.ext4, cmdline and image.json; <cache> is $FORKD_CACHE,
 * else $XDG_CACHE_HOME/forkd, else $HOME/.cache/forkd. Tags follow the
 * snapshot tag rules (snapshot_tag_valid()), so a tag never names anything
 * outside the images directory. Every file read here (cmdline, image.json,
 * the kernel's .config) is checked: it comes from outside. */
#ifndef FORKD_SNAPSHOT_GUEST_IMAGE_H
#define FORKD_SNAPSHOT_GUEST_IMAGE_H

#include <limits.h>
#include <stddef.h>
#include <stdint.h>

#include "common/log.h"

#define GUEST_IMAGE_CMDLINE_MAX 2048 /* bytes of the cmdline file's line, with its NUL */
#define GUEST_IMAGE_DEFAULT_HZ	250  /* CONFIG_HZ of Debian's amd64 kernels */

struct guest_image {
	char dir[PATH_MAX - 32]; /* room for the file names below */
	char kernel[PATH_MAX];	 /* <dir>/vmlinuz (forkd decompresses it on the host) */
	char initrd[PATH_MAX];	 /* <dir>/initrd.img */
	char rootfs[PATH_MAX];	 /* <dir>/rootfs.ext4 */
	char cmdline[GUEST_IMAGE_CMDLINE_MAX];
	/* CONFIG_HZ of the image's kernel, and the file it came from; 0 and ""
	 * when no .config was found (callers then assume
	 * GUEST_IMAGE_DEFAULT_HZ and say so). */
	unsigned hz;
	char hz_source[PATH_MAX];
};

/* <cache>/images (see above) into buf. -ENAMETOOLONG if it does not fit. */
int guest_image_root(char *buf, size_t size) __must_check;

/* Find image `tag` and check that its files are there and regular, read its
 * command line and its kernel's CONFIG_HZ. On failure, -errno and one
 * sentence in err naming the path and the fix (-EINVAL: bad tag; -ENOENT:
 * no such image or a file missing; -EBADMSG: a bad cmdline file). */
int guest_image_open(const char *tag, struct guest_image *img, char *err,
		     size_t errlen) __must_check;

/* The cmdline file's contents (len bytes, not NUL-terminated): exactly one
 * line of printable ASCII (tabs allowed), optionally ending in "\n", not
 * blank. Copied into out (size bytes) without the newline and with
 * surrounding blanks trimmed. 0, -EBADMSG (not one printable line) or
 * -ENAMETOOLONG (longer than size - 1). */
int guest_image_parse_cmdline(const char *text, size_t len, char *out, size_t size) __must_check;

/* CONFIG_HZ from a kernel .config's text (len bytes): the value of the
 * line "CONFIG_HZ=<n>", 0 when there is none or it is not a number from
 * 1 to 10000. */
unsigned guest_image_kconfig_hz(const char *text, size_t len);

/* Loops per jiffy for the kernel's TSC-based delay loop (lpj=), from the
 * guest TSC frequency in kHz: tsc_khz * 1000 / hz; 0 if either is 0. */
uint64_t guest_image_lpj(uint64_t tsc_khz, unsigned hz);

#endif
