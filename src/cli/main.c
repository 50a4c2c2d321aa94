#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "common/util.h"

#ifndef FORKD_VERSION
#error "FORKD_VERSION comes from the VERSION file (Makefile)"
#endif

static const struct cli_command commands[] = {
    {"vm", "boot and run one virtual machine (forkd vm run --help)", cmd_vm},
    {"snapshot",
     "write a snapshot (boot until warm, or branch a running sandbox); "
     "snapshot ls|info|rm|compact|pack|unpack",
     cmd_snapshot},
    {"fork", "start N children from a snapshot (copy-on-write memory)", cmd_fork},
    {"netns", "make, list, remove per-child network namespaces", cmd_netns},
    {"doctor", "check this host for everything forkd needs", cmd_doctor},
    {"cleanup", "list (--yes: remove) leftovers of ended runs", cmd_cleanup},
    {"image", "build guest images from Debian packages (forkd image --help)", cmd_image},
    {"serve", "run the controller daemon (REST API on 127.0.0.1:8889)", cmd_serve},
    {"spawn", "ask the daemon for N sandboxes from a snapshot", cmd_spawn},
    {"ls", "list kept children (fork --keep) and the daemon's sandboxes", cmd_ls},
    {"kill", "stop kept children and sandboxes (ids, --all or --tag)", cmd_kill},
    {"ping", "ping a sandbox's agent (daemon or vsock socket)", cmd_ping},
    {"exec", "run a command in a sandbox", cmd_exec},
    {"eval", "evaluate Python in a sandbox's warm interpreter", cmd_eval},
    {"where", "print the directories forkd uses here (snapshots, images, daemon)", cmd_where},
    {"version", "print the version", cmd_version},
};

static void usage(FILE *f)
{
	fprintf(f, "usage: forkd [-v|--verbose] <command> [options]\n\n"
		   "forkd boots a Linux microVM on /dev/kvm and forks it into many.\n\n"
		   "commands:\n");
	for (size_t i = 0; i < ARRAY_SIZE(commands); i++)
		fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].summary);
	fprintf(f, "\nRun 'forkd <command> --help' (or 'forkd help <command>') for a command's "
		   "options.\n");
}

void cli_usage_error(const char *verb, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "forkd %s: error: ", verb);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\nRun 'forkd %s --help' for usage.\n", verb);
	exit(2);
}

int cmd_version(int argc, char **argv)
{
	if (argc > 1 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
		printf("usage: forkd version\n\nPrint forkd's version.\n");
		return 0;
	}
	printf("forkd %s\n", FORKD_VERSION);
	return 0;
}

int main(int argc, char **argv)
{
	int i = 1;

	setvbuf(stdout, NULL, _IOLBF, 0);
	while (i < argc && argv[i][0] == '-') {
		if (!strcmp(argv[i], "-v") || !strcmp(argv[i], "--verbose")) {
			log_set_level(LOG_DEBUG);
		} else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
			usage(stdout);
			return 0;
		} else if (!strcmp(argv[i], "--version")) {
			return cmd_version(1, argv);
		} else {
			fprintf(stderr, "forkd: error: unknown option %s\n", argv[i]);
			usage(stderr);
			return 2;
		}
		i++;
	}
	if (i == argc) {
		usage(stderr);
		return 2;
	}
	if (!strcmp(argv[i], "help")) {
		/* forkd help [VERB]: the same as forkd VERB --help */
		if (i + 1 < argc) {
			for (size_t c = 0; c < ARRAY_SIZE(commands); c++)
				if (!strcmp(argv[i + 1], commands[c].name))
					return commands[c].run(
					    2, (char *[]){argv[i + 1], "--help", NULL});
			fprintf(stderr, "forkd help: error: unknown command '%s'\n", argv[i + 1]);
			usage(stderr);
			return 2;
		}
		usage(stdout);
		return 0;
	}
	for (size_t c = 0; c < ARRAY_SIZE(commands); c++)
		if (!strcmp(argv[i], commands[c].name))
			return commands[c].run(argc - i, argv + i);
	fprintf(stderr, "forkd: error: unknown command '%s'\n", argv[i]);
	usage(stderr);
	return 2;
}
