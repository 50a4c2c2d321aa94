#include "cli/client.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent/agent.h"
#include "cli/cli.h"
#include "cli/http_client.h"
#include "cli/kept_cli.h"
#include "common/util.h"
#include "fork/child.h"
#include "fork/kept.h"

const char client_common_help[] =
    "daemon options:\n"
    "  --daemon-url URL       forkd serve's address, http[s]://HOST[:PORT][/PREFIX]\n"
    "                         (default $FORKD_URL, else " CLIENT_DEFAULT_URL ");\n"
    "                         $FORKD_CA_CERT: a PEM certificate to trust for https\n"
    "  --daemon-token TOKEN   bearer token (default $FORKD_TOKEN)\n"
    "  --daemon-token-file F  read the token from F instead\n";

const char client_kept_help[] =
    "Children of 'forkd fork --keep' (ids k-XXXXXXXX) are handled here, without\n"
    "the daemon. When no daemon URL is given (neither --daemon-url nor\n"
    "$FORKD_URL) and nothing listens at the default one, only they are\n"
    "handled (a note on stderr says so).\n"
    "  --no-daemon            only the kept children; never ask a daemon\n";

const char client_target_help[] =
    "target (one of):\n"
    "  --sandbox ID           a sandbox of the daemon, or a child of 'forkd fork\n"
    "                         --keep' (k-XXXXXXXX, through its run directory)\n"
    "  --run-dir DIR          a child's run directory: DIR/vsock.sock, no daemon\n"
    "  --vsock PATH           a child's vsock socket, no daemon\n";

static char token_buf[4200];

void client_init(struct client *c, const char *verb)
{
	memset(c, 0, sizeof(*c));
	c->verb = verb;
	c->url_default = !(getenv("FORKD_URL") && *getenv("FORKD_URL"));
	c->url = c->url_default ? CLIENT_DEFAULT_URL : getenv("FORKD_URL");
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
bool client_opt(struct client *c, int opt)
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

/* The token a daemon on this host made for itself (`forkd serve` without
 * --token-file: <its default state dir>/token), for a daemon URL on
 * loopback only: a local secret never goes to another host. NULL when
 * there is none to read. */
static const char *default_token(const char *url)
{
	static char buf[4097];
	const char *host = strstr(url, "://");
	char dir[PATH_MAX], path[PATH_MAX + 8];
	FILE *f;
	size_t n, hlen;

	host = host ? host + 3 : url;
	hlen = host[0] == '[' ? strcspn(host, "]") + 1 : strcspn(host, ":/");
	/* The whole host name: "localhost.example.com" or "127.0.0.1.nip.io"
	 * are other hosts. */
	if (!((hlen == 9 && !strncmp(host, "localhost", 9)) ||
	      (hlen == 5 && !strncmp(host, "[::1]", 5)) ||
	      (hlen >= 7 && !strncmp(host, "127.", 4) && strspn(host, "0123456789.") == hlen)))
		return NULL;
	/* The daemon's own rule for its state directory. */
	if (util_state_dir(dir, sizeof(dir), NULL, NULL))
		return NULL;
	snprintf(path, sizeof(path), "%s/token", dir);
	f = fopen(path, "re");
	if (!f)
		return NULL;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
		n--;
	buf[n] = 0;
	return n ? buf : NULL;
}

/* One request to the daemon. Returns the HTTP status (its body parsed into
 * *out when JSON), or prints why it failed and returns -1. */
int client_call(const struct client *c, const char *method, const char *path, json_t *body,
		int timeout_ms, json_t **out)
{
	struct http_resp r;
	char err[512], *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
	const char *token = c->token && *c->token ? c->token : default_token(c->url);
	int e;

	*out = NULL;
	e = http_request(c->url, token, method, path, "application/json", text,
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

int client_api_error(const struct client *c, int status, json_t *o)
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

const char *client_str(json_t *o, const char *k)
{
	const char *s = json_string_value(json_object_get(o, k));

	return s ? s : "-";
}

/* One line per sandbox: NETNS is its network namespace ("-": none), MEM its
 * memory limit in MiB ("-": none), OOM "yes" when the kernel's OOM killer
 * ended it. */
void client_sandbox_row(json_t *o)
{
	json_t *mem = json_object_get(o, "memory_limit_mib");
	char mib[24] = "-";

	if (json_is_integer(mem))
		snprintf(mib, sizeof(mib), "%lld", (long long)json_integer_value(mem));
	printf("%-24s %-16s %5lld  %-8s %8lld  %-16s %6s  %-3s  %s\n", client_str(o, "id"),
	       client_str(o, "snapshot_tag"),
	       (long long)json_integer_value(json_object_get(o, "index")), client_str(o, "state"),
	       (long long)json_integer_value(json_object_get(o, "pid")), client_str(o, "netns"),
	       mib, json_is_true(json_object_get(o, "oom_killed")) ? "yes" : "no",
	       client_str(o, "created_at"));
}

void client_sandbox_header(void)
{
	printf("%-24s %-16s %5s  %-8s %8s  %-16s %6s  %-3s  %s\n", "ID", "SNAPSHOT", "INDEX",
	       "STATE", "PID", "NETNS", "MEM", "OOM", "CREATED");
}

void client_note_no_daemon(const struct client *c)
{
	fprintf(stderr,
		"forkd %s: note: no daemon at %s (connection refused); only the kept "
		"children of 'forkd fork --keep'\n",
		c->verb, c->url);
}

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
		st = client_call(c, "POST", path, args, timeout_ms + 20000, res);
		if (st < 0)
			return FAILED;
		if (st == 200)
			return DONE;
		if (st == 422)
			return REFUSED;
		client_api_error(c, st, *res);
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

bool client_agent_op(const struct client *c, const char *op, json_t *args, int timeout_ms,
		     json_t **res)
{
	enum outcome o = agent_op_raw(c, op, args, timeout_ms, res);

	json_decref(args);
	if (o == REFUSED) {
		client_api_error(c, 0, *res);
		json_decref(*res);
		*res = NULL;
	}
	return o == DONE;
}

void client_need_target(const struct client *c)
{
	if (!!c->sandbox + !!c->run_dir + !!c->vsock != 1)
		cli_usage_error(c->verb, "give one of --sandbox ID, --run-dir DIR, --vsock PATH");
}

int client_target_usage(const char *verb, const char *synopsis, const char *text)
{
	printf("usage: forkd %s %s\n\n%s\n%s\n%s", verb, synopsis, text, client_target_help,
	       client_common_help);
	return 0;
}
