/* Snapshot packs, written and read (pack.h). The manifest is built and
 * checked in pack_manifest.c; here are the files: hashing them, streaming
 * them through libarchive, and on unpack the staging directory that only
 * becomes a snapshot once everything in it has been verified. */
#include "snapshot/pack.h"

#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/file.h"
#include "common/util.h"
#include "snapshot/guest_image.h"

#define CHUNK	   (1U << 20) /* bytes moved at a time; a multiple of PAGE */
#define PAGE	   4096U
#define READ_BLOCK 65536

struct progress {
	const struct pack_opts *o;
	const char *what;
	uint64_t done, total;
};

static void progress_add(struct progress *p, uint64_t n)
{
	p->done += n;
	if (p->o && p->o->progress)
		p->o->progress(p->o->progress_arg, p->what, p->done, p->total);
}

/* ---- pack ---- */

/* src into dst of size bytes: 0, or -ENAMETOOLONG (dst untouched). */
static int copy_path(char *dst, size_t size, const char *src)
{
	size_t n = strlen(src);

	if (n >= size)
		return -ENAMETOOLONG;
	memcpy(dst, src, n + 1);
	return 0;
}

static void add_file(struct pack_manifest *m, char (*src)[PATH_MAX], enum pack_role role,
		     const char *path, bool included, bool asset)
{
	struct pack_file *f = &m->files[m->nr_files];
	char *abs = asset ? realpath(path, NULL) : NULL;

	f->role = role;
	f->included = included;
	/* Too long a path stays "" and fails to open below. An asset's source
	 * is absolute (snapshot.json has it as given, maybe relative). */
	(void)copy_path(src[m->nr_files], PATH_MAX, abs ? abs : path);
	if (abs)
		(void)copy_path(f->source, sizeof(f->source), abs);
	free(abs);
	m->nr_files++;
}

/* The files of snapshot dir (meta read from it) into m, hashed. */
static int list_files(const char *dir, const struct snapshot_meta *meta, bool no_assets,
		      struct pack_manifest *m, char (*src)[PATH_MAX], struct progress *prog)
{
	char path[PATH_MAX + 32];

	snprintf(path, sizeof(path), "%s/snapshot.json", dir);
	add_file(m, src, PACK_META, path, true, false);
	snprintf(path, sizeof(path), "%s/vmstate", dir);
	add_file(m, src, PACK_VMSTATE, path, true, false);
	snprintf(path, sizeof(path), "%s/memory.bin", dir);
	add_file(m, src, PACK_MEMORY, path, true, false);
	add_file(m, src, PACK_KERNEL, meta->kernel, !no_assets, true);
	if (meta->initrd[0])
		add_file(m, src, PACK_INITRD, meta->initrd, !no_assets, true);
	for (uint32_t d = 0; d < meta->dev.nr_disks; d++)
		add_file(m, src, PACK_DISK0 + d, meta->dev.disks[d].path, !no_assets, true);
	for (uint32_t i = 0; i < m->nr_files; i++) {
		struct stat st;

		int bad = stat(src[i], &st) < 0 ? errno : S_ISREG(st.st_mode) ? 0 : EINVAL;

		if (bad) {
			log_err("%s (%s of snapshot '%s'): %s", src[i],
				pack_role_name(m->files[i].role), meta->tag,
				bad == EINVAL ? "not a regular file" : strerror(bad));
			return -bad;
		}
		prog->total += (uint64_t)st.st_size;
	}
	for (uint32_t i = 0; i < m->nr_files; i++) {
		struct pack_file *f = &m->files[i];
		int err = sha256_file(src[i], f->sha256, &f->size);

		if (err)
			return log_err("%s: %s", src[i], strerror(-err)), err;
		if (f->size > pack_role_max(f->role)) {
			log_err("%s: %llu bytes, more than a pack takes for a %s", src[i],
				(unsigned long long)f->size, pack_role_name(f->role));
			return -EFBIG;
		}
		progress_add(prog, f->size);
	}
	return snapshot_check_memory(dir, meta->mem_mib * MIB);
}

static int archive_fail(struct archive *a, const char *what)
{
	log_err("%s: %s", what, archive_error_string(a) ?: "libarchive failed");
	return -EIO;
}

static int write_header(struct archive *a, const char *name, uint64_t size, const char *what)
{
	struct archive_entry *e = archive_entry_new();
	int r;

	if (!e)
		return -ENOMEM;
	archive_entry_set_pathname(e, name);
	archive_entry_set_filetype(e, AE_IFREG);
	archive_entry_set_perm(e, 0644);
	archive_entry_set_size(e, (la_int64_t)size);
	archive_entry_set_mtime(e, time(NULL), 0);
	r = archive_write_header(a, e);
	archive_entry_free(e);
	return r == ARCHIVE_OK ? 0 : archive_fail(a, what);
}

/* One file into the pack, hashed again as it goes: a file that changed
 * since the manifest was made fails rather than travel with a wrong sum. */
static int write_file(struct archive *a, const struct pack_file *f, const char *src,
		      const char *pack, uint8_t *buf, struct progress *prog)
{
	uint8_t sum[SHA256_BYTES];
	struct sha256 *h;
	uint64_t left = f->size;
	int fd, err = 0;

	fd = open(src, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return log_errno("%s", src);
	h = sha256_new();
	if (!h) {
		close(fd);
		return -ENOMEM;
	}
	if ((err = write_header(a, pack_role_path(f->role), f->size, pack)))
		goto out;
	while (left) {
		ssize_t n = read(fd, buf, MIN(left, (uint64_t)CHUNK));

		if (n <= 0) {
			err = n < 0 ? -errno : -EIO;
			log_err("%s: %s", src,
				n < 0 ? strerror(errno) : "shrank while being packed");
			goto out;
		}
		sha256_update(h, buf, (size_t)n);
		if (archive_write_data(a, buf, (size_t)n) != n) {
			err = archive_fail(a, pack);
			goto out;
		}
		left -= (uint64_t)n;
		progress_add(prog, (uint64_t)n);
	}
	sha256_final(h, sum);
	h = NULL;
	if (memcmp(sum, f->sha256, SHA256_BYTES) || read(fd, buf, 1) != 0) {
		log_err("%s: changed while being packed; pack again", src);
		err = -EAGAIN;
	}
out:
	sha256_free(h);
	close(fd);
	return err;
}

static int write_pack(const char *tmp, const struct pack_manifest *m, char (*src)[PATH_MAX],
		      const char *path, struct progress *prog)
{
	json_t *mj = pack_manifest_json(m);
	char *text = mj ? json_dumps(mj, JSON_INDENT(2) | JSON_PRESERVE_ORDER) : NULL;
	struct archive *a = archive_write_new();
	uint8_t *buf = malloc(CHUNK);
	int err = -ENOMEM, fd;

	json_decref(mj);
	if (!text || !a || !buf)
		goto out;
	if (archive_write_add_filter_zstd(a) != ARCHIVE_OK ||
	    archive_write_set_format_pax_restricted(a) != ARCHIVE_OK ||
	    archive_write_open_filename(a, tmp) != ARCHIVE_OK) {
		err = archive_fail(a, path);
		goto out;
	}
	if ((err = write_header(a, PACK_MANIFEST_NAME, strlen(text), path)))
		goto out;
	if (archive_write_data(a, text, strlen(text)) != (la_ssize_t)strlen(text)) {
		err = archive_fail(a, path);
		goto out;
	}
	for (uint32_t i = 0; i < m->nr_files; i++)
		if (m->files[i].included &&
		    (err = write_file(a, &m->files[i], src[i], path, buf, prog)))
			goto out;
	if (archive_write_close(a) != ARCHIVE_OK) {
		err = archive_fail(a, path);
		goto out;
	}
	fd = open(tmp, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fsync(fd) < 0) {
		err = log_errno("fsync %s", tmp);
		if (fd >= 0)
			close(fd);
		goto out;
	}
	close(fd);
	err = 0;
out:
	if (a)
		archive_write_free(a);
	free(buf);
	free(text);
	return err;
}

int pack_create(const char *tag, const char *path, const struct pack_opts *o, json_t **out)
{
	struct snapshot_meta *meta = malloc(sizeof(*meta));
	struct pack_manifest *m = calloc(1, sizeof(*m));
	char(*src)[PATH_MAX] = calloc(PACK_NR_ROLES, PATH_MAX);
	struct progress prog = {.o = o, .what = "hashing"};
	char dir[PATH_MAX], tmp[PATH_MAX];
	time_t now = time(NULL);
	bool made = false;
	struct stat st;
	struct tm tm;
	int err = -ENOMEM;

	if (!meta || !m || !src)
		goto out;
	if ((err = snapshot_dir(tag, dir, sizeof(dir))))
		goto out;
	if (access(dir, F_OK) < 0) {
		log_err("no snapshot '%s' (see 'forkd snapshot ls')", tag);
		err = -ENOENT;
		goto out;
	}
	if ((err = snapshot_meta_read(dir, meta)))
		goto out;
	if (meta->mem_diff) {
		log_err("'%s' is a diff branch: its memory is a diff over '%s', which a pack does "
			"not carry; flatten it first ('forkd snapshot compact --from %s --to NEW') "
			"and pack NEW",
			tag, meta->parent, tag);
		err = -EINVAL;
		goto out;
	}
	m->format_version = PACK_FORMAT_VERSION;
	snprintf(m->tag, sizeof(m->tag), "%s", meta->tag);
	snprintf(m->created, sizeof(m->created), "%s", meta->created);
	strftime(m->packed, sizeof(m->packed), "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&now, &tm));
	snprintf(m->forkd_version, sizeof(m->forkd_version), "%s", FORKD_VERSION);
	snprintf(m->parent, sizeof(m->parent), "%s", meta->parent);
	if ((err = list_files(dir, meta, o->no_assets, m, src, &prog)))
		goto out;
	prog.what = "packing";
	prog.done = prog.total = 0;
	for (uint32_t i = 0; i < m->nr_files; i++)
		prog.total += m->files[i].included ? m->files[i].size : 0;
	if ((size_t)snprintf(tmp, sizeof(tmp), "%s.partial-%d", path, (int)getpid()) >=
	    sizeof(tmp)) {
		log_err("%s: path too long", path);
		err = -ENAMETOOLONG;
		goto out;
	}
	made = true;
	if ((err = write_pack(tmp, m, src, path, &prog)))
		goto out;
	if (rename(tmp, path) < 0) {
		err = log_errno("rename %s to %s", tmp, path);
		goto out;
	}
	made = false;
	if (out) {
		json_t *j = pack_manifest_json(m);

		if (j && !stat(path, &st)) {
			json_object_set_new(j, "file", json_string(path));
			json_object_set_new(j, "bytes", json_integer((json_int_t)st.st_size));
		}
		*out = j;
	}
	err = 0;
out:
	if (made)
		unlink(tmp);
	free(src);
	free(m);
	free(meta);
	return err;
}

/* ---- unpack ---- */

struct unpack {
	const char *pack; /* the pack's path, for messages */
	struct archive *a;
	struct pack_manifest m;
	struct snapshot_meta meta;
	char stage[PATH_MAX]; /* .unpack-TAG-XXXXXX, removed unless renamed */
	char dst[PATH_MAX];   /* the snapshot's directory once renamed */
	uint8_t *buf;
	struct progress prog;
};

static int damaged(struct unpack *u)
{
	const char *why = archive_error_string(u->a);

	log_err("%s: truncated or damaged pack (%s)", u->pack, why ? why : "libarchive failed");
	return -EBADMSG;
}

static bool page_zero(const uint8_t *p, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (p[i])
			return false;
	return true;
}

/* buf[0, len) at file offset off (page-aligned): all-zero pages are left
 * as holes (the file is sized at the end), so a sparse memory.bin or disk
 * stays sparse. */
static int write_sparse(int fd, const uint8_t *buf, size_t len, uint64_t off)
{
	size_t pos = 0;

	while (pos < len) {
		size_t start;

		while (pos < len && page_zero(buf + pos, MIN(PAGE, len - pos)))
			pos += MIN(PAGE, len - pos);
		start = pos;
		while (pos < len && !page_zero(buf + pos, MIN(PAGE, len - pos)))
			pos += MIN(PAGE, len - pos);
		if (pos > start) {
			int err = pwrite_full(fd, buf + start, pos - start, off + start);

			if (err)
				return err;
		}
	}
	return 0;
}

/* The current member's data into a new file dest: exactly f->size bytes
 * with f's SHA-256, or the file is refused (the caller removes the
 * staging directory). */
static int extract_file(struct unpack *u, const struct pack_file *f, const char *dest)
{
	const char *name = pack_role_name(f->role);
	uint8_t sum[SHA256_BYTES];
	struct sha256 *h = sha256_new();
	uint64_t got = 0;
	int fd, err = 0;

	/* vmstate private as `forkd snapshot` writes it; the rest readable. */
	fd = open(dest, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW,
		  f->role == PACK_VMSTATE ? 0600 : 0644);
	if (fd < 0 || !h) {
		err = fd < 0 ? log_errno("create %s", dest) : -ENOMEM;
		goto out;
	}
	for (;;) {
		size_t fill = 0;
		la_ssize_t n = 1;

		/* Whole chunks, so every write starts on a page. */
		while (fill < CHUNK &&
		       (n = archive_read_data(u->a, u->buf + fill, CHUNK - fill)) > 0)
			fill += (size_t)n;
		if (n < 0) {
			err = damaged(u);
			goto out;
		}
		if (got + fill > f->size) {
			log_err("%s: %s: longer than the manifest's %llu bytes", u->pack, name,
				(unsigned long long)f->size);
			err = -EBADMSG;
			goto out;
		}
		sha256_update(h, u->buf, fill);
		if ((err = write_sparse(fd, u->buf, fill, got))) {
			log_err("write %s: %s", dest, strerror(-err));
			goto out;
		}
		got += fill;
		progress_add(&u->prog, fill);
		if (n == 0)
			break;
	}
	if (got != f->size) {
		log_err("%s: %s: %llu bytes, the manifest says %llu (truncated pack)", u->pack,
			name, (unsigned long long)got, (unsigned long long)f->size);
		err = -EBADMSG;
		goto out;
	}
	if (ftruncate(fd, (off_t)got) < 0 || fsync(fd) < 0) {
		err = log_errno("write %s", dest);
		goto out;
	}
	sha256_final(h, sum);
	h = NULL;
	if (memcmp(sum, f->sha256, SHA256_BYTES)) {
		log_err("%s: %s: sha256 mismatch (the pack is damaged or was altered)", u->pack,
			name);
		err = -EBADMSG;
	}
out:
	sha256_free(h);
	if (fd >= 0)
		close(fd);
	return err;
}

/* A member's name and type against the manifest: the next included file,
 * a regular file of the listed size. Returns its entry, or NULL after one
 * error line. */
static const struct pack_file *check_member(struct unpack *u, struct archive_entry *e,
					    uint32_t *next)
{
	const char *name = archive_entry_pathname(e);
	const struct pack_file *f = NULL;

	if (!name || name[0] == '/' || !strcmp(name, "..") || !strncmp(name, "../", 3) ||
	    strstr(name, "/../") ||
	    (strlen(name) >= 3 && !strcmp(name + strlen(name) - 3, "/.."))) {
		log_err("%s: unsafe member name '%s' (absolute or with ..)", u->pack,
			name ? name : "");
		return NULL;
	}
	if (archive_entry_filetype(e) != AE_IFREG || archive_entry_hardlink(e) ||
	    archive_entry_symlink(e)) {
		log_err("%s: member '%s' is not a regular file (links, devices and "
			"directories are refused)",
			u->pack, name);
		return NULL;
	}
	while (*next < u->m.nr_files && !u->m.files[*next].included)
		(*next)++;
	if (*next < u->m.nr_files)
		f = &u->m.files[*next];
	if (!f || strcmp(name, pack_role_path(f->role))) {
		log_err("%s: member '%s' is not the next file the manifest lists (%s)", u->pack,
			name, f ? pack_role_path(f->role) : "none is left");
		return NULL;
	}
	if (archive_entry_size_is_set(e) && (uint64_t)archive_entry_size(e) != f->size) {
		log_err("%s: %s: size mismatch (%lld bytes, the manifest says %llu)", u->pack,
			pack_role_name(f->role), (long long)archive_entry_size(e),
			(unsigned long long)f->size);
		return NULL;
	}
	(*next)++;
	return f;
}

/* snapshot.json, just extracted and verified: through the same checks as
 * every snapshot, then against the manifest. */
static int check_meta(struct unpack *u)
{
	char path[PATH_MAX + 16], *text = NULL, why[256];
	size_t len;
	int err;

	snprintf(path, sizeof(path), "%s/snapshot.json", u->stage);
	if ((err = file_read(path, SNAPSHOT_META_MAX, &text, &len)))
		return log_errno("%s", path);
	err = snapshot_meta_parse("snapshot.json in the pack", text, len, &u->meta);
	free(text);
	if (err)
		return err;
	if ((err = pack_manifest_check_meta(&u->m, &u->meta, why, sizeof(why))))
		log_err("%s: %s", u->pack, why);
	return err;
}

static bool same_content(const char *path, const struct pack_file *f)
{
	uint8_t sum[SHA256_BYTES];
	uint64_t size;
	struct stat st;

	return !stat(path, &st) && S_ISREG(st.st_mode) && (uint64_t)st.st_size == f->size &&
	       !sha256_file(path, sum, &size) && size == f->size &&
	       !memcmp(sum, f->sha256, SHA256_BYTES);
}

/* An asset left out of the pack: the file it was packed from, else any
 * regular file of the same size and SHA-256 in an image directory. */
static int find_local(struct unpack *u, const struct pack_file *f, char *out, size_t size)
{
	char root[PATH_MAX], sub[PATH_MAX + 256], cand[2 * PATH_MAX], hex[SHA256_HEX];
	struct dirent *d, *e;
	DIR *dp, *ip;

	if (f->source[0] && same_content(f->source, f)) {
		return copy_path(out, size, f->source);
	}
	if (guest_image_root(root, sizeof(root)))
		root[0] = 0;
	dp = root[0] ? opendir(root) : NULL;
	while (dp && (d = readdir(dp))) {
		if (d->d_name[0] == '.')
			continue;
		snprintf(sub, sizeof(sub), "%s/%s", root, d->d_name);
		if (!(ip = opendir(sub)))
			continue;
		while ((e = readdir(ip))) {
			struct stat st;

			snprintf(cand, sizeof(cand), "%s/%s", sub, e->d_name);
			if (e->d_name[0] == '.' || lstat(cand, &st) || !S_ISREG(st.st_mode) ||
			    (uint64_t)st.st_size != f->size || !same_content(cand, f))
				continue;
			if (copy_path(out, size, cand))
				continue;
			closedir(ip);
			closedir(dp);
			return 0;
		}
		closedir(ip);
	}
	if (dp)
		closedir(dp);
	sha256_to_hex(f->sha256, hex);
	log_err("%s: %s was left out of the pack (--no-assets) and no file here has its %llu "
		"bytes and sha256 %s (looked at %s and in %s/*/); put a copy there, or use a "
		"pack made without --no-assets",
		u->pack, pack_role_name(f->role), (unsigned long long)f->size, hex,
		f->source[0] ? f->source : "(no source)", root);
	return -ENOENT;
}

/* Point snapshot.json at where the assets are now, under its new tag. */
static int rewrite_meta(struct unpack *u, const char *tag, json_t *files)
{
	for (uint32_t i = 0; i < u->m.nr_files; i++) {
		const struct pack_file *f = &u->m.files[i];
		char where[PATH_MAX];
		int err;
		char *slot;

		if (f->role < PACK_KERNEL)
			continue;
		if (f->included) {
			if ((size_t)snprintf(where, sizeof(where), "%s/assets/%s", u->dst,
					     pack_role_name(f->role)) >= sizeof(where))
				return log_err("%s: path too long", u->dst), -ENAMETOOLONG;
		} else if ((err = find_local(u, f, where, sizeof(where)))) {
			return err;
		}
		slot = f->role == PACK_KERNEL	? u->meta.kernel
		       : f->role == PACK_INITRD ? u->meta.initrd
						: u->meta.dev.disks[f->role - PACK_DISK0].path;
		snprintf(slot, PATH_MAX, "%s", where);
		json_array_append_new(files,
				      json_pack("{s:s, s:s, s:b}", "role", pack_role_name(f->role),
						"path", where, "included", f->included));
	}
	snprintf(u->meta.tag, sizeof(u->meta.tag), "%s", tag);
	return snapshot_meta_write(u->stage, &u->meta);
}

static int open_pack(struct unpack *u, const char *path)
{
	struct archive_entry *e;
	char *text = NULL, why[256];
	la_int64_t size;
	int r, err;

	u->a = archive_read_new();
	if (!u->a)
		return -ENOMEM;
	if (archive_read_support_filter_zstd(u->a) != ARCHIVE_OK ||
	    archive_read_support_format_tar(u->a) != ARCHIVE_OK)
		return archive_fail(u->a, path);
	if (archive_read_open_filename(u->a, path, READ_BLOCK) != ARCHIVE_OK) {
		log_err("%s: not a forkd pack (a zstd-compressed tar), or unreadable: %s", path,
			archive_error_string(u->a) ?: "libarchive failed");
		return -EBADMSG;
	}
	r = archive_read_next_header(u->a, &e);
	if (r == ARCHIVE_EOF) {
		log_err("%s: an empty pack", path);
		return -EBADMSG;
	}
	if (r != ARCHIVE_OK) {
		log_err("%s: not a forkd pack, or damaged (%s)", path,
			archive_error_string(u->a) ?: "no header");
		return -EBADMSG;
	}
	size = archive_entry_size(e);
	if (!archive_entry_pathname(e) || strcmp(archive_entry_pathname(e), PACK_MANIFEST_NAME) ||
	    archive_entry_filetype(e) != AE_IFREG || !archive_entry_size_is_set(e) || size <= 0 ||
	    size > PACK_MANIFEST_MAX) {
		log_err("%s: not a forkd pack (its first member is not %s of at most %d bytes)",
			path, PACK_MANIFEST_NAME, PACK_MANIFEST_MAX);
		return -EINVAL;
	}
	text = malloc((size_t)size);
	if (!text)
		return -ENOMEM;
	if (archive_read_data(u->a, text, (size_t)size) != size) {
		free(text);
		return damaged(u);
	}
	err = pack_manifest_parse(text, (size_t)size, &u->m, why, sizeof(why));
	free(text);
	if (err)
		log_err("%s: %s", path, why);
	return err;
}

static int unpack_members(struct unpack *u)
{
	struct archive_entry *e;
	uint32_t next = 0;
	int r, err;

	for (uint32_t i = 0; i < u->m.nr_files; i++)
		u->prog.total += u->m.files[i].included ? u->m.files[i].size : 0;
	while ((r = archive_read_next_header(u->a, &e)) == ARCHIVE_OK) {
		const struct pack_file *f = check_member(u, e, &next);
		char dest[PATH_MAX + 64];

		if (!f)
			return -EINVAL;
		if (f->role < PACK_KERNEL)
			snprintf(dest, sizeof(dest), "%s/%s", u->stage, pack_role_name(f->role));
		else
			snprintf(dest, sizeof(dest), "%s/assets/%s", u->stage,
				 pack_role_name(f->role));
		if ((err = extract_file(u, f, dest)))
			return err;
		if (f->role == PACK_META && (err = check_meta(u)))
			return err;
	}
	if (r != ARCHIVE_EOF)
		return damaged(u);
	while (next < u->m.nr_files && !u->m.files[next].included)
		next++;
	if (next < u->m.nr_files) {
		log_err("%s: truncated pack: %s is missing", u->pack,
			pack_role_path(u->m.files[next].role));
		return -EBADMSG;
	}
	return 0;
}

int pack_extract(const char *path, const char *new_tag, const struct pack_opts *o, json_t **out)
{
	struct unpack *u = calloc(1, sizeof(*u));
	char snaps[PATH_MAX], sub[PATH_MAX + 16];
	json_t *files = json_array();
	const char *tag;
	bool made = false;
	int err = -ENOMEM;

	if (!u || !files || !(u->buf = malloc(CHUNK)))
		goto out;
	u->pack = path;
	u->prog = (struct progress){.o = o, .what = "unpacking"};
	if ((err = open_pack(u, path)))
		goto out;
	tag = new_tag ? new_tag : u->m.tag;
	if ((err = snapshot_dir(tag, u->dst, sizeof(u->dst))))
		goto out;
	if (access(u->dst, F_OK) == 0) {
		log_err("snapshot '%s' exists: delete it first ('forkd snapshot rm %s') or unpack "
			"under another tag (--tag OTHER)",
			tag, tag);
		err = -EEXIST;
		goto out;
	}
	snprintf(snaps, sizeof(snaps), "%.*s", (int)(strrchr(u->dst, '/') - u->dst), u->dst);
	if ((err = make_dirs(snaps, 0755)))
		goto out;
	if ((size_t)snprintf(u->stage, sizeof(u->stage), "%s/.unpack-%s-XXXXXX", snaps, tag) >=
	    sizeof(u->stage)) {
		log_err("%s: path too long", snaps);
		err = -ENAMETOOLONG;
		goto out;
	}
	if (!mkdtemp(u->stage)) {
		err = log_errno("mkdtemp %s", u->stage);
		goto out;
	}
	made = true;
	snprintf(sub, sizeof(sub), "%s/assets", u->stage);
	if (mkdir(sub, 0755) < 0) {
		err = log_errno("mkdir %s", sub);
		goto out;
	}
	if ((err = unpack_members(u)) || (err = rewrite_meta(u, tag, files)))
		goto out;
	if (chmod(u->stage, 0755) < 0) {
		err = log_errno("chmod %s", u->stage);
		goto out;
	}
	if (renameat2(AT_FDCWD, u->stage, AT_FDCWD, u->dst, RENAME_NOREPLACE) < 0) {
		err = -errno;
		if (err == -EEXIST || err == -ENOTEMPTY)
			log_err("snapshot '%s' appeared while unpacking; delete it first ('forkd "
				"snapshot rm %s') or unpack under another tag (--tag OTHER)",
				tag, tag);
		else
			log_errno("rename %s to %s", u->stage, u->dst);
		goto out;
	}
	made = false;
	if (out)
		*out = json_pack("{s:s, s:s, s:s, s:s, s:s, s:I, s:O}", "tag", tag, "packed_tag",
				 u->m.tag, "created", u->m.created, "forkd_version",
				 u->m.forkd_version, "dir", u->dst, "bytes",
				 (json_int_t)u->prog.total, "assets", files);
	err = 0;
out:
	if (made && file_remove_tree(u->stage))
		log_warn("could not remove %s", u->stage);
	if (u && u->a)
		archive_read_free(u->a);
	if (u)
		free(u->buf);
	free(u);
	json_decref(files);
	return err;
}
