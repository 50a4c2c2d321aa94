/* libFuzzer harness: what the daemon makes of a request before any
 * handler acts (daemon/http.h): the path unescaped as libmicrohttpd hands
 * it over (http_unescape()), matched to a route (http_route()), its {id}
 * or {tag} checked (http_check_param()), and the body read as a JSON
 * object with the keys a handler allows (api_body_object()). No server,
 * no daemon state.
 *
 * Input: the method, the path (a query is cut off) and the body, separated by NUL bytes.
 * Checked: a route is found only for the method it names and a path that
 * matches its pattern; a path parameter that passes the check is a valid
 * tag or sandbox id, and so never holds a '/', a NUL from "%00" or
 * anything longer than its buffer; a body is accepted only as a JSON
 * object of allowed keys, refused otherwise with a 400 and a message. */
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

	free(method);
	free(url);
	free(body);
	return 0;
}
