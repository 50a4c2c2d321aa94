/* Bearer-token authentication for the daemon.
 *
 * The token is the content of --token-file without its trailing newline:
 * 16 to 4096 printable ASCII bytes, in a file no one but its owner can
 * read or write. Requests send "Authorization: Bearer <token>"; the
 * comparison takes the same time wherever the first difference is. */
#ifndef FORKD_DAEMON_AUTH_H
#define FORKD_DAEMON_AUTH_H

#include <stdbool.h>
#include <stddef.h>

#include "common/log.h"

#define AUTH_TOKEN_MIN 16
#define AUTH_TOKEN_MAX 4096

/* Make a token file at path (0600, 32 random bytes as 64 hex digits)
 * unless one is there; never follows a link. 0 or -errno, logged. */
int auth_make_token(const char *path) __must_check;

/* One error line naming the cause and the fix on failure. */
int auth_load_token(const char *path, char *buf, size_t size, size_t *len) __must_check;

/* Check an Authorization header value (NULL: absent) against the token:
 * "ok", "missing" or "invalid". */
const char *auth_check(const char *expected, size_t expected_len, const char *header);

/* Constant-time in the length of `expected`. */
bool auth_equal(const char *expected, size_t expected_len, const char *given, size_t given_len);

#endif
