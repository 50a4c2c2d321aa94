#include "snapshot/snapshot.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/file.h"
#include "common/util.h"
#include "snapshot/vmstate.h"
#include "vmm/vm.h"
#include "vmm/vm_persist.h"

bool snapshot_tag_valid(const char *tag)
{
	size_t n = tag ? strlen(tag) : 0;

	if (n == 0 || n > SNAPSHOT_TAG_MAX || strstr(tag, ".."))
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = tag[i];
		bool alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
			     (c >= '0' && c <= '9') || c == '_';

		if (!alnum && (i == 0 || (c != '.' && c != '-')))
			return false;
	}
	return true;
}

int snapshot_home(char *buf, size_t size)
{
	const char *home = getenv("FORKD_HOME");
	int err;

	/* Root shares the daemon's directory (its state dir as root), so
	 * snapshots made with the CLI are the daemon's and the other way round. */
	err = util_default_dir(buf, size, home && *home ? home : NULL, SNAPSHOT_ROOT_HOME,
			       "XDG_DATA_HOME", ".local/share/forkd", NULL);
	if (err == -EINVAL) {
		log_err("no $FORKD_HOME, $XDG_DATA_HOME or $HOME: cannot place snapshots");
		return -ENOENT;
	}
	return err;
}

int snapshot_dir(const char *tag, char *buf, size_t size)
{
	char home[PATH_MAX];
	int err, n;

	if (!snapshot_tag_valid(tag)) {
		log_err("invalid tag '%s': use 1-64 of A-Z a-z 0-9 _ . - , not starting with . "
			"or -, and no '..'",
			tag ? tag : "");
		return -EINVAL;
	}
	err = snapshot_home(home, sizeof(home));
	if (err)
		return err;
	n = snprintf(buf, size, "%s/snapshots/%s", home, tag);
	return n < 0 || (size_t)n >= size ? -ENAMETOOLONG : 0;
}

/* Files are written under ".<name>.tmp" and renamed into place once
 * fsync'ed, so a crash never leaves a half-written file under its name. */
static int open_tmp(const char *dir, const char *name, char *path, char *tmp)
{
	int fd;

	snprintf(path, PATH_MAX, "%s/%s", dir, name);
	snprintf(tmp, PATH_MAX, "%s/.%s.tmp", dir, name);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return log_errno("create %s", tmp);
	return fd;
}

/* Finish what open_tmp() started: err is the writing's result so far. */
static int commit_tmp(int fd, const char *tmp, const char *path, int err)
{
	if (!err && fsync(fd) < 0)
		err = -errno;
	close(fd);
	if (!err && rename(tmp, path) < 0)
		err = -errno;
	if (err) {
		log_err("write %s: %s", path, strerror(-err));
		unlink(tmp);
	}
	return err;
}

static int write_file_atomic(const char *dir, const char *name, const void *data, size_t len)
{
	char path[PATH_MAX], tmp[PATH_MAX];
	int fd = open_tmp(dir, name, path, tmp);

	if (fd < 0)
		return fd;
	return commit_tmp(fd, tmp, path, write_full(fd, data, len));
}

char *snapshot_meta_text(const struct snapshot_meta *m)
{
	json_t *o =
	    json_pack("{s:s, s:s, s:s, s:s, s:s, s:I, s:i, s:s?, s:i}", "tag", m->tag, "created",
		      m->created, "kernel", m->kernel, "initrd", m->initrd, "cmdline", m->cmdline,
		      "mem_mib", (json_int_t)m->mem_mib, "vcpus", (int)m->vcpus, "parent",
		      m->parent[0] ? m->parent : NULL, "format_version", (int)m->format_version);
	json_t *devices, *disks;
	char *text;

	if (!o)
		return NULL;
	disks = json_array();
	for (uint32_t i = 0; disks && i < m->dev.nr_disks; i++)
		json_array_append_new(disks, json_pack("{s:s, s:b}", "path", m->dev.disks[i].path,
						       "read_only", m->dev.disks[i].read_only));
	devices = json_pack("{s:b, s:o, s:b, s:b, s:I, s:b}", "rng", m->dev.rng, "disks", disks,
			    "net", m->dev.net, "vsock", m->dev.vsock, "vsock_cid",
			    (json_int_t)m->dev.vsock_cid, "vmgenid", m->dev.vmgenid);
	if (!devices || json_object_set_new(o, "devices", devices) ||
	    (m->mem_diff &&
	     (json_object_set_new(o, "memory", json_string("diff")) ||
	      json_object_set_new(o, "parent_created", json_string(m->parent_created)))) ||
	    (m->agent_port &&
	     json_object_set_new(o, "agent_port", json_integer((json_int_t)m->agent_port)))) {
		json_decref(o);
		return NULL;
	}
	text = json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	json_decref(o);
	return text;
}

int snapshot_meta_write(const char *dir, const struct snapshot_meta *m)
{
	char *text = snapshot_meta_text(m);
	int err;

	if (!text)
		return -ENOMEM;
	err = write_file_atomic(dir, "snapshot.json", text, strlen(text));
	free(text);
	return err;
}

static int copy_str(const char *path, const char *field, const char *v, char *dst, size_t size)
{
	if (strlen(v) >= size) {
		log_err("%s: field '%s' is too long", path, field);
		return -EINVAL;
	}
	strcpy(dst, v);
	return 0;
}

static int read_devices(const char *path, json_t *d, struct snapshot_meta *m)
{
	json_t *disks, *disk;
	json_int_t cid = 0;
	int rng, net, vsock, vmgenid = 0; /* absent before the device existed */
	size_t i;

	if (!d ||
	    json_unpack(d, "{s:b, s:o, s:b, s:b, s:I, s?b}", "rng", &rng, "disks", &disks, "net",
			&net, "vsock", &vsock, "vsock_cid", &cid, "vmgenid", &vmgenid) ||
	    !json_is_array(disks) || json_array_size(disks) > SNAPSHOT_MAX_DISKS ||
	    (vsock && (cid < 3 || cid > 0xfffffffeLL))) {
		log_err("%s: 'devices' must be {rng, disks[<=%d], net, vsock, vsock_cid, vmgenid?}",
			path, SNAPSHOT_MAX_DISKS);
		return -EINVAL;
	}
	json_array_foreach(disks, i, disk)
	{
		const char *p;
		int ro;

		if (json_unpack(disk, "{s:s, s:b}", "path", &p, "read_only", &ro) ||
		    copy_str(path, "disks.path", p, m->dev.disks[i].path,
			     sizeof(m->dev.disks[i].path)))
			return -EINVAL;
		m->dev.disks[i].read_only = ro;
	}
	m->dev.nr_disks = (uint32_t)json_array_size(disks);
	m->dev.rng = rng;
	m->dev.net = net;
	m->dev.vsock = vsock;
	m->dev.vsock_cid = (uint64_t)cid;
	m->dev.vmgenid = vmgenid;
	return 0;
}

int snapshot_meta_read(const char *dir, struct snapshot_meta *m)
{
	char path[PATH_MAX], *text = NULL;
	size_t len;
	int err;

	snprintf(path, sizeof(path), "%s/snapshot.json", dir);
	memset(m, 0, sizeof(*m));
	err = file_read(path, SNAPSHOT_META_MAX, &text, &len);
	if (err) {
		log_err("%s: %s", path,
			err == -EFBIG ? "over 64 KiB: not a snapshot.json" : strerror(-err));
		return err;
	}
	err = snapshot_meta_parse(path, text, len, m);
	free(text);
	return err;
}

int snapshot_meta_parse(const char *path, const char *text, size_t len, struct snapshot_meta *m)
{
	const char *tag, *created, *kernel, *initrd, *cmdline, *parent = NULL;
	const char *memory = "full", *parent_created = "";
	json_t *jparent = NULL;
	json_int_t mem_mib, vcpus, version, agent_port = 0;
	json_error_t jerr;
	json_t *o;
	int err = -EINVAL;

	memset(m, 0, sizeof(*m));
	o = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!o) {
		log_err("%s: line %d: %s", path, jerr.line, jerr.text);
		return -EINVAL;
	}
	if (json_unpack_ex(o, &jerr, 0,
			   "{s:s, s:s, s:s, s:s, s:s, s:I, s:I, s?o, s:I, s?I, s?s, s?s}", "tag",
			   &tag, "created", &created, "kernel", &kernel, "initrd", &initrd,
			   "cmdline", &cmdline, "mem_mib", &mem_mib, "vcpus", &vcpus, "parent",
			   &jparent, "format_version", &version, "agent_port", &agent_port,
			   "memory", &memory, "parent_created", &parent_created)) {
		log_err("%s: %s", path, jerr.text);
		goto out;
	}
	if (jparent && json_is_string(jparent)) {
		parent = json_string_value(jparent);
	} else if (jparent && !json_is_null(jparent)) {
		log_err("%s: 'parent' must be a tag or null", path);
		goto out;
	}
	if (strcmp(memory, "full") && strcmp(memory, "diff")) {
		log_err("%s: 'memory' must be \"full\" or \"diff\"", path);
		goto out;
	}
	m->mem_diff = !strcmp(memory, "diff");
	if (m->mem_diff && !parent) {
		log_err("%s: a memory diff needs its 'parent'", path);
		goto out;
	}
	if (version != SNAPSHOT_FORMAT_VERSION) {
		log_err("%s: format version %lld; this forkd reads version %d", path,
			(long long)version, SNAPSHOT_FORMAT_VERSION);
		err = -EPROTO;
		goto out;
	}
	if (!snapshot_tag_valid(tag) || (parent && !snapshot_tag_valid(parent))) {
		log_err("%s: invalid tag", path);
		goto out;
	}
	if (mem_mib < 16 || mem_mib > 1024 * 1024 || mem_mib % 2 || vcpus < 1 || vcpus > 64) {
		log_err("%s: mem_mib %lld or vcpus %lld out of range", path, (long long)mem_mib,
			(long long)vcpus);
		goto out;
	}
	if (copy_str(path, "tag", tag, m->tag, sizeof(m->tag)) ||
	    copy_str(path, "created", created, m->created, sizeof(m->created)) ||
	    copy_str(path, "kernel", kernel, m->kernel, sizeof(m->kernel)) ||
	    copy_str(path, "initrd", initrd, m->initrd, sizeof(m->initrd)) ||
	    copy_str(path, "cmdline", cmdline, m->cmdline, sizeof(m->cmdline)) ||
	    (parent && copy_str(path, "parent", parent, m->parent, sizeof(m->parent))) ||
	    copy_str(path, "parent_created", parent_created, m->parent_created,
		     sizeof(m->parent_created)))
		goto out;
	if (read_devices(path, json_object_get(o, "devices"), m))
		goto out;
	if (agent_port < 0 || agent_port > 0xffffffffLL || (agent_port && !m->dev.vsock)) {
		log_err("%s: 'agent_port' must be a vsock port, and needs a vsock device", path);
		goto out;
	}
	m->agent_port = (uint32_t)agent_port;
	m->mem_mib = (uint64_t)mem_mib;
	m->vcpus = (uint32_t)vcpus;
	m->format_version = (uint32_t)version;
	err = 0;
out:
	json_decref(o);
	return err;
}

static bool page_is_zero(const uint8_t *p)
{
	const uint64_t *w = (const uint64_t *)p;

	for (size_t i = 0; i < 4096 / 8; i++)
		if (w[i])
			return false;
	return true;
}

int snapshot_write_memory_fd(int fd, const struct guest_mem *mem)
{
	uint64_t off = 0;
	int err = 0;

	/* Runs of non-zero pages are written with one pwrite; zero pages stay
	 * holes, so a mostly idle guest costs little disk. */
	while (off < mem->size && !err) {
		uint64_t start;

		while (off < mem->size && page_is_zero(mem->base + off))
			off += 4096;
		start = off;
		while (off < mem->size && !page_is_zero(mem->base + off) && off - start < 64 * MIB)
			off += 4096;
		if (off > start)
			err = pwrite_full(fd, mem->base + start, off - start, start);
	}
	return err;
}

int snapshot_write_memory(const char *dir, const struct guest_mem *mem)
{
	char path[PATH_MAX], tmp[PATH_MAX];
	int fd, err;

	fd = open_tmp(dir, "memory.bin", path, tmp);
	if (fd < 0)
		return fd;
	err = snapshot_write_memory_fd(fd, mem);
	if (!err && ftruncate(fd, (off_t)mem->size) < 0)
		err = -errno;
	return commit_tmp(fd, tmp, path, err);
}

int snapshot_check_memory(const char *dir, uint64_t bytes)
{
	char path[PATH_MAX];
	struct stat st;

	snprintf(path, sizeof(path), "%s/memory.bin", dir);
	if (stat(path, &st) < 0)
		return log_errno("%s", path);
	if (!S_ISREG(st.st_mode)) {
		log_err("%s: not a regular file", path);
		return -EINVAL;
	}
	if ((uint64_t)st.st_size != bytes) {
		log_err("%s: %lld bytes, but the snapshot's guest has %llu bytes of RAM "
			"(truncated or from another snapshot)",
			path, (long long)st.st_size, (unsigned long long)bytes);
		return -EINVAL;
	}
	return 0;
}

/* vm's state into an open writer, committed; abandoned on failure. */
static int save_state(struct vm *vm, struct vmstate_writer *w)
{
	struct vm_section_sink sink = vmstate_sink(w);
	int err = vm_persist_save(vm, &sink);

	if (err) {
		vmstate_writer_abort(w);
		return err;
	}
	return vmstate_writer_commit(w);
}

void snapshot_meta_stamp(struct snapshot_meta *m, time_t now)
{
	struct tm tm;

	strftime(m->created, sizeof(m->created), "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&now, &tm));
	m->format_version = SNAPSHOT_FORMAT_VERSION;
}

int snapshot_create(struct vm *vm, const char *dir, struct snapshot_meta *meta)
{
	struct vmstate_writer w;
	char path[PATH_MAX + 64];
	time_t now = time(NULL);
	uint64_t t0 = now_ns(), t_state, t_mem;
	int err;

	snprintf(path, sizeof(path), "%s/vmstate", dir);
	err = vmstate_writer_open(&w, path);
	if (err || (err = save_state(vm, &w)))
		return err;
	t_state = now_ns();
	err = snapshot_write_memory(dir, &vm->mem);
	if (err)
		return err;
	t_mem = now_ns();
	snapshot_meta_stamp(meta, now);
	err = snapshot_meta_write(dir, meta);
	if (err)
		return err;
	log_info("snapshot: vmstate %.1f ms, memory.bin %.1f ms (%llu MiB)", (t_state - t0) / 1e6,
		 (t_mem - t_state) / 1e6, (unsigned long long)(vm->mem.size / MIB));
	return 0;
}

int snapshot_save_state_fd(struct vm *vm, int fd)
{
	struct vmstate_writer w;
	int err = vmstate_writer_open_fd(&w, fd, "vmstate");

	return err ?: save_state(vm, &w);
}

uint32_t snapshot_devices_count(const struct snapshot_devices *d)
{
	return SNAPSHOT_FIXED_DEVICES + d->nr_disks + d->net + d->vsock + d->rng;
}

int snapshot_fds_create(const char *dir, uint64_t mem_bytes, struct snapshot_fds *f)
{
	static const char *const names[3] = {"memory.bin", "vmstate", "snapshot.json"};
	int *fds[3] = {&f->mem, &f->state, &f->meta};
	int dfd, err = 0;

	f->mem = f->state = f->meta = -1;
	dfd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (dfd < 0)
		return log_errno("open %s", dir);
	for (int i = 0; i < 3 && !err; i++) {
		*fds[i] =
		    openat(dfd, names[i], O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
		if (*fds[i] < 0)
			err = log_errno("create %s/%s", dir, names[i]);
	}
	if (!err && ftruncate(f->mem, (off_t)mem_bytes) < 0)
		err = log_errno("size %s/memory.bin", dir);
	close(dfd);
	if (err)
		snapshot_fds_close(f);
	return err;
}

int snapshot_fds_sync(const struct snapshot_fds *f)
{
	if (fsync(f->mem) < 0 || fsync(f->state) < 0 || fsync(f->meta) < 0)
		return log_errno("fsync the snapshot's files");
	return 0;
}

void snapshot_fds_close(struct snapshot_fds *f)
{
	int *fds[3] = {&f->mem, &f->state, &f->meta};

	for (int i = 0; i < 3; i++) {
		if (*fds[i] >= 0)
			close(*fds[i]);
		*fds[i] = -1;
	}
}

int snapshot_create_fds(struct vm *vm, const struct snapshot_fds *f, struct snapshot_meta *meta)
{
	uint64_t t0 = now_ns(), t_state, t_mem;
	char *text;
	int err;

	err = snapshot_save_state_fd(vm, f->state);
	if (err)
		return err;
	t_state = now_ns();
	err = snapshot_write_memory_fd(f->mem, &vm->mem);
	if (err) {
		log_err("write memory.bin: %s", strerror(-err));
		return err;
	}
	t_mem = now_ns();
	snapshot_meta_stamp(meta, time(NULL));
	text = snapshot_meta_text(meta);
	if (!text)
		return -ENOMEM;
	err = write_full(f->meta, text, strlen(text));
	free(text);
	if (err) {
		log_err("write snapshot.json: %s", strerror(-err));
		return err;
	}
	log_info("snapshot: vmstate %.1f ms, memory.bin %.1f ms (%llu MiB)", (t_state - t0) / 1e6,
		 (t_mem - t_state) / 1e6, (unsigned long long)(vm->mem.size / MIB));
	return 0;
}
