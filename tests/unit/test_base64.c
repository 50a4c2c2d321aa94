/* common/base64.c: RFC 4648 test vectors both ways, round trips of every
 * length up to 300 bytes, and the strict decoder refusing what is not
 * canonical padded base64 (the daemon decodes what a guest agent sends). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/base64.h"

static const char *vec[][2] = {{"", ""},
			       {"f", "Zg=="},
			       {"fo", "Zm8="},
			       {"foo", "Zm9v"},
			       {"foob", "Zm9vYg=="},
			       {"fooba", "Zm9vYmE="},
			       {"foobar", "Zm9vYmFy"}};

static void test_vectors(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(vec) / sizeof(vec[0]); i++) {
		char out[16];
		uint8_t *dec = NULL;
		ssize_t n;

		base64_encode(vec[i][0], strlen(vec[i][0]), out);
		assert_string_equal(out, vec[i][1]);
		assert_int_equal(strlen(out), BASE64_LEN(strlen(vec[i][0])));
		n = base64_decode(vec[i][1], strlen(vec[i][1]), &dec);
		assert_int_equal(n, (ssize_t)strlen(vec[i][0]));
		assert_memory_equal(dec, vec[i][0], (size_t)n);
		free(dec);
	}
}

static void test_round_trip(void **state)
{
	uint8_t in[300];

	(void)state;
	for (size_t i = 0; i < sizeof(in); i++)
		in[i] = (uint8_t)(i * 37 + 11);
	for (size_t n = 0; n <= sizeof(in); n++) {
		char *enc = base64_encode_alloc(in, n);
		uint8_t *dec = NULL;

		assert_non_null(enc);
		assert_int_equal(base64_decode(enc, strlen(enc), &dec), (ssize_t)n);
		assert_memory_equal(dec, in, n);
		free(enc);
		free(dec);
	}
}

static void test_refused(void **state)
{
	static const char *bad[] = {
	    "Zg",	 "Zg=",	 "Zg===", "=Zg=", "Z===", "Zm9v=g==", "Zm 9", "Zm9\n",
	    "Zm9v\0aaa", "Zh==", "Zm9=",  "Zm-_", "====", "Zm9vY===", "é123"};
	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		uint8_t *dec = (uint8_t *)"untouched";
		size_t len = strlen(bad[i]);

		if (i == 8)
			len = 8; /* an embedded NUL */
		assert_int_equal(base64_decode(bad[i], len, &dec), -1);
		assert_string_equal((const char *)dec, "untouched");
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_vectors),
	    cmocka_unit_test(test_round_trip),
	    cmocka_unit_test(test_refused),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
