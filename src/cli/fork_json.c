#include "cli/fork_json.h"

#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli/kept_cli.h"
#include "common/log.h"

static const char *stage_name(enum batch_stage s)
{
	switch (s) {
	case BATCH_OK:
		return "ok";
	case BATCH_PREPARE:
		return "prepare";
	case BATCH_FORK:
		return "fork";
	case BATCH_START:
		return "start";
	case BATCH_AFTER_FORK:
		return "after_fork";
	case BATCH_SKIPPED:
		return "skipped";
	}
	return "unknown";
}

json_t *fork_json_children(const struct batch *b, bool wait_exit)
{
	json_t *arr = json_array();

	for (size_t i = 0; i < b->n; i++) {
		const struct batch_child *c = &b->c[i];
		json_t *o = json_pack("{s:I}", "index", (json_int_t)c->index);

		if (c->failed_at == BATCH_OK) {
			json_object_set_new(o, "state", json_string("running"));
		} else {
			json_object_set_new(
			    o, "state",
			    json_string(c->failed_at == BATCH_SKIPPED ? "skipped" : "failed"));
			json_object_set_new(o, "stage", json_string(stage_name(c->failed_at)));
			json_object_set_new(o, "error", json_string(c->error));
		}
		if (c->restore_ns)
			json_object_set_new(o, "restore_ms", json_real(c->restore_ns / 1e6));
		if (c->after_fork_ns)
			json_object_set_new(o, "after_fork_ms", json_real(c->after_fork_ns / 1e6));
		if (c->oom_killed)
			json_object_set_new(o, "oom_killed", json_true());
		if (wait_exit && c->failed_at == BATCH_OK) {
			int st = c->wait_status;

			json_object_set_new(
			    o, "exit_status",
			    json_integer(WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st)));
		}
		json_array_append_new(arr, o);
	}
	return arr;
}

json_t *fork_json_kept(const char *tag, const char *workdir)
{
	json_t *all = json_array(), *mine = json_array(), *o;
	char abs[PATH_MAX];
	size_t i, len;

	if (!realpath(workdir, abs))
		snprintf(abs, sizeof(abs), "%s", workdir);
	len = strlen(abs);
	if (kept_cli_list(tag, all) >= 0)
		json_array_foreach(all, i, o)
		{
			const char *dir = json_string_value(json_object_get(o, "run_dir"));

			if (dir && !strncmp(dir, abs, len) && dir[len] == '/')
				json_array_append(mine, o);
		}
	json_decref(all);
	return mine;
}
