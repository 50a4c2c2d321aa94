#include "snapshot/vmstate.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "common/util.h"

#define HEADER_SIZE  32
#define SECTION_HEAD 24

struct file_header {
	char magic[8];
	uint32_t version;
	uint32_t header_size;
	uint32_t nr_sections;
	uint32_t flags;
	uint64_t size;
} __attribute__((packed));

struct section_header {
	uint32_t type;
	uint32_t instance;
	uint64_t len;
	uint32_t crc;
	uint32_t reserved;
} __attribute__((packed));

_Static_assert(sizeof(struct file_header) == HEADER_SIZE, "vmstate header layout");
_Static_assert(sizeof(struct section_header) == SECTION_HEAD, "vmstate section layout");

static uint32_t crc_of(const void *data, uint64_t len)
{
	uLong crc = crc32(0L, Z_NULL, 0);
	const uint8_t *p = data;

	while (len) {
		uInt n = (uInt)MIN(len, (uint64_t)1 << 30);

		crc = crc32(crc, p, n);
		p += n;
		len -= n;
	}
	return (uint32_t)crc;
}

int vmstate_writer_open(struct vmstate_writer *w, const char *path)
{
	static const uint8_t zero[HEADER_SIZE];

	memset(w, 0, sizeof(*w));
	w->fd = -1;
	if (asprintf(&w->tmp_path, "%s.tmp.%d", path, (int)getpid()) < 0) {
		w->tmp_path = NULL;
		return -ENOMEM;
	}
	w->path = strdup(path);
	if (!w->path) {
		free(w->tmp_path);
		return -ENOMEM;
	}
	w->fd = open(w->tmp_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (w->fd < 0) {
		int err = log_errno("create %s", w->tmp_path);

		free(w->tmp_path);
		free(w->path);
		return err;
	}
	w->err = write_full(w->fd, zero, sizeof(zero));
	w->size = HEADER_SIZE;
	return 0;
}

int vmstate_writer_open_fd(struct vmstate_writer *w, int fd, const char *name)
{
	static const uint8_t zero[HEADER_SIZE];

	memset(w, 0, sizeof(*w));
	w->fd = fd;
	w->borrowed = true;
	w->path = strdup(name);
	if (!w->path)
		return -ENOMEM;
	w->err = write_full(w->fd, zero, sizeof(zero));
	w->size = HEADER_SIZE;
	return 0;
}

void vmstate_put(struct vmstate_writer *w, uint32_t type, uint32_t instance, const void *data,
		 uint64_t len)
{
	static const uint8_t pad[8];
	struct section_header sh = {type, instance, len, crc_of(data, len), 0};
	uint64_t padded = ALIGN_UP(len, 8ULL);

	if (w->err)
		return;
	/* Readers refuse files over VMSTATE_MAX_SIZE: never write one. */
	if (w->size + SECTION_HEAD + padded > VMSTATE_MAX_SIZE) {
		log_err("%s: section type %u would take the file past %llu MiB", w->path, type,
			(unsigned long long)(VMSTATE_MAX_SIZE >> 20));
		w->err = -EFBIG;
		return;
	}
	w->err = write_full(w->fd, &sh, sizeof(sh));
	if (!w->err)
		w->err = write_full(w->fd, data, len);
	if (!w->err && padded != len)
		w->err = write_full(w->fd, pad, padded - len);
	w->size += SECTION_HEAD + padded;
	w->nr_sections++;
}

int vmstate_writer_commit(struct vmstate_writer *w)
{
	struct file_header h = {.version = VMSTATE_VERSION, .header_size = HEADER_SIZE};
	int err = w->err;

	memcpy(h.magic, VMSTATE_MAGIC, 8);
	h.nr_sections = w->nr_sections;
	h.size = w->size;
	if (!err)
		err = pwrite_full(w->fd, &h, sizeof(h), 0);
	if (w->borrowed) {
		if (err)
			log_err("write %s: %s", w->path, strerror(-err));
		free(w->path);
		w->path = NULL;
		return err;
	}
	if (!err && fsync(w->fd) < 0)
		err = log_errno("fsync %s", w->tmp_path);
	if (err && err != -errno)
		log_err("write %s: %s", w->tmp_path, strerror(-err));
	if (!err && rename(w->tmp_path, w->path) < 0)
		err = log_errno("rename %s to %s", w->tmp_path, w->path);
	if (err) {
		vmstate_writer_abort(w);
		return err;
	}
	close(w->fd);
	w->fd = -1;
	free(w->tmp_path);
	free(w->path);
	w->tmp_path = w->path = NULL;
	return 0;
}

void vmstate_writer_abort(struct vmstate_writer *w)
{
	if (w->borrowed) {
		free(w->path);
		w->path = NULL;
		return;
	}
	if (w->fd >= 0)
		close(w->fd);
	w->fd = -1;
	if (w->tmp_path)
		unlink(w->tmp_path);
	free(w->tmp_path);
	free(w->path);
	w->tmp_path = w->path = NULL;
}

int vmstate_parse(const char *name, uint8_t *buf, uint64_t size, struct vmstate *vs)
{
	struct file_header h;
	struct vm_section *secs;
	uint64_t off = HEADER_SIZE;
	uint32_t i;

	memset(vs, 0, sizeof(*vs));
	if (size < HEADER_SIZE) {
		log_err("%s: truncated (%llu bytes, the header alone is %d)", name,
			(unsigned long long)size, HEADER_SIZE);
		return -EINVAL;
	}
	memcpy(&h, buf, sizeof(h));
	if (memcmp(h.magic, VMSTATE_MAGIC, 8)) {
		log_err("%s: not a forkd vmstate file (bad magic)", name);
		return -EINVAL;
	}
	if (h.version != VMSTATE_VERSION) {
		log_err("%s: vmstate format version %u; this forkd reads version %u "
			"(take the snapshot again with this forkd)",
			name, h.version, VMSTATE_VERSION);
		return -EPROTO;
	}
	if (h.header_size != HEADER_SIZE || h.flags) {
		log_err("%s: unsupported header (size %u, flags 0x%x)", name, h.header_size,
			h.flags);
		return -EINVAL;
	}
	if (h.size != size) {
		log_err("%s: truncated or padded: header says %llu bytes, file has %llu", name,
			(unsigned long long)h.size, (unsigned long long)size);
		return -EINVAL;
	}
	/* Each section takes at least its header: bounds the allocation. */
	if (h.nr_sections > (size - HEADER_SIZE) / SECTION_HEAD) {
		log_err("%s: section count %u cannot fit in the file", name, h.nr_sections);
		return -EINVAL;
	}
	secs = calloc(h.nr_sections ? h.nr_sections : 1, sizeof(*secs));
	if (!secs)
		return -ENOMEM;
	for (i = 0; i < h.nr_sections; i++) {
		struct section_header sh;
		uint64_t padded;

		if (size - off < SECTION_HEAD)
			goto truncated;
		memcpy(&sh, buf + off, sizeof(sh));
		off += SECTION_HEAD;
		if (sh.len > size - off)
			goto truncated;
		padded = ALIGN_UP(sh.len, 8ULL);
		if (padded > size - off)
			goto truncated;
		if (crc_of(buf + off, sh.len) != sh.crc) {
			log_err("%s: section %u (type %u, instance %u): checksum mismatch; "
				"the file is corrupt",
				name, i, sh.type, sh.instance);
			free(secs);
			return -EBADMSG;
		}
		secs[i] = (struct vm_section){sh.type, sh.instance, sh.len, buf + off};
		off += padded;
	}
	if (off != size)
		goto truncated;
	vs->buf = buf;
	vs->size = size;
	vs->nr = h.nr_sections;
	vs->sections = secs;
	return 0;

truncated:
	log_err("%s: section %u runs past the end of the file (truncated or corrupt)", name, i);
	free(secs);
	return -EINVAL;
}

int vmstate_load(const char *path, struct vmstate *vs)
{
	struct stat st;
	uint8_t *buf;
	int fd, err;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return log_errno("open %s", path);
	if (fstat(fd, &st) < 0) {
		err = log_errno("stat %s", path);
		close(fd);
		return err;
	}
	if (!S_ISREG(st.st_mode) || (uint64_t)st.st_size > VMSTATE_MAX_SIZE) {
		log_err("%s: not a regular file of at most %llu MiB", path,
			(unsigned long long)(VMSTATE_MAX_SIZE >> 20));
		close(fd);
		return -EINVAL;
	}
	buf = malloc(st.st_size ? (size_t)st.st_size : 1);
	if (!buf) {
		close(fd);
		return -ENOMEM;
	}
	err = read_full(fd, buf, (size_t)st.st_size);
	close(fd);
	if (err) {
		log_err("read %s: %s", path, strerror(-err));
		free(buf);
		return err;
	}
	err = vmstate_parse(path, buf, (uint64_t)st.st_size, vs);
	if (err)
		free(buf);
	return err;
}

void vmstate_free(struct vmstate *vs)
{
	free(vs->buf);
	free(vs->sections);
	memset(vs, 0, sizeof(*vs));
}

const struct vm_section *vmstate_find(const struct vmstate *vs, uint32_t type, uint32_t instance)
{
	for (uint32_t i = 0; i < vs->nr; i++)
		if (vs->sections[i].type == type && vs->sections[i].instance == instance)
			return &vs->sections[i];
	return NULL;
}

static void sink_put(void *ctx, uint32_t type, uint32_t instance, const void *data, uint64_t len)
{
	vmstate_put(ctx, type, instance, data, len);
}

struct vm_section_sink vmstate_sink(struct vmstate_writer *w)
{
	return (struct vm_section_sink){.ctx = w, .put = sink_put};
}

static const struct vm_section *source_find(const void *ctx, uint32_t type, uint32_t instance)
{
	return vmstate_find(ctx, type, instance);
}

struct vm_section_source vmstate_source(const struct vmstate *vs)
{
	return (struct vm_section_source){.ctx = vs, .find = source_find};
}
