/* slq.c — stochastic Lanczos quadrature (SLQ): tr g(A) on the part of the spectrum the top
 * pairs (krylov.c) leave, a bracket per probe, and control variates for the probes' spread. Like
 * top-k it reads A only through an operator (ew__op_t), so the state is never copied.
 *
 * SLQ (ew__slq_run / ew__slq_eval). For nprobe Rademacher vectors z projected off span(U) (the
 * converged top pairs, deflated exactly), m Lanczos steps on A give a tridiagonal T_m = S Θ Sᵀ,
 * and zᵀ g(A) z ≈ ‖z‖² Σ_j S_{0j}² g(Θ_j) — Gauss quadrature for the spectral measure of z
 * (Ubaru, Chen & Saad, SIAM J. Matrix Anal. Appl. 38(4), 2017). The probes advance together, so
 * each step is one operator call on nprobe columns (level-3 BLAS).
 *
 * Gauss quadrature errs to one side for the functions the metrics use (its error has the sign of
 * g^(2m): Σ√λ and Σ p^a with a < 1 came out high by up to 9.9% at d = 4096 while the bar,
 * built from the change between 3m/4 and m steps, said 7.3%). So each probe is bracketed instead:
 * the Gauss–Radau rules with one node fixed at a ≤ λ_min and at b ≥ λ_max have errors of the sign
 * of ±g^(2m+1) (Golub & Meurant 2010, thm. 6.4), which is one sign on (0, ∞) for p ln p, √x and
 * x^a, so with a = 0 (A is PSD) and b = tr A the two rules lie on either side of zᵀ g(A) z.
 *
 * The probes' sampling error (Hutchinson's: 1–3% of the entropy at 3 standard errors over 32
 * probes, the larger part of the old errors) is cut by control variates: zᵀAz and zᵀA²z are exact
 * from the first Lanczos step and their means tr(PAP), ‖PAP‖_F² are known in O(d²), so the
 * regression estimator Σ w_p y_p (weights from the covariates alone) has the variance of g about
 * its best quadratic fit over the spectrum — 10–40× smaller on the spectra tested. Because the
 * weights do not depend on y, the brackets carry through: the estimator of the exact zᵀ g(A) z
 * lies within Σ |w_p|·(half-width p) of the one of the midpoints. The error bar is
 *     z · (the regression's standard error) + Σ |w_p|·(half-width p),
 * the sampling part and a bound on the quadrature's. */
#include "linalg.h"

#include <cblas.h>
#include <lapacke.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static double col_norm(const double *x, size_t d) { return cblas_dnrm2((int)d, x, 1); }

size_t ew__slq_ws(size_t d, size_t ku, size_t nprobe, size_t m) {
  return ew__ws_size(d * nprobe * sizeof(double)) * 3 + ew__ws_size(nprobe * sizeof(double)) * 3 +
         ew__ws_size((ku > 64 ? ku : 64) * nprobe * sizeof(double)) + ew__slq_keep_bytes(nprobe, m) + 4096;
}

size_t ew__slq_keep_bytes(size_t nprobe, size_t m) {
  return ew__ws_size(nprobe * m * sizeof(double)) * 2 + ew__ws_size(nprobe * sizeof(double)) +
         ew__ws_size(nprobe * sizeof(size_t));
}

int ew__slq_run(const ew__op_t *op, const double *U, size_t ku, size_t nprobe, size_t m,
                uint64_t seed, ew__slq_t *out, ew__ws_t *ws) {
  size_t d = op->d;
  memset(out, 0, sizeof *out);
  if (nprobe == 0 || m == 0)
    return EW_EBADPARAM;
  /* what the caller keeps (the tridiagonals) first, then the scratch given back */
  out->alpha = ew__ws_alloc(ws, nprobe * m * sizeof(double));
  out->beta = out->alpha ? ew__ws_alloc(ws, nprobe * m * sizeof(double)) : NULL;
  out->z2 = out->beta ? ew__ws_alloc(ws, nprobe * sizeof(double)) : NULL;
  out->len = out->z2 ? ew__ws_alloc(ws, nprobe * sizeof(size_t)) : NULL;
  if (!out->len)
    return EW_ENOMEM;
  out->nprobe = nprobe;
  out->m = m;
  ew__ws_mark_t mk = ew__ws_mark(ws);
  double *V0 = ew__ws_alloc(ws, d * nprobe * sizeof(double));
  double *V1 = V0 ? ew__ws_alloc(ws, d * nprobe * sizeof(double)) : NULL;
  double *Wb = V1 ? ew__ws_alloc(ws, d * nprobe * sizeof(double)) : NULL;
  double *bprev = Wb ? ew__ws_alloc(ws, nprobe * sizeof(double)) : NULL;
  double *scale = bprev ? ew__ws_alloc(ws, nprobe * sizeof(double)) : NULL;
  size_t cku = ku > 64 ? ku : 64;
  double *Cs = scale ? ew__ws_alloc(ws, cku * nprobe * sizeof(double)) : NULL;
  double *ended = Cs ? ew__ws_alloc(ws, nprobe * sizeof(double)) : NULL;
  if (!ended) {
    ew__ws_release(ws, mk);
    return EW_ENOMEM;
  }
  ew__rng_t rng;
  ew__rng_seed(&rng, seed);
  for (size_t i = 0; i < d * nprobe; i++)
    V1[i] = (ew__rng_next(&rng) >> 63) ? 1.0 : -1.0; /* Rademacher */
  if (ku)
    ew__project_out(U, d, ku, V1, nprobe, Cs);
  memset(V0, 0, d * nprobe * sizeof(double));
  for (size_t p = 0; p < nprobe; p++) {
    double z = col_norm(V1 + p * d, d);
    out->z2[p] = z * z;
    out->len[p] = 0;
    bprev[p] = 0;
    scale[p] = 0;
    ended[p] = 0;
    if (z > 0)
      cblas_dscal((int)d, 1.0 / z, V1 + p * d, 1);
  }
  bool active = true;
  for (size_t j = 0; j < m && active; j++) {
    op->apply(op->ctx, V1, Wb, nprobe);
    active = false;
    for (size_t p = 0; p < nprobe; p++) {
      double *v1 = V1 + p * d, *v0 = V0 + p * d, *w = Wb + p * d;
      if (ended[p] || out->z2[p] == 0) { /* this probe has ended */
        memset(w, 0, d * sizeof(double));
        continue;
      }
      double a = cblas_ddot((int)d, v1, 1, w, 1);
      out->alpha[p * m + j] = a;
      cblas_daxpy((int)d, -a, v1, 1, w, 1);
      if (bprev[p] != 0)
        cblas_daxpy((int)d, -bprev[p], v0, 1, w, 1);
      /* local reorthogonalisation against the last two vectors (cheap, keeps the three-term
       * recurrence honest; ghosts from global loss of orthogonality barely move the quadrature) */
      double c = cblas_ddot((int)d, v1, 1, w, 1);
      cblas_daxpy((int)d, -c, v1, 1, w, 1);
      out->alpha[p * m + j] += c;
      out->len[p] = j + 1;
      double fa = fabs(out->alpha[p * m + j]);
      if (fa > scale[p])
        scale[p] = fa;
    }
    if (ku) /* stay in span(U)^⊥ */
      ew__project_out(U, d, ku, Wb, nprobe, Cs);
    for (size_t p = 0; p < nprobe; p++) {
      if (out->len[p] != j + 1)
        continue;
      double *w = Wb + p * d;
      double bta = col_norm(w, d);
      out->beta[p * m + j] = bta;
      if (!(bta > 1e-12 * scale[p]) || j + 1 == m) { /* invariant subspace reached, or done */
        ended[p] = 1;
        continue;
      }
      double *v0 = V0 + p * d, *v1 = V1 + p * d;
      memcpy(v0, v1, d * sizeof(double));
      for (size_t t = 0; t < d; t++)
        v1[t] = w[t] / bta;
      bprev[p] = bta;
      active = true;
    }
  }
  ew__ws_release(ws, mk);
  return 0;
}

/* One probe's quadrature Σ_j S_{0j}² g(θ_j) of the Jacobi matrix with diagonal alpha[0..n) and
 * off-diagonal beta[0..n-1) (n ≤ m + 1; the eigenpairs by dstev). g is evaluated at nodes
 * clamped at 0 (A is PSD: a negative node is round-off). */
static int quad(const double *alpha, const double *beta, size_t n, ew__slq_fn g, const void *ctx,
                double *out, double *dwork) {
  double *D = dwork, *E = D + n, *Z = E + n, *wk = Z + n * n;
  memcpy(D, alpha, n * sizeof(double));
  if (n > 1)
    memcpy(E, beta, (n - 1) * sizeof(double));
  if (LAPACKE_dstev_work(LAPACK_COL_MAJOR, 'V', (lapack_int)n, D, E, Z, (lapack_int)n, wk) != 0)
    return EW_ELAPACK;
  double s = 0;
  for (size_t j = 0; j < n; j++) {
    double t = D[j] > 0 ? D[j] : 0.0, w = Z[j * n] * Z[j * n];
    s += w * g(t, ctx);
  }
  *out = s;
  return 0;
}

/* The Gauss–Radau rule with a node fixed at x0 (Golub & Meurant, "Matrices, Moments and
 * Quadrature", 2010, ch. 6): T_L extended by β_L and α_{L+1} = x0 + β_L² [(T_L − x0 I)⁻¹]_{LL},
 * so that x0 is an eigenvalue of T_{L+1}. The last diagonal entry of the inverse is 1/u_L, the
 * last pivot of T_L − x0 I's LDLᵀ (top down). x0 must lie below every Ritz value (below = 1:
 * every pivot positive) or above every one (below = 0: every pivot negative); a pivot of the
 * wrong sign (round-off, a Ritz value on x0) returns 1 and the caller moves x0 outwards.
 * ab and bb have room for L + 1 and L values. */
static int radau(const double *alpha, const double *beta, size_t L, double x0, int below,
                 ew__slq_fn g, const void *ctx, double *out, double *ab, double *bb,
                 double *dwork) {
  double sign = below ? 1.0 : -1.0, u = 0;
  for (size_t j = 0; j < L; j++) {
    u = alpha[j] - x0 - (j ? beta[j - 1] * beta[j - 1] / u : 0.0);
    if (!(u * sign > 0) || !isfinite(u))
      return 1;
  }
  memcpy(ab, alpha, L * sizeof(double));
  memcpy(bb, beta, L * sizeof(double));
  ab[L] = x0 + beta[L - 1] * beta[L - 1] / u;
  if (!isfinite(ab[L]))
    return 1;
  return quad(ab, bb, L + 1, g, ctx, out, dwork);
}

/* Radau at the lower end (0, then slightly below when a Ritz value sits on 0 within round-off:
 * g is read at clamped nodes, so a node at −ε·top counts as one at 0) or the upper end (top,
 * then 2·top). Returns 0, 1 (no rule: the caller falls back to g's range) or EW_ELAPACK. */
static int radau_end(const double *alpha, const double *beta, size_t L, double top, int below,
                     ew__slq_fn g, const void *ctx, double *out, double *ab, double *bb,
                     double *dwork) {
  static const double lo_at[] = {0.0, -1e-13, -1e-10, -1e-7}, hi_at[] = {1.0, 2.0, 16.0};
  size_t n = below ? sizeof lo_at / sizeof *lo_at : sizeof hi_at / sizeof *hi_at;
  int rc = 1;
  for (size_t i = 0; i < n && rc == 1; i++)
    rc = radau(alpha, beta, L, (below ? lo_at[i] : hi_at[i]) * top, below, g, ctx, out, ab, bb,
               dwork);
  return rc;
}

/* The range of g on [0, top] (a grid of 1025 points: the fallback when no Radau rule exists). */
static void g_range(ew__slq_fn g, const void *ctx, double top, double *lo, double *hi) {
  double a = INFINITY, b = -INFINITY;
  for (int i = 0; i <= 1024; i++) {
    double v = g(top * (double)i / 1024.0, ctx);
    a = v < a ? v : a;
    b = v > b ? v : b;
  }
  *lo = a;
  *hi = b;
}

/* The regression (control-variate) estimator of the probes' mean: y_p = ȳ + cᵀ(x_p − x̄) + e_p
 * with covariates x_p whose expectations mu are known exactly; the estimate ȳ − ĉᵀ(x̄ − mu) is
 * Σ w_p y_p with weights that depend on the x's only: w_p = 1/n − (x_p − x̄)ᵀ S⁻¹ (x̄ − mu),
 * S = Σ (x_p − x̄)(x_p − x̄)ᵀ. Writes w[n] and returns the factor f with se² = s_e²·f, where s_e²
 * is the residuals' variance (n − 1 − k degrees of freedom): f = 1/n + (x̄ − mu)ᵀ S⁻¹ (x̄ − mu).
 * k covariates (0, 1 or 2), x[p*2 + j]. */
static double cv_weights(const double *x, const double *mu, size_t n, int k, double *w,
                         double *Sinv) {
  double xb[2] = {0, 0}, S[3] = {0, 0, 0}, dv[2] = {0, 0};
  for (size_t p = 0; p < n; p++)
    for (int j = 0; j < k; j++)
      xb[j] += x[p * 2 + j] / (double)n;
  for (size_t p = 0; p < n; p++) {
    double a = x[p * 2] - xb[0], b = k > 1 ? x[p * 2 + 1] - xb[1] : 0.0;
    S[0] += a * a;
    S[1] += a * b;
    S[2] += b * b;
  }
  Sinv[0] = Sinv[1] = Sinv[2] = 0;
  if (k == 1)
    Sinv[0] = 1.0 / S[0];
  if (k == 2) {
    double det = S[0] * S[2] - S[1] * S[1];
    Sinv[0] = S[2] / det;
    Sinv[1] = -S[1] / det;
    Sinv[2] = S[0] / det;
  }
  for (int j = 0; j < k; j++)
    dv[j] = xb[j] - mu[j];
  double t0 = Sinv[0] * dv[0] + Sinv[1] * dv[1], t1 = Sinv[1] * dv[0] + Sinv[2] * dv[1];
  for (size_t p = 0; p < n; p++) {
    double a = k > 0 ? x[p * 2] - xb[0] : 0.0, b = k > 1 ? x[p * 2 + 1] - xb[1] : 0.0;
    w[p] = 1.0 / (double)n - (a * t0 + b * t1);
  }
  return 1.0 / (double)n + dv[0] * t0 + dv[1] * t1;
}

/* The residuals' sum of squares of y regressed on the k covariates (with an intercept). */
static double cv_rss(const double *x, const double *y, size_t n, int k, const double *Sinv) {
  double xb[2] = {0, 0}, yb = 0, sxy[2] = {0, 0};
  for (size_t p = 0; p < n; p++) {
    yb += y[p] / (double)n;
    for (int j = 0; j < k; j++)
      xb[j] += x[p * 2 + j] / (double)n;
  }
  for (size_t p = 0; p < n; p++)
    for (int j = 0; j < k; j++)
      sxy[j] += (x[p * 2 + j] - xb[j]) * (y[p] - yb);
  double c0 = Sinv[0] * sxy[0] + Sinv[1] * sxy[1], c1 = Sinv[1] * sxy[0] + Sinv[2] * sxy[1];
  double rss = 0;
  for (size_t p = 0; p < n; p++) {
    double e = y[p] - yb - (k > 0 ? c0 * (x[p * 2] - xb[0]) : 0.0) -
               (k > 1 ? c1 * (x[p * 2 + 1] - xb[1]) : 0.0);
    rss += e * e;
  }
  return rss;
}

static bool cv_ok(const double *mu) { return mu && isfinite(mu[0]); }

/* How many of the covariates (zᵀAz, zᵀA²z) the regression can use: their known means must be
 * finite and their spread over the probes well-conditioned (a flat spectrum gives every probe
 * the same zᵀAz: then none). */
static int cv_count(const double *x, const double *mu, size_t n) {
  if (!cv_ok(mu))
    return 0;
  double xb[2] = {0, 0}, S[3] = {0, 0, 0};
  for (size_t p = 0; p < n; p++)
    for (int j = 0; j < 2; j++)
      xb[j] += x[p * 2 + j] / (double)n;
  for (size_t p = 0; p < n; p++) {
    double a = x[p * 2] - xb[0], b = x[p * 2 + 1] - xb[1];
    S[0] += a * a;
    S[1] += a * b;
    S[2] += b * b;
  }
  /* a relative spread below 1e-8 is round-off (zᵀAz on a flat spectrum) */
  if (n < 8 || !(S[0] > 1e-16 * xb[0] * xb[0] * (double)n))
    return 0;
  if (isfinite(mu[1]) && S[2] > 1e-16 * xb[1] * xb[1] * (double)n &&
      S[0] * S[2] - S[1] * S[1] > 1e-8 * S[0] * S[2])
    return 2;
  return 1;
}

int ew__slq_eval(const ew__slq_t *s, ew__slq_fn g, const void *ctx, double top,
                 const double *mu, double *est, double *se, double *quad_err) {
  size_t m = s->m, np = s->nprobe, n = m + 1;
  /* quad's D, E, Z and dstev's work (4n + n²), radau's extended α and β, then per probe the
   * bracket's ends, midpoint and half-width, the covariates (2) and the weights */
  double *work = malloc((6 * n + n * n + 7 * np) * sizeof(double));
  if (!work)
    return EW_ENOMEM;
  double *ab = work + 4 * n + n * n, *bb = ab + n;
  double *ylo = bb + n, *yhi = ylo + np, *ymid = yhi + np, *hw = ymid + np, *x = hw + np,
         *w = x + 2 * np;
  int rc = 0;
  for (size_t p = 0; p < np && rc == 0; p++) {
    size_t L = s->len[p];
    const double *a = s->alpha + p * m, *b = s->beta + p * m;
    double lo = 0, hi = 0;
    x[p * 2] = x[p * 2 + 1] = 0;
    if (L > 0 && s->z2[p] > 0) {
      /* zᵀAz and zᵀA²z = ‖z‖²(α₁² + β₁²): exact from the first step */
      x[p * 2] = s->z2[p] * a[0];
      x[p * 2 + 1] = s->z2[p] * (a[0] * a[0] + b[0] * b[0]);
      double qg;
      if ((rc = quad(a, b, L, g, ctx, &qg, work)) != 0)
        break;
      lo = hi = qg;
      /* a probe that ended early (β_L ≈ 0: its Krylov space is invariant) has an exact Gauss
       * rule; otherwise Radau at 0 (≤ λ_min, A is PSD) and at top (≥ λ_max) bracket it */
      if (L == m && b[L - 1] > 0) {
        double r0 = 0, rt = 0;
        int r0c = radau_end(a, b, L, top, 1, g, ctx, &r0, ab, bb, work);
        int rtc = r0c < 0 ? r0c : radau_end(a, b, L, top, 0, g, ctx, &rt, ab, bb, work);
        if (r0c < 0 || rtc < 0) {
          rc = r0c < 0 ? r0c : rtc;
          break;
        }
        if (r0c == 0 && rtc == 0) {
          lo = r0 < rt ? r0 : rt;
          hi = r0 < rt ? rt : r0;
        } else { /* no rule at one end: the measure has mass 1 on [0, top] */
          g_range(g, ctx, top, &lo, &hi);
        }
        /* the bracket holds the Gauss rule in exact arithmetic; keep it inside regardless */
        lo = qg < lo ? qg : lo;
        hi = qg > hi ? qg : hi;
      }
    }
    ylo[p] = lo * s->z2[p];
    yhi[p] = hi * s->z2[p];
    ymid[p] = 0.5 * (ylo[p] + yhi[p]);
    hw[p] = 0.5 * (yhi[p] - ylo[p]);
  }
  if (rc == 0) {
    int k = cv_count(x, mu, np);
    double Sinv[3];
    double f = cv_weights(x, mu, np, k, w, Sinv);
    double e = 0, qe = 0, var = 0;
    for (size_t p = 0; p < np; p++) {
      e += w[p] * ymid[p];
      qe += fabs(w[p]) * hw[p];
    }
    const double *ys[3] = {ylo, yhi, ymid};
    for (int j = 0; j < 3 && np > (size_t)k + 1; j++) { /* the largest of the three */
      double v = cv_rss(x, ys[j], np, k, Sinv) / (double)(np - 1 - (size_t)k);
      var = v > var ? v : var;
    }
    *est = e;
    *se = var > 0 && f > 0 ? sqrt(var * f) : 0.0;
    *quad_err = qe;
  }
  free(work);
  return rc;
}
