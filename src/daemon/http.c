/* HTTP side of the daemon: libmicrohttpd, one thread per connection (a
 * request may wait on a guest for as long as its exec timeout), routing
 * from one table that mirrors docs/openapi.yaml, authentication, body
 * limits, one audit line and one metrics sample per request. */
#include "daemon/http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "common/util.h"
#include "daemon/api.h"
#include "daemon/auth.h"
#include "daemon/sandbox.h"

static const struct http_route routes[] = {
    {"GET", "/healthz", HTTP_P_NONE, true, 0, api_healthz},
    {"GET", "/version", HTTP_P_NONE, false, 0, api_version},
    {"GET", "/metrics", HTTP_P_NONE, false, 0, api_metrics},
    {"GET", "/v1/snapshots", HTTP_P_NONE, false, 0, api_snapshots_list},
    {"POST", "/v1/snapshots", HTTP_P_NONE, false, DAEMON_MAX_JSON, api_snapshots_create},
    {"GET", "/v1/snapshots/{tag}", HTTP_P_TAG, false, 0, api_snapshot_get},
    {"DELETE", "/v1/snapshots/{tag}", HTTP_P_TAG, false, 0, api_snapshot_delete},
    {"POST", "/v1/sandboxes", HTTP_P_NONE, false, DAEMON_MAX_JSON, api_sandboxes_create},
    {"GET", "/v1/sandboxes", HTTP_P_NONE, false, 0, api_sandboxes_list},
    {"GET", "/v1/sandboxes/{id}", HTTP_P_ID, false, 0, api_sandbox_get},
    {"DELETE", "/v1/sandboxes/{id}", HTTP_P_ID, false, 0, api_sandbox_delete},
    {"POST", "/v1/sandboxes/{id}/ping", HTTP_P_ID, false, DAEMON_MAX_JSON, api_sandbox_ping},
    {"POST", "/v1/sandboxes/{id}/exec", HTTP_P_ID, false, DAEMON_MAX_JSON, api_sandbox_exec},
    {"POST", "/v1/sandboxes/{id}/eval", HTTP_P_ID, false, DAEMON_MAX_JSON, api_sandbox_eval},
    {"PUT", "/v1/sandboxes/{id}/files", HTTP_P_ID, false, DAEMON_MAX_FILE, api_sandbox_file_put},
    {"GET", "/v1/sandboxes/{id}/files", HTTP_P_ID, false, 0, api_sandbox_file_get},
    {"DELETE", "/v1/sandboxes/{id}/files", HTTP_P_ID, false, 0, api_sandbox_file_delete},
    {"GET", "/v1/sandboxes/{id}/dir", HTTP_P_ID, false, 0, api_sandbox_dir_get},
    {"POST", "/v1/sandboxes/{id}/branch", HTTP_P_ID, false, DAEMON_MAX_JSON, api_sandbox_branch},
};

/* Per request, from the first call of the access handler to completion. */
struct request {
	uint64_t t0;
	struct http_match m; /* route, and a status decided before the body */
	const char *auth;
	char *body;
	size_t len, cap, limit;
	bool too_big;
};

void api_json(struct api_resp *rs, int status, json_t *j)
{
	rs->status = status;
	free(rs->body);
	rs->body = j ? json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
	json_decref(j);
	if (!rs->body) {
		rs->status = 500;
		rs->body = strdup("{\"error\":\"cannot encode the response\"}");
	}
	rs->len = rs->body ? strlen(rs->body) : 0;
	rs->content_type = "application/json";
}

void api_error(struct api_resp *rs, int status, const char *fmt, ...)
{
	va_list ap;
	json_t *j;

	va_start(ap, fmt);
	vsnprintf(rs->error, sizeof(rs->error), fmt, ap);
	va_end(ap);
	j = json_object();
	/* The message may quote guest output: keep it valid UTF-8 for jansson. */
	if (json_object_set_new(j, "error", json_string(rs->error)))
		json_object_set_new(j, "error", json_string("(error message not valid UTF-8)"));
	api_json(rs, status, j);
}

void api_audit_tag(struct api_resp *rs, const char *tag)
{
	snprintf(rs->tag_buf, sizeof(rs->tag_buf), "%s", tag);
	rs->audit_tag = rs->tag_buf;
}

void api_bytes(struct api_resp *rs, int status, const char *ctype, const void *p, size_t n)
{
	free(rs->body);
	rs->body = malloc(n ? n : 1);
	if (!rs->body) {
		api_error(rs, 500, "out of memory for a %zu-byte response", n);
		return;
	}
	memcpy(rs->body, p, n);
	rs->len = n;
	rs->status = status;
	rs->content_type = ctype;
}

json_t *api_body_object(const struct api_req *rq, struct api_resp *rs, const char *const *allowed)
{
	json_error_t e;
	const char *key;
	json_t *o, *v;

	if (!rq->body_len)
		return json_object();
	o = json_loadb(rq->body, rq->body_len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &e);
	if (!o) {
		api_error(rs, 400, "request body is not valid JSON: %s (line %d, column %d)",
			  e.text, e.line, e.column);
		return NULL;
	}
	if (!json_is_object(o)) {
		json_decref(o);
		api_error(rs, 400, "request body must be a JSON object");
		return NULL;
	}
	json_object_foreach(o, key, v)
	{
		const char *const *a;

		for (a = allowed; *a && strcmp(*a, key); a++)
			;
		if (!*a) {
			api_error(rs, 400, "unknown field \"%.64s\" in the request body", key);
			json_decref(o);
			return NULL;
		}
	}
	return o;
}

const char *api_query(const struct api_req *rq, const char *key)
{
	return MHD_lookup_connection_value(rq->conn, MHD_GET_ARGUMENT_KIND, key);
}

/* Match url against pattern; a "{...}" segment matches one non-empty
 * segment, copied to param. */
static bool match(const char *pattern, const char *url, char *param, size_t psize)
{
	while (*pattern && *url) {
		if (*pattern == '{') {
			const char *end = strchr(url, '/');
			size_t n = end ? (size_t)(end - url) : strlen(url);

			if (!n)
				return false;
			snprintf(param, psize, "%.*s", (int)MIN(n, psize - 1), url);
			if (n >= psize)
				param[0] = '\x01'; /* too long: never a valid id or tag */
			url += n;
			pattern = strchr(pattern, '}') + 1;
			continue;
		}
		if (*pattern++ != *url++)
			return false;
	}
	return !*pattern && !*url;
}

void http_route(const char *method, const char *url, struct http_match *m)
{
	char param[80] = ""; /* a route without {...} leaves it as it is */
	size_t n = 0;

	memset(m, 0, sizeof(*m));
	m->label = "other";
	for (size_t i = 0; i < ARRAY_SIZE(routes); i++) {
		if (!match(routes[i].pattern, url, param, sizeof(param)))
			continue;
		m->label = routes[i].pattern;
		if (!strcmp(routes[i].method, method)) {
			m->route = &routes[i];
			snprintf(m->param, sizeof(m->param), "%s", param);
			return;
		}
		n += (size_t)snprintf(m->allow + n, sizeof(m->allow) - n, "%s%s", n ? ", " : "",
				      routes[i].method);
	}
	if (n) {
		m->status = 405;
		snprintf(m->msg, sizeof(m->msg), "method %.16s not allowed here; use %s", method,
			 m->allow);
	} else {
		m->status = 404;
		snprintf(m->msg, sizeof(m->msg),
			 "no such endpoint: %.16s %.200s (see docs/openapi.yaml)", method, url);
	}
}

void http_check_param(struct http_match *m)
{
	if (m->route->param == HTTP_P_TAG && !snapshot_tag_valid(m->param)) {
		m->status = 400;
		snprintf(m->msg, sizeof(m->msg),
			 "invalid snapshot tag: tags are [A-Za-z0-9_][A-Za-z0-9_.-]{0,63} and "
			 "never '..'");
	} else if (m->route->param == HTTP_P_ID && !child_id_valid(m->param)) {
		m->status = 400;
		snprintf(m->msg, sizeof(m->msg),
			 "invalid sandbox id: ids are 'sb-' and 20 characters of [a-z2-7]");
	}
}

static void remote_addr(struct MHD_Connection *conn, char *buf, size_t size)
{
	const union MHD_ConnectionInfo *ci =
	    MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	const struct sockaddr *sa = ci ? ci->client_addr : NULL;

	snprintf(buf, size, "?");
	if (sa && sa->sa_family == AF_INET)
		inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, buf,
			  (socklen_t)size);
	else if (sa && sa->sa_family == AF_INET6)
		inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, buf,
			  (socklen_t)size);
}

/* Metrics keep label strings by pointer: only static ones. */
static const char *static_method(const char *m)
{
	static const char *const known[] = {"GET", "POST", "PUT", "DELETE", "HEAD", "PATCH"};

	for (size_t i = 0; i < ARRAY_SIZE(known); i++)
		if (!strcmp(m, known[i]))
			return known[i];
	return "other";
}

static enum MHD_Result finish(struct daemon *d, struct MHD_Connection *conn, struct request *r,
			      const char *method, const char *url, struct api_resp *rs)
{
	struct MHD_Response *resp;
	struct audit_entry ae;
	char remote[64];
	enum MHD_Result ret;
	double secs = (double)(now_ns() - r->t0) / 1e9;

	if (!rs->body)
		api_error(rs, 500, "the handler gave no response");
	resp = MHD_create_response_from_buffer(rs->len, rs->body, MHD_RESPMEM_MUST_FREE);
	if (!resp) {
		free(rs->body);
		return MHD_NO;
	}
	MHD_add_response_header(resp, "Content-Type", rs->content_type);
	MHD_add_response_header(resp, "Cache-Control", "no-store");
	if (rs->status == 401)
		MHD_add_response_header(resp, "WWW-Authenticate", "Bearer realm=\"forkd\"");
	if (rs->status == 405)
		MHD_add_response_header(resp, "Allow", r->m.allow);
	ret = MHD_queue_response(conn, (unsigned)rs->status, resp);
	MHD_destroy_response(resp);

	remote_addr(conn, remote, sizeof(remote));
	ae = (struct audit_entry){
	    .remote = remote,
	    .method = method,
	    .path = url,
	    .status = rs->status,
	    .duration_ms = secs * 1000,
	    .auth = r->auth,
	    .sandbox = rs->audit_sandbox,
	    .tag = rs->audit_tag,
	    .bytes_in = r->len,
	    .bytes_out = rs->len,
	    .error = rs->error[0] ? rs->error : NULL,
	};
	audit_write(&d->audit, &ae);
	metrics_request(&d->metrics, r->m.label, static_method(method), rs->status, secs);
	return ret;
}

/* Does the host part of HOST[:PORT] (or [V6]:PORT) name the loopback? */
static bool host_is_loopback(const char *h, size_t n)
{
	if (n && h[0] == '[')
		return n >= 5 && !strncmp(h, "[::1]", 5);
	for (size_t i = 0; i < n; i++)
		if (h[i] == ':') {
			n = i;
			break;
		}
	return (n == 9 && !strncasecmp(h, "localhost", 9)) || (n >= 4 && !strncmp(h, "127.", 4));
}

/* What a web page could make a browser send, refused before anything else
 * (docs/SECURITY.md, "The daemon and web pages"):
 *   - any Origin header: browsers add it to cross-site requests, and no
 *     program of ours sends one (403);
 *   - with the daemon on loopback, a Host that is not a loopback name: a
 *     page whose DNS name was rebound to 127.0.0.1 (421);
 *   - a body that is not what the endpoint takes: JSON endpoints want
 *     Content-Type application/json, file uploads anything but the types
 *     a cross-site form may send without asking (415).
 * 0, or the status with msg filled in. */
static int check_browser(struct daemon *d, struct MHD_Connection *conn, const struct http_route *rt,
			 char *msg, size_t size)
{
	const char *origin = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Origin");
	const char *host = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Host");
	const char *ctype = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Type");
	const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Length");
	const char *te = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Transfer-Encoding");
	bool body = (cl && strtoull(cl, NULL, 10) > 0) || te;
	size_t tlen;

	if (origin) {
		snprintf(msg, size,
			 "a request with an Origin header (%.100s) comes from a web page: refused",
			 origin);
		return 403;
	}
	if (host && d->cfg.bind && host_is_loopback(d->cfg.bind, strlen(d->cfg.bind)) &&
	    !host_is_loopback(host, strlen(host)) &&
	    !(d->cfg.allow_host &&
	      !strncasecmp(host, d->cfg.allow_host, strlen(d->cfg.allow_host)) &&
	      (host[strlen(d->cfg.allow_host)] == 0 || host[strlen(d->cfg.allow_host)] == ':'))) {
		snprintf(msg, size,
			 "Host '%.100s' does not name this daemon, which listens on loopback only "
			 "(a DNS name rebound to 127.0.0.1?); use 127.0.0.1 or localhost, or start "
			 "it with --allow-host NAME",
			 host);
		return 421;
	}
	if (!rt || !body)
		return 0;
	tlen = ctype ? strcspn(ctype, "; \t") : 0;
	if (rt->max_body == DAEMON_MAX_JSON &&
	    !(ctype && tlen == 16 && !strncasecmp(ctype, "application/json", 16))) {
		snprintf(msg, size, "%s %s takes a JSON body: send Content-Type: application/json",
			 rt->method, rt->pattern);
		return 415;
	}
	if (ctype &&
	    ((tlen == 10 && !strncasecmp(ctype, "text/plain", 10)) ||
	     (tlen == 33 && !strncasecmp(ctype, "application/x-www-form-urlencoded", 33)) ||
	     (tlen == 19 && !strncasecmp(ctype, "multipart/form-data", 19)))) {
		snprintf(msg, size,
			 "Content-Type %.60s is what web forms send: send the file as "
			 "application/octet-stream",
			 ctype);
		return 415;
	}
	return 0;
}

/* The answer once the request is complete, or decided without its body. */
static enum MHD_Result answer(struct daemon *d, struct MHD_Connection *conn, struct request *r,
			      const char *method, const char *url)
{
	struct api_resp rs = {0};

	if (r->m.status) {
		api_error(&rs, r->m.status, "%s", r->m.msg);
	} else if (r->too_big) {
		api_error(&rs, 413, "request body over the %zu-byte limit for %s %s", r->limit,
			  method, r->m.route->pattern);
	} else {
		struct api_req rq = {
		    .d = d,
		    .conn = conn,
		    .method = method,
		    .param = r->m.param,
		    .body = r->body ? r->body : "",
		    .body_len = r->len,
		};

		if (r->body)
			r->body[r->len] = 0;
		if (r->m.route->param == HTTP_P_ID)
			rs.audit_sandbox = r->m.param;
		else if (r->m.route->param == HTTP_P_TAG)
			rs.audit_tag = r->m.param;
		r->m.route->fn(&rq, &rs);
	}
	return finish(d, conn, r, method, url, &rs);
}

/* Did the client announce a body and wait for a go-ahead before sending
 * it (RFC 9110 §10.1.1)? Then a refusal is best sent before any of it. */
static bool expects_continue(struct MHD_Connection *conn)
{
	const char *e = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Expect");

	return e && !strcasecmp(e, "100-continue");
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
				  const char *method, const char *version, const char *upload_data,
				  size_t *upload_data_size, void **con_cls)
{
	struct daemon *d = cls;
	struct request *r = *con_cls;

	if (!r) {
		const char *cl;

		r = calloc(1, sizeof(*r));
		if (!r)
			return MHD_NO;
		r->t0 = now_ns();
		__atomic_add_fetch(&d->inflight, 1, __ATOMIC_SEQ_CST);
		r->auth = "open";
		http_route(method, url, &r->m);
		{
			char msg[sizeof(r->m.msg)];
			int st = check_browser(d, conn, r->m.route, msg, sizeof(msg));

			/* before the route's own 404/405: a web page learns nothing */
			if (st) {
				r->m.status = st;
				snprintf(r->m.msg, sizeof(r->m.msg), "%s", msg);
			}
		}
		if (!r->m.status && r->m.route && !r->m.route->open && d->token_len) {
			r->auth = auth_check(
			    d->token, d->token_len,
			    MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Authorization"));
			if (strcmp(r->auth, "ok")) {
				r->m.status = 401;
				snprintf(r->m.msg, sizeof(r->m.msg), "%s",
					 !strcmp(r->auth, "missing")
					     ? "authentication required: send 'Authorization: "
					       "Bearer <token>' with the daemon's token (its "
					       "--token-file, else STATE_DIR/token, which the "
					       "forkd CLI and SDK on its host read themselves)"
					     : "invalid bearer token");
			}
		}
		if (r->m.route && !r->m.status)
			http_check_param(&r->m);
		/* A body for a sandbox that does not exist is not worth reading:
		 * say so now, and drop the body unbuffered. */
		if (r->m.route && !r->m.status && r->m.route->param == HTTP_P_ID &&
		    r->m.route->max_body) {
			struct child_rec cr;

			if (store_sandbox_get(&d->store, r->m.param, &cr) == -ENOENT) {
				r->m.status = 404;
				snprintf(r->m.msg, sizeof(r->m.msg), "no sandbox %s", r->m.param);
			}
		}
		r->limit = r->m.route ? r->m.route->max_body : 0;
		cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Length");
		if (cl && strtoull(cl, NULL, 10) > r->limit)
			r->too_big = true;
		*con_cls = r;
		/* Decided before any of the body (401, 403, 404, 413...): a
		 * client waiting on "Expect: 100-continue" gets the answer now
		 * and never sends the body (libmicrohttpd then closes the
		 * connection rather than read on). Others have sent it already
		 * or are sending it: it is read and dropped, never buffered. */
		if ((r->m.status || r->too_big) && expects_continue(conn))
			return answer(d, conn, r, method, url);
		return MHD_YES;
	}
	if (*upload_data_size) {
		size_t n = *upload_data_size;

		*upload_data_size = 0;
		if (r->too_big || r->m.status)
			return MHD_YES; /* read and drop: the answer is decided */
		if (r->len + n > r->limit) {
			r->too_big = true;
			free(r->body);
			r->body = NULL;
			return MHD_YES;
		}
		if (r->len + n + 1 > r->cap) {
			size_t cap = MAX(r->cap * 2, r->len + n + 1);
			char *b = realloc(r->body, MIN(cap, r->limit + 1));

			if (!b)
				return MHD_NO;
			r->body = b;
			r->cap = MIN(cap, r->limit + 1);
		}
		memcpy(r->body + r->len, upload_data, n);
		r->len += n;
		return MHD_YES;
	}

	return answer(d, conn, r, method, url);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
			 enum MHD_RequestTerminationCode toe)
{
	struct daemon *d = cls;
	struct request *r = *con_cls;

	if (r) {
		free(r->body);
		free(r);
		__atomic_sub_fetch(&d->inflight, 1, __ATOMIC_SEQ_CST);
	}
	*con_cls = NULL;
}

size_t http_unescape(char *s)
{
	if (strstr(s, "%00"))
		return strlen(s);
	return MHD_http_unescape(s);
}

static size_t unescape(void *cls, struct MHD_Connection *c, char *s)
{
	(void)cls;
	(void)c;
	return http_unescape(s);
}

/* libmicrohttpd's messages: to the debug log, the last one kept for the
 * error of a failed start (one start at a time, before any thread). */
static char mhd_last[256];

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
	size_t n;

	(void)cls;
	vsnprintf(mhd_last, sizeof(mhd_last), fmt, ap);
	n = strlen(mhd_last);
	while (n && (mhd_last[n - 1] == '\n' || mhd_last[n - 1] == '\r'))
		mhd_last[--n] = 0;
	log_debug("libmicrohttpd: %s", mhd_last);
}

int http_start(struct daemon *d, const struct sockaddr *sa, struct MHD_Daemon **out, unsigned *port)
{
	unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION |
			 MHD_USE_ITC | MHD_USE_ERROR_LOG;
	const union MHD_DaemonInfo *info;
	struct MHD_Daemon *m;

	if (sa->sa_family == AF_INET6)
		flags |= MHD_USE_IPv6;
	struct MHD_OptionItem tls[] = {
	    {MHD_OPTION_HTTPS_MEM_KEY, 0, d->tls_key_pem},
	    {MHD_OPTION_HTTPS_MEM_CERT, 0, d->tls_cert_pem},
	    {MHD_OPTION_END, 0, NULL},
	};

	if (d->tls_key_pem) {
		if (MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES) {
			log_err("this libmicrohttpd was built without TLS: serve plain http behind "
				"a TLS proxy instead of --tls-cert/--tls-key");
			return -ENOTSUP;
		}
		flags |= MHD_USE_TLS;
	} else {
		tls[0].option = MHD_OPTION_END;
	}
	mhd_last[0] = 0;
	m = MHD_start_daemon(
	    flags, 0, NULL, NULL, on_request, d, MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL,
	    MHD_OPTION_ARRAY, tls, MHD_OPTION_SOCK_ADDR, sa, MHD_OPTION_NOTIFY_COMPLETED,
	    on_completed, d, MHD_OPTION_CONNECTION_LIMIT, (unsigned)HTTP_MAX_CONNECTIONS,
	    MHD_OPTION_PER_IP_CONNECTION_LIMIT,
	    (unsigned)(d->cfg.max_client_conns ? d->cfg.max_client_conns : HTTP_MAX_PER_CLIENT),
	    MHD_OPTION_CONNECTION_TIMEOUT,
	    (unsigned)(d->cfg.idle_secs ? d->cfg.idle_secs : HTTP_IDLE_SECS),
	    MHD_OPTION_LISTEN_BACKLOG_SIZE, (unsigned)256, MHD_OPTION_UNESCAPE_CALLBACK, unescape,
	    NULL, MHD_OPTION_END);
	if (!m) {
		/* libmicrohttpd's own line names port 0 (the address comes as a
		 * sockaddr); keep only its reason, after the last ": ". */
		const char *why = strrchr(mhd_last, ':');

		log_err("cannot listen on %s: %s", d->cfg.bind,
			why && why[1] ? why + 2 : "in use, or not an address of this host?");
		return -EADDRINUSE;
	}
	info = MHD_get_daemon_info(m, MHD_DAEMON_INFO_BIND_PORT);
	*port = info ? info->port : 0;
	*out = m;
	return 0;
}

void http_stop(struct daemon *d, struct MHD_Daemon *m, unsigned grace_secs)
{
	uint64_t deadline = now_ns() + (uint64_t)grace_secs * 1000000000ULL;
	unsigned left;

	/* Stop accepting, let the requests in flight finish (a request counts
	 * from its headers to its completed response), then close the idle
	 * connections. */
	MHD_socket lfd = MHD_quiesce_daemon(m);

	/* Quiescing hands the listening socket back: closing it refuses new
	 * connections at once instead of queueing them. */
	if (lfd != MHD_INVALID_SOCKET)
		close(lfd);
	while ((left = __atomic_load_n(&d->inflight, __ATOMIC_SEQ_CST)) && now_ns() < deadline)
		usleep(10000);
	if (left)
		log_warn("%u request%s still in flight after %u s; closing them", left,
			 left == 1 ? "" : "s", grace_secs);
	MHD_stop_daemon(m);
}
