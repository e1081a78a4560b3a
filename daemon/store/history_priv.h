/* history_priv.h — what history.c (the I/O thread and the loop's queue) and history_db.c (the
 * database file: schema, statements, opening, quarantine) share; nothing else sees it. */
#ifndef EWD_HISTORY_PRIV_H
#define EWD_HISTORY_PRIV_H

#include "store/history.h"

#include <pthread.h>
#include <sqlite3.h>

/* The prepared statements, by use (history_db.c holds their text). */
enum { Q_FIND, Q_NEW, Q_PUT, Q_GROW, Q_COUNT, Q_THIN, Q_SETN, Q_FORGET_P, Q_FORGET_S, Q_SERIES,
       Q_READ, Q_EVENT_PUT, Q_EVENT_TRIM, Q_EVENT_LAST, Q_NQ };

typedef struct {
  char metric[EWP_SERIES_MAX + 1]; /* the series name */
  bool vec;
  double value;
  double *list; /* owned */
  size_t len;
  bool has_err, has_bracket; /* an estimate: its error bar, its certified [lo, hi] */
  double err, lo, hi;
} hval_t;

typedef enum { OP_PUT, OP_FORGET, OP_READ, OP_EVENT } opkind_t;

typedef struct hop {
  struct hop *next;
  opkind_t kind;
  char run[EWD_NAME_MAX + 1], stream[EWD_NAME_MAX + 1];
  ewd_point_t pt;      /* put */
  hval_t *vals;
  size_t nvals;
  ewd_hread_t *rd;     /* read */
  ewd_alert_event_t ev; /* event */
} hop_t;

struct ewd_history {
  ewd_server_t *srv;
  sqlite3 *db;
  sqlite3_stmt *q[Q_NQ];
  uint64_t max_points;
  pthread_t thread;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  hop_t *head, *tail;  /* queued for the thread */
  hop_t *done;         /* reads answered by the thread, for the loop */
  size_t queued;       /* values queued */
  uint64_t written, failed; /* by the thread, read by the loop under mu */
  uint64_t pending_written; /* the thread's: points written in the open transaction */
  bool stop;
  uv_async_t async;
};

/* Alert events history.db keeps (the newest; older ones are deleted as new ones come). */
#define EWD_HISTORY_EVENTS_KEPT 10000

/* Opens <state_dir>/history.db at path into h->db with every statement of h->q prepared: a file
 * that is not a usable history database (garbage, another schema, not a regular file) is moved to
 * <state_dir>/quarantine/ (with its -wal and -shm, logged) and a new one made. Returns the SQLite
 * code; on failure why[0, cap) says what went wrong and h->db is NULL. */
int ewd__history_db_open(ewd_history_t *h, const ewd_server_t *srv, const char *path, char *why,
                         size_t cap);

#endif
