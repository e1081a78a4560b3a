/* run.h — the run room's contract with the rooms above it (store/, cmd/, net/, main): training
 * steps (staging, completion, the saved staging), the recent view's ring, merges of recent views
 * by steps, scheduled evaluation and its series, alert rules and subscriptions. Everything here
 * is owned by the loop thread. run/ calls only core/; what it produces goes up through the slots
 * core gives it (srv->keep_point for evaluated points, conn_hooks for subscribers). */
#ifndef EWD_RUN_H
#define EWD_RUN_H

#include "core/ewd.h"

/* ---- recent.c, merge_plan.c ---- */
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
/* Queues a TAIL job keeping the window's moments on the recent view's rows: before == true (ahead
 * of a completed step's batches) on the rows of the steps that stay, else on the last
 * window_steps steps' rows. Only for window_steps streams whose evaluation reads the window. */
void ewd_recent_follow(struct ewd_server *srv, ewd_stream_t *st, bool before);
/* After an evaluation: while the recent view's moments are stale, hands the snapshot (whose
 * queries built its moments) to an ADOPT job that gives them to the window, so that TAILs resume
 * from them. True when it took *snap (then NULL; its `bytes` stay counted in eval_bytes until
 * the job is done). */
bool ewd_recent_adopt(struct ewd_server *srv, ewd_stream_t *st, ew_snapshot_t **snap,
                      size_t bytes);
/* Sets window_steps (allocating its ring). Returns 0 or -1 (memory). */
int ewd_recent_steps(ewd_stream_t *st, uint32_t window_steps);
/* Recent streams without an explicit window get EWD_RECENT_WINDOW rows up to d = 4096, and
 * 64 MiB of f32 rows above it (2048 at d = 8192, 1024 at 16384; at least 256): the recent view at
 * any d within a bounded budget (a window of fewer rows than d keeps rows only). */
#define EWD_RECENT_WINDOW 4096
#define ewd_recent_window(d)                                                                      \
  ((d) <= 4096 ? (size_t)EWD_RECENT_WINDOW                                                        \
               : ((size_t)1 << 24) / (d) > 256 ? ((size_t)1 << 24) / (d) : (size_t)256)

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
/* Sets the run room up in a new server: the step timer (ewd_steps_start) and the subscriptions'
 * gauge (ewd_stats_gauge). Called once, before the loop runs (main, and the fuzz harness). */
void ewd_run_init(struct ewd_server *srv);
/* Starts / stops the timer that completes timed-out steps. */
void ewd_steps_start(struct ewd_server *srv);
void ewd_steps_stop(struct ewd_server *srv);

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
/* True when st's eval list (its own, or the defaults) has a metric on a window source. */
bool ewd_eval_reads_window(ewd_stream_t *st);
/* Rows of a stream without steps were applied: evaluates what every_rows makes due. */
void ewd_eval_rows(struct ewd_server *srv, ewd_stream_t *st);
/* The scheduled metrics as a list of maps {metric, every | every_rows | every_s, params, source,
 * center} and the evaluation counters (info). `arena` keeps the values' storage: free it with
 * ewd_eval_arena_free() after packing. */
ewp_value_t ewd_eval_value(const ewd_stream_t *st, void **arena);
/* Frees what ewd_eval_value put in *arena (NULL is allowed). */
void ewd_eval_arena_free(void *arena);
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

/* One evaluated value of a point. */
typedef struct ewd_hvalue {
  const char *metric;     /* the series name (an eval entry's `as`, default its metric's) */
  const ew_result_t *res; /* scalar or list (vectors are not kept); an estimate's error and
                             bracket go with it */
} ewd_hvalue_t;

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
#define EWD_ALERT_KV 11
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

/* ---- alert_events.c: what the rules did (loop thread) ----
 * Every change of a rule's state (fired, resolved) is an event, kept in a ring of the last
 * EWD_ALERT_EVENTS_MAX (the `alerts` method's `events`, the page) and handed to srv->keep_event
 * (store's history keeps them in history.db, and gives them back at start). An event outlives
 * its stream. */
#define EWD_ALERT_EVENTS_MAX 512
#define EWD_EVENT_MSG_MAX 400
typedef struct ewd_alert_event {
  double time; /* Unix seconds */
  char run[EWD_NAME_MAX + 1], stream[EWD_NAME_MAX + 1], rule[EWP_RULE_NAME_MAX + 1];
  bool firing;   /* fired; else resolved */
  bool has_step; /* a metric rule's step (stream rules: none) */
  uint64_t step;
  double value;
  char message[EWD_EVENT_MSG_MAX];
} ewd_alert_event_t;
/* Adds e to the ring (the oldest goes past EWD_ALERT_EVENTS_MAX); with keep, also to
 * srv->keep_event. Out of memory: the event is logged only (the log line says it anyway). */
void ewd_alert_event(struct ewd_server *srv, const ewd_alert_event_t *e, bool keep);
/* The events held, oldest first: *n of them; ewd_alert_event_at(srv, i) is the i-th. */
size_t ewd_alert_events_count(const struct ewd_server *srv);
const ewd_alert_event_t *ewd_alert_event_at(const struct ewd_server *srv, size_t i);
void ewd_alert_events_free(struct ewd_server *srv);

#endif
