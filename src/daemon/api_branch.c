/* POST /v1/sandboxes/{id}/branch: a new snapshot of a running sandbox
 * (fork/branch.h), and the branches still being written.
 *
 * Body {"tag"?: T, "mode"?: "full"|"diff"|"live" (default live),
 * "wait"?: bool (default true)}. With wait the reply is 201 and the
 * snapshot's description once it is in place; with wait:false 202 and
 * {"tag", "state": "writing"} at once, the branch written on a thread of
 * its own: until it is in place GET /v1/snapshots/{tag} says "writing"
 * (or "failed", with the error, until the tag is deleted), and sandboxes
 * from it are refused with 409.
 *
 * Errors: 404 no such sandbox; 409 it is not running, the tag exists or
 * is being written, or the snapshot it runs from is gone; 400 a bad body;
 * 507 the disk filled up (nothing is left of the branch, the sandbox runs
 * on); 500 anything else, with the cause. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/util.h"
#include "daemon/api.h"
#include "daemon/sandbox.h"
#include "fork/branch.h"

#define MAX_WRITING 64

/* Branches being written (wait:false), and those that failed, by tag. One
 * daemon per process, so the table is the process's. */
struct writing {
	char tag[SNAPSHOT_TAG_MAX + 1];
	char parent[SNAPSHOT_TAG_MAX + 1];
	char sandbox[64];
	char run_dir[PATH_MAX];
	char error[600];
	enum branch_mode mode;
	bool failed, used;
	int64_t started_ms;
	struct daemon *d;
};

static pthread_mutex_t wlock = PTHREAD_MUTEX_INITIALIZER;
static struct writing wtable[MAX_WRITING];

static struct writing *find(const char *tag)
{
	for (size_t i = 0; i < MAX_WRITING; i++)
		if (wtable[i].used && !strcmp(wtable[i].tag, tag))
			return &wtable[i];
	return NULL;
}

json_t *api_branch_state(const char *tag)
{
	struct writing *w;
	json_t *o = NULL;

	pthread_mutex_lock(&wlock);
	w = find(tag);
	if (w) {
		o = json_pack("{s:s,s:s,s:s,s:s,s:s,s:I}", "tag", w->tag, "state",
			      w->failed ? "failed" : "writing", "kind", "branch", "parent",
			      w->parent, "mode", branch_mode_name(w->mode), "started_ms",
			      (json_int_t)w->started_ms);
		if (o && w->failed)
			json_object_set_new(o, "error", json_string(w->error));
	}
	pthread_mutex_unlock(&wlock);
	return o;
}

void api_branch_list(json_t *arr)
{
	char tags[MAX_WRITING][SNAPSHOT_TAG_MAX + 1];
	size_t n = 0;

	pthread_mutex_lock(&wlock);
	for (size_t i = 0; i < MAX_WRITING; i++)
		if (wtable[i].used)
			memcpy(tags[n++], wtable[i].tag, sizeof(tags[0]));
	pthread_mutex_unlock(&wlock);
	for (size_t i = 0; i < n; i++) {
		json_t *o = api_branch_state(tags[i]);

		if (o)
			json_array_append_new(arr, o);
	}
}

int api_branch_busy(const char *tag, bool forget_failed)
{
	struct writing *w;
	int r = 0;

	pthread_mutex_lock(&wlock);
	w = find(tag);
	if (w && !w->failed)
		r = 1;
	else if (w && forget_failed)
		w->used = false, r = -1;
	else if (w)
		r = -1;
	pthread_mutex_unlock(&wlock);
	return r;
}

/* The status for a failed branch_take(). */
static int status_of(int err)
{
	switch (err) {
	case -EEXIST:
	case -ENOENT:
	case -ECONNREFUSED:
	case -ECONNRESET:
		return 409;
	case -EINVAL:
		return 400;
	case -ENOSPC:
	case -EDQUOT:
		return 507;
	default:
		return 500;
	}
}

static void *write_thread(void *arg)
{
	struct writing *w = arg;
	struct branch_result res;
	int err;

	log_error_clear();
	err = branch_take(w->run_dir, w->parent, w->tag, w->mode, &res);
	pthread_mutex_lock(&wlock);
	if (err) {
		w->failed = true;
		if (!log_take_error(w->error, sizeof(w->error)))
			snprintf(w->error, sizeof(w->error), "%s", strerror(-err));
	} else {
		w->used = false;
	}
	pthread_mutex_unlock(&wlock);
	return NULL;
}

static void start_async(struct api_resp *rs, const struct child_rec *r, const char *tag,
			enum branch_mode mode, struct daemon *d)
{
	struct writing *w = NULL;
	pthread_attr_t at;
	pthread_t t;

	pthread_mutex_lock(&wlock);
	if (find(tag)) {
		pthread_mutex_unlock(&wlock);
		api_error(rs, 409, "snapshot '%s' is being written", tag);
		return;
	}
	for (size_t i = 0; i < MAX_WRITING && !w; i++)
		if (!wtable[i].used)
			w = &wtable[i];
	if (!w) {
		pthread_mutex_unlock(&wlock);
		api_error(rs, 503,
			  "%d branches are being written or failed; delete failed ones "
			  "or wait",
			  MAX_WRITING);
		return;
	}
	memset(w, 0, sizeof(*w));
	w->used = true;
	w->d = d;
	w->mode = mode;
	w->started_ms = wall_ms();
	snprintf(w->tag, sizeof(w->tag), "%s", tag);
	snprintf(w->parent, sizeof(w->parent), "%s", r->tag);
	snprintf(w->sandbox, sizeof(w->sandbox), "%s", r->id);
	snprintf(w->run_dir, sizeof(w->run_dir), "%s", r->run_dir);
	pthread_attr_init(&at);
	pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
	if (pthread_create(&t, &at, write_thread, w)) {
		w->used = false;
		pthread_mutex_unlock(&wlock);
		pthread_attr_destroy(&at);
		api_error(rs, 500, "cannot start the branch's thread");
		return;
	}
	pthread_attr_destroy(&at);
	pthread_mutex_unlock(&wlock);
	api_json(rs, 202,
		 json_pack("{s:s,s:s,s:s,s:s,s:s}", "tag", tag, "state", "writing", "parent",
			   r->tag, "sandbox", r->id, "mode", branch_mode_name(mode)));
}

void api_sandbox_branch(struct api_req *rq, struct api_resp *rs)
{
	static const char *const allowed[] = {"tag", "mode", "wait", NULL};
	const char *tag_in = NULL, *mode_s = "live";
	char tag[SNAPSHOT_TAG_MAX + 1], dir[PATH_MAX], why[600];
	enum branch_mode mode;
	struct branch_result res;
	struct child_rec r;
	struct stat st;
	int wait = 1, e;
	json_t *body = api_body_object(rq, rs, allowed), *info;

	if (!body)
		return;
	e = json_unpack(body, "{s?s, s?s, s?b}", "tag", &tag_in, "mode", &mode_s, "wait", &wait);
	if (e || branch_mode_parse(mode_s, &mode)) {
		json_decref(body);
		api_error(rs, 400,
			  "\"tag\" is a string, \"mode\" one of full, diff, live, \"wait\" "
			  "a boolean");
		return;
	}
	e = store_sandbox_get(&rq->d->store, rq->param, &r);
	if (e) {
		json_decref(body);
		if (e == -ENOENT)
			api_error(rs, 404, "no sandbox %s", rq->param);
		else
			api_error(rs, 500, "cannot read the state database");
		return;
	}
	if (r.pid <= 0 || !child_alive((pid_t)r.pid, r.start_time)) {
		json_decref(body);
		api_error(rs, 409, "sandbox %s is not running (its VMM exited); DELETE it", r.id);
		return;
	}
	log_error_clear();
	if (branch_pick_tag(r.tag, tag_in, tag, sizeof(tag))) {
		json_decref(body);
		api_error(rs, 400, "invalid tag: tags are [A-Za-z0-9_][A-Za-z0-9_.-]{0,63}");
		return;
	}
	json_decref(body);
	api_audit_tag(rs, tag);
	if (api_branch_busy(tag, false) || api_snapshot_job_running(rq->d, tag) ||
	    (!snapshot_dir(tag, dir, sizeof(dir)) && stat(dir, &st) == 0)) {
		api_error(rs, 409, "snapshot '%s' exists or is being written", tag);
		return;
	}
	if (!wait) {
		start_async(rs, &r, tag, mode, rq->d);
		return;
	}
	e = branch_take(r.run_dir, r.tag, tag, mode, &res);
	if (e) {
		if (!log_take_error(why, sizeof(why)))
			snprintf(why, sizeof(why), "%s", strerror(-e));
		api_error(rs, status_of(e), "branch of sandbox %s: %s", r.id, why);
		return;
	}
	info = api_snapshot_info(rq->d, tag);
	if (!info) {
		api_error(rs, 500, "branch '%s' was written but cannot be read back", tag);
		return;
	}
	json_object_set_new(info, "mode", json_string(branch_mode_name(mode)));
	json_object_set_new(info, "sandbox", json_string(r.id));
	json_object_set_new(info, "pause_us", json_integer((json_int_t)res.pause_us));
	json_object_set_new(info, "written_bytes", json_integer((json_int_t)res.bytes));
	json_object_set_new(info, "seconds", json_real(res.total_ns / 1e9));
	api_json(rs, 201, info);
}
