/* The client verbs' side of kept children (fork/kept.h): `forkd ls`,
 * `forkd kill` and `--sandbox ID` of ping, exec and eval, all without a
 * daemon. Liveness is pid and start time, as for the daemon's sandboxes. */
#ifndef FORKD_CLI_KEPT_CLI_H
#define FORKD_CLI_KEPT_CLI_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "fork/kept.h"

/* The kept children (of snapshot tag, or all when tag is NULL) as JSON
 * objects appended to arr: id, kind "kept", snapshot_tag, index, state
 * ("running" or "exited": its pid is gone or is another process now),
 * pid, run_dir, supervisor_pid, created_at. Returns how many, or -errno
 * (printed) when the registry cannot be read. */
int kept_cli_list(const char *tag, json_t *arr);

/* Print them as a table (nothing when arr has none). */
void kept_cli_print(json_t *arr);

/* Stop kept child id if it still runs (pid and start time checked; SIGTERM,
 * SIGKILL after a grace) and remove its registry entry. Prints one line
 * (or, results non-NULL, appends its JSON object there). 0, or 1 after printing why (no such child,
 * or it did not stop). */
int kept_cli_kill(const char *verb, const char *id, json_t *results);

/* Kept child id's registry entry, when it is alive; 0, or 1 after printing
 * why not (no such child, unreadable entry, exited). */
int kept_cli_live(const char *verb, const char *id, struct child_rec *r);

/* id's run directory, for a live kept child; 0, or 1 after printing why. */
int kept_cli_run_dir(const char *verb, const char *id, char *buf, size_t size);

#endif
