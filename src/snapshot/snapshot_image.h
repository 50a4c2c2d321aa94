/* A snapshot loaded for forking: snapshot.json read, vmstate parsed and
 * checked against it (RAM, vCPUs, one section for every vCPU and device a
 * child will restore), memory.bin opened and size-checked. Loaded once by
 * a spawner before it forks, so a bad snapshot gives one error line and
 * no child starts; children inherit it. */
#ifndef FORKD_SNAPSHOT_SNAPSHOT_IMAGE_H
#define FORKD_SNAPSHOT_SNAPSHOT_IMAGE_H

#include <limits.h>

#include "snapshot/snapshot.h"
#include "snapshot/vmstate.h"
#include "vmm/vm_persist.h"

struct snapshot_image {
	char dir[PATH_MAX];
	struct snapshot_meta meta;
	struct vmstate vs;
	struct vm_machine machine;
	int mem_fd; /* memory.bin, O_RDONLY; children inherit it */
};

/* Load and check everything a child needs; one error line on failure. */
int snapshot_image_load(const char *tag, struct snapshot_image *img) __must_check;
void snapshot_image_free(struct snapshot_image *img);

#endif
