/* cert.c — live_topk's certificate: how far the live vectors are from the *top* eigenpairs of
 * the matrix a query reads, not only from some eigenpair.
 *
 * The live estimate (rop.c) can be wrong in a way its residual cannot see: when the data's top
 * direction moves and the estimate has not followed yet, or when two heavy directions are nearly
 * equal, the reported v is (close to) an eigenvector — of the wrong eigenvalue. Its residual
 * ‖A v − θ v‖/θ is then small (measured 8.8e-3 with θ = 4.75 against λ₁ = 8.26), because a
 * residual only says that θ is near *some* eigenvalue (Weyl). What says whether θ is near the
 * *top* one is a comparison with the top of the spectrum, so the certificate brackets the top k
 * eigenvalues, λ_i ∈ [lo_i, hi_i], and compares:
 *
 *   e_i = max(ρ_i + δ, hi_i − θ_i, θ_i − lo_i) / θ_i,   e = max_i e_i   (∞ when some θ_i ≤ 0)
 *
 * with θ_i = v_iᵀ A v_i, ρ_i = ‖A v_i − θ_i v_i‖, δ the sketch's bound (0 for an exact view).
 * Whatever the brackets, ρ_i ≤ e θ_i (the old certificate is never larger), and whenever
 * lo_i ≤ λ_i ≤ hi_i, |λ_i − θ_i| ≤ e θ_i: a θ far below λ₁ makes e large.
 *
 * The brackets:
 *   - exact view: a few steps of block Lanczos (krylov.c, EW__LIVE_CERT_BLOCKS blocks of
 *     ew__krylov_block(k, d) columns, products by dgemm) whose first block is the live vectors
 *     and random columns; its Ritz values μ_i with residuals r_i give lo_i = μ_i (Cauchy
 *     interlacing: μ_i ≤ λ_i always) and hi_i = μ_i + r_i (Weyl, for the eigenvalue μ_i
 *     approximates). The upper end holds when the Krylov space has not missed an eigenvalue above
 *     μ_i + r_i; the random columns are what rules that out: a direction whose eigenvalue exceeds
 *     the Ritz value by a fraction ε escapes m Lanczos steps from a Gaussian start with
 *     probability at most 1.648 √d e^{−√ε (2m−1)} (Kuczyński & Woźniakowski, SIAM J. Matrix
 *     Anal. Appl. 13(4), 1992), and every wrong estimate of tests/numeric/test_live_cert.py is
 *     caught. Because the live vectors are in the first block, μ_1 ≥ θ_1 and a good estimate's
 *     certificate stays near its residual;
 *   - sketched view: λ_i(A) ∈ [λ_i(A_sk), λ_i(A_sk) + δ] (Weyl, 0 ≼ A − A_sk ≼ δ I; the sketch's
 *     own spectrum is exact), a bracket with no condition.
 * Cost: the Lanczos steps, EW__LIVE_CERT_BLOCKS · b operator columns (b = max(8, k + 4)) by
 * dgemm, plus the basis' orthogonalisation, O(d (mb)²) — measured in the README's table. */
#include "live.h"

#include <cblas.h>
#include <math.h>
#include <string.h>

/* Block Lanczos steps of the certificate: the Krylov polynomial's degree is one less. */
#define EW__LIVE_CERT_BLOCKS 5

int ew__live_certify(ew__view_t *v, const double *V, size_t k, uint64_t seed, double *theta,
                     double *err, ew__live_cert_t *info) {
  size_t d = v->d;
  if (k == 0 || k > d)
    return EW_EBADPARAM;
  ew__ws_mark_t mk = ew__ws_mark(v->ws);
  double *AV = ew__ws_alloc(v->ws, k * d * sizeof(double));
  double *lo = AV ? ew__ws_alloc(v->ws, 3 * k * sizeof(double)) : NULL;
  double *U = lo ? ew__ws_alloc(v->ws, k * d * sizeof(double)) : NULL;
  int rc = U ? 0 : EW_ENOMEM;
  double *hi = lo + k, *r = hi + k, delta = ew__view_sketch_delta(v);
  ew__live_cert_t inf = {0};
  if (rc == 0 && ew__view_is_sketch(v)) {
    /* A_sk v_i, then the sketch's exact top-k as brackets of A's: midpoints ± δ/2 */
    for (size_t i = 0; rc == 0 && i < k; i++)
      rc = ew__view_matvec(v, V + i * d, AV + i * d);
    double half = 0;
    if (rc == 0)
      rc = ew__view_topk(v, k, lo, NULL, &half);
    for (size_t i = 0; rc == 0 && i < k; i++) {
      hi[i] = lo[i] + half;
      lo[i] -= half;
    }
  } else if (rc == 0) {
    ew__op_t op;
    if ((rc = ew__view_op(v, &op)) == 0) {
      op.apply(op.ctx, V, AV, k); /* V's k rows are the columns of a d×k matrix */
      ew__krylov_info_t ki = {0};
      size_t b = ew__krylov_block(k, d);
      /* tol 0: the fixed budget runs every step (a loose tolerance would stop at the first block,
       * whose Ritz pairs are accurate but have not had the steps that find a hidden top) */
      rc = ew__krylov_topk(&op, k, V, k, seed, 0.0, EW__LIVE_CERT_BLOCKS * b, lo, U, r, &ki,
                           v->ws);
      if (rc == 1)
        rc = 0;
      inf.applied = ki.applied + k;
      for (size_t i = 0; rc == 0 && i < k; i++)
        hi[i] = lo[i] + r[i];
    }
  }
  if (rc == 0) {
    double worst = 0;
    for (size_t i = 0; i < k; i++) {
      const double *x = V + i * d;
      double *y = AV + i * d;
      double th = cblas_ddot((int)d, x, 1, y, 1);
      cblas_daxpy((int)d, -th, x, 1, y, 1);
      double rho = cblas_dnrm2((int)d, y, 1) + delta;
      double top = fmax(hi[i] - th, th - lo[i]);
      theta[i] = th;
      double e = th > 0 ? fmax(rho, top) / th : INFINITY;
      worst = e > worst ? e : worst;
      double er = th > 0 ? rho / th : INFINITY, et = th > 0 ? top / th : INFINITY;
      inf.residual = er > inf.residual ? er : inf.residual;
      inf.top = et > inf.top ? et : inf.top;
      if (i == 0)
        inf.hi1 = hi[0];
    }
    *err = worst;
    if (info)
      *info = inf;
  }
  ew__ws_release(v->ws, mk);
  return rc;
}
