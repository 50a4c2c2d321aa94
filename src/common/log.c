#include "common/log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "common/util.h"

static enum log_level max_level = LOG_INFO;
/* What every line starts with: "forkd", or "forkd VERB" (log_set_name()). */
static char name[48] = "forkd";
static uint64_t byte_limit, bytes_out; /* log_set_byte_limit() */
/* The calling thread's last error message (log_last_error()). */
static __thread char last_error[LOG_ERROR_MAX];

void log_set_name(const char *verb)
{
	snprintf(name, sizeof(name), "forkd%s%s", verb ? " " : "", verb ? verb : "");
}

void log_set_level(enum log_level level)
{
	max_level = level;
}

bool log_enabled(enum log_level level)
{
	return level <= max_level;
}

static void log_vmsg(enum log_level level, const char *suffix, const char *fmt, va_list ap)
{
	static const char *const prefix[] = {"error: ", "warning: ", "", "debug: "};
	char line[1024];
	int n;

	if (level != LOG_ERR && !log_enabled(level))
		return;
	n = vsnprintf(line, sizeof(line), fmt, ap);
	if (n < 0)
		return;
	if (level == LOG_ERR) {
		size_t k = MIN((size_t)n, sizeof(last_error) - 1);

		memcpy(last_error, line, k);
		last_error[k] = 0;
		if (suffix)
			strncat(last_error, suffix, sizeof(last_error) - 1 - k);
	}
	if (!log_enabled(level))
		return;
	if (byte_limit) {
		uint64_t len = 16 + (uint64_t)strlen(line) + (suffix ? strlen(suffix) : 0);
		uint64_t total = __atomic_add_fetch(&bytes_out, len, __ATOMIC_RELAXED);

		if (total > byte_limit) {
			if (total - len <= byte_limit)
				fprintf(stderr,
					"%s: warning: this log reached its limit of %llu "
					"bytes: nothing more is written to it\n",
					name, (unsigned long long)byte_limit);
			return;
		}
	}
	/* One write per line, so lines from several threads never interleave. */
	fprintf(stderr, "%s: %s%s%s\n", name, prefix[level], line, suffix ? suffix : "");
}

void log_set_byte_limit(uint64_t bytes)
{
	__atomic_store_n(&bytes_out, 0, __ATOMIC_RELAXED);
	byte_limit = bytes;
}

void log_msg(enum log_level level, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vmsg(level, NULL, fmt, ap);
	va_end(ap);
}

int log_errno(const char *fmt, ...)
{
	int err = errno ? errno : EIO;
	char suffix[128];
	va_list ap;

	snprintf(suffix, sizeof(suffix), ": %s", strerror(err));
	va_start(ap, fmt);
	log_vmsg(LOG_ERR, suffix, fmt, ap);
	va_end(ap);
	return -err;
}

void log_error_clear(void)
{
	last_error[0] = 0;
}

const char *log_last_error(void)
{
	return last_error;
}

bool log_take_error(char *buf, size_t size)
{
	if (!last_error[0] || !size)
		return false;
	if ((size_t)snprintf(buf, size, "%s", last_error) >= size)
		buf[size - 1] = 0;
	return true;
}

bool log_ratelimit(struct log_ratelimit *r, uint64_t now_ns, uint64_t *dropped)
{
	*dropped = 0;
	if (!r->window_start_ns ||
	    now_ns - r->window_start_ns >= LOG_RATELIMIT_WINDOW_S * 1000000000ULL) {
		r->window_start_ns = now_ns ? now_ns : 1;
		r->lines = 0;
		*dropped = r->dropped;
		r->dropped = 0;
	}
	if (r->lines >= LOG_RATELIMIT_BURST) {
		r->dropped++;
		return false;
	}
	r->lines++;
	return true;
}
