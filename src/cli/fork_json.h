/* `forkd fork --json`: the batch's outcome as one JSON object on the
 * command's own stdout, while its progress lines go to stderr. */
#ifndef FORKD_CLI_FORK_JSON_H
#define FORKD_CLI_FORK_JSON_H

#include <jansson.h>
#include <stdbool.h>

#include "fork/batch.h"

/* One object per child: index, state (running, failed, skipped), stage and
 * error when it failed, restore_ms, after_fork_ms, and with wait_exit its
 * exit status. */
json_t *fork_json_children(const struct batch *b, bool wait_exit);

/* --keep: the kept children's registry entries (kept_cli_list()) whose run
 * directory is under workdir, i.e. this run's. */
json_t *fork_json_kept(const char *tag, const char *workdir);

#endif
