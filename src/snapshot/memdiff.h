/* Memory diffs: the guest pages a child changed since the snapshot it was
 * forked from, for a branch of mode "diff" (docs/FORMAT.md).
 *
 * Two files in the snapshot directory:
 *   memory.diff  sparse, as long as the guest's RAM; each changed page sits
 *                at its own offset (as in memory.bin), everything else is a
 *                hole, so its disk use is about the pages changed;
 *   memory.map   which pages memory.diff holds:
 *                  0   8   magic "FORKDMDF"
 *                  8   4   version (1)
 *                  12  4   number of runs (<= MEMDIFF_MAX_RUNS)
 *                  16  8   bytes of guest RAM
 *                  24  8   pages in all runs
 *                  32  16n runs: first page, number of pages (u64 each),
 *                          sorted, apart, inside RAM
 *                  end 4   CRC-32 of every byte before it
 * A child of the diff maps its parent's memory, then lays each run of
 * memory.diff over it (guest_mem_overlay()): nothing is copied per child.
 *
 * Which pages changed is read from /proc/self/pagemap in the child's VMM:
 * RAM is a private file mapping, so a page the child wrote is an anonymous
 * page (present or swapped) and every other page is still the file's. */
#ifndef FORKD_SNAPSHOT_MEMDIFF_H
#define FORKD_SNAPSHOT_MEMDIFF_H

#include <stddef.h>
#include <stdint.h>

#include "common/log.h"
#include "vmm/memory.h"

#define MEMDIFF_MAGIC	"FORKDMDF"
#define MEMDIFF_VERSION 1
/* Each run is a mapping in every child: runs closer than a gap are merged
 * (the unchanged pages between are stored too) until at most this many
 * are left, far below the kernel's default of 65530 mappings. */
#define MEMDIFF_MAX_RUNS 8192

struct memdiff_run {
	uint64_t first, count; /* pages */
};

struct memdiff {
	int data_fd; /* memory.diff, O_RDONLY (-1: none) */
	uint64_t mem_bytes, pages;
	uint32_t nr_runs;
	struct memdiff_run *runs;
};

/* Find the changed pages of mem (a private file mapping) with pagemap_fd
 * (/proc/self/pagemap, opened before any jail). *runs is malloc'd; merged
 * as above. 0 or -errno (-EOPNOTSUPP: RAM is not a private file mapping). */
int memdiff_scan(const struct guest_mem *mem, int pagemap_fd, struct memdiff_run **runs,
		 uint32_t *nr_runs, uint64_t *pages) __must_check;

/* Write those pages into data_fd (at their own offsets; the caller sized
 * the file) and the map into map_fd (empty). pwrite only, so it runs in
 * the VMM jail. 0 or -errno. */
int memdiff_write(const struct guest_mem *mem, const struct memdiff_run *runs, uint32_t nr_runs,
		  uint64_t pages, int data_fd, int map_fd) __must_check;

/* Check a memory.map image (path names it in messages): header, CRC, runs
 * sorted, apart, non-empty, inside mem_bytes of RAM and adding up. On
 * success d->runs is allocated (d->data_fd is -1). One error line. */
int memdiff_parse_map(const char *path, const uint8_t *buf, size_t len, uint64_t mem_bytes,
		      struct memdiff *d) __must_check;

/* Read and check <dir>/memory.map and open <dir>/memory.diff for a guest
 * of mem_bytes. One error line on failure. */
int memdiff_load(const char *dir, uint64_t mem_bytes, struct memdiff *d) __must_check;
void memdiff_free(struct memdiff *d);

/* Lay the diff's pages over mem (before any vCPU runs). 0 or -errno. */
int memdiff_apply(const struct memdiff *d, struct guest_mem *mem) __must_check;

#endif
