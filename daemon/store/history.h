/* history.h — what history.c (the I/O thread), history_read.c (reads, run on that thread) and
 * cmd/history.c (the `history` method on the loop) share: a read request and its answer. */
#ifndef EWD_HISTORY_H
#define EWD_HISTORY_H

#include "run/run.h"

#include <sqlite3.h>

/* Points one `history` answer may carry, over all its series (its bytes: max_answer_bytes). */
#define EWD_HISTORY_REPLY_MAX 500000

typedef enum { EWD_AGG_LAST = 0, EWD_AGG_MEAN, EWD_AGG_MIN, EWD_AGG_MAX } ewd_agg_t;

/* One series of an answer: n points (bucketed when the range held more than max_points). */
typedef struct {
  const char *stream;  /* the request's (borrowed) */
  char metric[EWP_SERIES_MAX + 1]; /* the series name */
  size_t n;
  bool vec;            /* list values: lists[i] of lens[i] */
  uint64_t *step;      /* the last step of each bucket */
  double *time;        /* its Unix time */
  double *value;       /* scalar series: the bucket's aggregate */
  double **lists;
  size_t *lens;
  bool *partial;       /* any point of the bucket partial */
  uint64_t *rows;      /* the bucket's last point's rows, ranks, lag_s and skipped */
  uint64_t *ranks;
  double *lag;
  uint64_t *skipped;
  /* estimates: the bucket's last point's error bar and certified bracket (flags: 1 = err,
   * 2 = br); has_err / has_br: some point of the series has one (else the arrays are NULL) */
  bool has_err, has_br;
  uint8_t *est;
  double *err;
  double (*br)[2];
} ewd_hseries_t;

/* A read: filled on the loop (the request), answered on the I/O thread, replied on the loop. */
typedef struct ewd_hread {
  ewd_server_t *srv;
  /* On the loop, once read: replies and frees rd. Set by whoever queued the read (cmd/history.c:
   * the `history` method), so that store calls no room above it. */
  void (*answer)(struct ewd_hread *rd);
  ewd_conn_t *conn;    /* the request's connection (opaque here: the answer uses it) */
  ewd_job_t *hold;     /* stands for the request in the connection's ordering */
  uint32_t msgid;
  bool notify;
  char run[EWD_NAME_MAX + 1];
  char (*streams)[EWD_NAME_MAX + 1];
  size_t nstreams;
  char (*metrics)[EWP_SERIES_MAX + 1]; /* series names; nmetrics == 0: every series */
  size_t nmetrics;
  uint64_t from, to;
  size_t max_points;
  ewd_agg_t agg;
  /* the answer's bytes: max_answer_bytes and answer_budget as the request found them (the I/O
   * thread does not read the live config), the encoding (JSON over HTTP, else msgpack) */
  bool json;
  size_t max_bytes, budget;
  size_t est;          /* the encoded answer's estimated bytes so far */
  size_t reserved;     /* held in srv->answers_building until rd is freed */
  /* the answer */
  int rc;              /* 0 or an EW_E* code with message */
  char message[256];
  ewd_hseries_t *series;
  size_t nseries;
} ewd_hread_t;

/* Queues a read behind every write queued before it; once read, rd->answer(rd) runs on the loop
 * and owns rd. Returns 0, or -1 (no history, or no memory: the caller answers and keeps rd). */
int ewd_history_read(ewd_server_t *srv, ewd_hread_t *rd);
/* Runs a read on the I/O thread with its prepared statements: `series` (?1 run, ?2 stream →
 * id, metric) and `points` (?1 series, ?2 from, ?3 to → step, time, value, vec, partial, rows,
 * ranks, lag, skipped, err, lo, hi). */
void ewd_hread_run(sqlite3 *db, sqlite3_stmt *series, sqlite3_stmt *points, ewd_hread_t *rd);
/* Frees what a read holds (its hold job too) and its reservation of answer_budget, and rd. */
void ewd_hread_free(ewd_hread_t *rd);

/* ---- history.c (owner: the loop; SQLite on its own I/O thread) ---- */
typedef struct ewd_history ewd_history_t;
/* Opens <state_dir>/history.db (WAL) and starts its I/O thread. Returns 0, or -1 after logging
 * why (the daemon does not start without its history). */
int ewd_history_open(struct ewd_server *srv);
/* Queues a point's values for the next write batch (copied; written on the I/O thread). */
void ewd_history_put(struct ewd_server *srv, const ewd_stream_t *st, const ewd_point_t *pt,
                     const ewd_hvalue_t *v, size_t n);
/* The stream was dropped: its series are deleted (after the writes queued before). */
void ewd_history_forget(struct ewd_server *srv, const ewd_stream_t *st);
/* Writes what is queued and stops the thread (at a stop, after the pool). */
void ewd_history_close(struct ewd_server *srv);

#endif
