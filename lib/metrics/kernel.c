/* metrics/kernel.c — the kernel metrics of a window's rows (docs/METRICS.md, "Kernel metrics"):
 * diffusion spectral entropy (dse), the RKE mode count (rke) and the kernel Vendi score
 * (vendi_kernel). Each reads the window's rows — or, above `max_rows`, a uniform sample of them
 * drawn with the stream's seed (the answer says how many: ew_result_t.sample_rows) — forms their
 * n×n kernel matrix in the workspace (linalg/kernel.c) and reduces it: an eigensolve of order n
 * (dse, vendi_kernel) or a mean (rke). */
#include "metrics_priv.h"
#include "../linalg/linalg.h"

#include <math.h>
#include <stdbool.h>
#include <stdlib.h>

/* The reference code's floor added to every diffusion probability (dse-dsmi: np.finfo(float).eps),
 * not renormalised. */
#define DSE_EPS 2.220446049250313e-16
/* The sample's seed: the stream's, mixed with this tag so that the kernel sample does not repeat
 * the shuffle buffer's draws. */
#define SAMPLE_TAG 0x6b65726e656cull /* "kernel" */
/* Matched DSMI: the expectation over a label's baseline subsets is exact (every subset) up to this
 * many of them, else the mean of `reps` drawn with the stream's seed mixed with this tag. */
#define DSMI_EXACT_MAX 64
#define DSMI_TAG 0x64736d69ull /* "dsmi" */
/* The spectrum cache's kinds (view/kspec.c): dse's diffusion matrix, vendi_kernel's kernels. */
#define KSPEC_DSE 0
#define KSPEC_KERNEL 1

static int cmp_size(const void *a, const void *b) {
  size_t x = *(const size_t *)a, y = *(const size_t *)b;
  return (x > y) - (x < y);
}

/* The first m of a partial Fisher–Yates over [0, N) (idx holds N), seeded: idx[0, m) ascending. */
static void draw(size_t *idx, size_t N, size_t m, uint64_t seed) {
  for (size_t i = 0; i < N; i++)
    idx[i] = i;
  ew__rng_t rng;
  ew__rng_seed(&rng, seed);
  for (size_t i = 0; i < m; i++) {
    size_t j = i + (size_t)ew__rng_below(&rng, N - i), t = idx[i];
    idx[i] = idx[j], idx[j] = t;
  }
  qsort(idx, m, sizeof *idx, cmp_size);
}

/* The window's rows (N×d f32 in arrival order), with their labels when `labels` is not NULL
 * (NULL: the window keeps none), and, when N > max_rows, a uniform sample of max_rows of them
 * (ascending indices, a partial Fisher–Yates seeded with the stream's seed: the same rows for the
 * same window and seed). 0, or the answer's failure. */
static int kernel_rows(mctx_t *cx, size_t max_rows, const float **rows, const uint32_t **labels,
                       const size_t **pick, size_t *n) {
  size_t N = 0;
  int rc = ew__view_rows_labels(&cx->v, rows, labels, &N);
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
  draw(idx, N, max_rows, cx->cfg->seed ^ SAMPLE_TAG);
  *pick = idx;
  *n = max_rows;
  cx->out->sample_rows = max_rows;
  return 0;
}

/* A bandwidth the kernels can use: finite and positive (0 divides; the parameter's range
 * includes 0 for the table's sake). 0, or the answer's failure. */
static int sigma_ok(mctx_t *cx, double sigma) {
  if (sigma > 0 && isfinite(sigma))
    return 0;
  return ew__m_fail(cx, EW_EBADPARAM, "'sigma' must be a positive number (got %g)", sigma);
}

/* The kernel matrix of the window's rows (or their sample) in ws: *K n×n. */
static int kernel_of(mctx_t *cx, ew__kernel_t kind, double sigma, size_t max_rows, double **K,
                     size_t *n) {
  const float *rows;
  const size_t *pick;
  int rc = kernel_rows(cx, max_rows, &rows, NULL, &pick, n);
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

/* DSE in bits of the rows pick[0, n) of `rows` (the Gaussian kernel, its symmetric diffusion
 * matrix, |λ|^t normalised plus the floor). 0, or the answer's failure. */
/* The eigenvalues of the symmetric diffusion matrix D^−½ G D^−½ of the rows pick[0, n) (G their
 * Gaussian kernel) into *w (ws). 0, or the answer's failure. */
static int diffusion_eigs(mctx_t *cx, const float *rows, const size_t *pick, size_t n,
                          double sigma, double **w) {
  double *K = ew__ws_alloc(cx->ws, n * n * sizeof(double));
  double *r = K ? ew__ws_alloc(cx->ws, n * sizeof(double)) : NULL;
  if (!r)
    return ew__m_fail(cx, EW_ENOMEM, "the %zu x %zu kernel matrix does not fit (max_rows bounds "
                      "it)", n, n);
  int rc = ew__kernel_matrix(rows, cx->d, pick, n, EW__KERNEL_GAUSSIAN, sigma, K, cx->ws);
  if (rc)
    return ew__m_fail(cx, rc, "%s", ew_strerror(rc));
  for (size_t i = 0; i < n; i++) { /* D^-1/2 G D^-1/2: the symmetric diffusion matrix */
    double s = 0;
    for (size_t j = 0; j < n; j++)
      s += K[i * n + j];
    r[i] = 1.0 / sqrt(s);
  }
  for (size_t i = 0; i < n; i++)
    for (size_t j = 0; j < n; j++)
      K[i * n + j] *= r[i] * r[j];
  return eigs_of(cx, K, n, w);
}

/* DSE in bits from the diffusion matrix's eigenvalues w[0, n): p = |λ|^t normalised, plus the
 * floor. 0, or the answer's failure. */
static int dse_from(mctx_t *cx, const double *w, size_t n, double t, double *out) {
  double z = 0;
  for (size_t i = 0; i < n; i++)
    z += pow(fabs(w[i]), t);
  if (!(z > 0))
    return ew__m_fail(cx, EW_EDEGENERATE, "the diffusion matrix has no spectrum");
  double h = 0;
  for (size_t i = 0; i < n; i++) {
    double p = pow(fabs(w[i]), t) / z + DSE_EPS;
    h -= p * log2(p);
  }
  *out = h;
  return 0;
}

/* DSE in bits of the rows pick[0, n) of `rows`. 0, or the answer's failure. */
static int dse_of(mctx_t *cx, const float *rows, const size_t *pick, size_t n, double sigma,
                  double t, double *out) {
  ew__ws_mark_t mk = ew__ws_mark(cx->ws);
  double *w;
  int rc = diffusion_eigs(cx, rows, pick, n, sigma, &w);
  if (rc == 0)
    rc = dse_from(cx, w, n, t, out);
  ew__ws_release(cx->ws, mk);
  return rc;
}

int ew__m_dse(mctx_t *cx) {
  const float *rows;
  const size_t *pick;
  const double *cached;
  double *w, h, sigma = cx->p[0];
  size_t n, max_rows = (size_t)cx->p[2];
  uint64_t sample;
  int rc = sigma_ok(cx, sigma);
  if (rc)
    return rc;
  if (ew__view_kspec_get(&cx->v, KSPEC_DSE, sigma, max_rows, &cached, &n, &sample) == 0) {
    cx->out->sample_rows = sample; /* the diffusion spectrum of these rows, solved before */
    rc = dse_from(cx, cached, n, cx->p[1], &h);
    return rc ? rc : ew__m_scalar(cx, h);
  }
  if ((rc = kernel_rows(cx, max_rows, &rows, NULL, &pick, &n)) != 0 ||
      (rc = diffusion_eigs(cx, rows, pick, n, sigma, &w)) != 0)
    return rc;
  ew__view_kspec_put(&cx->v, KSPEC_DSE, sigma, max_rows, w, n, cx->out->sample_rows);
  rc = dse_from(cx, w, n, cx->p[1], &h);
  return rc ? rc : ew__m_scalar(cx, h);
}

/* C(n, k), saturated at limit + 1. */
static uint64_t choose(size_t n, size_t k, uint64_t limit) {
  uint64_t c = 1;
  for (size_t i = 1; i <= k; i++) {
    c = c * (n - k + i) / i; /* exact: c·(n−k+i) is divisible by i at every step */
    if (c > limit)
      return limit + 1;
  }
  return c;
}

/* The next k-subset of [0, n) in lexicographic order after s (ascending); false after the last. */
static bool next_subset(size_t *s, size_t k, size_t n) {
  size_t i = k;
  while (i > 0 && s[i - 1] == n - k + i - 1)
    i--;
  if (i == 0)
    return false;
  s[i - 1]++;
  for (size_t j = i; j < k; j++)
    s[j] = s[j - 1] + 1;
  return true;
}

int ew__m_dsmi(mctx_t *cx) {
  double sigma = cx->p[0], t = cx->p[1], total = 0, h;
  bool full = (int)cx->p[2] == 1;
  size_t reps = (size_t)cx->p[3], n;
  const float *rows;
  const uint32_t *labels;
  const size_t *pick;
  int rc = sigma_ok(cx, sigma);
  if (rc == 0)
    rc = kernel_rows(cx, (size_t)cx->p[4], &rows, &labels, &pick, &n);
  if (rc)
    return rc;
  if (!labels)
    return ew__m_fail(cx, EW_EBADPARAM, "dsmi needs a label per row, and this stream's rows came "
                      "without them (ingest them with 'labels')");
  size_t *at = ew__ws_alloc(cx->ws, n * sizeof *at), *grp = ew__ws_alloc(cx->ws, n * sizeof *grp);
  size_t *sub = ew__ws_alloc(cx->ws, n * sizeof *sub), *idx = ew__ws_alloc(cx->ws, n * sizeof *idx);
  uint32_t *lab = ew__ws_alloc(cx->ws, n * sizeof *lab);
  if (!at || !grp || !sub || !idx || !lab)
    return ew__m_fail(cx, EW_ENOMEM, "%s", ew_strerror(EW_ENOMEM));
  for (size_t i = 0; i < n; i++) /* the rows read (the sample's, or every one) and their labels */
    at[i] = pick ? pick[i] : i, lab[i] = labels[at[i]];
  if (full) {
    if ((rc = dse_of(cx, rows, at, n, sigma, t, &h)) != 0)
      return rc;
    total = h;
  }
  uint32_t done = 0;
  bool any = false;
  for (;;) { /* each label, ascending */
    bool found = false;
    uint32_t next = 0;
    for (size_t i = 0; i < n; i++)
      if ((!any || lab[i] > done) && (!found || lab[i] < next))
        next = lab[i], found = true;
    if (!found)
      break;
    any = true, done = next;
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
      if (lab[i] == next)
        grp[k++] = at[i];
    double w = (double)k / (double)n, own;
    if ((rc = dse_of(cx, rows, grp, k, sigma, t, &own)) != 0)
      return rc;
    if (full) {
      total -= w * own;
      continue;
    }
    double base = 0; /* E[DSE(S)], S a uniform k-subset of the rows read */
    uint64_t count = choose(n, k, DSMI_EXACT_MAX);
    if (count <= DSMI_EXACT_MAX) { /* every subset */
      for (size_t j = 0; j < k; j++)
        sub[j] = j;
      do {
        for (size_t j = 0; j < k; j++)
          idx[j] = at[sub[j]];
        if ((rc = dse_of(cx, rows, idx, k, sigma, t, &h)) != 0)
          return rc;
        base += h;
      } while (next_subset(sub, k, n));
      base /= (double)count;
    } else { /* reps draws, the generator started afresh for each label (as the reference) */
      ew__rng_t rng;
      ew__rng_seed(&rng, cx->cfg->seed ^ DSMI_TAG);
      for (size_t r = 0; r < reps; r++) {
        for (size_t j = 0; j < n; j++)
          sub[j] = j;
        for (size_t j = 0; j < k; j++) {
          size_t m = j + (size_t)ew__rng_below(&rng, n - j), tmp = sub[j];
          sub[j] = sub[m], sub[m] = tmp;
        }
        qsort(sub, k, sizeof *sub, cmp_size);
        for (size_t j = 0; j < k; j++)
          idx[j] = at[sub[j]];
        if ((rc = dse_of(cx, rows, idx, k, sigma, t, &h)) != 0)
          return rc;
        base += h;
      }
      base /= (double)reps;
    }
    total += w * (base - own);
  }
  return ew__m_scalar(cx, total);
}

int ew__m_rke(mctx_t *cx) {
  double sigma = cx->p[0], *K;
  size_t n;
  if (isnan(sigma))
    return ew__m_fail(cx, EW_EBADPARAM, "rke needs 'sigma' (the Gaussian kernel's bandwidth; the "
                      "RKE reference has no default)");
  if (sigma_ok(cx, sigma))
    return cx->out->code;
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
  if (kind != EW__KERNEL_COSINE && sigma_ok(cx, sigma))
    return cx->out->code;
  size_t max_rows = (size_t)cx->p[3];
  const double *cached;
  uint64_t sample;
  if (ew__view_kspec_get(&cx->v, KSPEC_KERNEL + (int)kind, sigma, max_rows, &cached, &n,
                         &sample) == 0) {
    cx->out->sample_rows = sample; /* this kernel's spectrum of these rows, solved before */
    w = (double *)cached;
  } else {
    int rc = kernel_of(cx, kind, sigma, max_rows, &K, &n);
    if (rc || (rc = eigs_of(cx, K, n, &w)) != 0)
      return rc;
    ew__view_kspec_put(&cx->v, KSPEC_KERNEL + (int)kind, sigma, max_rows, w, n,
                       cx->out->sample_rows);
  }
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
