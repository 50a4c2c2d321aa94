/* libFuzzer harness: what the daemon makes of a request before any
 * handler acts (daemon/http.h): the path unescaped as libmicrohttpd hands
 * it over (http_unescape()), matched to a route (http_route()), its {id}
 * or {tag} checked (http_check_param()), the body read as a JSON
 * object with the keys a handler allows (api_body_object()), then the
 * checks of the create-sandbox and exec handlers (api_spawn_parse(),
 * api_exec_request()). No server, no daemon state.
 *
 * Input: the method, the path (a query is cut off) and the body, separated by NUL bytes.
 * Checked: a route is found only for the method it names and a path that
 * matches its pattern; a path parameter that passes the check is a valid
 * tag or sandbox id, and so never holds a '/', a NUL from "%00" or
 * anything longer than its buffer; a body is accepted only as a JSON
 * object of allowed keys, refused otherwise with a 400 and a message; a
 * spawn request it passes asks for 1 to DAEMON_MAX_CHILDREN children of a
 * valid tag, hugepages only with live_fork; an exec request it makes has
 * op "exec", a non-empty argv of strings and a timeout in range. */
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "daemon/api.h"
#include "daemon/http.h"
#include "fork/child.h"
#include "snapshot/snapshot.h"

/* The keys of the create-sandbox body: one real list to check against. */
static const char *const allowed[] = {
    "snapshot_tag", "n", "per_child_netns", "live_fork", "hugepages", "memory_limit_mib", NULL};

/* Next NUL-ended field of the input, copied; NULL when none is left. */
static char *field(const uint8_t **p, const uint8_t *end)
{
	const uint8_t *nul = memchr(*p, 0, (size_t)(end - *p));
	size_t n = nul ? (size_t)(nul - *p) : (size_t)(end - *p);
	char *s = malloc(n + 1);

	if (!s)
		abort();
	memcpy(s, *p, n);
	s[n] = 0;
	*p += nul ? n + 1 : n;
	return s;
}

static const char *const exec_allowed[] = {"argv",  "cmd",	 "env",	    "cwd",
					   "stdin", "stdin_b64", "timeout", NULL};

static void check_spawn(json_t *o)
{
	struct api_resp rs = {0};
	struct api_spawn_req s;

	if (api_spawn_parse(o, &s, &rs)) {
		if (!snapshot_tag_valid(s.tag) || s.n < 1 || s.n > DAEMON_MAX_CHILDREN ||
		    (s.memory_limit_mib && s.memory_limit_mib < 16) ||
		    (s.hugepages && !s.live_fork) || rs.status)
			__builtin_trap();
	} else if (rs.status != 400 || !rs.error[0]) {
		__builtin_trap();
	}
	free(rs.body);
}

static void check_exec(const char *body, size_t len)
{
	struct api_req rq = {.body = body, .body_len = len};
	struct api_resp rs = {0};
	json_t *o = api_body_object(&rq, &rs, exec_allowed), *req, *argv, *v;
	double timeout;
	size_t i;

	if (!o) {
		free(rs.body);
		return;
	}
	req = api_exec_request(o, &timeout, &rs);
	if (req) {
		argv = json_object_get(req, "argv");
		if (strcmp(json_string_value(json_object_get(req, "op")) ?: "", "exec") ||
		    !json_is_array(argv) || !json_array_size(argv) || json_object_get(req, "cmd") ||
		    !(timeout > 0 && timeout <= EXEC_TIMEOUT_MAX) || rs.status)
			__builtin_trap();
		json_array_foreach(argv, i, v) if (!json_is_string(v)) __builtin_trap();
		json_decref(req);
	} else if (rs.status != 400 || !rs.error[0]) {
		__builtin_trap();
	}
	json_decref(o);
	free(rs.body);
}

static void check_body(const char *body, size_t len)
{
	struct api_req rq = {.body = body, .body_len = len};
	struct api_resp rs = {0};
	json_t *o = api_body_object(&rq, &rs, allowed);

	if (o) {
		const char *key;
		json_t *v;

		if (!json_is_object(o) || rs.body)
			__builtin_trap();
		json_object_foreach(o, key, v)
		{
			const char *const *a = allowed;

			while (*a && strcmp(*a, key))
				a++;
			if (!*a)
				__builtin_trap();
		}
		check_spawn(o);
		json_decref(o);
	} else if (rs.status != 400 || !rs.body || !rs.error[0]) {
		__builtin_trap();
	}
	free(rs.body);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *p = data, *end = data + size;
	char *method, *url, *body;
	struct http_match m;
	size_t n;

	log_set_level(LOG_ERR);
	method = field(&p, end);
	url = field(&p, end);
	body = malloc((size_t)(end - p) + 1);
	if (!body)
		abort();
	memcpy(body, p, (size_t)(end - p));
	body[end - p] = 0;

	if (strchr(url, '?'))
		*strchr(url, '?') = 0; /* libmicrohttpd hands the query over apart */
	n = strlen(url);
	if (http_unescape(url) > n || strlen(url) > n)
		__builtin_trap(); /* unescaping only shortens */
	http_route(method, url, &m);
	if (m.route) {
		if (m.status || strcmp(m.route->method, method) ||
		    strcmp(m.label, m.route->pattern))
			__builtin_trap();
		http_check_param(&m);
		if (!m.status && m.route->param != HTTP_P_NONE) {
			bool ok = m.route->param == HTTP_P_TAG ? snapshot_tag_valid(m.param)
							       : child_id_valid(m.param);

			if (!ok || strchr(m.param, '/') || strstr(m.param, "%00") ||
			    !strstr(url, m.param))
				__builtin_trap();
		}
	} else if ((m.status != 404 && m.status != 405) || !m.msg[0] ||
		   (m.status == 405) != !!m.allow[0]) {
		__builtin_trap();
	}
	check_body(body, (size_t)(end - p));
	check_exec(body, (size_t)(end - p));

	free(method);
	free(url);
	free(body);
	return 0;
}
