#include "cli/fork_keep.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/util.h"
#include "fork/child.h"

static volatile sig_atomic_t fg_interrupted;

static void fg_on_signal(int sig)
{
	fg_interrupted = sig;
}

/* A live spawner (a --keep supervisor) already uses this workdir. */
static pid_t workdir_user(const char *workdir)
{
	char path[PATH_MAX + 32], buf[32];
	long pid = 0;
	FILE *f;

	snprintf(path, sizeof(path), "%s/spawner.pid", workdir);
	f = fopen(path, "re");
	if (!f)
		return 0;
	if (!fgets(buf, sizeof(buf), f))
		buf[0] = '\0';
	fclose(f);
	pid = strtol(buf, NULL, 10);
	if (pid <= 0 || pid > INT_MAX || pid == getpid())
		return 0;
	return kill((pid_t)pid, 0) == 0 || errno == EPERM ? (pid_t)pid : 0;
}

/* Copy what the supervisor logged so far to stdout. */
static void show_log(const char *log)
{
	char buf[4096];
	size_t n;
	FILE *f = fopen(log, "re");

	if (!f)
		return;
	while ((n = fread(buf, 1, sizeof(buf), f)) > 0)
		fwrite(buf, 1, n, stdout);
	fclose(f);
}

/* The report's last complete line is "ok" or "fail ...". */
static bool last_line_ends(const char *text, size_t len)
{
	const char *last;

	if (!len || text[len - 1] != '\n')
		return false;
	last = len > 1 ? memrchr(text, '\n', len - 1) : NULL;
	last = last ? last + 1 : text;
	return !strcmp(last, "ok\n") || !strncmp(last, "fail ", 5);
}

/* Foreground: read the report until its last line or the supervisor's
 * end. Returns forkd fork's exit status. */
static int wait_report(pid_t sup, int fd, const char *log)
{
	char *text = NULL, *line, *save = NULL;
	size_t len = 0, kept = 0;
	struct sigaction sa = {.sa_handler = fg_on_signal};
	bool done = false, ok = false, gone = false;
	int st = 0;

	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	while (!done && !gone && !fg_interrupted) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		char buf[4096], *nt;
		ssize_t n;

		if (poll(&p, 1, 500) <= 0) {
			gone = waitpid(sup, &st, WNOHANG) == sup;
			continue;
		}
		n = read(fd, buf, sizeof(buf));
		if (n <= 0) {
			gone = waitpid(sup, &st, 0) == sup;
			break;
		}
		nt = realloc(text, len + (size_t)n + 1);
		if (!nt)
			break;
		text = nt;
		memcpy(text + len, buf, (size_t)n);
		len += (size_t)n;
		text[len] = '\0';
		done = last_line_ends(text, len);
	}
	if (fg_interrupted) {
		kill(sup, SIGTERM);
		printf("fork: interrupted; the supervisor (pid %d) stops the children\n", (int)sup);
		free(text);
		return 130;
	}
	show_log(log);
	for (line = text ? strtok_r(text, "\n", &save) : NULL; line;
	     line = strtok_r(NULL, "\n", &save)) {
		if (!strncmp(line, "kept ", 5)) {
			printf("%s\n", line);
			kept++;
		} else if (!strcmp(line, "ok")) {
			ok = true;
		} else if (!strncmp(line, "fail ", 5)) {
			fprintf(stderr, "forkd fork: error: %s; every child was stopped\n",
				line + 5);
		}
	}
	free(text);
	if (ok) {
		printf("fork: %zu children kept; supervisor pid %d (log %s); list them with 'forkd "
		       "ls', stop them with 'forkd kill ID...|--all|--tag TAG'\n",
		       kept, (int)sup, log);
		return 0;
	}
	if (!done)
		fprintf(
		    stderr,
		    "forkd fork: error: the supervisor (pid %d) ended before reporting (%s %d); "
		    "see %s\n",
		    (int)sup, gone && WIFSIGNALED(st) ? "signal" : "status",
		    gone ? (WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st)) : -1, log);
	return 1;
}

int fork_keep_detach(const char *workdir, int *report_fd)
{
	char log[PATH_MAX + 32];
	int p[2], fd, null;
	pid_t pid, user;

	*report_fd = -1;
	user = workdir_user(workdir);
	if (user) {
		log_err("--keep: %s is in use by the spawner with pid %d (children of an earlier "
			"'forkd fork --keep'?); use another --workdir",
			workdir, (int)user);
		return 1;
	}
	snprintf(log, sizeof(log), "%s/supervisor.log", workdir);
	fd = open(log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
	if (fd < 0) {
		log_errno("open %s", log);
		return 1;
	}
	if (pipe2(p, O_CLOEXEC) < 0) {
		log_errno("pipe for the supervisor's report");
		close(fd);
		return 1;
	}
	fflush(stdout);
	fflush(stderr);
	pid = fork();
	if (pid < 0) {
		log_errno("fork the supervisor");
		close(fd);
		close(p[0]);
		close(p[1]);
		return 1;
	}
	if (pid == 0) {
		close(p[0]);
		/* Out of the terminal's session: a Ctrl-C or hang-up meant for
		 * the command must not reach the children's parent. */
		setsid();
		null = open("/dev/null", O_RDONLY | O_CLOEXEC);
		if (null >= 0) {
			dup2(null, STDIN_FILENO);
			close(null);
		}
		dup2(fd, STDOUT_FILENO);
		dup2(fd, STDERR_FILENO);
		close(fd);
		/* The foreground may be gone when the report is written. */
		signal(SIGPIPE, SIG_IGN);
		*report_fd = p[1];
		return 0;
	}
	close(fd);
	close(p[1]);
	fd = wait_report(pid, p[0], log);
	close(p[0]);
	return fd;
}

static void report_line(int fd, const char *fmt, ...) __printf(2, 3);

static void report_line(int fd, const char *fmt, ...)
{
	char buf[PATH_MAX + 128];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (n > 0 && write_full(fd, buf, MIN((size_t)n, sizeof(buf) - 1)))
		log_warn("could not report to the foreground 'forkd fork' (gone?)");
}

int fork_keep_register(int report_fd, const char *tag, const char *workdir, uint32_t index,
		       pid_t pid, char id[KEPT_ID_LEN + 1])
{
	struct child_rec r = {.index = index, .pid = pid, .supervisor_pid = getpid()};
	char abs[PATH_MAX];
	int err;

	if (pid <= 0)
		return -ESRCH;
	if (!realpath(workdir, abs))
		return log_errno("realpath %s", workdir);
	if ((size_t)snprintf(r.run_dir, sizeof(r.run_dir), "%s/child-%u", abs, index) >=
	    sizeof(r.run_dir))
		return -ENAMETOOLONG;
	snprintf(r.tag, sizeof(r.tag), "%s", tag);
	err = child_start_time(pid, &r.start_time, NULL);
	if (err) {
		log_err("child %u (pid %d): no start time: %s", index, (int)pid, strerror(-err));
		return err;
	}
	if ((err = kept_id_new(r.id)) || (err = kept_write(&r)))
		return err;
	memcpy(id, r.id, KEPT_ID_LEN);
	id[KEPT_ID_LEN] = 0;
	report_line(report_fd, "kept %s %d %s\n", r.id, (int)pid, r.run_dir);
	return 0;
}

void fork_keep_report_end(int report_fd, bool ok, const char *why)
{
	if (ok)
		report_line(report_fd, "ok\n");
	else
		report_line(report_fd, "fail %s\n", why ? why : "not every child started");
	close(report_fd);
	fflush(stdout);
}
