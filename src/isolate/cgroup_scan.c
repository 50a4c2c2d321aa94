/* Leftover memory cgroups of forkd (declared in cgroup.h): the leaves
 * under every "forkd" parent of every memory hierarchy, each with whether
 * it is still in use, for `forkd cleanup`. */
#include "isolate/cgroup.h"

#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

struct scan {
	uint64_t min_age;
	cgroup_scan_fn fn;
	void *arg;
};

/* dir/name into out; false (skip the entry) if it does not fit. */
static bool join(char *out, size_t size, const char *dir, const char *name)
{
	int n = snprintf(out, size, "%s/%s", dir, name);

	return n > 0 && (size_t)n < size;
}

/* v1 hierarchies with the memory controller and v2 mounts, from
 * /proc/self/mountinfo ("... MOUNTPOINT ... - FSTYPE SOURCE SUPEROPTS"). */
static size_t cgroup_mounts(char roots[][PATH_MAX], size_t max)
{
	FILE *f = fopen("/proc/self/mountinfo", "re");
	char line[4096];
	size_t n = 0;

	if (!f)
		return 0;
	while (n < max && fgets(line, sizeof(line), f)) {
		char mnt[PATH_MAX], fstype[64], src[256], sopts[1024];
		const char *dash = strstr(line, " - ");
		bool dup = false;

		if (!dash || sscanf(line, "%*s %*s %*s %*s %4095s", mnt) != 1 ||
		    sscanf(dash + 3, "%63s %255s %1023s", fstype, src, sopts) != 3)
			continue;
		if (strcmp(fstype, "cgroup2") &&
		    !(!strcmp(fstype, "cgroup") && strstr(sopts, "memory")))
			continue;
		for (size_t i = 0; i < n; i++)
			dup |= !strcmp(roots[i], mnt);
		if (!dup)
			snprintf(roots[n++], PATH_MAX, "%s", mnt);
	}
	fclose(f);
	return n;
}

static bool has_procs(const char *dir)
{
	char path[PATH_MAX + 16], c;
	bool has;
	int fd;

	snprintf(path, sizeof(path), "%s/cgroup.procs", dir);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return true; /* cannot tell: keep it */
	has = read(fd, &c, 1) != 0;
	close(fd);
	return has;
}

/* Post-order: a cgroup's children are reported before it, so they are
 * removed first; it is unused only if they all are. Returns in use. */
static bool collect(const struct scan *s, const char *dir, int depth)
{
	bool busy = false;
	const char *why = NULL;
	char msg[64];
	struct dirent *de;
	struct stat st;
	DIR *d = opendir(dir);

	if (!d)
		return true;
	while ((de = readdir(d))) {
		char sub[PATH_MAX];

		if (de->d_name[0] == '.' || de->d_type != DT_DIR ||
		    !join(sub, sizeof(sub), dir, de->d_name))
			continue;
		busy |= depth > 8 || collect(s, sub, depth + 1);
	}
	closedir(d);
	if (busy) {
		why = "a cgroup below it is in use";
	} else if (has_procs(dir)) {
		why = "processes in it";
	} else if (s->min_age && stat(dir, &st) == 0 &&
		   st.st_mtime > time(NULL) - (time_t)s->min_age) {
		snprintf(msg, sizeof(msg), "made less than %llu s ago",
			 (unsigned long long)s->min_age);
		why = msg;
	}
	s->fn(dir, why, s->arg);
	return why != NULL;
}

/* Find every forkd/ parent in the hierarchy (it sits under the cgroup of
 * whichever forkd made it) and report the leaves below it. */
static void find_parents(const struct scan *s, const char *dir, int depth)
{
	struct dirent *de;
	DIR *d;

	if (depth > 12 || !(d = opendir(dir)))
		return;
	while ((de = readdir(d))) {
		struct dirent *le;
		char sub[PATH_MAX];
		DIR *pd;

		if (de->d_name[0] == '.' || de->d_type != DT_DIR ||
		    !join(sub, sizeof(sub), dir, de->d_name))
			continue;
		if (strcmp(de->d_name, CGROUP_PARENT_NAME)) {
			find_parents(s, sub, depth + 1);
			continue;
		}
		pd = opendir(sub);
		while (pd && (le = readdir(pd))) {
			char leaf[PATH_MAX];

			if (le->d_name[0] == '.' || le->d_type != DT_DIR ||
			    !join(leaf, sizeof(leaf), sub, le->d_name))
				continue;
			collect(s, leaf, 0);
		}
		if (pd)
			closedir(pd);
	}
	closedir(d);
}

void cgroup_scan_leftovers(const char *root, uint64_t min_age, cgroup_scan_fn fn, void *arg)
{
	const struct scan s = {.min_age = min_age, .fn = fn, .arg = arg};
	char roots[8][PATH_MAX];
	size_t n;

	if (root) {
		snprintf(roots[0], PATH_MAX, "%s", root);
		n = 1;
	} else {
		n = cgroup_mounts(roots, sizeof(roots) / sizeof(roots[0]));
	}
	for (size_t i = 0; i < n; i++)
		find_parents(&s, roots[i], 0);
}
