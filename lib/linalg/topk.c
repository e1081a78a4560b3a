/* topk.c — top-k eigenpairs of a dense matrix: the policy between block Lanczos (krylov.c)
 * through dsymm and a full solve (eig.c). When the block would be a large part of d, or when the
 * gap is too small for Lanczos to converge within d operator columns (2d³ flops, about a full
 * solve), the full solve is cheaper and exact, and is used instead. Depends on eig.c and
 * krylov.c; neither depends on it. */
#include "linalg.h"

#include <cblas.h>
#include <math.h>
#include <string.h>

static double max_resid(const double *U, const double *AU, const double *theta, size_t d,
                        size_t k) {
  double worst = 0;
  for (size_t i = 0; i < k; i++) {
    double r = 0;
    for (size_t t = 0; t < d; t++) {
      double e = AU[i * d + t] - theta[i] * U[i * d + t];
      r += e * e;
    }
    r = sqrt(r);
    if (r > worst)
      worst = r;
  }
  return worst;
}

static int topk_full(const double *A, size_t d, size_t k, double *theta, double *U,
                     double *resid, ew__ws_t *ws) {
  ew__ws_mark_t mk = ew__ws_mark(ws);
  double *Z = ew__ws_alloc(ws, d * d * sizeof(double));
  double *w = Z ? ew__ws_alloc(ws, d * sizeof(double)) : NULL;
  double *AZ = w ? ew__ws_alloc(ws, k * d * sizeof(double)) : NULL;
  int rc = EW_ENOMEM;
  if (AZ) {
    memcpy(Z, A, d * d * sizeof(double));
    rc = ew__eigpairs(Z, d, w, ws);
    if (rc == 0) {
      cblas_dsymm(CblasColMajor, CblasLeft, CblasUpper, (int)d, (int)k, 1.0, A, (int)d, Z,
                  (int)d, 0.0, AZ, (int)d);
      *resid = max_resid(Z, AZ, w, d, k);
      memcpy(theta, w, k * sizeof(double));
      ew__emit_rows(Z, d, k, U);
    }
  }
  ew__ws_release(ws, mk);
  return rc;
}

/* The dense operator: Y = A X with A's upper triangle (column-major, leading dimension d). */
typedef struct {
  const double *A;
  size_t d;
} dense_t;

static void dense_apply(const void *ctx, const double *X, double *Y, size_t b) {
  const dense_t *m = ctx;
  cblas_dsymm(CblasColMajor, CblasLeft, CblasUpper, (int)m->d, (int)b, 1.0, m->A, (int)m->d, X,
              (int)m->d, 0.0, Y, (int)m->d);
}

int ew__topk(const double *A, size_t d, size_t k, const double *warm, size_t wk, uint64_t seed,
             double *theta, double *U, double *resid, ew__ws_t *ws) {
  if (k == 0)
    return 0;
  if (d <= EW__TOPK_FULL_DIM || 4 * ew__krylov_block(k, d) >= d)
    return topk_full(A, d, k, theta, U, resid, ws);
  dense_t m = {A, d};
  ew__op_t op = {d, dense_apply, &m};
  ew__ws_mark_t mk = ew__ws_mark(ws);
  double *r = ew__ws_alloc(ws, k * sizeof(double));
  double *V = r ? ew__ws_alloc(ws, k * d * sizeof(double)) : NULL;
  int rc = V ? 0 : EW_ENOMEM;
  /* a budget of d operator columns costs 2d³ flops, about what the full solve costs */
  if (rc == 0)
    rc = ew__krylov_topk(&op, k, warm, wk, seed, EW__TOPK_TOL, d, theta, V, r, NULL, ws);
  if (rc == 0) {
    double worst = 0;
    for (size_t i = 0; i < k; i++)
      worst = r[i] > worst ? r[i] : worst;
    *resid = worst;
    ew__emit_rows(V, d, k, U);
  }
  ew__ws_release(ws, mk);
  if (rc == 1) /* the gap is too small for the budget: a full solve is exact */
    rc = topk_full(A, d, k, theta, U, resid, ws);
  return rc;
}
