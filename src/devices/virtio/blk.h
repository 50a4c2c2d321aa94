/* virtio-blk (virtio 1.2 §5.2) over a raw image file.
 *
 * The image is opened read-only and never written. Guest writes land in a
 * per-VM copy-on-write overlay: an unlinked sparse file plus a bitmap of
 * which sectors it holds; reads take each sector from the overlay if it
 * was written, else from the image. So siblings and the base never see a
 * VM's writes. */
#ifndef FORKD_DEVICES_VIRTIO_BLK_H
#define FORKD_DEVICES_VIRTIO_BLK_H

#include <stdbool.h>

#include "vmm/vm.h"

struct virtio_blk_opts {
	const char *path;	 /* raw disk image */
	bool read_only;		 /* offer VIRTIO_BLK_F_RO: guest writes fail */
	const char *overlay_dir; /* where the unlinked overlay lives; NULL: $TMPDIR or /var/tmp */
};

int virtio_blk_create(struct vm *vm, const struct virtio_blk_opts *opts) __must_check;

#endif
