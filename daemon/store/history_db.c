/* history_db.c — the history's database file, <state_dir>/history.db: its schema (and the
 * migration of a file made before err/lo/hi), the statements the I/O thread runs, opening it, and
 * moving an unusable one to quarantine. history.c runs the thread; the schema is described there. */
#include "store/history_priv.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

/* How long a write waits for another process's lock on history.db (sqlite3_busy_timeout). */
#define EWD_HISTORY_BUSY_MS 10000

static const char schema[] =
    "PRAGMA journal_mode=WAL;"
    "PRAGMA synchronous=NORMAL;"
    "CREATE TABLE IF NOT EXISTS series(id INTEGER PRIMARY KEY, run TEXT NOT NULL, stream TEXT "
    "NOT NULL, metric TEXT NOT NULL, n INTEGER NOT NULL DEFAULT 0, UNIQUE(run, stream, metric));"
    "CREATE TABLE IF NOT EXISTS points(series INTEGER NOT NULL, step INTEGER NOT NULL, time REAL "
    "NOT NULL, value REAL, vec BLOB, rows INTEGER NOT NULL, ranks INTEGER NOT NULL, partial "
    "INTEGER NOT NULL, lag REAL NOT NULL, skipped INTEGER NOT NULL, err REAL, lo REAL, hi REAL, "
    "PRIMARY KEY(series, step)) WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS alert_events(id INTEGER PRIMARY KEY, time REAL NOT NULL, run "
    "TEXT NOT NULL, stream TEXT NOT NULL, rule TEXT NOT NULL, firing INTEGER NOT NULL, step "
    "INTEGER, value REAL, message TEXT NOT NULL);";

/* A points table from before err/lo/hi: the columns are added, all or none. */
static const char migrate_probe[] = "SELECT err, lo, hi FROM points LIMIT 0";
static const char migrate[] = "BEGIN IMMEDIATE;"
                              "ALTER TABLE points ADD COLUMN err REAL;"
                              "ALTER TABLE points ADD COLUMN lo REAL;"
                              "ALTER TABLE points ADD COLUMN hi REAL;"
                              "COMMIT;";

static const char *const sql[Q_NQ] = {
    [Q_FIND] = "SELECT id, n FROM series WHERE run=?1 AND stream=?2 AND metric=?3",
    [Q_NEW] = "INSERT INTO series(run, stream, metric, n) VALUES(?1, ?2, ?3, 0)",
    [Q_PUT] = "INSERT OR REPLACE INTO points(series, step, time, value, vec, rows, ranks, partial, "
              "lag, skipped, err, lo, hi) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, "
              "?13)",
    [Q_GROW] = "UPDATE series SET n = n + 1 WHERE id=?1",
    [Q_COUNT] = "SELECT COUNT(*) FROM points WHERE series=?1",
    [Q_THIN] = "DELETE FROM points WHERE series=?1 AND step IN (SELECT step FROM (SELECT step, "
               "row_number() OVER (ORDER BY step) AS r FROM points WHERE series=?1) WHERE r <= ?2 "
               "AND r % 2 = 0)",
    [Q_SETN] = "UPDATE series SET n=?2 WHERE id=?1",
    [Q_FORGET_P] = "DELETE FROM points WHERE series IN (SELECT id FROM series WHERE run=?1 AND "
                   "stream=?2)",
    [Q_FORGET_S] = "DELETE FROM series WHERE run=?1 AND stream=?2",
    [Q_SERIES] = "SELECT id, metric FROM series WHERE run=?1 AND stream=?2 ORDER BY id",
    [Q_READ] = "SELECT step, time, value, vec, partial, rows, ranks, lag, skipped, err, lo, hi FROM "
               "points "
               "WHERE series=?1 AND step "
               "BETWEEN ?2 AND ?3 ORDER BY step",
    [Q_EVENT_PUT] = "INSERT INTO alert_events(time, run, stream, rule, firing, step, value, "
                    "message) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    [Q_EVENT_TRIM] = "DELETE FROM alert_events WHERE id <= "
                     "(SELECT MAX(id) FROM alert_events) - ?1",
    [Q_EVENT_LAST] = "SELECT time, run, stream, rule, firing, step, value, message FROM "
                     "(SELECT * FROM alert_events ORDER BY id DESC LIMIT ?1) ORDER BY id",
};

/* Opens path as the history database (created when absent) and prepares every statement.
 * Returns the SQLite code; on failure h->db is closed and why holds the error. */
static int open_db(ewd_history_t *h, const char *path, char *why, size_t cap) {
  int rc = sqlite3_open_v2(path, &h->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
                                             SQLITE_OPEN_NOMUTEX, NULL);
  char *err = NULL;
  if (rc == SQLITE_OK)
    rc = sqlite3_busy_timeout(h->db, EWD_HISTORY_BUSY_MS);
  if (rc == SQLITE_OK)
    rc = sqlite3_exec(h->db, schema, NULL, NULL, &err);
  sqlite3_stmt *probe = NULL;
  if (rc == SQLITE_OK && sqlite3_prepare_v2(h->db, migrate_probe, -1, &probe, NULL) != SQLITE_OK) {
    rc = sqlite3_exec(h->db, migrate, NULL, NULL, &err);
    if (rc != SQLITE_OK)
      sqlite3_exec(h->db, "ROLLBACK", NULL, NULL, NULL);
    else
      ewd_log(EWD_LOG_INFO, "history database: columns err, lo, hi added (estimates keep their "
              "error bars)", "path=\"%s\"", path);
  }
  sqlite3_finalize(probe);
  for (int i = 0; rc == SQLITE_OK && i < Q_NQ; i++)
    rc = sqlite3_prepare_v3(h->db, sql[i], -1, SQLITE_PREPARE_PERSISTENT, &h->q[i], NULL);
  if (rc != SQLITE_OK) {
    snprintf(why, cap, "%s", err ? err : h->db ? sqlite3_errmsg(h->db) : sqlite3_errstr(rc));
    sqlite3_free(err);
    for (int i = 0; i < Q_NQ; i++) {
      sqlite3_finalize(h->q[i]);
      h->q[i] = NULL;
    }
    sqlite3_close(h->db);
    h->db = NULL;
  }
  return rc;
}

/* True for failures that say the file is not a usable history database (as opposed to a lock,
 * memory or permissions), so that moving it aside and starting empty is the remedy. */
static bool unusable(int rc, const char *path) {
  struct stat sb;
  if (stat(path, &sb) == 0 && !S_ISREG(sb.st_mode))
    return true;
  switch (rc & 0xff) {
  case SQLITE_NOTADB:
  case SQLITE_CORRUPT:
  case SQLITE_ERROR: /* another schema: a table or column the statements need is not there */
  case SQLITE_SCHEMA:
  case SQLITE_FORMAT:
  case SQLITE_RANGE:
  case SQLITE_MISMATCH:
    return true;
  default:
    return false;
  }
}

/* Moves history.db (and its -wal and -shm) to <state_dir>/quarantine/NAME.<unix time>. */
static int quarantine_db(const ewd_server_t *srv, const char *path, const char *why) {
  static const char *const sfx[] = {"", "-wal", "-shm"};
  char qdir[4200], from[4300], to[4400];
  snprintf(qdir, sizeof qdir, "%s/quarantine", srv->cfg.state_dir);
  if (mkdir(qdir, 0700) != 0 && errno != EEXIST)
    return -1;
  long long now = (long long)ewd_wall_now();
  int rc = 0;
  for (int i = 0; i < 3; i++) {
    snprintf(from, sizeof from, "%s%s", path, sfx[i]);
    snprintf(to, sizeof to, "%s/history.db%s.%lld", qdir, sfx[i], now);
    if (rename(from, to) != 0 && errno != ENOENT) {
      ewd_log(EWD_LOG_ERROR, "the history database is unusable and could not be moved to "
              "quarantine", "path=\"%s\" reason=\"%s\" error=\"%s\"", from, why,
              strerror(errno));
      rc = -1;
    }
  }
  if (rc == 0) {
    snprintf(to, sizeof to, "%s/history.db.%lld", qdir, now);
    ewd_log(EWD_LOG_ERROR, "history database unusable: moved to quarantine, starting with an "
            "empty history", "path=\"%s\" to=\"%s\" reason=\"%s\"", path, to, why);
  }
  return rc;
}

int ewd__history_db_open(ewd_history_t *h, const ewd_server_t *srv, const char *path, char *why,
                         size_t cap) {
  struct stat sb;
  int rc = SQLITE_CANTOPEN;
  if (stat(path, &sb) == 0 && !S_ISREG(sb.st_mode)) /* not opened: a FIFO would block the start */
    snprintf(why, cap, "%s", "not a regular file (a directory, FIFO, device or socket)");
  else
    rc = open_db(h, path, why, cap);
  if (rc != SQLITE_OK && unusable(rc, path) && quarantine_db(srv, path, why) == 0)
    rc = open_db(h, path, why, cap);
  return rc;
}
