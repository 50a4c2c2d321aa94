#include "daemon/auth.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/util.h"

int auth_make_token(const char *path)
{
	uint8_t raw[32];
	char hex[2 * sizeof(raw) + 2];
	int fd, err = 0;

	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0)
		return errno == EEXIST ? 0 : log_errno("create token file %s", path);
	if (getrandom(raw, sizeof(raw), 0) != (ssize_t)sizeof(raw)) {
		err = log_errno("getrandom for the token");
	} else {
		for (size_t i = 0; i < sizeof(raw); i++)
			snprintf(hex + 2 * i, 3, "%02x", raw[i]);
		hex[2 * sizeof(raw)] = '\n';
		err = write_full(fd, hex, 2 * sizeof(raw) + 1);
		if (err)
			log_err("write token file %s: %s", path, strerror(-err));
	}
	if (!err && fsync(fd) < 0)
		err = log_errno("sync token file %s", path);
	close(fd);
	if (err)
		unlink(path);
	else
		log_info("made a bearer token in %s (clients on this host read it there)", path);
	return err;
}

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
