/* history.c — evaluated points in SQLite, <state_dir>/history.db (proto/PROTOCOL.md, "Scheduled evaluation and history").
 *
 * One I/O thread owns the database connection. The loop only queues operations — a point's
 * values (put), a stream's deletion (forget), a read (`history`) — and the thread takes
 * everything queued at once and runs it in one transaction, in queue order: writes are batched,
 * and a read sees every point queued before it. Reads come back to the loop through an async
 * handle and are answered there. The database is in WAL mode with synchronous=NORMAL: a commit
 * survives a daemon crash, and a power loss may lose the last commits (never corrupts).
 *
 * Schema: series(id, run, stream, metric, n) — one per (run, stream, series name; the column
 * keeps its first name, `metric`: an eval entry's `as`, default its metric's), n an upper bound
 * of its points; points(series, step, time, value, vec, rows, ranks, partial, lag, skipped, err,
 * lo, hi), keyed by (series, step) — a step evaluated again replaces its point. `value` holds
 * scalars, `vec` list values (little-endian f64s); an estimate keeps its error bar in `err` and
 * a certified bracket in `lo`, `hi` (NULL otherwise). A database made before err/lo/hi existed
 * gets them at open (ALTER TABLE, NULL for the old points). Retention: past history_max_points
 * points in a series, every second point of its oldest half is deleted.
 *
 * A history.db that cannot be opened as this schema (garbage, cut short, another schema, a
 * directory, a FIFO: not opened, it would block) is moved to <state_dir>/quarantine/ like a bad snapshot, with its -wal and -shm,
 * and the daemon starts with an empty history (logged). Another process holding the database's
 * lock is waited for up to EWD_HISTORY_BUSY_MS before a write fails. stats.history_points counts
 * points whose transaction committed. */
#include "store/history_priv.h"

#include <math.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void hop_free(hop_t *op) {
  for (size_t i = 0; i < op->nvals; i++)
    free(op->vals[i].list);
  free(op->vals);
  free(op);
}

/* ---- the I/O thread ---- */

static int step_done(sqlite3_stmt *s) {
  int rc = sqlite3_step(s);
  sqlite3_reset(s);
  sqlite3_clear_bindings(s);
  return rc == SQLITE_DONE || rc == SQLITE_ROW ? 0 : rc;
}

/* The series id of (run, stream, metric), made when absent; *n its point bound. 0: failure. */
static sqlite3_int64 series_id(ewd_history_t *h, const char *run, const char *stream,
                               const char *metric, sqlite3_int64 *n) {
  sqlite3_stmt *f = h->q[Q_FIND];
  sqlite3_bind_text(f, 1, run, -1, SQLITE_STATIC);
  sqlite3_bind_text(f, 2, stream, -1, SQLITE_STATIC);
  sqlite3_bind_text(f, 3, metric, -1, SQLITE_STATIC);
  sqlite3_int64 id = 0;
  *n = 0;
  if (sqlite3_step(f) == SQLITE_ROW) {
    id = sqlite3_column_int64(f, 0);
    *n = sqlite3_column_int64(f, 1);
  }
  sqlite3_reset(f);
  sqlite3_clear_bindings(f);
  if (id)
    return id;
  sqlite3_stmt *c = h->q[Q_NEW];
  sqlite3_bind_text(c, 1, run, -1, SQLITE_STATIC);
  sqlite3_bind_text(c, 2, stream, -1, SQLITE_STATIC);
  sqlite3_bind_text(c, 3, metric, -1, SQLITE_STATIC);
  return step_done(c) ? 0 : sqlite3_last_insert_rowid(h->db);
}

/* Past max_points: every second point of the oldest half goes. */
static int thin(ewd_history_t *h, sqlite3_int64 id) {
  sqlite3_stmt *c = h->q[Q_COUNT];
  sqlite3_bind_int64(c, 1, id);
  sqlite3_int64 n = sqlite3_step(c) == SQLITE_ROW ? sqlite3_column_int64(c, 0) : -1;
  sqlite3_reset(c);
  sqlite3_clear_bindings(c);
  if (n < 0)
    return -1;
  if ((uint64_t)n > h->max_points) {
    sqlite3_bind_int64(h->q[Q_THIN], 1, id);
    sqlite3_bind_int64(h->q[Q_THIN], 2, n / 2);
    if (step_done(h->q[Q_THIN]))
      return -1;
    n -= sqlite3_changes(h->db);
  }
  sqlite3_bind_int64(h->q[Q_SETN], 1, id);
  sqlite3_bind_int64(h->q[Q_SETN], 2, n);
  return step_done(h->q[Q_SETN]) ? -1 : 0;
}

static int run_put(ewd_history_t *h, hop_t *op) {
  for (size_t i = 0; i < op->nvals; i++) {
    hval_t *v = &op->vals[i];
    sqlite3_int64 n;
    sqlite3_int64 id = series_id(h, op->run, op->stream, v->metric, &n);
    if (!id)
      return -1;
    sqlite3_stmt *p = h->q[Q_PUT];
    sqlite3_bind_int64(p, 1, id);
    sqlite3_bind_int64(p, 2, (sqlite3_int64)op->pt.step);
    sqlite3_bind_double(p, 3, op->pt.time);
    if (v->vec)
      sqlite3_bind_blob(p, 5, v->list, (int)(v->len * sizeof(double)), SQLITE_STATIC);
    else
      sqlite3_bind_double(p, 4, v->value);
    sqlite3_bind_int64(p, 6, (sqlite3_int64)op->pt.rows);
    sqlite3_bind_int64(p, 7, op->pt.ranks);
    sqlite3_bind_int(p, 8, op->pt.nmissing > 0);
    sqlite3_bind_double(p, 9, op->pt.lag_s);
    sqlite3_bind_int64(p, 10, op->pt.skipped);
    if (v->has_err)
      sqlite3_bind_double(p, 11, v->err);
    if (v->has_bracket)
      sqlite3_bind_double(p, 12, v->lo), sqlite3_bind_double(p, 13, v->hi);
    sqlite3_bind_int64(h->q[Q_GROW], 1, id);
    if (step_done(p) || step_done(h->q[Q_GROW]))
      return -1;
    if ((uint64_t)n + 1 > h->max_points && thin(h, id))
      return -1;
    h->pending_written++;
  }
  return 0;
}

static int run_forget(ewd_history_t *h, hop_t *op) {
  for (int q = Q_FORGET_P; q <= Q_FORGET_S; q++) {
    sqlite3_bind_text(h->q[q], 1, op->run, -1, SQLITE_STATIC);
    sqlite3_bind_text(h->q[q], 2, op->stream, -1, SQLITE_STATIC);
    if (step_done(h->q[q]))
      return -1;
  }
  return 0;
}

static int run_event(ewd_history_t *h, hop_t *op) {
  const ewd_alert_event_t *e = &op->ev;
  sqlite3_stmt *p = h->q[Q_EVENT_PUT];
  sqlite3_bind_double(p, 1, e->time);
  sqlite3_bind_text(p, 2, e->run, -1, SQLITE_STATIC);
  sqlite3_bind_text(p, 3, e->stream, -1, SQLITE_STATIC);
  sqlite3_bind_text(p, 4, e->rule, -1, SQLITE_STATIC);
  sqlite3_bind_int(p, 5, e->firing);
  if (e->has_step)
    sqlite3_bind_int64(p, 6, (sqlite3_int64)e->step);
  sqlite3_bind_double(p, 7, e->value);
  sqlite3_bind_text(p, 8, e->message, -1, SQLITE_STATIC);
  if (step_done(p))
    return -1;
  sqlite3_bind_int64(h->q[Q_EVENT_TRIM], 1, EWD_HISTORY_EVENTS_KEPT);
  return step_done(h->q[Q_EVENT_TRIM]);
}

static void *thread_main(void *arg) {
  ewd_history_t *h = arg;
  pthread_mutex_lock(&h->mu);
  for (;;) {
    while (!h->head && !h->stop)
      pthread_cond_wait(&h->cv, &h->mu);
    if (!h->head && h->stop)
      break;
    hop_t *ops = h->head;
    h->head = h->tail = NULL;
    pthread_mutex_unlock(&h->mu);

    /* IMMEDIATE: the write lock is taken (waited for, busy timeout) at BEGIN; a deferred
     * transaction that has read cannot wait for it later and fails at once with "locked" */
    bool tx = sqlite3_exec(h->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) == SQLITE_OK;
    size_t failed = 0, vals = 0;
    h->pending_written = 0;
    hop_t *reads = NULL, **rtail = &reads;
    for (hop_t *op = ops, *next; op; op = next) {
      next = op->next;
      op->next = NULL;
      if (op->kind == OP_READ) {
        ewd_hread_run(h->db, h->q[Q_SERIES], h->q[Q_READ], op->rd);
        *rtail = op, rtail = &op->next;
        continue;
      }
      vals += op->nvals;
      int rc = op->kind == OP_PUT     ? run_put(h, op)
               : op->kind == OP_EVENT ? run_event(h, op)
                                      : run_forget(h, op);
      if (rc) {
        failed++;
        ewd_log(EWD_LOG_ERROR, "history write failed", "run=\"%s\" stream=\"%s\" step=%llu "
                "error=\"%s\"", op->run, op->stream, (unsigned long long)op->pt.step,
                sqlite3_errmsg(h->db));
      }
      hop_free(op);
    }
    uint64_t committed = h->pending_written; /* without a transaction each write committed */
    if (tx && sqlite3_exec(h->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
      ewd_log(EWD_LOG_ERROR, "history commit failed: the batch is lost", "error=\"%s\" "
              "points=%llu", sqlite3_errmsg(h->db), (unsigned long long)h->pending_written);
      sqlite3_exec(h->db, "ROLLBACK", NULL, NULL, NULL);
      failed++;
      committed = 0;
    }

    pthread_mutex_lock(&h->mu);
    h->written += committed;
    h->queued -= vals;
    h->failed += failed;
    if (reads) {
      *rtail = h->done;
      h->done = reads;
      uv_async_send(&h->async);
    }
  }
  pthread_mutex_unlock(&h->mu);
  return NULL;
}

/* ---- the loop ---- */

static void queue(ewd_history_t *h, hop_t *op) {
  pthread_mutex_lock(&h->mu);
  op->next = NULL;
  if (h->tail)
    h->tail->next = op;
  else
    h->head = op;
  h->tail = op;
  h->queued += op->nvals;
  pthread_cond_signal(&h->cv);
  pthread_mutex_unlock(&h->mu);
}

static void on_async(uv_async_t *a) {
  ewd_history_t *h = a->data;
  pthread_mutex_lock(&h->mu);
  hop_t *ops = h->done;
  h->done = NULL;
  pthread_mutex_unlock(&h->mu);
  for (hop_t *op = ops, *next; op; op = next) {
    next = op->next;
    op->rd->answer(op->rd);
    free(op);
  }
}

static bool key_of(hop_t *op, const ewd_stream_t *st) {
  snprintf(op->run, sizeof op->run, "%s", st->run);
  snprintf(op->stream, sizeof op->stream, "%s", st->name);
  return true;
}

void ewd_history_put(ewd_server_t *srv, const ewd_stream_t *st, const ewd_point_t *pt,
                     const ewd_hvalue_t *v, size_t n) {
  ewd_history_t *h = srv->history;
  if (!h || !n)
    return;
  hop_t *op = calloc(1, sizeof *op);
  hval_t *vals = calloc(n, sizeof *vals);
  if (!op || !vals) {
    free(op);
    free(vals);
    srv->stat[EWD_STAT_history_failures]++;
    ewd_log(EWD_LOG_WARN, "out of memory queueing a history point: it is not kept",
            "run=\"%s\" stream=\"%s\" step=%llu", st->run, st->name, (unsigned long long)pt->step);
    return;
  }
  op->kind = OP_PUT;
  key_of(op, st);
  op->pt = *pt;
  op->vals = vals;
  for (size_t i = 0; i < n; i++) {
    const ew_result_t *r = v[i].res;
    snprintf(vals[i].metric, sizeof vals[i].metric, "%s", v[i].metric);
    if (r->kind == EW_VALUE_LIST) {
      vals[i].vec = true;
      vals[i].len = r->len;
      if (r->len && (vals[i].list = malloc(r->len * sizeof(double))))
        memcpy(vals[i].list, r->list, r->len * sizeof(double));
      else
        vals[i].len = 0;
    } else {
      vals[i].value = r->scalar;
    }
    vals[i].has_err = r->has_error, vals[i].err = r->error;
    vals[i].has_bracket = r->has_bracket, vals[i].lo = r->lo, vals[i].hi = r->hi;
    op->nvals++;
  }
  queue(h, op);
}

void ewd_history_forget(ewd_server_t *srv, const ewd_stream_t *st) {
  ewd_history_t *h = srv->history;
  hop_t *op = h ? calloc(1, sizeof *op) : NULL;
  if (!op) {
    if (h)
      ewd_log(EWD_LOG_WARN, "out of memory deleting a dropped stream's history: it stays",
              "run=\"%s\" stream=\"%s\"", st->run, st->name);
    return;
  }
  op->kind = OP_FORGET;
  key_of(op, st);
  queue(h, op);
}

/* srv->keep_event: an alert event, queued for history.db. */
static void keep_event(ewd_server_t *srv, const ewd_alert_event_t *e) {
  ewd_history_t *h = srv->history;
  hop_t *op = h ? calloc(1, sizeof *op) : NULL;
  if (!op) {
    if (h)
      ewd_log(EWD_LOG_WARN, "out of memory queueing an alert event: history.db will not have it",
              "run=\"%s\" stream=\"%s\" rule=\"%s\"", e->run, e->stream, e->rule);
    return;
  }
  op->kind = OP_EVENT;
  op->ev = *e;
  snprintf(op->run, sizeof op->run, "%s", e->run);
  snprintf(op->stream, sizeof op->stream, "%s", e->stream);
  queue(h, op);
}

/* The last alert events history.db keeps go back into the ring (at open, before the thread). */
static void load_events(ewd_history_t *h) {
  sqlite3_stmt *q = h->q[Q_EVENT_LAST];
  sqlite3_bind_int64(q, 1, EWD_ALERT_EVENTS_MAX);
  while (sqlite3_step(q) == SQLITE_ROW) {
    ewd_alert_event_t e = {.time = sqlite3_column_double(q, 0),
                           .firing = sqlite3_column_int(q, 4) != 0,
                           .has_step = sqlite3_column_type(q, 5) != SQLITE_NULL,
                           .step = (uint64_t)sqlite3_column_int64(q, 5),
                           .value = sqlite3_column_double(q, 6)};
    const char *t;
    snprintf(e.run, sizeof e.run, "%s", (t = (const char *)sqlite3_column_text(q, 1)) ? t : "");
    snprintf(e.stream, sizeof e.stream, "%s",
             (t = (const char *)sqlite3_column_text(q, 2)) ? t : "");
    snprintf(e.rule, sizeof e.rule, "%s", (t = (const char *)sqlite3_column_text(q, 3)) ? t : "");
    snprintf(e.message, sizeof e.message, "%s",
             (t = (const char *)sqlite3_column_text(q, 7)) ? t : "");
    ewd_alert_event(h->srv, &e, false);
  }
  sqlite3_reset(q);
  sqlite3_clear_bindings(q);
}

int ewd_history_read(ewd_server_t *srv, ewd_hread_t *rd) {
  ewd_history_t *h = srv->history;
  hop_t *op = h ? calloc(1, sizeof *op) : NULL;
  if (!op)
    return -1;
  op->kind = OP_READ;
  op->rd = rd;
  queue(h, op);
  return 0;
}

/* A gauge refresher (ewd_stats_gauge): copies the I/O thread's counters into srv->stat. */
static void history_stats(ewd_server_t *srv) {
  ewd_history_t *h = srv->history;
  if (!h)
    return;
  pthread_mutex_lock(&h->mu);
  srv->stat[EWD_STAT_history_queue] = h->queued;
  srv->stat[EWD_STAT_history_points] = h->written;
  srv->stat[EWD_STAT_history_failures] += h->failed;
  h->failed = 0;
  pthread_mutex_unlock(&h->mu);
}

int ewd_history_open(ewd_server_t *srv) {
  char path[4200], why[300];
  snprintf(path, sizeof path, "%s/history.db", srv->cfg.state_dir);
  ewd_history_t *h = calloc(1, sizeof *h);
  if (!h)
    return -1;
  h->srv = srv;
  h->max_points = srv->cfg.history_max_points;
  int rc = ewd__history_db_open(h, srv, path, why, sizeof why);
  if (rc != SQLITE_OK) {
    ewd_log(EWD_LOG_ERROR, "cannot open the history database", "path=\"%s\" error=\"%s\"", path,
            why);
    free(h);
    return -1;
  }
  load_events(h); /* the thread does not run yet: this thread may use the connection */
  pthread_mutex_init(&h->mu, NULL);
  pthread_cond_init(&h->cv, NULL);
  uv_async_init(srv->loop, &h->async, on_async);
  h->async.data = h;
  if (pthread_create(&h->thread, NULL, thread_main, h) != 0) {
    ewd_log(EWD_LOG_ERROR, "cannot start the history thread", "%s", "");
    return -1;
  }
  srv->history = h;
  ewd_stats_gauge(srv, history_stats);
  srv->keep_point = ewd_history_put;
  srv->keep_event = keep_event;
  return 0;
}

static void on_closed(uv_handle_t *hd) {
  ewd_history_t *h = hd->data;
  pthread_mutex_destroy(&h->mu);
  pthread_cond_destroy(&h->cv);
  free(h);
}

void ewd_history_close(ewd_server_t *srv) {
  ewd_history_t *h = srv->history;
  if (!h)
    return;
  pthread_mutex_lock(&h->mu);
  h->stop = true;
  pthread_cond_signal(&h->cv);
  pthread_mutex_unlock(&h->mu);
  pthread_join(h->thread, NULL);
  on_async(&h->async); /* the last reads' answers */
  for (int i = 0; i < Q_NQ; i++)
    sqlite3_finalize(h->q[i]);
  if (sqlite3_close(h->db) != SQLITE_OK)
    ewd_log(EWD_LOG_WARN, "the history database did not close cleanly", "error=\"%s\"",
            sqlite3_errmsg(h->db));
  srv->history = NULL;
  uv_close((uv_handle_t *)&h->async, on_closed);
}
