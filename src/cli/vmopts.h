/* Options that describe a VM to boot, shared by `vm run` and `snapshot`. */
#ifndef FORKD_CLI_VMOPTS_H
#define FORKD_CLI_VMOPTS_H

#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>

#include "fork/machine.h"
#include "vmm/boot.h"

struct vmopts {
	struct machine_spec spec;
	struct boot_opts boot;
	const char *console;   /* path or "-" */
	uint64_t timeout_secs; /* 0: not given (no limit) */
	/* Given on the command line (a verb may pick other defaults). */
	bool mem_set, vcpus_set;
};

/* getopt_long entries for the shared options (terminated by a zero entry),
 * and their help text. */
extern const struct option vmopts_long[];
void vmopts_help(FILE *f);
/* out = the shared options, then extra (zero-terminated), then --help ('h'),
 * then the terminating zero entry. cap: entries in out. */
void vmopts_table(struct option *out, size_t cap, const struct option *extra);
void vmopts_init(struct vmopts *o);
/* Handle option c (from getopt_long with vmopts_long); false if c is not a
 * shared option. Usage errors exit through cli_usage_error(verb). */
bool vmopts_parse(struct vmopts *o, const char *verb, int c, char *arg);
/* After parsing: --kernel given, etc. Opens the console (*console_fd). */
int vmopts_finish(struct vmopts *o, const char *verb, int *console_fd);

#endif
