/* eval.c — scheduled evaluation (proto/PROTOCOL.md, "Scheduled evaluation and history"): after a step completes, the metrics due at it are
 * computed on the state at that step, and the point goes to the history and the result cache.
 *
 * The state at step s is what the stream's queue holds once s's batches are applied, so the
 * evaluation starts with a FORK job queued right behind them (pool.c). On the stream's turn it
 * answers the metrics that need no eigensolve (trace, participation ratio, l2_std, ...: O(d²)
 * or one pass over the recent rows) and takes a snapshot of what the others read
 * (ew_stream_snapshot: the recent view's moments, kept per completed step by recent.c's TAIL
 * jobs, or its rows when they are fewer than d or while evaluation is behind and the moments
 * are not kept — the solving thread then builds them, and recent.c gives them back to the
 * window) — no copy of the stream's state, nothing serialised. The loop hands the snapshot to an EVAL job that any math thread solves outside
 * the stream's order, whenever no stream job waits, on up to eval_threads threads at once
 * (pool.c). The stream's later batches therefore never wait for an eigensolve. Without room in
 * max_memory for the snapshot, FORK evaluates everything in place (counted: eval_inline).
 *
 * One evaluation per stream is in flight. Steps that come due meanwhile are coalesced: only the
 * latest is kept, and it is evaluated next (on the state at that step: its FORK is queued when
 * the running evaluation ends, behind the batches of every step completed so far, which is that
 * step's state). The point records how many due evaluations it replaced (`skipped`). Each
 * evaluation's cost is kept by part (on the stream's turn, snapshot, solve, write) for `info`
 * and the benchmark. */
#include "run/run.h"
#include "run/eval_priv.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TICK_MS 250

typedef ewd__spec_t spec_t;

/* ---- running an evaluation ---- */

static void start(ewd_server_t *srv, ewd_stream_t *st, ewd_eval_t *ev, const ewd_point_t *pt,
                  uint64_t mask);

/* The metrics of `mask` as a job's metric list (the same keys `query` caches under). */
static ewd_qmetric_t *metrics_of(const ewd_stream_t *st, const ewd_eval_t *ev, uint64_t mask,
                                 size_t *nm) {
  size_t n = 0;
  for (size_t i = 0; i < ev->n; i++)
    n += (mask >> i) & 1;
  ewd_qmetric_t *ms = calloc(n ? n : 1, sizeof *ms);
  if (!ms)
    return NULL;
  size_t k = 0;
  for (size_t i = 0; i < ev->n; i++) {
    if (!((mask >> i) & 1))
      continue;
    const spec_t *sp = &ev->specs[i];
    ewd_qmetric_t *m = &ms[k++];
    m->name = strdup(sp->info->name);
    m->source = sp->source != EW_SOURCE_DEFAULT ? sp->source
                : st->recent && ewd_takes_window(sp->info) ? EW_SOURCE_WINDOW
                                                            : EW_SOURCE_DEFAULT;
    m->window_rows = m->source != EW_SOURCE_ALL ? ewd_recent_rows(st) : 0;
    m->center = sp->center;
    for (size_t p = 0; p < sp->nparams; p++)
      if (ewd_qmetric_param(m, &sp->params[p]))
        m->name = (free(m->name), NULL);
    m->key = ewd_cache_key(sp->info->name, m->center, m->source, m->window_rows, EW_METHOD_AUTO,
                           m->params, m->nparams);
    if (!m->name || !m->key) {
      ewd_qmetrics_free(ms, n);
      return NULL;
    }
  }
  *nm = n;
  return ms;
}

/* What an evaluation produced: the values into the cache, the history and the latest; then the
 * next evaluation if one came due meanwhile. */
static void finish(ewd_job_t *j) {
  ewd_server_t *srv = j->srv;
  ewd_stream_t *st = j->st;
  ewd_eval_t *ev = st->eval;
  if (st->dropped || !ev)
    return;
  ev->busy = false;
  if (j->results) {
    ewd_point_t *pt = j->point;
    ewd_hvalue_t hv[EWP_EVAL_MAX];
    size_t nh = 0, k = 0;
    double lag = ewd_now() - pt->completed;
    for (size_t i = 0; i < ev->n && k < j->nmetrics; i++) {
      if (!((j->evmask >> i) & 1))
        continue;
      spec_t *sp = &ev->specs[i];
      const ew_result_t *res = &j->results[k];
      const ewd_qmetric_t *m = &j->metrics[k++];
      if (res->code) {
        ev->failures++;
        srv->stat[EWD_STAT_eval_failures]++;
        if (!sp->warned)
          ewd_log(EWD_LOG_WARN, "a scheduled metric could not be evaluated (logged once per "
                  "stream and series)", "run=\"%s\" stream=\"%s\" series=%s metric=%s "
                  "step=%llu code=%s reason=\"%s\"", st->run, st->name, sp->series, m->name,
                  (unsigned long long)pt->step, ew_err_name(res->code), res->message);
        sp->warned = true;
        continue;
      }
      ewd_cache_put(st, m->key, res);
      hv[nh++] = (ewd_hvalue_t){sp->series, res}; /* downstream, the series name */
      if (res->kind == EW_VALUE_SCALAR) {
        sp->has_last = true;
        sp->last_value = res->scalar;
        sp->last_step = pt->step;
        sp->last_partial = pt->nmissing > 0;
      }
    }
    ev->evaluations++;
    ev->last_lag = lag;
    ev->last_time = ewd_wall_now();
    ewd_expo_stale(st);
    srv->stat[EWD_STAT_evaluations]++;
    srv->stat[EWD_STAT_eval_lag_ms] = (uint64_t)(1e3 * lag);
    if (nh) {
      pt->lag_s = lag;
      if (srv->keep_point)
        srv->keep_point(srv, st, pt, hv, nh);
      ewd_alerts_point(srv, st, pt, hv, nh);
    }
  }
  if (ev->has_pending) {
    ev->has_pending = false;
    uint64_t mask = ev->pending_mask;
    ev->pending_mask = 0;
    start(srv, st, ev, &ev->pending, mask);
  }
}

static void eval_done(ewd_job_t *j) {
  if (!ewd_recent_adopt(j->srv, j->st, &j->snap, j->snap_bytes))
    j->srv->reg.eval_bytes -= j->snap_bytes;
  if (j->st->eval)
    j->st->eval->cost.solve_ms = j->elapsed_ms;
  double t0 = ewd_now();
  finish(j);
  if (j->st->eval)
    j->st->eval->cost.write_ms = 1e3 * (ewd_now() - t0);
  ewd_job_finish(j);
}

static void fork_done(ewd_job_t *j) {
  ewd_server_t *srv = j->srv;
  ewd_stream_t *st = j->st;
  ewd_job_mirrors(j);
  if (j->point->by_rows) /* the rows queued before the copy, whatever was due */
    j->point->step = j->count_after;
  if (st->eval) {
    st->eval->cost.fork_ms = j->elapsed_ms;
    st->eval->cost.cheap_ms = j->cheap_ms;
    st->eval->cost.snap_ms = j->snap_ms;
    st->eval->cost.snap_bytes = j->snap_bytes;
    st->eval->cost.solve_ms = st->eval->cost.write_ms = 0;
  }
  if (j->snap && !st->dropped) {
    ewd_job_t *e = ewd_job_make(srv, st, EWD_JOB_EVAL, eval_done);
    if (e) {
      e->snap = j->snap, j->snap = NULL;
      e->snap_mask = j->snap_mask;
      e->snap_bytes = j->snap_bytes;
      e->point = j->point, j->point = NULL;
      e->metrics = j->metrics, j->metrics = NULL;
      e->nmetrics = j->nmetrics, j->nmetrics = 0;
      e->results = j->results, j->results = NULL; /* the metrics answered on the stream's turn */
      e->evmask = j->evmask;
      srv->reg.eval_bytes += e->snap_bytes;
      ewd_pool_submit_eval(srv->pool, e);
      ewd_job_finish(j);
      return;
    }
    /* no memory for the job: the snapshot's metrics are not evaluated (each says so) */
    for (size_t i = 0; j->results && i < j->nmetrics; i++)
      if ((j->snap_mask >> i) & 1) {
        j->results[i].code = EW_ENOMEM;
        snprintf(j->results[i].message, sizeof j->results[i].message, "out of memory");
      }
  }
  if (j->inline_eval && st->eval && !st->eval->inline_evals++)
    ewd_log(EWD_LOG_INFO, "evaluating in the stream's queue: no room in max_memory for a "
            "snapshot (logged once per stream)", "run=\"%s\" stream=\"%s\"", st->run, st->name);
  if (j->inline_eval)
    srv->stat[EWD_STAT_eval_inline]++;
  finish(j);
  ewd_job_finish(j);
}

static void start(ewd_server_t *srv, ewd_stream_t *st, ewd_eval_t *ev, const ewd_point_t *pt,
                  uint64_t mask) {
  ewd_job_t *j = ewd_job_make(srv, st, EWD_JOB_FORK, fork_done);
  ewd_point_t *copy = malloc(sizeof *copy);
  ewd_qmetric_t *ms = NULL;
  size_t nm = 0;
  if (!j || !copy || !(ms = metrics_of(st, ev, mask, &nm))) {
    free(j);
    free(copy);
    ev->failures++;
    srv->stat[EWD_STAT_eval_failures]++;
    ewd_log(EWD_LOG_WARN, "out of memory starting an evaluation: the step is not evaluated",
            "run=\"%s\" stream=\"%s\" step=%llu", st->run, st->name, (unsigned long long)pt->step);
    return;
  }
  *copy = *pt;
  j->point = copy;
  j->metrics = ms;
  j->nmetrics = nm;
  j->evmask = mask;
  size_t need = st->memory + srv->reg.eval_bytes + ewd_registry_admitted(&srv->reg, &srv->cfg);
  j->inline_eval = need > srv->cfg.max_memory;
  ev->busy = true;
  ewd_job_submit(srv, j, false);
}

bool ewd_eval_reads_window(ewd_stream_t *st) {
  ewd_eval_t *ev = ewd__eval_of(st);
  for (size_t i = 0; ev && i < ev->n; i++) {
    const spec_t *sp = &ev->specs[i];
    ew_source_t src = sp->source != EW_SOURCE_DEFAULT ? sp->source
                      : st->recent && ewd_takes_window(sp->info) ? EW_SOURCE_WINDOW
                                                                  : sp->info->def_source;
    if (src == EW_SOURCE_WINDOW && sp->info->needs != EW_NEED_ROWS)
      return true;
  }
  return false;
}

/* Evaluates `mask` at pt now, or coalesces it into the waiting evaluation. */
static void due(ewd_server_t *srv, ewd_stream_t *st, ewd_eval_t *ev, const ewd_point_t *pt,
                uint64_t mask) {
  if (!ev->busy) {
    start(srv, st, ev, pt, mask);
    return;
  }
  uint32_t skipped = 0;
  if (ev->has_pending) { /* the waiting one is replaced by this later one */
    skipped = ev->pending.skipped + 1;
    ev->coalesced++;
    ewd_expo_stale(st);
    srv->stat[EWD_STAT_eval_coalesced]++;
  }
  ev->pending = *pt;
  ev->pending.skipped = skipped;
  ev->pending_mask |= mask;
  ev->has_pending = true;
}

void ewd_eval_step(ewd_server_t *srv, ewd_stream_t *st, const ewd_point_t *pt) {
  ewd_eval_t *ev = ewd__eval_of(st);
  if (!ev || st->dropped)
    return;
  uint64_t mask = 0;
  for (size_t i = 0; i < ev->n; i++) {
    spec_t *sp = &ev->specs[i];
    if (!sp->every)
      continue;
    if (!sp->has_due || pt->step / sp->every != sp->due_at / sp->every || pt->step < sp->due_at)
      mask |= 1ull << i;
    sp->has_due = true;
    sp->due_at = pt->step;
  }
  if (mask)
    due(srv, st, ev, pt, mask);
}

/* A point for a stream without steps: its row count stands for the step. */
static ewd_point_t rows_point(const ewd_stream_t *st, const ewd_eval_t *ev) {
  ewd_point_t pt = {.step = st->count, .completed = ewd_now(), .time = ewd_wall_now(),
                    .rows = st->count - ev->rows_at, .by_rows = true};
  return pt;
}

void ewd_eval_rows(ewd_server_t *srv, ewd_stream_t *st) {
  ewd_eval_t *ev = st->eval;
  if (!ev || st->dropped)
    return;
  uint64_t mask = 0;
  for (size_t i = 0; i < ev->n; i++) {
    spec_t *sp = &ev->specs[i];
    if (!sp->every_rows || st->count - (sp->has_due ? sp->due_at : 0) < sp->every_rows)
      continue;
    mask |= 1ull << i;
    sp->has_due = true;
    sp->due_at = st->count;
  }
  if (mask) {
    ewd_point_t pt = rows_point(st, ev);
    ev->rows_at = st->count;
    due(srv, st, ev, &pt, mask);
  }
}

static void on_tick(uv_timer_t *t) {
  ewd_server_t *srv = t->data;
  double now = ewd_now();
  ewd_alerts_tick(srv);
  for (size_t s = 0; s < srv->reg.n; s++) {
    ewd_stream_t *st = srv->reg.items[s];
    ewd_eval_t *ev = st->eval;
    if (!ev || st->provisional)
      continue;
    uint64_t mask = 0;
    for (size_t i = 0; i < ev->n; i++) {
      spec_t *sp = &ev->specs[i];
      if (sp->every_s <= 0 || (sp->has_due && (st->count == sp->due_at ||
                                               now - sp->due_time < sp->every_s)))
        continue;
      if (!sp->has_due && st->count == 0)
        continue;
      mask |= 1ull << i;
      sp->has_due = true;
      sp->due_at = st->count;
      sp->due_time = now;
    }
    if (mask) {
      ewd_point_t pt = rows_point(st, ev);
      ev->rows_at = st->count;
      due(srv, st, ev, &pt, mask);
    }
  }
}

void ewd_eval_start(ewd_server_t *srv) {
  uv_timer_init(srv->loop, &srv->eval_timer);
  srv->eval_timer.data = srv;
  uv_timer_start(&srv->eval_timer, on_tick, TICK_MS, TICK_MS);
}

void ewd_eval_stop(ewd_server_t *srv) {
  uv_timer_stop(&srv->eval_timer);
  uv_close((uv_handle_t *)&srv->eval_timer, NULL);
}
