/* forkd where: the directories and addresses forkd uses here, resolved the
 * way every verb and the daemon resolve them, and whether each exists. */
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/client.h"
#include "common/util.h"
#include "fork/kept.h"
#include "snapshot/guest_image.h"
#include "snapshot/snapshot.h"

static void usage(FILE *f)
{
	fprintf(f,
		"usage: forkd where [--json]\n"
		"\n"
		"Print where forkd keeps things on this host, as every verb and 'forkd serve'\n"
		"(with its defaults) resolve them now, and whether each exists:\n"
		"  home        snapshots and kept children: $FORKD_HOME, else %s for\n"
		"              root (the daemon's state directory too: one store for both),\n"
		"              else $XDG_DATA_HOME/forkd or ~/.local/share/forkd\n"
		"  snapshots   <home>/snapshots;  kept  <home>/kept\n"
		"  images      guest images: $FORKD_CACHE/images, else\n"
		"              $XDG_CACHE_HOME/forkd/images or ~/.cache/forkd/images\n"
		"  state       the daemon's database, token, audit log (its --state-dir)\n"
		"  runs        the daemon's sandbox run directories (its --run-root)\n"
		"  token       the token the daemon makes and the CLI and SDK read\n"
		"  daemon_url  where the CLI looks for the daemon ($FORKD_URL)\n"
		"  --json      one JSON object, each entry {\"path\", \"exists\"}\n",
		SNAPSHOT_ROOT_HOME);
}

static json_t *entry(const char *path)
{
	struct stat st;

	return json_pack("{s:s, s:b}", "path", path, "exists", stat(path, &st) == 0);
}

int cmd_where(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"json", no_argument, NULL, 'j'}, {"help", no_argument, NULL, 'h'}, {0}};
	char home[PATH_MAX], sub[PATH_MAX + 16], images[PATH_MAX], state[PATH_MAX], runs[PATH_MAX];
	const char *url = getenv("FORKD_URL");
	bool json = false;
	json_t *o;
	int c;

	optind = 1;
	while ((c = cli_getopt(argc, argv, "h", opts, "where")) != -1) {
		if (c == 'j') {
			json = true;
		} else if (c == 'h') {
			usage(stdout);
			return 0;
		} else {
			fprintf(stderr, "Run 'forkd where --help' for usage.\n");
			return 2;
		}
	}
	if (optind < argc)
		cli_usage_error("where", "unexpected argument '%s'", argv[optind]);
	if (snapshot_home(home, sizeof(home)) || guest_image_root(images, sizeof(images)))
		return 1;
	if (util_state_dir(state, sizeof(state), NULL, NULL))
		snprintf(state, sizeof(state), "(none: set $XDG_STATE_HOME or pass --state-dir)");
	if (util_run_root(runs, sizeof(runs), NULL, NULL))
		snprintf(runs, sizeof(runs), "(none: set $XDG_RUNTIME_DIR or pass --run-root)");
	o = json_object();
	json_object_set_new(o, "home", entry(home));
	snprintf(sub, sizeof(sub), "%s/snapshots", home);
	json_object_set_new(o, "snapshots", entry(sub));
	snprintf(sub, sizeof(sub), "%s/kept", home);
	json_object_set_new(o, "kept", entry(sub));
	json_object_set_new(o, "images", entry(images));
	json_object_set_new(o, "state", entry(state));
	json_object_set_new(o, "runs", entry(runs));
	snprintf(sub, sizeof(sub), "%s/token", state);
	json_object_set_new(o, "token", entry(sub));
	json_object_set_new(o, "daemon_url", json_string(url && *url ? url : CLIENT_DEFAULT_URL));
	/* Root's snapshots lived under $HOME before they moved to the daemon's
	 * directory: say so while some are still there. */
	{
		const char *env_home = getenv("FORKD_HOME"), *h = getenv("HOME");
		struct stat st;

		if (geteuid() == 0 && !(env_home && *env_home) && h && *h &&
		    (size_t)snprintf(sub, sizeof(sub), "%s/.local/share/forkd/snapshots", h) <
			sizeof(sub) &&
		    stat(sub, &st) == 0 && S_ISDIR(st.st_mode) && strcmp(sub, home)) {
			json_object_set_new(o, "earlier_snapshots", entry(sub));
			if (!json)
				fprintf(stderr,
					"note: %s holds snapshots from before root's moved to %s: "
					"move them there, or set FORKD_HOME=%.*s to use them\n",
					sub, home, (int)(strlen(sub) - strlen("/snapshots")), sub);
		}
	}
	if (json) {
		char *text = json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER);

		if (text)
			printf("%s\n", text);
		free(text);
	} else {
		const char *k;
		json_t *v;

		json_object_foreach(o, k, v)
		{
			if (json_is_string(v))
				printf("%-11s %s\n", k, json_string_value(v));
			else
				printf("%-11s %s%s\n", k,
				       json_string_value(json_object_get(v, "path")),
				       json_is_true(json_object_get(v, "exists")) ? ""
										  : "  (missing)");
		}
	}
	json_decref(o);
	return 0;
}
