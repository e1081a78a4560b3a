/* eval_list.c — a stream's list of scheduled evaluations (proto/PROTOCOL.md, "Scheduled
 * evaluation and history"): the specs create's `eval` gives (or the defaults), checked against
 * the metric table and the stream, compared, and looked up by series name. eval.c runs them;
 * eval_save.c saves them. Owner: the loop thread. */
#include "run/run.h"
#include "run/eval_priv.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

/* A tokens stream's default evaluation (DESIGN §12): token_mean, token_std, the first column's
 * quantiles 0.05, 0.5 and 0.95 as {column}_p5, _p50, _p95, frac_above, and with columns logp and
 * advantage cov and cov_band_frac; a stats stream's: cell_mean, cell_max, cell_min, by_row and
 * cells; a paired stream's: sce and sce_text — every step. */
static int tokens_defaults(const ewd_stream_t *st, spec_t **out, size_t *n, char *msg,
                           size_t cap) {
  static const struct {
    const char *metric, *suffix;
    double level;
  } rows[] = {{"token_mean", NULL, 0},  {"token_std", NULL, 0},     {"quantile", "_p5", 0.05},
              {"quantile", "_p50", 0.5}, {"quantile", "_p95", 0.95}, {"frac_above", NULL, 0},
              {"cov", NULL, 0},         {"cov_band_frac", NULL, 0}};
  static const char *const cells[] = {"cell_mean", "cell_max", "cell_min", "by_row", "cells"};
  static const char *const pairs[] = {"sce", "sce_text"};
  const ew_config_t *c = &st->cfg;
  bool pair = ew_config_column(c, "logp", 4) >= 0 && ew_config_column(c, "advantage", 9) >= 0;
  spec_t *v = calloc(sizeof rows / sizeof rows[0], sizeof *v);
  if (v && c->stream_kind == EW_STREAM_STATS) { /* a stats stream's: the cells, every step */
    for (size_t i = 0; i < sizeof cells / sizeof cells[0]; i++)
      ewd__spec_default(&v[i], ew_metric_find(cells[i]));
    *out = v;
    *n = sizeof cells / sizeof cells[0];
    return 0;
  }
  if (v && c->stream_kind == EW_STREAM_PAIRED) { /* a paired stream's: both entropies */
    for (size_t i = 0; i < sizeof pairs / sizeof pairs[0]; i++)
      ewd__spec_default(&v[i], ew_metric_find(pairs[i]));
    *out = v;
    *n = sizeof pairs / sizeof pairs[0];
    return 0;
  }
  if (!v) {
    snprintf(msg, cap, "out of memory");
    return EW_ENOMEM;
  }
  size_t k = 0;
  for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
    if (!pair && (strcmp(rows[i].metric, "cov") == 0 || strcmp(rows[i].metric, "cov_band_frac") == 0))
      continue;
    spec_t *sp = &v[k++];
    ewd__spec_default(sp, ew_metric_find(rows[i].metric));
    if (rows[i].suffix) {
      snprintf(sp->series, sizeof sp->series, "%s%s", c->columns.name[0], rows[i].suffix);
      snprintf(sp->pkeys[0], sizeof sp->pkeys[0], "level");
      sp->params[0] = (ew_param_t){.value = rows[i].level, .type = EW_PARAM_NUMBER};
      ewd__param_own(sp, 0);
      sp->nparams = 1;
    }
  }
  *out = v;
  *n = k;
  return 0;
}

/* The specs `evals` asks for (NULL: the defaults) for stream st (NULL: no stream yet) into a new
 * array. On a sketched stream the defaults leave out what the library refuses there, and an
 * asked-for spec it would refuse is BAD_PARAM. Returns 0 or a code. */
int ewd__eval_build(const ewd_stream_t *st, const ewp_evals_t *evals, spec_t **out,
                    size_t *n, char *msg, size_t cap) {
  if (!evals && st && st->cfg.stream_kind != EW_STREAM_MATRIX)
    return tokens_defaults(st, out, n, msg, cap);
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

ewd_eval_t *ewd__eval_of(ewd_stream_t *st) {
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
  ewd_expo_stale(st);
  return 0;
}

bool ewd_eval_has(const ewd_stream_t *st, const char *series) {
  if (!st->eval && st->cfg.stream_kind != EW_STREAM_MATRIX) { /* defaults by its columns */
    spec_t *v;
    size_t n;
    char msg[64];
    bool has = false;
    if (tokens_defaults(st, &v, &n, msg, sizeof msg))
      return false;
    for (size_t i = 0; i < n; i++)
      has = has || strcmp(v[i].series, series) == 0;
    free(v);
    return has;
  }
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
