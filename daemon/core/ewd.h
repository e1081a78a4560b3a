/* ewd.h — the core room's header: what every part of the daemon shares. One libuv loop thread
 * owns every socket, connection and registry entry; math threads (pool.c) own every BLAS/LAPACK
 * call and, while a job runs, the job's stream state. Rooms, each with its header, includes and
 * calls flowing down (tests/numeric/test_layers.py checks both):
 *   main.c         flags, start, signals, the graceful stop with its drain deadline
 *   net/ net.h     listeners, connections (budgets, timeouts, ordering), msgpack-RPC, HTTP, API
 *   cmd/ cmd.h     the handlers by job: streams, ingest, query, state, history, alerts, daemon,
 *                  expo (GET /metrics)
 *   store/         persist.h: persist (snapshot rounds), restore (start, quarantine, the lock),
 *                  train (the training block, the state's tRUN section), state_jobs (SAVE and
 *                  MERGE on the math thread); history.h: history + history_read (SQLite on an
 *                  I/O thread)
 *   run/ run.h     steps (staging by (step, rank), completion; steps_save: the saved staging),
 *                  recent (the recent view's ring), eval_list + eval + eval_save (scheduled
 *                  evaluation, eval_priv.h), alerts + alerts_save (rules and their states,
 *                  alerts_priv.h), subs (subscriptions), merge_plan (recent views by steps)
 *   core/          this header; config (limits_table.h), stats (selfstats.h), log, registry
 *                  (named streams, admission, result caches), pool (math threads, per-stream
 *                  queues), jobs (the job lifecycle), params (a metric request's parameters and
 *                  cache key), conn.h (a connection's hooks, which net/ fills in),
 *                  errors_table.h, sd (systemd, main's alone)
 * Each struct has one owner, named at its definition; nothing is global but the log level. */
#ifndef EWD_H
#define EWD_H

#include "eigenwatch.h"
#include "ewp.h"
#include "core/limits_table.h"
#include "core/selfstats.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <uv.h>

_Static_assert(EWP_MAX_DIM == EW_MAX_DIM, "the wire and the library agree on the largest d");
_Static_assert(EWP_NAME_MAX == 200, "stream names are at most 200 bytes");

#define EWD_NAME_MAX EWP_NAME_MAX

/* The daemon's saved blobs (train.c, eval_save.c, alerts_save.c): host-order fields, written at
 * q (advancing it), read from b[o, n) (advancing o; a read past n jumps to the label `bad`). */
#define EWD_PUT(q, v) (memcpy((q), &(v), sizeof(v)), (q) += sizeof(v))
#define EWD_GET(v)                                                                                \
  do {                                                                                            \
    if (n - o < sizeof(v))                                                                        \
      goto bad;                                                                                   \
    memcpy(&(v), b + o, sizeof(v)), o += sizeof(v);                                               \
  } while (0)

/* ---- log.c ---- */
typedef enum { EWD_LOG_ERROR = 0, EWD_LOG_WARN, EWD_LOG_INFO, EWD_LOG_DEBUG } ewd_log_level_t;
/* The one process-wide setting (read by every thread that logs; set by main at start/reload). */
extern ewd_log_level_t ewd_log_level;
/* Writes one logfmt line: ts=... level=... msg="..." then the caller's key=value text. Peer bytes
 * in that text must already be escaped (ewp_escape). */
void ewd_log(ewd_log_level_t lvl, const char *msg, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
int ewd_log_parse_level(const char *s, ewd_log_level_t *out);
const char *ewd_log_level_name(ewd_log_level_t l);

double ewd_now(void);      /* monotonic seconds */
double ewd_wall_now(void); /* Unix seconds */

/* ---- registry.c (owner: the loop) ---- */
typedef struct ewd_job ewd_job_t;

typedef struct {
  char *key;        /* canonical "metric|c=..|s=..|p=v,..." */
  ew_result_t res;  /* owned copy, never with vectors */
  size_t bytes;
} ewd_cached_t;

/* A stream's key: (run, stream name). Borrowed bytes, not NUL-terminated. */
typedef struct {
  const char *run;
  size_t rn;
  const char *name;
  size_t n;
} ewd_key_t;
/* The key a request names: its `stream` and its `run` ("default" when the field is absent). */
ewd_key_t ewd_key_of(ewp_str_t stream, ewp_str_t run, bool has_run);
#define EWD_KEY(req) ewd_key_of((req)->stream, (req)->run, EWP_HAS(req, EWP_RUN_BIT))
/* The key of a registered stream. */
#define EWD_KEY_ST(st) ((ewd_key_t){(st)->run, strlen((st)->run), (st)->name, strlen((st)->name)})

typedef struct ewd_steps ewd_steps_t; /* steps.c */
typedef struct ewd_eval ewd_eval_t;   /* eval.c */
typedef struct ewd_alerts ewd_alerts_t; /* alerts.c */

/* The last seq seen from one producer of a stream (exactly-once ingest). */
/* A completed step in the recent view's ring: its number, and the rows it put in the window (its
 * batches' and the late ones applied with it). */
typedef struct {
  uint64_t step, rows;
} ewd_step_rows_t;
#define EWD_STEP_UNKNOWN UINT64_MAX /* a ring entry restored from a snapshot before version 4 */

typedef struct {
  char name[EWP_PRODUCER_MAX + 1];
  uint64_t seq;         /* the highest accepted: a batch at or below it is a duplicate */
  uint64_t applied_seq; /* the highest whose rows are in the state or queued for it (saved) */
  bool has_seq, has_applied;
  /* what the producer reported discarding before sending (ingest's dropped_rows and
   * dropped_batches: cumulative, kept at their highest; not saved) */
  uint64_t dropped_rows, dropped_batches;
} ewd_producer_t;

#define EWD_PRODUCERS_MAX 256 /* producers remembered per stream */
#define EWD_ERR_SLOTS 64      /* error counters: one per EW_ERRNO_MAP row, by code - EW__ERR_BASE */
#define EWD_STEP_TIMEOUT_DEFAULT 60.0 /* seconds: a stream's step_timeout unless create gives one */

typedef struct ewd_stream {
  char name[EWD_NAME_MAX + 1];
  char run[EWD_NAME_MAX + 1];
  uint64_t hash;            /* of the key (registry index) */
  struct ewd_stream *hnext; /* next in the registry's hash bucket */
  ew_stream_t *s;        /* touched only by a math thread while one of its jobs runs */
  ew_config_t cfg;       /* immutable copy, read on the loop */
  ew_memory_model_t model; /* the library's admission model for cfg */
  bool provisional;      /* created by an ingest that has not succeeded yet: invisible */
  /* loop-side mirrors, updated when jobs complete */
  uint64_t count;
  size_t memory;         /* ew_stream_memory after the last job */
  size_t window_bytes;   /* a tokens or stats stream's window (ew_stream_window_bytes) then: part
                            of memory, and counted in the registry's window_bytes */
  double last_ingest;    /* Unix seconds, 0 = never */
  int refs;              /* the registry's reference + one per job in flight */
  size_t queued_bytes;   /* ingest payload bytes queued */
  size_t queued_jobs;
  /* the stream's job FIFO: guarded by the pool mutex (pool.c) */
  ewd_job_t *qhead, *qtail;
  bool scheduled;
  struct ewd_stream *ready_next;
  /* result cache (loop only), bounded by entries and bytes, counted in memory_bytes */
  ewd_cached_t *cache;
  size_t ncache, capcache, cache_bytes;
  /* persistence (persist.c; loop only) */
  uint64_t changes;       /* jobs that may change the state, counted when submitted */
  uint64_t saved_changes; /* `changes` as of the snapshot on disk */
  char file[40];          /* snapshot file name in <state_dir>/streams ("" = none yet) */
  /* training steps (steps.c; loop only; saved as the state's tRUN section, persist.c) */
  uint32_t world;         /* ranks per step: create, or the ingest that created the stream */
  double step_timeout;    /* seconds from a step's first batch to its forced completion */
  ewd_steps_t *steps;     /* staging; NULL until the first step-carrying ingest */
  bool has_first_step, has_last_step;
  uint64_t first_step, last_step; /* the first and latest completed steps */
  ewd_producer_t *producers;
  size_t nproducers;
  /* the recent view (a training stream): the window is every metric's default source, and with
   * window_steps S only the rows of the last S completed steps are read */
  bool recent;
  uint32_t window_steps;
  bool tail_stale; /* TAILs were skipped while evaluation was behind: the window's moments are
                      not on the recent view; TAILs wait until a snapshot's are adopted */
  ewd_step_rows_t *step_rows; /* ring of the last window_steps completed steps and their rows */
  uint32_t nstep_rows, step_rows_at;
  ewd_eval_t *eval;       /* scheduled evaluation (eval.c); NULL: the defaults, not yet used */
  ewd_alerts_t *alerts;   /* alert rules and their states (alerts.c); NULL: none */
  bool has_train;         /* a holder of training fields (persist.c) got a tRUN section */
  /* frees the fields the rooms above core own (steps, producers, ring, eval list, rules) when
   * the last reference goes: the registry's `release`, given at create or adopt */
  void (*release)(struct ewd_stream *st);
  bool dropped;           /* removed from the registry; jobs may still hold it */
  bool ended;             /* `flush {end: true}` said its run is over; a batch clears it (saved
                             in the tRUN section's flags) */
  uint64_t refused[EWD_ERR_SLOTS]; /* its batches refused, by -(code - EW__ERR_BASE) (not saved) */
  /* GET /metrics' lines of the stream (cmd/expo.c; loop only): one malloc'ed block (NULL: none
   * yet), freed with the stream, counted in memory_bytes (expo_bytes); rendered again at a scrape
   * when expo_version is past the version it was rendered at (ewd_expo_stale bumps it) */
  struct ewd_expo *expo;
  size_t expo_bytes;
  uint64_t expo_version;
} ewd_stream_t;

/* What /metrics shows of st beyond its per-ingest counters changed: its latest evaluation, eval
 * list, alert rules or their states, or `ended` (cmd/expo.c renders its lines again). */
static inline void ewd_expo_stale(ewd_stream_t *st) { st->expo_version++; }

typedef struct {
  ewd_stream_t **items;   /* registration order (swap-removed) */
  size_t n, cap;
  ewd_stream_t **buckets; /* hash index over (run, stream) */
  size_t nbuckets;        /* a power of two, >= n */
  size_t state_bytes;   /* Σ model.state of registered streams */
  size_t staged_bytes;  /* rows held for steps, from staging until applied (steps.c) */
  size_t pending_bytes; /* the part whose step has not completed (max_staged_bytes bounds it) */
  size_t peak_ws;       /* max model.workspace of registered streams */
  size_t window_bytes;  /* Σ tokens and stats streams' windows (their steps' tokens or cells,
                           which grow with the steps rather than by a configured bound): counted
                           in what is admitted and against max_staged_bytes with the staging */
  size_t eval_bytes;    /* copies of states held for evaluation (eval.c) */
  /* what frees a stream's training fields (store's ewd_train_release, set by main): given to
   * every stream it registers */
  void (*release)(ewd_stream_t *st);
} ewd_registry_t;

/* The stream with key k, or NULL: O(1) through the hash index. */
ewd_stream_t *ewd_registry_find(ewd_registry_t *r, const ewd_key_t *k);
/* Like find, but a provisional stream (see ewd_stream_t) counts as absent. */
ewd_stream_t *ewd_registry_visible(ewd_registry_t *r, const ewd_key_t *k);
/* 64-bit FNV-1a of p[0, n) continuing from h (EWD_FNV_BASIS to start): the registry index and
 * snapshot file names. */
#define EWD_FNV_BASIS 0xcbf29ce484222325ULL
uint64_t ewd_fnv1a(uint64_t h, const void *p, size_t n);
/* The hash of a key (FNV-1a over run, a zero byte, stream). */
uint64_t ewd_key_hash(const ewd_key_t *k);
/* Creates and registers a stream after checking max_streams and the admission model
 * (Σ state + math_threads × peak workspace ≤ max_memory). Returns 0 with *out, EW_ELIMIT (msg
 * says which limit), EW_EBADPARAM for a bad config (msg), EW_ENOMEM. */
int ewd_registry_create(ewd_registry_t *r, const ewd_config_t *lim, const ewd_key_t *k,
                        const ew_config_t *cfg, ewd_stream_t **out, char *msg, size_t msgcap);
/* Registers a stream the caller already built (a restored snapshot): the same limits and
 * admission as create. On success the registry owns `s`; on error the caller still does. */
int ewd_registry_adopt(ewd_registry_t *r, const ewd_config_t *lim, const ewd_key_t *k,
                       ew_stream_t *s, ewd_stream_t **out, char *msg, size_t msgcap);
/* Removes from the registry (the entry lives on while jobs reference it). */
void ewd_registry_remove(ewd_registry_t *r, ewd_stream_t *st);
/* Bytes the admission model charges now: Σ state + math_threads × peak workspace, and the staged
 * rows and the tokens and stats streams' windows. */
size_t ewd_registry_admitted(const ewd_registry_t *r, const ewd_config_t *lim);
/* Records that st's window now holds `bytes` (ew_stream_window_bytes), in r's total too. */
void ewd_registry_window(ewd_registry_t *r, ewd_stream_t *st, size_t bytes);
/* Σ memory mirrors plus result caches (and /metrics' lines) of registered streams. */
size_t ewd_registry_memory(const ewd_registry_t *r);
/* A stream's state alone: ew_stream_memory without its peak workspace, which belongs to a math
 * thread and is shared by every stream (the admission model charges it per thread). */
size_t ewd_stream_state_bytes(const ew_stream_t *s);
void ewd_stream_unref(ewd_stream_t *st);
const ew_result_t *ewd_cache_get(ewd_stream_t *st, const char *key);
/* Stores a copy of `res` without its vectors (the cache holds values only). */
void ewd_cache_put(ewd_stream_t *st, const char *key, const ew_result_t *res);
void ewd_cache_clear(ewd_stream_t *st);
void ewd_registry_free(ewd_registry_t *r);
/* The producer slot of name[0, n) in st, created when absent; -1 when st already remembers
 * EWD_PRODUCERS_MAX producers. */
int ewd_producer_slot(ewd_stream_t *st, const char *name, size_t n);

/* ---- pool.c (the pool struct: its mutex; jobs: see ewd_job) ---- */
typedef enum {
  EWD_JOB_INGEST, EWD_JOB_QUERY, EWD_JOB_RESET, EWD_JOB_FREE,
  EWD_JOB_SAVE,  /* the stream's state (after `prefix`) into `out`: snapshot, export */
  EWD_JOB_MERGE, /* `data` (a saved state, `bytes` long) folded into the stream */
  EWD_JOB_CHECK, /* step-carrying ingest: `data` (may be NULL) checked, in stream order */
  EWD_JOB_FORK,  /* evaluation, in stream order: the metrics that need no eigensolve, and a
                    snapshot (`snap`) of what the others read (or, with `inline_eval`, every
                    metric on the state itself) */
  EWD_JOB_EVAL,  /* evaluation of the metrics of `snap_mask` on `snap`, outside the stream's
                    order */
  EWD_JOB_TAIL,  /* the window's moments kept on its last `tail_rows` rows (the recent view); a
                    tokens stream's step settled into its sketches (ew_stream_settle) */
  EWD_JOB_ADOPT, /* the window takes the moments `snap` holds for its tail (recent.c) */
  EWD_JOB_CALL   /* an answer-only method's `work` on the stream's turn (nullify) */
} ewd_job_kind_t;

typedef struct {
  char *name;           /* metric */
  char *key;            /* cache key */
  ew_source_t source;   /* resolved (EW_SOURCE_DEFAULT: the metric's own) */
  int center;           /* -1: the metric's own */
  uint64_t window_rows; /* window sources: the recent view's rows (0 = the whole window) */
  ew_method_t method;   /* exact or quick for spectrum-wide metrics (query's `method`) */
  ew_param_t params[EW_METRIC_MAX_PARAMS];
  char *pkeys[EW_METRIC_MAX_PARAMS]; /* owned: params[k]'s key, then (a string value) its text */
  size_t nparams;
} ewd_qmetric_t;

typedef enum { EWD_JOB_READY = 0, EWD_JOB_NEEDS_PREPARE, EWD_JOB_PREPARING } ewd_job_state_t;

struct ewd_server;
typedef struct ewd_conn ewd_conn_t; /* net/'s; opaque below it (core/conn.h: its hooks) */

/* A unit of work for one stream. Built on the loop, handed to the pool (then a math thread owns
 * its inputs and outputs until it comes back), finished on the loop by done(). */
struct ewd_job {
  ewd_job_t *next;       /* the stream's FIFO, then the done list */
  ewd_job_t *prep_next;  /* the pool's prepare list */
  ewd_job_state_t state;
  ew_batch_t *batch;     /* ingest: prepared on any math thread, applied in stream order */
  ewd_job_kind_t kind;
  struct ewd_server *srv;
  ewd_stream_t *st;
  ewd_conn_t *conn;        /* NULL when nobody waits for the answer */
  const atomic_bool *gone; /* the connection's "peer gone" flag (answer-only jobs skip) */
  uint32_t msgid;
  bool notify;
  bool skipped;          /* set by the math thread: not run because its connection was gone */
  int rc;
  char message[200];
  /* ingest */
  void *data;
  ew_dtype_t dtype;
  size_t n, d, bytes;
  size_t plen;           /* a tokens batch: data is its packed form (ew_tokens_pack) of plen
                            bytes, n its tokens, d its columns; 0: rows of dtype */
  uint32_t *labels;      /* rows: n labels (ingest's `labels`), or NULL */
  size_t y_at;           /* nullify: data holds n rows of x (dtype), then from y_at n of y */
  ew_dtype_t y_dtype;
  /* query */
  ewd_qmetric_t *metrics;
  size_t nmetrics;
  int center;
  ew_result_t *results;
  double elapsed_ms;
  /* save: out = prefix bytes then the saved state (owned; handed on by done()) */
  char *prefix;
  size_t prefix_len;
  char *out;
  size_t out_len;
  uint64_t changes_at;   /* the stream's `changes` when the job was submitted */
  uint64_t merged_rows;  /* merge: rows the state carried */
  /* the training block (store/train.c): save: carried as the state's embedder section (owned);
   * merge: the state's own, read on the math thread (train_st, owned until merge_done adopts
   * what it holds) */
  char *train;
  size_t train_len;
  char *stage; /* save: the staging's tSTG section (owned; NULL: none) */
  size_t stage_len;
  struct ewd_stream *train_st;
  /* what ewd_job_free must release beyond the job's own buffers, set by the room that filled it
   * (store's merge: train_st); NULL: nothing */
  /* SAVE, MERGE and CALL: the math-thread work, set by the room that makes the job (store's
   * ewd_run_save / ewd_run_merge, cmd's nullify); pool.c runs it on the stream's turn */
  void (*work)(struct ewd_job *job, struct ewd_stream *st);
  void (*cleanup)(struct ewd_job *job);
  bool merge_replace;    /* merge into a stream this merge created: the state becomes it */
  bool merge_by_steps;   /* the stream's recent view is by steps (window_steps) */
  ewd_step_rows_t *ring; /* merge by steps: the stream's ring at submit (oldest first) and, once
                            merged, the merged ring (merge_plan.c) */
  uint32_t nring, window_steps;
  /* step-carrying ingest (steps.c) */
  bool has_step, end_step, staged_apply;
  uint64_t step;
  uint32_t rank;
  int producer;          /* index in st->producers, -1 = none */
  uint64_t seq, seq_before, applied_before;
  bool had_seq_before, had_applied_before;
  struct ewd_point *point; /* evaluation: the step it describes */
  /* evaluation (eval.c) */
  ew_snapshot_t *snap;   /* what FORK copied for the metrics of snap_mask (owned until EVAL
                            frees it) */
  uint64_t snap_mask;
  size_t snap_bytes;
  bool inline_eval;      /* FORK evaluates on the stream itself (no room for a snapshot) */
  double cheap_ms, snap_ms; /* FORK: the metrics answered on the stream's turn; the snapshot */
  uint64_t tail_rows;    /* TAIL: the rows to keep the moments on */
  bool tail_first;       /* TAIL: the first of a step's two (recent.c) */
  uint64_t evmask;       /* which of the stream's eval specs `metrics` are */
  /* after the job: mirrors */
  uint64_t count_after;
  size_t memory_after;
  size_t window_after;   /* ew_stream_window_bytes after the job */
  void (*done)(ewd_job_t *job); /* runs on the loop thread; frees the job */
};

typedef struct ewd_pool ewd_pool_t;
/* Starts n math threads, each calling openblas_set_num_threads(blas) first; at most
 * eval_threads of them (0 or more than n: all n) solve evaluations at once. Completed jobs come
 * back to the loop through an async handle and have job->done called there. */
int ewd_pool_start(ewd_pool_t **out, uv_loop_t *loop, int n, int blas, int eval_threads);
/* Queues a job behind the stream's earlier jobs (per-stream FIFO; streams run in parallel).
 * Takes a stream reference. */
void ewd_pool_submit(ewd_pool_t *p, ewd_job_t *job);
/* Queues an EWD_JOB_EVAL (it reads only job->snap, never the stream): evaluations run in the
 * order they were queued (one per stream at a time: eval.c), whenever no stream job or prepare
 * is waiting, on up to `eval_threads` threads at once (ewd_pool_eval_threads; all of them by
 * default). Takes a stream reference. */
void ewd_pool_submit_eval(ewd_pool_t *p, ewd_job_t *job);
/* Jobs queued or running. */
size_t ewd_pool_pending(ewd_pool_t *p);
/* The most evaluations that have run at once since the pool started. */
size_t ewd_pool_eval_peak(ewd_pool_t *p);
/* Stops the threads after the queue drains and delivers the last completions. `then` (may be
 * NULL) runs once the pool's handle has closed and the pool is freed. */
void ewd_pool_stop(ewd_pool_t *p);
void ewd_job_free(ewd_job_t *job);
/* ---- work.c: a job's work, on the math thread that runs it (pool.c) ---- */
/* Runs job (its kind's work), recording rc, message, results, the stream's count and memory
 * after it, and elapsed_ms; an answer-only job whose connection is gone is skipped. */
void ewd__job_run(ewd_job_t *job);
/* ---- jobs.c: the job lifecycle (loop thread) ---- */
/* A job for `st` that answers nobody (a handler sets conn, msgid and notify for a request: cmd's
 * ewd_job_new). NULL when out of memory. */
ewd_job_t *ewd_job_make(struct ewd_server *srv, ewd_stream_t *st, ewd_job_kind_t kind,
                        void (*done)(ewd_job_t *));
/* Queues the job; a request's job holds the connection, a pipelined ingest counts in flight. */
void ewd_job_submit(struct ewd_server *srv, ewd_job_t *job, bool pipelined);
/* On the loop, at the end of a done(): mirrors already taken; releases the holds and frees. */
void ewd_job_finish(ewd_job_t *job);
/* Copies the stream's count and memory from a completed job. */
void ewd_job_mirrors(ewd_job_t *job);
void ewd_qmetrics_free(ewd_qmetric_t *ms, size_t n);
/* ---- params.c: what a query and a scheduled evaluation share ---- */
/* The result cache's key of a metric: "metric|c=center|s=source|t=tail|param=value..." (a
 * query and a scheduled evaluation of the same thing share it). Malloc'ed; NULL: no memory. */
char *ewd_cache_key(const char *metric, int center, ew_source_t src, uint64_t tail,
                    ew_method_t method, const ew_param_t *ps, size_t np);
/* True when the metric can be computed from the window (EW_SOURCE_WINDOW is among its sources). */
bool ewd_takes_window(const ew_metric_info_t *info);
/* A metric parameter as the wire sent it (wp), checked against its row pi of metric info
 * (ew_param_check) and resolved into *out: a number ("inf" included) or a bool as its value, a
 * string or an enum as its text, copied into txt (the caller's, EWP_PARAM_STR_MAX + 1 bytes;
 * out->str points there). out->key is pi->name (static). Returns 0, or EW_EBADPARAM with a
 * sentence in msg[0, cap) naming the parameter, the metric and the type or range it takes. */
int ewd_param_resolve(const ew_metric_info_t *info, const ew_param_info_t *pi,
                      const ewp_param_t *wp, ew_param_t *out, char txt[EWP_PARAM_STR_MAX + 1],
                      char *msg, size_t cap);
/* Appends a copy of the resolved parameter p to m (m->pkeys[k] owns its key and string value,
 * freed by ewd_qmetrics_free). Returns 0, or EW_ENOMEM (also when m has EW_METRIC_MAX_PARAMS). */
int ewd_qmetric_param(ewd_qmetric_t *m, const ew_param_t *p);



/* ---- the server (owner: the loop) ---- */
typedef struct ewd_net ewd_net_t;           /* net/ */
typedef struct ewd_persist ewd_persist_t;   /* store/persist.h */
typedef struct ewd_history ewd_history_t;   /* store/history.h */
typedef struct ewd_subs ewd_subs_t;         /* run/run.h */
struct ewd_point;                           /* run/run.h */
struct ewd_hvalue;                          /* run/run.h */
struct ewd_alert_event;                     /* run/run.h */
typedef struct ewd_events ewd_events_t;     /* run/alert_events.c */

/* The estimate of a fresh full eigensolve of a d×d state: seconds per d³ on one core. Measured
 * through the daemon on the reference machine (2-core Zen 3, OpenBLAS 0.3.21): 5.9 s at
 * d = 4096, 49 s at 8192, 6.5 min at 16384, i.e. 8.6–8.9e-11; a query that took longer per d³
 * raises the server's rate (ewd_solve_observed). */
#define EWD_SOLVE_RATE_PRIOR 9e-11
/* Records a query's compute time on a stream of dimension d (loop thread). */
void ewd_solve_observed(struct ewd_server *srv, size_t d, double seconds);
/* What a fresh exact solve on a stream of dimension d is expected to take, in seconds. */
double ewd_solve_estimate(const struct ewd_server *srv, size_t d);

#define EWD_GAUGES_MAX 4
typedef struct ewd_server {
  uv_loop_t *loop;
  const struct ewd_conn_hooks *conn_hooks; /* what net/ does for the rooms below it: set by
                                              ewd_net_init (core/conn.h) */
  double solve_rate;     /* seconds per d³ of the slowest recent query (ewd_solve_observed) */
  ewd_config_t cfg;      /* the running configuration (limits_table.h) */
  ew_skim_limits_t skim; /* derived from cfg */
  ewd_registry_t reg;
  ewd_pool_t *pool;
  ewd_net_t *net;        /* listeners and connections (net/) */
  ewd_persist_t *persist; /* snapshots (persist.c) */
  ewd_history_t *history; /* history.db (history.c) */
  /* where an evaluated point goes to be kept (store's ewd_history_put, set by
   * ewd_history_open; NULL: nowhere): evaluation hands its points up through it */
  void (*keep_point)(struct ewd_server *srv, const struct ewd_stream *st,
                     const struct ewd_point *pt, const struct ewd_hvalue *v, size_t n);
  ewd_events_t *events;   /* the last alert events (run/alert_events.c) */
  /* where an alert event goes to be kept (store's history, set by ewd_history_open) */
  void (*keep_event)(struct ewd_server *srv, const struct ewd_alert_event *e);
  /* what the rooms above core add to stat at a refresh (their gauges): ewd_stats_gauge */
  void (*gauges[EWD_GAUGES_MAX])(struct ewd_server *srv);
  size_t ngauges;
  uv_timer_t eval_timer;  /* every_s evaluations (eval.c) and stale alerts (alerts.c) */
  ewd_subs_t *subs;       /* subscriptions (alerts.c) */
  uint64_t stat[EWD_STAT_COUNT];
  uint64_t errors[EWD_ERR_SLOTS]; /* by -(code - EW__ERR_BASE) */
  double started;
  char *token;           /* the auth token (NULL: TCP is trusted like the Unix socket) */
  size_t token_len;
  bool stopping;
  uv_timer_t trim_timer; /* gives freed heap back to the system after large frees */
  uv_timer_t step_timer; /* completes timed-out steps (steps.c) */
  ewd_stream_t **staging; /* streams with staged rows (steps.c) */
  size_t nstaging, capstaging;
  size_t freed_since_trim;
  /* answer_budget's two parts, kept here (core) so that net/ adds to one and store/ reads both
   * without reaching into each other: */
  atomic_size_t out_held;         /* Σ out_mem of connections (net/conn.c; read by the history's
                                     I/O thread) */
  atomic_size_t answers_building; /* history answers being read and encoded (history_read.c) */
} ewd_server_t;

/* Applies cfg's derived settings (skim limits, log level). */
void ewd_server_apply_config(ewd_server_t *srv);
void ewd_count_error(ewd_server_t *srv, int code);
/* Counts a batch of st refused with `code` (st->refused; /metrics' stream_refused_total). */
void ewd_stream_refused(ewd_stream_t *st, int code);
/* Notes that `bytes` of heap were freed; a large total schedules a malloc_trim shortly. */
void ewd_server_freed(ewd_server_t *srv, size_t bytes);
/* Fills the gauge rows of srv->stat from the live state: core's own, then each registered
 * refresher's (ewd_stats_gauge). */
void ewd_stats_refresh(ewd_server_t *srv);
/* Registers fn to fill a room's gauges at every refresh (history's counters, subscriptions).
 * Returns 0, or -1 when EWD_GAUGES_MAX are registered already (a programming error: logged). */
int ewd_stats_gauge(ewd_server_t *srv, void (*fn)(ewd_server_t *srv));

#endif
