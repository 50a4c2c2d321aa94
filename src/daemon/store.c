#include "daemon/store.h"

#include <errno.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"

#define SANDBOX_COLS                                                                               \
	"id, snapshot_tag, child_index, pid, start_time, run_dir, live_fork, hugepages, "          \
	"created_ms, netns_index, netns_created, guest_net, memory_limit_mib, cgroup"

static const char schema[] =
    "PRAGMA journal_mode=WAL;"
    "PRAGMA synchronous=NORMAL;"
    "CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);"
    "INSERT OR IGNORE INTO meta VALUES('schema', '1');"
    "CREATE TABLE IF NOT EXISTS snapshots("
    "  tag TEXT PRIMARY KEY, first_seen_ms INTEGER NOT NULL, last_seen_ms INTEGER NOT NULL);"
    "CREATE TABLE IF NOT EXISTS sandboxes("
    "  id TEXT PRIMARY KEY, snapshot_tag TEXT NOT NULL, child_index INTEGER NOT NULL,"
    "  pid INTEGER NOT NULL, start_time INTEGER NOT NULL, run_dir TEXT NOT NULL,"
    "  live_fork INTEGER NOT NULL, hugepages INTEGER NOT NULL, created_ms INTEGER NOT NULL);"
    "CREATE INDEX IF NOT EXISTS sandboxes_tag ON sandboxes(snapshot_tag);"
    "CREATE TABLE IF NOT EXISTS snapshot_jobs("
    "  tag TEXT PRIMARY KEY, kind TEXT NOT NULL, pid INTEGER NOT NULL,"
    "  start_time INTEGER NOT NULL, started_ms INTEGER NOT NULL, dir TEXT NOT NULL);";

/* Schema 2: isolation columns of sandboxes, added to a schema 1 database
 * in place (rows from before have none of it). */
static const struct {
	const char *name, *decl;
} sandbox_cols2[] = {
    {"netns_index", "INTEGER NOT NULL DEFAULT -1"},
    {"netns_created", "INTEGER NOT NULL DEFAULT 0"},
    {"guest_net", "INTEGER NOT NULL DEFAULT 0"},
    {"memory_limit_mib", "INTEGER NOT NULL DEFAULT 0"},
    {"cgroup", "TEXT NOT NULL DEFAULT ''"},
};

static int db_err(struct store *s, const char *what)
{
	log_err("state database: %s: %s", what, sqlite3_errmsg(s->db));
	return -EIO;
}

static bool has_column(struct store *s, const char *table, const char *col)
{
	sqlite3_stmt *st = NULL;
	char sql[128];
	bool found = false;

	snprintf(sql, sizeof(sql), "PRAGMA table_info(%s)", table);
	if (sqlite3_prepare_v2(s->db, sql, -1, &st, NULL) != SQLITE_OK)
		return false;
	while (!found && sqlite3_step(st) == SQLITE_ROW) {
		const unsigned char *name = sqlite3_column_text(st, 1);

		found = name && !strcmp((const char *)name, col);
	}
	sqlite3_finalize(st);
	return found;
}

static int migrate(struct store *s, char **msg)
{
	char sql[256];
	int r = SQLITE_OK;

	for (size_t i = 0; r == SQLITE_OK && i < sizeof(sandbox_cols2) / sizeof(sandbox_cols2[0]);
	     i++) {
		if (has_column(s, "sandboxes", sandbox_cols2[i].name))
			continue;
		snprintf(sql, sizeof(sql), "ALTER TABLE sandboxes ADD COLUMN %s %s",
			 sandbox_cols2[i].name, sandbox_cols2[i].decl);
		r = sqlite3_exec(s->db, sql, NULL, NULL, msg);
	}
	if (r == SQLITE_OK)
		r = sqlite3_exec(s->db, "UPDATE meta SET value = '2' WHERE key = 'schema'", NULL,
				 NULL, msg);
	return r;
}

int store_open(struct store *s, const char *path)
{
	char *msg = NULL;
	int r;

	pthread_mutex_init(&s->lock, NULL);
	r = sqlite3_open_v2(
	    path, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX, NULL);
	if (r != SQLITE_OK) {
		log_err("open state database %s: %s", path,
			s->db ? sqlite3_errmsg(s->db) : sqlite3_errstr(r));
		sqlite3_close(s->db);
		s->db = NULL;
		return -EIO;
	}
	sqlite3_busy_timeout(s->db, 5000);
	if (sqlite3_exec(s->db, schema, NULL, NULL, &msg) != SQLITE_OK ||
	    migrate(s, &msg) != SQLITE_OK) {
		log_err("state database %s: create tables: %s", path, msg ? msg : "?");
		sqlite3_free(msg);
		sqlite3_close(s->db);
		s->db = NULL;
		return -EIO;
	}
	return 0;
}

void store_close(struct store *s)
{
	if (s->db)
		sqlite3_close(s->db);
	s->db = NULL;
}

/* Prepare under the lock; the caller finishes with done(). */
static sqlite3_stmt *prep(struct store *s, const char *sql)
{
	sqlite3_stmt *st = NULL;

	pthread_mutex_lock(&s->lock);
	if (sqlite3_prepare_v2(s->db, sql, -1, &st, NULL) != SQLITE_OK) {
		db_err(s, sql);
		pthread_mutex_unlock(&s->lock);
		return NULL;
	}
	return st;
}

static void done(struct store *s, sqlite3_stmt *st)
{
	sqlite3_finalize(st);
	pthread_mutex_unlock(&s->lock);
}

static int step_done(struct store *s, sqlite3_stmt *st, const char *what)
{
	int r = sqlite3_step(st) == SQLITE_DONE ? 0 : db_err(s, what);

	done(s, st);
	return r;
}

static void copy_text(char *dst, size_t size, sqlite3_stmt *st, int col)
{
	const unsigned char *t = sqlite3_column_text(st, col);

	snprintf(dst, size, "%s", t ? (const char *)t : "");
}

int store_sandbox_put(struct store *s, const struct child_rec *r)
{
	sqlite3_stmt *st = prep(s, "INSERT OR REPLACE INTO sandboxes(" SANDBOX_COLS
				   ") VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?)");

	if (!st)
		return -EIO;
	sqlite3_bind_text(st, 1, r->id, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, r->tag, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, r->index);
	sqlite3_bind_int64(st, 4, r->pid);
	sqlite3_bind_int64(st, 5, (sqlite3_int64)r->start_time);
	sqlite3_bind_text(st, 6, r->run_dir, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 7, r->live_fork);
	sqlite3_bind_int(st, 8, r->hugepages);
	sqlite3_bind_int64(st, 9, r->created_ms);
	sqlite3_bind_int64(st, 10, r->netns_index);
	sqlite3_bind_int(st, 11, r->netns_created);
	sqlite3_bind_int(st, 12, r->guest_net);
	sqlite3_bind_int64(st, 13, (sqlite3_int64)r->memory_limit_mib);
	sqlite3_bind_text(st, 14, r->cgroup, -1, SQLITE_STATIC);
	return step_done(s, st, "save sandbox");
}

static void row_sandbox(sqlite3_stmt *st, struct child_rec *r)
{
	memset(r, 0, sizeof(*r));
	copy_text(r->id, sizeof(r->id), st, 0);
	copy_text(r->tag, sizeof(r->tag), st, 1);
	r->index = (uint32_t)sqlite3_column_int64(st, 2);
	r->pid = sqlite3_column_int64(st, 3);
	r->start_time = (uint64_t)sqlite3_column_int64(st, 4);
	copy_text(r->run_dir, sizeof(r->run_dir), st, 5);
	r->live_fork = sqlite3_column_int(st, 6);
	r->hugepages = sqlite3_column_int(st, 7);
	r->created_ms = sqlite3_column_int64(st, 8);
	r->netns_index = sqlite3_column_int64(st, 9);
	r->netns_created = sqlite3_column_int(st, 10);
	r->guest_net = sqlite3_column_int(st, 11);
	r->memory_limit_mib = (uint64_t)sqlite3_column_int64(st, 12);
	copy_text(r->cgroup, sizeof(r->cgroup), st, 13);
}

int store_sandbox_get(struct store *s, const char *id, struct child_rec *r)
{
	sqlite3_stmt *st = prep(s, "SELECT " SANDBOX_COLS " FROM sandboxes WHERE id = ?");
	int rc, ret;

	if (!st)
		return -EIO;
	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		row_sandbox(st, r);
		ret = 0;
	} else {
		ret = rc == SQLITE_DONE ? -ENOENT : db_err(s, "read sandbox");
	}
	done(s, st);
	return ret;
}

int store_sandbox_list(struct store *s, const char *tag, struct child_rec **out, size_t *n)
{
	sqlite3_stmt *st = prep(
	    s, tag ? "SELECT " SANDBOX_COLS " FROM sandboxes WHERE snapshot_tag = ? "
		     "ORDER BY created_ms, child_index"
		   : "SELECT " SANDBOX_COLS " FROM sandboxes ORDER BY created_ms, child_index");
	size_t cap = 0;
	int rc;

	*out = NULL;
	*n = 0;
	if (!st)
		return -EIO;
	if (tag)
		sqlite3_bind_text(st, 1, tag, -1, SQLITE_STATIC);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (*n == cap) {
			struct child_rec *p;

			cap = cap ? cap * 2 : 16;
			p = realloc(*out, cap * sizeof(**out));
			if (!p) {
				done(s, st);
				free(*out);
				*out = NULL;
				*n = 0;
				return -ENOMEM;
			}
			*out = p;
		}
		row_sandbox(st, &(*out)[(*n)++]);
	}
	if (rc != SQLITE_DONE) {
		db_err(s, "list sandboxes");
		done(s, st);
		free(*out);
		*out = NULL;
		*n = 0;
		return -EIO;
	}
	done(s, st);
	return 0;
}

int store_sandbox_delete(struct store *s, const char *id)
{
	sqlite3_stmt *st = prep(s, "DELETE FROM sandboxes WHERE id = ?");

	if (!st)
		return -EIO;
	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	return step_done(s, st, "delete sandbox");
}

int store_snapshot_seen(struct store *s, const char *tag)
{
	sqlite3_stmt *st = prep(s, "INSERT INTO snapshots VALUES(?1, ?2, ?2) "
				   "ON CONFLICT(tag) DO UPDATE SET last_seen_ms = ?2");

	if (!st)
		return -EIO;
	sqlite3_bind_text(st, 1, tag, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, wall_ms());
	return step_done(s, st, "record snapshot");
}

int store_snapshot_forget(struct store *s, const char *tag)
{
	sqlite3_stmt *st = prep(s, "DELETE FROM snapshots WHERE tag = ?");

	if (!st)
		return -EIO;
	sqlite3_bind_text(st, 1, tag, -1, SQLITE_STATIC);
	return step_done(s, st, "forget snapshot");
}

int store_snapshot_first_seen(struct store *s, const char *tag, int64_t *ms)
{
	sqlite3_stmt *st = prep(s, "SELECT first_seen_ms FROM snapshots WHERE tag = ?");
	int rc, ret = 0;

	if (!st)
		return -EIO;
	sqlite3_bind_text(st, 1, tag, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		*ms = sqlite3_column_int64(st, 0);
	else
		ret = rc == SQLITE_DONE ? -ENOENT : db_err(s, "read snapshot");
	done(s, st);
	return ret;
}

int store_job_put(struct store *s, const struct job_rec *j)
{
	sqlite3_stmt *st = prep(s, "INSERT OR REPLACE INTO snapshot_jobs VALUES(?,?,?,?,?,?)");

	if (!st)
		return -EIO;
	sqlite3_bind_text(st, 1, j->tag, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, j->kind, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, j->pid);
	sqlite3_bind_int64(st, 4, (sqlite3_int64)j->start_time);
	sqlite3_bind_int64(st, 5, j->started_ms);
	sqlite3_bind_text(st, 6, j->dir, -1, SQLITE_STATIC);
	return step_done(s, st, "save snapshot job");
}

static void row_job(sqlite3_stmt *st, struct job_rec *j)
{
	memset(j, 0, sizeof(*j));
	copy_text(j->tag, sizeof(j->tag), st, 0);
	copy_text(j->kind, sizeof(j->kind), st, 1);
	j->pid = sqlite3_column_int64(st, 2);
	j->start_time = (uint64_t)sqlite3_column_int64(st, 3);
	j->started_ms = sqlite3_column_int64(st, 4);
	copy_text(j->dir, sizeof(j->dir), st, 5);
}

int store_job_get(struct store *s, const char *tag, struct job_rec *j)
{
	sqlite3_stmt *st = prep(s, "SELECT tag, kind, pid, start_time, started_ms, dir "
				   "FROM snapshot_jobs WHERE tag = ?");
	int rc, ret = 0;

	if (!st)
		return -EIO;
	sqlite3_bind_text(st, 1, tag, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		row_job(st, j);
	else
		ret = rc == SQLITE_DONE ? -ENOENT : db_err(s, "read snapshot job");
	done(s, st);
	return ret;
}

int store_job_list(struct store *s, struct job_rec **out, size_t *n)
{
	sqlite3_stmt *st = prep(s, "SELECT tag, kind, pid, start_time, started_ms, dir "
				   "FROM snapshot_jobs ORDER BY tag");
	size_t cap = 0;
	int rc;

	*out = NULL;
	*n = 0;
	if (!st)
		return -EIO;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (*n == cap) {
			struct job_rec *p;

			cap = cap ? cap * 2 : 8;
			p = realloc(*out, cap * sizeof(**out));
			if (!p) {
				rc = SQLITE_NOMEM;
				break;
			}
			*out = p;
		}
		row_job(st, &(*out)[(*n)++]);
	}
	done(s, st);
	if (rc != SQLITE_DONE) {
		free(*out);
		*out = NULL;
		*n = 0;
		return -EIO;
	}
	return 0;
}

int store_job_delete(struct store *s, const char *tag)
{
	sqlite3_stmt *st = prep(s, "DELETE FROM snapshot_jobs WHERE tag = ?");

	if (!st)
		return -EIO;
	sqlite3_bind_text(st, 1, tag, -1, SQLITE_STATIC);
	return step_done(s, st, "delete snapshot job");
}
