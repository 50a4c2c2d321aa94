#include "cli/kept_cli.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "fork/child.h"

#define KILL_GRACE_MS 3000

static json_t *rec_json(const struct child_rec *r)
{
	bool alive = child_alive((pid_t)r->pid, r->start_time);
	char created[32];

	child_time_iso(r->created_ms, created);

	return json_pack("{s:s, s:s, s:s, s:I, s:s, s:I, s:s, s:I, s:s}", "id", r->id, "kind",
			 "kept", "snapshot_tag", r->tag, "index", (json_int_t)r->index, "state",
			 alive ? "running" : "exited", "pid", (json_int_t)r->pid, "run_dir",
			 r->run_dir, "supervisor_pid", (json_int_t)r->supervisor_pid, "created_at",
			 created);
}

int kept_cli_list(const char *tag, json_t *arr)
{
	struct child_rec *v;
	size_t n;
	int count = 0, err = kept_list(&v, &n);

	if (err) {
		log_err("cannot read the kept children's registry: %s", strerror(-err));
		return err;
	}
	for (size_t i = 0; i < n; i++) {
		if (tag && strcmp(tag, v[i].tag))
			continue;
		json_array_append_new(arr, rec_json(&v[i]));
		count++;
	}
	free(v);
	return count;
}

static const char *str(json_t *o, const char *k)
{
	const char *s = json_string_value(json_object_get(o, k));

	return s ? s : "-";
}

void kept_cli_print(json_t *arr)
{
	size_t i;
	json_t *o;

	if (!json_array_size(arr))
		return;
	printf("%-10s  %-16s %5s  %-8s %8s  %-20s  %s\n", "KEPT ID", "SNAPSHOT", "INDEX", "STATE",
	       "PID", "CREATED", "RUN DIR");
	json_array_foreach(arr, i, o)
	{
		printf("%-10s  %-16s %5lld  %-8s %8lld  %-20s  %s\n", str(o, "id"),
		       str(o, "snapshot_tag"),
		       (long long)json_integer_value(json_object_get(o, "index")), str(o, "state"),
		       (long long)json_integer_value(json_object_get(o, "pid")),
		       str(o, "created_at"), str(o, "run_dir"));
	}
}

int kept_cli_kill(const char *verb, const char *id, json_t *results)
{
	struct child_rec r;
	const char *before;
	int err = kept_read(id, &r);

	if (err == -ENOENT) {
		fprintf(stderr, "forkd %s: error: no kept child %s (see 'forkd ls')\n", verb, id);
		return 1;
	}
	if (err) {
		fprintf(stderr, "forkd %s: error: %s: unreadable registry entry: %s\n", verb, id,
			strerror(-err));
		return 1;
	}
	before = child_alive(r.pid, r.start_time) ? "running" : "exited";
	/* child_stop() signals through a pidfd taken before it checks the
	 * start time: a recycled pid is never signalled. */
	err = child_stop(r.pid, r.start_time, KILL_GRACE_MS);
	if (err) {
		fprintf(stderr, "forkd %s: error: kept child %s (pid %d) did not stop: %s\n", verb,
			id, (int)r.pid, strerror(-err));
		return 1;
	}
	if (kept_remove(id))
		return 1;
	if (results) {
		json_array_append_new(results,
				      json_pack("{s:s, s:s, s:s, s:I, s:s}", "id", id, "kind",
						"kept", "state_before", before, "pid",
						(json_int_t)r.pid, "run_dir", r.run_dir));
	} else {
		printf("killed %s (was %s)\n", id, before);
	}
	return 0;
}

int kept_cli_live(const char *verb, const char *id, struct child_rec *r)
{
	int err = kept_read(id, r);

	if (err) {
		fprintf(stderr, "forkd %s: error: %s\n", verb,
			err == -ENOENT ? "no such kept child (see 'forkd ls')"
				       : "unreadable registry entry");
		return 1;
	}
	if (!child_alive(r->pid, r->start_time)) {
		fprintf(stderr,
			"forkd %s: error: kept child %s has exited (pid %d is gone); remove its "
			"entry with 'forkd kill %s'\n",
			verb, id, (int)r->pid, id);
		return 1;
	}
	return 0;
}

int kept_cli_run_dir(const char *verb, const char *id, char *buf, size_t size)
{
	struct child_rec r;

	if (kept_cli_live(verb, id, &r))
		return 1;
	if ((size_t)snprintf(buf, size, "%s", r.run_dir) >= size)
		return 1;
	return 0;
}
