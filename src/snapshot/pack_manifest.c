/* manifest.json of a snapshot pack: parsed strictly (it comes from another
 * host, maybe altered), written by pack_manifest_json(). */
#include "snapshot/pack_manifest.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "common/util.h"
#include "snapshot/vmstate.h"

static const char *const role_names[PACK_NR_ROLES] = {
    [PACK_META] = "snapshot.json", [PACK_VMSTATE] = "vmstate", [PACK_MEMORY] = "memory.bin",
    [PACK_KERNEL] = "kernel",	   [PACK_INITRD] = "initrd",   [PACK_DISK0] = "disk0",
    [PACK_DISK0 + 1] = "disk1",	   [PACK_DISK0 + 2] = "disk2", [PACK_DISK0 + 3] = "disk3",
};

static const char *const role_paths[PACK_NR_ROLES] = {
    [PACK_META] = "snapshot/snapshot.json", [PACK_VMSTATE] = "snapshot/vmstate",
    [PACK_MEMORY] = "snapshot/memory.bin",  [PACK_KERNEL] = "assets/kernel",
    [PACK_INITRD] = "assets/initrd",	    [PACK_DISK0] = "assets/disk0",
    [PACK_DISK0 + 1] = "assets/disk1",	    [PACK_DISK0 + 2] = "assets/disk2",
    [PACK_DISK0 + 3] = "assets/disk3",
};

_Static_assert(SNAPSHOT_MAX_DISKS == 4, "role tables list four disks");

const char *pack_role_name(enum pack_role role)
{
	return (unsigned)role < PACK_NR_ROLES ? role_names[role] : NULL;
}

const char *pack_role_path(enum pack_role role)
{
	return (unsigned)role < PACK_NR_ROLES ? role_paths[role] : NULL;
}

uint64_t pack_role_max(enum pack_role role)
{
	if (role == PACK_META)
		return SNAPSHOT_META_MAX;
	if (role == PACK_VMSTATE)
		return VMSTATE_MAX_SIZE;
	return PACK_FILE_MAX;
}

static bool is_snapshot_file(enum pack_role role)
{
	return role == PACK_META || role == PACK_VMSTATE || role == PACK_MEMORY;
}

/* Printable ASCII only, shorter than size: safe to print and to copy. */
static bool plain_text(const char *s, size_t size)
{
	size_t n = strlen(s);

	if (n >= size)
		return false;
	for (size_t i = 0; i < n; i++)
		if (s[i] < 0x20 || s[i] > 0x7e)
			return false;
	return true;
}

static int parse_file(json_t *f, size_t index, struct pack_manifest *m, char *err, size_t errlen)
{
	const char *path, *role, *hex, *source = "";
	struct pack_file *pf = &m->files[m->nr_files];
	json_int_t size;
	json_error_t jerr;
	int included, r;

	if (json_unpack_ex(f, &jerr, JSON_STRICT, "{s:s, s:s, s:I, s:s, s:b, s?s}", "path", &path,
			   "role", &role, "size", &size, "sha256", &hex, "included", &included,
			   "source", &source))
		return errbuf_fail(err, errlen, -EINVAL, "manifest: files[%zu]: %s", index,
				   jerr.text);
	for (r = 0; r < PACK_NR_ROLES; r++)
		if (!strcmp(role, role_names[r]))
			break;
	if (r == PACK_NR_ROLES)
		return errbuf_fail(err, errlen, -EINVAL, "manifest: files[%zu]: unknown role",
				   index);
	/* One canonical order (the pack's): each role once, snapshot.json
	 * first, so unpack checks it before the large members arrive. */
	if (m->nr_files && (enum pack_role)r <= m->files[m->nr_files - 1].role)
		return errbuf_fail(err, errlen, -EINVAL,
				   "manifest: %s listed twice or out of order", role_names[r]);
	if (strcmp(path, role_paths[r]))
		return errbuf_fail(err, errlen, -EINVAL, "manifest: %s must be at '%s' in the pack",
				   role_names[r], role_paths[r]);
	if (size < 0 || (uint64_t)size > pack_role_max((enum pack_role)r))
		return errbuf_fail(err, errlen, -EINVAL, "manifest: %s: size out of range",
				   role_names[r]);
	if (sha256_from_hex(hex, pf->sha256))
		return errbuf_fail(err, errlen, -EINVAL,
				   "manifest: %s: sha256 must be 64 lower-case hex digits",
				   role_names[r]);
	if (is_snapshot_file((enum pack_role)r) && (!included || *source))
		return errbuf_fail(err, errlen, -EINVAL,
				   "manifest: %s must be included and has no source",
				   role_names[r]);
	if (*source && (source[0] != '/' || !plain_text(source, sizeof(pf->source))))
		return errbuf_fail(err, errlen, -EINVAL,
				   "manifest: %s: source must be an absolute path", role_names[r]);
	pf->role = (enum pack_role)r;
	pf->size = (uint64_t)size;
	pf->included = included;
	snprintf(pf->source, sizeof(pf->source), "%s", source);
	m->nr_files++;
	return 0;
}

int pack_manifest_parse(const char *text, size_t len, struct pack_manifest *m, char *err,
			size_t errlen)
{
	const char *tag, *created, *packed, *version_s;
	json_t *o, *parent, *files, *f;
	json_int_t version;
	json_error_t jerr;
	size_t i;
	int ret = -EINVAL;

	memset(m, 0, sizeof(*m));
	if (len > PACK_MANIFEST_MAX)
		return errbuf_fail(err, errlen, -EINVAL, "manifest: over %d bytes",
				   PACK_MANIFEST_MAX);
	o = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!o)
		return errbuf_fail(err, errlen, -EINVAL, "manifest: line %d: %s", jerr.line,
				   jerr.text);
	if (json_unpack_ex(o, &jerr, 0, "{s:I}", "format_version", &version)) {
		errbuf_fail(err, errlen, -EINVAL, "manifest: %s", jerr.text);
		goto out;
	}
	if (version != PACK_FORMAT_VERSION) {
		ret = errbuf_fail(err, errlen, -EPROTO,
				  "manifest: pack format version %lld; this forkd reads version %d",
				  (long long)version, PACK_FORMAT_VERSION);
		goto out;
	}
	if (json_unpack_ex(o, &jerr, JSON_STRICT, "{s:I, s:s, s:s, s:s, s:s, s:o, s:o}",
			   "format_version", &version, "tag", &tag, "created", &created, "packed",
			   &packed, "forkd_version", &version_s, "parent", &parent, "files",
			   &files)) {
		errbuf_fail(err, errlen, -EINVAL, "manifest: %s", jerr.text);
		goto out;
	}
	if (!snapshot_tag_valid(tag) ||
	    (!json_is_null(parent) &&
	     (!json_is_string(parent) || !snapshot_tag_valid(json_string_value(parent))))) {
		errbuf_fail(err, errlen, -EINVAL, "manifest: invalid tag or parent");
		goto out;
	}
	if (!plain_text(created, sizeof(m->created)) || !plain_text(packed, sizeof(m->packed)) ||
	    !plain_text(version_s, sizeof(m->forkd_version))) {
		errbuf_fail(err, errlen, -EINVAL,
			    "manifest: created, packed or forkd_version is not short plain text");
		goto out;
	}
	if (!json_is_array(files) || json_array_size(files) > PACK_NR_ROLES) {
		errbuf_fail(err, errlen, -EINVAL,
			    "manifest: 'files' must be an array of at most %d", PACK_NR_ROLES);
		goto out;
	}
	m->format_version = (uint32_t)version;
	snprintf(m->tag, sizeof(m->tag), "%s", tag);
	snprintf(m->created, sizeof(m->created), "%s", created);
	snprintf(m->packed, sizeof(m->packed), "%s", packed);
	snprintf(m->forkd_version, sizeof(m->forkd_version), "%s", version_s);
	if (json_is_string(parent))
		snprintf(m->parent, sizeof(m->parent), "%s", json_string_value(parent));
	json_array_foreach(files, i, f)
	{
		if ((ret = parse_file(f, i, m, err, errlen)))
			goto out;
	}
	ret = -EINVAL;
	for (int r = PACK_META; r <= PACK_KERNEL; r++) {
		if (!pack_manifest_find(m, (enum pack_role)r)) {
			errbuf_fail(err, errlen, -EINVAL, "manifest: no %s listed", role_names[r]);
			goto out;
		}
	}
	ret = 0;
out:
	json_decref(o);
	if (ret)
		memset(m, 0, sizeof(*m));
	return ret;
}

const struct pack_file *pack_manifest_find(const struct pack_manifest *m, enum pack_role role)
{
	for (uint32_t i = 0; i < m->nr_files && i < PACK_NR_ROLES; i++)
		if (m->files[i].role == role)
			return &m->files[i];
	return NULL;
}

int pack_manifest_check_meta(const struct pack_manifest *m, const struct snapshot_meta *meta,
			     char *err, size_t errlen)
{
	const struct pack_file *mem = pack_manifest_find(m, PACK_MEMORY);

	if (strcmp(m->tag, meta->tag) || strcmp(m->created, meta->created))
		return errbuf_fail(err, errlen, -EINVAL,
				   "snapshot.json: tag or created differs from the manifest's");
	if (meta->mem_diff)
		return errbuf_fail(
		    err, errlen, -EINVAL,
		    "snapshot.json: a memory diff; a pack holds full snapshots only");
	if (!mem || mem->size != meta->mem_mib * MIB)
		return errbuf_fail(err, errlen, -EINVAL,
				   "memory.bin: %llu bytes, but snapshot.json says %llu MiB of RAM",
				   mem ? (unsigned long long)mem->size : 0ULL,
				   (unsigned long long)meta->mem_mib);
	if (!meta->kernel[0] || !!meta->initrd[0] != !!pack_manifest_find(m, PACK_INITRD))
		return errbuf_fail(err, errlen, -EINVAL,
				   "snapshot.json: its kernel and initrd are not those the "
				   "manifest lists");
	for (uint32_t d = 0; d < SNAPSHOT_MAX_DISKS; d++)
		if ((d < meta->dev.nr_disks) != !!pack_manifest_find(m, PACK_DISK0 + d))
			return errbuf_fail(err, errlen, -EINVAL,
					   "snapshot.json: %u disks, but the manifest lists others",
					   meta->dev.nr_disks);
	return 0;
}

json_t *pack_manifest_json(const struct pack_manifest *m)
{
	json_t *files = json_array(), *o;

	for (uint32_t i = 0; files && i < m->nr_files && i < PACK_NR_ROLES; i++) {
		const struct pack_file *f = &m->files[i];
		char hex[SHA256_HEX];
		json_t *e;

		sha256_to_hex(f->sha256, hex);
		e = json_pack("{s:s, s:s, s:I, s:s, s:b}", "path", pack_role_path(f->role), "role",
			      pack_role_name(f->role), "size", (json_int_t)f->size, "sha256", hex,
			      "included", f->included);
		if (e && f->source[0] && json_object_set_new(e, "source", json_string(f->source))) {
			json_decref(e);
			e = NULL;
		}
		if (!e || json_array_append_new(files, e)) {
			json_decref(files);
			return NULL;
		}
	}
	if (!files)
		return NULL;
	o = json_pack("{s:i, s:s, s:s, s:s, s:s, s:s?, s:o}", "format_version",
		      (int)m->format_version, "tag", m->tag, "created", m->created, "packed",
		      m->packed, "forkd_version", m->forkd_version, "parent",
		      m->parent[0] ? m->parent : NULL, "files", files);
	return o;
}
