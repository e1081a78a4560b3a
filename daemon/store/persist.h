/* persist.h — what persist.c (snapshot rounds, the I/O queue) and restore.c (restore at start,
 * quarantine, the state-dir lock) share: the snapshot file's constants and the persist struct
 * (owner: the loop thread; an operation is handed to one worker thread while it runs). */
#ifndef EWD_PERSIST_H
#define EWD_PERSIST_H

#include "run/run.h"

#include <limits.h>

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

/* The math-thread halves of SAVE (the state after job->prefix, with job->train as its tRUN
 * section, into job->out) and MERGE (job->data loaded and folded into st, or job->rc and
 * job->message say why not): state_jobs.c, run by pool.c on the stream's turn. */
void ewd_run_save(ewd_job_t *job, ewd_stream_t *st);
void ewd_run_merge(ewd_job_t *job, ewd_stream_t *st);
/* The sentence for a merge of a sketched state into an exact stream or the reverse (both
 * configurations valid, ew_config_sketched differing): static text (daemon/cmd/state.c). */
const char *ewd_merge_kind_mismatch(const ew_config_t *dst, const ew_config_t *src);


#define SNAP_MAGIC "EWSNAP\0"
#define SNAP_VERSION 4u /* 4: the training block is the state's tRUN section; 3: in the header
                           (2: without the eval list; 1: none): all still read */
#define SNAP_TRAIN_MAX (1u << 20) /* a header's training block (versions 2, 3): its largest */
#define SNAP_KEY_MAX 1024
#define SNAP_EXT ".ews"

/* The key a snapshot header holds and its file name hashes: the stream name for the default run
 * (the form before runs existed, so those files keep their names), else run, a zero byte,
 * stream. Writes it to out (room for 2 * (EWD_NAME_MAX + 1) bytes) and returns its length. */
size_t ewd_snap_key(const ewd_stream_t *st, char *out);
/* Splits a header key back into a registry key (borrowing key's bytes). Returns false when
 * either part is not a valid name. */
bool ewd_snap_key_parse(const char *key, size_t klen, ewd_key_t *out);

/* The training block of a version-2 header: world, step_timeout, first and last completed
 * steps, each producer's last applied seq, recent, window_steps and its ring of step rows. Writes it to out (cap bytes: ewd_snap_train_bound) and
 * returns its length. */
size_t ewd_snap_train(const ewd_stream_t *st, char *out, size_t cap);
/* The most bytes ewd_snap_train can write for st (its producers, its ring, the largest eval list
 * and rule set): the cap to give it. */
size_t ewd_snap_train_bound(const ewd_stream_t *st);
/* Reads a training block into st (restore): a header's (versions 2 and 3: the ring of step rows
 * without step numbers, which read as EWD_STEP_UNKNOWN) or, with section, a tRUN section's
 * (each ring entry u64 rows then u64 step). Returns false, with st unchanged, when it is not
 * one (lengths or values out of range). */
bool ewd_snap_train_parse(const char *b, size_t n, ewd_stream_t *st, bool section);

/* The training block's tag among the saved state's sections (ew_stream_save_ex): one saved form
 * carries the stream and its training block, for snapshots, `export` and `merge` alike. */
#define EWD_TAG_TRAIN EW_TAG('t', 'R', 'U', 'N')
/* The staging's tag (run/steps_save.c): the steps not completed yet, after tRUN. */
#define EWD_TAG_STAGE EW_TAG('t', 'S', 'T', 'G')
/* st's training block, malloc'ed (*len bytes), or NULL when out of memory. */
char *ewd_train_bytes(const ewd_stream_t *st, size_t *len);
/* Gives a SAVE job st's sections as they are now: j->train (tRUN) and, when st has staging worth
 * saving, j->stage (tSTG), both malloc'ed and owned by the job. Returns 0, or -1 when out of
 * memory (the job then holds neither). Loop thread. */
int ewd_train_attach(const ewd_stream_t *st, ewd_job_t *j);
/* An ew_section_fn: parses a tRUN section, then a tSTG section, into ctx (an ewd_stream_t
 * holding only training fields); other embedders' sections are skipped. Refuses (with the
 * sentence) a block that is not one, or a tSTG before tRUN. */
int ewd_train_section(void *ctx, uint32_t tag, const void *data, size_t len, char *msg,
                      size_t cap);
/* A holder of training fields (ewd_train_section's ctx): its defaults, and freeing what a parse
 * gave it. */
void ewd_train_init(ewd_stream_t *t);
/* Gives st every training field t holds (st's own are freed; t is left empty): a restored or
 * merge-created stream takes its saved training block whole. */
void ewd_train_move(ewd_stream_t *st, ewd_stream_t *t);
void ewd_train_release(ewd_stream_t *t);
/* Sets the store room up in a new server: the registry's `release` (ewd_train_free_fields), so
 * that a stream's last reference frees what store/ and run/ keep of it. Called once, before the
 * first stream is registered (main before restore; the fuzz harness). */
void ewd_store_init(struct ewd_server *srv);
/* Frees a stream's training fields (staging, producers, ring, eval list, rules) and leaves them
 * NULL; nothing else of st is touched. The registry's `release` (set by main): a stream's last
 * reference going calls it. */
void ewd_train_free_fields(ewd_stream_t *st);

typedef struct ewd_op {
  struct ewd_op *next;
  uv_work_t work;
  ewd_persist_t *p;
  bool is_write;       /* else a delete */
  ewd_stream_t *st;    /* write: referenced until the write is done */
  char path[PATH_MAX + 48], tmp[PATH_MAX + 56];
  char *buf;
  size_t len;
  uint64_t changes_at;
  double copy_ms;      /* the SAVE job's time on its math thread */
  double write_ms;     /* open to directory fsync, on the worker thread */
  int err;             /* errno of the step that failed */
  const char *step;
} ewd_op_t;

typedef struct ewd_waiter {
  struct ewd_waiter *next;
  ewd_round_cb cb;
  void *arg;
} ewd_waiter_t;

struct ewd_persist {
  ewd_server_t *srv;
  char dir[PATH_MAX];   /* <state_dir>/streams */
  char qdir[PATH_MAX];  /* <state_dir>/quarantine */
  uv_timer_t tick;      /* once a second: is a round due? */
  uv_timer_t kick;      /* starts an asked-for round from the loop, never inside the asker */
  double last_round;    /* monotonic start of the last round */
  ewd_op_t *io_head, *io_tail;
  bool io_busy;
  bool active;          /* a round runs */
  bool draining;        /* its snapshots are taken; earlier deletes are still being done */
  ewd_stream_t **round_st; /* the round's streams (changed since their last snapshot), each
                              referenced until its copy is queued */
  size_t round_n, round_at;  /* how many, and the next to copy */
  ewd_round_t res;
  double t0;
  ewd_waiter_t *cur, *next; /* callbacks of this round, and of the one asked for meanwhile */
  bool again;
  char **reserved;      /* names of files left in place at start (not loaded) */
  size_t nreserved;
  bool closing;
  int open_handles;
};

#endif
