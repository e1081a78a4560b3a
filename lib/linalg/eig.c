/* eig.c — the LAPACK side: all eigenvalues and all eigenpairs of a dense symmetric matrix.
 *
 * All eigenvalues come from dsyevd with JOBZ='N' (tridiagonal reduction + dsterf); dsyevr with a
 * range would save nothing because the reduction dominates. The *_work variants are called with
 * explicitly sized workspaces: bookworm's LAPACK rounds single-precision workspace queries down
 * above 2^24 (ssyevd 'V' fails for N >= 2895), and sizing workspaces ourselves avoids the whole
 * class of bug. A leaf: krylov.c solves its small projected problems here, and topk.c chooses
 * between block Lanczos and a full solve. */
#include "linalg.h"

#include <cblas.h>
#include <lapacke.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>


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

/* Residual norms ‖A u_i − θ_i u_i‖ for the first k columns of U given AU. */
static void emit_rows(const double *U_colmajor, size_t d, size_t k, double *U_rows) {
  /* column i of a col-major d×k matrix is already contiguous: row i of a k×d row-major one */
  if (U_rows != U_colmajor)
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

void ew__emit_rows(const double *U_colmajor, size_t d, size_t k, double *U_rows) {
  emit_rows(U_colmajor, d, k, U_rows);
}
