/* Client verbs: spawn, ls, kill (through `forkd serve`, and for the
 * children of `forkd fork --keep` without it) and ping, exec, eval
 * (through the daemon with --sandbox, or straight to one child's vsock
 * socket with --run-dir / --vsock or --sandbox of a kept child). */
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/kept_cli.h"
#include "common/util.h"
#include "agent/agent.h"
#include "cli/http_client.h"
#include "fork/child.h"
#include "snapshot/snapshot.h"

#define DEFAULT_URL "http://127.0.0.1:8889"

struct client {
	const char *verb;
	const char *url, *token;
	const char *sandbox, *run_dir, *vsock;
	bool json;
	double timeout;		     /* seconds; 0: the verb's default */
	bool url_default;	     /* neither --daemon-url nor $FORKD_URL */
	bool daemon_soft;	     /* ls, kill: a refused default daemon is no error... */
	bool *daemon_down;	     /* ...but noted here */
	char kept_run_dir[PATH_MAX]; /* --sandbox of a kept child: its run dir */
};

static const char common_help[] =
    "daemon options:\n"
    "  --daemon-url URL       forkd serve's address (default $FORKD_URL, else\n"
    "                         " DEFAULT_URL ")\n"
    "  --daemon-token TOKEN   bearer token (default $FORKD_TOKEN)\n"
    "  --daemon-token-file F  read the token from F instead\n";

static const char kept_help[] =
    "Children of 'forkd fork --keep' (ids k-XXXXXXXX) are handled here, without\n"
    "the daemon. When no daemon URL is given (neither --daemon-url nor\n"
    "$FORKD_URL) and nothing listens at the default one, only they are\n"
    "handled (a note on stderr says so).\n"
    "  --no-daemon            only the kept children; never ask a daemon\n";

static const char target_help[] =
    "target (one of):\n"
    "  --sandbox ID           a sandbox of the daemon, or a child of 'forkd fork\n"
    "                         --keep' (k-XXXXXXXX, through its run directory)\n"
    "  --run-dir DIR          a child's run directory: DIR/vsock.sock, no daemon\n"
    "  --vsock PATH           a child's vsock socket, no daemon\n";

enum {
	O_URL = 4000,
	O_TOKEN,
	O_TOKEN_FILE,
	O_JSON,
	O_SANDBOX,
	O_RUNDIR,
	O_VSOCK,
	O_TIMEOUT,
	O_TAG,
	O_ALL,
	O_LIVE,
	O_HUGE,
	O_NETNS,
	O_MEMLIM,
	O_CWD,
	O_ENV,
	O_NODAEMON,
};

#define COMMON_OPTS                                                                                \
	{"daemon-url", required_argument, NULL, O_URL},                                            \
	    {"daemon-token", required_argument, NULL, O_TOKEN},                                    \
	    {"daemon-token-file", required_argument, NULL, O_TOKEN_FILE},                          \
	    {"json", no_argument, NULL, O_JSON},                                                   \
	{                                                                                          \
		"help", no_argument, NULL, 'h'                                                     \
	}

#define TARGET_OPTS                                                                                \
	{"sandbox", required_argument, NULL, O_SANDBOX},                                           \
	    {"run-dir", required_argument, NULL, O_RUNDIR},                                        \
	    {"vsock", required_argument, NULL, O_VSOCK},                                           \
	{                                                                                          \
		"timeout-secs", required_argument, NULL, O_TIMEOUT                                 \
	}

static char token_buf[4200];

static void client_init(struct client *c, const char *verb)
{
	memset(c, 0, sizeof(*c));
	c->verb = verb;
	c->url_default = !(getenv("FORKD_URL") && *getenv("FORKD_URL"));
	c->url = c->url_default ? DEFAULT_URL : getenv("FORKD_URL");
	c->token = getenv("FORKD_TOKEN");
}

static void read_token_file(struct client *c, const char *path)
{
	FILE *f = fopen(path, "r");
	size_t n;

	if (!f)
		cli_usage_error(c->verb, "cannot read --daemon-token-file %s: %s", path,
				strerror(errno));
	n = fread(token_buf, 1, sizeof(token_buf) - 1, f);
	fclose(f);
	while (n && (token_buf[n - 1] == '\n' || token_buf[n - 1] == '\r'))
		n--;
	token_buf[n] = 0;
	c->token = token_buf;
}

/* Options every verb shares; returns false for an option it does not know. */
static bool common_opt(struct client *c, int opt)
{
	switch (opt) {
	case O_URL:
		c->url = optarg;
		c->url_default = false;
		return true;
	case O_TOKEN:
		c->token = optarg;
		return true;
	case O_TOKEN_FILE:
		read_token_file(c, optarg);
		return true;
	case O_JSON:
		c->json = true;
		return true;
	case O_SANDBOX:
		if (kept_id_valid(optarg)) {
			/* A kept child: straight to its vsock socket. */
			if (kept_cli_run_dir(c->verb, optarg, c->kept_run_dir,
					     sizeof(c->kept_run_dir)))
				exit(1);
			c->run_dir = c->kept_run_dir;
			return true;
		}
		if (!child_id_valid(optarg))
			cli_usage_error(c->verb,
					"'%s' is not a sandbox id (sb-... of the daemon, or "
					"k-XXXXXXXX of a kept child; see 'forkd ls')",
					optarg);
		c->sandbox = optarg;
		return true;
	case O_RUNDIR:
		c->run_dir = optarg;
		return true;
	case O_VSOCK:
		c->vsock = optarg;
		return true;
	case O_TIMEOUT: {
		char *end;

		c->timeout = strtod(optarg, &end);
		if (*end || !(c->timeout > 0 && c->timeout <= 3600))
			cli_usage_error(c->verb, "--timeout-secs wants 0 < S <= 3600, got '%s'",
					optarg);
		return true;
	}
	}
	return false;
}

/* One request to the daemon. Returns the HTTP status (its body parsed into
 * *out when JSON), or prints why it failed and returns -1. */
static int call_daemon(const struct client *c, const char *method, const char *path, json_t *body,
		       int timeout_ms, json_t **out)
{
	struct http_resp r;
	char err[512], *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
	int e;

	*out = NULL;
	e = http_request(c->url, c->token, method, path, "application/json", text,
			 text ? strlen(text) : 0, timeout_ms, &r, err, sizeof(err));
	free(text);
	if (e == -ECONNREFUSED && c->daemon_soft && c->url_default) {
		*c->daemon_down = true;
		return -1;
	}
	if (e) {
		fprintf(stderr, "forkd %s: error: %s\n", c->verb, err);
		return -1;
	}
	*out = json_loadb(r.body, r.len, 0, NULL);
	if (!*out && r.status != 200) {
		fprintf(stderr, "forkd %s: error: HTTP %d from the daemon: %.200s\n", c->verb,
			r.status, r.body);
		http_resp_free(&r);
		return -1;
	}
	http_resp_free(&r);
	return r.status;
}

static int print_api_error(const struct client *c, int status, json_t *o)
{
	const char *msg = json_string_value(json_object_get(o, "error"));
	const char *tb = json_string_value(json_object_get(o, "traceback"));

	fprintf(stderr, "forkd %s: error: %s", c->verb, msg ? msg : "(no message)");
	if (status > 0)
		fprintf(stderr, " (HTTP %d)", status);
	fprintf(stderr, "\n");
	if (tb)
		fprintf(stderr, "%s%s", tb, tb[0] && tb[strlen(tb) - 1] == '\n' ? "" : "\n");
	if (status == 401)
		fprintf(stderr,
			"  (set FORKD_TOKEN or pass --daemon-token / --daemon-token-file)\n");
	return 1;
}

static void print_json(json_t *o)
{
	char *s = json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER);

	if (s)
		printf("%s\n", s);
	free(s);
}

static const char *str(json_t *o, const char *k)
{
	const char *s = json_string_value(json_object_get(o, k));

	return s ? s : "-";
}

/* One line per sandbox: NETNS is its network namespace ("-": none), MEM its
 * memory limit in MiB ("-": none), OOM "yes" when the kernel's OOM killer
 * ended it. */
static void print_sandbox_row(json_t *o)
{
	json_t *mem = json_object_get(o, "memory_limit_mib");
	char mib[24] = "-";

	if (json_is_integer(mem))
		snprintf(mib, sizeof(mib), "%lld", (long long)json_integer_value(mem));
	printf("%-24s %-16s %5lld  %-8s %8lld  %-16s %6s  %-3s  %s\n", str(o, "id"),
	       str(o, "snapshot_tag"), (long long)json_integer_value(json_object_get(o, "index")),
	       str(o, "state"), (long long)json_integer_value(json_object_get(o, "pid")),
	       str(o, "netns"), mib, json_is_true(json_object_get(o, "oom_killed")) ? "yes" : "no",
	       str(o, "created_at"));
}

static void print_sandbox_header(void)
{
	printf("%-24s %-16s %5s  %-8s %8s  %-16s %6s  %-3s  %s\n", "ID", "SNAPSHOT", "INDEX",
	       "STATE", "PID", "NETNS", "MEM", "OOM", "CREATED");
}

/* ---- spawn, ls, kill ---- */

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
	while ((opt = getopt_long(argc, argv, "n:h", opts, NULL)) != -1) {
		if (common_opt(&c, opt))
			continue;
		switch (opt) {
		case O_TAG:
			tag = optarg;
			break;
		case 'n':
			if (parse_u64(optarg, &n) || n < 1 || n > 1000)
				cli_usage_error("spawn", "-n wants 1 to 1000, got '%s'", optarg);
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
			if (parse_u64(optarg, &mem))
				cli_usage_error("spawn", "--memory-limit-mib wants a number");
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
			       common_help);
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
	st = call_daemon(&c, "POST", "/v1/sandboxes", body, 600000, &out);
	json_decref(body);
	if (st < 0)
		return 1;
	if (st != 201) {
		print_api_error(&c, st, out);
		json_decref(out);
		return 1;
	}
	if (c.json) {
		print_json(out);
	} else {
		size_t i;
		json_t *o;

		print_sandbox_header();
		json_array_foreach(out, i, o) print_sandbox_row(o);
	}
	json_decref(out);
	return 0;
}

/* A refused default daemon, for ls and kill: say so once. */
static void note_no_daemon(const struct client *c)
{
	fprintf(stderr,
		"forkd %s: note: no daemon at %s (connection refused); only the kept "
		"children of 'forkd fork --keep'\n",
		c->verb, c->url);
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
	while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		if (common_opt(&c, opt))
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
			       kept_help, common_help);
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
		st = call_daemon(&c, "GET", path, NULL, 30000, &out);
		if (st < 0 && !down) {
			json_decref(kept);
			return 1;
		}
		if (down)
			note_no_daemon(&c);
		if (st >= 0 && st != 200) {
			print_api_error(&c, st, out);
			json_decref(out);
			json_decref(kept);
			return 1;
		}
	}
	if (c.json) {
		json_t *all = out ? out : json_array();

		json_array_extend(all, kept);
		print_json(all);
		if (!out)
			json_decref(all);
	} else {
		if (out) {
			print_sandbox_header();
			json_array_foreach(out, i, o) print_sandbox_row(o);
			if (json_array_size(kept))
				printf("\n");
		}
		kept_cli_print(kept);
	}
	json_decref(out);
	json_decref(kept);
	return ret;
}

static int kill_one(const struct client *c, const char *id)
{
	char path[96];
	json_t *out;
	int st;

	snprintf(path, sizeof(path), "/v1/sandboxes/%s", id);
	st = call_daemon(c, "DELETE", path, NULL, 30000, &out);
	if (st < 0)
		return 1;
	if (st != 200) {
		print_api_error(c, st, out);
		json_decref(out);
		return 1;
	}
	if (c->json)
		print_json(out);
	else
		printf("killed %s (was %s)\n", id, str(out, "state_before"));
	json_decref(out);
	return 0;
}

/* --all or --tag: the kept children, then the daemon's sandboxes. */
static int kill_matching(struct client *c, const char *tag, bool no_daemon)
{
	json_t *kept = json_array(), *out = NULL, *o;
	bool down = false;
	int fails = 0, n;
	size_t i;

	n = kept_cli_list(tag, kept);
	if (n < 0)
		fails++;
	json_array_foreach(kept, i, o) fails += kept_cli_kill(c->verb, str(o, "id"), c->json);
	n = (int)json_array_size(kept);
	json_decref(kept);
	if (!no_daemon) {
		char path[128];
		int st;

		c->daemon_soft = true;
		c->daemon_down = &down;
		snprintf(path, sizeof(path), "/v1/sandboxes%s%s", tag ? "?tag=" : "",
			 tag ? tag : "");
		st = call_daemon(c, "GET", path, NULL, 30000, &out);
		c->daemon_soft = false;
		if (down)
			note_no_daemon(c);
		else if (st != 200) {
			if (st >= 0)
				print_api_error(c, st, out);
			json_decref(out);
			return fails + 1;
		}
		json_array_foreach(out, i, o) fails += kill_one(c, str(o, "id"));
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
	struct client c;
	int opt, fails = 0;

	client_init(&c, "kill");
	optind = 1;
	while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		if (common_opt(&c, opt))
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
			    "--all and --tag cover both. --json prints one object per child.\n\n"
			    "%s\n%s",
			    kept_help, common_help);
			return 0;
		} else {
			cli_usage_error("kill", "unknown option");
		}
	}
	if ((optind < argc) + all + !!tag != 1)
		cli_usage_error("kill", "give sandbox ids, or --all, or --tag TAG (one of them)");
	for (int i = optind; i < argc; i++)
		if (!child_id_valid(argv[i]) && !kept_id_valid(argv[i]))
			cli_usage_error("kill",
					"'%s' is not a sandbox id (sb-... of the daemon, or "
					"k-XXXXXXXX of a kept child; see 'forkd ls')",
					argv[i]);
	if (optind < argc) {
		for (int i = optind; i < argc; i++) {
			if (kept_id_valid(argv[i]))
				fails += kept_cli_kill("kill", argv[i], c.json);
			else if (no_daemon)
				cli_usage_error("kill",
						"%s is the daemon's, and --no-daemon was given",
						argv[i]);
			else
				fails += kill_one(&c, argv[i]);
		}
	} else {
		fails = kill_matching(&c, tag, no_daemon);
	}
	return fails ? 1 : 0;
}

/* ---- ping, exec, eval: through the daemon or straight to the agent ---- */

enum outcome { DONE, REFUSED, FAILED };

/* One agent op. DONE: *res is the agent's answer fields. REFUSED: the
 * agent said ok:false (*res holds error/traceback). FAILED: printed. */
static enum outcome agent_op_raw(const struct client *c, const char *op, json_t *args,
				 int timeout_ms, json_t **res)
{
	*res = NULL;
	if (c->sandbox) {
		char path[96];
		int st;

		snprintf(path, sizeof(path), "/v1/sandboxes/%s/%s", c->sandbox, op);
		st = call_daemon(c, "POST", path, args, timeout_ms + 20000, res);
		if (st < 0)
			return FAILED;
		if (st == 200)
			return DONE;
		if (st == 422)
			return REFUSED;
		print_api_error(c, st, *res);
		json_decref(*res);
		*res = NULL;
		return FAILED;
	} else {
		char path[PATH_MAX + 16], err[AGENT_ERR_LEN];
		json_t *req = json_deep_copy(args);
		int e;

		if (c->vsock)
			snprintf(path, sizeof(path), "%s", c->vsock);
		else
			snprintf(path, sizeof(path), "%s/vsock.sock", c->run_dir);
		json_object_set_new(req, "op", json_string(op));
		e = agent_call(path, req, res, timeout_ms, err, sizeof(err));
		json_decref(req);
		if (e) {
			fprintf(stderr, "forkd %s: error: %s\n", c->verb, err);
			return FAILED;
		}
		if (!json_is_true(json_object_get(*res, "ok")))
			return REFUSED;
		json_object_del(*res, "ok");
		json_object_del(*res, "id");
		return DONE;
	}
}

/* Run one agent op and consume args. True: *res holds the answer fields;
 * false: the failure or the agent's refusal has been printed. */
static bool agent_op(const struct client *c, const char *op, json_t *args, int timeout_ms,
		     json_t **res)
{
	enum outcome o = agent_op_raw(c, op, args, timeout_ms, res);

	json_decref(args);
	if (o == REFUSED) {
		print_api_error(c, 0, *res);
		json_decref(*res);
		*res = NULL;
	}
	return o == DONE;
}

static void need_target(const struct client *c)
{
	if (!!c->sandbox + !!c->run_dir + !!c->vsock != 1)
		cli_usage_error(c->verb, "give one of --sandbox ID, --run-dir DIR, --vsock PATH");
}

static int target_verb_usage(const char *verb, const char *synopsis, const char *text)
{
	printf("usage: forkd %s %s\n\n%s\n%s\n%s", verb, synopsis, text, target_help, common_help);
	return 0;
}

int cmd_ping(int argc, char **argv)
{
	static const struct option opts[] = {COMMON_OPTS, TARGET_OPTS, {0}};
	struct client c;
	json_t *args, *res;
	uint64_t t0;
	int opt;

	client_init(&c, "ping");
	optind = 1;
	while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		if (common_opt(&c, opt))
			continue;
		if (opt == 'h')
			return target_verb_usage(
			    "ping", "TARGET [--json]",
			    "Ask a sandbox's agent for a pong (pid, numpy "
			    "version, warm flag).\n"
			    "  --timeout-secs S       give up after S (default 10)");
		cli_usage_error("ping", "unknown option");
	}
	if (optind != argc)
		cli_usage_error("ping", "unexpected argument '%s'", argv[optind]);
	need_target(&c);
	args = json_object();
	t0 = now_ns();
	if (!agent_op(&c, "ping", args, c.timeout ? (int)(c.timeout * 1000) : 10000, &res))
		return 1;
	if (c.json) {
		print_json(res);
	} else {
		json_t *idx = json_object_get(res, "index");
		char ix[24] = "-";

		if (json_is_integer(idx))
			snprintf(ix, sizeof(ix), "%lld", (long long)json_integer_value(idx));
		printf("pong from %s: agent pid %lld, numpy %s, warm %s, index %s (%.2f ms)\n",
		       c.sandbox ? c.sandbox
		       : c.vsock ? c.vsock
				 : c.run_dir,
		       (long long)json_integer_value(json_object_get(res, "pid")),
		       str(res, "numpy"),
		       json_is_true(json_object_get(res, "warm")) ? "true" : "false", ix,
		       (double)(now_ns() - t0) / 1e6);
	}
	json_decref(res);
	return 0;
}

int cmd_exec(int argc, char **argv)
{
	static const struct option opts[] = {
	    COMMON_OPTS,
	    TARGET_OPTS,
	    {"cwd", required_argument, NULL, O_CWD},
	    {"env", required_argument, NULL, O_ENV},
	    {0},
	};
	json_t *args = json_object(), *env = NULL, *av, *res;
	double timeout;
	struct client c;
	int opt, code;

	client_init(&c, "exec");
	optind = 1;
	/* '+': stop at the first non-option, so the command keeps its own. */
	while ((opt = getopt_long(argc, argv, "+h", opts, NULL)) != -1) {
		if (common_opt(&c, opt))
			continue;
		if (opt == O_CWD) {
			json_object_set_new(args, "cwd", json_string(optarg));
		} else if (opt == O_ENV) {
			char *eq = strchr(optarg, '=');

			if (!eq || eq == optarg)
				cli_usage_error("exec", "--env wants NAME=VALUE, got '%s'", optarg);
			if (!env)
				env = json_object();
			*eq = 0;
			json_object_set_new(env, optarg, json_string(eq + 1));
			*eq = '=';
		} else if (opt == 'h') {
			json_decref(args);
			json_decref(env);
			return target_verb_usage(
			    "exec", "TARGET [options] -- COMMAND [ARG...]",
			    "Run COMMAND in the sandbox; print its stdout and stderr and exit\n"
			    "with its exit status (124 when it timed out).\n"
			    "  --timeout-secs S       kill it after S seconds (default 60)\n"
			    "  --cwd DIR              working directory in the guest\n"
			    "  --env NAME=VALUE       environment (repeatable; replaces the\n"
			    "                         agent's environment when given)\n"
			    "  --json                 print the whole result as JSON");
		} else {
			cli_usage_error("exec", "unknown option");
		}
	}
	need_target(&c);
	if (optind == argc)
		cli_usage_error("exec",
				"no command given (forkd exec --sandbox ID -- CMD ARGS...)");
	av = json_array();
	for (int i = optind; i < argc; i++)
		json_array_append_new(av, json_string(argv[i]));
	json_object_set_new(args, "argv", av);
	if (env)
		json_object_set_new(args, "env", env);
	timeout = c.timeout ? c.timeout : 60;
	json_object_set_new(args, "timeout", json_real(timeout));
	if (!agent_op(&c, "exec", args, (int)(timeout * 1000) + 15000, &res))
		return 1;
	if (c.json) {
		print_json(res);
		json_decref(res);
		return 0;
	}
	fputs(str(res, "stdout"), stdout);
	fflush(stdout);
	fputs(json_string_value(json_object_get(res, "stderr")) ?: "", stderr);
	code = (int)json_integer_value(json_object_get(res, "exit_code"));
	if (json_is_true(json_object_get(res, "timed_out"))) {
		fprintf(stderr, "forkd exec: the command timed out after %g s and was killed\n",
			timeout);
		code = 124;
	} else if (code < 0) {
		code = 128 + -code; /* killed by a signal, as a shell reports it */
	}
	json_decref(res);
	return code & 0xff;
}

int cmd_eval(int argc, char **argv)
{
	static const struct option opts[] = {COMMON_OPTS, TARGET_OPTS, {0}};
	struct client c;
	json_t *args, *res, *result;
	const char *out;
	int opt;

	client_init(&c, "eval");
	optind = 1;
	while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		if (common_opt(&c, opt))
			continue;
		if (opt == 'h')
			return target_verb_usage(
			    "eval", "TARGET 'CODE'",
			    "Evaluate Python in the sandbox's warm interpreter (numpy is np);\n"
			    "print what it printed, then the value's repr. State persists\n"
			    "between calls. An exception prints its traceback and exits 1.\n"
			    "  --timeout-secs S       give up after S (default 60)\n"
			    "  --json                 print the whole result as JSON");
		cli_usage_error("eval", "unknown option");
	}
	need_target(&c);
	if (argc - optind != 1)
		cli_usage_error("eval", "give the code as one argument, e.g. forkd eval --sandbox "
					"ID '1 + 1'");
	args = json_pack("{s:s}", "code", argv[optind]);
	if (!args)
		cli_usage_error("eval", "the code is not valid UTF-8");
	if (c.sandbox && c.timeout)
		json_object_set_new(args, "timeout", json_real(c.timeout));
	if (!agent_op(&c, "eval", args, c.timeout ? (int)(c.timeout * 1000) : 60000, &res))
		return 1;
	if (c.json) {
		print_json(res);
	} else {
		out = json_string_value(json_object_get(res, "stdout"));
		if (out)
			fputs(out, stdout);
		result = json_object_get(res, "result");
		if (json_is_string(result))
			printf("%s\n", json_string_value(result));
	}
	json_decref(res);
	return 0;
}
