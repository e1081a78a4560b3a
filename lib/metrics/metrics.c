/* metrics/metrics.c — the metric table and the query dispatcher.
 *
 * Every metric is one row of `metric_table` below: its name, value kind, accepted sources and
 * defaults, parameters (with defaults and ranges), cost class, one-line doc, and the function that
 * computes it. The dispatcher (ew_stream_query), the `metrics` listing and docs/METRICS.md are all
 * driven by this one table; adding a metric is adding a row and its function.
 *
 * Conventions shared by every row (docs/METRICS.md, "Conventions"): eigenvalues λ are those of the chosen matrix A
 * (C = M2/W when centred, S = C + μμᵀ when not, ZᵀZ/N for window_cn), clamped at 0 with the
 * number clamped reported; p = λ / Σλ; natural log; 0·ln 0 = 0. States that cannot define a
 * metric (no rows; fewer than 2 rows for a centred matrix; zero trace for metrics normalised by
 * the trace) answer EW_EDEGENERATE with a sentence, never 0 or NaN. */
#include "metrics_priv.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SRC_ALL EW_SOURCE_BIT(EW_SOURCE_ALL)
#define SRC_WIN EW_SOURCE_BIT(EW_SOURCE_WINDOW)
#define SRC_CN EW_SOURCE_BIT(EW_SOURCE_WINDOW_CN)
#define SRC_EVERY (SRC_ALL | SRC_WIN | SRC_CN)

typedef int (*metric_fn)(mctx_t *cx);

typedef struct {
  ew_metric_info_t info; /* the typed columns (eigenwatch.h) */
  metric_fn fn;
} metric_row_t;

/* ---- the metrics ---- */

static int m_entropy(mctx_t *cx) {
  double h, tr;
  int rc = ew__m_spectral_entropy(cx, &h, &tr);
  return rc ? rc : ew__m_scalar(cx, h);
}

static int m_entropy_normalized(mctx_t *cx) {
  if (cx->d < 2)
    return ew__m_fail(cx, EW_EDEGENERATE, "entropy_normalized divides by ln d, which is 0 for d = 1");
  double h, tr;
  int rc = ew__m_spectral_entropy(cx, &h, &tr);
  if (rc == 0 && cx->out->has_error)
    cx->out->error /= log((double)cx->d);
  return rc ? rc : ew__m_scalar(cx, h / log((double)cx->d));
}

static int m_renyi(mctx_t *cx) {
  double h;
  int rc = ew__m_renyi_of(cx, cx->p[0], &h);
  return rc ? rc : ew__m_scalar(cx, h);
}

/* exp of an estimate h ± e: the bar of exp(h) is exp(h)·(exp(e) − 1) (the wider side) */
static int scalar_exp(mctx_t *cx, double h) {
  if (cx->out->has_error)
    cx->out->error = exp(h) * expm1(cx->out->error);
  return ew__m_scalar(cx, exp(h));
}

static int m_vendi(mctx_t *cx) {
  double h;
  int rc = ew__m_renyi_of(cx, cx->p[0], &h);
  return rc ? rc : scalar_exp(cx, h);
}

static int m_erank(mctx_t *cx) {
  double h, tr;
  int rc = ew__m_spectral_entropy(cx, &h, &tr);
  return rc ? rc : scalar_exp(cx, h);
}

static int m_rankme(mctx_t *cx) {
  int rc = ew__m_need_eig(cx);
  if (rc)
    return rc;
  size_t m = cx->rows < cx->d ? (size_t)cx->rows : cx->d;
  double tot = 0;
  for (size_t i = 0; i < m; i++)
    tot += sqrt(cx->eig[i]);
  if (!(tot > 0))
    return ew__m_check_trace(cx, 0);
  double eps = cx->p[0], h = 0;
  for (size_t i = 0; i < m; i++) {
    double r = sqrt(cx->eig[i]) / tot + eps;
    if (r > 0)
      h -= r * log(r);
  }
  return ew__m_scalar(cx, exp(h));
}

static int m_participation_ratio(mctx_t *cx) {
  double tr, fro2;
  int rc = ew__m_trace_fro(cx, &tr, &fro2);
  if (rc || (rc = ew__m_check_trace(cx, tr)))
    return rc;
  return ew__m_scalar(cx, tr * tr / fro2);
}

static int m_stable_rank(mctx_t *cx) {
  double l1, tr, r;
  int rc = ew__m_top1_trace(cx, &l1, &tr, &r);
  if (rc)
    return rc;
  if (r > 0)
    ew__m_set_error(cx, l1 > r ? tr / (l1 - r) - tr / l1 : INFINITY); /* λ₁ ∈ [θ − r, θ + r] */
  return ew__m_scalar(cx, tr / l1);
}

static int m_condition_number(mctx_t *cx) {
  int rc = ew__m_need_eig(cx);
  if (rc)
    return rc;
  double lmax = cx->eig[0];
  if (!(lmax > 0))
    return ew__m_check_trace(cx, 0);
  double cut = cx->p[0] * lmax, lmin = lmax;
  for (size_t i = 0; i < cx->d; i++)
    if (cx->eig[i] > cut && cx->eig[i] < lmin)
      lmin = cx->eig[i];
  return ew__m_scalar(cx, lmax / lmin);
}

static int m_anisotropy(mctx_t *cx) {
  double l1, tr, r;
  int rc = ew__m_top1_trace(cx, &l1, &tr, &r);
  if (rc)
    return rc;
  if (r > 0)
    ew__m_set_error(cx, r / tr);
  return ew__m_scalar(cx, l1 / tr);
}

static int m_spectral_gap(mctx_t *cx) {
  if (cx->d < 2)
    return ew__m_fail(cx, EW_EDEGENERATE, "spectral_gap needs two eigenvalues; d = 1 has one");
  double l[2], r;
  int rc = ew__m_need_top(cx, 2, l, &r);
  if (rc)
    return rc;
  if (!(l[1] > r))
    return ew__m_fail(cx, EW_EDEGENERATE,
                "the second eigenvalue is zero (rank <= 1), so lambda_1/lambda_2 is undefined");
  if (r > 0)
    ew__m_set_error(cx, (l[0] + r) / (l[1] - r) - l[0] / l[1]);
  return ew__m_scalar(cx, l[0] / l[1]);
}

static int list_of(mctx_t *cx, const double *v, size_t n) {
  double *l = malloc((n ? n : 1) * sizeof(double));
  if (!l)
    return ew__m_fail(cx, EW_ENOMEM, "out of memory for a list of %zu values", n);
  memcpy(l, v, n * sizeof(double));
  cx->out->kind = EW_VALUE_LIST;
  cx->out->list = l;
  cx->out->len = n;
  return 0;
}

static int m_topk(mctx_t *cx) {
  size_t k = (size_t)cx->p[0];
  if (k > cx->d)
    k = cx->d;
  size_t kmax = ew__view_sketch_dirs(&cx->v);
  if (kmax && k > kmax)
    return ew__m_fail(cx, EW_EBADPARAM,
                "topk k = %zu asks for more directions than this stream's sketch holds (2 x "
                "sketch_rows + 1 = %zu); ask for at most %zu",
                k, kmax, kmax);
  bool vectors = cx->p[1] != 0;
  if (!vectors) {
    double *theta = malloc(k * sizeof(double)), r;
    if (!theta)
      return ew__m_fail(cx, EW_ENOMEM, "out of memory");
    int rc = ew__m_need_top(cx, k, theta, &r);
    if (rc == 0)
      rc = list_of(cx, theta, k);
    free(theta);
    if (rc == 0 && r > 0)
      ew__m_set_error(cx, r);
    return rc;
  }
  /* eigenpairs: subspace iteration, warm-started from the last answer (view.c) */
  size_t d = cx->d;
  double *theta = malloc(k * sizeof(double)), *U = malloc(k * d * sizeof(double));
  double resid = 0;
  int rc = (theta && U) ? ew__view_topk(&cx->v, k, theta, U, &resid) : EW_ENOMEM;
  if (rc != 0) {
    free(theta);
    free(U);
    return ew__m_fail(cx, rc, "%s", rc == EW_ELAPACK ? "the top-k eigensolver failed on this state"
                                               : ew_strerror(rc));
  }
  for (size_t i = 0; i < k; i++)
    if (theta[i] < 0) {
      theta[i] = 0;
      cx->out->clamped++;
    }
  cx->out->kind = EW_VALUE_LIST;
  cx->out->list = theta;
  cx->out->len = k;
  cx->out->vectors = U;
  cx->out->dim = d;
  cx->out->has_error = 1;
  cx->out->error = resid;
  return 0;
}

/* The live estimate's vectors with their Rayleigh quotients against the view's matrix and the
 * certificate of live/cert.c (the distance to the top eigenpairs, not only to some eigenpair). */
static int m_live_topk(mctx_t *cx) {
  size_t d = cx->d, want = (size_t)cx->p[0], kept;
  uint64_t consumed;
  double *V = malloc((want < d ? want : d) * d * sizeof(double));
  if (!V)
    return ew__m_fail(cx, EW_ENOMEM, "out of memory");
  size_t k = ew__view_live(&cx->v, V, want, &consumed, &kept);
  if (k == 0) {
    free(V);
    if (kept == 0)
      return ew__m_fail(cx, EW_EDEGENERATE,
                  "this stream keeps no live estimate (create it with live_k > 0)");
    return ew__m_fail(cx, EW_EDEGENERATE,
                "the live estimate has not taken its first power step yet (%llu rows have left "
                "its randomising buffer; it steps every %zu)",
                (unsigned long long)consumed, d / 2 > 256 ? d / 2 : 256);
  }
  double *theta = malloc(k * sizeof(double)), worst = 0;
  /* the Lanczos steps' random columns: seeded by what the estimate has seen, so that the same
   * state answers the same certificate */
  int rc = theta ? ew__live_certify(&cx->v, V, k, consumed ^ 0x11fec3u, theta, &worst, NULL)
                 : EW_ENOMEM;
  if (rc) {
    free(V);
    free(theta);
    return ew__m_view_fail(cx, rc);
  }
  double *U = malloc(k * d * sizeof(double));
  if (!U || cx->p[1] == 0) {
    free(U);
    U = NULL;
  } else {
    memcpy(U, V, k * d * sizeof(double));
  }
  free(V);
  if (cx->p[1] != 0 && !U) {
    free(theta);
    return ew__m_fail(cx, EW_ENOMEM, "out of memory");
  }
  cx->out->kind = EW_VALUE_LIST;
  cx->out->list = theta;
  cx->out->len = k;
  cx->out->vectors = U;
  cx->out->dim = U ? d : 0;
  ew__m_set_error(cx, worst);
  cx->v.as_of = consumed; /* the rows the estimate describes */
  return 0;
}

static int m_spectrum(mctx_t *cx) {
  int rc = ew__m_need_eig(cx);
  return rc ? rc : list_of(cx, cx->eig, cx->d);
}

static int m_trace(mctx_t *cx) {
  double tr;
  int rc = ew__view_trace(&cx->v, &tr);
  return rc ? ew__m_view_fail(cx, rc) : ew__m_scalar(cx, tr);
}

static int m_nuclear_norm(mctx_t *cx) {
  if (ew__m_want_quick(cx)) {
    const ew__quick_t *q;
    int rc = ew__view_quick(&cx->v, &q);
    if (rc)
      return ew__m_view_fail(cx, rc);
    gfun_t g = {2, q->tr, 0};
    double sum, e;
    rc = ew__m_quick_sum(cx, q, &g, &sum, &e);
    if (rc < 0)
      return rc;
    if (rc == 0) { /* else (1) AUTO, and the bar is too wide: exact below */
      ew__m_set_error(cx, e / sqrt(cx->weight));
      return ew__m_scalar(cx, sum / sqrt(cx->weight));
    }
  }
  int rc = ew__m_need_eig(cx);
  if (rc)
    return rc;
  double t = 0;
  for (size_t i = 0; i < cx->d; i++)
    t += sqrt(cx->eig[i]);
  /* σ_k(X) = sqrt(W λ_k(A)), so Σσ/W = Σ sqrt(λ_k) / sqrt(W) */
  return ew__m_scalar(cx, t / sqrt(cx->weight));
}

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

static int m_mnn(mctx_t *cx) {
  double *diag = malloc(cx->d * sizeof(double));
  if (!diag)
    return ew__m_fail(cx, EW_ENOMEM, "out of memory");
  int rc = ew__view_diag(&cx->v, diag);
  rc = rc ? ew__m_view_fail(cx, rc) : mnn_from_diag(cx, diag);
  free(diag);
  return rc;
}

static int m_entropy_truncated(mctx_t *cx) {
  if (cx->d < 2)
    return ew__m_fail(cx, EW_EDEGENERATE, "entropy_truncated divides by ln d, which is 0 for d = 1");
  double tr;
  int rc = ew__m_eig_trace(cx, &tr);
  return rc ? rc : ew__m_scalar(cx, ew__m_entropy_of(cx->eig, cx->d, tr, (size_t)cx->p[0]) / log((double)cx->d));
}

static int m_l2_std(mctx_t *cx) {
  size_t d = cx->d, N = (size_t)cx->rows;
  if (N < 2)
    return ew__m_fail(cx, EW_EDEGENERATE, "l2_std needs at least 2 rows in the window (it has %zu)", N);
  const float *raw;
  int rc = ew__view_rows(&cx->v, &raw, &N);
  if (rc)
    return ew__m_view_fail(cx, rc);
  double *mu = calloc(2 * d, sizeof(double)), *m2 = mu + d;
  if (!mu)
    return ew__m_fail(cx, EW_ENOMEM, "out of memory");
  /* two passes over unit rows: per-dimension mean, then squared deviations (ddof = 1) */
  for (int pass = 0; pass < 2; pass++) {
    for (size_t r = 0; r < N; r++) {
      const float *x = raw + r * d;
      double nrm = 0;
      for (size_t j = 0; j < d; j++)
        nrm += (double)x[j] * x[j];
      double inv = nrm > 0 ? 1.0 / sqrt(nrm) : 0.0;
      for (size_t j = 0; j < d; j++) {
        double z = x[j] * inv;
        if (pass == 0)
          mu[j] += z;
        else
          m2[j] += (z - mu[j]) * (z - mu[j]);
      }
    }
    if (pass == 0)
      for (size_t j = 0; j < d; j++)
        mu[j] /= (double)N;
  }
  double t = 0;
  for (size_t j = 0; j < d; j++)
    t += sqrt(m2[j] / (double)(N - 1));
  free(mu);
  return ew__m_scalar(cx, t / (double)d);
}

/* ---- the table ---- */

#define PNUM(nm, def, lo, hi, intg, d)                                                            \
  {.name = nm, .type = EW_PARAM_NUMBER, .default_value = def, .min = lo, .max = hi,                \
   .integer = intg, .doc = d}

static const ew_param_info_t P_ALPHA[] = {
    PNUM("alpha", 2.0, 0.0, INFINITY, 0, "Renyi order; 1 = von Neumann, inf = min-entropy")};
static const ew_param_info_t P_Q[] = {
    PNUM("q", 1.0, 0.0, INFINITY, 0, "order of the Vendi score; inf = 1/p_max")};
static const ew_param_info_t P_EPS[] = {
    PNUM("eps", 1e-7, 0.0, 1.0, 0, "added to each normalised singular value (RankMe's epsilon)")};
static const ew_param_info_t P_RCOND[] = {
    PNUM("rcond", 1e-12, 0.0, 1.0, 0, "eigenvalues at or below rcond*lambda_max are ignored")};
static const ew_param_info_t P_TOPK[] = {
    PNUM("k", 8.0, 1.0, 65536.0, 1, "how many eigenvalues"),
    PNUM("vectors", 0.0, 0.0, 1.0, 1, "1 = also return unit eigenvectors")};
static const ew_param_info_t P_LIVE[] = {
    PNUM("k", 64.0, 1.0, 64.0, 1, "how many live vectors (at most the stream's live_k)"),
    PNUM("vectors", 0.0, 0.0, 1.0, 1, "1 = also return the unit vectors")};
static const ew_param_info_t P_TRUNC[] = {
    PNUM("k", 32.0, 1.0, 65536.0, 1, "number of leading eigenvalues summed")};

#define NP(arr) (sizeof(arr) / sizeof(arr[0]))
/* ROW(name, value kind, sources, default source, default center, needs, cost note, sketch answer,
 *     merges exactly, method applies, params, function, doc). Every row applies to matrix
 * streams (the only kind today). */
#define ROW(nm, vk, srcs, dsrc, dctr, nd, note, sk, mrg, mth, pa, fnp, docs)                      \
  {{.name = nm, .kind = EW_VALUE_##vk, .kinds = EW_METRIC_KIND_MATRIX, .sources = srcs,           \
    .def_source = dsrc, .def_center = dctr, .needs = nd, .cost_note = note,                       \
    .sketch = EW_SK_##sk, .merges_exact = mrg, .method = mth, .params = pa, .nparams = NP_##pa,    \
    .doc = docs},                                                                                 \
   fnp}
#define NP_NULL 0
#define NP_P_ALPHA NP(P_ALPHA)
#define NP_P_Q NP(P_Q)
#define NP_P_EPS NP(P_EPS)
#define NP_P_RCOND NP(P_RCOND)
#define NP_P_TOPK NP(P_TOPK)
#define NP_P_LIVE NP(P_LIVE)
#define NP_P_TRUNC NP(P_TRUNC)
#define ALL EW_SOURCE_ALL
#define EIG EW_NEED_EIGENVALUES
#define TOP EW_NEED_TOP

static const metric_row_t metric_table[] = {
    ROW("entropy", SCALAR, SRC_EVERY, ALL, 1, EIG, NULL, BRACKET, 1, 1, NULL, m_entropy,
        "von Neumann entropy -sum p ln p of p = lambda/sum lambda"),
    ROW("entropy_normalized", SCALAR, SRC_EVERY, ALL, 1, EIG, NULL, BRACKET, 1, 1, NULL,
        m_entropy_normalized, "entropy / ln d, in [0, 1]"),
    ROW("renyi", SCALAR, SRC_EVERY, ALL, 1, EIG, "alpha=2: O(d^2)", BRACKET, 1, 1, P_ALPHA, m_renyi,
        "Renyi entropy ln(sum p^alpha)/(1-alpha); alpha=1 entropy, alpha=inf -ln p_max"),
    ROW("vendi", SCALAR, SRC_EVERY, ALL, 1, EIG, "q=2: O(d^2)", BRACKET, 1, 1, P_Q, m_vendi,
        "Vendi score exp(renyi_q); with normalize=l2 and center=false equals score_dual(X, q)"),
    ROW("erank", SCALAR, SRC_EVERY, ALL, 1, EIG, NULL, BRACKET, 1, 1, NULL, m_erank,
        "Roy-Vetterli effective rank exp(entropy)"),
    ROW("rankme", SCALAR, SRC_ALL | SRC_WIN, ALL, 0, EIG, NULL, REFUSED, 1, 0, P_EPS, m_rankme,
        "RankMe exp(-sum r ln r), r = sigma/sum sigma + eps over min(n,d) singular values of the "
        "uncentred rows"),
    ROW("participation_ratio", SCALAR, SRC_EVERY, ALL, 1, EW_NEED_MATRIX, NULL, BRACKET, 1, 0, NULL,
        m_participation_ratio, "(tr A)^2 / tr(A^2), no eigensolve"),
    ROW("stable_rank", SCALAR, SRC_EVERY, ALL, 1, TOP, NULL, INTERVAL, 1, 0, NULL, m_stable_rank,
        "tr A / lambda_max"),
    ROW("condition_number", SCALAR, SRC_EVERY, ALL, 1, EIG, NULL, REFUSED, 1, 0, P_RCOND,
        m_condition_number, "lambda_max / lambda_min over eigenvalues above rcond*lambda_max"),
    ROW("anisotropy", SCALAR, SRC_EVERY, ALL, 1, TOP, NULL, INTERVAL, 1, 0, NULL, m_anisotropy,
        "lambda_max / tr A"),
    ROW("spectral_gap", SCALAR, SRC_EVERY, ALL, 1, TOP, NULL, INTERVAL, 1, 0, NULL, m_spectral_gap,
        "lambda_1 / lambda_2"),
    ROW("topk", LIST, SRC_EVERY, ALL, 1, TOP, "block Lanczos above d=512", INTERVAL, 1, 0, P_TOPK,
        m_topk, "the k largest eigenvalues, descending (optionally with unit eigenvectors)"),
    {{.name = "live_topk", .kind = EW_VALUE_LIST, .kinds = EW_METRIC_KIND_MATRIX,
      .sources = SRC_ALL | SRC_WIN, .def_source = ALL, .def_center = 1,
      .needs = EW_NEED_LIVE | TOP,
      .cost_own = "5 block Lanczos steps of max(8, k+4) columns (the certificate)",
      .sketch = EW_SK_CERTIFICATE, .merges_exact = 0, .method = 0, .params = P_LIVE,
      .nparams = NP(P_LIVE),
      .doc = "the live estimate's top directions (random-order block power): v'Av per vector, "
             "error = max_i max(||Av_i - th_i v_i||, |lambda_i - th_i| bracket) / th_i against "
             "the source"},
     m_live_topk},
    ROW("spectrum", LIST, SRC_EVERY, ALL, 1, EIG, NULL, REFUSED, 1, 0, NULL, m_spectrum,
        "all d eigenvalues, descending"),
    ROW("trace", SCALAR, SRC_EVERY, ALL, 1, EW_NEED_DIAG, NULL, EXACT, 1, 0, NULL, m_trace,
        "tr A (total variance when centred)"),
    ROW("nuclear_norm", SCALAR, SRC_EVERY, ALL, 1, EIG, NULL, BRACKET, 1, 1, NULL, m_nuclear_norm,
        "sum of singular values of the (preprocessed, centred if center) rows divided by n"),
    ROW("mnn", SCALAR, SRC_EVERY, ALL, 1, EW_NEED_DIAG, NULL, EXACT, 1, 0, NULL, m_mnn,
        "Matrix Nuclear-Norm L1,2 approximation: top min(n,d) column norms summed, over n"),
    ROW("entropy_truncated", SCALAR, SRC_EVERY, ALL, 1, EIG, NULL, REFUSED, 1, 0, P_TRUNC,
        m_entropy_truncated, "UNComp truncated entropy -sum_{i<=k} p_i ln p_i / ln d"),
    ROW("diff_erank", SCALAR, SRC_CN, EW_SOURCE_WINDOW_CN, 0, EW_NEED_ROWS | EIG, NULL, EXACT, 0,
        0, NULL, m_erank,
        "Diff-eRank's erank: window rows centred, L2-normalised, exp(entropy of Z'Z/N)"),
    ROW("mnn_exact", SCALAR, SRC_CN, EW_SOURCE_WINDOW_CN, 0, EW_NEED_ROWS, NULL, EXACT, 0, 0, NULL,
        m_mnn, "Matrix Nuclear-Norm / N with Diff-eRank preprocessing, exact on the window"),
    ROW("l2_std", SCALAR, SRC_WIN, EW_SOURCE_WINDOW, 0, EW_NEED_ROWS, NULL, EXACT, 0, 0, NULL,
        m_l2_std,
        "mean over dimensions of the std (ddof=1) of L2-normalised window rows; 0 = collapsed"),
};

#define N_METRICS (sizeof metric_table / sizeof metric_table[0])

EW_EXPORT size_t ew_metric_count(void) { return N_METRICS; }

EW_EXPORT const ew_metric_info_t *ew_metric_info(size_t i) {
  return i < N_METRICS ? &metric_table[i].info : NULL;
}

static const metric_row_t *find_row(const char *name) {
  if (!name)
    return NULL;
  for (size_t i = 0; i < N_METRICS; i++)
    if (strcmp(metric_table[i].info.name, name) == 0)
      return &metric_table[i];
  return NULL;
}

EW_EXPORT const ew_metric_info_t *ew_metric_find(const char *name) {
  const metric_row_t *r = find_row(name);
  return r ? &r->info : NULL;
}

EW_EXPORT void ew_result_clear(ew_result_t *r) {
  if (!r)
    return;
  free(r->list);
  free(r->vectors);
  memset(r, 0, sizeof *r);
}

/* Validates and resolves the query's parameters (ew_param_check, one per given value), source
 * and centring into cx. */
static int resolve(mctx_t *cx, const metric_row_t *row, const ew_query_t *q) {
  const ew_metric_info_t *info = &row->info;
  for (size_t i = 0; i < info->nparams; i++) {
    cx->p[i] = info->params[i].default_value;
    cx->s[i] = info->params[i].type == EW_PARAM_STRING ? info->params[i].default_str : NULL;
  }
  for (size_t k = 0; k < q->nparams; k++) {
    const ew_param_t *p = &q->params[k];
    const ew_param_info_t *pi = p->key ? ew_metric_param(info, p->key, strlen(p->key)) : NULL;
    if (!pi) {
      if (info->nparams == 0)
        return ew__m_fail(cx, EW_EBADPARAM, "metric '%s' takes no parameters (got '%s')", info->name,
                    p->key ? p->key : "(null)");
      return ew__m_fail(cx, EW_EBADPARAM, "metric '%s' has no parameter '%s' (it takes: %s%s%s)",
                  info->name, p->key ? p->key : "(null)", info->params[0].name,
                  info->nparams > 1 ? ", " : "", info->nparams > 1 ? info->params[1].name : "");
    }
    size_t i = (size_t)(pi - info->params);
    char msg[sizeof cx->out->message];
    if (ew_param_check(info, pi, p, &cx->p[i], &cx->s[i], msg, sizeof msg))
      return ew__m_fail(cx, EW_EBADPARAM, "%s", msg);
  }
  ew_source_t src = q->source == EW_SOURCE_DEFAULT ? info->def_source : q->source;
  if (src < 0 || src >= EW__NSRC || !(info->sources & EW_SOURCE_BIT(src))) {
    char names[64];
    return ew__m_fail(cx, EW_EBADPARAM, "metric '%s' is computed from source %s, not '%s'",
                      info->name, ew_metric_sources_str(info, names, sizeof names),
                      ew_source_name(src));
  }
  int center = q->center < 0 ? info->def_center : (q->center ? 1 : 0);
  if (src == EW_SOURCE_WINDOW_CN) {
    if (q->center > 0)
      return ew__m_fail(cx, EW_EBADPARAM,
                  "source window_cn is already centred before normalisation; center does not "
                  "apply (omit it or pass false)");
    center = 0;
  }
  if ((unsigned)q->method > EW_METHOD_EXACT)
    return ew__m_fail(cx, EW_EBADPARAM, "method must be auto, slq or exact");
  cx->method = q->method;
  cx->src = src;
  cx->center = center;
  return 0;
}

static int query_view(ew_stream_t *s, const ew_query_t *q, mctx_t *cx, const metric_row_t *row,
                      ew__ws_t *ws);

/* A metric of a sketched view (source all of a stream with d > exact_max_dim): refused, run as is
 * (exact inputs, certified intervals), or bracketed — its function evaluated on the two extreme
 * spectra the certificate allows, the value being the bracket's midpoint and the error its
 * half-width. */
static int sketched(ew_stream_t *s, mctx_t *cx, const metric_row_t *row) {
  const ew_config_t *c = ew_stream_config(s);
  if (row->info.sketch == EW_SK_REFUSED)
    return ew__m_fail(cx, EW_EBADPARAM,
                "'%s' needs every eigenvalue exactly, and this stream keeps a sketch (d = %zu > "
                "exact_max_dim %zu): ask a bracketed metric (entropy, erank, ...) or create it "
                "with exact_max_dim >= %zu",
                row->info.name, c->dim, c->exact_max_dim, c->dim);
  if (row->info.sketch != EW_SK_BRACKET)
    return row->fn(cx);
  if (cx->method != EW_METHOD_AUTO)
    return ew__m_fail(cx, EW_EBADPARAM,
                "method '%s' needs the exact matrix, and this stream keeps a sketch (d = %zu > "
                "exact_max_dim %zu) whose spectrum-wide metrics are certified brackets: omit "
                "method",
                ew_method_name(cx->method), c->dim, c->exact_max_dim);
  const double *ext[3];
  int rc = ew__view_sketch_bounds(&cx->v, &ext[0], &ext[1], &ext[2]);
  if (rc)
    return ew__m_view_fail(cx, rc);
  double val[3];
  for (int i = 0; i < 3; i++) {
    cx->eig = ext[i];
    cx->method = EW_METHOD_EXACT;
    cx->out->has_error = 0;
    if ((rc = row->fn(cx)) != 0)
      return rc;
    val[i] = cx->out->scalar;
  }
  cx->eig = NULL;
  /* the most spread spectrum gives one end; the least spread one and the exact diagonal both
   * bound the other end (each is majorised by the true spectrum): the nearer one is tighter */
  double far = fabs(val[1] - val[0]) <= fabs(val[2] - val[0]) ? val[1] : val[2];
  double lo = fmin(val[0], far), hi = fmax(val[0], far);
  cx->out->scalar = 0.5 * (lo + hi);
  cx->out->has_error = 1;
  cx->out->error = 0.5 * (hi - lo);
  cx->out->has_bracket = 1;
  cx->out->lo = lo;
  cx->out->hi = hi;
  cx->out->clamped = 0;
  return 0;
}

EW_EXPORT int ew_stream_query(ew_stream_t *s, const ew_query_t *q, ew_result_t *out) {
  memset(out, 0, sizeof *out);
  mctx_t cx = {.d = ew_stream_config(s)->dim, .out = out};
  const metric_row_t *row = find_row(q->metric);
  if (!row) {
    int rc = ew__m_fail(&cx, EW_EUNKMETRIC, "no metric named '%s' (the 'metrics' method lists them)",
                  q->metric ? q->metric : "(null)");
    return rc;
  }
  int rc = resolve(&cx, row, q);
  if (rc)
    return rc;
  ew__ws_t *ws = ew__ws_thread();
  if (!ws)
    return ew__m_fail(&cx, EW_ENOMEM, "%s", ew_strerror(EW_ENOMEM));
  rc = query_view(s, q, &cx, row, ws);
  ew__view_close(&cx.v);
  return rc;
}

/* The part of a query that reads the stream, through a view on workspace ws. */
static int query_view(ew_stream_t *s, const ew_query_t *q, mctx_t *cxp, const metric_row_t *row,
                      ew__ws_t *ws) {
  ew_result_t *out = cxp->out;
  int rc;
  if ((rc = ew__view_open(&cxp->v, s, cxp->src, cxp->center, q->max_lag, q->window_rows, ws)) ==
      EW_ENOWINDOW)
    return ew__m_fail(cxp, EW_ENOWINDOW,
                "source '%s' needs a window, and this stream keeps none (create it with window > 0)",
                ew_source_name(cxp->src));
  if (rc)
    return ew__m_fail(cxp, rc, "%s", ew_strerror(rc));
  cxp->rows = cxp->v.rows;
  cxp->weight = cxp->v.weight;
  if (cxp->rows == 0)
    return ew__m_fail(cxp, EW_EDEGENERATE, "%s has no rows yet",
                cxp->src == EW_SOURCE_ALL ? "the stream" : "the window");
  if (cxp->center && cxp->rows < 2)
    return ew__m_fail(cxp, EW_EDEGENERATE,
                "a centred covariance needs at least 2 rows (the %s has %llu); pass center=false "
                "for the second moment",
                cxp->src == EW_SOURCE_ALL ? "stream" : "window", (unsigned long long)cxp->rows);
  rc = ew__view_is_sketch(&cxp->v) ? sketched(s, cxp, row) : row->fn(cxp);
  out->as_of = cxp->v.as_of;
  if (rc) {
    free(out->list);
    free(out->vectors);
    out->list = out->vectors = NULL;
    out->len = 0;
    out->code = rc;
  }
  return rc;
}
