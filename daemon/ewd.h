/* ewd.h — what the daemon's files share. The daemon is one libuv loop thread that owns every
 * socket and every piece of registry state, plus a small pool of math threads that own every
 * BLAS/LAPACK call (worker.c). Files:
 *   main.c      flags, config file, limits, signals, start and graceful stop
 *   log.c       logfmt lines to stderr
 *   server.c    listeners, connections, the read → skim → decode → dispatch path, replies,
 *               backpressure; knows nothing of eigenvalues
 *   commands.c  the method table and every handler (parameter checks, replies)
 *   registry.c  named streams: lookup, create, drop, loop-side mirrors and result cache
 *   worker.c    the math threads and the per-stream job queues
 */
#ifndef EWD_H
#define EWD_H

#include "eigenwatch.h"
#include "ew_proto.h"

#include <msgpack.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#define EWD_NAME_MAX 200

/* ---- log.c ---- */
typedef enum { EWD_LOG_ERROR = 0, EWD_LOG_WARN, EWD_LOG_INFO, EWD_LOG_DEBUG } ewd_log_level_t;
extern ewd_log_level_t ewd_log_level;
/* Writes one logfmt line: ts=... level=... msg="..." then the caller's key=value text. */
void ewd_log(ewd_log_level_t lvl, const char *msg, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
int ewd_log_parse_level(const char *s, ewd_log_level_t *out);

/* ---- limits and configuration ---- */
typedef struct {
  ew_skim_limits_t skim;     /* message bytes, depth, elements */
  size_t max_streams;        /* default 1024 */
  size_t max_memory;         /* bytes of accumulator state across streams; default 8 GiB */
  size_t max_connections;    /* default 4096 */
  size_t conn_high_water;    /* queued ingest bytes per connection before reads pause: 32 MiB */
  int math_threads;          /* default 2 */
  int blas_threads;          /* OpenBLAS threads per math thread; default 1 */
} ewd_limits_t;

/* ---- registry.c ---- */
typedef struct ewd_job ewd_job_t;

typedef struct {
  char *key;        /* canonical "metric|center|source|p=v,..." */
  ew_result_t res;  /* owned copy */
} ewd_cached_t;

typedef struct ewd_stream {
  char name[EWD_NAME_MAX + 1];
  ew_stream_t *s;        /* touched only by a worker while one of its jobs runs */
  ew_config_t cfg;       /* immutable copy, read on the loop */
  /* loop-side mirrors, updated when jobs complete */
  uint64_t count;
  size_t memory;
  double last_ingest;    /* unix seconds, 0 = never */
  int refs;              /* the registry's reference + one per job in flight (loop only) */
  size_t queued_bytes;   /* ingest payload bytes queued (loop only) */
  size_t queued_jobs;
  /* worker queue: guarded by the pool mutex */
  ewd_job_t *qhead, *qtail;
  bool scheduled;
  struct ewd_stream *ready_next;
  /* result cache (loop only) */
  ewd_cached_t *cache;
  size_t ncache, capcache;
} ewd_stream_t;

typedef struct {
  ewd_stream_t **items;
  size_t n, cap;
  size_t memory;         /* Σ mirrors */
} ewd_registry_t;

/* Valid stream name: 1..200 bytes of [A-Za-z0-9_.:/-]. */
bool ewd_name_valid(const char *p, size_t n);
ewd_stream_t *ewd_registry_find(ewd_registry_t *r, const char *name, size_t n);
/* Creates and registers a stream; returns EW_ELIMIT when stream count or memory would exceed the
 * limits (message says which), EW_EBADPARAM for a bad config, EW_ENOMEM. */
int ewd_registry_create(ewd_registry_t *r, const ewd_limits_t *lim, const char *name, size_t n,
                        const ew_config_t *cfg, ewd_stream_t **out, char *msg, size_t msgcap);
/* Removes from the registry (the entry lives on while jobs reference it). */
void ewd_registry_remove(ewd_registry_t *r, ewd_stream_t *st);
void ewd_stream_unref(ewd_stream_t *st);
/* Estimated bytes of a stream with this config (for the memory limit, before allocating). */
size_t ewd_config_memory(const ew_config_t *cfg);
/* Result cache (loop side) */
const ew_result_t *ewd_cache_get(ewd_stream_t *st, const char *key);
void ewd_cache_put(ewd_stream_t *st, const char *key, const ew_result_t *res);
void ewd_cache_clear(ewd_stream_t *st);
void ewd_registry_free(ewd_registry_t *r);

/* ---- worker.c ---- */
typedef enum { EWD_JOB_INGEST, EWD_JOB_QUERY, EWD_JOB_RESET, EWD_JOB_FREE } ewd_job_kind_t;

typedef struct {
  char *name;           /* metric */
  char *key;            /* cache key */
  ew_param_t params[EW_METRIC_MAX_PARAMS];
  char *pkeys[EW_METRIC_MAX_PARAMS];
  size_t nparams;
} ewd_qmetric_t;

struct ewd_conn;

typedef enum { EWD_JOB_READY = 0, EWD_JOB_NEEDS_PREPARE, EWD_JOB_PREPARING } ewd_job_state_t;

struct ewd_job {
  ewd_job_t *next;       /* the stream's FIFO, then the done list */
  ewd_job_t *prep_next;  /* the pool's prepare list */
  ewd_job_state_t state;
  ew_batch_t *batch;     /* ingest: prepared on any math thread, applied in stream order */
  ewd_job_kind_t kind;
  ewd_stream_t *st;
  struct ewd_conn *conn;   /* NULL when nobody waits for the answer */
  uint64_t msgid;
  bool notify;
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
  ew_source_t source;
  ew_result_t *results;
  double elapsed_ms;
  /* after the job: mirrors */
  uint64_t count_after;
  size_t memory_after;
  void (*done)(ewd_job_t *job); /* runs on the loop thread */
};

typedef struct ewd_pool ewd_pool_t;
/* Starts n math threads, each calling openblas_set_num_threads(blas) first. Completed jobs come
 * back to the loop through an async handle and have job->done called there. */
int ewd_pool_start(ewd_pool_t **out, uv_loop_t *loop, int n, int blas);
/* Queues a job behind the stream's earlier jobs (per-stream FIFO; streams run in parallel). */
void ewd_pool_submit(ewd_pool_t *p, ewd_job_t *job);
/* Jobs queued or running. */
size_t ewd_pool_pending(ewd_pool_t *p);
/* Stops the threads after the queue drains; closes the async handle. */
void ewd_pool_stop(ewd_pool_t *p);
void ewd_job_free(ewd_job_t *job);
void ewd_qmetrics_free(ewd_qmetric_t *ms, size_t n);

/* ---- server.c ---- */
typedef struct {
  uint64_t connections_total, bytes_in, bytes_out, requests, notifications, rows;
  uint64_t errors[64]; /* by -(code - EW__ERR_BASE) */
  double started;
} ewd_stats_t;

typedef struct ewd_server {
  uv_loop_t *loop;
  ewd_limits_t lim;
  ewd_registry_t reg;
  ewd_pool_t *pool;
  ewd_stats_t stats;
  size_t nconns;
  struct ewd_conn *conns; /* intrusive list */
  uv_handle_t **listeners;
  size_t nlisteners;
  bool stopping;
  char **unix_paths;      /* to unlink at exit */
  size_t nunix;
} ewd_server_t;

typedef struct ewd_conn {
  union {
    uv_tcp_t tcp;
    uv_pipe_t pipe;
    uv_stream_t stream;
    uv_handle_t handle;
  } h;
  ewd_server_t *srv;
  struct ewd_conn *prev, *next;
  uint64_t id;
  uint8_t *buf;
  size_t off, len, cap;  /* unconsumed bytes are buf[off, len) */
  ew_skim_t skim;
  ewd_job_t *job;        /* the request whose reply the connection waits for */
  size_t inflight;       /* pipelined ingest notifications not yet applied */
  int refs;              /* 1 for the open handle + 1 per job that names this connection */
  size_t queued_bytes;
  bool reading, closing, close_after_write;
  size_t writes_pending;
} ewd_conn_t;

/* A request being handled: the decoded params and where the reply goes. */
typedef struct {
  ewd_server_t *srv;
  ewd_conn_t *conn;
  uint64_t msgid;
  bool notify;
  const msgpack_object *params; /* the map inside params, or NULL when params was [] */
} ewd_req_t;

int ewd_server_listen(ewd_server_t *srv, const char *spec);
/* Replies (no-op for notifications, which only count the error). */
void ewd_reply_error(ewd_server_t *srv, ewd_conn_t *c, uint64_t msgid, bool notify, int code,
                     const char *fmt, ...) __attribute__((format(printf, 6, 7)));
/* Sends a packed response (takes the sbuffer's data). */
void ewd_reply_send(ewd_conn_t *c, msgpack_sbuffer *sb);
/* Called when a job naming this connection completed: clears the waiting request or one
 * pipelined notification, handles further messages, and drops the job's reference. */
void ewd_conn_job_done(ewd_conn_t *c, bool was_request);
void ewd_conn_ref(ewd_conn_t *c);
void ewd_server_stop(ewd_server_t *srv);
void ewd_count_error(ewd_server_t *srv, int code);

/* ---- commands.c ---- */
typedef enum { EWD_DONE = 0, EWD_PENDING = 1 } ewd_disp_t;
/* Dispatches one decoded message: returns EWD_PENDING when a job now holds the connection. */
ewd_disp_t ewd_dispatch(ewd_server_t *srv, ewd_conn_t *c, const msgpack_object *msg);

double ewd_now(void);

#endif
