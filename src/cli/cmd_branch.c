/* `forkd snapshot --from-sandbox ID`: branch a running child into a new
 * snapshot (fork/branch.h). A kept child (k-...) is branched here, over
 * its control socket; a daemon sandbox through the daemon's API. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/client.h"
#include "cli/kept_cli.h"
#include "common/util.h"
#include "fork/branch.h"
#include "fork/child.h"
#include "fork/kept.h"
#include "snapshot/snapshot_image.h"

enum { O_FROM = 5000, O_MODE, O_BTAG };

static void branch_usage(FILE *f)
{
	fprintf(f,
		"usage: forkd snapshot --from-sandbox ID [--mode full|diff|live] [--tag TAG]\n"
		"                      [--json] [daemon options]\n"
		"\n"
		"Branch a running sandbox: write a new snapshot of it as it is now (memory,\n"
		"vCPUs, devices and its disk's copy-on-write overlay, all of one instant),\n"
		"from which children fork like from any other snapshot ('forkd fork --tag\n"
		"TAG', POST /v1/sandboxes) and which can be branched again. The sandbox\n"
		"runs on. ID is a kept child (k-XXXXXXXX, from 'forkd fork --keep'; run\n"
		"as root, like the child) or a daemon sandbox (sb-..., via the daemon).\n"
		"\n"
		"options:\n"
		"  --from-sandbox ID   the running sandbox to branch (required)\n"
		"  --mode MODE         live (default): the guest stops only while its vCPU\n"
		"                      and device state is saved; its memory is written by\n"
		"                      a copy-on-write fork of the VMM while it runs on;\n"
		"                      full: stopped while all its memory is written;\n"
		"                      diff: stopped while the pages it changed since its\n"
		"                      snapshot are written; the branch then needs that\n"
		"                      snapshot (a chain; 'forkd snapshot compact' flattens)\n"
		"  --tag TAG           the new snapshot's tag (default SOURCE-XXXXXXXX)\n"
		"  --json              print the result as one JSON object\n"
		"%s"
		"  -h, --help          this text\n"
		"\n"
		"Exit status 0 when the snapshot is in place; 1 otherwise, and then\n"
		"nothing of it is left and the sandbox runs on.\n",
		client_common_help);
}

static int branch_kept(const struct client *c, const char *id, enum branch_mode mode,
		       const char *tag)
{
	struct branch_result res;
	struct child_rec r;
	char why[600];
	int err;

	if (kept_cli_live("snapshot", id, &r))
		return 1;
	log_error_clear();
	err = branch_take(r.run_dir, r.tag, tag, mode, &res);
	if (err) {
		if (!log_take_error(why, sizeof(why)))
			snprintf(why, sizeof(why), "%s", strerror(-err));
		fprintf(stderr, "forkd snapshot: error: branch of %s: %s\n", id, why);
		return 1;
	}
	if (c->json) {
		json_t *o =
		    json_pack("{s:s,s:s,s:s,s:s,s:I,s:I,s:I,s:f}", "tag", res.tag, "parent", r.tag,
			      "sandbox", id, "mode", branch_mode_name(mode), "pause_us",
			      (json_int_t)res.pause_us, "bytes", (json_int_t)res.bytes, "pages",
			      (json_int_t)res.pages, "seconds", res.total_ns / 1e9);

		cli_print_json(o);
		json_decref(o);
	} else {
		printf("branched %s (from snapshot %s) into snapshot %s: %s, paused %.3f ms, "
		       "%llu KiB of memory written, %.2f s in all\n",
		       id, r.tag, res.tag, branch_mode_name(mode), res.pause_us / 1e3,
		       (unsigned long long)(res.bytes / 1024), res.total_ns / 1e9);
	}
	return 0;
}

static int branch_daemon(const struct client *c, const char *id, enum branch_mode mode,
			 const char *tag)
{
	char path[160];
	json_t *body = json_pack("{s:s}", "mode", branch_mode_name(mode)), *out = NULL;
	int st;

	if (tag)
		json_object_set_new(body, "tag", json_string(tag));
	snprintf(path, sizeof(path), "/v1/sandboxes/%s/branch", id);
	st = client_call(c, "POST", path, body, 15 * 60 * 1000, &out);
	json_decref(body);
	if (st < 0)
		return 1;
	if (st != 201) {
		client_api_error(c, st, out);
		json_decref(out);
		return 1;
	}
	if (c->json)
		cli_print_json(out);
	else
		printf("branched %s into snapshot %s: %s, paused %.3f ms\n", id,
		       json_string_value(json_object_get(out, "tag")), branch_mode_name(mode),
		       json_number_value(json_object_get(out, "pause_us")) / 1e3);
	json_decref(out);
	return 0;
}

int cmd_branch(int argc, char **argv)
{
	const struct option opts[] = {
	    {"from-sandbox", required_argument, NULL, O_FROM},
	    {"mode", required_argument, NULL, O_MODE},
	    {"tag", required_argument, NULL, O_BTAG},
	    COMMON_OPTS,
	    {0},
	};
	enum branch_mode mode = BRANCH_LIVE;
	const char *id = NULL, *tag = NULL;
	struct client c;
	int opt;

	client_init(&c, "snapshot");
	optind = 1;
	while ((opt = cli_getopt(argc, argv, "h", opts, "snapshot")) != -1) {
		if (client_opt(&c, opt))
			continue;
		if (opt == 'h') {
			branch_usage(stdout);
			return 0;
		} else if (opt == O_FROM) {
			id = optarg;
		} else if (opt == O_MODE) {
			if (branch_mode_parse(optarg, &mode))
				cli_usage_error("snapshot",
						"--mode is full, diff or live, not '%s'", optarg);
		} else if (opt == O_BTAG) {
			tag = optarg;
		} else {
			cli_usage_error("snapshot", "unknown option (see 'forkd snapshot "
						    "--from-sandbox ID --help')");
		}
	}
	if (optind != argc)
		cli_usage_error("snapshot", "unexpected argument '%s'", argv[optind]);
	if (!id)
		cli_usage_error("snapshot", "--from-sandbox ID is required");
	if (tag && !snapshot_tag_valid(tag))
		cli_usage_error("snapshot",
				"invalid tag '%s': use 1-64 of A-Z a-z 0-9 _ . - , starting with a "
				"letter, digit or _, and no '..'",
				tag);
	if (kept_id_valid(id))
		return branch_kept(&c, id, mode, tag);
	if (!child_id_valid(id))
		cli_usage_error("snapshot",
				"'%s' is not a sandbox id (sb-... of the daemon, or k-XXXXXXXX of "
				"a kept child; see 'forkd ls')",
				id);
	return branch_daemon(&c, id, mode, tag);
}

static void compact_usage(FILE *f)
{
	fprintf(f, "usage: forkd snapshot compact --from TAG --to NEW [--json]\n"
		   "\n"
		   "Flatten snapshot TAG, a diff branch or a chain of them, into snapshot NEW\n"
		   "with all of its memory in its own memory.bin: children of NEW need none\n"
		   "of TAG's parents, which can then be deleted. TAG is left as it is.\n"
		   "\n"
		   "options:\n"
		   "  --from TAG   the snapshot to flatten (required)\n"
		   "  --to NEW     the new snapshot's tag (required; must not exist)\n"
		   "  --json       print the result as one JSON object\n"
		   "  -h, --help   this text\n");
}

int cmd_snapshot_compact(int argc, char **argv)
{
	const struct option opts[] = {
	    {"from", required_argument, NULL, O_FROM},
	    {"to", required_argument, NULL, O_BTAG},
	    {"json", no_argument, NULL, O_MODE},
	    {"help", no_argument, NULL, 'h'},
	    {0},
	};
	const char *from = NULL, *to = NULL;
	uint64_t t0 = now_ns();
	bool json = false;
	char why[600];
	int opt, err;

	optind = 1;
	while ((opt = cli_getopt(argc, argv, "h", opts, "snapshot compact")) != -1) {
		if (opt == 'h') {
			compact_usage(stdout);
			return 0;
		} else if (opt == O_FROM) {
			from = optarg;
		} else if (opt == O_BTAG) {
			to = optarg;
		} else if (opt == O_MODE) {
			json = true;
		} else {
			cli_usage_error("snapshot compact", "unknown option (see --help)");
		}
	}
	if (optind != argc)
		cli_usage_error("snapshot compact", "unexpected argument '%s'", argv[optind]);
	if (!from || !to)
		cli_usage_error("snapshot compact", "--from TAG and --to NEW are required");
	if (!snapshot_tag_valid(from) || !snapshot_tag_valid(to))
		cli_usage_error("snapshot compact", "invalid tag '%s'",
				snapshot_tag_valid(from) ? to : from);
	log_error_clear();
	err = snapshot_compact(from, to);
	if (err) {
		if (!log_take_error(why, sizeof(why)))
			snprintf(why, sizeof(why), "%s", strerror(-err));
		fprintf(stderr, "forkd snapshot compact: error: %s\n", why);
		return 1;
	}
	if (json) {
		json_t *o = json_pack("{s:s,s:s,s:f}", "tag", to, "from", from, "seconds",
				      (now_ns() - t0) / 1e9);

		cli_print_json(o);
		json_decref(o);
	} else {
		printf("compacted %s into snapshot %s in %.2f s\n", from, to,
		       (now_ns() - t0) / 1e9);
	}
	return 0;
}
