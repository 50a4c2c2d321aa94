/* ping, exec, eval: one child's guest agent, through the daemon
 * (--sandbox sb-...) or straight to the child's vsock socket (--run-dir,
 * --vsock, or --sandbox k-... of a kept child). */
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/client.h"
#include "common/util.h"

int cmd_ping(int argc, char **argv)
{
	static const struct option opts[] = {COMMON_OPTS, TARGET_OPTS, {0}};
	struct client c;
	json_t *args, *res;
	uint64_t t0;
	int opt;

	client_init(&c, "ping");
	optind = 1;
	while ((opt = cli_getopt(argc, argv, "h", opts, "ping")) != -1) {
		if (client_opt(&c, opt))
			continue;
		if (opt == 'h')
			return client_target_usage(
			    "ping", "TARGET [--json]",
			    "Ask a sandbox's agent for a pong (pid, numpy "
			    "version, warm flag).\n"
			    "  --timeout-secs S       give up after S (default 10)");
		cli_usage_error("ping", "unknown option");
	}
	if (optind != argc)
		cli_usage_error("ping", "unexpected argument '%s'", argv[optind]);
	client_need_target(&c);
	args = json_object();
	t0 = now_ns();
	if (!client_agent_op(&c, "ping", args, c.timeout ? (int)(c.timeout * 1000) : 10000, &res))
		return 1;
	if (c.json) {
		cli_print_json(res);
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
		       client_str(res, "numpy"),
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
	while ((opt = cli_getopt(argc, argv, "+h", opts, "exec")) != -1) {
		if (client_opt(&c, opt))
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
			return client_target_usage(
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
	client_need_target(&c);
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
	if (!client_agent_op(&c, "exec", args, (int)(timeout * 1000) + 15000, &res))
		return 1;
	if (c.json) {
		cli_print_json(res);
		json_decref(res);
		return 0;
	}
	fputs(client_str(res, "stdout"), stdout);
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
	while ((opt = cli_getopt(argc, argv, "h", opts, "eval")) != -1) {
		if (client_opt(&c, opt))
			continue;
		if (opt == 'h')
			return client_target_usage(
			    "eval", "TARGET 'CODE'",
			    "Evaluate Python in the sandbox's warm interpreter (numpy is np);\n"
			    "print what it printed, then the value's repr. State persists\n"
			    "between calls. An exception prints its traceback and exits 1.\n"
			    "  --timeout-secs S       give up after S (default 60)\n"
			    "  --json                 print the whole result as JSON");
		cli_usage_error("eval", "unknown option");
	}
	client_need_target(&c);
	if (argc - optind != 1)
		cli_usage_error("eval", "give the code as one argument, e.g. forkd eval --sandbox "
					"ID '1 + 1'");
	args = json_pack("{s:s}", "code", argv[optind]);
	if (!args)
		cli_usage_error("eval", "the code is not valid UTF-8");
	if (c.sandbox && c.timeout)
		json_object_set_new(args, "timeout", json_real(c.timeout));
	if (!client_agent_op(&c, "eval", args, c.timeout ? (int)(c.timeout * 1000) : 60000, &res))
		return 1;
	if (c.json) {
		cli_print_json(res);
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
