/* Small helpers shared by every part of forkd. */
#ifndef FORKD_COMMON_UTIL_H
#define FORKD_COMMON_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include "common/log.h"

#define ARRAY_SIZE(a)	 (sizeof(a) / sizeof((a)[0]))
#define MIN(a, b)	 ((a) < (b) ? (a) : (b))
#define MAX(a, b)	 ((a) > (b) ? (a) : (b))
#define ALIGN_UP(x, a)	 (((x) + ((a)-1)) & ~((__typeof__(x))(a)-1))
#define ALIGN_DOWN(x, a) ((x) & ~((__typeof__(x))(a)-1))

#define KIB (1024ULL)
#define MIB (1024ULL * KIB)
#define GIB (1024ULL * MIB)

static inline uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

/* read(2)/write(2)/pread/pwrite until done: 0 on success, -errno on error,
 * -EIO on an unexpected end of file. */
/* Unix time in milliseconds (records, job start times). */
static inline int64_t wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int read_full(int fd, void *buf, size_t len);
int write_full(int fd, const void *buf, size_t len);
int pread_full(int fd, void *buf, size_t len, uint64_t off);
int pwrite_full(int fd, const void *buf, size_t len, uint64_t off);

/* Parse a decimal/hex unsigned integer; the whole string must be a number.
 * 0 or -EINVAL / -ERANGE. */
int parse_u64(const char *s, uint64_t *out);

/* mkdir -p: every missing directory of path; the last one gets mode, those
 * above it 0755. 0, or -errno (reported; -ENAMETOOLONG unreported). */
int make_dirs(const char *path, mode_t mode);

/* A directory forkd keeps by default: `given` if set, else root_default
 * for root, else $xdg/forkd, else $HOME/home_rel (NULL: none). When there
 * is none, -EINVAL and one error line naming `what` (NULL: no line). The daemon's state and run
 * directories, and where its clients look for its token. */
int util_default_dir(char *buf, size_t size, const char *given, const char *root_default,
		     const char *xdg, const char *home_rel, const char *what);

/* Root's home for everything forkd keeps: the daemon's state directory and
 * the snapshot store ($FORKD_HOME's default for root). */
#define UTIL_ROOT_STATE_DIR "/var/lib/forkd"
/* The daemon's state directory (token, database, audit log): `given`, else
 * /var/lib/forkd for root, else $XDG_STATE_HOME/forkd or
 * ~/.local/state/forkd. The daemon and its clients (the token) agree
 * through this one rule. */
int util_state_dir(char *buf, size_t size, const char *given, const char *what);
/* Where run directories go: `given`, else /run/forkd for root, else
 * $XDG_RUNTIME_DIR/forkd. */
int util_run_root(char *buf, size_t size, const char *given, const char *what);

/* For functions that report into a caller's buffer: format the message
 * into err (when given) and return code. */
int errbuf_fail(char *err, size_t errlen, int code, const char *fmt, ...) __printf(4, 5);

#endif
