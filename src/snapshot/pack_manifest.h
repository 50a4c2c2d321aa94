/* The manifest of a snapshot pack (`forkd snapshot pack`, docs/FORMAT.md
 * "Packs"): the first member of the pack, manifest.json, listing every
 * other member with its size and SHA-256.
 *
 * A pack holds one snapshot with a memory.bin of its own (a diff branch is
 * refused when packing: compact it first), so the members are a fixed set,
 * one per role, each at a fixed path:
 *
 *   snapshot/snapshot.json  snapshot/vmstate  snapshot/memory.bin
 *   assets/kernel  assets/initrd  assets/disk0 .. assets/disk3
 *
 * An asset may be left out of the pack ("included": false, `--no-assets`):
 * it is then named by size and SHA-256 only, and unpack finds an identical
 * file on the host. A manifest is read from a file that came from
 * elsewhere: pack_manifest_parse() checks everything before it is used. */
#ifndef FORKD_SNAPSHOT_PACK_MANIFEST_H
#define FORKD_SNAPSHOT_PACK_MANIFEST_H

#include <jansson.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>

#include "common/sha256.h"
#include "snapshot/snapshot.h"

#define PACK_FORMAT_VERSION 1
#define PACK_MANIFEST_NAME  "manifest.json"
#define PACK_MANIFEST_MAX   (64 * 1024)	 /* bytes of manifest.json */
#define PACK_FILE_MAX	    (1ULL << 40) /* any member: 1 TiB (mem_mib's limit) */

enum pack_role {
	PACK_META, /* snapshot.json */
	PACK_VMSTATE,
	PACK_MEMORY, /* memory.bin */
	PACK_KERNEL,
	PACK_INITRD,
	PACK_DISK0, /* .. PACK_DISK0 + SNAPSHOT_MAX_DISKS - 1 */
	PACK_NR_ROLES = PACK_DISK0 + SNAPSHOT_MAX_DISKS,
};

struct pack_file {
	enum pack_role role;
	uint64_t size; /* bytes */
	uint8_t sha256[SHA256_BYTES];
	/* In the pack; always for the snapshot's own files. */
	bool included;
	/* Assets: the absolute path it was packed from (for --no-assets, the
	 * first place unpack looks); "" for the snapshot's own files. */
	char source[PATH_MAX];
};

struct pack_manifest {
	uint32_t format_version;
	char tag[SNAPSHOT_TAG_MAX + 1];
	char created[32]; /* the snapshot's, ISO 8601 UTC */
	char packed[32];  /* when the pack was made */
	char forkd_version[64];
	char parent[SNAPSHOT_TAG_MAX + 1]; /* "" for none; informational only */
	uint32_t nr_files;
	struct pack_file files[PACK_NR_ROLES]; /* ordered as in the pack */
};

/* "snapshot.json", "vmstate", "memory.bin", "kernel", "initrd", "disk0"..;
 * NULL for a role out of range. */
const char *pack_role_name(enum pack_role role);
/* The member's path in the pack ("snapshot/vmstate", "assets/disk1"). */
const char *pack_role_path(enum pack_role role);
/* The largest size a role's file may have. */
uint64_t pack_role_max(enum pack_role role);

/* Parse and check manifest text (len bytes, at most PACK_MANIFEST_MAX):
 * strict JSON, known keys only, format version, tag rules, every role at
 * most once and in the order of enum pack_role (the pack's order), the snapshot's own three files
 * present and included, the kernel present, sizes within pack_role_max(), 64 hex digits of SHA-256.
 * 0, or -EINVAL / -EPROTO (another format version) with one sentence in
 * err. Logs nothing. */
int pack_manifest_parse(const char *text, size_t len, struct pack_manifest *m, char *err,
			size_t errlen) __must_check;

/* Check that the manifest and the snapshot.json it carries agree: the same
 * tag and created, a full snapshot (no memory diff), memory.bin of
 * mem_mib MiB, exactly the assets snapshot.json names (an initrd when it
 * has one, one disk per disk). 0, or -EINVAL with one sentence in err. */
int pack_manifest_check_meta(const struct pack_manifest *m, const struct snapshot_meta *meta,
			     char *err, size_t errlen) __must_check;

/* The manifest as JSON (what pack_manifest_parse() reads back); NULL when
 * out of memory. */
json_t *pack_manifest_json(const struct pack_manifest *m);

/* The entry of role in m, or NULL. */
const struct pack_file *pack_manifest_find(const struct pack_manifest *m, enum pack_role role);

#endif
