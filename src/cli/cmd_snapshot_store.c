/* `forkd snapshot ls | info TAG | rm TAG...`: the snapshot store
 * ($FORKD_HOME/snapshots) read and pruned directly, with or without a
 * daemon. rm refuses a snapshot that kept children run from or that diff
 * branches need (unless --cascade, which removes those too); a daemon's
 * sandboxes are the daemon's to know about: delete through its API
 * (DELETE /v1/snapshots/TAG) when one serves this store. */
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/client.h"
#include "common/file.h"
#include "common/util.h"
#include "fork/child.h"
#include "fork/kept.h"
#include "snapshot/snapshot_image.h"

#define MAX_DEPS 64

static void store_usage(FILE *f)
{
	fprintf(f, "usage: forkd snapshot ls [--json]\n"
		   "       forkd snapshot info TAG [--json]\n"
		   "       forkd snapshot rm TAG... [--cascade] [--json]\n"
		   "       (to carry one to another host: forkd snapshot pack --help)\n"
		   "\n"
		   "The snapshots in $FORKD_HOME/snapshots ('forkd where' prints it):\n"
		   "ls lists them, info shows one (its parent, memory kind and chain depth,\n"
		   "size in RAM and on disk, the diff branches that need it, kept children\n"
		   "running from it), rm deletes them. rm refuses a snapshot that kept\n"
		   "children run from, or that diff branches need; --cascade deletes those\n"
		   "branches (and theirs) too. Sandboxes of a daemon are not seen here:\n"
		   "delete through the daemon (DELETE /v1/snapshots/TAG) when one serves\n"
		   "this store.\n"
		   "\n"
		   "options:\n"
		   "  --json       print JSON (ls: an array; info: an object; rm: the tags\n"
		   "               deleted, an array)\n"
		   "  --cascade    rm: also delete the diff branches that need it\n"
		   "  -h, --help   this text\n");
}

static size_t kept_running(const char *tag)
{
	struct child_rec *v;
	size_t n, alive = 0;

	if (kept_list(&v, &n))
		return 0;
	for (size_t i = 0; i < n; i++)
		alive += !strcmp(v[i].tag, tag) && child_alive((pid_t)v[i].pid, v[i].start_time);
	free(v);
	return alive;
}

/* One snapshot as JSON, or NULL (one error line) when it cannot be read. */
static json_t *describe(const char *tag)
{
	char dir[PATH_MAX], deps[MAX_DEPS][SNAPSHOT_TAG_MAX + 1];
	struct snapshot_meta *m = malloc(sizeof(*m));
	json_t *o = NULL, *arr;
	int nd;

	if (!m || snapshot_dir(tag, dir, sizeof(dir)) || snapshot_meta_read(dir, m)) {
		free(m);
		return NULL;
	}
	nd = snapshot_dependents(tag, deps, MAX_DEPS);
	arr = json_array();
	for (int i = 0; i < nd && i < MAX_DEPS; i++)
		json_array_append_new(arr, json_string(deps[i]));
	o = json_pack("{s:s,s:s,s:I,s:i,s:s,s:s?,s:s,s:i,s:I,s:I,s:o,s:I,s:s,s:b,s:i}", "tag",
		      m->tag, "created", m->created, "mem_mib", (json_int_t)m->mem_mib, "vcpus",
		      (int)m->vcpus, "kernel", m->kernel, "parent", m->parent[0] ? m->parent : NULL,
		      "memory", m->mem_diff ? "diff" : "full", "chain_depth",
		      snapshot_chain_depth(m), "logical_bytes", (json_int_t)(m->mem_mib * MIB),
		      "physical_bytes", (json_int_t)snapshot_disk_bytes(dir), "dependents", arr,
		      "kept_running", (json_int_t)kept_running(tag), "dir", dir, "vsock",
		      m->dev.vsock, "agent_port", (int)m->agent_port);
	free(m);
	return o;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static int do_ls(bool json)
{
	char home[PATH_MAX], dir[PATH_MAX + 16];
	json_t *arr = json_array();
	char **tags = NULL;
	size_t n = 0, cap = 0;
	struct dirent *e;
	DIR *dp;

	if (snapshot_home(home, sizeof(home)))
		return 1;
	snprintf(dir, sizeof(dir), "%s/snapshots", home);
	dp = opendir(dir);
	while (dp && (e = readdir(dp))) {
		if (!snapshot_tag_valid(e->d_name))
			continue;
		if (n == cap) {
			char **t = realloc(tags, (cap = cap ? cap * 2 : 16) * sizeof(*tags));

			if (!t)
				break;
			tags = t;
		}
		tags[n++] = strdup(e->d_name);
	}
	if (dp)
		closedir(dp);
	if (n)
		qsort(tags, n, sizeof(*tags), cmp_str);
	for (size_t i = 0; i < n; i++) {
		json_t *o = tags[i] ? describe(tags[i]) : NULL;

		if (o)
			json_array_append_new(arr, o);
		else if (tags[i])
			json_array_append_new(
			    arr, json_pack("{s:s,s:s}", "tag", tags[i], "state", "damaged"));
		free(tags[i]);
	}
	free(tags);
	if (json) {
		cli_print_json(arr);
	} else if (json_array_size(arr)) {
		size_t i;
		json_t *o;

		printf("%-24s %-20s %7s %-4s %-20s %5s %9s %4s\n", "TAG", "CREATED", "MEM", "KIND",
		       "PARENT", "DEPTH", "DISK", "KEPT");
		json_array_foreach(arr, i, o)
		{
			const char *parent = json_string_value(json_object_get(o, "parent"));

			if (!json_object_get(o, "created")) {
				printf("%-24s (damaged: snapshot.json cannot be read)\n",
				       json_string_value(json_object_get(o, "tag")));
				continue;
			}
			printf("%-24s %-20s %4lldMiB %-4s %-20s %5lld %6.1fMiB %4lld\n",
			       json_string_value(json_object_get(o, "tag")),
			       json_string_value(json_object_get(o, "created")),
			       json_integer_value(json_object_get(o, "mem_mib")),
			       json_string_value(json_object_get(o, "memory")),
			       parent ? parent : "-",
			       json_integer_value(json_object_get(o, "chain_depth")),
			       json_integer_value(json_object_get(o, "physical_bytes")) / 1048576.0,
			       json_integer_value(json_object_get(o, "kept_running")));
		}
	} else {
		printf("no snapshots in %s (make one with 'forkd snapshot --tag T --image py')\n",
		       dir);
	}
	json_decref(arr);
	return 0;
}

static int do_info(const char *tag, bool json)
{
	json_t *o = describe(tag);
	const char *key;
	json_t *v;

	if (!o) {
		char dir[PATH_MAX];

		if (!snapshot_dir(tag, dir, sizeof(dir)) && access(dir, F_OK) < 0)
			fprintf(stderr,
				"forkd snapshot info: error: no snapshot '%s' (see 'forkd "
				"snapshot ls')\n",
				tag);
		return 1;
	}
	if (json) {
		cli_print_json(o);
	} else {
		json_object_foreach(o, key, v)
		{
			char *text = json_is_string(v) ? NULL : json_dumps(v, JSON_ENCODE_ANY);

			printf("%-15s %s\n", key, text ? text : json_string_value(v));
			free(text);
		}
	}
	json_decref(o);
	return 0;
}

/* Delete tag (and, with cascade, its dependents first). 0, or 1 after one
 * error line. */
static int rm_one(const char *tag, bool cascade, json_t *deleted, int depth)
{
	char dir[PATH_MAX], gone[PATH_MAX + 64], deps[MAX_DEPS][SNAPSHOT_TAG_MAX + 1];
	size_t kept;
	int nd, err;

	if (snapshot_dir(tag, dir, sizeof(dir)))
		return 1;
	if (access(dir, F_OK) < 0) {
		fprintf(stderr,
			"forkd snapshot rm: error: no snapshot '%s' (see 'forkd snapshot "
			"ls')\n",
			tag);
		return 1;
	}
	if ((kept = kept_running(tag))) {
		fprintf(stderr,
			"forkd snapshot rm: error: %zu kept child%s still run from '%s'; stop "
			"them first ('forkd kill --tag %s')\n",
			kept, kept == 1 ? "" : "ren", tag, tag);
		return 1;
	}
	nd = snapshot_dependents(tag, deps, MAX_DEPS);
	if (nd > 0 && !cascade) {
		fprintf(stderr,
			"forkd snapshot rm: error: '%s' is needed by %d diff branch%s (e.g. '%s'); "
			"delete those first, flatten them with 'forkd snapshot compact --from %s "
			"--to NEW', or add --cascade\n",
			tag, nd, nd == 1 ? "" : "es", deps[0], deps[0]);
		return 1;
	}
	if (nd > MAX_DEPS || depth > SNAPSHOT_MAX_DEPTH) {
		fprintf(stderr, "forkd snapshot rm: error: '%s' has too many dependents\n", tag);
		return 1;
	}
	for (int i = 0; i < nd; i++)
		if (rm_one(deps[i], cascade, deleted, depth + 1))
			return 1;
	/* Out of the tag's name first, so no child starts from half of it. */
	snprintf(gone, sizeof(gone), "%.*s/.rm-%s-%d", (int)(strrchr(dir, '/') - dir), dir, tag,
		 (int)getpid());
	if (rename(dir, gone) < 0) {
		fprintf(stderr, "forkd snapshot rm: error: rename %s: %s\n", dir, strerror(errno));
		return 1;
	}
	err = file_remove_tree(gone);
	if (err)
		fprintf(stderr, "forkd snapshot rm: warning: %s is left: %s\n", gone,
			strerror(-err));
	json_array_append_new(deleted, json_string(tag));
	return 0;
}

int cmd_snapshot_store(int argc, char **argv)
{
	const struct option opts[] = {
	    {"json", no_argument, NULL, 'j'},
	    {"cascade", no_argument, NULL, 'c'},
	    {"help", no_argument, NULL, 'h'},
	    {0},
	};
	const char *verb = argv[0];
	char full_verb[32];
	bool json = false, cascade = false;
	json_t *deleted;
	int opt, rc = 0;

	snprintf(full_verb, sizeof(full_verb), "snapshot %s", verb);
	optind = 1;
	while ((opt = cli_getopt(argc, argv, "h", opts, full_verb)) != -1) {
		if (opt == 'h') {
			store_usage(stdout);
			return 0;
		} else if (opt == 'j') {
			json = true;
		} else if (opt == 'c' && !strcmp(verb, "rm")) {
			cascade = true;
		} else {
			cli_usage_error(full_verb, "option --cascade is for 'snapshot rm'");
		}
	}
	if (!strcmp(verb, "ls")) {
		if (optind != argc)
			cli_usage_error("snapshot", "snapshot ls takes no arguments");
		return do_ls(json);
	}
	if (optind == argc)
		cli_usage_error("snapshot", "snapshot %s needs a TAG", verb);
	for (int i = optind; i < argc; i++)
		if (!snapshot_tag_valid(argv[i]))
			cli_usage_error("snapshot", "invalid tag '%s'", argv[i]);
	if (!strcmp(verb, "info")) {
		if (argc - optind != 1)
			cli_usage_error("snapshot", "snapshot info takes one TAG");
		return do_info(argv[optind], json);
	}
	deleted = json_array();
	for (int i = optind; i < argc && !rc; i++) {
		char dir[PATH_MAX];

		/* Already gone with an earlier tag's --cascade. */
		if (i > optind && !snapshot_dir(argv[i], dir, sizeof(dir)) &&
		    access(dir, F_OK) < 0) {
			for (size_t k = 0; k < json_array_size(deleted); k++)
				if (!strcmp(json_string_value(json_array_get(deleted, k)), argv[i]))
					goto next;
		}
		rc = rm_one(argv[i], cascade, deleted, 0);
	next:;
	}
	if (json) {
		cli_print_json(deleted);
	} else {
		for (size_t k = 0; k < json_array_size(deleted); k++)
			printf("deleted snapshot %s\n",
			       json_string_value(json_array_get(deleted, k)));
	}
	json_decref(deleted);
	return rc;
}
