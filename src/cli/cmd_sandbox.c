/* spawn, ls, kill: sandboxes of `forkd serve`, and for ls and kill also
 * the children of `forkd fork --keep`, which need no daemon. */
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/client.h"
#include "cli/kept_cli.h"
#include "common/util.h"
#include "fork/child.h"
#include "fork/kept.h"
#include "snapshot/snapshot.h"

int cmd_spawn(int argc, char **argv)
{
	static const struct option opts[] = {
	    COMMON_OPTS,
	    {"tag", required_argument, NULL, O_TAG},
	    {"count", required_argument, NULL, 'n'},
	    {"live-fork", no_argument, NULL, O_LIVE},
	    {"hugepages", no_argument, NULL, O_HUGE},
	    {"per-child-netns", no_argument, NULL, O_NETNS},
	    {"memory-limit-mib", required_argument, NULL, O_MEMLIM},
	    {0},
	};
	struct client c;
	json_t *body = json_object(), *out;
	const char *tag = NULL;
	uint64_t n = 1, mem;
	int opt, st;

	client_init(&c, "spawn");
	optind = 1;
	while ((opt = cli_getopt(argc, argv, "n:h", opts, "spawn")) != -1) {
		if (client_opt(&c, opt))
			continue;
		switch (opt) {
		case O_TAG:
			tag = optarg;
			break;
		case 'n':
			n = cli_num("spawn", "-n", optarg, 1, 1000);
			break;
		case O_LIVE:
			json_object_set_new(body, "live_fork", json_true());
			break;
		case O_HUGE:
			json_object_set_new(body, "hugepages", json_true());
			break;
		case O_NETNS:
			json_object_set_new(body, "per_child_netns", json_true());
			break;
		case O_MEMLIM:
			/* The range is the daemon's to check (and say). */
			mem = cli_num("spawn", "--memory-limit-mib", optarg, 0, UINT32_MAX);
			json_object_set_new(body, "memory_limit_mib",
					    json_integer((json_int_t)mem));
			break;
		case 'h':
			printf("usage: forkd spawn --tag TAG [-n N] [options]\n\n"
			       "Ask the daemon for N sandboxes forked from snapshot TAG; prints\n"
			       "one line per sandbox (or the JSON list with --json).\n\n"
			       "options:\n"
			       "  --tag TAG              snapshot to fork\n"
			       "  -n, --count N          sandboxes, 1 to 1000 (default 1)\n"
			       "  --live-fork            RAM in a memfd copy (for live branching)\n"
			       "  --hugepages            with --live-fork: 2 MiB pages\n"
			       "  --per-child-netns      a network namespace per sandbox,\n"
			       "                         forkd-child-N, guest 10.42.0.2 inside\n"
			       "                         (see 'forkd netns --help')\n"
			       "  --memory-limit-mib M   memory cgroup per sandbox, 16 to 1048576\n"
			       "                         MiB; one over it is OOM-killed alone\n"
			       "  --json                 print the daemon's JSON\n\n%s",
			       client_common_help);
			json_decref(body);
			return 0;
		default:
			cli_usage_error("spawn", "unknown option");
		}
	}
	if (optind != argc)
		cli_usage_error("spawn", "unexpected argument '%s'", argv[optind]);
	if (!tag)
		cli_usage_error("spawn", "--tag is required");
	json_object_set_new(body, "snapshot_tag", json_string(tag));
	json_object_set_new(body, "n", json_integer((json_int_t)n));
	st = client_call(&c, "POST", "/v1/sandboxes", body, 600000, &out);
	json_decref(body);
	if (st < 0)
		return 1;
	if (st != 201) {
		client_api_error(&c, st, out);
		json_decref(out);
		return 1;
	}
	if (c.json) {
		cli_print_json(out);
	} else {
		size_t i;
		json_t *o;

		client_sandbox_header();
		json_array_foreach(out, i, o) client_sandbox_row(o);
	}
	json_decref(out);
	return 0;
}

int cmd_ls(int argc, char **argv)
{
	static const struct option opts[] = {
	    COMMON_OPTS,
	    {"tag", required_argument, NULL, O_TAG},
	    {"no-daemon", no_argument, NULL, O_NODAEMON},
	    {0},
	};
	char path[128] = "/v1/sandboxes";
	const char *tag = NULL;
	bool no_daemon = false, down = false;
	struct client c;
	json_t *out = NULL, *kept, *o;
	size_t i;
	int opt, st, ret = 0;

	client_init(&c, "ls");
	optind = 1;
	while ((opt = cli_getopt(argc, argv, "h", opts, "ls")) != -1) {
		if (client_opt(&c, opt))
			continue;
		if (opt == O_TAG) {
			if (!snapshot_tag_valid(optarg))
				cli_usage_error("ls", "'%s' is not a valid tag", optarg);
			tag = optarg;
			snprintf(path, sizeof(path), "/v1/sandboxes?tag=%s", optarg);
		} else if (opt == O_NODAEMON) {
			no_daemon = true;
		} else if (opt == 'h') {
			printf("usage: forkd ls [--tag TAG] [--json] [--no-daemon]\n\nList the "
			       "daemon's sandboxes (all, or those of snapshot TAG): id, snapshot,\n"
			       "index, state, pid, network namespace, memory limit (MiB),\n"
			       "whether the OOM killer ended it, creation time. '-' means\n"
			       "none; --json prints all the daemon's fields. Then the kept\n"
			       "children of 'forkd fork --keep': id, snapshot, index, state\n"
			       "(running, or exited: its pid is gone or another process), pid,\n"
			       "creation time, run directory; in the --json list they are the\n"
			       "objects with \"kind\": \"kept\".\n\n%s\n%s",
			       client_kept_help, client_common_help);
			return 0;
		} else {
			cli_usage_error("ls", "unknown option");
		}
	}
	if (optind != argc)
		cli_usage_error("ls", "unexpected argument '%s'", argv[optind]);
	kept = json_array();
	if (kept_cli_list(tag, kept) < 0)
		ret = 1;
	if (!no_daemon) {
		c.daemon_soft = true;
		c.daemon_down = &down;
		st = client_call(&c, "GET", path, NULL, 30000, &out);
		if (st < 0 && !down) {
			json_decref(kept);
			return 1;
		}
		if (down)
			client_note_no_daemon(&c);
		if (st >= 0 && st != 200) {
			client_api_error(&c, st, out);
			json_decref(out);
			json_decref(kept);
			return 1;
		}
	}
	if (c.json) {
		json_t *all = out ? out : json_array();

		json_array_extend(all, kept);
		cli_print_json(all);
		if (!out)
			json_decref(all);
	} else {
		if (out) {
			client_sandbox_header();
			json_array_foreach(out, i, o) client_sandbox_row(o);
			if (json_array_size(kept))
				printf("\n");
		}
		kept_cli_print(kept);
	}
	json_decref(out);
	json_decref(kept);
	return ret;
}

/* results: with --json, where each stopped child's object goes (the
 * array is printed once at the end); else NULL, a line each. */
static int kill_one(const struct client *c, const char *id, json_t *results)
{
	char path[96];
	json_t *out;
	int st;

	snprintf(path, sizeof(path), "/v1/sandboxes/%s", id);
	st = client_call(c, "DELETE", path, NULL, 30000, &out);
	if (st < 0)
		return 1;
	if (st != 200) {
		client_api_error(c, st, out);
		json_decref(out);
		return 1;
	}
	if (results)
		json_array_append(results, out);
	else
		printf("killed %s (was %s)\n", id, client_str(out, "state_before"));
	json_decref(out);
	return 0;
}

/* --all or --tag: the kept children, then the daemon's sandboxes. */
static int kill_matching(struct client *c, const char *tag, bool no_daemon, json_t *results)
{
	json_t *kept = json_array(), *out = NULL, *o;
	bool down = false;
	int fails = 0, n;
	size_t i;

	n = kept_cli_list(tag, kept);
	if (n < 0)
		fails++;
	json_array_foreach(kept, i, o) fails +=
	    kept_cli_kill(c->verb, client_str(o, "id"), results);
	n = (int)json_array_size(kept);
	json_decref(kept);
	if (!no_daemon) {
		char path[128];
		int st;

		c->daemon_soft = true;
		c->daemon_down = &down;
		snprintf(path, sizeof(path), "/v1/sandboxes%s%s", tag ? "?tag=" : "",
			 tag ? tag : "");
		st = client_call(c, "GET", path, NULL, 30000, &out);
		c->daemon_soft = false;
		if (down)
			client_note_no_daemon(c);
		else if (st != 200) {
			if (st >= 0)
				client_api_error(c, st, out);
			json_decref(out);
			return fails + 1;
		}
		json_array_foreach(out, i, o) fails += kill_one(c, client_str(o, "id"), results);
		n += (int)json_array_size(out);
		json_decref(out);
	}
	if (!n && !c->json)
		printf("no sandboxes to kill\n");
	return fails;
}

int cmd_kill(int argc, char **argv)
{
	static const struct option opts[] = {
	    COMMON_OPTS,
	    {"tag", required_argument, NULL, O_TAG},
	    {"all", no_argument, NULL, O_ALL},
	    {"no-daemon", no_argument, NULL, O_NODAEMON},
	    {0},
	};
	const char *tag = NULL;
	bool all = false, no_daemon = false;
	json_t *results;
	struct client c;
	int opt, fails = 0;

	client_init(&c, "kill");
	optind = 1;
	while ((opt = cli_getopt(argc, argv, "h", opts, "kill")) != -1) {
		if (client_opt(&c, opt))
			continue;
		if (opt == O_TAG) {
			tag = optarg;
			if (!snapshot_tag_valid(tag))
				cli_usage_error("kill", "'%s' is not a valid tag", tag);
		} else if (opt == O_ALL) {
			all = true;
		} else if (opt == O_NODAEMON) {
			no_daemon = true;
		} else if (opt == 'h') {
			printf(
			    "usage: forkd kill ID... | --all | --tag TAG [--json] [--no-daemon]\n\n"
			    "Stop sandboxes and remove them from the daemon, and stop kept\n"
			    "children (k-XXXXXXXX) and remove their registry entries: a kept\n"
			    "child gets SIGTERM, then SIGKILL after 3 s, only while its pid\n"
			    "still is the process that was started (start time checked).\n"
			    "--all and --tag cover both. --json prints an array: an object per\n"
			    "child stopped ([] when none matched).\n\n"
			    "%s\n%s",
			    client_kept_help, client_common_help);
			return 0;
		} else {
			cli_usage_error("kill", "unknown option");
		}
	}
	if ((optind < argc) + all + !!tag != 1)
		cli_usage_error("kill", "give sandbox ids, or --all, or --tag TAG (one of them)");
	results = c.json ? json_array() : NULL;
	for (int i = optind; i < argc; i++)
		if (!child_id_valid(argv[i]) && !kept_id_valid(argv[i]))
			cli_usage_error("kill",
					"'%s' is not a sandbox id (sb-... of the daemon, or "
					"k-XXXXXXXX of a kept child; see 'forkd ls')",
					argv[i]);
	if (optind < argc) {
		for (int i = optind; i < argc; i++) {
			if (kept_id_valid(argv[i]))
				fails += kept_cli_kill("kill", argv[i], results);
			else if (no_daemon)
				cli_usage_error("kill",
						"%s is the daemon's, and --no-daemon was given",
						argv[i]);
			else
				fails += kill_one(&c, argv[i], results);
		}
	} else {
		fails = kill_matching(&c, tag, no_daemon, results);
	}
	if (results)
		cli_print_json(results);
	json_decref(results);
	return fails ? 1 : 0;
}
