/* common/log.c's error channel: an error's message is kept per thread
 * (errno text included), a warning never replaces it, a clear empties it,
 * and another thread's errors never reach this one; the rate limiter and
 * the byte limit for logs a guest can drive. */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/log.h"

static void test_channel(void **state)
{
	char buf[LOG_ERROR_MAX] = "untouched";

	(void)state;
	log_error_clear();
	assert_string_equal(log_last_error(), "");
	assert_false(log_take_error(buf, sizeof(buf)));
	assert_string_equal(buf, "untouched");
	log_err("snapshot '%s' is missing", "t1");
	assert_string_equal(log_last_error(), "snapshot 't1' is missing");
	log_warn("only a warning");
	assert_string_equal(log_last_error(), "snapshot 't1' is missing");
	errno = ENOENT;
	assert_int_equal(log_errno("open %s", "/x"), -ENOENT);
	assert_true(log_take_error(buf, sizeof(buf)));
	assert_string_equal(buf, "open /x: No such file or directory");
	/* Truncated to the buffer, always terminated. */
	assert_true(log_take_error(buf, 5));
	assert_string_equal(buf, "open");
	log_error_clear();
	assert_string_equal(log_last_error(), "");
}

static void *other(void *arg)
{
	(void)arg;
	log_err("from another thread");
	return NULL;
}

static void test_per_thread(void **state)
{
	pthread_t t;

	(void)state;
	log_error_clear();
	log_err("mine");
	assert_int_equal(pthread_create(&t, NULL, other, NULL), 0);
	assert_int_equal(pthread_join(t, NULL), 0);
	assert_string_equal(log_last_error(), "mine");
}

static void test_long(void **state)
{
	char big[2000];

	(void)state;
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = 0;
	errno = EIO;
	log_errno("%s", big);
	assert_int_equal(strlen(log_last_error()), LOG_ERROR_MAX - 1);
}

/* A guest-driven flood: at most the burst per window, the rest counted
 * and reported with the next window's first line. */
static void test_ratelimit(void **state)
{
	struct log_ratelimit r = {0};
	const uint64_t s = 1000000000ULL, t0 = 5 * s;
	uint64_t dropped, passed = 0;

	(void)state;
	for (int i = 0; i < 200000; i++) {
		passed += log_ratelimit(&r, t0 + (uint64_t)i, &dropped);
		assert_int_equal(dropped, 0);
	}
	assert_int_equal(passed, LOG_RATELIMIT_BURST);
	assert_true(log_ratelimit(&r, t0 + LOG_RATELIMIT_WINDOW_S * s, &dropped));
	assert_int_equal(dropped, 200000 - LOG_RATELIMIT_BURST);
	assert_true(log_ratelimit(&r, t0 + LOG_RATELIMIT_WINDOW_S * s + 1, &dropped));
	assert_int_equal(dropped, 0);
}

/* A log with a byte limit stops after about that much, saying so once;
 * the error channel still works. */
static void test_byte_limit(void **state)
{
	char path[] = "/tmp/forkd-test-log.XXXXXX", buf[8192];
	int fd = mkstemp(path), saved = dup(2);
	ssize_t n;

	(void)state;
	assert_true(fd >= 0 && saved >= 0);
	fflush(stderr);
	assert_int_equal(dup2(fd, 2), 2);
	log_set_level(LOG_INFO); /* main() keeps the other tests quiet */
	log_set_byte_limit(1000);
	for (int i = 0; i < 500; i++)
		log_warn("guest-driven line %d", i);
	log_error_clear();
	log_err("still kept");
	fflush(stderr);
	log_set_byte_limit(0);
	log_set_level(LOG_ERR);
	assert_int_equal(dup2(saved, 2), 2);
	close(saved);
	n = pread(fd, buf, sizeof(buf) - 1, 0);
	assert_true(n > 0);
	buf[n] = 0;
	assert_true(n < 1000 + 200);
	assert_non_null(strstr(buf, "reached its limit of 1000 bytes"));
	assert_null(strstr(buf, "guest-driven line 499"));
	assert_string_equal(log_last_error(), "still kept");
	close(fd);
	unlink(path);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_channel),    cmocka_unit_test(test_per_thread),
	    cmocka_unit_test(test_long),       cmocka_unit_test(test_ratelimit),
	    cmocka_unit_test(test_byte_limit),
	};

	log_set_level(LOG_ERR);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
