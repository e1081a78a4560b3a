/* metrics/route.c — how a metric reaches its eigenvalues (the metric functions are entropy.c,
 * rank.c, spectrum.c and rows.c; the table naming them is table.c): the exact spectrum through
 * the view, the quick route (deflated SLQ with its error bar), and the top route (λ₁…λ_k by block
 * Lanczos, or a sketch's certified intervals, when no spectrum is at hand); and the pieces every
 * metric shares (a failure's sentence, a scalar answer, the trace checks). */
#include "metrics_priv.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

int ew__m_fail(mctx_t *cx, int code, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(cx->out->message, sizeof cx->out->message, fmt, ap);
  va_end(ap);
  cx->out->code = code;
  return code;
}

/* ---- shared pieces ---- */

/* A view's failure as the metric's answer. */
int ew__m_view_fail(mctx_t *cx, int rc) {
  if (rc == EW_ELAPACK)
    return ew__m_fail(cx, rc, "the eigensolver did not converge on this state (LAPACK dsyevd)");
  if (rc == EW_ENOMEM)
    return ew__m_fail(cx, rc, "out of memory reading the %s", ew_source_name(cx->src));
  return ew__m_fail(cx, rc, "%s", ew_strerror(rc));
}

int ew__m_need_eig(mctx_t *cx) {
  if (cx->eig)
    return 0;
  size_t clamped;
  int rc = ew__view_spectrum(&cx->v, &cx->eig, &clamped, NULL);
  if (rc != 0)
    return ew__m_view_fail(cx, rc);
  cx->out->clamped = clamped;
  return 0;
}

double ew__m_eig_sum(const double *w, size_t d) {
  double t = 0;
  for (size_t i = 0; i < d; i++)
    t += w[i];
  return t;
}

/* tr A and ‖A‖_F² in O(d²) (no eigensolve; from the spectrum where the view or the metric has
 * it). */
int ew__m_trace_fro(mctx_t *cx, double *tr, double *fro2) {
  if (cx->eig) {
    double t = 0, f = 0;
    for (size_t i = 0; i < cx->d; i++) {
      t += cx->eig[i];
      f += cx->eig[i] * cx->eig[i];
    }
    *tr = t;
    *fro2 = f;
    return 0;
  }
  int rc = ew__view_trace_fro2(&cx->v, tr, fro2);
  return rc ? ew__m_view_fail(cx, rc) : 0;
}

int ew__m_check_trace(mctx_t *cx, double tr) {
  if (!(tr > 0))
    return ew__m_fail(cx, EW_EDEGENERATE,
                "the %s matrix has zero trace (all rows identical%s), so this metric is undefined",
                cx->center ? "covariance" : "second-moment", cx->center ? "" : " and zero");
  return 0;
}

/* von Neumann entropy of p = λ/Σλ, over the first `upto` eigenvalues (all when upto >= d). */
double ew__m_entropy_of(const double *w, size_t d, double tr, size_t upto) {
  double h = 0;
  size_t m = upto < d ? upto : d;
  for (size_t i = 0; i < m; i++) {
    double p = w[i] / tr;
    if (p > 0)
      h -= p * log(p);
  }
  return h;
}

int ew__m_scalar(mctx_t *cx, double v) {
  if (!isfinite(v))
    return ew__m_fail(cx, EW_EDEGENERATE, "the metric is not finite on this state");
  cx->out->kind = EW_VALUE_SCALAR;
  cx->out->scalar = v;
  return 0;
}

/* The spectrum and its trace, for metrics normalised by the trace (zero trace: DEGENERATE). */
int ew__m_eig_trace(mctx_t *cx, double *tr) {
  int rc = ew__m_need_eig(cx);
  if (rc)
    return rc;
  *tr = ew__m_eig_sum(cx->eig, cx->d);
  return ew__m_check_trace(cx, *tr);
}

/* ---- the quick route: deflated SLQ (view/solve.c, linalg/slq.c) ---- */

/* Whether a spectrum-wide metric takes the quick estimate (the query's method; AUTO: no cached
 * spectrum, d at least EW_QUICK_AUTO_DIM, and the exact route a d×d solve). */
bool ew__m_want_quick(mctx_t *cx) {
  if (cx->method == EW_METHOD_SLQ)
    return cx->d >= 8; /* below, the quick estimate has nothing to deflate or probe: exact */
  if (cx->method == EW_METHOD_EXACT || cx->d < EW_QUICK_AUTO_DIM)
    return false;
  return !ew__view_spectrum_cached(&cx->v) && !ew__view_small_route(&cx->v);
}


static double gfun(double x, const void *ctx) {
  const gfun_t *g = ctx;
  if (g->kind == 2)
    return sqrt(x);
  double p = x / g->T;
  if (!(p > 0))
    return 0.0;
  return g->kind == 0 ? p * log(p) : pow(p, g->a);
}

/* |g'| at x (for the deflation term). */
static double gslope(const gfun_t *g, double x) {
  if (!(x > 0))
    return 0.0;
  if (g->kind == 2)
    return 0.5 / sqrt(x);
  double p = x / g->T;
  return g->kind == 0 ? fabs(log(p) + 1.0) / g->T : g->a * pow(p, g->a - 1.0) / g->T;
}

#define EW__QUICK_Z 3.0 /* standard errors in the sampling part of the bar (~99% for 32 probes) */

/* sup |g(x + e) − g(x)| over x, x + e in [0, T] with 0 ≤ e ≤ eps: g's modulus of continuity,
 * which bounds what an eigenvalue error of eps does to one term of Σ g. p ln p: at most
 * δ(1 + |ln δ|) with δ = eps/T (≤ 1/e); p^a: δ^a for a < 1, a·δ for a ≥ 1; √λ: √eps. */
static double gmod(const gfun_t *g, double eps) {
  if (!(eps > 0))
    return 0.0;
  if (g->kind == 2)
    return sqrt(eps);
  double dl = eps / g->T;
  if (g->kind == 0)
    return dl < exp(-1.0) ? dl * (1.0 - log(dl)) : exp(-1.0);
  return g->a < 1.0 ? pow(dl, g->a) : g->a * dl;
}

/* Σ g(λ) over the spectrum, estimated: the deflated pairs exactly, SLQ on the rest. *err is the
 * error bar: z·(standard error) + the weighted half-widths of the probes' Gauss–Radau brackets + a
 * Hoffman–Wielandt bound for the deflated pairs' residuals (√(2d)·‖R‖_F·max|g'|) + the state's
 * own rounding (d terms, each moved by at most g's modulus of continuity at noise/W). Returns 0, a
 * negative code (the answer set), or 1 when the method is AUTO and the bar exceeds
 * EW__QUICK_AUTO_REL of |Σ g|: the caller then answers exactly. */
int ew__m_quick_sum(mctx_t *cx, const ew__quick_t *q, const gfun_t *g, double *sum, double *err) {
  ew__slq_t sq = {EW__QUICK_PROBES, EW__QUICK_STEPS, (double *)q->alpha, (double *)q->beta,
                  (double *)q->z2, (size_t *)q->len};
  double est, se, qe;
  double defl = 0, r2 = 0, slope = gslope(g, q->tr / (double)cx->d), st = 0, st2 = 0;
  for (size_t i = 0; i < q->kd; i++) {
    defl += gfun(q->theta[i], g);
    r2 += q->res[i] * q->res[i];
    st += q->theta[i];
    st2 += q->theta[i] * q->theta[i];
    double sl = gslope(g, q->theta[i]);
    slope = sl > slope ? sl : slope;
  }
  /* the probes' covariates' means: tr(PAP) = tr A − Σθ and ‖PAP‖_F² = ‖A‖_F² − Σθ² − 2‖R‖_F²
   * (U's Ritz pairs: UᵀAU = diag θ, ‖AU‖_F² = Σθ² + ‖R‖_F²) */
  double mu[2] = {q->tr - st, q->fro2 - st2 - 2.0 * r2};
  /* a remainder at round-off level (a collapsed spectrum, all but deflated) is noise, and so
   * are the probes' covariates: none then */
  if (!(mu[0] > 1e-6 * q->tr))
    mu[0] = mu[1] = NAN;
  if (!(mu[1] > 1e-6 * q->fro2))
    mu[1] = NAN;
  /* every eigenvalue of the PSD matrix lies in [0, tr A] */
  int rc = ew__slq_eval(&sq, gfun, g, q->tr * (1.0 + 1e-9), mu, &est, &se, &qe);
  if (rc)
    return ew__m_view_fail(cx, rc);
  *sum = defl + est;
  *err = EW__QUICK_Z * se + qe + sqrt(2.0 * (double)cx->d * r2) * slope +
         (double)cx->d * gmod(g, ew__view_noise(&cx->v));
  if (cx->method == EW_METHOD_AUTO && !(*err <= EW__QUICK_AUTO_REL * fabs(*sum)))
    return 1;
  return 0;
}

int ew__m_need_quick(mctx_t *cx, const ew__quick_t **q) {
  int rc = ew__view_quick(&cx->v, q);
  if (rc)
    return ew__m_view_fail(cx, rc);
  return ew__m_check_trace(cx, (*q)->tr);
}

void ew__m_set_error(mctx_t *cx, double e) {
  cx->out->has_error = 1;
  cx->out->error = e;
}

/* Quick entropy: H = −Σ p ln p with its error bar. */
static int quick_entropy(mctx_t *cx, double *h, double *herr) {
  const ew__quick_t *q;
  int rc = ew__m_need_quick(cx, &q);
  if (rc)
    return rc;
  gfun_t g = {0, q->tr, 1.0};
  double s, e;
  if ((rc = ew__m_quick_sum(cx, q, &g, &s, &e)))
    return rc;
  *h = -s;
  *herr = e;
  return 0;
}

int ew__m_spectral_entropy(mctx_t *cx, double *h, double *tr) {
  if (ew__m_want_quick(cx)) {
    double e;
    int rc = quick_entropy(cx, h, &e);
    if (rc == 0)
      ew__m_set_error(cx, e);
    if (rc != 1) /* 1: AUTO, and the bar is too wide: exact below */
      return rc;
  }
  int rc = ew__m_eig_trace(cx, tr);
  if (rc)
    return rc;
  *h = ew__m_entropy_of(cx->eig, cx->d, *tr, cx->d);
  return 0;
}

/* ---- the top route: λ₁…λ_k by block Lanczos when no spectrum is at hand ---- */

/* The top k eigenvalues into theta[k]; from the spectrum when it is cached or d is small (exact,
 * no error set), else by Lanczos (the residual bound is returned in *resid, else 0). */
int ew__m_need_top(mctx_t *cx, size_t k, double *theta, double *resid) {
  *resid = 0;
  if (cx->eig || (!ew__view_is_sketch(&cx->v) &&
                  (cx->d <= EW__TOPK_FULL_DIM || ew__view_spectrum_cached(&cx->v)))) {
    int rc = ew__m_need_eig(cx);
    if (rc)
      return rc;
    memcpy(theta, cx->eig, k * sizeof(double));
    return 0;
  }
  int rc = ew__view_topk(&cx->v, k, theta, NULL, resid);
  if (rc)
    return ew__m_fail(cx, rc, "%s", rc == EW_ELAPACK ? "the top-k eigensolver failed on this state"
                                               : ew_strerror(rc));
  for (size_t i = 0; i < k; i++)
    if (theta[i] < 0) {
      theta[i] = 0;
      cx->out->clamped++;
    }
  return 0;
}

/* λ₁ and tr A (zero trace: DEGENERATE); *r the residual bound on λ₁ (0 when exact). */
int ew__m_top1_trace(mctx_t *cx, double *l1, double *tr, double *r) {
  int rc = ew__m_need_top(cx, 1, l1, r);
  if (rc)
    return rc;
  if (cx->eig) {
    *tr = ew__m_eig_sum(cx->eig, cx->d);
  } else if ((rc = ew__view_trace(&cx->v, tr)) != 0) {
    return ew__m_view_fail(cx, rc);
  }
  return ew__m_check_trace(cx, *tr);
}

/* Rényi entropy of order a (a = 1: von Neumann; a = inf: min-entropy; a = 2 from ‖A‖_F²). */
int ew__m_renyi_of(mctx_t *cx, double a, double *out) {
  double tr, h;
  int rc;
  if (a == 1.0) {
    rc = ew__m_spectral_entropy(cx, &h, &tr);
    *out = h;
    return rc;
  }
  if (a == 2.0) {
    double fro2;
    if ((rc = ew__m_trace_fro(cx, &tr, &fro2)) || (rc = ew__m_check_trace(cx, tr)))
      return rc;
    *out = -log(fro2 / (tr * tr));
    return 0;
  }
  if (isinf(a)) { /* only λ₁ */
    double l1, r;
    if ((rc = ew__m_top1_trace(cx, &l1, &tr, &r)))
      return rc;
    if (r > 0)
      ew__m_set_error(cx, r / l1);
    *out = -log(l1 / tr);
    return 0;
  }
  /* order 0 counts the nonzero eigenvalues: no quadrature resolves a step at 0, so exact */
  if (a > 0 && ew__m_want_quick(cx)) {
    const ew__quick_t *q;
    if ((rc = ew__m_need_quick(cx, &q)))
      return rc;
    gfun_t g = {1, q->tr, a};
    double sum, e;
    rc = ew__m_quick_sum(cx, q, &g, &sum, &e);
    if (rc < 0)
      return rc;
    if (rc == 0) { /* else (1) AUTO, and the bar is too wide: exact below */
      if (!(sum > 0))
        return ew__m_fail(cx, EW_EDEGENERATE, "the quick estimate of sum p^alpha is not positive");
      *out = log(sum) / (1.0 - a);
      /* ln(S ± e) − ln S: the wider side is ln(1 − e/S) */
      ew__m_set_error(cx, e < sum ? -log1p(-e / sum) / fabs(1.0 - a) : INFINITY);
      return 0;
    }
  }
  if ((rc = ew__m_eig_trace(cx, &tr)))
    return rc;
  /* Σ p^a = p_max^a Σ (p/p_max)^a: the second sum lies in [1, d], so neither underflows for a
   * large order (p^a alone does from a ≈ 300 on) nor overflows for a small one. */
  double pmax = cx->eig[0] / tr, sum = 0;
  for (size_t i = 0; i < cx->d; i++)
    if (cx->eig[i] > 0)
      sum += pow(cx->eig[i] / cx->eig[0], a);
  *out = (a * log(pmax) + log(sum)) / (1.0 - a);
  return 0;
}
