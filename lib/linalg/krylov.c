/* krylov.c — the top of the spectrum without a full solve: top-k eigenpairs by block Lanczos
 * with full reorthogonalisation and thick restarts. Stochastic Lanczos quadrature (SLQ) for
 * tr g(A) on the part of the spectrum the top pairs leave is slq.c, which projects its probes
 * off them with ew__project_out below.
 *
 * Top-k, like SLQ, reads A only through an operator (ew__op_t: Y = A X for a block of columns),
 * so the state is never copied: view/solve.c applies the moments' M2 (dsymm on the upper triangle, plus μμᵀ
 * when uncentred), the window's rows (Zᵀ(Z X)/N), or a Frequent Directions sketch.
 *
 * Top-k (ew__krylov_topk). The basis Q = [Q_0 Q_1 …] of the block Krylov space
 * span{X, AX, A²X, …} grows one block of b columns per step; every new block is orthogonalised
 * against all of Q twice (classical Gram–Schmidt, twice is enough: Giraud et al. 2005) and then
 * QR-factored. A·Q is kept beside Q, so T = Qᵀ A Q is assembled column block by column block
 * and every Rayleigh–Ritz step gives Ritz pairs (θ, u = Q s) together with A u = (AQ) s: the
 * residual ‖A u − θ u‖ is computed from the operator's own products, not estimated. A pair is
 * converged when its residual is at most tol·|θ_1|; Weyl then puts an eigenvalue within the
 * residual of θ, and when θ is separated from the rest of the spectrum by δ the error is at most
 * resid²/δ (Kato–Temple). When the basis is full, the top (k + b) Ritz pairs are kept (a thick
 * restart) and the next block is built from their residuals, which span the next Krylov block.
 * Warm start: the caller's vectors (the last answer, the live estimate) fill the first block, so
 * an unchanged or slowly drifting state converges in one or two steps.
 *
 * Block Lanczos over subspace iteration: the error of subspace iteration falls like
 * (λ_{b+1}/λ_k)^t, block Lanczos like a Chebyshev polynomial of degree t in the gap — a square
 * root of the iteration count on a small gap. The previous implementation (subspace iteration,
 * EW__TOPK_MAXIT = 60 then a full solve) needed the full solve on power-law spectra at d = 4096. */
#include "linalg.h"

#include <cblas.h>
#include <lapacke.h>
#include <math.h>
#include <string.h>

/* ---- small helpers ---- */

static void gaussian(ew__rng_t *r, double *x, size_t n) {
  for (size_t i = 0; i < n; i++)
    x[i] = ew__rng_normal(r);
}

/* W (d×b) ← W − Q (Qᵀ W), Q d×m; C (m×b) scratch. */
void ew__project_out(const double *Q, size_t d, size_t m, double *W, size_t b, double *C) {
  if (m == 0 || b == 0)
    return;
  cblas_dgemm(CblasColMajor, CblasTrans, CblasNoTrans, (int)m, (int)b, (int)d, 1.0, Q, (int)d, W,
              (int)d, 0.0, C, (int)m);
  cblas_dgemm(CblasColMajor, CblasNoTrans, CblasNoTrans, (int)d, (int)b, (int)m, -1.0, Q, (int)d,
              C, (int)m, 1.0, W, (int)d);
}

static double col_norm(const double *x, size_t d) { return cblas_dnrm2((int)d, x, 1); }

/* Orthonormalises the columns of W (d×b) in place, after making them orthogonal to Q (d×m,
 * orthonormal). A column that is (numerically) in span(Q) — an invariant subspace was found, or
 * a warm vector repeats another — is replaced by a random direction, so the block always has
 * full rank. Workspace: C (max(m,b)×b), tau (b). */
static int orth_block(const double *Q, size_t d, size_t m, double *W, size_t b, double *C,
                      double *tau, ew__rng_t *rng) {
  double *before = tau; /* reuse: norms before projection */
  for (size_t i = 0; i < b; i++)
    before[i] = col_norm(W + i * d, d);
  ew__project_out(Q, d, m, W, b, C);
  ew__project_out(Q, d, m, W, b, C);
  int replaced = 0;
  for (size_t i = 0; i < b; i++) {
    double nrm = col_norm(W + i * d, d);
    if (!(nrm > 1e-10 * before[i]) || !(nrm > 0)) {
      gaussian(rng, W + i * d, d);
      replaced = 1;
    }
  }
  if (replaced) {
    ew__project_out(Q, d, m, W, b, C);
    ew__project_out(Q, d, m, W, b, C);
  }
  /* within the block: Householder QR */
  if (LAPACKE_dgeqrf(LAPACK_COL_MAJOR, (lapack_int)d, (lapack_int)b, W, (lapack_int)d, tau) != 0)
    return EW_ELAPACK;
  if (LAPACKE_dorgqr(LAPACK_COL_MAJOR, (lapack_int)d, (lapack_int)b, (lapack_int)b, W,
                     (lapack_int)d, tau) != 0)
    return EW_ELAPACK;
  /* once more against Q: QR mixes the columns, and tiny ones carried Q-components up */
  if (replaced || m > 0) {
    ew__project_out(Q, d, m, W, b, C);
    if (LAPACKE_dgeqrf(LAPACK_COL_MAJOR, (lapack_int)d, (lapack_int)b, W, (lapack_int)d, tau) != 0 ||
        LAPACKE_dorgqr(LAPACK_COL_MAJOR, (lapack_int)d, (lapack_int)b, (lapack_int)b, W,
                       (lapack_int)d, tau) != 0)
      return EW_ELAPACK;
  }
  return 0;
}

/* Eigenpairs of the symmetric m×m T (col-major, full), descending; T overwritten by vectors. */
static int small_eig(double *T, size_t m, double *w, ew__ws_t *ws) { return ew__eigpairs(T, m, w, ws); }

/* ---- top-k ---- */

size_t ew__krylov_block(size_t k, size_t d) {
  size_t b = k + 4 > 8 ? k + 4 : 8;
  if (b > 32 && b > k)
    b = k + 8 < b ? k + 8 : b;
  return b < d ? b : d;
}

/* The basis holds 8 blocks (at least 64 columns), at most d/2 columns once that leaves room for
 * two blocks (so Q and AQ together stay within d² doubles), and never more than d. */
static size_t krylov_mmax(size_t b, size_t d) {
  size_t m = 8 * b < 64 ? 64 : 8 * b;
  if (m > d / 2 && d / 2 >= 2 * b)
    m = d / 2;
  if (m > d)
    m = d;
  return m < b ? b : m;
}

size_t ew__krylov_ws(size_t d, size_t k) {
  size_t b = ew__krylov_block(k, d), mmax = krylov_mmax(b, d);
  size_t m2 = mmax * mmax;
  /* Q, AQ, T, S, θ, C, tau, the next block and its residuals, the restart's two blocks,
   * dsyevd's workspace for mmax */
  return ew__ws_size(d * mmax * sizeof(double)) * 4 + ew__ws_size(m2 * sizeof(double)) * 2 +
         ew__ws_size(mmax * sizeof(double)) * 2 + ew__ws_size(mmax * b * sizeof(double)) +
         ew__ws_size(d * (k > b ? k : b) * sizeof(double)) * 2 +
         ew__ws_size((1 + 6 * mmax + 2 * m2) * sizeof(double)) +
         ew__ws_size((3 + 5 * mmax) * sizeof(lapack_int)) * 2 + 4096;
}

int ew__krylov_topk(const ew__op_t *op, size_t k, const double *warm, size_t wk, uint64_t seed,
                    double tol, size_t max_apply, double *theta, double *U, double *resid,
                    ew__krylov_info_t *info, ew__ws_t *ws) {
  size_t d = op->d;
  if (k == 0 || k > d)
    return EW_EBADPARAM;
  size_t b = ew__krylov_block(k, d);
  size_t mmax = krylov_mmax(b, d);
  size_t keep = k + b; /* Ritz pairs kept at a restart */
  if (keep + b > mmax)
    keep = mmax > 2 * b ? mmax - b : b;
  if (keep < k)
    keep = k;

  ew__ws_mark_t mk = ew__ws_mark(ws);
  double *Q = ew__ws_alloc(ws, d * mmax * sizeof(double));
  double *AQ = Q ? ew__ws_alloc(ws, d * mmax * sizeof(double)) : NULL;
  double *T = AQ ? ew__ws_alloc(ws, mmax * mmax * sizeof(double)) : NULL;
  double *S = T ? ew__ws_alloc(ws, mmax * mmax * sizeof(double)) : NULL;
  double *th = S ? ew__ws_alloc(ws, mmax * sizeof(double)) : NULL;
  double *tau = th ? ew__ws_alloc(ws, mmax * sizeof(double)) : NULL;
  double *C = tau ? ew__ws_alloc(ws, mmax * b * sizeof(double)) : NULL;
  size_t wc = k > b ? k : b; /* W and R hold the next block, or the top-k Ritz pairs */
  double *W = C ? ew__ws_alloc(ws, d * wc * sizeof(double)) : NULL;
  double *R = W ? ew__ws_alloc(ws, d * wc * sizeof(double)) : NULL;
  double *Qn = R ? ew__ws_alloc(ws, d * keep * sizeof(double)) : NULL;
  double *AQn = Qn ? ew__ws_alloc(ws, d * keep * sizeof(double)) : NULL;
  lapack_int *jpvt = AQn ? ew__ws_alloc(ws, keep * sizeof(lapack_int)) : NULL;
  int rc = EW_ENOMEM;
  if (!jpvt)
    goto out;
  ew__rng_t rng;
  ew__rng_seed(&rng, seed);

  /* the first block: warm vectors, then random */
  size_t nw = warm ? (wk < b ? wk : b) : 0;
  if (nw)
    memcpy(Q, warm, nw * d * sizeof(double));
  gaussian(&rng, Q + nw * d, (b - nw) * d);
  if ((rc = orth_block(NULL, d, 0, Q, b, C, tau, &rng)) != 0)
    goto out;
  size_t m = 0;      /* columns of Q whose A-products are in AQ and T */
  size_t nq = b;     /* columns of Q */
  size_t applied = 0;
  size_t steps = 0, restarts = 0;
  double worst = INFINITY;
  for (;;) {
    /* apply A to the new block Q[:, m:nq] */
    size_t nb = nq - m;
    op->apply(op->ctx, Q + m * d, AQ + m * d, nb);
    applied += nb;
    steps++;
    /* T[0:nq, m:nq] = Qᵀ (A Q_new); mirror */
    cblas_dgemm(CblasColMajor, CblasTrans, CblasNoTrans, (int)nq, (int)nb, (int)d, 1.0, Q, (int)d,
                AQ + m * d, (int)d, 0.0, T + m * mmax, (int)mmax);
    for (size_t j = m; j < nq; j++)
      for (size_t i = 0; i < j; i++) {
        double a = 0.5 * (T[i + j * mmax] + T[j + i * mmax]);
        if (i >= m) /* both in the new block: symmetrise */
          T[i + j * mmax] = a;
        T[j + i * mmax] = T[i + j * mmax];
      }
    m = nq;
    /* Rayleigh–Ritz */
    for (size_t j = 0; j < m; j++)
      memcpy(S + j * m, T + j * mmax, m * sizeof(double));
    if ((rc = small_eig(S, m, th, ws)) != 0)
      goto out;
    size_t kk = k < m ? k : m;
    /* top-k Ritz vectors and their products: U ← Q S_k (into W), AU ← AQ S_k (into R) */
    cblas_dgemm(CblasColMajor, CblasNoTrans, CblasNoTrans, (int)d, (int)kk, (int)m, 1.0, Q, (int)d,
                S, (int)m, 0.0, W, (int)d);
    cblas_dgemm(CblasColMajor, CblasNoTrans, CblasNoTrans, (int)d, (int)kk, (int)m, 1.0, AQ,
                (int)d, S, (int)m, 0.0, R, (int)d);
    double scale = fabs(th[0]);
    worst = 0;
    for (size_t i = 0; i < kk; i++) {
      cblas_daxpy((int)d, -th[i], W + i * d, 1, R + i * d, 1);
      double r = col_norm(R + i * d, d);
      resid[i] = r;
      if (r > worst)
        worst = r;
    }
    bool done = kk == k && (worst <= tol * scale || scale == 0);
    if (done || m == d || applied >= max_apply) {
      if (kk < k) { /* cannot happen with b >= 1 and d >= k once m == d */
        rc = EW_EINTERNAL;
        goto out;
      }
      memcpy(theta, th, k * sizeof(double));
      memcpy(U, W, k * d * sizeof(double));
      rc = (done || m == d) ? 0 : 1;
      if (m == d && !done) /* the basis spans everything: Ritz pairs are eigenpairs */
        rc = 0;
      break;
    }
    /* next block: either extend the basis, or restart from the top `keep` Ritz pairs */
    size_t nbn = b < d - m ? b : d - m;
    if (m + nbn > mmax) {
      /* thick restart: Q ← Q S_kp, AQ ← AQ S_kp, T ← diag(θ) */
      size_t kp = keep < m ? keep : m;
      cblas_dgemm(CblasColMajor, CblasNoTrans, CblasNoTrans, (int)d, (int)kp, (int)m, 1.0, Q,
                  (int)d, S, (int)m, 0.0, Qn, (int)d);
      cblas_dgemm(CblasColMajor, CblasNoTrans, CblasNoTrans, (int)d, (int)kp, (int)m, 1.0, AQ,
                  (int)d, S, (int)m, 0.0, AQn, (int)d);
      memcpy(Q, Qn, d * kp * sizeof(double));
      memcpy(AQ, AQn, d * kp * sizeof(double));
      for (size_t j = 0; j < kp; j++) {
        memset(T + j * mmax, 0, kp * sizeof(double));
        T[j + j * mmax] = th[j];
      }
      /* the kept pairs' residuals A u − θ u span the next Krylov block; the converged ones are
       * rounding noise, so the block is the dominant part of all of them (pivoted QR puts the
       * largest residuals first) */
      double *Rk = Qn; /* free again */
      for (size_t j = 0; j < kp; j++) {
        memcpy(Rk + j * d, AQ + j * d, d * sizeof(double));
        cblas_daxpy((int)d, -th[j], Q + j * d, 1, Rk + j * d, 1);
      }
      ew__project_out(Q, d, kp, Rk, kp, AQn);
      m = kp;
      nbn = b < d - m ? b : d - m;
      size_t nr = nbn < kp ? nbn : kp;
      memset(jpvt, 0, kp * sizeof(lapack_int));
      if (LAPACKE_dgeqp3(LAPACK_COL_MAJOR, (lapack_int)d, (lapack_int)kp, Rk, (lapack_int)d, jpvt,
                         tau) != 0 ||
          LAPACKE_dorgqr(LAPACK_COL_MAJOR, (lapack_int)d, (lapack_int)nr, (lapack_int)nr, Rk,
                         (lapack_int)d, tau) != 0) {
        rc = EW_ELAPACK;
        goto out;
      }
      memcpy(W, Rk, nr * d * sizeof(double));
      if (nbn > nr)
        gaussian(&rng, W + nr * d, (nbn - nr) * d);
      restarts++;
    } else {
      /* the next Krylov block is A·(the last block), already in AQ */
      for (size_t j = 0; j < nbn && j < nb; j++)
        memcpy(W + j * d, AQ + (m - nb + j) * d, d * sizeof(double));
      if (nbn > nb)
        gaussian(&rng, W + nb * d, (nbn - nb) * d);
    }
    if ((rc = orth_block(Q, d, m, W, nbn, C, tau, &rng)) != 0)
      goto out;
    memcpy(Q + m * d, W, nbn * d * sizeof(double));
    nq = m + nbn;
  }
  if (info) {
    info->applied = applied;
    info->steps = steps;
    info->restarts = restarts;
    info->block = b;
  }
out:
  ew__ws_release(ws, mk);
  return rc;
}
