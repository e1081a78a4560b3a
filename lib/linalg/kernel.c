/* linalg/kernel.c — the Gram matrix of a set of rows under a kernel (the kernel metrics' input:
 * DSE, RKE, kernel Vendi; metrics/kernel.c). Rows arrive as f32 (what a window keeps) and are
 * widened to f64; squared distances come from one level-3 product, ‖xᵢ − xⱼ‖² = rᵢ + rⱼ − 2 xᵢ·xⱼ
 * on the rows centred first (distances do not move, and centring keeps rᵢ — hence the
 * cancellation — as small as the spread), clamped at 0, the diagonal exactly 0. L1 distances
 * (the Laplacian kernel) have no such product: a direct O(n² d) loop over the pairs. */
#include "linalg.h"

#include <cblas.h>
#include <math.h>
#include <string.h>

/* The n picked rows as f64 in X (n×d), centred when `center`. */
static void gather_rows(const float *all, size_t d, const size_t *pick, size_t n, int center,
                        double *X, double *mu) {
  memset(mu, 0, d * sizeof *mu);
  for (size_t i = 0; i < n; i++) {
    const float *r = all + (pick ? pick[i] : i) * d;
    double *x = X + i * d;
    for (size_t j = 0; j < d; j++)
      x[j] = r[j], mu[j] += r[j];
  }
  if (!center)
    return;
  for (size_t j = 0; j < d; j++)
    mu[j] /= (double)(n ? n : 1);
  for (size_t i = 0; i < n; i++)
    for (size_t j = 0; j < d; j++)
      X[i * d + j] -= mu[j];
}

/* K (n×n, both triangles) = the Gram X Xᵀ. */
static void gram(const double *X, size_t n, size_t d, double *K) {
  cblas_dsyrk(CblasRowMajor, CblasUpper, CblasNoTrans, (int)n, (int)d, 1.0, X, (int)d, 0.0, K,
              (int)n);
  for (size_t i = 0; i < n; i++)
    for (size_t j = 0; j < i; j++)
      K[i * n + j] = K[j * n + i];
}

int ew__kernel_matrix(const float *all, size_t d, const size_t *pick, size_t n,
                      ew__kernel_t kind, double sigma, double *K, ew__ws_t *ws) {
  ew__ws_mark_t mk = ew__ws_mark(ws);
  double *X = ew__ws_alloc(ws, (n * d + d + n) * sizeof(double));
  if (!X)
    return EW_ENOMEM;
  double *mu = X + n * d, *r = mu + d;
  if (kind == EW__KERNEL_LAPLACIAN) {
    gather_rows(all, d, pick, n, 0, X, mu);
    for (size_t i = 0; i < n; i++) {
      K[i * n + i] = 1.0;
      for (size_t j = i + 1; j < n; j++) {
        const double *a = X + i * d, *b = X + j * d;
        double s[4] = {0, 0, 0, 0};
        size_t k = 0;
        for (; k + 4 <= d; k += 4)
          for (int l = 0; l < 4; l++)
            s[l] += fabs(a[k + l] - b[k + l]);
        for (; k < d; k++)
          s[0] += fabs(a[k] - b[k]);
        double l1 = (s[0] + s[1]) + (s[2] + s[3]);
        K[i * n + j] = K[j * n + i] = l1 > 0 ? exp(-l1 / sigma) : 1.0;
      }
    }
    ew__ws_release(ws, mk);
    return 0;
  }
  gather_rows(all, d, pick, n, kind == EW__KERNEL_GAUSSIAN, X, mu);
  if (kind == EW__KERNEL_COSINE) /* rows scaled to unit length; a zero row stays zero */
    for (size_t i = 0; i < n; i++) {
      double q = 0, *x = X + i * d;
      for (size_t j = 0; j < d; j++)
        q += x[j] * x[j];
      double inv = q > 0 ? 1.0 / sqrt(q) : 0.0;
      for (size_t j = 0; j < d; j++)
        x[j] *= inv;
    }
  gram(X, n, d, K);
  if (kind == EW__KERNEL_GAUSSIAN) {
    for (size_t i = 0; i < n; i++)
      r[i] = K[i * n + i];
    double s = -1.0 / (2.0 * sigma * sigma); /* −inf for a σ whose square underflows */
    for (size_t i = 0; i < n; i++)
      for (size_t j = 0; j < n; j++) {
        double dd = i == j ? 0.0 : r[i] + r[j] - 2.0 * K[i * n + j];
        K[i * n + j] = dd > 0 ? exp(s * dd) : 1.0; /* equal rows: 1 exactly, never exp(NaN) */
      }
  }
  ew__ws_release(ws, mk);
  return 0;
}
