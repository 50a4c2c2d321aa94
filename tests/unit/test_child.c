/* fork/child.c: child ids (the gate to paths and queries), a process's
 * start time, and stopping a child only while it is the process that
 * started at the recorded time (a recycled pid is never signalled). */
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "fork/child.h"

static void test_ids(void **state)
{
	static const char *bad[] = {"",
				    "sb-",
				    "sb-abcdefghijklmnopqrs",
				    "sb-abcdefghijklmnopqrstu",
				    "sb-abcdefghijklmnopqrs1",
				    "sb-ABCDEFGHIJKLMNOPQRST",
				    "xx-abcdefghijklmnopqrst",
				    "sb-abcdefghij/lmnopqrst",
				    "sb-abcdefghij.lmnopqrst",
				    "k-0123abcd"};
	char id[CHILD_ID_LEN + 1];

	(void)state;
	assert_true(child_id_valid("sb-abcdefghijklmnopqrst"));
	assert_true(child_id_valid("sb-234567abcdefghijklmn"));
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_false(child_id_valid(bad[i]));
	for (int i = 0; i < 100; i++) {
		assert_int_equal(child_id_new(id), 0);
		assert_true(child_id_valid(id));
	}
}

static void test_start_time(void **state)
{
	uint64_t st = 0, st2 = 0;
	char s = 0;

	(void)state;
	assert_int_equal(child_start_time(getpid(), &st, &s), 0);
	assert_true(st > 0);
	assert_true(s == 'R' || s == 'S');
	assert_int_equal(child_start_time(getpid(), &st2, NULL), 0);
	assert_int_equal(st, st2);
	assert_true(child_alive(getpid(), st));
	assert_false(child_alive(getpid(), st + 1));
	assert_int_equal(child_start_time(0, &st2, NULL), -ENOENT);
	assert_int_equal(child_start_time(-5, &st2, NULL), -ENOENT);
}

static void test_stop(void **state)
{
	uint64_t st;
	int status;
	pid_t pid = fork();

	(void)state;
	assert_true(pid >= 0);
	if (pid == 0) {
		pause();
		_exit(0);
	}
	assert_int_equal(child_start_time(pid, &st, NULL), 0);
	/* Another start time: another process, left alone. */
	assert_int_equal(child_stop(pid, st + 1, 100), 0);
	assert_int_equal(waitpid(pid, &status, WNOHANG), 0);
	/* The right one: SIGTERM ends it (a zombie counts as gone). */
	assert_int_equal(child_stop(pid, st, 2000), 0);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGTERM);
	assert_false(child_alive(pid, st));
	assert_int_equal(child_stop(pid, st, 100), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_ids),
	    cmocka_unit_test(test_start_time),
	    cmocka_unit_test(test_stop),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
