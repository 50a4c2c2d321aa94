#include "snapshot/snapshot_image.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/file.h"
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

/* The memory: memory.bin, or the diffs down the chain of parents to one
 * that has a memory.bin. Every link is checked: same RAM size, and the
 * parent is still the snapshot the diff was taken against (its creation
 * time), not another one since made under the same tag. */
static int load_memory(struct snapshot_image *img)
{
	struct memdiff chain[SNAPSHOT_MAX_DEPTH];
	struct snapshot_meta *m = malloc(sizeof(*m));
	char dir[PATH_MAX], path[PATH_MAX + 16];
	uint32_t depth = 0;
	int err = 0;

	if (!m)
		return -ENOMEM;
	*m = img->meta;
	snprintf(dir, sizeof(dir), "%s", img->dir);
	while (m->mem_diff && !err) {
		char want[sizeof(m->parent_created)], child[sizeof(m->tag)];

		if (depth == SNAPSHOT_MAX_DEPTH) {
			log_err("snapshot '%s': more than %d memory diffs down to a full snapshot; "
				"flatten it with 'forkd snapshot compact'",
				img->meta.tag, SNAPSHOT_MAX_DEPTH);
			err = -ELOOP;
			break;
		}
		err = memdiff_load(dir, img->machine.mem_bytes, &chain[depth]);
		if (err)
			break;
		depth++;
		snprintf(want, sizeof(want), "%s", m->parent_created);
		snprintf(child, sizeof(child), "%s", m->tag);
		if ((err = snapshot_dir(m->parent, dir, sizeof(dir))))
			break;
		if (access(dir, F_OK) < 0) {
			log_err("snapshot '%s' is a diff over '%s', which is gone", child,
				m->parent);
			err = -ENOENT;
			break;
		}
		if ((err = snapshot_meta_read(dir, m)))
			break;
		if (strcmp(m->created, want) || m->mem_mib * MIB != img->machine.mem_bytes) {
			log_err("snapshot '%s' is a diff over '%s' as created at %s; '%s' now is "
				"another snapshot (created %s)",
				child, m->tag, want, m->tag, m->created);
			err = -ESTALE;
		}
	}
	if (!err)
		err = snapshot_check_memory(dir, img->machine.mem_bytes);
	if (!err) {
		snprintf(path, sizeof(path), "%s/memory.bin", dir);
		img->mem_fd = open(path, O_RDONLY | O_CLOEXEC);
		if (img->mem_fd < 0)
			err = log_errno("open %s", path);
	}
	/* Base first: chain[] runs from this snapshot down. */
	for (uint32_t i = 0; i < depth; i++) {
		if (err)
			memdiff_free(&chain[i]);
		else
			img->layers[depth - 1 - i] = chain[i];
	}
	if (!err)
		img->nr_layers = depth;
	free(m);
	return err;
}

int snapshot_image_map_layers(const struct snapshot_image *img, struct guest_mem *mem)
{
	for (uint32_t i = 0; i < img->nr_layers; i++) {
		int err = memdiff_apply(&img->layers[i], mem);

		if (err)
			return err;
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
		log_err("no snapshot '%s' (looked in %s); 'forkd snapshot ls' lists them, 'forkd "
			"snapshot --tag %s --image IMG' makes one",
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
	err = load_memory(img);
	if (err)
		goto fail;
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
	for (uint32_t i = 0; i < img->nr_layers; i++)
		memdiff_free(&img->layers[i]);
	img->nr_layers = 0;
}

static int copy_file(const char *from_dir, const char *to_dir, const char *name)
{
	char src[PATH_MAX + 128], dst[PATH_MAX + 128];
	int in, out, err = 0;
	struct stat st;

	snprintf(src, sizeof(src), "%s/%s", from_dir, name);
	snprintf(dst, sizeof(dst), "%s/%s", to_dir, name);
	in = open(src, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (in < 0)
		return log_errno("open %s", src);
	out = open(dst, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (out < 0) {
		err = log_errno("create %s", dst);
		close(in);
		return err;
	}
	if (fstat(in, &st) < 0)
		err = log_errno("stat %s", src);
	for (off_t left = st.st_size; !err && left > 0;) {
		ssize_t n = copy_file_range(in, NULL, out, NULL, (size_t)left, 0);

		if (n <= 0)
			err = log_errno("copy %s", src);
		else
			left -= n;
	}
	if (!err && fsync(out) < 0)
		err = log_errno("sync %s", dst);
	close(in);
	close(out);
	return err;
}

int snapshot_compact(const char *from, const char *to)
{
	struct snapshot_image *img = malloc(sizeof(*img));
	struct guest_mem mem = {.fd = -1};
	char dst[PATH_MAX], tmp[PATH_MAX + 64], path[PATH_MAX + 96];
	struct snapshot_meta meta;
	bool made = false;
	int fd = -1, err;

	if (!img)
		return -ENOMEM;
	err = snapshot_image_load(from, img);
	if (err) {
		free(img);
		return err;
	}
	if ((err = snapshot_dir(to, dst, sizeof(dst))))
		goto out;
	if (access(dst, F_OK) == 0) {
		log_err("snapshot '%s' exists; choose another tag or delete it first", to);
		err = -EEXIST;
		goto out;
	}
	snprintf(tmp, sizeof(tmp), "%.*s/.compact-%s-%d", (int)(strrchr(dst, '/') - dst), dst, to,
		 (int)getpid());
	if (mkdir(tmp, 0755) < 0) {
		err = log_errno("mkdir %s", tmp);
		goto out;
	}
	made = true;
	err = guest_mem_map(&mem, img->machine.mem_bytes,
			    &(struct mem_opts){.backing = MEM_FILE_PRIVATE, .fd = img->mem_fd});
	if (err || (err = snapshot_image_map_layers(img, &mem)))
		goto out;
	snprintf(path, sizeof(path), "%s/memory.bin", tmp);
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (fd < 0) {
		err = log_errno("create %s", path);
		goto out;
	}
	if (ftruncate(fd, (off_t)mem.size) < 0 || (err = snapshot_write_memory_fd(fd, &mem)) ||
	    fsync(fd) < 0) {
		err = err ?: -errno;
		log_err("write %s: %s", path, strerror(-err));
		goto out;
	}
	if ((err = copy_file(img->dir, tmp, "vmstate")))
		goto out;
	meta = img->meta;
	snprintf(meta.tag, sizeof(meta.tag), "%s", to);
	meta.parent[0] = meta.parent_created[0] = 0;
	meta.mem_diff = false;
	snapshot_meta_stamp(&meta, time(NULL));
	if ((err = snapshot_meta_write(tmp, &meta)))
		goto out;
	if (renameat2(AT_FDCWD, tmp, AT_FDCWD, dst, RENAME_NOREPLACE) < 0) {
		err = log_errno("rename %s to %s", tmp, dst);
		goto out;
	}
	made = false;
out:
	if (fd >= 0)
		close(fd);
	guest_mem_unmap(&mem);
	if (made && file_remove_tree(tmp))
		log_warn("could not remove %s", tmp);
	snapshot_image_free(img);
	free(img);
	return err;
}

int snapshot_dependents(const char *tag, char (*names)[SNAPSHOT_TAG_MAX + 1], int max)
{
	char home[PATH_MAX], dir[PATH_MAX + 16], sub[PATH_MAX + 300];
	struct snapshot_meta *m = malloc(sizeof(*m));
	struct dirent *e;
	int n = 0;
	DIR *dp;

	if (!m)
		return -ENOMEM;
	if (snapshot_home(home, sizeof(home))) {
		free(m);
		return -ENOENT;
	}
	snprintf(dir, sizeof(dir), "%s/snapshots", home);
	dp = opendir(dir);
	while (dp && (e = readdir(dp))) {
		if (!snapshot_tag_valid(e->d_name) || !strcmp(e->d_name, tag))
			continue;
		snprintf(sub, sizeof(sub), "%s/%s", dir, e->d_name);
		if (!snapshot_meta_read(sub, m) && m->mem_diff && !strcmp(m->parent, tag)) {
			if (n < max)
				snprintf(names[n], sizeof(names[n]), "%s", m->tag);
			n++;
		}
	}
	if (dp)
		closedir(dp);
	free(m);
	return n;
}

uint64_t snapshot_disk_bytes(const char *dir)
{
	/* assets/: the kernel, initrd and disks of an unpacked pack (pack.h). */
	static const char *const files[] = {"memory.bin",    "memory.diff",   "memory.map",
					    "vmstate",	     "snapshot.json", "assets/kernel",
					    "assets/initrd", "assets/disk0",  "assets/disk1",
					    "assets/disk2",  "assets/disk3"};
	char path[PATH_MAX + 16];
	uint64_t sum = 0;
	struct stat st;

	for (size_t i = 0; i < ARRAY_SIZE(files); i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, files[i]);
		if (lstat(path, &st) == 0 && S_ISREG(st.st_mode))
			sum += (uint64_t)st.st_blocks * 512;
	}
	return sum;
}

int snapshot_chain_depth(const struct snapshot_meta *m0)
{
	struct snapshot_meta *m = malloc(sizeof(*m));
	char dir[PATH_MAX];
	int depth = 0;

	if (!m)
		return -1;
	*m = *m0;
	while (m->mem_diff) {
		if (++depth > SNAPSHOT_MAX_DEPTH || snapshot_dir(m->parent, dir, sizeof(dir)) ||
		    access(dir, F_OK) < 0 || snapshot_meta_read(dir, m)) {
			depth = -1;
			break;
		}
	}
	free(m);
	return depth;
}
