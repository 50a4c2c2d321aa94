/* The forkd command line: one verb per file, dispatched from main.c. */
#ifndef FORKD_CLI_CLI_H
#define FORKD_CLI_CLI_H

#include <stdint.h>

#include "common/log.h"

struct cli_command {
	const char *name;
	const char *summary;
	int (*run)(int argc, char **argv); /* argv[0] is the verb */
};

/* Print "forkd: error: ..." and exit(2): a usage error. Only CLI code may. */
void cli_usage_error(const char *verb, const char *fmt, ...) __printf(2, 3)
    __attribute__((noreturn));

/* `opt`'s value as a number from min to max, else a usage error naming
 * the option, its range and what was given. */
uint64_t cli_num(const char *verb, const char *opt, const char *arg, uint64_t min, uint64_t max);

struct json_t;
/* Print o as indented JSON (keys in order) and a newline: every --json. */
void cli_print_json(struct json_t *o);

/* --json where a verb also prints progress: send this process's stdout to
 * stderr (progress lines, the guest console, processes it starts) and
 * return an fd (close-on-exec) on the original stdout for cli_json_emit(),
 * or -1 (printed). */
int cli_json_begin(void);
/* Print o (taken) on fd, then close fd. */
void cli_json_emit(int fd, struct json_t *o);

struct option;
/* getopt_long() that never returns '?' or ':': an unknown option, or one
 * missing its value, is a usage error naming it (one line, the verb's
 * prefix). shortopts as getopt_long's, without a leading ':'. */
int cli_getopt(int argc, char **argv, const char *shortopts, const struct option *longopts,
	       const char *verb);

struct vm;

/* SIGINT/SIGTERM stop this VM (status VM_EXIT_SIGNAL). */
void cli_stop_on_signals(struct vm *vm);
/* One line: how long, why, status, exits and assists. */
void cli_report_stop(struct vm *vm, int status, uint64_t t0_ns);

int cmd_vm(int argc, char **argv);
int cmd_snapshot(int argc, char **argv);
/* `forkd snapshot --from-sandbox`, which cmd_snapshot hands over to. */
int cmd_branch(int argc, char **argv);
/* `forkd snapshot compact`, likewise. */
int cmd_snapshot_compact(int argc, char **argv);
/* `forkd snapshot ls|info|rm` (argv[0] is the sub-verb). */
int cmd_snapshot_store(int argc, char **argv);
/* `forkd snapshot pack|unpack` (argv[0] is the sub-verb). */
int cmd_snapshot_pack(int argc, char **argv);
int cmd_fork(int argc, char **argv);
int cmd_netns(int argc, char **argv);
int cmd_doctor(int argc, char **argv);
int cmd_cleanup(int argc, char **argv);
int cmd_image(int argc, char **argv);
int cmd_serve(int argc, char **argv);
int cmd_spawn(int argc, char **argv);
int cmd_ls(int argc, char **argv);
int cmd_kill(int argc, char **argv);
int cmd_ping(int argc, char **argv);
int cmd_exec(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_version(int argc, char **argv);
int cmd_where(int argc, char **argv);
int cmd_bench(int argc, char **argv);
/* `forkd mcp`: execs python3 -m forkd.mcp; returns only on failure. */
int cmd_mcp(int argc, char **argv);

#endif
