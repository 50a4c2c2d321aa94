/* A snapshot loaded for forking: snapshot.json read, vmstate parsed and
 * checked against it (RAM, vCPUs, one section for every vCPU and device a
 * child will restore), memory.bin opened and size-checked. Loaded once by
 * a spawner before it forks, so a bad snapshot gives one error line and
 * no child starts; children inherit it. */
#ifndef FORKD_SNAPSHOT_SNAPSHOT_IMAGE_H
#define FORKD_SNAPSHOT_SNAPSHOT_IMAGE_H

#include <limits.h>

#include "snapshot/memdiff.h"
#include "snapshot/snapshot.h"
#include "snapshot/vmstate.h"
#include "vmm/vm_persist.h"

/* Longest chain of memory diffs (a branch of a branch ...) to a snapshot
 * with a memory.bin of its own. */
#define SNAPSHOT_MAX_DEPTH 16

struct snapshot_image {
	char dir[PATH_MAX];
	struct snapshot_meta meta;
	struct vmstate vs;
	struct vm_machine machine;
	int mem_fd; /* memory.bin of the chain's base, O_RDONLY; children inherit it */
	/* Memory diffs from the base's child up to this snapshot (empty for a
	 * snapshot with its own memory.bin): laid over mem_fd in this order. */
	uint32_t nr_layers;
	struct memdiff layers[SNAPSHOT_MAX_DEPTH];
};

/* Load and check everything a child needs; one error line on failure. */
int snapshot_image_load(const char *tag, struct snapshot_image *img) __must_check;
void snapshot_image_free(struct snapshot_image *img);

/* A child's RAM, mapped from mem_fd: lay the chain's diffs over it.
 * 0 or -errno, logged. */
int snapshot_image_map_layers(const struct snapshot_image *img, struct guest_mem *mem) __must_check;

/* Flatten snapshot `from` (any chain of diffs) into a new snapshot `to`
 * with a memory.bin of its own, which needs none of from's parents: the
 * same vmstate, the chain's memory assembled once. Built under a
 * temporary name and renamed; -EEXIST when `to` exists. One error line on
 * failure, and nothing left. */
int snapshot_compact(const char *from, const char *to) __must_check;

/* Snapshots whose memory is a diff over `tag` (they need it), up to max
 * tags into names; returns how many there are (may exceed max), or
 * -errno. */
int snapshot_dependents(const char *tag, char (*names)[SNAPSHOT_TAG_MAX + 1], int max);

/* Bytes the snapshot's files in dir take on disk (holes excluded), the
 * assets an unpack placed in it included. */
uint64_t snapshot_disk_bytes(const char *dir);
/* Memory diffs from m down to a snapshot with a memory.bin (0: m has
 * one); -1 when a link is missing or damaged. */
int snapshot_chain_depth(const struct snapshot_meta *m);

#endif
