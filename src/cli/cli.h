/* The forkd command line: one verb per file, dispatched from main.c. */
#ifndef FORKD_CLI_CLI_H
#define FORKD_CLI_CLI_H

#include "common/log.h"

struct cli_command {
	const char *name;
	const char *summary;
	int (*run)(int argc, char **argv); /* argv[0] is the verb */
};

/* Print "forkd: error: ..." and exit(2): a usage error. Only CLI code may. */
void cli_usage_error(const char *verb, const char *fmt, ...) __printf(2, 3)
	__attribute__((noreturn));

int cmd_vm(int argc, char **argv);
int cmd_version(int argc, char **argv);

#endif
