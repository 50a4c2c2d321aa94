/* Counters for GET /metrics, in Prometheus' text exposition format
 * (version 0.0.4). Label values come from fixed sets (route templates,
 * methods, status codes), never from request paths, so the number of
 * series stays bounded. Thread-safe. */
#ifndef FORKD_DAEMON_METRICS_H
#define FORKD_DAEMON_METRICS_H

#include <pthread.h>
#include <stdint.h>

#include "common/sbuf.h"

#define METRICS_MAX_SERIES 256
#define METRICS_BUCKETS	   10

struct metrics_series {
	const char *route, *method; /* static strings */
	int status;
	uint64_t count;
};

struct metrics_latency {
	const char *route;
	uint64_t buckets[METRICS_BUCKETS]; /* cumulative at render time */
	uint64_t count;
	double sum_s;
};

struct metrics {
	pthread_mutex_t lock;
	struct metrics_series series[METRICS_MAX_SERIES];
	unsigned nr_series;
	struct metrics_latency latency[64];
	unsigned nr_latency;
	uint64_t spawned, spawn_failed, killed, adopted, forgotten;
	uint64_t restore_count;
	double restore_sum_s;
	uint64_t agent_calls, agent_errors;
};

void metrics_init(struct metrics *m);
void metrics_request(struct metrics *m, const char *route, const char *method, int status,
		     double seconds);
void metrics_add(struct metrics *m, uint64_t *counter, uint64_t n);
void metrics_restore(struct metrics *m, double seconds);

/* Gauges the caller measures at render time. */
struct metrics_gauges {
	uint64_t sandboxes_running, sandboxes_exited, snapshots;
	double uptime_s;
	const char *version;
};
void metrics_render(struct metrics *m, const struct metrics_gauges *g, struct sbuf *out);

#endif
