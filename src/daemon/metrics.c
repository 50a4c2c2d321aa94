#include "daemon/metrics.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "common/util.h"

static const double bucket_le[METRICS_BUCKETS] = {0.0005, 0.001, 0.0025, 0.005, 0.01,
						  0.025,  0.05,	 0.1,	 0.5,	5};

void metrics_init(struct metrics *m)
{
	memset(m, 0, sizeof(*m));
	pthread_mutex_init(&m->lock, NULL);
}

void metrics_request(struct metrics *m, const char *route, const char *method, int status,
		     double seconds)
{
	unsigned i;

	pthread_mutex_lock(&m->lock);
	for (i = 0; i < m->nr_series; i++)
		if (m->series[i].route == route && !strcmp(m->series[i].method, method) &&
		    m->series[i].status == status)
			break;
	if (i == m->nr_series && i < METRICS_MAX_SERIES)
		m->series[m->nr_series++] = (struct metrics_series){route, method, status, 0};
	if (i < m->nr_series)
		m->series[i].count++;
	for (i = 0; i < m->nr_latency; i++)
		if (m->latency[i].route == route)
			break;
	if (i == m->nr_latency && i < ARRAY_SIZE(m->latency))
		m->latency[m->nr_latency++] = (struct metrics_latency){.route = route};
	if (i < m->nr_latency) {
		struct metrics_latency *l = &m->latency[i];

		for (unsigned b = 0; b < METRICS_BUCKETS; b++)
			if (seconds <= bucket_le[b]) {
				l->buckets[b]++;
				break;
			}
		l->count++;
		l->sum_s += seconds;
	}
	pthread_mutex_unlock(&m->lock);
}

void metrics_add(struct metrics *m, uint64_t *counter, uint64_t n)
{
	pthread_mutex_lock(&m->lock);
	*counter += n;
	pthread_mutex_unlock(&m->lock);
}

void metrics_restore(struct metrics *m, double seconds)
{
	pthread_mutex_lock(&m->lock);
	m->restore_count++;
	m->restore_sum_s += seconds;
	pthread_mutex_unlock(&m->lock);
}

static void put(struct sbuf *out, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void put(struct sbuf *out, const char *fmt, ...)
{
	char line[512];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (n > 0)
		sbuf_put(out, line, MIN((size_t)n, sizeof(line) - 1));
}

static void counter(struct sbuf *out, const char *name, const char *help, uint64_t v)
{
	put(out, "# HELP %s %s\n# TYPE %s counter\n%s %llu\n", name, help, name, name,
	    (unsigned long long)v);
}

void metrics_render(struct metrics *m, const struct metrics_gauges *g, struct sbuf *out)
{
	unsigned i, b;

	pthread_mutex_lock(&m->lock);
	put(out,
	    "# HELP forkd_build_info forkd's version.\n# TYPE forkd_build_info gauge\n"
	    "forkd_build_info{version=\"%s\"} 1\n",
	    g->version);
	put(out,
	    "# HELP forkd_uptime_seconds Seconds since the daemon started.\n"
	    "# TYPE forkd_uptime_seconds gauge\nforkd_uptime_seconds %.3f\n",
	    g->uptime_s);
	put(out,
	    "# HELP forkd_sandboxes Sandboxes the daemon knows, by state.\n"
	    "# TYPE forkd_sandboxes gauge\nforkd_sandboxes{state=\"running\"} %llu\n"
	    "forkd_sandboxes{state=\"exited\"} %llu\n",
	    (unsigned long long)g->sandboxes_running, (unsigned long long)g->sandboxes_exited);
	put(out,
	    "# HELP forkd_snapshots Snapshots in $FORKD_HOME/snapshots.\n"
	    "# TYPE forkd_snapshots gauge\nforkd_snapshots %llu\n",
	    (unsigned long long)g->snapshots);
	counter(out, "forkd_sandboxes_spawned_total", "Children started and running.", m->spawned);
	counter(out, "forkd_sandbox_spawn_failures_total", "Children that failed to start.",
		m->spawn_failed);
	counter(out, "forkd_sandboxes_killed_total", "Sandboxes stopped through the API.",
		m->killed);
	counter(out, "forkd_sandboxes_adopted_total",
		"Live children re-adopted when the daemon started.", m->adopted);
	counter(out, "forkd_sandboxes_forgotten_total",
		"Dead children dropped when the daemon started.", m->forgotten);
	counter(out, "forkd_agent_requests_total", "Requests sent to guest agents.",
		m->agent_calls);
	counter(out, "forkd_agent_errors_total",
		"Agent requests that got no valid answer (unreachable, timeout, bad reply).",
		m->agent_errors);
	put(out,
	    "# HELP forkd_restore_seconds Fork to vCPUs running, per child.\n"
	    "# TYPE forkd_restore_seconds summary\nforkd_restore_seconds_sum %.6f\n"
	    "forkd_restore_seconds_count %llu\n",
	    m->restore_sum_s, (unsigned long long)m->restore_count);

	put(out, "# HELP forkd_http_requests_total HTTP requests by route, method and status.\n"
		 "# TYPE forkd_http_requests_total counter\n");
	for (i = 0; i < m->nr_series; i++)
		put(out, "forkd_http_requests_total{route=\"%s\",method=\"%s\",code=\"%d\"} %llu\n",
		    m->series[i].route, m->series[i].method, m->series[i].status,
		    (unsigned long long)m->series[i].count);
	put(out, "# HELP forkd_http_request_duration_seconds Time to answer, by route.\n"
		 "# TYPE forkd_http_request_duration_seconds histogram\n");
	for (i = 0; i < m->nr_latency; i++) {
		const struct metrics_latency *l = &m->latency[i];
		uint64_t cum = 0;

		for (b = 0; b < METRICS_BUCKETS; b++) {
			cum += l->buckets[b];
			put(out,
			    "forkd_http_request_duration_seconds_bucket{route=\"%s\",le=\"%g\"} "
			    "%llu\n",
			    l->route, bucket_le[b], (unsigned long long)cum);
		}
		put(out,
		    "forkd_http_request_duration_seconds_bucket{route=\"%s\",le=\"+Inf\"} %llu\n"
		    "forkd_http_request_duration_seconds_sum{route=\"%s\"} %.6f\n"
		    "forkd_http_request_duration_seconds_count{route=\"%s\"} %llu\n",
		    l->route, (unsigned long long)l->count, l->route, l->sum_s, l->route,
		    (unsigned long long)l->count);
	}
	pthread_mutex_unlock(&m->lock);
}
