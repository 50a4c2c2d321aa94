#include "cli/http_client.h"

#include <curl/curl.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"

bool http_base_url_valid(const char *url)
{
	const char *p, *host_end;

	if (!strncmp(url, "http://", 7))
		p = url + 7;
	else if (!strncmp(url, "https://", 8))
		p = url + 8;
	else
		return false;
	if (strlen(url) > 2000 || strpbrk(url, "?# \t\r\n\\@"))
		return false;
	host_end = p + strcspn(p, "/");
	if (host_end == p || (*p == '[' && !memchr(p, ']', (size_t)(host_end - p))))
		return false;
	return true;
}

struct sink {
	char *buf;
	size_t len, cap;
	bool too_big;
};

static size_t on_body(char *data, size_t size, size_t n, void *opaque)
{
	struct sink *s = opaque;
	size_t add = size * n;

	if (s->len + add > HTTP_CLIENT_MAX_BODY) {
		s->too_big = true;
		return 0; /* curl stops with CURLE_WRITE_ERROR */
	}
	if (s->len + add + 1 > s->cap) {
		size_t cap = MAX(s->cap * 2, s->len + add + 1);
		char *b = realloc(s->buf, MAX(cap, (size_t)65536));

		if (!b)
			return 0;
		s->buf = b;
		s->cap = MAX(cap, (size_t)65536);
	}
	memcpy(s->buf + s->len, data, add);
	s->len += add;
	return add;
}

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_result;

static void init_curl(void)
{
	curl_init_result = curl_global_init(CURL_GLOBAL_DEFAULT);
}

static int curl_errno(CURLcode c)
{
	switch (c) {
	case CURLE_COULDNT_CONNECT:
		return -ECONNREFUSED;
	case CURLE_OPERATION_TIMEDOUT:
		return -ETIMEDOUT;
	case CURLE_COULDNT_RESOLVE_HOST:
		return -EHOSTUNREACH;
	case CURLE_URL_MALFORMAT:
		return -EINVAL;
	case CURLE_OUT_OF_MEMORY:
		return -ENOMEM;
	default:
		return -EPROTO;
	}
}

int http_request(const char *base_url, const char *token, const char *method, const char *path,
		 const char *content_type, const void *body, size_t len, int timeout_ms,
		 struct http_resp *out, char *err, size_t errlen)
{
	struct curl_slist *hdrs = NULL;
	struct sink s = {0};
	char url[4200], line[2200], cerr[CURL_ERROR_SIZE] = "";
	const char *ca = getenv("FORKD_CA_CERT"), *ct = NULL;
	size_t blen;
	long status = 0;
	CURLcode c;
	CURL *h;
	int r;

	memset(out, 0, sizeof(*out));
	if (!http_base_url_valid(base_url))
		return errbuf_fail(
		    err, errlen, -EINVAL,
		    "daemon URL '%s' is not of the form http[s]://HOST[:PORT][/PREFIX]", base_url);
	if (strlen(path) > 2000 || path[0] != '/')
		return errbuf_fail(err, errlen, -EINVAL, "bad request path '%.60s'", path);
	blen = strlen(base_url);
	while (blen && base_url[blen - 1] == '/')
		blen--;
	snprintf(url, sizeof(url), "%.*s%s", (int)blen, base_url, path);
	pthread_once(&curl_once, init_curl);
	if (curl_init_result != CURLE_OK || !(h = curl_easy_init()))
		return errbuf_fail(err, errlen, -ENOMEM, "cannot start libcurl");
	hdrs = curl_slist_append(hdrs, "Accept: application/json");
	if (token && *token) {
		snprintf(line, sizeof(line), "Authorization: Bearer %.2048s", token);
		hdrs = curl_slist_append(hdrs, line);
	}
	if (body || !strcmp(method, "POST") || !strcmp(method, "PUT")) {
		snprintf(line, sizeof(line), "Content-Type: %.100s",
			 content_type ? content_type : "application/json");
		hdrs = curl_slist_append(hdrs, line);
		/* No "Expect: 100-continue" round trip for our small bodies. */
		hdrs = curl_slist_append(hdrs, "Expect:");
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, body ? body : "");
		curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)(body ? len : 0));
	}
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
	if (!strcmp(method, "HEAD"))
		curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
	curl_easy_setopt(h, CURLOPT_USERAGENT, "forkd-cli");
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)timeout_ms);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, cerr);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &s);
	if (ca && *ca)
		curl_easy_setopt(h, CURLOPT_CAINFO, ca);
	c = curl_easy_perform(h);
	if (c == CURLE_OK) {
		curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
		curl_easy_getinfo(h, CURLINFO_CONTENT_TYPE, &ct);
		if (ct)
			snprintf(out->content_type, sizeof(out->content_type), "%s", ct);
	}
	curl_slist_free_all(hdrs);
	curl_easy_cleanup(h);
	if (c != CURLE_OK) {
		free(s.buf);
		if (s.too_big)
			return errbuf_fail(err, errlen, -EMSGSIZE,
					   "the daemon's answer is over %u MiB",
					   HTTP_CLIENT_MAX_BODY >> 20);
		r = curl_errno(c);
		if (r == -ETIMEDOUT)
			return errbuf_fail(err, errlen, r, "the daemon did not answer within %d s",
					   timeout_ms / 1000);
		if (r == -ECONNREFUSED || r == -EHOSTUNREACH)
			return errbuf_fail(err, errlen, r,
					   "cannot reach the daemon at %s: %s (is 'forkd serve' "
					   "running? see --daemon-url / FORKD_URL)",
					   base_url, cerr[0] ? cerr : curl_easy_strerror(c));
		return errbuf_fail(err, errlen, r, "talking to the daemon at %s: %s%s", base_url,
				   cerr[0] ? cerr : curl_easy_strerror(c),
				   c == CURLE_PEER_FAILED_VERIFICATION ||
					   c == CURLE_SSL_CACERT_BADFILE
				       ? " (for a certificate of your own, set FORKD_CA_CERT to "
					 "its PEM file)"
				       : "");
	}
	if (!s.buf && !(s.buf = malloc(1)))
		return errbuf_fail(err, errlen, -ENOMEM, "out of memory");
	s.buf[s.len] = 0;
	out->status = (int)status;
	out->body = s.buf;
	out->len = s.len;
	return 0;
}

void http_resp_free(struct http_resp *r)
{
	free(r->body);
	r->body = NULL;
}
