/* forkd mcp: the MCP server (Model Context Protocol, stdio) of the Python SDK,
 * sdk/python/forkd/mcp.py, run with this binary's copy of the SDK on
 * PYTHONPATH. This verb only finds the SDK and execs python3: stdin and stdout
 * are the MCP host's, so nothing here may print on stdout. */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "common/util.h"
#include "snapshot/snapshot.h"

static void usage(FILE *f)
{
	fprintf(f,
		"usage: forkd mcp [--daemon-url URL] [--tag TAG] [--python PATH]\n"
		"\n"
		"Serve forkd's sandboxes as MCP tools (Model Context Protocol, JSON-RPC on\n"
		"stdin/stdout) for an AI-agent host: sandbox_create, sandbox_list, sandbox_kill,\n"
		"run_python, run_command, read_file, write_file, list_dir, remove_file,\n"
		"sandbox_branch (docs/MCP.md). The host starts it, e.g. with\n"
		"  {\"command\": \"forkd\", \"args\": [\"mcp\", \"--tag\", \"py\"]}\n"
		"Sandboxes it created are killed when the session ends (stdin closed, SIGTERM).\n"
		"\n"
		"  --daemon-url URL  forkd serve's address (default $FORKD_URL, else\n"
		"                    http://127.0.0.1:8889); the token is $FORKD_TOKEN, else the\n"
		"                    one a daemon on loopback made in its state directory\n"
		"  --tag TAG         the snapshot sandbox_create forks when not told (default\n"
		"                    $FORKD_TAG, else py)\n"
		"  --python PATH     the interpreter (default $FORKD_PYTHON, else python3)\n"
		"\n"
		"It runs 'python3 -m forkd.mcp' with the SDK next to this binary on PYTHONPATH:\n"
		"<build>/../sdk/python, or PREFIX/share/forkd/sdk/python after make install\n"
		"($FORKD_PYTHON_SDK overrides).\n");
}

/* The directory holding the forkd package: $FORKD_PYTHON_SDK, the source
 * tree's sdk/python for <repo>/build/forkd, or an installed <prefix>/bin/forkd's
 * <prefix>/share/forkd/sdk/python. */
static int find_sdk(char *buf, size_t size)
{
	static const char *const rel[] = {
	    "/../sdk/python",
	    "/../share/forkd/sdk/python",
	};
	const char *env = getenv("FORKD_PYTHON_SDK");
	char exe[PATH_MAX], probe[PATH_MAX + 32], *slash;
	ssize_t n;

	if (env && *env) {
		snprintf(probe, sizeof(probe), "%s/forkd/mcp.py", env);
		if (access(probe, R_OK))
			return log_errno("FORKD_PYTHON_SDK=%s: %s", env, probe);
		snprintf(buf, size, "%s", env);
		return 0;
	}
	n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n < 0)
		return log_errno("readlink(/proc/self/exe)");
	exe[n] = '\0';
	slash = strrchr(exe, '/');
	if (slash)
		*slash = '\0';
	for (size_t i = 0; i < ARRAY_SIZE(rel); i++) {
		if ((size_t)snprintf(buf, size, "%s%s", exe, rel[i]) >= size)
			continue;
		snprintf(probe, sizeof(probe), "%s/forkd/mcp.py", buf);
		if (!access(probe, R_OK))
			return 0;
	}
	log_err("cannot find the Python SDK (forkd/mcp.py) next to %s; set FORKD_PYTHON_SDK to "
		"the directory that holds the forkd package",
		exe);
	return -ENOENT;
}

int cmd_mcp(int argc, char **argv)
{
	enum { O_URL = 3000, O_TAG, O_PYTHON };
	static const struct option opts[] = {
	    {"daemon-url", required_argument, NULL, O_URL},
	    {"tag", required_argument, NULL, O_TAG},
	    {"python", required_argument, NULL, O_PYTHON},
	    {"help", no_argument, NULL, 'h'},
	    {0},
	};
	const char *url = NULL, *tag = NULL, *python = getenv("FORKD_PYTHON");
	const char *args[9];
	char sdk[PATH_MAX], path[2 * PATH_MAX + 2];
	const char *old;
	int c, na = 0;

	optind = 1;
	while ((c = cli_getopt(argc, argv, "h", opts, "mcp")) != -1) {
		switch (c) {
		case O_URL:
			url = optarg;
			break;
		case O_TAG:
			if (!snapshot_tag_valid(optarg))
				cli_usage_error("mcp", "--tag '%s' is not a snapshot tag", optarg);
			tag = optarg;
			break;
		case O_PYTHON:
			python = optarg;
			break;
		case 'h':
			usage(stdout);
			return 0;
		}
	}
	if (optind < argc)
		cli_usage_error("mcp", "unexpected argument '%s'", argv[optind]);
	if (!python || !*python)
		python = "python3";
	if (find_sdk(sdk, sizeof(sdk)))
		return 1;
	old = getenv("PYTHONPATH");
	if ((size_t)snprintf(path, sizeof(path), "%s%s%s", sdk, old && *old ? ":" : "",
			     old && *old ? old : "") >= sizeof(path)) {
		log_err("PYTHONPATH too long");
		return 1;
	}
	if (setenv("PYTHONPATH", path, 1)) {
		log_errno("setenv(PYTHONPATH)");
		return 1;
	}

	args[na++] = python;
	args[na++] = "-m";
	args[na++] = "forkd.mcp";
	if (url) {
		args[na++] = "--daemon-url";
		args[na++] = url;
	}
	if (tag) {
		args[na++] = "--tag";
		args[na++] = tag;
	}
	args[na] = NULL;
	execvp(python, (char *const *)args);
	log_errno("exec %s -m forkd.mcp (install python3, or pass --python)", python);
	return 127;
}
