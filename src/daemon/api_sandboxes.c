/* /v1/sandboxes: spawn, list, get, delete; and re-adoption at start-up. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/util.h"
#include "daemon/api.h"
#include "daemon/sandbox.h"
#include "isolate/cgroup.h"
#include "isolate/netns.h"

static json_t *iso_time(int64_t ms)
{
	time_t t = (time_t)(ms / 1000);
	struct tm tm;
	char buf[40];
	size_t n;

	gmtime_r(&t, &tm);
	n = strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(buf + n, sizeof(buf) - n, ".%03dZ", (int)(ms % 1000));
	return json_string(buf);
}

/* An ended sandbox with a memory limit: did the kernel's OOM killer end
 * it? (Its leaf counts the kill until the sandbox is deleted.) */
static bool oom_killed(const struct child_rec *r)
{
	struct cgroup_leaf leaf = {.version = CGROUP_V1};
	char events[PATH_MAX + 16];
	uint64_t kills = 0;
	struct stat st;

	if (!r->cgroup[0])
		return false;
	snprintf(leaf.path, sizeof(leaf.path), "%s", r->cgroup);
	snprintf(events, sizeof(events), "%s/memory.events", r->cgroup);
	if (stat(events, &st) == 0)
		leaf.version = CGROUP_V2;
	return cgroup_leaf_oom_kills(&leaf, &kills) == 0 && kills > 0;
}

static json_t *sandbox_json(const struct child_rec *r)
{
	bool alive = r->pid > 0 && child_alive((pid_t)r->pid, r->start_time);
	char vsock[PATH_MAX + 16];
	struct stat st;
	json_t *o = json_object();

	snprintf(vsock, sizeof(vsock), "%s/vsock.sock", r->run_dir);
	json_object_set_new(o, "id", json_string(r->id));
	json_object_set_new(o, "snapshot_tag", json_string(r->tag));
	json_object_set_new(o, "index", json_integer(r->index));
	json_object_set_new(o, "state",
			    json_string(r->pid <= 0 ? "starting"
					: alive	    ? "running"
						    : "exited"));
	json_object_set_new(o, "oom_killed", json_boolean(!alive && oom_killed(r)));
	json_object_set_new(o, "pid", json_integer(r->pid));
	if (r->netns_index >= 0) {
		char ns[40];

		snprintf(ns, sizeof(ns), "%s%lld", NETNS_PREFIX, (long long)r->netns_index);
		json_object_set_new(o, "netns", json_string(ns));
	} else {
		json_object_set_new(o, "netns", json_null());
	}
	/* The guest's address exists only in its namespace, and only when
	 * the snapshot has a network device. */
	json_object_set_new(o, "guest_addr",
			    r->netns_index >= 0 && r->guest_net ? json_string(NETNS_GUEST_ADDR)
								: json_null());
	json_object_set_new(o, "vsock",
			    alive && stat(vsock, &st) == 0 ? json_string(vsock) : json_null());
	json_object_set_new(o, "run_dir", json_string(r->run_dir));
	json_object_set_new(o, "memory_limit_mib",
			    r->memory_limit_mib ? json_integer((json_int_t)r->memory_limit_mib)
						: json_null());
	json_object_set_new(o, "live_fork", json_boolean(r->live_fork));
	json_object_set_new(o, "hugepages", json_boolean(r->hugepages));
	json_object_set_new(o, "created_at", iso_time(r->created_ms));
	return o;
}

int api_count_sandboxes(struct daemon *d, uint64_t *running, uint64_t *exited)
{
	struct child_rec *all;
	size_t n;
	int r = store_sandbox_list(&d->store, NULL, &all, &n);

	*running = *exited = 0;
	if (r)
		return r;
	for (size_t i = 0; i < n; i++) {
		if (all[i].pid > 0 && child_alive((pid_t)all[i].pid, all[i].start_time))
			(*running)++;
		else
			(*exited)++;
	}
	free(all);
	return 0;
}

/* The last line of <dir>/vmm.log: why a child failed, in its VMM's words. */
static void vmm_log_tail(const char *dir, char *out, size_t size)
{
	char path[PATH_MAX + 16], buf[2048], *p;
	int fd;
	ssize_t n;
	off_t end;

	out[0] = 0;
	snprintf(path, sizeof(path), "%s/vmm.log", dir);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	end = lseek(fd, 0, SEEK_END);
	n = pread(fd, buf, sizeof(buf) - 1, end > (off_t)sizeof(buf) - 1 ? end - 2047 : 0);
	close(fd);
	if (n <= 0)
		return;
	buf[n] = 0;
	while (n > 0 && buf[n - 1] == '\n')
		buf[--n] = 0;
	p = strrchr(buf, '\n');
	if ((size_t)snprintf(out, size, "%s", p ? p + 1 : buf) >= size)
		out[size - 1] = 0; /* a tail of a line is still a clue */
}

static void discard(struct daemon *d, struct child_rec *recs, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (recs[i].pid > 0 && child_stop((pid_t)recs[i].pid, recs[i].start_time, 2000))
			log_warn("sandbox %s (pid %lld) did not stop", recs[i].id,
				 (long long)recs[i].pid);
		else if (sandbox_release(&recs[i]))
			log_warn("sandbox %s: its cgroup or namespace is left behind", recs[i].id);
		if (sandbox_remove_dir(d->run_root, recs[i].id) ||
		    store_sandbox_delete(&d->store, recs[i].id))
			log_warn("sandbox %s: leftovers in %s", recs[i].id, recs[i].run_dir);
	}
}

static bool opt_bool(json_t *body, const char *key, bool *out, struct api_resp *rs)
{
	json_t *v = json_object_get(body, key);

	*out = false;
	if (!v || json_is_null(v))
		return true;
	if (!json_is_boolean(v)) {
		api_error(rs, 400, "\"%s\" must be true or false", key);
		return false;
	}
	*out = json_is_true(v);
	return true;
}

bool api_spawn_parse(json_t *body, struct api_spawn_req *s, struct api_resp *rs)
{
	json_t *n = json_object_get(body, "n"), *mem = json_object_get(body, "memory_limit_mib");

	s->tag = json_string_value(json_object_get(body, "snapshot_tag"));
	if (!s->tag) {
		api_error(rs, 400, "\"snapshot_tag\" (a string) is required");
		return false;
	}
	if (!snapshot_tag_valid(s->tag)) {
		api_error(rs, 400,
			  "invalid snapshot_tag: tags are [A-Za-z0-9_][A-Za-z0-9_.-]{0,63}, never "
			  "'..'");
		return false;
	}
	s->n = 1;
	s->memory_limit_mib = 0;
	if (n && !json_is_null(n)) {
		if (!json_is_integer(n) || json_integer_value(n) < 1 ||
		    json_integer_value(n) > DAEMON_MAX_CHILDREN) {
			api_error(rs, 400, "\"n\" must be an integer from 1 to %d",
				  DAEMON_MAX_CHILDREN);
			return false;
		}
		s->n = json_integer_value(n);
	}
	if (!opt_bool(body, "per_child_netns", &s->netns, rs) ||
	    !opt_bool(body, "live_fork", &s->live_fork, rs) ||
	    !opt_bool(body, "hugepages", &s->hugepages, rs))
		return false;
	if (mem && !json_is_null(mem)) {
		if (!json_is_integer(mem) || json_integer_value(mem) < 16 ||
		    json_integer_value(mem) > (1 << 20)) {
			api_error(rs, 400,
				  "\"memory_limit_mib\" must be null or an integer from 16 to "
				  "1048576");
			return false;
		}
		s->memory_limit_mib = json_integer_value(mem);
	}
	if (s->hugepages && !s->live_fork) {
		api_error(rs, 400, "\"hugepages\" needs \"live_fork\": true");
		return false;
	}
	return true;
}

/* Run directories and rows first (so a crash leaves something `forkd
 * cleanup` or the next start can find), then the fork. d->lock is held
 * while the rows are chosen and written (namespace indices must not be
 * handed out twice), not across the spawn, which may take minutes: other
 * requests, a DELETE of another sandbox included, go on meanwhile. A row
 * with no pid yet is a sandbox still starting: DELETE refuses it (409). */
static void spawn(struct daemon *d, const struct api_spawn_req *s, struct api_resp *rs)
{
	size_t n = (size_t)s->n, failed = 0;
	struct child_rec *recs = calloc(n, sizeof(*recs));
	json_t *req, *kids = NULL, *reply = NULL, *out;
	char first_err[600] = "";
	int64_t created = wall_ms();
	unsigned agent_secs =
	    d->cfg.agent_timeout_secs ? d->cfg.agent_timeout_secs : DAEMON_AGENT_TIMEOUT_SECS;
	uint32_t *nsidx = NULL;
	int r;

	if (!recs) {
		api_error(rs, 500, "out of memory");
		return;
	}
	pthread_mutex_lock(&d->lock);
	if (s->netns) {
		struct child_rec *all = NULL;
		size_t n_all = 0;

		nsidx = calloc(n, sizeof(*nsidx));
		r = nsidx ? store_sandbox_list(&d->store, NULL, &all, &n_all) : -ENOMEM;
		if (!r)
			r = sandbox_netns_alloc(all, n_all, nsidx, n);
		free(all);
		if (r) {
			if (r == -ENOSPC)
				api_error(
				    rs, 409,
				    "no free network namespace index for %zu sandboxes (at most "
				    "%d namespaces; delete sandboxes or run 'forkd cleanup')",
				    n, NETNS_MAX_CHILDREN);
			else
				api_error(rs, 500, "cannot choose network namespaces: %s",
					  strerror(-r));
			pthread_mutex_unlock(&d->lock);
			free(recs);
			free(nsidx);
			return;
		}
	}
	kids = json_array();
	for (size_t i = 0; i < n; i++) {
		struct child_rec *rec = &recs[i];

		if (child_id_new(rec->id) ||
		    sandbox_dir(d->run_root, rec->id, rec->run_dir, sizeof(rec->run_dir)) ||
		    mkdir(rec->run_dir, 0700) < 0) {
			api_error(rs, 500, "cannot create a run directory in %s: %s", d->run_root,
				  strerror(errno));
			discard(d, recs, i);
			goto out_locked;
		}
		snprintf(rec->tag, sizeof(rec->tag), "%s", s->tag);
		rec->index = (uint32_t)i;
		rec->live_fork = s->live_fork;
		rec->hugepages = s->hugepages;
		rec->created_ms = created;
		rec->netns_index = nsidx ? (int64_t)nsidx[i] : -1;
		rec->memory_limit_mib = (uint64_t)s->memory_limit_mib;
		if (store_sandbox_put(&d->store, rec)) {
			api_error(rs, 500, "cannot record the sandbox in the state database");
			discard(d, recs, i + 1);
			goto out_locked;
		}
		json_array_append_new(kids, json_pack("{s:I,s:s,s:s}", "index", (json_int_t)i,
						      "dir", rec->run_dir, "id", rec->id));
		if (nsidx)
			json_object_set_new(json_array_get(kids, i), "netns",
					    json_integer(nsidx[i]));
	}
	req = json_pack("{s:s,s:s,s:b,s:b,s:I,s:b,s:I,s:b,s:I,s:O}", "op", "spawn", "tag", s->tag,
			"live_fork", s->live_fork, "hugepages", s->hugepages, "timeout_ms",
			(json_int_t)d->cfg.spawn_timeout_secs * 1000, "jail", !d->cfg.no_jail,
			"memory_limit_mib", s->memory_limit_mib, "per_child_netns", s->netns,
			"agent_timeout_ms", (json_int_t)agent_secs * 1000, "children", kids);
	pthread_mutex_unlock(&d->lock);
	r = spawnsvc_call(&d->spawner, req, &reply,
			  (int)((d->cfg.spawn_timeout_secs + agent_secs) * 1000 + 30000 + 20 * n));
	json_decref(req);
	if (r) {
		api_error(rs, 503, "the spawner process %s; restart forkd serve",
			  r == -ETIMEDOUT ? "did not answer" : "is gone");
		discard(d, recs, n);
		goto out;
	}
	if (!json_is_true(json_object_get(reply, "ok"))) {
		int e = (int)json_integer_value(json_object_get(reply, "errno"));
		const char *msg = json_string_value(json_object_get(reply, "error"));

		api_error(rs,
			  e == ENOENT	 ? 404
			  : e == EINVAL	 ? 400
			  : e == ENOTSUP ? 501
					 : 409,
			  "%s", msg ? msg : "the spawner refused");
		discard(d, recs, n);
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		json_t *k = json_array_get(json_object_get(reply, "children"), i);
		int status = (int)json_integer_value(json_object_get(k, "status"));

		const char *cg = json_string_value(json_object_get(k, "cgroup"));

		recs[i].pid = json_integer_value(json_object_get(k, "pid"));
		recs[i].start_time = (uint64_t)json_integer_value(json_object_get(k, "start_time"));
		/* What the spawner made for it, released with it even on failure. */
		snprintf(recs[i].cgroup, sizeof(recs[i].cgroup), "%s", cg ? cg : "");
		recs[i].netns_created = json_is_true(json_object_get(k, "netns_created"));
		recs[i].guest_net = json_is_true(json_object_get(reply, "net"));
		if (status || recs[i].pid <= 0) {
			char tail[300];

			if (!failed++) {
				vmm_log_tail(recs[i].run_dir, tail, sizeof(tail));
				snprintf(first_err, sizeof(first_err), "child %zu: %s%s%s", i,
					 json_string_value(json_object_get(k, "error")),
					 tail[0] ? "; its VMM said: " : "", tail);
			}
			continue;
		}
		metrics_restore(&d->metrics,
				(double)json_integer_value(json_object_get(k, "restore_ns")) / 1e9);
		if (store_sandbox_put(&d->store, &recs[i]))
			failed++;
	}
	if (failed) {
		metrics_add(&d->metrics, &d->metrics.spawn_failed, failed);
		api_error(rs, 500, "%zu of %zu children failed to start (all were stopped): %s",
			  failed, n, first_err);
		discard(d, recs, n);
		goto out;
	}
	metrics_add(&d->metrics, &d->metrics.spawned, n);
	if (store_snapshot_seen(&d->store, s->tag))
		log_warn("could not record snapshot %s as seen", s->tag);
	out = json_array();
	for (size_t i = 0; i < n; i++)
		json_array_append_new(out, sandbox_json(&recs[i]));
	api_json(rs, 201, out);
	goto out;
out_locked:
	pthread_mutex_unlock(&d->lock);
out:
	json_decref(kids);
	json_decref(reply);
	free(recs);
	free(nsidx);
}

void api_sandboxes_create(struct api_req *rq, struct api_resp *rs)
{
	static const char *const allowed[] = {
	    "snapshot_tag", "n", "per_child_netns", "memory_limit_mib", "live_fork",
	    "hugepages",    NULL};
	struct daemon *d = rq->d;
	json_t *body = api_body_object(rq, rs, allowed);
	struct api_spawn_req s;
	char dir[PATH_MAX];
	struct stat st;

	if (!body)
		return;
	if (!api_spawn_parse(body, &s, rs))
		goto out;
	api_audit_tag(rs, s.tag);
	if (api_branch_busy(s.tag, false) > 0) {
		api_error(rs, 409, "snapshot '%s' is still being written (a branch)", s.tag);
		goto out;
	}
	if (snapshot_dir(s.tag, dir, sizeof(dir)) || stat(dir, &st) < 0) {
		api_error(rs, 404, "no snapshot '%s' (create it with POST /v1/snapshots)", s.tag);
		goto out;
	}
	if (api_snapshot_job_running(d, s.tag)) {
		api_error(rs, 409, "snapshot '%s' is still being created", s.tag);
		goto out;
	}
	spawn(d, &s, rs);
out:
	json_decref(body);
}

void api_sandboxes_list(struct api_req *rq, struct api_resp *rs)
{
	const char *tag = api_query(rq, "tag");
	struct child_rec *all;
	json_t *out;
	size_t n;

	if (tag && !snapshot_tag_valid(tag)) {
		api_error(rs, 400, "invalid tag filter: tags are [A-Za-z0-9_][A-Za-z0-9_.-]{0,63}");
		return;
	}
	if (store_sandbox_list(&rq->d->store, tag, &all, &n)) {
		api_error(rs, 500, "cannot read the state database");
		return;
	}
	out = json_array();
	for (size_t i = 0; i < n; i++)
		json_array_append_new(out, sandbox_json(&all[i]));
	free(all);
	api_json(rs, 200, out);
}

void api_sandbox_get(struct api_req *rq, struct api_resp *rs)
{
	struct child_rec r;
	int e = store_sandbox_get(&rq->d->store, rq->param, &r);

	if (e == -ENOENT)
		api_error(rs, 404, "no sandbox %s", rq->param);
	else if (e)
		api_error(rs, 500, "cannot read the state database");
	else
		api_json(rs, 200, sandbox_json(&r));
}

void api_sandbox_delete(struct api_req *rq, struct api_resp *rs)
{
	struct daemon *d = rq->d;
	struct child_rec r;
	bool alive;
	int e;

	pthread_mutex_lock(&d->lock);
	e = store_sandbox_get(&d->store, rq->param, &r);
	if (e) {
		pthread_mutex_unlock(&d->lock);
		if (e == -ENOENT)
			api_error(rs, 404, "no sandbox %s", rq->param);
		else
			api_error(rs, 500, "cannot read the state database");
		return;
	}
	if (r.pid <= 0) {
		pthread_mutex_unlock(&d->lock);
		api_error(rs, 409,
			  "sandbox %s is still starting; delete it once its create has answered",
			  r.id);
		return;
	}
	alive = child_alive((pid_t)r.pid, r.start_time);
	e = alive ? child_stop((pid_t)r.pid, r.start_time, 3000) : 0;
	if (e) {
		pthread_mutex_unlock(&d->lock);
		api_error(rs, 500, "sandbox %s (pid %lld) could not be stopped: %s", r.id,
			  (long long)r.pid, strerror(-e));
		return;
	}
	if (sandbox_release(&r))
		log_warn("sandbox %s: its cgroup or network namespace is left behind", r.id);
	/* All its files, vsock.sock included: a jailed VMM cannot unlink. */
	if (sandbox_remove_dir(d->run_root, r.id))
		log_warn("sandbox %s: files left in %s", r.id, r.run_dir);
	e = store_sandbox_delete(&d->store, r.id);
	pthread_mutex_unlock(&d->lock);
	if (e) {
		api_error(rs, 500, "sandbox %s stopped, but the state database refused the change",
			  r.id);
		return;
	}
	if (alive)
		metrics_add(&d->metrics, &d->metrics.killed, 1);
	api_json(rs, 200,
		 json_pack("{s:s,s:b,s:s}", "id", r.id, "deleted", 1, "state_before",
			   alive ? "running" : "exited"));
}

/* A child whose row lost its pid (the daemon died mid-spawn) left it in
 * its run directory's pid file. */
static void pid_from_file(struct child_rec *r)
{
	char path[PATH_MAX + 8], buf[64];
	long long pid;
	unsigned long long st;
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "%s/pid", r->run_dir);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return;
	buf[n] = 0;
	if (sscanf(buf, "%lld %llu", &pid, &st) == 2 && pid > 0) {
		r->pid = pid;
		r->start_time = st;
	}
}

void api_sandboxes_readopt(struct daemon *d)
{
	struct child_rec *all;
	size_t n, adopted = 0, forgotten = 0;

	if (store_sandbox_list(&d->store, NULL, &all, &n)) {
		log_warn("cannot read sandboxes from the state database; none re-adopted");
		return;
	}
	for (size_t i = 0; i < n; i++) {
		struct child_rec *r = &all[i];
		char expect[PATH_MAX];

		/* Only a directory the daemon would build itself is ever touched. */
		if (!child_id_valid(r->id) ||
		    sandbox_dir(d->run_root, r->id, expect, sizeof(expect)) ||
		    strcmp(expect, r->run_dir)) {
			log_warn("state database: sandbox row '%.40s' with run dir '%.200s' is not "
				 "under %s; dropping the row only",
				 r->id, r->run_dir, d->run_root);
			if (store_sandbox_delete(&d->store, r->id))
				log_warn("could not drop it");
			continue;
		}
		if (r->pid <= 0)
			pid_from_file(r);
		if (r->pid > 0 && child_alive((pid_t)r->pid, r->start_time)) {
			if (store_sandbox_put(&d->store, r))
				log_warn("sandbox %s: could not update its row", r->id);
			adopted++;
			continue;
		}
		if (sandbox_release(r) || sandbox_remove_dir(d->run_root, r->id) ||
		    store_sandbox_delete(&d->store, r->id))
			log_warn("sandbox %s: could not remove all of it", r->id);
		forgotten++;
	}
	free(all);
	metrics_add(&d->metrics, &d->metrics.adopted, adopted);
	metrics_add(&d->metrics, &d->metrics.forgotten, forgotten);
	log_info("re-adopted %zu running sandbox%s, forgot %zu that had exited", adopted,
		 adopted == 1 ? "" : "es", forgotten);
}
