/* eval.c — scheduled evaluation (proto/PROTOCOL.md, "Scheduled evaluation and history"): after a step completes, the metrics due at it are
 * computed on the state at that step, and the point goes to the history and the result cache.
 *
 * The state at step s is what the stream's queue holds once s's batches are applied, so the
 * evaluation starts with a FORK job queued right behind them: it copies the state
 * (ew_stream_clone, about one pass over it) and the loop hands the copy to an EVAL job that any
 * math thread runs outside the stream's order, when no stream job waits, on at most all threads
 * but one (pool.c). The stream's later batches therefore never wait for an eigensolve, only for
 * the copy. Without room in max_memory for the copy, FORK evaluates in place (counted:
 * eval_inline).
 *
 * One evaluation per stream is in flight. Steps that come due meanwhile are coalesced: only the
 * latest is kept, and it is evaluated next (on the state at that step: its FORK is queued when
 * the running evaluation ends, behind the batches of every step completed so far, which is that
 * step's state). The point records how many due evaluations it replaced (`skipped`). */
#include "core/ewd.h"
#include "run/eval_priv.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TICK_MS 250

typedef ewd__spec_t spec_t;

static const char *const default_names[] = {EWD_EVAL_DEFAULTS};
#define NDEFAULTS (sizeof default_names / sizeof default_names[0])

/* True when the metric can be computed from `src` (a bit of its sources). */
static bool takes_source(const ew_metric_info_t *info, ew_source_t src) {
  return src >= 0 && (info->sources & EW_SOURCE_BIT(src)) != 0;
}

/* Points a spec's parameter k at the spec's own storage (after a copy or a move of the spec). */
void ewd__param_own(spec_t *sp, size_t k) {
  sp->params[k].key = sp->pkeys[k];
  sp->params[k].str = sp->params[k].type == EW_PARAM_STRING ? sp->pstrs[k] : NULL;
}

void ewd__spec_default(spec_t *sp, const ew_metric_info_t *info) {
  memset(sp, 0, sizeof *sp);
  sp->info = info;
  snprintf(sp->series, sizeof sp->series, "%s", info->name);
  sp->source = EW_SOURCE_DEFAULT;
  sp->center = -1;
  sp->every = 1;
}

/* Builds a spec from one `eval` entry. Returns 0 or an EW_E* code with a sentence. */
static int spec_from(spec_t *sp, const ewp_eval_t *e, size_t idx, char *msg, size_t cap) {
  char name[64], esc[96];
  const ew_metric_info_t *info = NULL;
  if (e->metric.n < sizeof name) {
    memcpy(name, e->metric.p, e->metric.n);
    name[e->metric.n] = 0;
    if (strlen(name) == e->metric.n)
      info = ew_metric_find(name);
  }
  if (!info) {
    snprintf(msg, cap, "eval[%zu]: no metric named '%s' (the 'metrics' method lists them)", idx,
             ewp_escape(esc, 64, e->metric.p, e->metric.n));
    return EW_EUNKMETRIC;
  }
  ewd__spec_default(sp, info);
  if (EWP_HAS(e, EWP_EVAL_as)) /* proto checked it: 1 to EWP_SERIES_MAX bytes */
    memcpy(sp->series, e->as.p, e->as.n), sp->series[e->as.n] = 0;
  if (EWP_HAS(e, EWP_EVAL_every_rows))
    sp->every = 0, sp->every_rows = e->every_rows;
  else if (EWP_HAS(e, EWP_EVAL_every_s))
    sp->every = 0, sp->every_s = e->every_s;
  else if (EWP_HAS(e, EWP_EVAL_every))
    sp->every = e->every;
  if (EWP_HAS(e, EWP_EVAL_center))
    sp->center = e->center ? 1 : 0;
  if (EWP_HAS(e, EWP_EVAL_source)) {
    sp->source = (ew_source_t)e->source; /* the wire's index is the library's (query.c) */
    if (!takes_source(info, sp->source)) {
      char names[64];
      snprintf(msg, cap, "eval[%zu]: %s is not computed from source '%s' (it takes: %s)", idx,
               info->name, ew_source_name(sp->source),
               ew_metric_sources_str(info, names, sizeof names));
      return EW_EBADPARAM;
    }
  }
  for (size_t k = 0; EWP_HAS(e, EWP_EVAL_params) && k < e->params.n; k++) {
    const ewp_param_t *p = &e->params.v[k];
    const ew_param_info_t *pi = ew_metric_param(info, p->key, p->key_n);
    if (!pi) {
      snprintf(msg, cap, "eval[%zu]: %s takes no parameter '%s'", idx, info->name,
               ewp_escape(esc, 64, p->key, p->key_n));
      return EW_EBADPARAM;
    }
    char why[200];
    size_t at = sp->nparams;
    if (ewd_param_resolve(info, pi, p, &sp->params[at], sp->pstrs[at], why, sizeof why)) {
      snprintf(msg, cap, "eval[%zu]: %s", idx, why);
      return EW_EBADPARAM;
    }
    snprintf(sp->pkeys[at], sizeof sp->pkeys[0], "%s", pi->name);
    ewd__param_own(sp, at);
    sp->nparams++;
  }
  return 0;
}

/* True when the library refuses the metric on st as the spec reads it: a sketched stream
 * (d > exact_max_dim) whose source resolves to all (explicitly, or by default on a stream that is
 * not recent: the refused metrics' own default source is all). */
static bool refused_on(const ewd_stream_t *st, const spec_t *sp) {
  if (!st || !ew_config_sketched(&st->cfg) || sp->info->sketch != EW_SK_REFUSED)
    return false;
  return sp->source == EW_SOURCE_ALL || (sp->source == EW_SOURCE_DEFAULT && !st->recent);
}

/* The specs `evals` asks for (NULL: the defaults) for stream st (NULL: no stream yet) into a new
 * array. On a sketched stream the defaults leave out what the library refuses there, and an
 * asked-for spec it would refuse is BAD_PARAM. Returns 0 or a code. */
int ewd__eval_build(const ewd_stream_t *st, const ewp_evals_t *evals, spec_t **out,
                    size_t *n, char *msg, size_t cap) {
  size_t cnt = evals ? evals->n : NDEFAULTS, kept = 0;
  spec_t *v = calloc(cnt ? cnt : 1, sizeof *v);
  if (!v) {
    snprintf(msg, cap, "out of memory");
    return EW_ENOMEM;
  }
  for (size_t i = 0; i < cnt; i++) {
    if (!evals) {
      ewd__spec_default(&v[kept], ew_metric_find(default_names[i]));
      kept += !refused_on(st, &v[kept]);
      continue;
    }
    int rc = spec_from(&v[i], &evals->v[i], i, msg, cap);
    if (rc == 0 && refused_on(st, &v[i])) {
      snprintf(msg, cap, "eval[%zu]: %s is refused on this stream, which keeps a sketch (d = %zu "
               "> exact_max_dim %zu); give it source window or leave it out", i,
               v[i].info->name, st->cfg.dim, st->cfg.exact_max_dim);
      rc = EW_EBADPARAM;
    }
    kept++;
    for (size_t k = 0; rc == 0 && k < i; k++) {
      if (strcmp(v[k].series, v[i].series) != 0)
        continue;
      if (!EWP_HAS(&evals->v[i], EWP_EVAL_as) && !EWP_HAS(&evals->v[k], EWP_EVAL_as))
        snprintf(msg, cap, "eval names %s twice (each entry is one series, named after its "
                 "metric unless 'as' names it: give one of them an 'as')", v[i].series);
      else
        snprintf(msg, cap, "eval[%zu]: the series name '%s' is taken by eval[%zu] (%s%s): "
                 "series names are unique in the list", i, v[i].series, k,
                 EWP_HAS(&evals->v[k], EWP_EVAL_as) ? "its 'as', metric " : "the name of its "
                 "metric ", v[k].info->name);
      rc = EW_EBADPARAM;
    }
    if (rc) {
      free(v);
      return rc;
    }
  }
  *out = v;
  *n = kept;
  return 0;
}

static bool spec_equal(const spec_t *a, const spec_t *b) {
  if (a->info != b->info || strcmp(a->series, b->series) != 0 || a->source != b->source || a->center != b->center ||
      a->every != b->every || a->every_rows != b->every_rows || a->every_s != b->every_s ||
      a->nparams != b->nparams)
    return false;
  for (size_t i = 0; i < a->nparams; i++)
    if (strcmp(a->pkeys[i], b->pkeys[i]) != 0 || a->params[i].type != b->params[i].type ||
        a->params[i].value != b->params[i].value ||
        (a->params[i].type == EW_PARAM_STRING && strcmp(a->pstrs[i], b->pstrs[i]) != 0))
      return false;
  return true;
}

ewd_eval_t *ewd__eval_new(spec_t *specs, size_t n, bool given) {
  ewd_eval_t *ev = calloc(1, sizeof *ev);
  if (!ev)
    return NULL;
  ev->specs = specs;
  ev->n = n;
  ev->given = given;
  for (size_t i = 0; i < n; i++) /* keys and strings point into the specs: fix after a move */
    for (size_t k = 0; k < specs[i].nparams; k++)
      ewd__param_own(&specs[i], k);
  return ev;
}

/* st's evaluation state, the defaults made when first needed (NULL: out of memory). */
static ewd_eval_t *eval_of(ewd_stream_t *st) {
  if (!st->eval) {
    spec_t *v;
    size_t n;
    char msg[64];
    if (ewd__eval_build(st, NULL, &v, &n, msg, sizeof msg))
      return NULL;
    if (!(st->eval = ewd__eval_new(v, n, false)))
      free(v);
  }
  return st->eval;
}

int ewd_eval_set(ewd_stream_t *st, const ewp_evals_t *evals, char *msg, size_t cap) {
  spec_t *v;
  size_t n;
  int rc = ewd__eval_build(st, evals, &v, &n, msg, cap);
  if (rc)
    return rc;
  ewd_eval_t *ev = ewd__eval_new(v, n, evals != NULL);
  if (!ev) {
    free(v);
    snprintf(msg, cap, "out of memory");
    return EW_ENOMEM;
  }
  if (st->eval) { /* an evaluation in flight keeps its own copy of what it computes */
    ev->busy = st->eval->busy;
    ewd_eval_free(st->eval);
  }
  st->eval = ev;
  return 0;
}

bool ewd_eval_has(const ewd_stream_t *st, const char *series) {
  if (!st->eval) {
    for (size_t i = 0; i < NDEFAULTS; i++)
      if (strcmp(default_names[i], series) == 0) {
        spec_t sp;
        ewd__spec_default(&sp, ew_metric_find(series));
        return !refused_on(st, &sp);
      }
    return false;
  }
  for (size_t i = 0; i < st->eval->n; i++)
    if (strcmp(st->eval->specs[i].series, series) == 0)
      return true;
  return false;
}

bool ewd_eval_same(const ewd_stream_t *st, const ewp_evals_t *evals) {
  spec_t *v;
  size_t n;
  char msg[256];
  if (ewd__eval_build(st, evals, &v, &n, msg, sizeof msg))
    return false;
  bool same;
  if (!st->eval) {
    same = evals == NULL;
  } else {
    same = st->eval->n == n;
    for (size_t i = 0; same && i < n; i++)
      same = spec_equal(&st->eval->specs[i], &v[i]);
  }
  free(v);
  return same;
}

void ewd_eval_free(ewd_eval_t *ev) {
  if (!ev)
    return;
  free(ev->specs);
  free(ev);
}

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
    srv->stat[EWD_STAT_evaluations]++;
    srv->stat[EWD_STAT_eval_lag_ms] = (uint64_t)(1e3 * lag);
    if (nh) {
      pt->lag_s = lag;
      ewd_history_put(srv, st, pt, hv, nh);
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
  j->srv->reg.eval_bytes -= j->clone_bytes;
  finish(j);
  ewd_job_finish(j);
}

static void fork_done(ewd_job_t *j) {
  ewd_server_t *srv = j->srv;
  ewd_stream_t *st = j->st;
  ewd_job_mirrors(j);
  if (j->point->by_rows) /* the rows queued before the copy, whatever was due */
    j->point->step = j->count_after;
  if (j->clone && !st->dropped) {
    ewd_job_t *e = ewd_job_make(srv, st, EWD_JOB_EVAL, eval_done);
    if (e) {
      e->clone = j->clone, j->clone = NULL;
      e->clone_bytes = j->clone_bytes;
      e->point = j->point, j->point = NULL;
      e->metrics = j->metrics, j->metrics = NULL;
      e->nmetrics = j->nmetrics, j->nmetrics = 0;
      e->evmask = j->evmask;
      srv->reg.eval_bytes += e->clone_bytes;
      ewd_pool_submit_eval(srv->pool, e);
      ewd_job_finish(j);
      return;
    }
  }
  if (j->inline_eval && st->eval && !st->eval->inline_evals++)
    ewd_log(EWD_LOG_INFO, "evaluating in the stream's queue: no room in max_memory for a copy "
            "(logged once per stream)", "run=\"%s\" stream=\"%s\"", st->run, st->name);
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
    srv->stat[EWD_STAT_eval_coalesced]++;
  }
  ev->pending = *pt;
  ev->pending.skipped = skipped;
  ev->pending_mask |= mask;
  ev->has_pending = true;
}

void ewd_eval_step(ewd_server_t *srv, ewd_stream_t *st, const ewd_point_t *pt) {
  ewd_eval_t *ev = eval_of(st);
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
