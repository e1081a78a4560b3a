/* metrics/kernel.c — the kernel metrics of a window's rows (docs/METRICS.md, "Kernel metrics"):
 * diffusion spectral entropy (dse), the RKE mode count (rke) and the kernel Vendi score
 * (vendi_kernel). Each reads the window's rows — or, above `max_rows`, a uniform sample of them
 * drawn with the stream's seed (the answer says how many: ew_result_t.sample_rows) — forms their
 * n×n kernel matrix in the workspace (linalg/kernel.c) and reduces it: an eigensolve of order n
 * (dse, vendi_kernel) or a mean (rke). */
#include "metrics_priv.h"
#include "../linalg/linalg.h"

#include <math.h>
#include <stdlib.h>

/* The reference code's floor added to every diffusion probability (dse-dsmi: np.finfo(float).eps),
 * not renormalised. */
#define DSE_EPS 2.220446049250313e-16
/* The sample's seed: the stream's, mixed with this tag so that the kernel sample does not repeat
 * the shuffle buffer's draws. */
#define SAMPLE_TAG 0x6b65726e656cull /* "kernel" */

static int cmp_size(const void *a, const void *b) {
  size_t x = *(const size_t *)a, y = *(const size_t *)b;
  return (x > y) - (x < y);
}

/* The window's rows (N×d f32 in arrival order) and, when N > max_rows, a uniform sample of
 * max_rows of them (ascending indices, a partial Fisher–Yates seeded with the stream's seed:
 * the same rows for the same window and seed). 0, or the answer's failure. */
static int kernel_rows(mctx_t *cx, size_t max_rows, const float **rows, const size_t **pick,
                       size_t *n) {
  size_t N = 0;
  int rc = ew__view_rows(&cx->v, rows, &N);
  if (rc)
    return ew__m_view_fail(cx, rc);
  if (N < 2)
    return ew__m_fail(cx, EW_EDEGENERATE, "a kernel metric needs at least 2 rows in the window "
                      "(it has %zu)", N);
  *pick = NULL;
  *n = N;
  if (N <= max_rows)
    return 0;
  size_t *idx = ew__ws_alloc(cx->ws, N * sizeof *idx);
  if (!idx)
    return ew__m_fail(cx, EW_ENOMEM, "%s", ew_strerror(EW_ENOMEM));
  for (size_t i = 0; i < N; i++)
    idx[i] = i;
  ew__rng_t rng;
  ew__rng_seed(&rng, cx->cfg->seed ^ SAMPLE_TAG);
  for (size_t i = 0; i < max_rows; i++) {
    size_t j = i + (size_t)ew__rng_below(&rng, N - i), t = idx[i];
    idx[i] = idx[j], idx[j] = t;
  }
  qsort(idx, max_rows, sizeof *idx, cmp_size);
  *pick = idx;
  *n = max_rows;
  cx->out->sample_rows = max_rows;
  return 0;
}

/* The kernel matrix of the window's rows (or their sample) in ws: *K n×n. */
static int kernel_of(mctx_t *cx, ew__kernel_t kind, double sigma, size_t max_rows, double **K,
                     size_t *n) {
  const float *rows;
  const size_t *pick;
  int rc = kernel_rows(cx, max_rows, &rows, &pick, n);
  if (rc)
    return rc;
  if (!(*K = ew__ws_alloc(cx->ws, *n * *n * sizeof(double))))
    return ew__m_fail(cx, EW_ENOMEM, "the %zu x %zu kernel matrix does not fit (max_rows bounds "
                      "it)", *n, *n);
  rc = ew__kernel_matrix(rows, cx->d, pick, *n, kind, sigma, *K, cx->ws);
  return rc ? ew__m_fail(cx, rc, "%s", ew_strerror(rc)) : 0;
}

/* Eigenvalues of the symmetric K (n×n, destroyed) into *w (ws). */
static int eigs_of(mctx_t *cx, double *K, size_t n, double **w) {
  if (!(*w = ew__ws_alloc(cx->ws, n * sizeof(double))))
    return ew__m_fail(cx, EW_ENOMEM, "%s", ew_strerror(EW_ENOMEM));
  int rc = ew__eigvals(K, n, *w, cx->ws);
  return rc ? ew__m_fail(cx, rc, "%s", ew_strerror(rc)) : 0;
}

int ew__m_dse(mctx_t *cx) {
  double sigma = cx->p[0], t = cx->p[1], *K, *w;
  size_t n;
  int rc = kernel_of(cx, EW__KERNEL_GAUSSIAN, sigma, (size_t)cx->p[2], &K, &n);
  if (rc)
    return rc;
  double *r = ew__ws_alloc(cx->ws, n * sizeof(double));
  if (!r)
    return ew__m_fail(cx, EW_ENOMEM, "%s", ew_strerror(EW_ENOMEM));
  for (size_t i = 0; i < n; i++) { /* D^-1/2 G D^-1/2: the symmetric diffusion matrix */
    double s = 0;
    for (size_t j = 0; j < n; j++)
      s += K[i * n + j];
    r[i] = 1.0 / sqrt(s);
  }
  for (size_t i = 0; i < n; i++)
    for (size_t j = 0; j < n; j++)
      K[i * n + j] *= r[i] * r[j];
  if ((rc = eigs_of(cx, K, n, &w)) != 0)
    return rc;
  double z = 0;
  for (size_t i = 0; i < n; i++)
    z += (w[i] = pow(fabs(w[i]), t));
  if (!(z > 0))
    return ew__m_fail(cx, EW_EDEGENERATE, "the diffusion matrix has no spectrum");
  double h = 0;
  for (size_t i = 0; i < n; i++) {
    double p = w[i] / z + DSE_EPS;
    h -= p * log2(p);
  }
  return ew__m_scalar(cx, h);
}

int ew__m_rke(mctx_t *cx) {
  double sigma = cx->p[0], *K;
  size_t n;
  if (isnan(sigma))
    return ew__m_fail(cx, EW_EBADPARAM, "rke needs 'sigma' (the Gaussian kernel's bandwidth; the "
                      "RKE reference has no default)");
  int rc = kernel_of(cx, EW__KERNEL_GAUSSIAN, sigma, (size_t)cx->p[1], &K, &n);
  if (rc)
    return rc;
  double s = 0;
  for (size_t i = 0; i < n; i++) {
    double row = 0;
    for (size_t j = 0; j < n; j++)
      row += K[i * n + j] * K[i * n + j];
    s += row;
  }
  return ew__m_scalar(cx, (double)n * (double)n / s);
}

int ew__m_vendi_kernel(mctx_t *cx) {
  ew__kernel_t kind = (ew__kernel_t)(int)cx->p[0];
  double sigma = cx->p[1], q = cx->p[2], *K, *w;
  size_t n;
  if (kind != EW__KERNEL_COSINE && isnan(sigma))
    return ew__m_fail(cx, EW_EBADPARAM, "vendi_kernel with kernel %s needs 'sigma' (its "
                      "bandwidth)", kind == EW__KERNEL_GAUSSIAN ? "gaussian" : "laplacian");
  int rc = kernel_of(cx, kind, sigma, (size_t)cx->p[3], &K, &n);
  if (rc || (rc = eigs_of(cx, K, n, &w)) != 0)
    return rc;
  double h = 0, top = 0; /* the entropy of order q of eig(K/n), non-positive values dropped */
  for (size_t i = 0; i < n; i++) {
    double l = w[i] / (double)n;
    if (!(l > 0))
      continue;
    top = l > top ? l : top;
    h += q == 1 ? -l * log(l) : pow(l, q);
  }
  if (!(top > 0))
    return ew__m_fail(cx, EW_EDEGENERATE, "the kernel matrix has no positive eigenvalue");
  if (isinf(q))
    h = -log(top);
  else if (q != 1)
    h = log(h) / (1 - q);
  return ew__m_scalar(cx, exp(h));
}
