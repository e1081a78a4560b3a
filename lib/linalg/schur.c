/* schur.c — the Schur complement of paired blocks (Dissecting CLIP, Ospanov et al. 2024): what
 * of y's second moment x does not explain, S = C_yy − C_xyᵀ (C_xx + εI)⁺ C_xy, and what it does,
 * Δ = C_xyᵀ (C_xx + εI)⁺ C_xy.
 *
 * The pseudo-inverse is never formed. When C_xx is rank-deficient (n < d, the usual case) it has
 * entries near 1/ε = 1e12 on C_xx's null space, and the products in the reference's order lose
 * about eps·‖C‖²/ε: 2e-7 to 2e-6 absolutely in Δ, measured. Here C_xx = U diag(λ) Uᵀ (dsyevd),
 * B = Uᵀ C_xy, and Δ = Bᵀ diag(w) B with w = 1/(λ + ε), the same quantity, whose rounding is
 * that of its parts (1e-17 against C_xx's range-restricted inverse). pinv's cut-off is kept:
 * w = 0 where |λ + ε| ≤ fx·2⁻⁵²·max|λ + ε| (torch.linalg.pinv's default in float64). */
#include "linalg.h"

#include <cblas.h>
#include <float.h>
#include <math.h>
#include <string.h>

/* out (f×f, both triangles) = the upper triangle of s (row-major) over n. */
static void full_of(const double *s, size_t f, double n, double *out) {
  for (size_t i = 0; i < f; i++)
    for (size_t j = i; j < f; j++)
      out[i * f + j] = out[j * f + i] = s[i * f + j] / n;
}

size_t ew__schur_ws(size_t fx, size_t fy) {
  return ew__ws_size(fx * fx * sizeof(double)) + ew__ws_size(fx * sizeof(double)) +
         ew__ws_size((1 + 6 * fx + 2 * fx * fx) * sizeof(double)) +
         ew__ws_size((3 + 5 * fx) * sizeof(int)) + 3 * ew__ws_size(fx * fy * sizeof(double)) +
         2 * ew__ws_size(fy * fy * sizeof(double)) +
         ew__ws_size((1 + 6 * fy + 2 * fy * fy) * sizeof(double)) +
         ew__ws_size((3 + 5 * fy) * sizeof(int));
}

int ew__schur(size_t fx, size_t fy, double n, const double *sxx, const double *sxy,
              const double *syy, double eps, double *s_eig, double *d_eig, double *astar,
              ew__ws_t *ws) {
  ew__ws_mark_t mk = ew__ws_mark(ws);
  double *U = ew__ws_alloc(ws, fx * fx * sizeof(double));
  double *lam = ew__ws_alloc(ws, fx * sizeof(double));
  double *B = ew__ws_alloc(ws, fx * fy * sizeof(double));
  double *T = ew__ws_alloc(ws, fx * fy * sizeof(double));
  double *D = ew__ws_alloc(ws, fy * fy * sizeof(double));
  double *S = ew__ws_alloc(ws, fy * fy * sizeof(double));
  int rc = EW_ENOMEM;
  if (!U || !lam || !B || !T || !D || !S)
    goto out;
  full_of(sxx, fx, n, U);
  if ((rc = ew__eigpairs(U, fx, lam, ws)) != 0)
    goto out;
  /* U's memory holds the eigenvectors one after another: read row-major, it is Uᵀ */
  double top = 0;
  for (size_t i = 0; i < fx; i++)
    top = fmax(top, fabs(lam[i] + eps));
  double cut = (double)fx * DBL_EPSILON * top;
  for (size_t i = 0; i < fx; i++) {
    double v = lam[i] + eps;
    lam[i] = fabs(v) > cut ? 1.0 / v : 0.0; /* now w */
  }
  cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)fx, (int)fy, (int)fx, 1.0 / n, U,
              (int)fx, sxy, (int)fy, 0.0, B, (int)fy); /* B = Uᵀ C_xy */
  for (size_t i = 0; i < fx; i++)
    for (size_t j = 0; j < fy; j++)
      T[i * fy + j] = lam[i] * B[i * fy + j];
  cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)fy, (int)fy, (int)fx, 1.0, B,
              (int)fy, T, (int)fy, 0.0, D, (int)fy); /* Δ = Bᵀ diag(w) B */
  if (astar)
    cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)fx, (int)fy, (int)fx, 1.0, U,
                (int)fx, T, (int)fy, 0.0, astar, (int)fy); /* A* = U diag(w) B */
  /* S = C_yy − Δ and Δ, each symmetrised from its lower triangle (numpy's eigvalsh reads it) */
  full_of(syy, fy, n, S);
  for (size_t i = 0; i < fy; i++)
    for (size_t j = 0; j <= i; j++) {
      double dl = D[i * fy + j];
      S[i * fy + j] = S[j * fy + i] = S[i * fy + j] - dl;
      D[j * fy + i] = dl;
    }
  if ((rc = ew__eigvals(S, fy, s_eig, ws)) != 0)
    goto out;
  rc = ew__eigvals(D, fy, d_eig, ws);
out:
  ew__ws_release(ws, mk);
  return rc;
}
