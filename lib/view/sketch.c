/* view/sketch.c — views of a sketched stream (the fd kind, d > exact_max_dim): the spectrum of
 * the sketch's matrix A_sk (cached per centring), its vectors, top-k as the certified intervals
 * [θ_i, θ_i + δ] and the extreme spectra the certificate allows, from which metrics/query.c brackets
 * every Schur-monotone metric. */
#include "view_priv.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- sketched streams (the fd kind): the sketch's spectrum and the bounds it certifies ---- */

/* The sketch's matrix as m rows M (m×d, in ws): A_sk = MᵀM = BᵀB/W (+ μμᵀ when uncentred). */
static int sketch_matrix_rows(ew__view_t *v, double **Mp, size_t *mp) {
  const ew__sketch_t *k = v->sk;
  size_t d = v->d, m = k->nb + (v->center ? 0 : 1);
  double *M = ew__ws_alloc(v->ws, (m ? m : 1) * d * sizeof(double));
  if (!M)
    return EW_ENOMEM;
  double sc = 1.0 / sqrt(k->w);
  for (size_t i = 0; i < k->nb * d; i++)
    M[i] = k->B[i] * sc;
  if (!v->center)
    memcpy(M + k->nb * d, k->mean, d * sizeof(double));
  *Mp = M;
  *mp = m;
  return 0;
}

/* The nonzero spectrum of A_sk (at most min(m, d) values, descending, clamped at 0), cached per
 * centring within max_lag. */
static int sketch_spectrum(ew__view_t *v, const double **theta, size_t *mt) {
  ew_stream_t *s = v->s;
  const ew__sketch_t *k = v->sk;
  if (k->broken)
    return EW_ELAPACK;
  ew__skspec_t *c = &s->skspec[v->center];
  if (c->valid && c->epoch == s->epoch && s->count - c->as_of <= v->max_lag) {
    *theta = c->theta;
    *mt = c->m;
    v->as_of = c->as_of;
    return 0;
  }
  if (!c->theta && !(c->theta = malloc((2 * k->ell + 1) * sizeof(double))))
    return EW_ENOMEM;
  ew__ws_mark_t mk = ew__ws_mark(v->ws);
  double *M, *G, *w;
  size_t m;
  int rc = sketch_matrix_rows(v, &M, &m);
  if (rc == 0 && m > 0) {
    G = ew__ws_alloc(v->ws, m * m * sizeof(double));
    w = G ? ew__ws_alloc(v->ws, m * sizeof(double)) : NULL;
    rc = w ? 0 : EW_ENOMEM;
    if (rc == 0) {
      cblas_dsyrk(CblasColMajor, CblasUpper, CblasTrans, (int)m, (int)v->d, 1.0, M, (int)v->d,
                  0.0, G, (int)m);
      rc = ew__eigvals(G, m, w, v->ws);
    }
    if (rc == 0)
      for (size_t i = 0; i < m && i < v->d; i++)
        c->theta[i] = w[i] > 0 ? w[i] : 0.0;
  }
  ew__ws_release(v->ws, mk);
  if (rc)
    return rc;
  c->m = m < v->d ? m : v->d;
  c->as_of = s->count;
  c->epoch = s->epoch;
  c->valid = true;
  *theta = c->theta;
  *mt = c->m;
  v->as_of = c->as_of;
  return 0;
}

/* A_sk's top k eigenvectors as column-major d×k: u_i = Mᵀ g_i / √γ_i from the eigenpairs
 * (γ_i, g_i) of the rows' Gram; beyond the sketch's rank, unit vectors orthogonal to the rest. */
static int sketch_vectors(ew__view_t *v, size_t k, double *Uc) {
  size_t d = v->d, m;
  double *M, *G, *w = NULL;
  int rc = sketch_matrix_rows(v, &M, &m);
  if (rc)
    return rc;
  G = ew__ws_alloc(v->ws, (m ? m * m : 1) * sizeof(double));
  w = G ? ew__ws_alloc(v->ws, (m ? m : 1) * sizeof(double)) : NULL;
  if (!w)
    return EW_ENOMEM;
  if (m > 0) {
    cblas_dsyrk(CblasColMajor, CblasUpper, CblasTrans, (int)m, (int)d, 1.0, M, (int)d, 0.0, G,
                (int)m);
    if ((rc = ew__eigpairs(G, m, w, v->ws)) != 0)
      return rc;
  }
  for (size_t i = 0; i < k; i++) {
    double *u = Uc + i * d;
    if (i < m && w[i] > 0) {
      cblas_dgemv(CblasRowMajor, CblasTrans, (int)m, (int)d, 1.0 / sqrt(w[i]), M, (int)d,
                  G + i * m, 1, 0.0, u, 1);
      continue;
    }
    memset(u, 0, d * sizeof(double));
    u[i % d] = 1.0;
    for (int pass = 0; pass < 2; pass++)
      for (size_t j = 0; j < i; j++)
        cblas_daxpy((int)d, -cblas_ddot((int)d, Uc + j * d, 1, u, 1), Uc + j * d, 1, u, 1);
    double nrm = cblas_dnrm2((int)d, u, 1);
    cblas_dscal((int)d, nrm > 0 ? 1.0 / nrm : 0.0, u, 1);
  }
  return 0;
}

bool ew__view_is_sketch(const ew__view_t *v) { return v->sk != NULL; }

size_t ew__view_sketch_dirs(const ew__view_t *v) { return v->sk ? 2 * v->sk->ell + 1 : 0; }

double ew__view_sketch_delta(const ew__view_t *v) {
  return v->sk && v->sk->w > 0 ? v->sk->delta / v->sk->w : 0.0;
}

/* Top-k of a sketched view: λ_i ∈ [θ_i, θ_i + Δ/W] (Weyl, from 0 ≼ A − A_sk ≼ (Δ/W)·I); theta
 * gets the midpoints and *resid the half-width. Vectors are A_sk's: u_i = Mᵀ g_i / √θ_i. */
int ew__view_sketch_topk(ew__view_t *v, size_t k, double *theta, double *U, double *resid) {
  size_t d = v->d, m;
  const double *th;
  double half = 0.5 * ew__view_sketch_delta(v);
  int rc = sketch_spectrum(v, &th, &m);
  if (rc)
    return rc;
  for (size_t i = 0; i < k; i++)
    theta[i] = (i < m ? th[i] : 0.0) + half;
  *resid = half;
  if (!U)
    return 0;
  ew__ws_mark_t mk = ew__ws_mark(v->ws);
  rc = sketch_vectors(v, k, U); /* column-major d×k is row-major k×d: written in place */
  if (rc == 0)
    ew__emit_rows(U, d, k, U);
  ew__ws_release(v->ws, mk);
  return rc;
}

/* Σ_i clamp(c, lo_i, hi_i) */
static double fill_sum(const double *lo, const double *hi, size_t d, double c) {
  double t = 0;
  for (size_t i = 0; i < d; i++)
    t += c < lo[i] ? lo[i] : (c > hi[i] ? hi[i] : c);
  return t;
}

static int cmp_desc_d(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x < y) - (x > y);
}

int ew__view_sketch_bounds(ew__view_t *v, const double **most, const double **least,
                           const double **diag) {
  if (!v->sk)
    return EW_EBADPARAM;
  size_t d = v->d, m;
  const double *th;
  double T, dl = ew__view_sketch_delta(v);
  int rc = ew__view_trace(v, &T);
  if (rc == 0)
    rc = sketch_spectrum(v, &th, &m);
  if (rc)
    return rc;
  double *lo = ew__ws_alloc(v->ws, 5 * d * sizeof(double));
  if (!lo)
    return EW_ENOMEM;
  double *hi = lo + d, *g = hi + d, *f = g + d, *dg = f + d, slo = 0, shi = 0;
  if ((rc = ew__view_diag(v, dg)) != 0)
    return rc;
  for (size_t i = 0; i < d; i++)
    dg[i] = dg[i] > 0 ? dg[i] : 0.0;
  qsort(dg, d, sizeof(double), cmp_desc_d);
  for (size_t i = 0; i < d; i++) {
    lo[i] = i < m ? th[i] : 0.0;
    hi[i] = lo[i] + dl;
    slo += lo[i];
    shi += hi[i];
  }
  if (slo >= T) { /* the sketch already holds the whole trace (to rounding): nothing is missing */
    for (size_t i = 0; i < d; i++)
      g[i] = f[i] = slo > 0 ? lo[i] * (T / slo) : 0.0;
  } else {
    /* rounding can leave the boxes a hair short of the trace: widen them evenly (never seen
       beyond 1e-15 relative) so that both vectors stay feasible */
    if (shi < T)
      for (size_t i = 0; i < d; i++)
        hi[i] += (T - shi) / (double)d;
    /* most spread (majorises every feasible vector): the top boxes filled first */
    double left = T - slo;
    for (size_t i = 0; i < d; i++) {
      double add = hi[i] - lo[i] < left ? hi[i] - lo[i] : left;
      g[i] = lo[i] + add;
      left -= add;
    }
    /* least spread (majorised by every feasible vector): water-filling clamp(c, lo, hi) */
    double a = 0, b = hi[0];
    for (int it = 0; it < 200 && b - a > 1e-17 * b; it++) {
      double c = 0.5 * (a + b);
      if (fill_sum(lo, hi, d, c) < T)
        a = c;
      else
        b = c;
    }
    double c = 0.5 * (a + b);
    for (size_t i = 0; i < d; i++)
      f[i] = c < lo[i] ? lo[i] : (c > hi[i] ? hi[i] : c);
  }
  *most = g;
  *least = f;
  *diag = dg;
  return 0;
}
