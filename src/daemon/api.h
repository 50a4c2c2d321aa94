/* The parsed request every API handler gets, and the response it fills.
 * http.c owns the HTTP side (authentication, body limits, routing, the
 * audit line, metrics); a handler validates the body and path parameters,
 * acts, and answers with api_json() or api_error(). Errors are always
 * {"error": "..."} with a fitting status (docs/openapi.yaml). */
#ifndef FORKD_DAEMON_API_H
#define FORKD_DAEMON_API_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "common/log.h"
#include "daemon/daemon.h"

struct MHD_Connection;

struct api_req {
	struct daemon *d;
	struct MHD_Connection *conn;
	const char *method;
	const char *param; /* {id} or {tag} from the path; validated by the router */
	const char *body;  /* NUL-terminated; body_len bytes */
	size_t body_len;
};

struct api_resp {
	int status;
	char *body; /* malloc'd; handed to libmicrohttpd */
	size_t len;
	const char *content_type;
	char error[512]; /* the error message, for the audit log */
	const char *audit_sandbox, *audit_tag;
	char tag_buf[SNAPSHOT_TAG_MAX + 1]; /* audit_tag's storage when copied */
};

/* Answer with `j` (reference stolen). */
void api_json(struct api_resp *rs, int status, json_t *j);
void api_error(struct api_resp *rs, int status, const char *fmt, ...) __printf(3, 4);
/* Name a snapshot tag in the audit line (copied). */
void api_audit_tag(struct api_resp *rs, const char *tag);
/* Raw bytes (copied). */
void api_bytes(struct api_resp *rs, int status, const char *ctype, const void *p, size_t n);

/* The body as a JSON object whose keys are all in `allowed` (NULL-ended).
 * An empty body counts as {}. NULL after a 400 was set. */
json_t *api_body_object(const struct api_req *rq, struct api_resp *rs, const char *const *allowed);
/* A query-string argument, or NULL. */
const char *api_query(const struct api_req *rq, const char *key);

/* The checks of a handler's body, apart from what it then does (also for
 * fuzz/fuzz_http.c). POST /v1/sandboxes: everything asked for, checked
 * before anything starts; false after a 400 was set. */
struct api_spawn_req {
	const char *tag; /* borrowed from the body */
	json_int_t n;
	json_int_t memory_limit_mib; /* 0: none */
	bool netns, live_fork, hugepages;
};
bool api_spawn_parse(json_t *body, struct api_spawn_req *s, struct api_resp *rs);
#define EXEC_TIMEOUT_MAX 3600 /* seconds: exec's and eval's "timeout" at most */
/* POST .../exec: the agent's request made from the body (argv, or cmd as
 * /bin/sh -c) and its timeout in seconds; NULL after a 400 was set. */
json_t *api_exec_request(json_t *body, double *timeout, struct api_resp *rs);

/* Handlers, by file. */
void api_healthz(struct api_req *rq, struct api_resp *rs);
void api_version(struct api_req *rq, struct api_resp *rs);
void api_metrics(struct api_req *rq, struct api_resp *rs);

void api_snapshots_list(struct api_req *rq, struct api_resp *rs);
void api_snapshots_create(struct api_req *rq, struct api_resp *rs);
void api_snapshot_get(struct api_req *rq, struct api_resp *rs);
void api_snapshot_delete(struct api_req *rq, struct api_resp *rs);

void api_sandboxes_create(struct api_req *rq, struct api_resp *rs);
void api_sandboxes_list(struct api_req *rq, struct api_resp *rs);
void api_sandbox_get(struct api_req *rq, struct api_resp *rs);
void api_sandbox_delete(struct api_req *rq, struct api_resp *rs);

void api_sandbox_ping(struct api_req *rq, struct api_resp *rs);
void api_sandbox_exec(struct api_req *rq, struct api_resp *rs);
void api_sandbox_eval(struct api_req *rq, struct api_resp *rs);
void api_sandbox_file_put(struct api_req *rq, struct api_resp *rs);
void api_sandbox_file_get(struct api_req *rq, struct api_resp *rs);
void api_sandbox_file_delete(struct api_req *rq, struct api_resp *rs);
void api_sandbox_dir_get(struct api_req *rq, struct api_resp *rs);
void api_sandbox_branch(struct api_req *rq, struct api_resp *rs);

/* Branches being written (api_branch.c): tag's state as a snapshot
 * description ("writing" or "failed"), or NULL; all of them into arr;
 * whether tag is busy (1 writing, -1 failed, forgotten when asked; 0). */
json_t *api_branch_state(const char *tag);
void api_branch_list(json_t *arr);
int api_branch_busy(const char *tag, bool forget_failed);
/* A ready snapshot's description (api_snapshots.c), or NULL. */
json_t *api_snapshot_info(struct daemon *d, const char *tag);

/* Shared by the sandbox handlers (api_sandboxes.c). */
int api_count_sandboxes(struct daemon *d, uint64_t *running, uint64_t *exited);
size_t api_count_snapshots(void);
/* Re-adopt live children, forget dead ones (at start-up). */
void api_sandboxes_readopt(struct daemon *d);
/* Is a snapshot job for `tag` still running? */
bool api_snapshot_job_running(struct daemon *d, const char *tag);

#endif
