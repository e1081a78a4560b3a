/* metrics/tokens.c — the metrics of tokens streams (docs/METRICS.md, "Token streams"): each reads
 * the tokens view in cx->tv (acc/tokens_acc.c) — the counted tokens of the newest step or of the
 * window's steps, or the sums and sketches of every token (source all) — and reduces it over the
 * union of every rank's counted tokens, never as a mean of per-rank means (acc/tokens.h). */
#include "metrics_priv.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* The column a STRING parameter names (NULL: the stream's first), or −1 with the answer set. */
static int column_of(mctx_t *cx, const char *name, const char *param) {
  const ew_config_t *c = cx->cfg;
  if (!name)
    return 0;
  int i = ew_config_column(c, name, strlen(name));
  if (i >= 0)
    return i;
  char list[EW_COLUMNS_MAX * (EW_COLUMN_NAME_MAX + 2) + 1] = "";
  for (uint32_t k = 0; k < c->columns.n; k++) {
    strcat(list, k ? ", " : "");
    strcat(list, c->columns.name[k]);
  }
  ew__m_fail(cx, EW_EBADPARAM, "%s '%s' is not a column of this stream (its columns: %s)", param,
             name, list);
  return -1;
}

/* DEGENERATE unless the view holds a counted token. */
static int need_tokens(mctx_t *cx) {
  if (cx->tv.n > 0)
    return 0;
  return ew__m_fail(cx, EW_EDEGENERATE, "the %s holds no counted tokens yet",
                    cx->src == EW_SOURCE_ALL ? "stream" : cx->src == EW_SOURCE_STEP
                                                            ? "newest step" : "window");
}

/* DEGENERATE unless every token of the view came with its sequence lengths. */
static int need_lengths(mctx_t *cx) {
  uint64_t nolen = cx->src == EW_SOURCE_ALL ? cx->tv.all->nolen : cx->tv.nolen;
  if (nolen == 0)
    return 0;
  return ew__m_fail(cx, EW_EDEGENERATE, "'%s' needs sequence lengths, and %llu counted tokens of "
                    "this view came without 'lengths'", cx->row_name, (unsigned long long)nolen);
}

/* Column c of the view as f64, or NULL with the answer set. */
static const double *col_x(mctx_t *cx, int c) {
  const double *x = NULL;
  int rc = ew__view_kind_column(&cx->tv, (size_t)c, cx->ws, &x);
  if (rc)
    ew__m_fail(cx, rc, "%s", ew_strerror(rc));
  return x;
}

/* The sums of column c over the view (kept by step: no pass over the tokens). */
static ew__tsum_t sums_of(const mctx_t *cx, int c) { return cx->tv.tall->sum[c]; }

/* Column c's mergeable sum `what` (0 mean, 1 std, 2 min, 3 max, 4 count). */
static int column_stat(mctx_t *cx, int what) {
  int c = column_of(cx, cx->s[0], "column");
  if (c < 0 || need_tokens(cx))
    return cx->out->code;
  ew__tsum_t s = sums_of(cx, c);
  double v[] = {s.mean, sqrt(s.m2 / (double)s.n), s.min, s.max, (double)s.n};
  return ew__m_scalar(cx, v[what]);
}

int ew__m_token_mean(mctx_t *cx) { return column_stat(cx, 0); }
int ew__m_token_std(mctx_t *cx) { return column_stat(cx, 1); }
int ew__m_token_min(mctx_t *cx) { return column_stat(cx, 2); }
int ew__m_token_max(mctx_t *cx) { return column_stat(cx, 3); }
int ew__m_token_count(mctx_t *cx) { return column_stat(cx, 4); }

/* verl's seq-mean-token-mean (what 0) and seq-mean-token-sum (what 1). */
static int seq_stat(mctx_t *cx, int what) {
  int c = column_of(cx, cx->s[0], "column");
  if (c < 0 || need_tokens(cx) || need_lengths(cx))
    return cx->out->code;
  double mean = 0, sum = 0;
  size_t seqs;
  if (cx->src == EW_SOURCE_ALL) {
    seqs = cx->tv.all->seqs;
    mean = seqs ? cx->tv.all->seq_mean_sum[c] / (double)seqs : 0;
    sum = seqs ? cx->tv.all->seq_sum_sum[c] / (double)seqs : 0;
  } else {
    const double *x = col_x(cx, c);
    if (!x)
      return cx->out->code;
    seqs = ew__tok_seq_means(x, cx->tv.len, cx->tv.nseq, &mean, &sum);
  }
  if (!seqs)
    return ew__m_fail(cx, EW_EDEGENERATE, "no sequence of this view has a counted token");
  return ew__m_scalar(cx, what ? sum : mean);
}

int ew__m_seq_mean(mctx_t *cx) { return seq_stat(cx, 0); }
int ew__m_seq_sum_mean(mctx_t *cx) { return seq_stat(cx, 1); }

int ew__m_quantile(mctx_t *cx) {
  int c = column_of(cx, cx->s[0], "column");
  if (c < 0 || need_tokens(cx))
    return cx->out->code;
  if (cx->src == EW_SOURCE_ALL) { /* the sketch: its certified rank error as the error */
    double v, err;
    int rc = ew__qs_quantile(&cx->tv.qs[c], cx->p[1], &v, &err);
    if (rc)
      return ew__m_fail(cx, rc, "%s", ew_strerror(rc));
    cx->out->has_error = 1;
    cx->out->error = err;
    return ew__m_scalar(cx, v);
  }
  double v; /* from the column sorted: the newest step keeps it, so each level is a lookup */
  int rc = ew__view_kind_quantile(&cx->tv, (size_t)c, cx->p[1], cx->ws, &v);
  if (rc)
    return ew__m_fail(cx, rc, "%s", ew_strerror(rc));
  return ew__m_scalar(cx, v);
}

int ew__m_frac_above(mctx_t *cx) {
  int c = column_of(cx, cx->s[0], "column");
  if (c < 0 || need_tokens(cx))
    return cx->out->code;
  const double *x = col_x(cx, c);
  return x ? ew__m_scalar(cx, ew__tok_frac_above(x, cx->tv.n, cx->p[1])) : cx->out->code;
}

int ew__m_histogram(mctx_t *cx) {
  int c = column_of(cx, cx->s[0], "column");
  if (c < 0 || need_tokens(cx))
    return cx->out->code;
  const double *x = col_x(cx, c);
  if (!x)
    return cx->out->code;
  size_t bins = (size_t)cx->p[1];
  double lo = cx->p[2], hi = cx->p[3];
  if (!(lo < hi))
    return ew__m_fail(cx, EW_EBADPARAM, "histogram needs lo < hi (got lo %g, hi %g)", lo, hi);
  uint64_t *k = ew__ws_alloc(cx->ws, bins * sizeof(uint64_t));
  double *out = malloc(bins * sizeof(double));
  if (!k || !out) {
    free(out);
    return ew__m_fail(cx, EW_ENOMEM, "%s", ew_strerror(EW_ENOMEM));
  }
  ew__tok_histogram(x, cx->tv.n, lo, hi, bins, k);
  for (size_t i = 0; i < bins; i++)
    out[i] = (double)k[i];
  cx->out->kind = EW_VALUE_LIST;
  cx->out->list = out;
  cx->out->len = bins;
  return 0;
}

/* The columns x and y (parameters 0 and 1), or −1 with the answer set. */
static int pair_of(mctx_t *cx, int *x, int *y) {
  if ((*x = column_of(cx, cx->s[0], "x")) < 0 || (*y = column_of(cx, cx->s[1], "y")) < 0)
    return -1;
  return need_tokens(cx) ? -1 : 0;
}

/* The co-moment of columns x and y over the view. */
static ew__tco_t co_of(const mctx_t *cx, int x, int y) {
  ew__tco_t t;
  const ew__tall_t *a = cx->tv.tall;
  if (x == y)
    return (ew__tco_t){a->sum[x].n, a->sum[x].mean, a->sum[x].mean, a->sum[x].m2};
  t = a->co[x < y ? x : y][x < y ? y : x];
  if (x > y) { /* stored as (y, x) */
    double m = t.mx;
    t.mx = t.my, t.my = m;
  }
  return t;
}

int ew__m_cov(mctx_t *cx) {
  int x, y;
  if (pair_of(cx, &x, &y))
    return cx->out->code;
  ew__tco_t t = co_of(cx, x, y);
  return ew__m_scalar(cx, t.c / (double)t.n);
}

int ew__m_corr(mctx_t *cx) {
  int x, y;
  if (pair_of(cx, &x, &y))
    return cx->out->code;
  ew__tco_t t = co_of(cx, x, y);
  ew__tsum_t sx = sums_of(cx, x), sy = sums_of(cx, y);
  if (!(sx.m2 > 0 && sy.m2 > 0))
    return ew__m_fail(cx, EW_EDEGENERATE, "a column is constant over this view: no correlation");
  return ew__m_scalar(cx, t.c / sqrt(sx.m2 * sy.m2));
}

int ew__m_cov_band_frac(mctx_t *cx) {
  int x, y;
  if (pair_of(cx, &x, &y))
    return cx->out->code;
  ew__tco_t t = co_of(cx, x, y);
  const double *vx = col_x(cx, x), *vy = vx ? col_x(cx, y) : NULL;
  if (!vy)
    return cx->out->code;
  return ew__m_scalar(cx, ew__tok_cov_band_frac(vx, vy, cx->tv.n, t.mx, t.my, cx->p[2],
                                                cx->p[3]));
}

int ew__m_cov_top(mctx_t *cx) {
  int x, y;
  if (pair_of(cx, &x, &y))
    return cx->out->code;
  ew__tco_t t = co_of(cx, x, y);
  const double *vx = col_x(cx, x), *vy = vx ? col_x(cx, y) : NULL;
  if (!vy)
    return cx->out->code;
  double *w = ew__ws_alloc(cx->ws, cx->tv.n * sizeof(double) + 8);
  if (!w)
    return ew__m_fail(cx, EW_ENOMEM, "%s", ew_strerror(EW_ENOMEM));
  return ew__m_scalar(cx, ew__tok_cov_top(vx, vy, cx->tv.n, t.mx, t.my, cx->p[2], w));
}

int ew__m_window_frac_above(mctx_t *cx) {
  int c = column_of(cx, cx->s[0], "column");
  if (c < 0 || need_tokens(cx) || need_lengths(cx))
    return cx->out->code;
  uint64_t windows = 0;
  const double *x = col_x(cx, c);
  if (!x)
    return cx->out->code;
  double v = ew__tok_window_frac_above(x, cx->tv.len, cx->tv.nseq, (size_t)cx->p[1],
                                       cx->p[2], &windows);
  if (!windows)
    return ew__m_fail(cx, EW_EDEGENERATE, "no sequence of this view has %g counted tokens (a "
                      "full window)", cx->p[1]);
  return ew__m_scalar(cx, v);
}
