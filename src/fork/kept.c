#include "fork/kept.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/file.h"
#include "common/util.h"

static const char hex[] = "0123456789abcdef";

bool kept_id_valid(const char *id)
{
	if (!id || strlen(id) != KEPT_ID_LEN || strncmp(id, KEPT_ID_PREFIX, 2))
		return false;
	for (int i = 2; i < KEPT_ID_LEN; i++)
		if (!strchr(hex, id[i]))
			return false;
	return true;
}

int kept_id_new(char id[KEPT_ID_LEN + 1])
{
	uint8_t rnd[4];

	if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd))
		return log_errno("getrandom for a kept child's id");
	memcpy(id, KEPT_ID_PREFIX, 2);
	for (int i = 0; i < 4; i++) {
		id[2 + 2 * i] = hex[rnd[i] >> 4];
		id[3 + 2 * i] = hex[rnd[i] & 15];
	}
	id[KEPT_ID_LEN] = '\0';
	return 0;
}

int kept_registry_dir(char *buf, size_t size)
{
	char home[PATH_MAX];
	int err = snapshot_home(home, sizeof(home)), n;

	if (err)
		return err;
	n = snprintf(buf, size, "%s/kept", home);
	return n < 0 || (size_t)n >= size ? -ENAMETOOLONG : 0;
}

int kept_path(const char *id, char *buf, size_t size)
{
	char dir[PATH_MAX];
	int err, n;

	if (!kept_id_valid(id))
		return -EINVAL;
	err = kept_registry_dir(dir, sizeof(dir));
	if (err)
		return err;
	n = snprintf(buf, size, "%s/%s.json", dir, id);
	return n < 0 || (size_t)n >= size ? -ENAMETOOLONG : 0;
}

int kept_write(struct child_rec *r)
{
	char dir[PATH_MAX], path[PATH_MAX], tmp[PATH_MAX + CHILD_ID_LEN + 8], created[32];
	json_t *o;
	int err;

	if (!snapshot_tag_valid(r->tag) || r->run_dir[0] != '/' || r->pid <= 0) {
		log_err("kept child %s: incomplete registry entry", r->id);
		return -EINVAL;
	}
	if ((err = kept_registry_dir(dir, sizeof(dir))) ||
	    (err = kept_path(r->id, path, sizeof(path))))
		return err;
	if ((err = make_dirs(dir, 0755)))
		return err;
	if (!r->created_ms)
		r->created_ms = (int64_t)time(NULL) * 1000;
	child_time_iso(r->created_ms, created);
	o = json_pack("{s:s, s:s, s:I, s:I, s:I, s:s, s:I, s:s}", "id", r->id, "tag", r->tag,
		      "index", (json_int_t)r->index, "pid", (json_int_t)r->pid, "start_time",
		      (json_int_t)r->start_time, "run_dir", r->run_dir, "supervisor_pid",
		      (json_int_t)r->supervisor_pid, "created_at", created);
	if (!o) {
		log_err("kept child %s: cannot build its registry entry", r->id);
		return -ENOMEM;
	}
	snprintf(tmp, sizeof(tmp), "%s/.%s.tmp", dir, r->id);
	if (json_dump_file(o, tmp, JSON_INDENT(2) | JSON_PRESERVE_ORDER)) {
		json_decref(o);
		unlink(tmp);
		log_err("cannot write %s", tmp);
		return -EIO;
	}
	json_decref(o);
	if (rename(tmp, path) < 0) {
		err = log_errno("rename %s to %s", tmp, path);
		unlink(tmp);
		return err;
	}
	return 0;
}

static bool get_int(json_t *o, const char *k, json_int_t min, json_int_t max, json_int_t *v)
{
	json_t *x = json_object_get(o, k);

	if (!json_is_integer(x))
		return false;
	*v = json_integer_value(x);
	return *v >= min && *v <= max;
}

static bool get_str(json_t *o, const char *k, char *buf, size_t size)
{
	const char *s = json_string_value(json_object_get(o, k));

	return s && strlen(s) < size && snprintf(buf, size, "%s", s) >= 0;
}

int kept_parse(const char *path, const char *text, size_t len, const char *id, struct child_rec *r)
{
	char created[32];
	json_error_t jerr;
	json_int_t idx, pid, st, sup;
	json_t *o;
	bool good;

	memset(r, 0, sizeof(*r));
	o = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!o) {
		log_err("%s: %s", path, jerr.text);
		return -EINVAL;
	}
	good = get_str(o, "id", r->id, sizeof(r->id)) && !strcmp(r->id, id) &&
	       get_str(o, "tag", r->tag, sizeof(r->tag)) &&
	       get_int(o, "index", 0, UINT32_MAX, &idx) && get_int(o, "pid", 1, INT32_MAX, &pid) &&
	       get_int(o, "start_time", 0, INT64_MAX, &st) &&
	       get_str(o, "run_dir", r->run_dir, sizeof(r->run_dir)) && r->run_dir[0] == '/' &&
	       get_int(o, "supervisor_pid", 0, INT32_MAX, &sup) &&
	       get_str(o, "created_at", created, sizeof(created)) &&
	       child_time_parse(created, &r->created_ms);
	json_decref(o);
	if (!good) {
		log_err("%s: not a valid kept child entry", path);
		return -EINVAL;
	}
	r->index = (uint32_t)idx;
	r->pid = (pid_t)pid;
	r->start_time = (uint64_t)st;
	r->supervisor_pid = (pid_t)sup;
	return 0;
}

int kept_read(const char *id, struct child_rec *r)
{
	char path[PATH_MAX], *text = NULL;
	size_t len;
	int err = kept_path(id, path, sizeof(path));

	if (err)
		return err;
	memset(r, 0, sizeof(*r));
	err = file_read(path, KEPT_ENTRY_MAX, &text, &len);
	if (err == -ENOENT)
		return err;
	if (err) {
		log_err("%s: %s", path,
			err == -EFBIG ? "over the size of any kept child entry" : strerror(-err));
		return -EINVAL;
	}
	err = kept_parse(path, text, len, id, r);
	free(text);
	return err;
}

int kept_remove(const char *id)
{
	char path[PATH_MAX];
	int err = kept_path(id, path, sizeof(path));

	if (err)
		return err;
	if (unlink(path) < 0 && errno != ENOENT)
		return log_errno("remove %s", path);
	return 0;
}

static int cmp_rec(const void *a, const void *b)
{
	const struct child_rec *x = a, *y = b;
	int c = x->created_ms < y->created_ms ? -1 : x->created_ms > y->created_ms;

	if (!c && x->supervisor_pid != y->supervisor_pid)
		c = x->supervisor_pid < y->supervisor_pid ? -1 : 1;
	if (!c && x->index != y->index)
		c = x->index < y->index ? -1 : 1;
	return c ? c : strcmp(x->id, y->id);
}

int kept_list(struct child_rec **out, size_t *n)
{
	char dir[PATH_MAX];
	struct child_rec *v = NULL;
	size_t cap = 0;
	struct dirent *de;
	DIR *d;
	int err = kept_registry_dir(dir, sizeof(dir));

	*out = NULL;
	*n = 0;
	if (err)
		return err;
	d = opendir(dir);
	if (!d)
		return errno == ENOENT ? 0 : log_errno("opendir %s", dir);
	while ((de = readdir(d))) {
		char id[KEPT_ID_LEN + 1];
		size_t len = strlen(de->d_name);

		if (len != KEPT_ID_LEN + 5 || strcmp(de->d_name + KEPT_ID_LEN, ".json"))
			continue;
		memcpy(id, de->d_name, KEPT_ID_LEN);
		id[KEPT_ID_LEN] = '\0';
		if (!kept_id_valid(id))
			continue;
		if (*n == cap) {
			struct child_rec *nv = realloc(v, (cap = cap ? cap * 2 : 16) * sizeof(*v));

			if (!nv) {
				err = -ENOMEM;
				break;
			}
			v = nv;
		}
		if (kept_read(id, &v[*n]) == 0)
			(*n)++;
	}
	closedir(d);
	if (err) {
		free(v);
		*n = 0;
		return err;
	}
	if (*n)
		qsort(v, *n, sizeof(*v), cmp_rec);
	*out = v;
	return 0;
}
