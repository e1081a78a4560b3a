/* metrics/groups.c — the grouped metrics of a labelled window (docs/METRICS.md, "Grouped
 * metrics"): per label, the effective rank of its rows' covariance (group_erank); the between-
 * over within-label scatter (group_separation); the mean cosine between label centroids
 * (centroid_cosine). Each reads the window's rows with their labels (ingest's `labels`). */
#include "metrics_priv.h"
#include "../linalg/linalg.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* A labelled window's rows as groups: the distinct labels ascending (lab[0, k)), each row's
 * group (of[0, n)), the rows per group (cnt), and the rows in f64 (X, n×d). */
typedef struct {
  size_t n, d, k;
  const uint32_t *labels;
  uint32_t *lab;
  size_t *of, *cnt;
  double *X;
} groups_t;

static int cmp_u32(const void *a, const void *b) {
  uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
  return (x > y) - (x < y);
}

/* Reads the window's labelled rows into *g (ws). 0, or the answer's failure: no labels kept
 * (BAD_PARAM), fewer than 2 rows (DEGENERATE). */
static int groups_of(mctx_t *cx, groups_t *g) {
  const float *rows;
  memset(g, 0, sizeof *g);
  int rc = ew__view_rows_labels(&cx->v, &rows, &g->labels, &g->n);
  if (rc)
    return ew__m_view_fail(cx, rc);
  if (!g->labels)
    return ew__m_fail(cx, EW_EBADPARAM, "'%s' needs a label per row, and this stream's rows came "
                      "without them (ingest them with 'labels')", cx->row_name);
  if (g->n < 2)
    return ew__m_fail(cx, EW_EDEGENERATE, "'%s' needs at least 2 rows in the window (it has %zu)",
                      cx->row_name, g->n);
  size_t n = g->n, d = g->d = cx->d;
  g->lab = ew__ws_alloc(cx->ws, n * sizeof *g->lab);
  g->of = ew__ws_alloc(cx->ws, n * sizeof *g->of);
  g->cnt = ew__ws_alloc(cx->ws, n * sizeof *g->cnt);
  g->X = ew__ws_alloc(cx->ws, n * d * sizeof *g->X);
  if (!g->lab || !g->of || !g->cnt || !g->X)
    return ew__m_fail(cx, EW_ENOMEM, "%s", ew_strerror(EW_ENOMEM));
  memcpy(g->lab, g->labels, n * sizeof *g->lab);
  qsort(g->lab, n, sizeof *g->lab, cmp_u32);
  size_t k = 0;
  for (size_t i = 0; i < n; i++)
    if (i == 0 || g->lab[i] != g->lab[k - 1])
      g->lab[k++] = g->lab[i];
  g->k = k;
  memset(g->cnt, 0, k * sizeof *g->cnt);
  for (size_t i = 0; i < n; i++) {
    const uint32_t *at = bsearch(&g->labels[i], g->lab, k, sizeof *g->lab, cmp_u32);
    g->of[i] = (size_t)(at - g->lab);
    g->cnt[g->of[i]]++;
    for (size_t j = 0; j < d; j++)
      g->X[i * d + j] = rows[i * d + j];
  }
  return 0;
}

/* The means of every group (mu, k×d) and of all rows (all, d). */
static void means_of(const groups_t *g, double *mu, double *all) {
  size_t d = g->d;
  memset(mu, 0, g->k * d * sizeof *mu);
  memset(all, 0, d * sizeof *all);
  for (size_t i = 0; i < g->n; i++)
    for (size_t j = 0; j < d; j++) {
      mu[g->of[i] * d + j] += g->X[i * d + j];
      all[j] += g->X[i * d + j];
    }
  for (size_t c = 0; c < g->k; c++)
    for (size_t j = 0; j < d; j++)
      mu[c * d + j] /= (double)g->cnt[c];
  for (size_t j = 0; j < d; j++)
    all[j] /= (double)g->n;
}

/* exp(−Σ p ln p), p = λ/Σλ over the nonzero eigenvalues (clamped at 0) of the m×m symmetric A
 * (destroyed); NAN when the trace is 0. */
static double erank_of(double *A, size_t m, double *w, ew__ws_t *ws, int *rc) {
  if ((*rc = ew__eigvals(A, m, w, ws)) != 0)
    return NAN;
  double tr = 0, h = 0;
  for (size_t i = 0; i < m; i++)
    tr += w[i] > 0 ? w[i] : 0;
  if (!(tr > 0))
    return NAN;
  for (size_t i = 0; i < m; i++)
    if (w[i] > 0)
      h -= w[i] / tr * log(w[i] / tr);
  return exp(h);
}

int ew__m_group_erank(mctx_t *cx) {
  groups_t g;
  int rc = groups_of(cx, &g);
  if (rc)
    return rc;
  size_t d = g.d, most = 0;
  for (size_t c = 0; c < g.k; c++) {
    if (g.cnt[c] < 2)
      return ew__m_fail(cx, EW_EDEGENERATE, "label %u has %zu row in the window: no covariance",
                        g.lab[c], g.cnt[c]);
    most = g.cnt[c] > most ? g.cnt[c] : most;
  }
  double *mu = ew__ws_alloc(cx->ws, (g.k + 1) * d * sizeof *mu);
  size_t m = most < d ? most : d;
  double *Y = ew__ws_alloc(cx->ws, most * d * sizeof *Y), *A = ew__ws_alloc(cx->ws, m * m * 8);
  double *w = ew__ws_alloc(cx->ws, m * sizeof *w), *out = malloc(g.k * sizeof *out);
  uint32_t *groups = malloc(g.k * sizeof *groups);
  if (!mu || !Y || !A || !w || !out || !groups) {
    free(out), free(groups);
    return ew__m_fail(cx, EW_ENOMEM, "%s", ew_strerror(EW_ENOMEM));
  }
  means_of(&g, mu, mu + g.k * d);
  for (size_t c = 0; c < g.k && rc == 0; c++) {
    size_t nc = 0; /* the group's rows, centred on its mean */
    for (size_t i = 0; i < g.n; i++)
      if (g.of[i] == c) {
        for (size_t j = 0; j < d; j++)
          Y[nc * d + j] = g.X[i * d + j] - mu[c * d + j];
        nc++;
      }
    size_t mc = nc < d ? nc : d; /* the smaller Gram: the same nonzero eigenvalues */
    if (nc < d)
      cblas_dsyrk(CblasRowMajor, CblasUpper, CblasNoTrans, (int)nc, (int)d, 1.0 / (double)nc, Y,
                  (int)d, 0.0, A, (int)mc);
    else
      cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, (int)d, (int)nc, 1.0 / (double)nc, Y,
                  (int)d, 0.0, A, (int)mc);
    for (size_t i = 0; i < mc; i++) /* both triangles: the solver reads the other one */
      for (size_t j = 0; j < i; j++)
        A[i * mc + j] = A[j * mc + i];
    out[c] = erank_of(A, mc, w, cx->ws, &rc);
    groups[c] = g.lab[c];
    if (rc == 0 && isnan(out[c]))
      rc = ew__m_fail(cx, EW_EDEGENERATE, "label %u's rows are all equal: no spread", g.lab[c]);
    else if (rc)
      rc = ew__m_fail(cx, rc, "%s", ew_strerror(rc));
  }
  if (rc) {
    free(out), free(groups);
    return rc;
  }
  cx->out->kind = EW_VALUE_LIST;
  cx->out->list = out;
  cx->out->len = g.k;
  cx->out->groups = groups;
  return 0;
}

int ew__m_group_separation(mctx_t *cx) {
  groups_t g;
  int rc = groups_of(cx, &g);
  if (rc)
    return rc;
  size_t d = g.d;
  double *mu = ew__ws_alloc(cx->ws, (g.k + 1) * d * sizeof *mu);
  if (!mu)
    return ew__m_fail(cx, EW_ENOMEM, "%s", ew_strerror(EW_ENOMEM));
  double *all = mu + g.k * d, between = 0, within = 0;
  means_of(&g, mu, all);
  for (size_t c = 0; c < g.k; c++)
    for (size_t j = 0; j < d; j++) {
      double e = mu[c * d + j] - all[j];
      between += (double)g.cnt[c] * e * e;
    }
  for (size_t i = 0; i < g.n; i++)
    for (size_t j = 0; j < d; j++) {
      double e = g.X[i * d + j] - mu[g.of[i] * d + j];
      within += e * e;
    }
  if (!(within > 0))
    return ew__m_fail(cx, EW_EDEGENERATE, "every label's rows sit on its mean: no within-label "
                      "scatter to divide by");
  return ew__m_scalar(cx, between / within);
}

int ew__m_centroid_cosine(mctx_t *cx) {
  groups_t g;
  int rc = groups_of(cx, &g);
  if (rc)
    return rc;
  if (g.k < 2)
    return ew__m_fail(cx, EW_EDEGENERATE, "centroid_cosine needs at least 2 labels (the window "
                      "has %zu)", g.k);
  size_t d = g.d;
  double *mu = ew__ws_alloc(cx->ws, (g.k + 1) * d * sizeof *mu);
  double *norm = ew__ws_alloc(cx->ws, g.k * sizeof *norm);
  if (!mu || !norm)
    return ew__m_fail(cx, EW_ENOMEM, "%s", ew_strerror(EW_ENOMEM));
  means_of(&g, mu, mu + g.k * d);
  for (size_t c = 0; c < g.k; c++) {
    double q = 0;
    for (size_t j = 0; j < d; j++)
      q += mu[c * d + j] * mu[c * d + j];
    if (!((norm[c] = sqrt(q)) > 0))
      return ew__m_fail(cx, EW_EDEGENERATE, "label %u's mean is the zero vector: no direction",
                        g.lab[c]);
  }
  double s = 0;
  for (size_t a = 0; a < g.k; a++)
    for (size_t b = a + 1; b < g.k; b++) {
      double dot = 0;
      for (size_t j = 0; j < d; j++)
        dot += mu[a * d + j] * mu[b * d + j];
      s += dot / (norm[a] * norm[b]);
    }
  return ew__m_scalar(cx, s / ((double)g.k * (double)(g.k - 1) / 2.0));
}
