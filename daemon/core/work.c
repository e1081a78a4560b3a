/* work.c — what a math thread does with a job (pool.c decides when): the ingest's apply, a
 * query's metrics, a step's TAIL and ADOPT, the saves and merges their rooms set up, and a
 * scheduled evaluation's two halves — FORK on the stream's turn (the metrics that need no
 * eigensolve, and a snapshot of what the others read) and EVAL on the snapshot, on any thread.
 * After a job it gives back the thread's scratch, except where the next job of the same kind
 * reuses it (ingest, TAIL, FORK: a fresh 16 MiB of rows for l2_std cost 27 ms of page faults). */
#include "core/ewd.h"

#include <stdio.h>
#include <stdlib.h>

/* Where a job's metrics are answered: the stream itself, or a snapshot of it. */
typedef int (*answer_fn)(void *from, const ew_query_t *q, ew_result_t *out);
static int on_stream(void *s, const ew_query_t *q, ew_result_t *out) {
  return ew_stream_query(s, q, out);
}
static int on_snapshot(void *sn, const ew_query_t *q, ew_result_t *out) {
  return ew_snapshot_query(sn, q, out);
}

static ew_query_t query_of(const ewd_qmetric_t *m) {
  return (ew_query_t){.metric = m->name, .params = m->params, .nparams = m->nparams,
                      .center = m->center, .source = m->source, .max_lag = 0,
                      .window_rows = m->window_rows, .method = m->method};
}

/* Computes the metrics of `mask` (bit i: job->metrics[i]) from `from` into job->results. A query
 * stops at the first failure (job->rc and message say which); an evaluation keeps each metric's
 * own code in its result. */
static void run_metrics(ewd_job_t *job, answer_fn answer, void *from, uint64_t mask,
                        bool stop_on_error) {
  if (!job->results && !(job->results = calloc(job->nmetrics, sizeof(ew_result_t)))) {
    job->rc = EW_ENOMEM;
    snprintf(job->message, sizeof job->message, "out of memory");
    return;
  }
  for (size_t i = 0; i < job->nmetrics; i++) {
    if (i < 64 && !((mask >> i) & 1)) /* an evaluation has at most EWP_EVAL_MAX metrics */
      continue;
    ewd_qmetric_t *m = &job->metrics[i];
    ew_query_t q = query_of(m);
    int rc = answer(from, &q, &job->results[i]);
    if (rc && stop_on_error) {
      job->rc = rc;
      snprintf(job->message, sizeof job->message, "%.40s: %.150s", m->name,
               job->results[i].message);
      return;
    }
  }
}

/* True for a metric an evaluation answers on a snapshot, off the stream's path: one that needs
 * an eigensolve (all eigenvalues, or the top ones), or the window's matrix when the window does
 * not keep its moments on the metric's rows (building them is a pass over the rows). The others
 * — the live estimate, metrics of the rows, O(d²) reads of kept moments or of all — are answered
 * on the stream's turn. */
static bool solves(ew_stream_t *s, const ewd_qmetric_t *m) {
  const ew_metric_info_t *info = ew_metric_find(m->name);
  if (!info || (info->needs & EW_NEED_LIVE))
    return false;
  if (info->needs & (EW_NEED_EIGENVALUES | EW_NEED_TOP))
    return true;
  ew_source_t src = m->source == EW_SOURCE_DEFAULT ? info->def_source : m->source;
  uint64_t held = ew_stream_window_count(s);
  uint64_t rows = m->window_rows && m->window_rows < held ? m->window_rows : held;
  return src == EW_SOURCE_WINDOW && (info->needs & (EW_NEED_MATRIX | EW_NEED_DIAG)) &&
         rows >= ew_stream_config(s)->dim && !ew_stream_window_kept(s, rows);
}

/* An evaluation's first half, in the stream's order: the metrics that need no eigensolve now, and
 * a snapshot of what the others read (ew_stream_snapshot: the recent view's moments, O(d²)) for
 * an EVAL job to solve on any thread; with inline_eval (no room for the snapshot), or when the
 * snapshot cannot be taken, every metric now. */
static void run_fork(ewd_job_t *job, ew_stream_t *s) {
  double t0 = ewd_now();
  uint64_t all = job->nmetrics >= 64 ? ~0ull : (1ull << job->nmetrics) - 1, heavy = 0;
  for (size_t i = 0; i < job->nmetrics && !job->inline_eval; i++)
    if (solves(s, &job->metrics[i]))
      heavy |= 1ull << i;
  run_metrics(job, on_stream, s, all & ~heavy, false);
  job->cheap_ms = 1e3 * (ewd_now() - t0);
  if (!heavy)
    return;
  ew_query_t qs[64];
  size_t nq = 0;
  for (size_t i = 0; i < job->nmetrics; i++)
    if ((heavy >> i) & 1)
      qs[nq++] = query_of(&job->metrics[i]);
  double t1 = ewd_now();
  if (ew_stream_snapshot(s, qs, nq, &job->snap) == 0) {
    job->snap_mask = heavy;
    job->snap_bytes = ew_snapshot_bytes(job->snap);
    job->snap_ms = 1e3 * (ewd_now() - t1);
    return;
  }
  job->inline_eval = true; /* the loop logs it */
  run_metrics(job, on_stream, s, heavy, false);
}

/* A batch of rows, with labels or without, that st does not take (its first batch decided
 * whether it is labelled; labels need a window): true with the sentence. */
static bool labels_refused(const ewd_stream_t *st, bool labels, char *msg, size_t cap) {
  int have = ew_stream_labelled(st->s);
  if (labels && have < 0)
    snprintf(msg, cap, "'labels' ride with the window's rows, and stream '%.64s' keeps no window "
             "(create it with window > 0)", st->name);
  else if (labels && have == 0)
    snprintf(msg, cap, "stream '%.64s' holds rows without labels: its first batch decided that it "
             "has none", st->name);
  else if (!labels && have == 1)
    snprintf(msg, cap, "stream '%.64s' is labelled: every batch of rows carries 'labels' (one u32 "
             "per row)", st->name);
  else
    return false;
  return true;
}

void ewd__job_run(ewd_job_t *job) {
  ewd_stream_t *st = job->st;
  double t0 = ewd_now();
  if ((job->kind == EWD_JOB_QUERY || job->kind == EWD_JOB_CALL ||
       (job->kind == EWD_JOB_SAVE && job->conn)) && job->gone &&
      atomic_load(job->gone)) {
    job->skipped = true;
    return;
  }
  switch (job->kind) {
  case EWD_JOB_INGEST:
    if (job->rc == 0 && job->batch && !job->plen &&
        labels_refused(st, job->labels != NULL, job->message, sizeof job->message))
      job->rc = EW_EBADPARAM;
    if (job->rc == 0 && job->batch)
      job->rc = ew_stream_apply(st->s, job->batch);
    if (job->rc && !job->message[0]) /* a tokens batch's prepare wrote its own sentence */
      snprintf(job->message, sizeof job->message, "%s", ew_strerror(job->rc));
    ew_batch_free(job->batch);
    job->batch = NULL;
    break;
  case EWD_JOB_QUERY:
    run_metrics(job, on_stream, st->s, ~0ull, true);
    break;
  case EWD_JOB_TAIL: /* the recent view's moments follow its steps (recent.c); a tokens
                       stream's step goes into its sketches */
    if (st->s && st->cfg.stream_kind == EW_STREAM_TOKENS)
      (void)ew_stream_settle(st->s); /* on failure: when the step leaves the window */
    else if (st->s) /* on failure: built when read */
      (void)ew_stream_window_tail(st->s, job->tail_rows);
    break;
  case EWD_JOB_ADOPT: /* the moments an evaluation's snapshot built, taken back (recent.c) */
    job->rc = st->s && ew_stream_window_adopt(st->s, job->snap) ? 0 : EW_EBADPARAM;
    ew_snapshot_free(job->snap);
    job->snap = NULL;
    break;
  case EWD_JOB_RESET:
    ew_stream_reset(st->s);
    break;
  case EWD_JOB_FREE:
    ew_stream_free(st->s);
    st->s = NULL;
    break;
  case EWD_JOB_SAVE:
  case EWD_JOB_MERGE:
  case EWD_JOB_CALL:
    job->work(job, st);
    break;
  case EWD_JOB_FORK:
    run_fork(job, st->s);
    break;
  case EWD_JOB_EVAL: /* the snapshot only: the stream itself may be running elsewhere */
    run_metrics(job, on_snapshot, job->snap, job->snap_mask, false);
    ew_thread_scratch_release(); /* the snapshot goes back to the loop (eval.c: adopted or freed) */
    job->elapsed_ms = 1e3 * (ewd_now() - t0);
    return;
  case EWD_JOB_CHECK: /* a step's rows: refused now if bad, prepared when the step completes */
    if (job->data && job->plen) /* a tokens batch: the library's sentence names the column */
      job->rc = ew_tokens_check(st->s, job->data, job->plen, job->message, sizeof job->message);
    else if (job->data &&
             (job->rc = ew_batch_check(st->s, job->data, job->dtype, job->n, job->d)))
      snprintf(job->message, sizeof job->message, "%s", ew_strerror(job->rc));
    else if (job->data && labels_refused(st, job->labels != NULL, job->message,
                                         sizeof job->message))
      job->rc = EW_EBADPARAM;
    break;
  }
  if (job->kind != EWD_JOB_INGEST && job->kind != EWD_JOB_CHECK && job->kind != EWD_JOB_TAIL &&
      job->kind != EWD_JOB_FORK && job->kind != EWD_JOB_ADOPT)
    ew_thread_scratch_release(); /* each step's TAIL and FORK reuse it, as ingest does (a fresh
                                    16 MiB of rows for l2_std cost 27 ms of page faults) */
  if (st->s) {
    job->count_after = ew_stream_count(st->s);
    job->memory_after = ewd_stream_state_bytes(st->s);
    job->window_after = ew_stream_window_bytes(st->s);
  }
  job->elapsed_ms = 1e3 * (ewd_now() - t0);
}

