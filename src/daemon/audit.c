#include "daemon/audit.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <limits.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "common/util.h"

int audit_open(struct audit *a, const char *path)
{
	const char *v;
	uint64_t max;

	pthread_mutex_init(&a->lock, NULL);
	if (!strcmp(path, "-")) {
		a->fd = dup(STDERR_FILENO);
		if (a->fd < 0)
			return log_errno("dup(stderr) for the audit log");
		return 0;
	}
	a->fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (a->fd < 0)
		return log_errno("open audit log %s", path);
	a->path = strdup(path);
	a->max_bytes = AUDIT_MAX_BYTES;
	/* Test hook: rotate sooner (tests/daemon/test_api.py). */
	if ((v = getenv("FORKD_TEST_AUDIT_MAX_BYTES")) && !parse_u64(v, &max) && max >= 1024)
		a->max_bytes = max;
	return 0;
}

/* Over max_bytes: the file becomes <path>.1 (the one before is dropped)
 * and a new one starts. Called with the lock held; on failure the old
 * file goes on growing and the failure is logged once per attempt. */
static void rotate(struct audit *a)
{
	char old[PATH_MAX + 8];
	struct stat st;
	int fd;

	if (!a->path || fstat(a->fd, &st) < 0 || (uint64_t)st.st_size < a->max_bytes)
		return;
	snprintf(old, sizeof(old), "%s.1", a->path);
	if (rename(a->path, old) < 0) {
		log_errno("rotate audit log %s", a->path);
		return;
	}
	fd = open(a->path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0) {
		log_errno("open audit log %s", a->path);
		return;
	}
	close(a->fd);
	a->fd = fd;
}

static void set_str(json_t *o, const char *key, const char *v)
{
	if (v)
		json_object_set_new(o, key, json_string(v));
}

void audit_write(struct audit *a, const struct audit_entry *e)
{
	struct timeval tv;
	struct tm tm;
	char ts[40], *line;
	json_t *o;
	size_t n;

	if (a->fd < 0)
		return;
	gettimeofday(&tv, NULL);
	gmtime_r(&tv.tv_sec, &tm);
	n = strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(ts + n, sizeof(ts) - n, ".%03ldZ", (long)(tv.tv_usec / 1000));
	o = json_object();
	json_object_set_new(o, "time", json_string(ts));
	set_str(o, "remote", e->remote);
	set_str(o, "method", e->method);
	/* Paths come from the network: jansson refuses invalid UTF-8, so
	 * such a path is logged as its length only. */
	if (e->path && json_object_set_new(o, "path", json_string(e->path)))
		json_object_set_new(o, "path_bytes", json_integer((json_int_t)strlen(e->path)));
	json_object_set_new(o, "status", json_integer(e->status));
	json_object_set_new(o, "duration_ms",
			    json_real((double)(long)(e->duration_ms * 1000) / 1000));
	set_str(o, "auth", e->auth);
	set_str(o, "sandbox", e->sandbox);
	set_str(o, "tag", e->tag);
	json_object_set_new(o, "bytes_in", json_integer((json_int_t)e->bytes_in));
	json_object_set_new(o, "bytes_out", json_integer((json_int_t)e->bytes_out));
	set_str(o, "error", e->error);
	line = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
	json_decref(o);
	if (!line)
		return;
	n = strlen(line);
	line[n] = '\n'; /* replaces the terminator: written by length */
	pthread_mutex_lock(&a->lock);
	rotate(a);
	if (write_full(a->fd, line, n + 1))
		log_errno("write audit log");
	pthread_mutex_unlock(&a->lock);
	free(line);
}

void audit_close(struct audit *a)
{
	if (a->fd >= 0)
		close(a->fd);
	a->fd = -1;
	free(a->path);
	a->path = NULL;
}
