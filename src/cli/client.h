/* The shared client of the verbs that talk to `forkd serve` or to a
 * child's agent: cmd_sandbox.c (spawn, ls, kill) and cmd_agent.c (ping,
 * exec, eval). One struct client per command: the daemon's URL and token
 * (--daemon-url/$FORKD_URL, --daemon-token/$FORKD_TOKEN), the target of
 * an agent verb (--sandbox, --run-dir, --vsock) and --json. Errors are
 * printed as "forkd VERB: error: ..." on stderr. */
#ifndef FORKD_CLI_CLIENT_H
#define FORKD_CLI_CLIENT_H
#include <getopt.h>
#include <jansson.h>
#include <limits.h>
#include <stdbool.h>

#define CLIENT_DEFAULT_URL "http://127.0.0.1:8889"

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

/* --help sections: daemon options, kept children, agent targets. */
extern const char client_common_help[], client_kept_help[], client_target_help[];

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

/* Defaults from the environment for verb. */
void client_init(struct client *c, const char *verb);
/* Options every verb shares (COMMON_OPTS, TARGET_OPTS); false for one it
 * does not know. Exits with a usage error on a bad value. */
bool client_opt(struct client *c, int opt);
/* One request to the daemon. Returns the HTTP status (its body parsed into
 * *out when JSON), or prints why it failed and returns -1. A refused
 * default daemon of a daemon_soft verb only sets *c->daemon_down. */
int client_call(const struct client *c, const char *method, const char *path, json_t *body,
		int timeout_ms, json_t **out);
/* Print the API's error (and traceback) from o; returns 1. */
int client_api_error(const struct client *c, int status, json_t *o);
/* o's string member k, or "-". */
const char *client_str(json_t *o, const char *k);
/* The table of `forkd ls` and `forkd spawn`. */
void client_sandbox_header(void);
void client_sandbox_row(json_t *o);
/* A refused default daemon, for ls and kill: say so once. */
void client_note_no_daemon(const struct client *c);
/* Run one agent op (through the daemon for --sandbox, else straight to
 * the child's vsock socket) and consume args. True: *res holds the
 * answer's fields; false: the failure or the agent's refusal is printed. */
bool client_agent_op(const struct client *c, const char *op, json_t *args, int timeout_ms,
		     json_t **res);
/* Exactly one of --sandbox, --run-dir, --vsock, or a usage error. */
void client_need_target(const struct client *c);
/* --help of an agent verb. */
int client_target_usage(const char *verb, const char *synopsis, const char *text);
#endif
