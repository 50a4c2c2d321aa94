/* `forkd fork --keep`: the foreground command and the detached supervisor.
 *
 * The spawner's children die with their parent (PR_SET_PDEATHSIG), so the
 * process that forks them must outlive the command. fork_keep_detach()
 * splits the command in two:
 *   foreground  waits for the supervisor's report on a pipe, prints it
 *               and returns forkd fork's exit status;
 *   supervisor  its own session, stdin /dev/null, stdout and stderr on
 *               <workdir>/supervisor.log; it spawns the children, registers
 *               each (fork/kept.h) with fork_keep_register(), ends the
 *               report with fork_keep_report_end(), then reaps them and
 *               exits after the last one.
 * Report lines: "kept <id> <pid> <run dir>" per child, then "ok" or
 * "fail <reason>". */
#ifndef FORKD_CLI_FORK_KEEP_H
#define FORKD_CLI_FORK_KEEP_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "fork/kept.h"

/* Call once the options are checked and workdir exists, before any child
 * is started. Returns forkd fork's exit status in the foreground with
 * *report_fd = -1; in the supervisor returns 0 with *report_fd the pipe's
 * write end. A workdir whose spawner.pid names a live process is refused
 * (status 1, nothing forked). */
int fork_keep_detach(const char *workdir, int *report_fd);

/* Supervisor: give child index (process pid, files in workdir/child-<index>)
 * an id and a registry entry, and report it. 0 or -errno (printed). */
int fork_keep_register(int report_fd, const char *tag, const char *workdir, uint32_t index,
		       pid_t pid, char id[KEPT_ID_LEN + 1]) __must_check;

/* Supervisor: end the report ("ok", or "fail " and why) and close it. */
void fork_keep_report_end(int report_fd, bool ok, const char *why);

#endif
