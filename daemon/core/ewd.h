/* ewd.h — what the daemon's parts share. One libuv loop thread owns every socket, connection
 * and registry entry; math threads (pool.c) own every BLAS/LAPACK call and, while a job runs, the
 * job's stream state. Rooms, data flowing down (tests/numeric/test_layers.py):
 *   main.c         flags, start, signals, the graceful stop with its drain deadline
 *   net/           listeners, connections (budgets, timeouts, ordering), msgpack-RPC, HTTP, API
 *   cmd/           the handlers by job: streams, ingest, query, state, history, alerts, daemon,
 *                  expo (GET /metrics)
 *   run/           steps (staging by (step, rank), completion), eval + eval_save (scheduled
 *                  evaluation, eval_priv.h), alerts + alerts_save (rules and their states,
 *                  alerts_priv.h), subs (subscriptions), merge_plan (recent views by steps)
 *   store/         persist (snapshot rounds), restore (start, quarantine, the lock; persist.h),
 *                  train (the training block, the state's tRUN section), state_jobs (SAVE and
 *                  MERGE on the math thread), history + history_read (SQLite on an I/O thread)
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
  ewd_step_rows_t *step_rows; /* ring of the last window_steps completed steps and their rows */
  uint32_t nstep_rows, step_rows_at;
  ewd_eval_t *eval;       /* scheduled evaluation (eval.c); NULL: the defaults, not yet used */
  ewd_alerts_t *alerts;   /* alert rules and their states (alerts.c); NULL: none */
  bool has_train;         /* a holder of training fields (persist.c) got a tRUN section */
  /* frees the fields the rooms above core own (steps, producers, ring, eval list, rules) when
   * the last reference goes: the registry's `release`, given at create or adopt */
  void (*release)(struct ewd_stream *st);
  bool dropped;           /* removed from the registry; jobs may still hold it */
} ewd_stream_t;

/* Rows of the last window_steps completed steps (0: no window_steps, or none completed yet —
 * the whole window is read then). */
uint64_t ewd_recent_rows(const ewd_stream_t *st);
/* The plan of a merge of two recent views by steps (merge_plan.c): a (the stream's ring, oldest
 * first, held_a rows in its window) and b (the state's) give the union's last S steps' rows as
 * window spans (room for 2S; the stream's rows of a step, then the state's) and the merged ring
 * (room for S), at most cap rows. Returns 0, or EW_EBADPARAM with a sentence when a needed step
 * lost rows to its window, a ring entry has no step number, or the rows do not fit. */
int ewd_merge_plan(const ewd_step_rows_t *a, uint32_t na, uint64_t held_a,
                   const ewd_step_rows_t *b, uint32_t nb, uint64_t held_b, uint32_t S,
                   uint64_t cap, ew_window_span_t *spans, size_t *nspans, ewd_step_rows_t *ring,
                   uint32_t *nring, char *msg, size_t mcap);
/* Records a completed step and its rows in the ring (no-op without window_steps). */
void ewd_recent_note(ewd_stream_t *st, uint64_t step, uint64_t rows);
/* Sets window_steps (allocating its ring). Returns 0 or -1 (memory). */
int ewd_recent_steps(ewd_stream_t *st, uint32_t window_steps);
/* Recent streams without an explicit window get EWD_RECENT_WINDOW rows up to d = 4096, and
 * 64 MiB of f32 rows above it (2048 at d = 8192, 1024 at 16384; at least 256): the recent view at
 * any d within a bounded budget (a window of fewer rows than d keeps rows only). */
#define EWD_RECENT_WINDOW 4096
#define ewd_recent_window(d)                                                                      \
  ((d) <= 4096 ? (size_t)EWD_RECENT_WINDOW                                                        \
               : ((size_t)1 << 24) / (d) > 256 ? ((size_t)1 << 24) / (d) : (size_t)256)

typedef struct {
  ewd_stream_t **items;   /* registration order (swap-removed) */
  size_t n, cap;
  ewd_stream_t **buckets; /* hash index over (run, stream) */
  size_t nbuckets;        /* a power of two, >= n */
  size_t state_bytes;   /* Σ model.state of registered streams */
  size_t staged_bytes;  /* rows held for steps, from staging until applied (steps.c) */
  size_t pending_bytes; /* the part whose step has not completed (max_staged_bytes bounds it) */
  size_t peak_ws;       /* max model.workspace of registered streams */
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
/* Bytes the admission model charges now: Σ state + math_threads × peak workspace. */
size_t ewd_registry_admitted(const ewd_registry_t *r, const ewd_config_t *lim);
/* Σ memory mirrors plus result caches of registered streams. */
size_t ewd_registry_memory(const ewd_registry_t *r);
/* A stream's state alone: ew_stream_memory without its peak workspace, which belongs to a math
 * thread and is shared by every stream (the admission model charges it per thread). */
size_t ewd_stream_state_bytes(const ew_stream_t *s);
/* The sentence for a merge of a sketched state into an exact stream or the reverse (both
 * configurations valid, ew_config_sketched differing): static text (daemon/cmd/state.c). */
const char *ewd_merge_kind_mismatch(const ew_config_t *dst, const ew_config_t *src);
void ewd_stream_unref(ewd_stream_t *st);
const ew_result_t *ewd_cache_get(ewd_stream_t *st, const char *key);
/* Stores a copy of `res` without its vectors (the cache holds values only). */
void ewd_cache_put(ewd_stream_t *st, const char *key, const ew_result_t *res);
void ewd_cache_clear(ewd_stream_t *st);
void ewd_registry_free(ewd_registry_t *r);

/* ---- pool.c (the pool struct: its mutex; jobs: see ewd_job) ---- */
typedef enum {
  EWD_JOB_INGEST, EWD_JOB_QUERY, EWD_JOB_RESET, EWD_JOB_FREE,
  EWD_JOB_SAVE,  /* the stream's state (after `prefix`) into `out`: snapshot, export */
  EWD_JOB_MERGE, /* `data` (a saved state, `bytes` long) folded into the stream */
  EWD_JOB_CHECK, /* step-carrying ingest: `data` (may be NULL) checked, in stream order */
  EWD_JOB_FORK,  /* evaluation, in stream order: copies the state into `clone` (or, with
                    `inline_eval`, evaluates `metrics` on the state itself) */
  EWD_JOB_EVAL   /* evaluation of `metrics` on `clone`, outside the stream's order */
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
  /* SAVE and MERGE: the math-thread work, set by the room that makes the job (store's
   * ewd_run_save / ewd_run_merge); pool.c runs it on the stream's turn */
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
  ew_stream_t *clone;    /* the copy EWD_JOB_FORK made (owned until EWD_JOB_EVAL frees it) */
  size_t clone_bytes;
  bool inline_eval;      /* FORK evaluates on the stream itself (no room for a copy) */
  uint64_t evmask;       /* which of the stream's eval specs `metrics` are */
  /* after the job: mirrors */
  uint64_t count_after;
  size_t memory_after;
  void (*done)(ewd_job_t *job); /* runs on the loop thread; frees the job */
};

typedef struct ewd_pool ewd_pool_t;
/* Starts n math threads, each calling openblas_set_num_threads(blas) first. Completed jobs come
 * back to the loop through an async handle and have job->done called there. */
int ewd_pool_start(ewd_pool_t **out, uv_loop_t *loop, int n, int blas);
/* Queues a job behind the stream's earlier jobs (per-stream FIFO; streams run in parallel).
 * Takes a stream reference. */
void ewd_pool_submit(ewd_pool_t *p, ewd_job_t *job);
/* Queues an EWD_JOB_EVAL (it reads only job->clone, never the stream): it runs when no stream
 * job or prepare is waiting, on at most nthreads − 1 threads at once (1 with one thread), so
 * evaluation never holds every thread away from ingest. Takes a stream reference. */
void ewd_pool_submit_eval(ewd_pool_t *p, ewd_job_t *job);
/* Jobs queued or running. */
size_t ewd_pool_pending(ewd_pool_t *p);
/* Stops the threads after the queue drains and delivers the last completions. `then` (may be
 * NULL) runs once the pool's handle has closed and the pool is freed. */
void ewd_pool_stop(ewd_pool_t *p);
void ewd_job_free(ewd_job_t *job);
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
/* The math-thread halves of SAVE (the state after job->prefix, with job->train as its tRUN
 * section, into job->out) and MERGE (job->data loaded and folded into st, or job->rc and
 * job->message say why not): state_jobs.c, run by pool.c on the stream's turn. */
void ewd_run_save(ewd_job_t *job, ewd_stream_t *st);
void ewd_run_merge(ewd_job_t *job, ewd_stream_t *st);
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


/* ---- steps.c (owner: the loop) ----
 * A step-carrying ingest is checked on a math thread (EWD_JOB_CHECK, in the stream's order), then
 * staged here: its rows wait, counted in reg.staged_bytes, until their step completes — every
 * rank of `world` has sent a later step or end_step, or step_timeout has passed since the step's
 * first batch (partial), or on flush, or when staging is over max_staged_bytes (the oldest
 * pending step first, partial). Completed steps are applied in step order, ranks in order, each
 * rank's batches in the order sent, then the late batches; the state at a step is therefore the
 * same whatever the arrival order. */
typedef struct ewd_point {
  uint64_t step;        /* the step (a stream without steps: its row count) */
  double completed;     /* monotonic time the step completed */
  double time;          /* the same as Unix seconds */
  uint32_t skipped;     /* due evaluations coalesced into this one (eval.c) */
  uint64_t rows;
  uint32_t ranks;       /* ranks whose rows it holds */
  uint32_t nmissing;    /* ranks that had not finished it (partial when > 0) */
  uint32_t missing[8];  /* the first of them */
  uint32_t late;        /* late batches applied with it */
  double lag_s;         /* completion to evaluated value (eval.c) */
  bool by_rows;         /* a stream without steps: `step` is the row count evaluated */
} ewd_point_t;

/* What a step-carrying batch became: "staged" (waits for its step), "late" (its rank had moved
 * past its step, or the step is complete: applied with the next step to complete). */
typedef enum { EWD_STAGED = 0, EWD_LATE, EWD_STAGE_NOMEM } ewd_staging_t;
/* Makes st's staging area (before a step-carrying batch is accepted). Returns 0 or -1 (memory). */
int ewd_steps_ensure(ewd_stream_t *st);
/* Takes a checked batch (job->data moves into staging; NULL data is an end-of-step marker), notes
 * the rank's progress and completes what is complete. Returns how the batch was held;
 * EWD_STAGE_NOMEM changes nothing (the caller refuses the batch). */
ewd_staging_t ewd_steps_add(struct ewd_server *srv, ewd_stream_t *st, ewd_job_t *job);
/* Completes every pending step of st (and applies its late batches). Returns steps completed. */
size_t ewd_steps_flush(struct ewd_server *srv, ewd_stream_t *st, const char *why);
#define EWD_STEP_TIMEOUT_DEFAULT 60.0
/* Frees a staging area (the stream's last reference is gone). NULL is allowed. */
void ewd_steps_free(ewd_steps_t *sp);
/* Forgets st's staging (drop, reset): its rows are released, uncounted. */
void ewd_steps_discard(struct ewd_server *srv, ewd_stream_t *st);
/* Called after reg.staged_bytes grew: completes the oldest pending steps (partial) while staging
 * is over max_staged_bytes and a pending step remains. */
void ewd_steps_relieve(struct ewd_server *srv);
/* Counts st's staging (already in st->steps: a restored or merged stream's, read by
 * ewd_steps_load) in reg.staged_bytes and reg.pending_bytes and lists it for the step timer.
 * Its steps' step_timeout started when they were read. */
void ewd_steps_adopt(struct ewd_server *srv, ewd_stream_t *st);
/* The staging in its saved form (steps_save.c; the saved stream's tSTG section, docs/STATE.md):
 * ewd_steps_saved_len is its length, 0 when st's staging holds nothing its other saved fields
 * do not say (no section is written then); ewd_steps_save writes it to out (cap at least that
 * length; returns the bytes written, 0 when it does not fit or memory fails). Loop thread. */
size_t ewd_steps_saved_len(const ewd_stream_t *st);
size_t ewd_steps_save(const ewd_stream_t *st, char *out, size_t cap);
/* Reads a tSTG section into the holder t (its world and producers already read from tRUN; a
 * batch's producer is added to t's table when missing, its seq raised to the batch's). Sets
 * t->steps, owned by t (ewd_train_release frees it). Returns 0, EW_ESTATE (corrupt: t->steps
 * unchanged) or EW_ENOMEM. Any thread: it touches only t. */
int ewd_steps_load(ewd_stream_t *t, const char *b, size_t n);
/* The rows' width the holder's saved staging gave (0: none read), and its batches, pending steps
 * and lowest pending step (0 when none). */
uint32_t ewd_steps_saved_dim(const ewd_stream_t *t);
size_t ewd_steps_saved_batches(const ewd_stream_t *t, size_t *steps, uint64_t *lowest);
/* Pending steps and staged bytes of st (0 when it has none). */
size_t ewd_steps_pending(const ewd_stream_t *st, size_t *bytes, uint64_t *late_batches,
                         uint64_t *partial_steps);
/* Starts / stops the timer that completes timed-out steps. */
void ewd_steps_start(struct ewd_server *srv);
void ewd_steps_stop(struct ewd_server *srv);
/* The producer slot of name[0, n) in st, created when absent; -1 when st already remembers
 * EWD_PRODUCERS_MAX producers. */
int ewd_producer_slot(ewd_stream_t *st, const char *name, size_t n);

/* ---- expo.c (owner: the loop) ---- */
/* GET /metrics: the Prometheus text exposition (0.0.4) of the self-stats, errors by code, and
 * each stream's latest values, steps, update times, lag, coalescing, rows and alert states.
 * Returns a malloc'ed body (*len bytes), or NULL when out of memory. */
char *ewd_expo_metrics(struct ewd_server *srv, size_t *len);

/* ---- eval.c (owner: the loop) ----
 * Each stream has a list of scheduled metrics (create's `eval`; default EWD_EVAL_DEFAULTS every
 * step). When a step completes (or, for `every_rows`/`every_s`, when rows arrive), the due ones
 * are evaluated on the state at that step: a FORK job in the stream's order copies the state,
 * and an EVAL job computes on the copy outside it, so the stream's later batches never wait for
 * the solve. One evaluation per stream is in flight; steps that come due meanwhile are
 * coalesced: the latest is evaluated next, the others counted as skipped. Each evaluated point
 * goes to the history, the result cache (so `query` with max_lag answers from it) and the
 * stream's latest values. Without room in max_memory for a copy, FORK evaluates in place. */
#define EWD_EVAL_DEFAULTS "entropy", "erank", "rankme", "participation_ratio", "anisotropy", "l2_std"
/* Each entry of the list is one *series*, named by its `as` (default: its metric's name): the
 * history, subscriptions, alert rules, /metrics and the page know the values by that name.
 * Sets st's scheduled metrics from create's `eval` (NULL: the defaults). Returns 0, or an EW_E*
 * code with a sentence in msg (unknown metric or parameter, a series name twice, a source the
 * metric does not take) and st unchanged. */
int ewd_eval_set(ewd_stream_t *st, const ewp_evals_t *evals, char *msg, size_t cap);
/* True when `evals` (NULL: the defaults) is what st evaluates now (create's idempotence). */
bool ewd_eval_same(const ewd_stream_t *st, const ewp_evals_t *evals);
/* A step of st completed (its apply jobs are queued): evaluates what is due at it. */
void ewd_eval_step(struct ewd_server *srv, ewd_stream_t *st, const ewd_point_t *pt);
/* Rows of a stream without steps were applied: evaluates what every_rows makes due. */
void ewd_eval_rows(struct ewd_server *srv, ewd_stream_t *st);
/* The scheduled metrics as a list of maps {metric, every | every_rows | every_s, params, source,
 * center} and the evaluation counters (info). `arena` keeps the values' storage: free it with
 * free() after packing. */
ewp_value_t ewd_eval_value(const ewd_stream_t *st, void **arena);
/* The latest evaluated value of one scheduled scalar metric (list metrics are not kept). */
typedef struct {
  const char *metric;   /* the series name */
  double value;
  uint64_t step;
  bool partial;
} ewd_latest_t;
/* What st evaluated last: up to cap scalar values into out (returns how many), and, when not
 * NULL, *time the Unix seconds of the newest point (0: none yet), *lag its lag (s), *coalesced
 * the due evaluations coalesced away so far. Owner: the loop. */
size_t ewd_eval_latest(const ewd_stream_t *st, ewd_latest_t *out, size_t cap, double *time,
                       double *lag, uint64_t *coalesced);
/* The eval specs in the snapshot's training block: writes at most cap bytes to out and returns
 * the length (0: the defaults, or more than cap would take), or reads them back (false: not a
 * valid list; st unchanged). The blob is self-contained; load reads today's layout (with series
 * names) and the one before (eval_save.c). */
size_t ewd_eval_save(const ewd_stream_t *st, char *out, size_t cap);
bool ewd_eval_load(ewd_stream_t *st, const char *b, size_t n);
void ewd_eval_free(ewd_eval_t *ev);
/* st's series names (its eval list, or the defaults) into out as "a, b, c" (cut at cap bytes,
 * always terminated when cap > 0). Returns how many series st has. */
size_t ewd_eval_names(const ewd_stream_t *st, char *out, size_t cap);
/* Starts / stops the every_s timer. */
void ewd_eval_start(struct ewd_server *srv);
void ewd_eval_stop(struct ewd_server *srv);

/* ---- history.c (owner: the loop; SQLite on its own I/O thread) ---- */
typedef struct ewd_history ewd_history_t;
/* One evaluated value of a point. */
typedef struct ewd_hvalue {
  const char *metric;     /* the series name (an eval entry's `as`, default its metric's) */
  const ew_result_t *res; /* scalar or list (vectors are not kept); an estimate's error and
                             bracket go with it */
} ewd_hvalue_t;
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

/* ---- alerts.c, subs.c (owner: the loop) ---- */
typedef struct ewd_subs ewd_subs_t;
/* True when st evaluates the series `series` (its eval list, or the defaults). */
bool ewd_eval_has(const ewd_stream_t *st, const char *series);
/* Replaces st's rules (their states start over). A metric rule's `metric` names a series of st's
 * eval list. Returns 0, or an EW_E* code with a sentence (UNKNOWN_METRIC: neither a series of
 * st nor a metric; BAD_PARAM: a metric st does not evaluate under that name, or drop rules
 * keeping more than EWD_ALERTS_RING_MAX points in all) and st unchanged. */
int ewd_alerts_set(ewd_stream_t *st, const ewp_rules_t *rules, char *msg, size_t cap);
void ewd_alerts_free(ewd_alerts_t *a);
/* An evaluated point of st: checks its metric rules and notifies the subscribers. A rule whose
 * state moved (firing, its last value, a drop rule's window, a baseline) counts as a change of
 * st (st->changes), so that the next snapshot round saves it. */
void ewd_alerts_point(struct ewd_server *srv, ewd_stream_t *st, const ewd_point_t *pt,
                      const ewd_hvalue_t *hv, size_t n);
/* A batch into st was accepted (rc 0) or refused (rc): the non_finite rules. */
void ewd_alerts_batch(struct ewd_server *srv, ewd_stream_t *st, int rc);
/* The stale rules (called four times a second). */
void ewd_alerts_tick(struct ewd_server *srv);
/* st's rule count, and rule i as the `alerts` method shows it (kv: EWD_ALERT_KV entries). */
#define EWD_ALERT_KV 10
size_t ewd_alerts_count(const ewd_stream_t *st);
ewp_value_t ewd_alert_value(const ewd_stream_t *st, size_t i, ewp_kv_t *kv);
/* Rule i of st: its name, what it watches (a metric's name, or "" for stream rules), its `when`,
 * and whether it fires now. */
void ewd_alert_state(const ewd_stream_t *st, size_t i, const char **rule, const char **metric,
                     const char **when, bool *firing);
/* The rules in the snapshot's training block, each with its state (firing or ok, the step and
 * time it fired, its last value, a drop rule's recent values, a baseline's sum), so that a rule
 * firing at a stop is still firing after the restart and does not fire again: as
 * ewd_eval_save/_load (0: no rules, or more than cap would take; the drop rules' values are
 * bounded so that a stream's rules save within EWD_ALERTS_SAVED_MAX bytes). Call save on the
 * loop thread, which owns the states (persist.c takes the copy when it queues the snapshot; a
 * state that moves later marks the stream changed, so the next round saves it again). Load
 * reads today's layout and the one before (rules only: their states start over). */
#define EWD_ALERTS_RING_MAX 32768
#define EWD_ALERTS_SAVED_MAX (EWD_ALERTS_RING_MAX * 8 + EWP_RULES_MAX * 256)
/* The most bytes an eval list saves in (ewd_eval_save's layout 3: per entry its series, metric,
 * source, centring, schedule, parameters (a string at most EWP_PARAM_STR_MAX) and its place in
 * the schedule; then the row count and time of the latest point). */
#define EWD_EVAL_SAVED_MAX                                                                        \
  (2 + 16 + EWP_EVAL_MAX * (1 + EWP_SERIES_MAX + 1 + 64 + 2 + 24 + 1 + 33 +                      \
                            EW_METRIC_MAX_PARAMS * (1 + 32 + 8 + 2 + EWP_PARAM_STR_MAX)))
size_t ewd_alerts_save(const ewd_stream_t *st, char *out, size_t cap);
bool ewd_alerts_load(ewd_stream_t *st, const char *b, size_t n);
/* A subscription of connection c. Its `metrics` are series names: each must be a metric of the
 * table or a series of a stream the subscription matches now. Returns 0 with *id, or
 * EW_EUNKMETRIC / EW_ELIMIT / EW_ENOMEM with a sentence. */
int ewd_subs_add(struct ewd_server *srv, ewd_conn_t *c, const ewp_subscribe_req_t *r,
                 uint64_t *id, char *msg, size_t cap);
/* Removes c's subscription id. Returns false when c has none by that id. */
bool ewd_subs_remove(struct ewd_server *srv, ewd_conn_t *c, uint64_t id);
size_t ewd_subs_count(struct ewd_server *srv);
/* A gauge refresher (ewd_stats_gauge, registered by main): the subscription count into stat. */
void ewd_subs_gauges(struct ewd_server *srv);
void ewd_subs_free(struct ewd_server *srv);

/* ---- persist.c, restore.c (owner: the loop; file I/O on libuv's worker threads, one operation
 * at a time; restore runs on the main thread before anything listens) */
typedef struct ewd_persist ewd_persist_t;
typedef struct {
  size_t written, failed; /* streams */
  uint64_t bytes;
  double seconds;
  char first_error[240];  /* the first failure's sentence ("" = none) */
} ewd_round_t;
typedef void (*ewd_round_cb)(void *arg, const ewd_round_t *r);
/* Prepares <state_dir>/streams and /quarantine, removes leftover temp files and restores every
 * snapshot into the registry (a bad file is logged and moved to quarantine/, the rest load).
 * Runs at start, before anything listens. Returns 0, or -1 when the directories cannot be made. */
int ewd_persist_open(struct ewd_server *srv);
/* Starts the snapshot_interval timer. */
void ewd_persist_start(struct ewd_server *srv);
/* Snapshots every stream changed since its last snapshot (each copied on its own math turn,
 * written atomically); cb (may be NULL) runs on the loop once all are durable. A round asked for
 * while one runs follows it (and sees every change submitted before it was asked for). */
void ewd_persist_round(struct ewd_server *srv, ewd_round_cb cb, void *arg);
/* The stream is being dropped: its snapshot file is deleted (after any write in flight). */
void ewd_persist_forget(struct ewd_server *srv, ewd_stream_t *st);
/* Stops the timer and frees what persist holds (after the last round and write). */
void ewd_persist_close(struct ewd_server *srv);

/* ---- the server (owner: the loop) ---- */
typedef struct ewd_net ewd_net_t;

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
  /* what the rooms above core add to stat at a refresh (their gauges): ewd_stats_gauge */
  void (*gauges[EWD_GAUGES_MAX])(struct ewd_server *srv);
  size_t ngauges;
  uv_timer_t eval_timer;  /* every_s evaluations (eval.c) and stale alerts (alerts.c) */
  ewd_subs_t *subs;       /* subscriptions (alerts.c) */
  uint64_t stat[EWD_STAT_COUNT];
  uint64_t errors[64];   /* by -(code - EW__ERR_BASE) */
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
/* Notes that `bytes` of heap were freed; a large total schedules a malloc_trim shortly. */
void ewd_server_freed(ewd_server_t *srv, size_t bytes);
/* Fills the gauge rows of srv->stat from the live state: core's own, then each registered
 * refresher's (ewd_stats_gauge). */
void ewd_stats_refresh(ewd_server_t *srv);
/* Registers fn to fill a room's gauges at every refresh (history's counters, subscriptions).
 * Returns 0, or -1 when EWD_GAUGES_MAX are registered already (a programming error: logged). */
int ewd_stats_gauge(ewd_server_t *srv, void (*fn)(ewd_server_t *srv));

#endif
