/* `forkd snapshot pack TAG -o FILE` and `forkd snapshot unpack FILE`: a
 * snapshot and the files it boots from carried between hosts as one file
 * (snapshot/pack.h; docs/FORMAT.md "Packs"). */
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/client.h"
#include "common/util.h"
#include "snapshot/pack.h"

#define PROGRESS_EVERY_NS (250 * 1000 * 1000ULL) /* at most 4 lines a second */

static void pack_usage(FILE *f)
{
	fprintf(f, "usage: forkd snapshot pack TAG -o FILE [--no-assets] [--json]\n"
		   "       forkd snapshot unpack FILE [--tag T] [--json]\n"
		   "\n"
		   "pack writes snapshot TAG into FILE, a zstd-compressed tar: a manifest\n"
		   "(tag, forkd version, every file's size and sha256), snapshot.json,\n"
		   "vmstate, memory.bin, and the kernel, initrd and disks snapshot.json\n"
		   "names. A diff branch is refused: flatten it first with 'forkd snapshot\n"
		   "compact --from TAG --to NEW' and pack NEW.\n"
		   "\n"
		   "unpack checks every size and sha256 while it writes into a private\n"
		   "directory in $FORKD_HOME/snapshots, and only then adds the snapshot to\n"
		   "the store; a damaged, truncated or altered pack fails with one line\n"
		   "saying what is wrong and leaves nothing behind. The kernel, initrd and\n"
		   "disks land in the snapshot's own directory (TAG/assets/), where\n"
		   "snapshot.json then points; memory.bin and disks stay sparse.\n"
		   "\n"
		   "options:\n"
		   "  -o, --output FILE  pack: the file to write (replaced if it exists)\n"
		   "  --no-assets        pack: leave out the kernel, initrd and disks, naming\n"
		   "                     them by size and sha256; unpack then uses an identical\n"
		   "                     file on its host (the path it was packed from, or any\n"
		   "                     file in an image directory, ~/.cache/forkd/images/*/)\n"
		   "  --tag T            unpack: store it as T instead of the tag it was packed\n"
		   "                     under (snapshot.json is rewritten to match)\n"
		   "  --json             print the result as one JSON object\n"
		   "  -h, --help         this text\n");
}

struct progress_view {
	const char *verb;
	uint64_t last_ns;
	bool shown;
};

/* One line, rewritten in place, on a terminal only. */
static void show_progress(void *arg, const char *what, uint64_t done, uint64_t total)
{
	struct progress_view *v = arg;
	uint64_t now = now_ns();

	if (now - v->last_ns < PROGRESS_EVERY_NS && done < total)
		return;
	v->last_ns = now;
	v->shown = true;
	fprintf(stderr, "\rforkd snapshot %s: %s %.1f of %.1f MiB (%3.0f%%)  ", v->verb, what,
		done / (double)MIB, total / (double)MIB, total ? 100.0 * done / total : 100.0);
	fflush(stderr);
}

static void end_progress(struct progress_view *v)
{
	if (v->shown)
		fprintf(stderr, "\r\033[K");
}

int cmd_snapshot_pack(int argc, char **argv)
{
	enum { P_NO_ASSETS = 256, P_JSON, P_TAG };
	const struct option opts[] = {
	    {"output", required_argument, NULL, 'o'}, {"no-assets", no_argument, NULL, P_NO_ASSETS},
	    {"tag", required_argument, NULL, P_TAG},  {"json", no_argument, NULL, P_JSON},
	    {"help", no_argument, NULL, 'h'},	      {0},
	};
	const char *verb = argv[0], *output = NULL, *tag = NULL;
	bool unpack = !strcmp(verb, "unpack"), json = false;
	struct progress_view view = {.verb = verb};
	struct pack_opts po = {0};
	uint64_t t0 = now_ns();
	json_t *res = NULL;
	char full_verb[32];
	int opt, err;

	snprintf(full_verb, sizeof(full_verb), "snapshot %s", verb);
	optind = 1;
	while ((opt = cli_getopt(argc, argv, "ho:", opts, full_verb)) != -1) {
		if (opt == 'h') {
			pack_usage(stdout);
			return 0;
		} else if (opt == 'o' && !unpack) {
			output = optarg;
		} else if (opt == P_NO_ASSETS && !unpack) {
			po.no_assets = true;
		} else if (opt == P_TAG && unpack) {
			tag = optarg;
		} else if (opt == P_JSON) {
			json = true;
		} else {
			cli_usage_error(full_verb, "option %s is for 'snapshot %s'",
					opt == P_TAG ? "--tag"
					: opt == 'o' ? "-o"
						     : "--no-assets",
					unpack ? "pack" : "unpack");
		}
	}
	if (argc - optind != 1)
		cli_usage_error(full_verb, "snapshot %s takes one %s", verb,
				unpack ? "FILE" : "TAG");
	if (!unpack && !snapshot_tag_valid(argv[optind]))
		cli_usage_error(full_verb, "invalid tag '%s'", argv[optind]);
	if (!unpack && !output)
		cli_usage_error(full_verb, "snapshot pack needs -o FILE");
	if (tag && !snapshot_tag_valid(tag))
		cli_usage_error(full_verb,
				"invalid tag '%s': use 1-64 of A-Z a-z 0-9 _ . - , starting with a "
				"letter, digit or _, and no '..'",
				tag);
	if (isatty(STDERR_FILENO)) {
		po.progress = show_progress;
		po.progress_arg = &view;
	}
	/* The library reports a failure in one line of its own. */
	if (unpack)
		err = pack_extract(argv[optind], tag, &po, &res);
	else
		err = pack_create(argv[optind], output, &po, &res);
	end_progress(&view);
	if (err)
		return 1;
	if (res)
		json_object_set_new(res, "seconds", json_real((now_ns() - t0) / 1e9));
	if (json) {
		cli_print_json(res);
	} else if (unpack) {
		printf("unpacked %s into snapshot %s (%s) in %.2f s\n", argv[optind],
		       json_string_value(json_object_get(res, "tag")),
		       json_string_value(json_object_get(res, "dir")), (now_ns() - t0) / 1e9);
	} else {
		printf("packed snapshot %s into %s (%.1f MiB%s) in %.2f s\n", argv[optind], output,
		       json_integer_value(json_object_get(res, "bytes")) / (double)MIB,
		       po.no_assets ? ", assets left out" : "", (now_ns() - t0) / 1e9);
	}
	json_decref(res);
	return 0;
}
