/* eig.c — the LAPACK side: all eigenvalues, all eigenpairs, and top-k eigenpairs by warm-started
 * block subspace iteration.
 *
 * All eigenvalues come from dsyevd with JOBZ='N' (tridiagonal reduction + dsterf); dsyevr with a
 * range would save nothing because the reduction dominates. The *_work variants are called with
 * explicitly sized workspaces: bookworm's LAPACK rounds single-precision workspace queries down
 * above 2^24 (ssyevd 'V' fails for N >= 2895), and sizing workspaces ourselves avoids the whole
 * class of bug. Top-k uses subspace iteration (dsymm + QR + Rayleigh–Ritz), which at d = 4096
 * costs a fraction of a full solve and converges in a few iterations from a warm start; when the
 * block would be a large part of d, or when the gap is too small for it to converge in
 * EW__TOPK_MAXIT iterations, a full solve is cheaper and exact, and is used instead. */
#include "../ew_internal.h"

#include <cblas.h>
#include <lapacke.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define EW__TOPK_MAXIT 60
#define EW__TOPK_FULL_DIM 512

static void reverse(double *w, size_t n) {
  for (size_t i = 0; i < n / 2; i++) {
    double t = w[i];
    w[i] = w[n - 1 - i];
    w[n - 1 - i] = t;
  }
}

int ew__eigvals(double *A, size_t d, double *w, ew__ws_t *ws) {
  if (d == 1) {
    w[0] = A[0];
    return 0;
  }
  /* The f64 workspace query is exact (the rounding bug is single-precision only) and asks for
   * room for the blocked tridiagonal reduction; the bare minimum 2n+1 forces unblocked dsytd2,
   * measured ~25% slower at d = 1024. */
  lapack_int n = (lapack_int)d, lwork = 2 * n + 1, liwork = 1, iq = 0;
  double q = 0;
  if (LAPACKE_dsyevd_work(LAPACK_COL_MAJOR, 'N', 'U', n, A, n, w, &q, -1, &iq, -1) == 0 &&
      q > (double)lwork)
    lwork = (lapack_int)q;
  if (iq > liwork)
    liwork = iq;
  ew__ws_mark_t mk = ew__ws_mark(ws);
  double *work = ew__ws_alloc(ws, (size_t)lwork * sizeof(double));
  lapack_int *iwork = work ? ew__ws_alloc(ws, (size_t)liwork * sizeof(lapack_int)) : NULL;
  if (!iwork) {
    ew__ws_release(ws, mk);
    return EW_ENOMEM;
  }
  lapack_int info =
      LAPACKE_dsyevd_work(LAPACK_COL_MAJOR, 'N', 'U', n, A, n, w, work, lwork, iwork, liwork);
  ew__ws_release(ws, mk);
  if (info != 0)
    return info < 0 ? EW_EINTERNAL : EW_ELAPACK;
  reverse(w, d);
  return 0;
}

int ew__eigpairs(double *A, size_t d, double *w, ew__ws_t *ws) {
  lapack_int n = (lapack_int)d;
  size_t lwork = 1 + 6 * d + 2 * d * d, liwork = 3 + 5 * d;
  ew__ws_mark_t mk = ew__ws_mark(ws);
  double *work = ew__ws_alloc(ws, lwork * sizeof(double));
  lapack_int *iwork = work ? ew__ws_alloc(ws, liwork * sizeof(lapack_int)) : NULL;
  if (!iwork) {
    ew__ws_release(ws, mk);
    return EW_ENOMEM;
  }
  lapack_int info = LAPACKE_dsyevd_work(LAPACK_COL_MAJOR, 'V', 'U', n, A, n, w, work,
                                        (lapack_int)lwork, iwork, (lapack_int)liwork);
  ew__ws_release(ws, mk);
  if (info != 0)
    return info < 0 ? EW_EINTERNAL : EW_ELAPACK;
  /* ascending → descending: reverse values and the column order of A */
  reverse(w, d);
  for (size_t i = 0; i < d / 2; i++) {
    double *a = A + i * d, *b = A + (d - 1 - i) * d;
    for (size_t t = 0; t < d; t++) {
      double x = a[t];
      a[t] = b[t];
      b[t] = x;
    }
  }
  return 0;
}

/* Orthonormalises the columns of X (d×b, col-major) in place. */
static int qr_orth(double *X, size_t d, size_t b, double *tau) {
  lapack_int info = LAPACKE_dgeqrf(LAPACK_COL_MAJOR, (lapack_int)d, (lapack_int)b, X,
                                   (lapack_int)d, tau);
  if (info != 0)
    return EW_ELAPACK;
  info = LAPACKE_dorgqr(LAPACK_COL_MAJOR, (lapack_int)d, (lapack_int)b, (lapack_int)b, X,
                        (lapack_int)d, tau);
  return info != 0 ? EW_ELAPACK : 0;
}

/* Residual norms ‖A u_i − θ_i u_i‖ for the first k columns of U given AU. */
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

static void emit_rows(const double *U_colmajor, size_t d, size_t k, double *U_rows) {
  /* column i of a col-major d×k matrix is already contiguous: row i of a k×d row-major one */
  memcpy(U_rows, U_colmajor, k * d * sizeof(double));
  for (size_t i = 0; i < k; i++) { /* sign: largest-magnitude entry positive */
    double *u = U_rows + i * d;
    size_t arg = 0;
    for (size_t t = 1; t < d; t++)
      if (fabs(u[t]) > fabs(u[arg]))
        arg = t;
    if (u[arg] < 0)
      for (size_t t = 0; t < d; t++)
        u[t] = -u[t];
  }
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
      emit_rows(Z, d, k, U);
    }
  }
  ew__ws_release(ws, mk);
  return rc;
}

int ew__topk(const double *A, size_t d, size_t k, const double *warm, size_t wk, uint64_t seed,
             double *theta, double *U, double *resid, ew__ws_t *ws) {
  if (k == 0)
    return 0;
  size_t p = k > 10 ? k : 10, b = k + p;
  if (d <= EW__TOPK_FULL_DIM || 2 * b >= d)
    return topk_full(A, d, k, theta, U, resid, ws);

  ew__ws_mark_t mk = ew__ws_mark(ws);
  double *X = ew__ws_alloc(ws, d * b * sizeof(double));
  double *Y = X ? ew__ws_alloc(ws, d * b * sizeof(double)) : NULL;
  double *R = Y ? ew__ws_alloc(ws, d * b * sizeof(double)) : NULL;
  double *T = R ? ew__ws_alloc(ws, b * b * sizeof(double)) : NULL;
  double *th = T ? ew__ws_alloc(ws, b * sizeof(double)) : NULL;
  double *tau = th ? ew__ws_alloc(ws, b * sizeof(double)) : NULL;
  int rc = EW_ENOMEM;
  if (!tau)
    goto out;
  ew__rng_t rng;
  ew__rng_seed(&rng, seed);
  size_t nw = warm ? (wk < b ? wk : b) : 0;
  if (nw)
    memcpy(X, warm, nw * d * sizeof(double));
  for (size_t i = nw * d; i < b * d; i++)
    X[i] = ew__rng_normal(&rng);
  if ((rc = qr_orth(X, d, b, tau)) != 0)
    goto out;
  double scale = 0;
  for (int it = 0; it < EW__TOPK_MAXIT; it++) {
    /* Y = A X; T = Xᵀ Y; T = S Θ Sᵀ; Ritz U = X S (into R), AU = Y S (into X's place) */
    cblas_dsymm(CblasColMajor, CblasLeft, CblasUpper, (int)d, (int)b, 1.0, A, (int)d, X, (int)d,
                0.0, Y, (int)d);
    cblas_dgemm(CblasColMajor, CblasTrans, CblasNoTrans, (int)b, (int)b, (int)d, 1.0, X, (int)d,
                Y, (int)d, 0.0, T, (int)b);
    if ((rc = ew__eigpairs(T, b, th, ws)) != 0)
      goto out;
    cblas_dgemm(CblasColMajor, CblasNoTrans, CblasNoTrans, (int)d, (int)b, (int)b, 1.0, X, (int)d,
                T, (int)b, 0.0, R, (int)d);
    cblas_dgemm(CblasColMajor, CblasNoTrans, CblasNoTrans, (int)d, (int)b, (int)b, 1.0, Y, (int)d,
                T, (int)b, 0.0, X, (int)d);
    scale = fabs(th[0]);
    double r = max_resid(R, X, th, d, k);
    if (r <= 1e-10 * scale || scale == 0) {
      *resid = r;
      memcpy(theta, th, k * sizeof(double));
      emit_rows(R, d, k, U);
      rc = 0;
      goto out;
    }
    /* next block: A·(Ritz vectors), re-orthonormalised */
    if ((rc = qr_orth(X, d, b, tau)) != 0)
      goto out;
  }
  /* the gap is too small for subspace iteration to settle: a full solve is exact */
  rc = topk_full(A, d, k, theta, U, resid, ws);
out:
  ew__ws_release(ws, mk);
  return rc;
}
