/* metrics/cells.c — the metrics of stats streams (docs/METRICS.md, "Stats streams"): each reads
 * the cells view in cx->cv (acc/stats_acc.c) — every cell reduced over ranks and batches by the
 * stream's rule, for the newest step, the window's steps or all — and answers from the cells'
 * values (value_i = Σ count·value / Σ count for mean, else the reduction itself). */
#include "metrics_priv.h"

#include <math.h>
#include <stdlib.h>

static double value_of(const ew__cview_t *v, size_t i) {
  return v->rule == EW_REDUCE_MEAN ? v->v[i] / v->c[i] : v->v[i];
}

/* DEGENERATE unless the view holds a step. */
static int need_cells(mctx_t *cx) {
  if (cx->cv.steps > 0)
    return 0;
  return ew__m_fail(cx, EW_EDEGENERATE, "the stream has no %s yet",
                    cx->src == EW_SOURCE_ALL ? "batches" : "completed step");
}

/* A list answer of n values (owned by the result). */
static double *list_of(mctx_t *cx, size_t n) {
  double *out = malloc((n ? n : 1) * sizeof(double));
  if (!out) {
    ew__m_fail(cx, EW_ENOMEM, "%s", ew_strerror(EW_ENOMEM));
    return NULL;
  }
  cx->out->kind = EW_VALUE_LIST;
  cx->out->list = out;
  cx->out->len = n;
  return out;
}

int ew__m_cells(mctx_t *cx) {
  if (need_cells(cx))
    return cx->out->code;
  double *out = list_of(cx, cx->cv.cells);
  if (!out)
    return cx->out->code;
  for (size_t i = 0; i < cx->cv.cells; i++)
    out[i] = value_of(&cx->cv, i);
  return 0;
}

int ew__m_cell_mean(mctx_t *cx) {
  if (need_cells(cx))
    return cx->out->code;
  double s = 0, w = 0; /* Σ_i count_i · value_i / Σ_i count_i */
  for (size_t i = 0; i < cx->cv.cells; i++)
    s += cx->cv.c[i] * value_of(&cx->cv, i), w += cx->cv.c[i];
  return ew__m_scalar(cx, s / w);
}

/* The largest (sign 1) or smallest (−1) cell value. */
static int extreme(mctx_t *cx, double sign) {
  if (need_cells(cx))
    return cx->out->code;
  double best = value_of(&cx->cv, 0);
  for (size_t i = 1; i < cx->cv.cells; i++)
    if (sign * value_of(&cx->cv, i) > sign * best)
      best = value_of(&cx->cv, i);
  return ew__m_scalar(cx, best);
}

int ew__m_cell_max(mctx_t *cx) { return extreme(cx, 1); }
int ew__m_cell_min(mctx_t *cx) { return extreme(cx, -1); }

int ew__m_by_row(mctx_t *cx) {
  if (need_cells(cx))
    return cx->out->code;
  size_t L = cx->cfg->shape[0], H = cx->cfg->shape[1];
  double *out = list_of(cx, L);
  if (!out)
    return cx->out->code;
  for (size_t l = 0; l < L; l++) { /* row l's H cells reduced by the stream's rule */
    double acc = 0, w = 0;
    for (size_t h = 0; h < H; h++) {
      size_t i = l * H + h;
      double v = value_of(&cx->cv, i);
      if (cx->cv.rule == EW_REDUCE_MEAN)
        acc += cx->cv.c[i] * v, w += cx->cv.c[i];
      else if (h == 0 || cx->cv.rule == EW_REDUCE_SUM)
        acc = h == 0 ? v : acc + v;
      else
        acc = cx->cv.rule == EW_REDUCE_MAX ? fmax(acc, v) : fmin(acc, v);
    }
    out[l] = cx->cv.rule == EW_REDUCE_MEAN ? acc / w : acc;
  }
  return 0;
}
