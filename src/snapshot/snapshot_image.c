#include "snapshot/snapshot_image.h"

#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/util.h"
#include "vmm/vcpu_state.h"

/* Everything a child would reject, checked once here so a bad snapshot
 * gives one error line and no child starts. */
static int check_sections(const char *path, const struct snapshot_image *img)
{
	uint32_t expect = snapshot_devices_count(&img->meta.dev);

	if (img->machine.nr_devices != expect) {
		log_err("%s: %u devices, but snapshot.json describes a machine with %u", path,
			img->machine.nr_devices, expect);
		return -EINVAL;
	}
	for (uint32_t i = 0; i < img->machine.nr_vcpus; i++) {
		const struct vm_section *s = vmstate_find(&img->vs, VM_SECTION_VCPU, i);
		struct vcpu_state st;

		if (!s || s->len != sizeof(st)) {
			log_err("%s: vCPU %u section missing or of the wrong size", path, i);
			return -EINVAL;
		}
		memcpy(&st.nr_msrs, s->data + offsetof(struct vcpu_state, nr_msrs),
		       sizeof(st.nr_msrs));
		if (st.nr_msrs > VCPU_STATE_MAX_MSRS) {
			log_err("%s: vCPU %u lists %u MSRs (at most %d)", path, i, st.nr_msrs,
				VCPU_STATE_MAX_MSRS);
			return -EINVAL;
		}
	}
	for (uint32_t i = 0; i < img->machine.nr_devices; i++) {
		if (!vmstate_find(&img->vs, VM_SECTION_DEVICE, i)) {
			log_err("%s: device %u has no section", path, i);
			return -EINVAL;
		}
	}
	return 0;
}

int snapshot_image_load(const char *tag, struct snapshot_image *img)
{
	char path[PATH_MAX + 16];
	struct stat st;
	int err;

	memset(img, 0, sizeof(*img));
	img->mem_fd = -1;
	err = snapshot_dir(tag, img->dir, sizeof(img->dir));
	if (err)
		return err;
	if (stat(img->dir, &st) < 0) {
		log_err("no snapshot '%s' (looked in %s); create it with 'forkd snapshot --tag %s'",
			tag, img->dir, tag);
		return -ENOENT;
	}
	err = snapshot_meta_read(img->dir, &img->meta);
	if (err)
		return err;
	snprintf(path, sizeof(path), "%s/vmstate", img->dir);
	err = vmstate_load(path, &img->vs);
	if (err)
		return err;
	{
		struct vm_section_source in = vmstate_source(&img->vs);

		err = vm_persist_machine(path, &in, &img->machine);
	}
	if (err)
		goto fail;
	if (img->machine.mem_bytes != img->meta.mem_mib * MIB ||
	    img->machine.nr_vcpus != img->meta.vcpus) {
		log_err("%s: vmstate and snapshot.json disagree on RAM or vCPUs", img->dir);
		err = -EINVAL;
		goto fail;
	}
	err = check_sections(path, img);
	if (err)
		goto fail;
	err = snapshot_check_memory(img->dir, img->machine.mem_bytes);
	if (err)
		goto fail;
	snprintf(path, sizeof(path), "%s/memory.bin", img->dir);
	img->mem_fd = open(path, O_RDONLY | O_CLOEXEC);
	if (img->mem_fd < 0) {
		err = log_errno("open %s", path);
		goto fail;
	}
	return 0;
fail:
	snapshot_image_free(img);
	return err;
}

void snapshot_image_free(struct snapshot_image *img)
{
	vmstate_free(&img->vs);
	if (img->mem_fd >= 0)
		close(img->mem_fd);
	img->mem_fd = -1;
}
