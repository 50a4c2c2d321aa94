/* Diagnostics for library code: one line per event, prefixed "forkd: ".
 * Library code reports an error once, where it happens, and returns -errno;
 * it never exits. Only main() may die(). */
#ifndef FORKD_COMMON_LOG_H
#define FORKD_COMMON_LOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define __printf(a, b) __attribute__((format(printf, a, b)))
#define __must_check   __attribute__((warn_unused_result))

enum log_level { LOG_ERR, LOG_WARN, LOG_INFO, LOG_DEBUG };

/* Messages above this level are dropped. Set once at start-up by main(). */
void log_set_level(enum log_level level);
/* Lines begin "forkd VERB: " instead of "forkd: " (NULL: back to that), as
 * the CLI's own errors do. */
void log_set_name(const char *verb);
bool log_enabled(enum log_level level);

void log_msg(enum log_level level, const char *fmt, ...) __printf(2, 3);

/* Write at most about `bytes` of log lines from now on (0: no limit), then
 * one line saying the limit was reached and nothing more: for a child's
 * VMM, whose log file (vmm.log on a tmpfs) a guest could otherwise fill.
 * The error channel below is kept either way. */
void log_set_byte_limit(uint64_t bytes);

#define log_err(...)   log_msg(LOG_ERR, __VA_ARGS__)
#define log_warn(...)  log_msg(LOG_WARN, __VA_ARGS__)
#define log_info(...)  log_msg(LOG_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)

/* Report a failed call with errno's text, then return -errno for the caller
 * to pass up: `return log_errno("KVM_RUN(vcpu %d)", id);` */
int log_errno(const char *fmt, ...) __printf(1, 2);

/* The error channel. Library code reports a failure once, with log_err()
 * or log_errno(), and returns -errno; the message is also kept, per
 * thread, so a caller that must hand it on (the daemon's spawner answers
 * the API with it) takes it from here instead of parsing stderr:
 *     log_error_clear(); r = call(); if (r) log_take_error(msg, size);
 * The last error since the clear wins. */
#define LOG_ERROR_MAX 512
void log_error_clear(void);
/* "" when none since the last clear. */
const char *log_last_error(void);
/* Copy the last error into buf; false (buf untouched) when there is none. */
bool log_take_error(char *buf, size_t size);

/* A limit for messages a guest can cause (a hostile one would flood the
 * log): at most LOG_RATELIMIT_BURST lines per LOG_RATELIMIT_WINDOW_S
 * seconds through one limiter. log_ratelimit() says whether this line may
 * go out; the first line of a new window also says how many were
 * dropped (through *dropped, reset to 0). Not thread-safe: callers hold
 * their device's lock. */
#define LOG_RATELIMIT_BURST    10
#define LOG_RATELIMIT_WINDOW_S 60
struct log_ratelimit {
	uint64_t window_start_ns;
	unsigned lines;
	uint64_t dropped;
};
bool log_ratelimit(struct log_ratelimit *r, uint64_t now_ns, uint64_t *dropped);

#endif
