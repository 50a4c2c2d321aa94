/* The daemon's bearer-token check (src/daemon/auth.c): auth_equal()
 * compares exactly the given bytes with the token, whatever their length;
 * auth_check() takes an Authorization header value the way the daemon
 * does ("Bearer", any case, one space, then spaces around the token
 * ignored); auth_load_token() enforces the token file's rules. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "daemon/auth.h"

#define TOKEN "tok-0123456789abcdef-XYZ"

static const size_t token_len = sizeof(TOKEN) - 1;

static bool eq(const char *given)
{
	return auth_equal(TOKEN, token_len, given, strlen(given));
}

static const char *check(const char *header)
{
	return auth_check(TOKEN, token_len, header);
}

static void test_equal(void **state)
{
	char buf[sizeof(TOKEN)];

	assert_true(eq(TOKEN));
	/* A copy in another buffer: the bytes count, not the pointer. */
	memcpy(buf, TOKEN, sizeof(buf));
	assert_true(auth_equal(TOKEN, token_len, buf, token_len));
}

static void test_same_length_differs(void **state)
{
	char buf[sizeof(TOKEN)];

	const size_t at[] = {0, token_len / 2, token_len - 1};

	/* The first, a middle and the last byte each decide alone. */
	for (size_t i = 0; i < sizeof(at) / sizeof(at[0]); i++) {
		memcpy(buf, TOKEN, sizeof(buf));
		buf[at[i]] ^= 1;
		assert_false(auth_equal(TOKEN, token_len, buf, token_len));
	}
	assert_false(eq("tok-0123456789abcdef-XYz"));
}

static void test_prefix_and_longer(void **state)
{
	assert_false(eq("tok-0123456789abcdef-XY"));
	assert_false(eq("tok-"));
	assert_false(eq("t"));
	assert_false(eq(TOKEN "x"));
	assert_false(eq(TOKEN TOKEN));
	/* Only given_len bytes are compared: the token followed by more
	 * bytes the length leaves out still matches, and a NUL inside the
	 * length does not end the comparison early. */
	assert_true(auth_equal(TOKEN, token_len, TOKEN "trailing", token_len));
	assert_false(auth_equal(TOKEN, token_len, TOKEN "\0", token_len + 1));
	assert_false(auth_equal(TOKEN, token_len,
				"tok-\0"
				"123456789abcdef-XYZ",
				token_len));
}

static void test_empty(void **state)
{
	assert_false(eq(""));
	assert_false(auth_equal(TOKEN, token_len, NULL, 0));
	assert_string_equal(check(""), "invalid");
	assert_string_equal(check("Bearer "), "invalid");
	assert_string_equal(check("Bearer    "), "invalid");
}

static void test_header_scheme(void **state)
{
	assert_string_equal(check(NULL), "missing");
	assert_string_equal(check("Bearer " TOKEN), "ok");
	/* The scheme is case-insensitive (RFC 7235 §2.1). */
	assert_string_equal(check("bearer " TOKEN), "ok");
	assert_string_equal(check("BEARER " TOKEN), "ok");
	assert_string_equal(check("bEaReR " TOKEN), "ok");
	/* Anything else in front of the token is refused. */
	assert_string_equal(check(TOKEN), "invalid");
	assert_string_equal(check("Basic " TOKEN), "invalid");
	assert_string_equal(check("Bearer"), "invalid");
	assert_string_equal(check("Bearer\t" TOKEN), "invalid");
	assert_string_equal(check("Bearer:" TOKEN), "invalid");
	assert_string_equal(check("Bearer" TOKEN), "invalid");
	assert_string_equal(check(" Bearer " TOKEN), "invalid");
	assert_string_equal(check("Bearers " TOKEN), "invalid");
}

static void test_header_token(void **state)
{
	/* Spaces around the token are not part of it; tabs are. */
	assert_string_equal(check("Bearer   " TOKEN), "ok");
	assert_string_equal(check("Bearer " TOKEN "   "), "ok");
	assert_string_equal(check("Bearer  " TOKEN " "), "ok");
	assert_string_equal(check("Bearer " TOKEN "\t"), "invalid");
	/* The token itself is case-sensitive and compared whole. */
	assert_string_equal(check("Bearer TOK-0123456789abcdef-XYZ"), "invalid");
	assert_string_equal(check("Bearer tok-0123456789abcdef-XY"), "invalid");
	assert_string_equal(check("Bearer " TOKEN "x"), "invalid");
	assert_string_equal(check("Bearer " TOKEN " x"), "invalid");
	assert_string_equal(check("Bearer " TOKEN " " TOKEN), "invalid");
}

/* Write `text` to a fresh file of mode `mode`; its path in path. */
static void token_file(char *path, size_t size, const char *text, mode_t mode)
{
	int fd;

	snprintf(path, size, "%s/forkd-test-auth.XXXXXX",
		 getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
	fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	assert_int_equal(fchmod(fd, mode), 0);
	close(fd);
}

static int load(const char *text, mode_t mode, char *buf, size_t size, size_t *len)
{
	char path[4096];
	int r;

	token_file(path, sizeof(path), text, mode);
	r = auth_load_token(path, buf, size, len);
	unlink(path);
	return r;
}

static void test_load_token(void **state)
{
	char buf[AUTH_TOKEN_MAX + 2];
	size_t len = 0;

	/* The trailing newline (or CRLF) is not part of the token. */
	assert_int_equal(load(TOKEN "\n", 0600, buf, sizeof(buf), &len), 0);
	assert_int_equal(len, token_len);
	assert_string_equal(buf, TOKEN);
	assert_int_equal(load(TOKEN "\r\n", 0400, buf, sizeof(buf), &len), 0);
	assert_int_equal(len, token_len);
	assert_string_equal(auth_check(buf, len, "Bearer " TOKEN), "ok");

	assert_int_equal(load("0123456789abcde\n", 0600, buf, sizeof(buf), &len), -EINVAL);
	assert_int_equal(load("0123456789abcdef\n", 0600, buf, sizeof(buf), &len), 0);
	assert_int_equal(len, AUTH_TOKEN_MIN);
	assert_int_equal(load(TOKEN "\n", 0640, buf, sizeof(buf), &len), -EPERM);
	assert_int_equal(load(TOKEN "\n", 0604, buf, sizeof(buf), &len), -EPERM);
	assert_int_equal(load("tok 0123456789abcdef\n", 0600, buf, sizeof(buf), &len), -EINVAL);
	assert_int_equal(load("tok\t0123456789abcdef\n", 0600, buf, sizeof(buf), &len), -EINVAL);
	assert_int_equal(auth_load_token("/", buf, sizeof(buf), &len), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_equal),
	    cmocka_unit_test(test_same_length_differs),
	    cmocka_unit_test(test_prefix_and_longer),
	    cmocka_unit_test(test_empty),
	    cmocka_unit_test(test_header_scheme),
	    cmocka_unit_test(test_header_token),
	    cmocka_unit_test(test_load_token),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
