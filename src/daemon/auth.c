#include "daemon/auth.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

int auth_load_token(const char *path, char *buf, size_t size, size_t *len)
{
	struct stat st;
	ssize_t n;
	int fd;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return log_errno("open token file %s", path);
	if (fstat(fd, &st) < 0) {
		close(fd);
		return log_errno("stat token file %s", path);
	}
	if (!S_ISREG(st.st_mode)) {
		close(fd);
		log_err("token file %s is not a regular file", path);
		return -EINVAL;
	}
	if (st.st_mode & 077) {
		close(fd);
		log_err("token file %s is accessible to group or others (mode %03o); "
			"run 'chmod 600 %s'",
			path, (unsigned)(st.st_mode & 0777), path);
		return -EPERM;
	}
	n = read(fd, buf, size - 1);
	close(fd);
	if (n < 0)
		return log_errno("read token file %s", path);
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
		n--;
	buf[n] = 0;
	if (n < AUTH_TOKEN_MIN || (size_t)n > AUTH_TOKEN_MAX) {
		log_err("token in %s has %zd bytes; it needs %d to %d (make one with "
			"'head -c 32 /dev/urandom | base64 > %s')",
			path, n, AUTH_TOKEN_MIN, AUTH_TOKEN_MAX, path);
		return -EINVAL;
	}
	for (ssize_t i = 0; i < n; i++)
		if (buf[i] < 0x21 || buf[i] > 0x7e) {
			log_err("token in %s holds a byte that is not printable ASCII (offset %zd)",
				path, i);
			return -EINVAL;
		}
	*len = (size_t)n;
	return 0;
}

bool auth_equal(const char *expected, size_t expected_len, const char *given, size_t given_len)
{
	volatile unsigned char diff = expected_len != given_len;

	/* Walk the whole expected token whatever `given` holds; past the end
	 * of a shorter `given`, compare with ~expected[i], which always
	 * differs, instead of reading beyond it. */
	for (size_t i = 0; i < expected_len; i++)
		diff |= (unsigned char)expected[i] ^
			(unsigned char)(i < given_len ? given[i] : (char)~expected[i]);
	return diff == 0;
}

const char *auth_check(const char *expected, size_t expected_len, const char *header)
{
	size_t n;

	if (!header)
		return "missing";
	if (strncasecmp(header, "Bearer ", 7))
		return "invalid";
	header += 7;
	while (*header == ' ')
		header++;
	n = strlen(header);
	while (n && header[n - 1] == ' ')
		n--;
	return auth_equal(expected, expected_len, header, n) ? "ok" : "invalid";
}
