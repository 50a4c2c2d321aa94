/* Whole files and whole directory trees, once for every part of forkd.
 *
 * Both take paths that may come from outside (a snapshot directory, a
 * cgroup file, a run directory under /tmp): file_read() never blocks on a
 * FIFO or device and bounds what it reads; file_remove_tree() never
 * follows a symbolic link, never leaves the file system it starts on and
 * never descends into a directory swapped in while it works. Neither
 * logs: callers say what the file was for. */
#ifndef FORKD_COMMON_FILE_H
#define FORKD_COMMON_FILE_H
#include <stddef.h>

#include "common/log.h"

/* Read the regular file at path whole (also /proc, /sys and cgroup files,
 * whose size is read, not stat'ed) into a new malloc'd buffer with a NUL
 * after the data; *len (may be NULL) is the data's length.
 *   -ENOENT & co  from open(2);  -EINVAL  not a regular file;
 *   -EFBIG        more than max bytes;  -ENOMEM. */
int file_read(const char *path, size_t max, char **out, size_t *len) __must_check;
/* The same from an open fd (read from its current offset; not closed). */
int file_read_fd(int fd, size_t max, char **out, size_t *len) __must_check;

/* rm -r path, with the guarantees above; 0 also when there is nothing.
 * -EXDEV: a mount point below it (left in place); -ELOOP: deeper than 64
 * levels; -EAGAIN: a directory changed under it; else -errno of the first
 * failure (it goes on with the rest). */
int file_remove_tree(const char *path) __must_check;
#endif
