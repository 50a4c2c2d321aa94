/* apiload: a small HTTP/1.1 load generator for forkd serve's API on
 * loopback. C threads, one keep-alive connection each, each sending the
 * same request back to back for a fixed time; prints requests/s and the
 * latency distribution (every request timed).
 *
 *   apiload -p PORT [-t TOKEN] [-m METHOD] [-b BODY] [-c CLIENTS] [-d SECS] PATH
 *
 * Output: one line "apiload: METHOD PATH clients C: N requests in S s,
 * R req/s, p50 X ms, p99 Y ms, max Z ms, E errors" and, with -j, the same
 * as one JSON object. A response with a status other than 2xx counts as an
 * error. Bench code: not part of forkd. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

struct client {
	pthread_t thread;
	uint64_t *lat; /* ns */
	size_t n, cap;
	uint64_t errors;
};

static int port = 8889, clients = 4;
static double secs = 3;
static const char *method = "GET", *path, *token, *body = "";
static char request[8192];
static size_t request_len;
static volatile int stop;

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static int connect_one(void)
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;

	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		perror("apiload: connect");
		exit(1);
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	return fd;
}

/* Read one response; its status, or -1 when the connection broke. */
static int read_response(int fd, char *buf, size_t size)
{
	size_t have = 0, need = 0;
	int status = -1;

	for (;;) {
		ssize_t r = recv(fd, buf + have, size - have - 1, 0);
		char *hend;

		if (r <= 0)
			return -1;
		have += (size_t)r;
		buf[have] = 0;
		if (!need && (hend = strstr(buf, "\r\n\r\n"))) {
			char *cl = strcasestr(buf, "\r\nContent-Length:");

			if (sscanf(buf, "HTTP/1.%*d %d", &status) != 1 || !cl || cl > hend)
				return -1;
			need = (size_t)(hend - buf) + 4 + strtoul(cl + 17, NULL, 10);
			if (need >= size)
				return -1;
		}
		if (need && have >= need)
			return status;
	}
}

static void *run(void *arg)
{
	struct client *c = arg;
	static __thread char buf[1 << 20];
	int fd = connect_one();

	while (!stop) {
		uint64_t t0 = now_ns();
		int st;

		if (send(fd, request, request_len, MSG_NOSIGNAL) != (ssize_t)request_len) {
			c->errors++;
			close(fd);
			fd = connect_one();
			continue;
		}
		st = read_response(fd, buf, sizeof(buf));
		if (st < 0) {
			c->errors++;
			close(fd);
			fd = connect_one();
			continue;
		}
		if (st < 200 || st > 299)
			c->errors++;
		if (c->n == c->cap) {
			c->cap = c->cap ? c->cap * 2 : 4096;
			c->lat = realloc(c->lat, c->cap * sizeof(*c->lat));
			if (!c->lat)
				exit(1);
		}
		c->lat[c->n++] = now_ns() - t0;
	}
	close(fd);
	return NULL;
}

static int cmp(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
	struct client *cs;
	uint64_t *all, total = 0, errors = 0, t0, t1;
	int opt, json = 0;
	size_t k = 0;

	while ((opt = getopt(argc, argv, "p:t:m:b:c:d:j")) != -1) {
		switch (opt) {
		case 'p':
			port = atoi(optarg);
			break;
		case 't':
			token = optarg;
			break;
		case 'm':
			method = optarg;
			break;
		case 'b':
			body = optarg;
			break;
		case 'c':
			clients = atoi(optarg);
			break;
		case 'd':
			secs = atof(optarg);
			break;
		case 'j':
			json = 1;
			break;
		default:
			fprintf(stderr, "usage: apiload -p PORT [-t TOKEN] [-m METHOD] [-b BODY] "
					"[-c CLIENTS] [-d SECS] [-j] PATH\n");
			return 2;
		}
	}
	if (optind != argc - 1 || clients < 1 || clients > 1024 || secs <= 0) {
		fprintf(stderr, "apiload: give one PATH; 1-1024 clients; a positive duration\n");
		return 2;
	}
	path = argv[optind];
	request_len = (size_t)snprintf(
	    request, sizeof(request),
	    "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\n%s%s%sContent-Type: application/json\r\n"
	    "Content-Length: %zu\r\n\r\n%s",
	    method, path, token ? "Authorization: Bearer " : "", token ? token : "",
	    token ? "\r\n" : "", strlen(body), body);
	cs = calloc((size_t)clients, sizeof(*cs));
	t0 = now_ns();
	for (int i = 0; i < clients; i++)
		pthread_create(&cs[i].thread, NULL, run, &cs[i]);
	usleep((useconds_t)(secs * 1e6));
	stop = 1;
	for (int i = 0; i < clients; i++) {
		pthread_join(cs[i].thread, NULL);
		total += cs[i].n;
		errors += cs[i].errors;
	}
	t1 = now_ns();
	all = malloc((total ? total : 1) * sizeof(*all));
	for (int i = 0; i < clients; i++)
		for (size_t j = 0; j < cs[i].n; j++)
			all[k++] = cs[i].lat[j];
	qsort(all, total, sizeof(*all), cmp);
	{
		double el = (double)(t1 - t0) / 1e9, rps = (double)total / el;
		double p50 = total ? all[total / 2] / 1e6 : 0;
		double p99 =
		    total ? all[(total * 99) / 100 < total ? (total * 99) / 100 : total - 1] / 1e6
			  : 0;
		double mx = total ? all[total - 1] / 1e6 : 0;

		if (json)
			printf(
			    "{\"method\":\"%s\",\"path\":\"%s\",\"clients\":%d,\"requests\":%llu,"
			    "\"seconds\":%.3f,\"rps\":%.1f,\"p50_ms\":%.3f,\"p99_ms\":%.3f,"
			    "\"max_ms\":%.3f,\"errors\":%llu}\n",
			    method, path, clients, (unsigned long long)total, el, rps, p50, p99, mx,
			    (unsigned long long)errors);
		else
			printf(
			    "apiload: %s %s clients %d: %llu requests in %.2f s, %.0f req/s, p50 "
			    "%.3f ms, p99 %.3f ms, max %.3f ms, %llu errors\n",
			    method, path, clients, (unsigned long long)total, el, rps, p50, p99, mx,
			    (unsigned long long)errors);
	}
	return errors ? 1 : 0;
}
