/* POST /v1/sandboxes/{id}/ping|exec|eval, PUT/GET/DELETE .../files, GET
 * .../dir: requests forwarded to the sandbox's guest agent over its vsock
 * socket.
 *
 * Status codes: 200 the agent did it; 422 the agent answered ok:false (its
 * message in "error", plus "traceback" for eval); 409 the sandbox is not
 * running; 502 no agent answers on the socket or its answer is malformed;
 * 504 the agent did not answer in time. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/base64.h"
#include "common/util.h"
#include "agent/agent.h"
#include "daemon/api.h"
#include "daemon/sandbox.h"

#define AGENT_MARGIN_MS 15000 /* beyond the command's own timeout */

/* The sandbox's vsock path, or an error response. */
static bool running_sandbox(struct api_req *rq, struct api_resp *rs, char *vsock, size_t size)
{
	struct child_rec r;
	int e = store_sandbox_get(&rq->d->store, rq->param, &r);

	if (e == -ENOENT) {
		api_error(rs, 404, "no sandbox %s", rq->param);
		return false;
	}
	if (e) {
		api_error(rs, 500, "cannot read the state database");
		return false;
	}
	if (r.pid <= 0 || !child_alive((pid_t)r.pid, r.start_time)) {
		api_error(rs, 409, "sandbox %s is not running (its VMM exited); DELETE it", r.id);
		return false;
	}
	snprintf(vsock, size, "%s/vsock.sock", r.run_dir);
	return true;
}

static bool call_agent_(struct api_req *rq, struct api_resp *rs, json_t *req, int timeout_ms,
			size_t max_values, json_t **resp);

/* Send req (reference stolen) to the agent; on success *resp holds an
 * ok:true answer. Every other outcome has become the response. An answer
 * over max_values JSON values is refused unparsed (agent_call_values()). */
static bool call_agent_values(struct api_req *rq, struct api_resp *rs, json_t *req, int timeout_ms,
			      size_t max_values, json_t **resp)
{
	bool ok = call_agent_(rq, rs, req, timeout_ms, max_values, resp);

	json_decref(req);
	return ok;
}

static bool call_agent(struct api_req *rq, struct api_resp *rs, json_t *req, int timeout_ms,
		       json_t **resp)
{
	return call_agent_values(rq, rs, req, timeout_ms, AGENT_MAX_VALUES, resp);
}

static bool call_agent_(struct api_req *rq, struct api_resp *rs, json_t *req, int timeout_ms,
			size_t max_values, json_t **resp)
{
	char vsock[PATH_MAX + 16], err[AGENT_ERR_LEN];
	struct metrics *m = &rq->d->metrics;
	json_t *r;
	int e;

	*resp = NULL;
	if (!running_sandbox(rq, rs, vsock, sizeof(vsock)))
		return false;
	metrics_add(m, &m->agent_calls, 1);
	e = agent_call_values(vsock, req, &r, timeout_ms, max_values, err, sizeof(err));
	if (e) {
		metrics_add(m, &m->agent_errors, 1);
		api_error(rs,
			  e == -ETIMEDOUT		       ? 504
			  : e == -ENOENT || e == -ECONNREFUSED ? 409
							       : 502,
			  "sandbox %s: %s", rq->param, err);
		return false;
	}
	if (!json_is_true(json_object_get(r, "ok"))) {
		const char *msg = json_string_value(json_object_get(r, "error"));
		json_t *tb = json_object_get(r, "traceback"), *o;

		snprintf(rs->error, sizeof(rs->error), "%s", msg ? msg : "the agent refused");
		o = json_pack("{s:s}", "error", msg ? msg : "the agent refused (no message)");
		if (!o)
			o = json_pack("{s:s}", "error", "the agent refused (message not UTF-8)");
		if (json_is_string(tb))
			json_object_set(o, "traceback", tb);
		api_json(rs, 422, o);
		json_decref(r);
		return false;
	}
	json_object_del(r, "id");
	json_object_del(r, "ok");
	*resp = r;
	return true;
}

void api_sandbox_ping(struct api_req *rq, struct api_resp *rs)
{
	static const char *const allowed[] = {NULL};
	json_t *body = api_body_object(rq, rs, allowed), *resp;
	uint64_t t0 = now_ns();

	if (!body)
		return;
	json_decref(body);
	if (!call_agent(rq, rs, json_pack("{s:s}", "op", "ping"), 10000, &resp))
		return;
	json_object_set_new(resp, "sandbox", json_string(rq->param));
	json_object_set_new(resp, "rtt_ms", json_real((double)(now_ns() - t0) / 1e6));
	api_json(rs, 200, resp);
}

static bool string_array(json_t *a, size_t max)
{
	size_t i;
	json_t *v;

	if (!json_is_array(a) || !json_array_size(a) || json_array_size(a) > max)
		return false;
	json_array_foreach(a, i, v) if (!json_is_string(v)) return false;
	return true;
}

static bool string_map(json_t *o)
{
	const char *k;
	json_t *v;

	if (!json_is_object(o))
		return false;
	json_object_foreach(o, k, v) if (!json_is_string(v)) return false;
	return true;
}

/* "timeout": a number of seconds in (0, max]; default def. */
static bool timeout_of(json_t *body, double def, double *out, struct api_resp *rs)
{
	json_t *t = json_object_get(body, "timeout");

	*out = def;
	if (!t || json_is_null(t))
		return true;
	if (!json_is_number(t) || json_number_value(t) <= 0 ||
	    json_number_value(t) > EXEC_TIMEOUT_MAX) {
		api_error(rs, 400, "\"timeout\" must be a number of seconds above 0, at most %d",
			  EXEC_TIMEOUT_MAX);
		return false;
	}
	*out = json_number_value(t);
	return true;
}

json_t *api_exec_request(json_t *body, double *timeout, struct api_resp *rs)
{
	json_t *argv = json_object_get(body, "argv"), *cmd = json_object_get(body, "cmd"), *req, *v;

	if (!!argv == !!cmd) {
		api_error(rs, 400,
			  "give exactly one of \"argv\" (array of strings) and \"cmd\" "
			  "(a shell command string)");
		return NULL;
	}
	if (argv && !string_array(argv, 4096)) {
		api_error(rs, 400, "\"argv\" must be a non-empty array of at most 4096 strings");
		return NULL;
	}
	if (cmd && (!json_is_string(cmd) || !json_string_length(cmd))) {
		api_error(rs, 400, "\"cmd\" must be a non-empty string");
		return NULL;
	}
	if ((v = json_object_get(body, "env")) && !string_map(v)) {
		api_error(rs, 400, "\"env\" must be an object of strings");
		return NULL;
	}
	if ((v = json_object_get(body, "cwd")) && !json_is_string(v)) {
		api_error(rs, 400, "\"cwd\" must be a string");
		return NULL;
	}
	if (((v = json_object_get(body, "stdin")) && !json_is_string(v)) ||
	    ((v = json_object_get(body, "stdin_b64")) && !json_is_string(v))) {
		api_error(rs, 400, "\"stdin\" and \"stdin_b64\" must be strings");
		return NULL;
	}
	if (json_object_get(body, "stdin") && json_object_get(body, "stdin_b64")) {
		api_error(rs, 400, "give at most one of \"stdin\" and \"stdin_b64\"");
		return NULL;
	}
	if (!timeout_of(body, 60, timeout, rs))
		return NULL;
	req = json_deep_copy(body);
	if (!req) {
		api_error(rs, 500, "out of memory");
		return NULL;
	}
	json_object_del(req, "cmd");
	if (cmd)
		json_object_set_new(req, "argv", json_pack("[s,s,O]", "/bin/sh", "-c", cmd));
	json_object_set_new(req, "op", json_string("exec"));
	json_object_set_new(req, "timeout", json_real(*timeout));
	return req;
}

void api_sandbox_exec(struct api_req *rq, struct api_resp *rs)
{
	static const char *const allowed[] = {"argv",  "cmd",	    "env",     "cwd",
					      "stdin", "stdin_b64", "timeout", NULL};
	json_t *body = api_body_object(rq, rs, allowed), *req, *resp;
	double timeout;

	if (!body)
		return;
	req = api_exec_request(body, &timeout, rs);
	if (req && call_agent(rq, rs, req, (int)(timeout * 1000) + AGENT_MARGIN_MS, &resp))
		api_json(rs, 200, resp);
	json_decref(body);
}

void api_sandbox_eval(struct api_req *rq, struct api_resp *rs)
{
	static const char *const allowed[] = {"code", "timeout", NULL};
	json_t *body = api_body_object(rq, rs, allowed), *resp;
	json_t *code;
	double timeout;

	if (!body)
		return;
	code = json_object_get(body, "code");
	if (!json_is_string(code)) {
		api_error(rs, 400, "\"code\" (a string of Python) is required");
		goto out;
	}
	if (!timeout_of(body, 60, &timeout, rs))
		goto out;
	if (call_agent(rq, rs, json_pack("{s:s,s:O}", "op", "eval", "code", code),
		       (int)(timeout * 1000), &resp))
		api_json(rs, 200, resp);
out:
	json_decref(body);
}

/* ?path=: absolute, at most 4096 bytes (the guest resolves it; it is the
 * sandbox's own file system). */
static const char *file_path(struct api_req *rq, struct api_resp *rs)
{
	const char *path = api_query(rq, "path");

	if (!path || path[0] != '/' || strlen(path) > 4096) {
		api_error(rs, 400,
			  "query parameter \"path\" must be an absolute path in the guest "
			  "(at most 4096 bytes)");
		return NULL;
	}
	return path;
}

void api_sandbox_file_put(struct api_req *rq, struct api_resp *rs)
{
	const char *path = file_path(rq, rs), *mode_s = api_query(rq, "mode");
	json_t *req, *resp;
	unsigned long mode = 0644;
	char *data, *end;

	if (!path)
		return;
	if (mode_s) {
		mode = strtoul(mode_s, &end, 8);
		if (!*mode_s || *end || mode > 07777) {
			api_error(rs, 400, "\"mode\" must be octal permissions such as 644");
			return;
		}
	}
	data = base64_encode_alloc(rq->body, rq->body_len);
	if (!data) {
		api_error(rs, 500, "out of memory");
		return;
	}
	req = json_pack("{s:s,s:s,s:s,s:i}", "op", "write_file", "path", path, "data", data, "mode",
			(int)mode);
	free(data);
	if (!req) {
		api_error(rs, 400, "\"path\" is not valid UTF-8");
		return;
	}
	if (call_agent(rq, rs, req, 60000, &resp)) {
		json_object_set_new(resp, "path", json_string(path));
		api_json(rs, 200, resp);
	}
}

void api_sandbox_file_get(struct api_req *rq, struct api_resp *rs)
{
	const char *path = file_path(rq, rs), *data;
	uint8_t *raw;
	json_t *req, *resp;
	ssize_t n;

	if (!path)
		return;
	req = json_pack("{s:s,s:s}", "op", "read_file", "path", path);
	if (!req) {
		api_error(rs, 400, "\"path\" is not valid UTF-8");
		return;
	}
	if (!call_agent(rq, rs, req, 60000, &resp))
		return;
	data = json_string_value(json_object_get(resp, "data"));
	n = data ? base64_decode(data, strlen(data), &raw) : -1;
	json_decref(resp);
	if (n < 0) {
		api_error(rs, 502,
			  "sandbox %s: the agent's read_file answer has no valid base64 data",
			  rq->param);
		return;
	}
	api_bytes(rs, 200, "application/octet-stream", raw, (size_t)n);
	free(raw);
}

/* The guest is not trusted: a list_dir answer is rebuilt from the fields
 * checked here, and anything else about it makes the whole answer a 502. */
#define LIST_MAX_ENTRIES 10000 /* the agent's own bound (docs/AGENT.md) */
#define NAME_MAX_BYTES	 255   /* NAME_MAX */

static const char *const file_types[] = {"file", "dir", "symlink", "other", NULL};

static bool file_type_ok(json_t *t)
{
	const char *s = json_string_value(t);

	for (int i = 0; s && file_types[i]; i++)
		if (!strcmp(s, file_types[i]))
			return true;
	return false;
}

/* One entry as {name, type, size, mode, mtime}, or NULL with why. */
static json_t *dir_entry(json_t *e, const char **why)
{
	json_t *name = json_object_get(e, "name"), *type = json_object_get(e, "type");
	json_t *size = json_object_get(e, "size"), *mode = json_object_get(e, "mode");
	json_t *mtime = json_object_get(e, "mtime");
	const char *n = json_string_value(name);
	size_t len = json_string_length(name);

	if (!json_is_object(e))
		*why = "an entry is not an object";
	else if (!n || !len || len > NAME_MAX_BYTES || strlen(n) != len || strchr(n, '/') ||
		 !strcmp(n, ".") || !strcmp(n, ".."))
		*why = "an entry's \"name\" is not a file name (1-255 bytes, no NUL or '/', not "
		       "'.' or '..')";
	else if (!file_type_ok(type))
		*why = "an entry's \"type\" is not file, dir, symlink or other";
	else if (!json_is_integer(size) || json_integer_value(size) < 0)
		*why = "an entry's \"size\" is not a non-negative integer";
	else if (!json_is_integer(mode) || json_integer_value(mode) < 0 ||
		 json_integer_value(mode) > 07777)
		*why = "an entry's \"mode\" is not an integer from 0 to 07777";
	else if (!json_is_number(mtime))
		*why = "an entry's \"mtime\" is not a number";
	else
		return json_pack("{s:O,s:O,s:O,s:O,s:O}", "name", name, "type", type, "size", size,
				 "mode", mode, "mtime", mtime);
	return NULL;
}

void api_sandbox_dir_get(struct api_req *rq, struct api_resp *rs)
{
	const char *path = file_path(rq, rs), *why = NULL;
	json_t *req, *resp, *entries, *trunc, *out, *e, *clean;
	size_t i;

	if (!path)
		return;
	req = json_pack("{s:s,s:s}", "op", "list_dir", "path", path);
	if (!req) {
		api_error(rs, 400, "\"path\" is not valid UTF-8");
		return;
	}
	if (!call_agent_values(rq, rs, req, 60000, AGENT_MAX_VALUES_LIST, &resp))
		return;
	entries = json_object_get(resp, "entries");
	trunc = json_object_get(resp, "truncated");
	out = json_array();
	if (!json_is_array(entries) || json_array_size(entries) > LIST_MAX_ENTRIES)
		why = "\"entries\" is not an array of at most 10000 entries";
	else if (!json_is_boolean(trunc))
		why = "\"truncated\" is not true or false";
	json_array_foreach(entries, i, e)
	{
		if (why || !out)
			break;
		clean = dir_entry(e, &why);
		if (clean && json_array_append_new(out, clean))
			why = "out of memory";
	}
	if (!why && out)
		out = json_pack("{s:s,s:o,s:O}", "path", path, "entries", out, "truncated", trunc);
	json_decref(resp);
	if (why || !out) {
		json_decref(out);
		api_error(rs, why ? 502 : 500, "sandbox %s: the agent's list_dir answer: %s",
			  rq->param, why ? why : "out of memory");
		return;
	}
	api_json(rs, 200, out);
}

void api_sandbox_file_delete(struct api_req *rq, struct api_resp *rs)
{
	const char *path = file_path(rq, rs), *r = api_query(rq, "recursive");
	bool recursive = r && (!strcmp(r, "true") || !strcmp(r, "1"));
	json_t *req, *resp, *type;

	if (!path)
		return;
	if (r && !recursive && strcmp(r, "false") && strcmp(r, "0")) {
		api_error(rs, 400, "\"recursive\" is true or false");
		return;
	}
	req = json_pack("{s:s,s:s,s:b}", "op", "remove", "path", path, "recursive", recursive);
	if (!req) {
		api_error(rs, 400, "\"path\" is not valid UTF-8");
		return;
	}
	if (!call_agent(rq, rs, req, 60000, &resp))
		return;
	type = json_object_get(resp, "type");
	if (!file_type_ok(type)) {
		json_decref(resp);
		api_error(rs, 502,
			  "sandbox %s: the agent's remove answer has no \"type\" (file, dir, "
			  "symlink or other)",
			  rq->param);
		return;
	}
	api_json(rs, 200, json_pack("{s:s,s:b,s:O}", "path", path, "deleted", 1, "type", type));
	json_decref(resp);
}
