#include "common/util.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int read_full(int fd, void *buf, size_t len)
{
	char *p = buf;

	while (len) {
		ssize_t n = read(fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -EIO;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int write_full(int fd, const void *buf, size_t len)
{
	const char *p = buf;

	while (len) {
		ssize_t n = write(fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int pread_full(int fd, void *buf, size_t len, uint64_t off)
{
	char *p = buf;

	while (len) {
		ssize_t n = pread(fd, p, len, (off_t)off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -EIO;
		p += n;
		off += (uint64_t)n;
		len -= (size_t)n;
	}
	return 0;
}

int pwrite_full(int fd, const void *buf, size_t len, uint64_t off)
{
	const char *p = buf;

	while (len) {
		ssize_t n = pwrite(fd, p, len, (off_t)off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		p += n;
		off += (uint64_t)n;
		len -= (size_t)n;
	}
	return 0;
}

int parse_u64(const char *s, uint64_t *out)
{
	unsigned long long v;
	char *end;

	if (!s || !*s || *s == '-' || *s == '+')
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 0);
	if (errno == ERANGE)
		return -ERANGE;
	if (*end)
		return -EINVAL;
	*out = v;
	return 0;
}

int errbuf_fail(char *err, size_t errlen, int code, const char *fmt, ...)
{
	va_list ap;

	if (err && errlen) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return code;
}

int make_dirs(const char *path, mode_t mode)
{
	char buf[PATH_MAX];
	size_t n = strlen(path);

	if (n == 0 || n >= sizeof(buf))
		return -ENAMETOOLONG;
	memcpy(buf, path, n + 1);
	for (char *p = buf + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = 0;
		if (mkdir(buf, 0755) < 0 && errno != EEXIST)
			return log_errno("mkdir %s", buf);
		*p = '/';
	}
	if (mkdir(buf, mode) < 0 && errno != EEXIST)
		return log_errno("mkdir %s", buf);
	return 0;
}

int util_default_dir(char *buf, size_t size, const char *given, const char *root_default,
		     const char *xdg, const char *home_rel, const char *what)
{
	const char *v;

	if (given)
		return (size_t)snprintf(buf, size, "%s", given) < size ? 0 : -ENAMETOOLONG;
	if (geteuid() == 0)
		return (size_t)snprintf(buf, size, "%s", root_default) < size ? 0 : -ENAMETOOLONG;
	if ((v = getenv(xdg)) && v[0] == '/')
		return (size_t)snprintf(buf, size, "%s/forkd", v) < size ? 0 : -ENAMETOOLONG;
	if (home_rel && (v = getenv("HOME")) && v[0] == '/')
		return (size_t)snprintf(buf, size, "%s/%s", v, home_rel) < size ? 0 : -ENAMETOOLONG;
	if (what)
		log_err("no %s: pass it explicitly (or set $%s)", what, xdg);
	return -EINVAL;
}

int util_state_dir(char *buf, size_t size, const char *given, const char *what)
{
	return util_default_dir(buf, size, given, UTIL_ROOT_STATE_DIR, "XDG_STATE_HOME",
				".local/state/forkd", what);
}

int util_run_root(char *buf, size_t size, const char *given, const char *what)
{
	return util_default_dir(buf, size, given, "/run/forkd", "XDG_RUNTIME_DIR", NULL, what);
}
