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

#endif
