#include "common/file.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int file_read(const char *path, size_t max, char **out, size_t *len)
{
	int fd, err;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
	if (fd < 0)
		return -errno;
	err = file_read_fd(fd, max, out, len);
	close(fd);
	return err;
}

int file_read_fd(int fd, size_t max, char **out, size_t *len)
{
	size_t cap, n = 0;
	struct stat st;
	char *buf;
	int err = 0;

	if (fstat(fd, &st) < 0)
		return -errno;
	if (!S_ISREG(st.st_mode))
		return -EINVAL;
	if (max > SIZE_MAX - 2)
		max = SIZE_MAX - 2;
	if ((uint64_t)st.st_size > max)
		return -EFBIG;
	/* Room for one byte more than max, to see a file that grew past it. */
	cap = st.st_size > 0 ? (size_t)st.st_size + 2 : (max < 4096 ? max + 2 : 4096);
	buf = malloc(cap);
	while (buf) {
		ssize_t r = read(fd, buf + n, cap - 1 - n);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			err = -errno;
			break;
		}
		if (r == 0)
			break;
		n += (size_t)r;
		if (n > max) {
			err = -EFBIG;
			break;
		}
		if (n == cap - 1) {
			size_t ncap = cap - 1 > max / 2 ? max + 2 : cap * 2;
			char *p = realloc(buf, ncap);

			if (!p) {
				free(buf);
				buf = NULL;
				break;
			}
			buf = p;
			cap = ncap;
		}
	}
	if (!buf)
		return -ENOMEM;
	if (err) {
		free(buf);
		return err;
	}
	buf[n] = 0;
	*out = buf;
	if (len)
		*len = n;
	return 0;
}

/* Remove name in directory pfd and everything below it. */
static int remove_at(int pfd, const char *name, dev_t dev, int depth)
{
	struct stat st, st2;
	struct dirent *de;
	int fd, err = 0;
	DIR *d;

	if (fstatat(pfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return errno == ENOENT ? 0 : -errno;
	if (!S_ISDIR(st.st_mode))
		return unlinkat(pfd, name, 0) < 0 && errno != ENOENT ? -errno : 0;
	if (st.st_dev != dev)
		return -EXDEV;
	if (depth > 64)
		return -ELOOP;
	fd = openat(pfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? 0 : -errno;
	/* Still the directory looked at, not something swapped in. */
	if (fstat(fd, &st2) < 0 || st2.st_ino != st.st_ino || st2.st_dev != st.st_dev) {
		close(fd);
		return -EAGAIN;
	}
	d = fdopendir(fd);
	if (!d) {
		close(fd);
		return -errno;
	}
	while ((de = readdir(d))) {
		int e;

		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		e = remove_at(dirfd(d), de->d_name, dev, depth + 1);
		if (e && !err)
			err = e;
	}
	closedir(d);
	if (!err && unlinkat(pfd, name, AT_REMOVEDIR) < 0 && errno != ENOENT)
		err = -errno;
	return err;
}

int file_remove_tree(const char *path)
{
	char parent[PATH_MAX], *slash;
	struct stat st;
	int pfd, err;

	if (snprintf(parent, sizeof(parent), "%s", path) >= (int)sizeof(parent))
		return -ENAMETOOLONG;
	slash = strrchr(parent, '/');
	if (!slash || !slash[1] || !strcmp(slash + 1, ".") || !strcmp(slash + 1, ".."))
		return -EINVAL;
	*slash = '\0';
	pfd = open(parent[0] ? parent : "/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (pfd < 0)
		return errno == ENOENT ? 0 : -errno;
	if (fstatat(pfd, slash + 1, &st, AT_SYMLINK_NOFOLLOW) < 0)
		err = errno == ENOENT ? 0 : -errno;
	else
		err = remove_at(pfd, slash + 1, st.st_dev, 0);
	close(pfd);
	return err;
}
