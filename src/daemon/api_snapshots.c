/* /v1/snapshots: list, create (a `forkd snapshot` job), get, delete.
 *
 * Snapshots live in $FORKD_HOME/snapshots/<tag>/ (src/snapshot). Creating
 * one boots a guest until it is warm, which takes from a second (test
 * guests) to minutes (Linux on KVM-PVM), so POST answers 202 at once and
 * the spawner runs `forkd snapshot` as a job; GET /v1/snapshots/{tag}
 * reports "creating", then "ready" or "failed" with the job's last words.
 * Job files: <state dir>/jobs/<tag>/ (job.log, console.log, exit).
 *
 * Kinds: "test-guest" boots GUEST.elf from --guest-dir (warm: its doorbell);
 * "image" boots a guest image from `forkd image build` (`forkd snapshot
 * --image`: warm when its agent answers ping with warm=true). */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "common/file.h"
#include "common/util.h"
#include "daemon/api.h"
#include "snapshot/snapshot_image.h"
#include "daemon/sandbox.h"
#include "snapshot/guest_image.h"
#include "isolate/jail_fs.h"

enum job_state { JOB_NONE, JOB_RUNNING, JOB_DONE, JOB_FAILED };

static bool job_exists(const struct job_rec *j)
{
	uint64_t st;

	return j->pid > 0 && child_start_time((pid_t)j->pid, &st, NULL) == 0 && st == j->start_time;
}

/* The job's state; for a failure, why (the last line of its log). */
static enum job_state job_state(struct daemon *d, const char *tag, struct job_rec *j, char *why,
				size_t size)
{
	char path[PATH_MAX + 16], buf[2048], *p;
	int fd, code = -1;
	ssize_t n;

	why[0] = 0;
	if (store_job_get(&d->store, tag, j))
		return JOB_NONE;
	snprintf(path, sizeof(path), "%s/exit", j->dir);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 && job_exists(j)) {
		/* Running, or a zombie the spawner has yet to reap and record. */
		return JOB_RUNNING;
	}
	if (fd < 0) {
		/* Reaped a moment ago: the spawner writes the status right after. */
		usleep(100000);
		fd = open(path, O_RDONLY | O_CLOEXEC);
	}
	if (fd >= 0) {
		n = read(fd, buf, sizeof(buf) - 1);
		close(fd);
		buf[n > 0 ? n : 0] = 0;
		code = atoi(buf);
		if (code == 0)
			return JOB_DONE;
	}
	snprintf(path, sizeof(path), "%s/job.log", j->dir);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	n = fd >= 0 ? pread(fd, buf, sizeof(buf) - 1,
			    MAX(lseek(fd, 0, SEEK_END) - (off_t)sizeof(buf) + 1, 0))
		    : 0;
	if (fd >= 0)
		close(fd);
	buf[n > 0 ? n : 0] = 0;
	while (n > 0 && buf[n - 1] == '\n')
		buf[--n] = 0;
	p = strrchr(buf, '\n');
	if (code < 0)
		snprintf(why, size,
			 "the job ended without an exit status (the daemon restarted "
			 "while it ran?)");
	else
		snprintf(why, size, "forkd snapshot exited with status %d: %s", code,
			 p ? p + 1 : buf);
	return JOB_FAILED;
}

bool api_snapshot_job_running(struct daemon *d, const char *tag)
{
	struct job_rec j;
	char why[8];

	return job_state(d, tag, &j, why, sizeof(why)) == JOB_RUNNING;
}

static size_t sandboxes_of(struct daemon *d, const char *tag)
{
	struct child_rec *all;
	size_t n, alive = 0;

	if (store_sandbox_list(&d->store, tag, &all, &n))
		return 0;
	for (size_t i = 0; i < n; i++)
		alive += all[i].pid > 0 && child_alive((pid_t)all[i].pid, all[i].start_time);
	free(all);
	return alive;
}

/* A ready snapshot's description, or NULL when <tag> has none. */
json_t *api_snapshot_info(struct daemon *d, const char *tag)
{
	struct snapshot_meta *m;
	char dir[PATH_MAX], path[PATH_MAX + 32];
	struct stat st;
	int64_t first;
	json_t *o;

	if (snapshot_dir(tag, dir, sizeof(dir)))
		return NULL;
	snprintf(path, sizeof(path), "%s/snapshot.json", dir);
	if (stat(path, &st) < 0)
		return NULL;
	m = malloc(sizeof(*m));
	if (!m || snapshot_meta_read(dir, m)) {
		free(m);
		return json_pack("{s:s,s:s,s:s}", "tag", tag, "state", "damaged", "error",
				 "snapshot.json cannot be read (see the daemon's log)");
	}
	if (store_snapshot_seen(&d->store, tag))
		log_warn("could not record snapshot %s as seen", tag);
	o = json_pack("{s:s,s:s,s:s,s:I,s:i,s:s,s:s,s:b,s:i,s:I,s:I}", "tag", m->tag, "state",
		      "ready", "created", m->created, "mem_mib", (json_int_t)m->mem_mib, "vcpus",
		      (int)m->vcpus, "kernel", m->kernel, "cmdline", m->cmdline, "vsock",
		      m->dev.vsock, "disks", (int)m->dev.nr_disks, "memory_bytes_on_disk",
		      (json_int_t)snapshot_disk_bytes(dir), "sandboxes_running",
		      (json_int_t)sandboxes_of(d, tag));
	if (o && m->parent[0])
		json_object_set_new(o, "parent", json_string(m->parent));
	if (o) {
		char deps[8][SNAPSHOT_TAG_MAX + 1];
		int nd = snapshot_dependents(tag, deps, 8);
		json_t *arr = json_array();

		for (int i = 0; i < nd && i < 8; i++)
			json_array_append_new(arr, json_string(deps[i]));
		json_object_set_new(o, "memory", json_string(m->mem_diff ? "diff" : "full"));
		json_object_set_new(o, "chain_depth", json_integer(snapshot_chain_depth(m)));
		json_object_set_new(o, "logical_bytes",
				    json_integer((json_int_t)(m->mem_mib * MIB)));
		json_object_set_new(o, "physical_bytes",
				    json_integer((json_int_t)snapshot_disk_bytes(dir)));
		json_object_set_new(o, "dependents", arr);
		json_object_set_new(o, "dependents_count", json_integer(nd < 0 ? 0 : nd));
	}
	if (o && m->agent_port)
		json_object_set_new(o, "agent_port", json_integer((json_int_t)m->agent_port));
	if (o && !store_snapshot_first_seen(&d->store, tag, &first))
		json_object_set_new(o, "first_seen_ms", json_integer(first));
	free(m);
	return o ? o : json_pack("{s:s,s:s}", "tag", tag, "state", "damaged");
}

static json_t *job_json(struct daemon *d, const char *tag)
{
	struct job_rec j;
	char why[600];
	enum job_state s = job_state(d, tag, &j, why, sizeof(why));
	json_t *o;

	if (s == JOB_NONE || s == JOB_DONE)
		return NULL;
	o = json_pack("{s:s,s:s,s:s,s:I}", "tag", tag, "state",
		      s == JOB_RUNNING ? "creating" : "failed", "kind", j.kind, "started_ms",
		      (json_int_t)j.started_ms);
	if (o && s == JOB_FAILED)
		json_object_set_new(o, "error", json_string(why));
	return o;
}

size_t api_count_snapshots(void)
{
	char home[PATH_MAX], dir[PATH_MAX + 16];
	struct dirent *e;
	size_t n = 0;
	DIR *dp;

	if (snapshot_home(home, sizeof(home)))
		return 0;
	snprintf(dir, sizeof(dir), "%s/snapshots", home);
	dp = opendir(dir);
	if (!dp)
		return 0;
	while ((e = readdir(dp)))
		n += snapshot_tag_valid(e->d_name);
	closedir(dp);
	return n;
}

void api_snapshots_list(struct api_req *rq, struct api_resp *rs)
{
	char home[PATH_MAX], dir[PATH_MAX + 16];
	json_t *out = json_array(), *o;
	struct job_rec *jobs;
	struct dirent *e;
	size_t nj;
	DIR *dp;

	if (snapshot_home(home, sizeof(home))) {
		json_decref(out);
		api_error(rs, 500, "cannot find $FORKD_HOME (set FORKD_HOME or HOME)");
		return;
	}
	snprintf(dir, sizeof(dir), "%s/snapshots", home);
	dp = opendir(dir);
	while (dp && (e = readdir(dp))) {
		if (!snapshot_tag_valid(e->d_name) || api_snapshot_job_running(rq->d, e->d_name))
			continue;
		if ((o = api_snapshot_info(rq->d, e->d_name)))
			json_array_append_new(out, o);
	}
	if (dp)
		closedir(dp);
	/* Snapshots being made, or whose making failed. */
	api_branch_list(out);
	if (!store_job_list(&rq->d->store, &jobs, &nj)) {
		for (size_t i = 0; i < nj; i++)
			if ((o = job_json(rq->d, jobs[i].tag)))
				json_array_append_new(out, o);
		free(jobs);
	}
	api_json(rs, 200, out);
}

void api_snapshot_get(struct api_req *rq, struct api_resp *rs)
{
	json_t *o = job_json(rq->d, rq->param);

	if (!o || !strcmp(json_string_value(json_object_get(o, "state")), "failed")) {
		json_t *ready = api_snapshot_info(rq->d, rq->param);

		if (ready) {
			json_decref(o);
			o = ready;
		}
	}
	if (!o)
		o = api_branch_state(rq->param);
	if (!o)
		api_error(rs, 404, "no snapshot '%s'", rq->param);
	else
		api_json(rs, 200, o);
}

/* rm -r dir (common/file.h), saying in the log what stayed. */
static int remove_dir(const char *dir)
{
	int err = file_remove_tree(dir);

	if (err)
		log_err("remove %s: %s", dir, strerror(-err));
	return err;
}

/* Delete tag and, with cascade, every snapshot that is a diff over it
 * (depth first). d->lock held. 0, or an error response was set. */
static int delete_one(struct daemon *d, struct api_resp *rs, const char *tag, bool cascade,
		      json_t *deleted, int depth)
{
	char dir[PATH_MAX], why[8], deps[16][SNAPSHOT_TAG_MAX + 1];
	struct job_rec j;
	enum job_state js;
	struct stat st;
	size_t users;
	bool exists;
	int nd;

	if (snapshot_dir(tag, dir, sizeof(dir))) {
		api_error(rs, 400, "invalid snapshot tag");
		return -1;
	}
	js = job_state(d, tag, &j, why, sizeof(why));
	exists = stat(dir, &st) == 0;
	if (api_branch_busy(tag, false) > 0) {
		api_error(rs, 409, "snapshot '%s' is still being written", tag);
		return -1;
	}
	if (!exists && js == JOB_NONE) {
		if (api_branch_busy(tag, true) < 0) {
			json_array_append_new(deleted, json_string(tag));
			return 0; /* a failed branch: forgotten */
		}
		api_error(rs, 404, "no snapshot '%s'", tag);
		return -1;
	}
	if (js == JOB_RUNNING) {
		api_error(rs, 409, "snapshot '%s' is still being created", tag);
		return -1;
	}
	if ((users = sandboxes_of(d, tag))) {
		api_error(rs, 409, "%zu sandbox%s still run from snapshot '%s'; delete %s first",
			  users, users == 1 ? "" : "es", tag, users == 1 ? "it" : "them");
		return -1;
	}
	nd = snapshot_dependents(tag, deps, 16);
	if (nd > 0 && !cascade) {
		api_error(rs, 409,
			  "snapshot '%s' has %d dependent%s (diff branches over it, e.g. '%s'); "
			  "delete them first, flatten them with 'forkd snapshot compact', or "
			  "DELETE with ?cascade=true",
			  tag, nd, nd == 1 ? "" : "s", deps[0]);
		return -1;
	}
	if (nd > 16 || depth > SNAPSHOT_MAX_DEPTH) {
		api_error(rs, 409, "snapshot '%s': too many dependents to delete at once", tag);
		return -1;
	}
	for (int i = 0; i < nd; i++)
		if (delete_one(d, rs, deps[i], cascade, deleted, depth + 1))
			return -1;
	if (exists && remove_dir(dir)) {
		api_error(rs, 500, "could not remove all of %s (see the daemon's log)", dir);
		return -1;
	}
	if (js != JOB_NONE && (remove_dir(j.dir) || store_job_delete(&d->store, tag)))
		log_warn("snapshot %s: job files left in %s", tag, j.dir);
	if (store_snapshot_forget(&d->store, tag))
		log_warn("snapshot %s: still in the state database", tag);
	api_branch_busy(tag, true);
	json_array_append_new(deleted, json_string(tag));
	return 0;
}

void api_snapshot_delete(struct api_req *rq, struct api_resp *rs)
{
	struct daemon *d = rq->d;
	const char *c = api_query(rq, "cascade");
	json_t *deleted = json_array();
	bool cascade = c && (!strcmp(c, "true") || !strcmp(c, "1"));

	if (c && !cascade && strcmp(c, "false") && strcmp(c, "0")) {
		json_decref(deleted);
		api_error(rs, 400, "cascade is true or false");
		return;
	}
	pthread_mutex_lock(&d->lock);
	if (delete_one(d, rs, rq->param, cascade, deleted, 0))
		json_decref(deleted);
	else if (cascade)
		api_json(rs, 200,
			 json_pack("{s:s,s:b,s:o}", "tag", rq->param, "deleted", 1, "snapshots",
				   deleted));
	else
		api_json(rs, 200, json_pack("{s:s,s:b}", "tag", rq->param, "deleted", 1)),
		    json_decref(deleted);
	pthread_mutex_unlock(&d->lock);
}

/* Kernel parameters an API caller may add to a snapshot's boot: the
 * snapshot boot's VMM runs as root without the jail, so nothing that
 * chooses what runs (init=, rdinit=, modules, root=...) or weakens the
 * guest beyond its image's own choices. */
static const char *const cmdline_names[] = {
    "quiet",
    "loglevel",
    "console",
    "earlyprintk",
    "ignore_loglevel",
    "printk.time",
    "panic",
    "nokaslr",
    "mitigations",
    "tsc",
    "clocksource",
    "nowatchdog",
    "audit",
    "ipv6.disable",
    "transparent_hugepage",
    "numa_balancing",
    "random.trust_cpu",
};
#define CMDLINE_ALLOWED_TEXT                                                                       \
	"quiet loglevel console earlyprintk ignore_loglevel printk.time panic nokaslr "            \
	"mitigations tsc clocksource nowatchdog audit ipv6.disable transparent_hugepage "          \
	"numa_balancing random.trust_cpu forkd.*"

/* Every space-separated word of cmdline is NAME or NAME=VALUE with NAME in
 * the list and VALUE of [A-Za-z0-9._,:-]; else false, the word in bad. */
static bool cmdline_allowed(const char *cmdline, char *bad, size_t size)
{
	const char *p = cmdline;

	while (*p) {
		size_t len = strcspn(p, " \t"), name_len = strcspn(p, "=");
		bool ok = false;

		if (!len) {
			p++;
			continue;
		}
		if (name_len > len)
			name_len = len;
		/* forkd.*: the guest's own namespace, read by nothing that
		 * chooses what runs */
		ok = name_len > 6 && !strncmp(p, "forkd.", 6);
		for (size_t i = 0; i < ARRAY_SIZE(cmdline_names) && !ok; i++)
			ok = strlen(cmdline_names[i]) == name_len &&
			     !strncmp(p, cmdline_names[i], name_len);
		for (size_t i = name_len + 1; ok && i < len; i++)
			ok = isalnum((unsigned char)p[i]) || strchr("._,:-", p[i]);
		if (!ok) {
			snprintf(bad, size, "%.*s", (int)MIN(len, (size_t)64), p);
			return false;
		}
		p += len;
	}
	return true;
}

static bool name_valid(const char *s)
{
	return s && snapshot_tag_valid(s);
}

/* The job's `forkd snapshot` options that say what to boot: kind
 * "test-guest" (GUEST.elf from --guest-dir) or "image" (a guest image from
 * `forkd image build`). Adds them to argv; false after answering an error. */
static bool boot_args(struct daemon *d, json_t *body, const char *kind, json_t *argv,
		      struct api_resp *rs)
{
	const char *guest = json_string_value(json_object_get(body, "guest"));
	const char *image = json_string_value(json_object_get(body, "image"));
	char kernel[PATH_MAX + 80], err[600];
	struct guest_image *img;
	struct stat st;
	int r;

	if (!strcmp(kind, "image")) {
		if (json_object_get(body, "guest")) {
			api_error(rs, 400,
				  "\"guest\" is for kind \"test-guest\"; kind \"image\" "
				  "takes \"image\" (a guest image tag, e.g. \"py\")");
			return false;
		}
		/* Required, not defaulted: booting an image costs minutes of CPU. */
		if (!name_valid(image)) {
			api_error(
			    rs, 400,
			    "kind \"image\" needs \"image\": the tag of a guest image from "
			    "'forkd image build' (e.g. \"py\"), [A-Za-z0-9_][A-Za-z0-9_.-]{0,63}");
			return false;
		}
		/* Checked here too, so a missing image is a 400 now rather
		 * than a failed job later. */
		img = malloc(sizeof(*img));
		if (!img) {
			api_error(rs, 500, "out of memory");
			return false;
		}
		r = guest_image_open(image, img, err, sizeof(err));
		free(img);
		if (r) {
			api_error(rs, r == -ENOENT || r == -EINVAL ? 400 : 500, "%s", err);
			return false;
		}
		json_array_append_new(argv, json_string("--image"));
		json_array_append_new(argv, json_string(image));
		return true;
	}
	if (json_object_get(body, "image")) {
		api_error(rs, 400, "\"image\" is for kind \"image\"");
		return false;
	}
	if (!d->guest_dir[0]) {
		api_error(rs, 501,
			  "test guests are not configured: start forkd serve with "
			  "--guest-dir DIR (e.g. build/guests)");
		return false;
	}
	if (!name_valid(guest)) {
		api_error(rs, 400, "\"guest\" must name a test guest in %s (e.g. \"agent_stub\")",
			  d->guest_dir);
		return false;
	}
	snprintf(kernel, sizeof(kernel), "%s/%s.elf", d->guest_dir, guest);
	if (stat(kernel, &st) < 0 || !S_ISREG(st.st_mode)) {
		api_error(rs, 400, "no test guest '%s' (looked for %s)", guest, kernel);
		return false;
	}
	json_array_append_new(argv, json_string("--kernel"));
	json_array_append_new(argv, json_string(kernel));
	return true;
}

void api_snapshots_create(struct api_req *rq, struct api_resp *rs)
{
	static const char *const allowed[] = {"tag",	 "kind",  "guest",   "image",
					      "mem_mib", "vcpus", "cmdline", NULL};
	struct daemon *d = rq->d;
	json_t *body = api_body_object(rq, rs, allowed), *argv = NULL, *req, *reply = NULL;
	const char *tag, *kind, *cmdline;
	char bad[80];
	char snapdir[PATH_MAX], num[2][24], why[8];
	char vsock[PATH_MAX + 16], console[PATH_MAX + 16];
	json_int_t mem, vcpus;
	struct job_rec j = {0};
	struct jail_fs_ids ids;
	struct stat st;
	bool image;
	json_t *v;
	int r;

	if (!body)
		return;
	tag = json_string_value(json_object_get(body, "tag"));
	kind = json_string_value(json_object_get(body, "kind"));
	cmdline = json_string_value(json_object_get(body, "cmdline"));
	if (!name_valid(tag)) {
		api_error(rs, 400,
			  "\"tag\" is required: [A-Za-z0-9_][A-Za-z0-9_.-]{0,63}, never "
			  "'..'");
		goto out;
	}
	api_audit_tag(rs, tag);
	if (!kind || (strcmp(kind, "test-guest") && strcmp(kind, "image"))) {
		api_error(rs, 400, "\"kind\" must be \"test-guest\" or \"image\"");
		goto out;
	}
	image = !strcmp(kind, "image");
	/* A Linux guest image needs room; a test guest very little. */
	mem = image ? 512 : 64;
	vcpus = image ? 2 : 1;
	if ((v = json_object_get(body, "mem_mib")) &&
	    (!json_is_integer(v) || (mem = json_integer_value(v)) < 2 || mem > 65536 || mem % 2)) {
		api_error(rs, 400, "\"mem_mib\" must be an even integer from 2 to 65536");
		goto out;
	}
	if ((v = json_object_get(body, "vcpus")) &&
	    (!json_is_integer(v) || (vcpus = json_integer_value(v)) < 1 || vcpus > 64)) {
		api_error(rs, 400, "\"vcpus\" must be an integer from 1 to 64");
		goto out;
	}
	if (json_object_get(body, "cmdline") &&
	    (!cmdline || strlen(cmdline) > 1024 || strpbrk(cmdline, "\n\r"))) {
		api_error(rs, 400, "\"cmdline\" must be a one-line string of at most 1024 bytes");
		goto out;
	}
	if (cmdline && !cmdline_allowed(cmdline, bad, sizeof(bad))) {
		api_error(
		    rs, 400,
		    "\"cmdline\": kernel parameter '%s' is not allowed from the API (allowed: "
		    "%s; each NAME or NAME=VALUE of letters, digits and ._,:-)",
		    bad, CMDLINE_ALLOWED_TEXT);
		goto out;
	}
	snprintf(num[0], sizeof(num[0]), "%lld", (long long)mem);
	snprintf(num[1], sizeof(num[1]), "%lld", (long long)vcpus);
	argv = json_pack("[s,s,s,s]", d->exe, "snapshot", "--tag", tag);
	/* The boot's VMM is jailed like the sandboxes', unless serve was told
	 * otherwise (--no-seccomp). */
	if (argv && d->cfg.no_jail && json_array_append_new(argv, json_string("--no-seccomp")))
		json_decref(argv), argv = NULL;
	if (!argv) {
		api_error(rs, 500, "out of memory");
		goto out;
	}
	if (!boot_args(d, body, kind, argv, rs))
		goto out;
	pthread_mutex_lock(&d->lock);
	if (snapshot_dir(tag, snapdir, sizeof(snapdir)) == 0 && stat(snapdir, &st) == 0) {
		api_error(rs, 409, "snapshot '%s' already exists; DELETE it first", tag);
		goto unlock;
	}
	if (job_state(d, tag, &j, why, sizeof(why)) == JOB_RUNNING) {
		api_error(rs, 409, "snapshot '%s' is already being created", tag);
		goto unlock;
	}
	memset(&j, 0, sizeof(j));
	if ((size_t)snprintf(j.dir, sizeof(j.dir), "%s/%s", d->jobs_dir, tag) >= sizeof(j.dir) ||
	    (size_t)snprintf(vsock, sizeof(vsock), "%s/vsock.sock", j.dir) >=
		sizeof(((struct sockaddr_un *)0)->sun_path)) {
		api_error(rs, 500,
			  "%s/%s/vsock.sock is too long for a Unix socket; use a shorter "
			  "--state-dir",
			  d->jobs_dir, tag);
		goto unlock;
	}
	snprintf(console, sizeof(console), "%s/console.log", j.dir);
	if (remove_dir(j.dir) || mkdir(j.dir, 0700) < 0) {
		api_error(rs, 500, "cannot create %s: %s", j.dir, strerror(errno));
		goto unlock;
	}
	/* The job's jailed VMM (another uid) polls its agent through vsock.sock
	 * in here (isolate/jail_fs.h). */
	if (!d->cfg.no_jail && (jail_fs_ids(&ids) || jail_fs_share_dir(j.dir, &ids))) {
		api_error(rs, 500, "cannot give %s to the VMM jail's group", j.dir);
		goto unlock;
	}
	/* The Linux guest kernel is emulated on KVM-PVM: ~10 minutes to warm. */
	v = json_pack("[s,s,s,s,s,s,s,s,s,s]", "--mem-mib", num[0], "--vcpus", num[1], "--vsock",
		      vsock, "--console", console, "--timeout-secs", image ? "3600" : "600");
	if (!v || json_array_extend(argv, v)) {
		json_decref(v);
		api_error(rs, 500, "out of memory");
		goto unlock;
	}
	json_decref(v);
	if (cmdline) {
		json_array_append_new(argv, json_string("--cmdline"));
		json_array_append_new(argv, json_string(cmdline));
	}
	req = json_pack("{s:s,s:O,s:s}", "op", "job", "argv", argv, "dir", j.dir);
	r = spawnsvc_call(&d->spawner, req, &reply, 30000);
	json_decref(req);
	if (r || !json_is_true(json_object_get(reply, "ok"))) {
		api_error(rs, 503, "the spawner could not start the snapshot job: %s",
			  r ? strerror(-r) : json_string_value(json_object_get(reply, "error")));
		goto unlock;
	}
	snprintf(j.tag, sizeof(j.tag), "%s", tag);
	snprintf(j.kind, sizeof(j.kind), "%s", kind);
	j.pid = json_integer_value(json_object_get(reply, "pid"));
	j.start_time = (uint64_t)json_integer_value(json_object_get(reply, "start_time"));
	j.started_ms = wall_ms();
	if (store_job_put(&d->store, &j)) {
		api_error(rs, 500, "cannot record the snapshot job");
		goto unlock;
	}
	api_json(rs, 202,
		 json_pack("{s:s,s:s,s:s,s:s,s:I}", "tag", tag, "state", "creating", "kind", kind,
			   "log", j.dir, "pid", (json_int_t)j.pid));
unlock:
	pthread_mutex_unlock(&d->lock);
out:
	json_decref(argv);
	json_decref(reply);
	json_decref(body);
}
