/* metrics/rows.c — the metrics of the rows' columns rather than of the spectrum: the Matrix
 * Nuclear-Norm approximation (the top column norms, from diag A) and the spread of the
 * L2-normalised window rows (l2_std). */
#include "metrics_priv.h"

#include <math.h>
#include <stdlib.h>

static int cmp_desc(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x < y) - (x > y);
}

/* Σ of the top min(rows, d) column norms of the rows, over W; column norm_j = sqrt(W A_jj). */
static int mnn_from_diag(mctx_t *cx, double *diag) {
  size_t d = cx->d, m = cx->rows < d ? (size_t)cx->rows : d;
  for (size_t j = 0; j < d; j++)
    diag[j] = sqrt(cx->weight * (diag[j] > 0 ? diag[j] : 0.0));
  qsort(diag, d, sizeof(double), cmp_desc);
  double t = 0;
  for (size_t j = 0; j < m; j++)
    t += diag[j];
  return ew__m_scalar(cx, t / cx->weight);
}

int ew__m_mnn(mctx_t *cx) {
  double *diag = malloc(cx->d * sizeof(double));
  if (!diag)
    return ew__m_fail(cx, EW_ENOMEM, "out of memory");
  int rc = ew__view_diag(&cx->v, diag);
  rc = rc ? ew__m_view_fail(cx, rc) : mnn_from_diag(cx, diag);
  free(diag);
  return rc;
}

/* Σ x_j² in f64, four running sums (cblas_dsdot is no help: OpenBLAS's kernel may accumulate
 * in f32, measured 2e-9 off numpy). */
static double sumsq(const float *x, size_t d) {
  double a[4] = {0, 0, 0, 0};
  size_t j = 0;
  for (; j + 4 <= d; j += 4)
    for (int k = 0; k < 4; k++)
      a[k] += (double)x[j + k] * x[j + k];
  for (; j < d; j++)
    a[0] += (double)x[j] * x[j];
  return (a[0] + a[1]) + (a[2] + a[3]);
}

int ew__m_l2_std(mctx_t *cx) {
  size_t d = cx->d, N = (size_t)cx->rows;
  if (N < 2)
    return ew__m_fail(cx, EW_EDEGENERATE, "l2_std needs at least 2 rows in the window (it has %zu)", N);
  const float *raw;
  int rc = ew__view_rows(&cx->v, &raw, &N);
  if (rc)
    return ew__m_view_fail(cx, rc);
  double *mu = calloc(2 * d + N, sizeof(double)), *m2 = mu + d, *inv = m2 + d;
  if (!mu)
    return ew__m_fail(cx, EW_ENOMEM, "out of memory");
  /* each row's inverse norm once (accumulated in f64), then two passes over the unit rows:
   * per-dimension mean, then squared deviations (ddof = 1) */
  for (size_t r = 0; r < N; r++) {
    double nrm = sumsq(raw + r * d, d);
    inv[r] = nrm > 0 ? 1.0 / sqrt(nrm) : 0.0;
  }
  for (size_t r = 0; r < N; r++) {
    const float *x = raw + r * d;
    for (size_t j = 0; j < d; j++)
      mu[j] += x[j] * inv[r];
  }
  for (size_t j = 0; j < d; j++)
    mu[j] /= (double)N;
  for (size_t r = 0; r < N; r++) {
    const float *x = raw + r * d;
    for (size_t j = 0; j < d; j++) {
      double z = x[j] * inv[r] - mu[j];
      m2[j] += z * z;
    }
  }
  double t = 0;
  for (size_t j = 0; j < d; j++)
    t += sqrt(m2[j] / (double)(N - 1));
  free(mu);
  return ew__m_scalar(cx, t / (double)d);
}

