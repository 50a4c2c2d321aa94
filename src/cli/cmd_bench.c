/* forkd bench: the representative cycle against a live daemon, timed per
 * step as the client sees it (one HTTP round trip each): spawn 1, ping,
 * exec, eval, branch, spawn N from the branch, cleanup. Repeated --reps
 * times; p50/p99/min/max per step, as a table or --json. Everything a
 * repetition made is removed before the next one starts, and after a
 * failure. */
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/client.h"
#include "common/util.h"
#include "fork/child.h"
#include "snapshot/snapshot.h"

enum step { S_SPAWN, S_PING, S_EXEC, S_EVAL, S_BRANCH, S_FANOUT, S_CLEANUP, NR_STEPS };

static const char *const step_name[NR_STEPS] = {
    "spawn 1", "ping", "exec", "eval", "branch", "spawn N from branch", "cleanup",
};

#define MAX_REPS 1000
#define MAX_N	 100

struct bench {
	struct client c;
	const char *tag, *mode;
	uint64_t n, reps;
	bool netns, json;
	double *ms[NR_STEPS]; /* [reps] each */
	size_t count[NR_STEPS];
	bool branch_missing; /* the daemon has no branch route */
	/* What the current repetition made, removed by cleanup(). */
	json_t *ids;
	char branch_tag[SNAPSHOT_TAG_MAX + 1];
};

static void bench_usage(FILE *f)
{
	fprintf(f,
		"usage: forkd bench [--tag TAG] [-n N] [--reps R] [--json] [options]\n"
		"\n"
		"Time the cycle a user of the daemon goes through, step by step, against a\n"
		"running 'forkd serve': spawn 1 sandbox from snapshot TAG, ping its agent,\n"
		"exec 'true', eval '1+1', branch it (POST .../branch), spawn N sandboxes\n"
		"from the branch, then delete them all and the branch. Each step is one\n"
		"request, timed as this client sees it; R repetitions give p50 and p99.\n"
		"The first line says what runs the sandboxes (the daemon's /version):\n"
		"hardware KVM, KVM-PVM (guest kernel code emulated) or forkd's KVM lab\n"
		"(an emulated CPU: compare figures only as ratios measured in one run).\n"
		"TAG must be a snapshot of an image with forkd's agent (forkd snapshot\n"
		"--tag py --image py); a step that fails stops the run, names the step,\n"
		"and what was made is removed.\n"
		"\n"
		"options:\n"
		"  --tag TAG              snapshot to spawn from (default py)\n"
		"  -n, --count N          sandboxes spawned from the branch (default 4, at\n"
		"                         most %d)\n"
		"  --reps R               repetitions of the cycle (default 5)\n"
		"  --mode M               branch mode: live, full or diff (default diff)\n"
		"  --per-child-netns      spawn with a network namespace per sandbox (needed\n"
		"                         for snapshots with a network device)\n"
		"  --json                 print {host, tag, n, reps, steps: [{step, samples,\n"
		"                         p50_ms, p99_ms, min_ms, max_ms}]} instead\n"
		"\n%s",
		MAX_N, client_common_help);
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

/* The value at percentile p of sorted v[0..n) (nearest rank). */
static double pct(const double *v, size_t n, int p)
{
	size_t k = (n * (size_t)p + 99) / 100;

	return v[k ? k - 1 : 0];
}

/* One request; its time goes to step s when it answers `want`. On any
 * other answer the error is printed (naming the step) and -1 returned. */
static int timed(struct bench *b, enum step s, const char *method, const char *path, json_t *body,
		 int want, json_t **out)
{
	uint64_t t0 = now_ns();
	json_t *res = NULL;
	int st = client_call(&b->c, method, path, body, 600000, &res);

	if (st == want) {
		b->ms[s][b->count[s]++] = (now_ns() - t0) / 1e6;
		if (out)
			*out = res;
		else
			json_decref(res);
		return 0;
	}
	if (st == 404 && s == S_BRANCH &&
	    !strncmp(json_string_value(json_object_get(res, "error")) ?: "", "no such endpoint",
		     16)) {
		/* A daemon from before branching. */
		b->branch_missing = true;
	} else if (st >= 0) {
		fprintf(stderr, "forkd bench: error: step '%s' (%s %s): HTTP %d: %s\n",
			step_name[s], method, path, st,
			json_string_value(json_object_get(res, "error"))
			    ? json_string_value(json_object_get(res, "error"))
			    : "(no message)");
	} else {
		fprintf(stderr, "forkd bench: error: step '%s' failed (above)\n", step_name[s]);
	}
	json_decref(res);
	return -1;
}

/* Spawn n from tag (step s); the ids go to b->ids. */
static int spawn(struct bench *b, enum step s, const char *tag, uint64_t n)
{
	json_t *body = json_pack("{s:s, s:I}", "snapshot_tag", tag, "n", (json_int_t)n), *out, *o;
	size_t i;
	int err;

	if (b->netns)
		json_object_set_new(body, "per_child_netns", json_true());
	err = timed(b, s, "POST", "/v1/sandboxes", body, 201, &out);
	json_decref(body);
	if (err)
		return err;
	json_array_foreach(out, i, o)
	{
		const char *id = json_string_value(json_object_get(o, "id"));

		if (id && child_id_valid(id))
			json_array_append_new(b->ids, json_string(id));
	}
	json_decref(out);
	if (json_array_size(b->ids) == 0) {
		fprintf(stderr, "forkd bench: error: step '%s': the daemon answered no sandbox\n",
			step_name[s]);
		return -1;
	}
	return 0;
}

/* DELETE path; 404 counts as gone. 0, or 1 after saying why. */
static int delete_one(struct bench *b, const char *path)
{
	json_t *out = NULL;
	int st = client_call(&b->c, "DELETE", path, NULL, 60000, &out);

	json_decref(out);
	if (st == 200 || st == 404)
		return 0;
	fprintf(stderr, "forkd bench: error: cleanup: DELETE %s: HTTP %d\n", path, st);
	return 1;
}

/* Delete what this repetition made; timed (step cleanup) when all went. */
static int cleanup(struct bench *b, bool time_it)
{
	uint64_t t0 = now_ns();
	char path[128];
	json_t *o;
	size_t i;
	int fails = 0;

	json_array_foreach(b->ids, i, o)
	{
		snprintf(path, sizeof(path), "/v1/sandboxes/%s", json_string_value(o));
		fails += delete_one(b, path);
	}
	json_array_clear(b->ids);
	if (b->branch_tag[0]) {
		snprintf(path, sizeof(path), "/v1/snapshots/%s", b->branch_tag);
		fails += delete_one(b, path);
		b->branch_tag[0] = 0;
	}
	if (time_it && !fails)
		b->ms[S_CLEANUP][b->count[S_CLEANUP]++] = (now_ns() - t0) / 1e6;
	return fails ? -1 : 0;
}

static int one_rep(struct bench *b)
{
	char path[160];
	const char *id;
	json_t *body, *out;
	int err;

	if (spawn(b, S_SPAWN, b->tag, 1))
		return -1;
	id = json_string_value(json_array_get(b->ids, 0));
	snprintf(path, sizeof(path), "/v1/sandboxes/%s/ping", id);
	body = json_object();
	err = timed(b, S_PING, "POST", path, body, 200, NULL);
	json_decref(body);
	if (err)
		return -1;
	snprintf(path, sizeof(path), "/v1/sandboxes/%s/exec", id);
	body = json_pack("{s:[s]}", "argv", "true");
	err = timed(b, S_EXEC, "POST", path, body, 200, &out);
	json_decref(body);
	if (err)
		return -1;
	err = json_integer_value(json_object_get(out, "exit_code")) != 0 ||
	      !json_is_integer(json_object_get(out, "exit_code"));
	json_decref(out);
	if (err) {
		fprintf(stderr, "forkd bench: error: step 'exec': 'true' did not exit 0\n");
		return -1;
	}
	snprintf(path, sizeof(path), "/v1/sandboxes/%s/eval", id);
	body = json_pack("{s:s}", "code", "1+1");
	err = timed(b, S_EVAL, "POST", path, body, 200, &out);
	json_decref(body);
	if (err)
		return -1;
	err = !json_is_string(json_object_get(out, "result")) ||
	      strcmp(json_string_value(json_object_get(out, "result")), "2");
	json_decref(out);
	if (err) {
		fprintf(stderr, "forkd bench: error: step 'eval': 1+1 did not give 2\n");
		return -1;
	}
	if (b->branch_missing)
		return 0;
	snprintf(path, sizeof(path), "/v1/sandboxes/%s/branch", id);
	body = json_pack("{s:s}", "mode", b->mode);
	err = timed(b, S_BRANCH, "POST", path, body, 201, &out);
	json_decref(body);
	if (err)
		return b->branch_missing ? 0 : -1;
	snprintf(b->branch_tag, sizeof(b->branch_tag), "%s",
		 json_string_value(json_object_get(out, "tag"))
		     ? json_string_value(json_object_get(out, "tag"))
		     : "");
	json_decref(out);
	if (!snapshot_tag_valid(b->branch_tag)) {
		b->branch_tag[0] = 0;
		fprintf(stderr, "forkd bench: error: step 'branch': no valid tag in the answer\n");
		return -1;
	}
	return spawn(b, S_FANOUT, b->branch_tag, b->n);
}

static const char *host_kind(struct bench *b)
{
	static char kind[32];
	json_t *out = NULL;
	const char *k;

	int st = client_call(&b->c, "GET", "/version", NULL, 30000, &out);

	snprintf(kind, sizeof(kind), "unknown");
	if (st == 200 && (k = json_string_value(json_object_get(out, "kvm"))))
		snprintf(kind, sizeof(kind), "%s", k);
	else if (st != 200 && st >= 0)
		client_api_error(&b->c, st, out);
	json_decref(out);
	return st == 200 ? kind : NULL; /* else printed */
}

static const char *host_words(const char *kind)
{
	if (!strcmp(kind, "hardware"))
		return "hardware-assisted KVM";
	if (!strcmp(kind, "kvm-pvm"))
		return "KVM-PVM: guest kernel code is emulated, so steps that run it are slow";
	if (!strcmp(kind, "lab"))
		return "forkd's KVM lab: an emulated CPU, compare figures only as ratios "
		       "measured in one run";
	return "unknown (an older daemon)";
}

static void report(struct bench *b, const char *kind)
{
	json_t *steps = json_array();

	for (int s = 0; s < NR_STEPS; s++) {
		size_t n = b->count[s];
		json_t *o = json_pack("{s:s, s:I}", "step", step_name[s], "samples", (json_int_t)n);

		qsort(b->ms[s], n, sizeof(double), cmp_double);
		if (n) {
			json_object_set_new(o, "p50_ms", json_real(pct(b->ms[s], n, 50)));
			json_object_set_new(o, "p99_ms", json_real(pct(b->ms[s], n, 99)));
			json_object_set_new(o, "min_ms", json_real(b->ms[s][0]));
			json_object_set_new(o, "max_ms", json_real(b->ms[s][n - 1]));
		} else if ((s == S_BRANCH || s == S_FANOUT) && b->branch_missing) {
			json_object_set_new(o, "note",
					    json_string("not available: the daemon cannot branch"));
		}
		json_array_append_new(steps, o);
	}
	if (b->json) {
		json_t *o = json_pack("{s:s, s:s, s:I, s:I, s:s, s:o}", "host", kind, "tag", b->tag,
				      "n", (json_int_t)b->n, "reps", (json_int_t)b->reps, "mode",
				      b->mode, "steps", steps);

		cli_print_json(o);
		json_decref(o);
		return;
	}
	printf("%-22s %7s %10s %10s %10s %10s\n", "STEP", "SAMPLES", "P50 MS", "P99 MS", "MIN MS",
	       "MAX MS");
	for (int s = 0; s < NR_STEPS; s++) {
		json_t *o = json_array_get(steps, (size_t)s);

		if (!b->count[s]) {
			printf("%-22s %7s %s\n", step_name[s], "-",
			       json_string_value(json_object_get(o, "note"))
				   ? json_string_value(json_object_get(o, "note"))
				   : "no sample");
			continue;
		}
		printf("%-22s %7zu %10.2f %10.2f %10.2f %10.2f\n", step_name[s], b->count[s],
		       json_real_value(json_object_get(o, "p50_ms")),
		       json_real_value(json_object_get(o, "p99_ms")),
		       json_real_value(json_object_get(o, "min_ms")),
		       json_real_value(json_object_get(o, "max_ms")));
	}
	json_decref(steps);
}

int cmd_bench(int argc, char **argv)
{
	enum { O_REPS = 5000, O_MODE };
	static const struct option opts[] = {
	    COMMON_OPTS,
	    {"tag", required_argument, NULL, O_TAG},
	    {"count", required_argument, NULL, 'n'},
	    {"reps", required_argument, NULL, O_REPS},
	    {"mode", required_argument, NULL, O_MODE},
	    {"per-child-netns", no_argument, NULL, O_NETNS},
	    {0},
	};
	struct bench b = {.tag = "py", .mode = "diff", .n = 4, .reps = 5};
	const char *kind;
	int opt, ret = 0;

	client_init(&b.c, "bench");
	optind = 1;
	while ((opt = cli_getopt(argc, argv, "n:h", opts, "bench")) != -1) {
		if (client_opt(&b.c, opt))
			continue;
		switch (opt) {
		case O_TAG:
			b.tag = optarg;
			if (!snapshot_tag_valid(b.tag))
				cli_usage_error("bench", "'%s' is not a valid snapshot tag", b.tag);
			break;
		case 'n':
			b.n = cli_num("bench", "-n", optarg, 1, MAX_N);
			break;
		case O_REPS:
			b.reps = cli_num("bench", "--reps", optarg, 1, MAX_REPS);
			break;
		case O_MODE:
			if (strcmp(optarg, "live") && strcmp(optarg, "full") &&
			    strcmp(optarg, "diff"))
				cli_usage_error(
				    "bench", "--mode wants live, full or diff, got '%s'", optarg);
			b.mode = optarg;
			break;
		case O_NETNS:
			b.netns = true;
			break;
		case 'h':
			bench_usage(stdout);
			return 0;
		}
	}
	if (optind < argc)
		cli_usage_error("bench", "unexpected argument '%s'", argv[optind]);
	b.json = b.c.json;
	b.ids = json_array();
	for (int s = 0; s < NR_STEPS; s++)
		if (!(b.ms[s] = calloc(b.reps, sizeof(double)))) {
			log_err("out of memory");
			return 1;
		}
	if (!(kind = host_kind(&b))) {
		ret = 1;
		goto out;
	}
	fprintf(stderr,
		"bench: snapshot %s, %llu repetitions, branch mode %s, %llu from the "
		"branch; sandboxes run on %s\n",
		b.tag, (unsigned long long)b.reps, b.mode, (unsigned long long)b.n,
		host_words(kind));
	for (uint64_t r = 0; r < b.reps; r++) {
		uint64_t t0 = now_ns();

		if (one_rep(&b)) {
			(void)cleanup(&b, false);
			ret = 1;
			break;
		}
		if (cleanup(&b, true)) {
			ret = 1;
			break;
		}
		fprintf(stderr, "bench: repetition %llu of %llu took %.1f ms\n",
			(unsigned long long)r + 1, (unsigned long long)b.reps,
			(now_ns() - t0) / 1e6);
	}
	if (!ret) {
		if (!b.json)
			printf("forkd bench: snapshot %s, %llu repetitions, sandboxes on %s\n",
			       b.tag, (unsigned long long)b.reps, host_words(kind));
		report(&b, kind);
	}
out:
	json_decref(b.ids);
	for (int s = 0; s < NR_STEPS; s++)
		free(b.ms[s]);
	return ret;
}
