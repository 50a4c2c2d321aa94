#include "fork/child.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "common/util.h"

#define ID_PREFIX "sb-"
#define ID_CHARS  20

static const char b32[] = "abcdefghijklmnopqrstuvwxyz234567";

int child_id_new(char id[CHILD_ID_LEN + 1])
{
	uint8_t rnd[ID_CHARS];

	if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd))
		return log_errno("getrandom for a child id");
	memcpy(id, ID_PREFIX, 3);
	for (int i = 0; i < ID_CHARS; i++)
		id[3 + i] = b32[rnd[i] & 31];
	id[CHILD_ID_LEN] = 0;
	return 0;
}

bool child_id_valid(const char *id)
{
	if (strlen(id) != CHILD_ID_LEN || strncmp(id, ID_PREFIX, 3))
		return false;
	for (int i = 3; i < CHILD_ID_LEN; i++)
		if (!strchr(b32, id[i]) || !id[i])
			return false;
	return true;
}

int child_start_time(pid_t pid, uint64_t *start_time, char *state)
{
	char path[64], buf[1024], *p;
	unsigned long long st;
	ssize_t n;
	int fd, field;

	if (pid <= 0)
		return -ENOENT;
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return -ENOENT;
	buf[n] = 0;
	/* The command name (field 2) may hold spaces and ')': skip to the
	 * last ')'. */
	p = strrchr(buf, ')');
	if (!p || p[1] != ' ')
		return -EPROTO;
	p += 2;
	if (state)
		*state = *p;
	for (field = 3; field < 22 && p; field++) {
		p = strchr(p, ' ');
		if (p)
			p++;
	}
	if (!p || sscanf(p, "%llu", &st) != 1)
		return -EPROTO;
	*start_time = st;
	return 0;
}

bool child_alive(pid_t pid, uint64_t start_time)
{
	uint64_t st;
	char state;

	return child_start_time(pid, &st, &state) == 0 && st == start_time && state != 'Z' &&
	       state != 'X';
}

static int pidfd_open_(pid_t pid)
{
	return (int)syscall(SYS_pidfd_open, pid, 0);
}

static int pidfd_signal(int pidfd, int sig)
{
	return (int)syscall(SYS_pidfd_send_signal, pidfd, sig, NULL, 0);
}

/* The pidfd turns readable when the process has exited (zombie or
 * reaped). */
static bool wait_exit(int pidfd, pid_t pid, uint64_t start_time, int ms)
{
	struct pollfd p = {.fd = pidfd, .events = POLLIN};
	uint64_t deadline = now_ns() + (uint64_t)ms * 1000000;

	while (now_ns() < deadline) {
		int r = poll(&p, 1, 20);

		if (r > 0 || !child_alive(pid, start_time))
			return true;
	}
	return !child_alive(pid, start_time);
}

int child_stop(pid_t pid, uint64_t start_time, int grace_ms)
{
	int fd, ret = 0;

	if (pid <= 0)
		return 0;
	fd = pidfd_open_(pid);
	if (fd < 0)
		return errno == ESRCH ? 0 : log_errno("pidfd_open(%d)", (int)pid);
	/* The pidfd pins this process: if it is the right one now, every
	 * signal below reaches it and nothing else. */
	if (!child_alive(pid, start_time))
		goto out;
	if (pidfd_signal(fd, SIGTERM) < 0 && errno != ESRCH) {
		ret = log_errno("pidfd_send_signal(%d, SIGTERM)", (int)pid);
		goto out;
	}
	if (wait_exit(fd, pid, start_time, grace_ms))
		goto out;
	if (pidfd_signal(fd, SIGKILL) < 0 && errno != ESRCH) {
		ret = log_errno("pidfd_send_signal(%d, SIGKILL)", (int)pid);
		goto out;
	}
	if (!wait_exit(fd, pid, start_time, 5000)) {
		log_err("child process %d still runs 5 s after SIGKILL", (int)pid);
		ret = -ETIMEDOUT;
	}
out:
	close(fd);
	return ret;
}

void child_time_iso(int64_t ms, char buf[32])
{
	time_t t = (time_t)(ms / 1000);
	struct tm tm;

	if (!gmtime_r(&t, &tm) || !strftime(buf, 32, "%Y-%m-%dT%H:%M:%SZ", &tm))
		snprintf(buf, 32, "-");
}

bool child_time_parse(const char *iso, int64_t *ms)
{
	struct tm tm = {0};
	const char *end = strptime(iso, "%Y-%m-%dT%H:%M:%SZ", &tm);
	time_t t;

	if (!end || *end)
		return false;
	t = timegm(&tm);
	if (t == (time_t)-1)
		return false;
	*ms = (int64_t)t * 1000;
	return true;
}
