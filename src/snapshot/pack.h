/* Snapshot packs: one snapshot and the kernel, initrd and disks it boots
 * from, in one file to carry to another host (`forkd snapshot pack` and
 * `unpack`; docs/FORMAT.md "Packs").
 *
 * A pack is a tar stream (POSIX pax) compressed with zstd, written and
 * read with libarchive: manifest.json first (snapshot/pack_manifest.h),
 * then the members it lists, in its order. Only a snapshot with a
 * memory.bin of its own can be packed; a diff branch is refused with the
 * `forkd snapshot compact` that makes one of it.
 *
 * Unpacking trusts nothing in the pack. Every member is checked against
 * the manifest (name, type, size) and hashed while it is written into a
 * private staging directory, $FORKD_HOME/snapshots/.unpack-TAG-XXXXXX;
 * only when every size and SHA-256 matched, snapshot.json passed
 * snapshot_meta_parse() and agrees with the manifest, and every asset is
 * in place is that directory renamed to the tag. Any failure removes it:
 * nothing is left in the store. Assets land in the snapshot's own
 * directory, <tag>/assets/<role>, so `forkd snapshot rm` removes them with
 * it; snapshot.json is rewritten to name them there. */
#ifndef FORKD_SNAPSHOT_PACK_H
#define FORKD_SNAPSHOT_PACK_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "common/log.h"
#include "snapshot/pack_manifest.h"

/* Called as work proceeds (bytes hashed, packed or unpacked of total);
 * often: the callee rate-limits what it shows. */
typedef void (*pack_progress_fn)(void *arg, const char *what, uint64_t done, uint64_t total);

struct pack_opts {
	/* pack: name the assets by size and SHA-256 only, leave them out. */
	bool no_assets;
	pack_progress_fn progress; /* may be NULL */
	void *progress_arg;
};

/* Write snapshot `tag` of this host's store into a new pack at path
 * (through a temporary file beside it, renamed when complete; an existing
 * file is replaced). On success *out (may be NULL) is the manifest as JSON
 * plus "file" and "bytes" (the pack's size). 0, or -errno after one error
 * line (log_err); no file is left behind. */
int pack_create(const char *tag, const char *path, const struct pack_opts *o,
		json_t **out) __must_check;

/* Unpack the pack at path into this host's store under new_tag (NULL: the
 * tag it was packed under), checking it as described above. Assets left
 * out of the pack are looked up by size and SHA-256: at the path they were
 * packed from, then in every image directory (guest_image_root()/ * /).
 * On success *out (may be NULL) says where everything went. 0, or -errno
 * after one error line (log_err): -EEXIST when the tag exists, -ENOENT
 * when an asset left out is not on this host, -EBADMSG for a pack that is
 * damaged, truncated or altered, -EINVAL for one that breaks the rules. */
int pack_extract(const char *path, const char *new_tag, const struct pack_opts *o,
		 json_t **out) __must_check;

#endif
