/* forkd image: build and list guest images (kernel + initramfs + ext4 root
 * with python3, numpy, forkd-init and the agent).
 *
 * `forkd image build` validates its options here and then runs
 * guest/image/build.sh, which does the work with Debian's tools (apt-get,
 * dpkg-deb, mkfs.ext4) and prints its progress and stage timings. */
#include <dirent.h>
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
#include "common/util.h"
#include "snapshot/guest_image.h"
#include "snapshot/snapshot.h"

#define MAX_EXTRAS 64

static void image_usage(FILE *f)
{
	fprintf(f,
		"usage: forkd image build [--tag TAG] [--extra PKG]... [--force] [--free-mib N]\n"
		"       forkd image list [--json]\n"
		"\n"
		"build: make a guest image from Debian packages: the generic kernel\n"
		"(linux-image-amd64, with the VM generation ID driver), an initramfs that\n"
		"loads the virtio and ext4 modules, and an\n"
		"ext4 root file system holding python3, python3-numpy, busybox, forkd-init\n"
		"(/sbin/init) and the agent (/opt/forkd/agent.py). Written to\n"
		"${XDG_CACHE_HOME:-~/.cache}/forkd/images/TAG/ (vmlinuz, initrd.img,\n"
		"rootfs.ext4, cmdline, image.json). A rebuild with unchanged inputs returns\n"
		"at once. Needs root and the tools of scripts/setup.sh.\n"
		"\n"
		"options:\n"
		"  --tag TAG       image name (default py)\n"
		"  --extra PKG     also install Debian package PKG (repeatable)\n"
		"  --force         rebuild even when the cached image is up to date\n"
		"  --free-mib N    free space in the root file system (default 256)\n"
		"  -h, --help      this text\n"
		"\n"
		"list: print each built image: tag, created, kernel, root file system size\n"
		"(--json: an array of {tag, path, created, kernel, rootfs_bytes}, or\n"
		"{tag, path, error} for a directory without a valid image.json).\n"
		"\n"
		"environment: FORKD_IMAGE_BUILDER=PATH runs PATH instead of\n"
		"guest/image/build.sh; FORKD_CACHE=DIR caches under DIR instead.\n");
}

/* Debian package names: [a-z0-9][a-z0-9+.-]+ (Policy 5.6.1). */
static bool package_name_valid(const char *s)
{
	size_t n = strlen(s);

	if (n < 2 || n > 128 || !((s[0] >= 'a' && s[0] <= 'z') || (s[0] >= '0' && s[0] <= '9')))
		return false;
	for (size_t i = 1; i < n; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '+' ||
		      s[i] == '-' || s[i] == '.'))
			return false;
	return true;
}

/* guest/image/build.sh next to this binary: <repo>/build/forkd, or an
 * installed <prefix>/bin/forkd with <prefix>/share/forkd/guest/. */
static int find_builder(char *buf, size_t size)
{
	static const char *const rel[] = {
	    "/../guest/image/build.sh",
	    "/../share/forkd/guest/image/build.sh",
	};
	const char *env = getenv("FORKD_IMAGE_BUILDER");
	char exe[PATH_MAX], *slash;
	ssize_t n;

	if (env && *env) {
		if (access(env, X_OK))
			return log_errno("FORKD_IMAGE_BUILDER=%s", env);
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
		if (!access(buf, X_OK))
			return 0;
	}
	log_err("cannot find guest/image/build.sh next to %s; set FORKD_IMAGE_BUILDER to its path",
		exe);
	return -ENOENT;
}

static int image_build(int argc, char **argv)
{
	enum { O_TAG = 3000, O_EXTRA, O_FORCE, O_FREE };
	static const struct option opts[] = {
	    {"tag", required_argument, NULL, O_TAG}, {"extra", required_argument, NULL, O_EXTRA},
	    {"force", no_argument, NULL, O_FORCE},   {"free-mib", required_argument, NULL, O_FREE},
	    {"help", no_argument, NULL, 'h'},	     {0},
	};
	const char *tag = "py", *free_mib = NULL;
	const char *args[2 * MAX_EXTRAS + 12];
	const char *extras[MAX_EXTRAS];
	char builder[PATH_MAX];
	int c, nextra = 0, na = 0;
	bool force = false;
	uint64_t v;

	optind = 1;
	while ((c = cli_getopt(argc, argv, "h", opts, "image build")) != -1) {
		switch (c) {
		case O_TAG:
			tag = optarg;
			break;
		case O_EXTRA:
			if (!package_name_valid(optarg))
				cli_usage_error(
				    "image build",
				    "bad package name '%s' (Debian names are lower case "
				    "letters, digits and +.-)",
				    optarg);
			if (nextra == MAX_EXTRAS)
				cli_usage_error("image build", "at most %d --extra packages",
						MAX_EXTRAS);
			extras[nextra++] = optarg;
			break;
		case O_FORCE:
			force = true;
			break;
		case O_FREE:
			if (parse_u64(optarg, &v) || v > 65536)
				cli_usage_error(
				    "image build",
				    "--free-mib wants a number from 0 to 65536, got '%s'", optarg);
			free_mib = optarg;
			break;
		case 'h':
			image_usage(stdout);
			return 0;
		default:
			cli_usage_error("image build", "unknown option");
		}
	}
	if (optind < argc)
		cli_usage_error("image build", "unexpected argument '%s'", argv[optind]);
	if (!snapshot_tag_valid(tag))
		cli_usage_error("image build",
				"bad tag '%s': use 1-64 of [A-Za-z0-9_.-], starting with a letter, "
				"digit or '_', no '..'",
				tag);
	if (geteuid() != 0) {
		fprintf(stderr, "forkd image build: error: needs root (the image's files must be "
				"owned by root and the build runs python3 in a chroot); "
				"run it with sudo\n");
		return 1;
	}
	if (find_builder(builder, sizeof(builder)))
		return 1;

	args[na++] = builder;
	args[na++] = "--tag";
	args[na++] = tag;
	for (int i = 0; i < nextra; i++) {
		args[na++] = "--extra";
		args[na++] = extras[i];
	}
	if (force)
		args[na++] = "--force";
	if (free_mib) {
		args[na++] = "--free-mib";
		args[na++] = free_mib;
	}
	args[na] = NULL;
	fflush(stdout);
	execv(builder, (char *const *)args);
	log_errno("exec %s", builder);
	return 1;
}

static const char *json_str(json_t *o, const char *key)
{
	const char *s = json_string_value(json_object_get(o, key));

	return s ? s : "?";
}

static int image_list(int argc, char **argv)
{
	const struct option opts[] = {
	    {"json", no_argument, NULL, 'j'},
	    {"help", no_argument, NULL, 'h'},
	    {0},
	};
	char dir[PATH_MAX], path[PATH_MAX + 300];
	json_t *list = json_array();
	struct dirent *de;
	bool json = false;
	DIR *d;
	int c;

	optind = 1;
	while ((c = cli_getopt(argc, argv, "h", opts, "image list")) != -1) {
		if (c == 'j') {
			json = true;
		} else if (c == 'h') {
			image_usage(stdout);
			json_decref(list);
			return 0;
		}
	}
	if (optind < argc)
		cli_usage_error("image list", "unexpected argument '%s'", argv[optind]);
	if (guest_image_root(dir, sizeof(dir))) {
		log_err("the image directory's path is too long");
		json_decref(list);
		return 1;
	}
	d = opendir(dir);
	if (!d && errno != ENOENT) {
		log_errno("opendir(%s)", dir);
		json_decref(list);
		return 1;
	}
	while (d && (de = readdir(d))) {
		json_error_t jerr;
		json_t *j, *o;

		if (de->d_name[0] == '.' || !snapshot_tag_valid(de->d_name))
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		o = json_pack("{s:s, s:s}", "tag", de->d_name, "path", path);
		snprintf(path, sizeof(path), "%s/%s/image.json", dir, de->d_name);
		j = json_load_file(path, 0, &jerr);
		if (!j) {
			json_object_set_new(o, "error",
					    json_sprintf("no valid image.json: %s", jerr.text));
		} else {
			json_object_set_new(o, "created", json_string(json_str(j, "created")));
			json_object_set_new(
			    o, "kernel",
			    json_string(json_str(json_object_get(j, "kernel"), "release")));
			json_object_set_new(o, "rootfs_bytes",
					    json_integer(json_integer_value(json_object_get(
						json_object_get(j, "sizes"), "rootfs"))));
			json_decref(j);
		}
		json_array_append_new(list, o);
	}
	if (d)
		closedir(d);
	if (json) {
		cli_print_json(list);
	} else {
		size_t i;
		json_t *o;

		json_array_foreach(list, i, o)
		{
			if (json_object_get(o, "error"))
				printf("%-16s (%s)\n", json_str(o, "tag"), json_str(o, "error"));
			else
				printf("%-16s created %s  kernel %s  rootfs %lld bytes\n",
				       json_str(o, "tag"), json_str(o, "created"),
				       json_str(o, "kernel"),
				       (long long)json_integer_value(
					   json_object_get(o, "rootfs_bytes")));
		}
		if (!json_array_size(list))
			printf("no images in %s (make one with 'forkd image build')\n", dir);
	}
	json_decref(list);
	return 0;
}

int cmd_image(int argc, char **argv)
{
	if (argc < 2) {
		image_usage(stderr);
		return 2;
	}
	if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
		image_usage(stdout);
		return 0;
	}
	if (!strcmp(argv[1], "build"))
		return image_build(argc - 1, argv + 1);
	if (!strcmp(argv[1], "list"))
		return image_list(argc - 1, argv + 1);
	cli_usage_error("image", "unknown subcommand '%s' (build, list)", argv[1]);
}
