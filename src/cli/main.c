#include <fcntl.h>
#include <getopt.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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
    {"mcp", "serve sandboxes as MCP tools on stdin/stdout (for AI-agent hosts)", cmd_mcp},
    {"bench", "time spawn, ping, exec, eval, branch, fan-out against a daemon", cmd_bench},
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

void cli_print_json(json_t *o)
{
	char *s = json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(9));

	if (s)
		printf("%s\n", s);
	free(s);
}

int cli_json_begin(void)
{
	int fd;

	fflush(stdout);
	/* Close-on-exec; a forked supervisor closes it itself. */
	fd = fcntl(STDOUT_FILENO, F_DUPFD_CLOEXEC, 3);
	if (fd < 0 || dup2(STDERR_FILENO, STDOUT_FILENO) < 0) {
		log_errno("--json: dup of stdout");
		if (fd >= 0)
			close(fd);
		return -1;
	}
	return fd;
}

void cli_json_emit(int fd, json_t *o)
{
	char *s = json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(9));

	if (s && (dprintf(fd, "%s\n", s) < 0))
		log_errno("--json: write");
	free(s);
	json_decref(o);
	close(fd);
}

uint64_t cli_num(const char *verb, const char *opt, const char *arg, uint64_t min, uint64_t max)
{
	uint64_t v;

	if (parse_u64(arg, &v) || v < min || v > max)
		cli_usage_error(verb, "%s wants a number from %llu to %llu, got '%s'", opt,
				(unsigned long long)min, (unsigned long long)max, arg);
	return v;
}

int cli_getopt(int argc, char **argv, const char *shortopts, const struct option *longopts,
	       const char *verb)
{
	char spec[64];
	const char *bad;
	int c;

	/* A leading ':' tells a missing value (':') from an unknown option. */
	if (shortopts[0] == '+' || shortopts[0] == '-')
		snprintf(spec, sizeof(spec), "%c:%s", shortopts[0], shortopts + 1);
	else
		snprintf(spec, sizeof(spec), ":%s", shortopts);
	opterr = 0;
	c = getopt_long(argc, argv, spec, longopts, NULL);
	if (c != '?' && c != ':')
		return c;
	/* The argument getopt stopped at: argv[optind - 1] once it moved past
	 * it (long options, a short one at the end of its word). */
	bad = optind > 0 && optind <= argc ? argv[optind - 1] : "?";
	if (c == ':')
		cli_usage_error(verb, "option %s needs a value", bad);
	if (!strncmp(bad, "--", 2) && optopt)
		cli_usage_error(verb, "option %.*s takes no value", (int)strcspn(bad, "="), bad);
	if (!strncmp(bad, "--", 2))
		cli_usage_error(verb, "unknown option %.*s", (int)strcspn(bad, "="), bad);
	cli_usage_error(verb, "unknown option -%c", optopt);
}

int cmd_version(int argc, char **argv)
{
	if (argc > 1 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
		printf("usage: forkd version [--json]\n\nPrint forkd's version (--json: "
		       "{\"version\": ...}).\n");
		return 0;
	}
	if (argc > 1 && !strcmp(argv[1], "--json")) {
		json_t *o = json_pack("{s:s}", "version", FORKD_VERSION);

		cli_print_json(o);
		json_decref(o);
		return 0;
	}
	if (argc > 1)
		cli_usage_error("version", "unknown argument '%s'", argv[1]);
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
		if (!strcmp(argv[i], commands[c].name)) {
			log_set_name(commands[c].name);
			return commands[c].run(argc - i, argv + i);
		}
	fprintf(stderr, "forkd: error: unknown command '%s'\n", argv[i]);
	usage(stderr);
	return 2;
}
