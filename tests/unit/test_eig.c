/* test_eig.c — the LAPACK wrappers and top-k subspace iteration, on matrices with a known
 * spectrum built as Q diag(λ) Qᵀ from a product of random Householder reflections. */
#include "ew_internal.h"
#include "tap.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* A = Q diag(lam) Qᵀ (col-major d×d), Q = H_1 H_2 H_3 (Householder); Q's columns into Qout. */
/* one workspace for the whole test (functions under test give back what they take) */
static ew__ws_t *ws(void) {
  static ew__ws_t *w;
  if (!w)
    w = ew__ws_new();
  return w;
}

typedef struct {
  const double *A;
  size_t d;
} dense_t;
static void dense_apply_test(const void *ctx, const double *X, double *Y, size_t b) {
  const dense_t *m = ctx;
  cblas_dsymm(CblasColMajor, CblasLeft, CblasUpper, (int)m->d, (int)b, 1.0, m->A, (int)m->d, X,
              (int)m->d, 0.0, Y, (int)m->d);
}

static void build(size_t d, const double *lam, uint64_t seed, double *A, double *Qout) {
  ew__rng_t r;
  ew__rng_seed(&r, seed);
  double *Q = calloc(d * d, sizeof(double)), *v = malloc(d * sizeof(double));
  for (size_t i = 0; i < d; i++)
    Q[i + i * d] = 1.0;
  for (int h = 0; h < 3; h++) { /* Q ← Q (I − 2vvᵀ) */
    double nv = 0;
    for (size_t i = 0; i < d; i++) {
      v[i] = ew__rng_normal(&r);
      nv += v[i] * v[i];
    }
    for (size_t i = 0; i < d; i++)
      v[i] /= sqrt(nv);
    for (size_t row = 0; row < d; row++) {
      double dot = 0;
      for (size_t c = 0; c < d; c++)
        dot += Q[row + c * d] * v[c];
      for (size_t c = 0; c < d; c++)
        Q[row + c * d] -= 2 * dot * v[c];
    }
  }
  double *QL = malloc(d * d * sizeof(double));
  for (size_t c = 0; c < d; c++)
    for (size_t row = 0; row < d; row++)
      QL[row + c * d] = Q[row + c * d] * lam[c];
  cblas_dgemm(CblasColMajor, CblasNoTrans, CblasTrans, (int)d, (int)d, (int)d, 1.0, QL, (int)d, Q,
              (int)d, 0.0, A, (int)d);
  if (Qout)
    memcpy(Qout, Q, d * d * sizeof(double));
  free(Q);
  free(v);
  free(QL);
}

static void all_eigenvalues_descending_to_1e12(void) {
  size_t dims[] = {1, 2, 17, 300};
  for (size_t t = 0; t < sizeof dims / sizeof dims[0]; t++) {
    size_t d = dims[t];
    double *lam = malloc(d * sizeof(double)), *A = malloc(d * d * sizeof(double));
    double *w = malloc(d * sizeof(double));
    for (size_t i = 0; i < d; i++)
      lam[i] = 1.0 / (double)(i + 1);
    build(d, lam, 7 + d, A, NULL);
    CHECK(ew__eigvals(A, d, w, ws()) == 0, "d=%zu", d);
    double worst = 0;
    for (size_t i = 0; i < d; i++)
      worst = fmax(worst, fabs(w[i] - lam[i]));
    CHECK(worst <= 1e-12, "d=%zu max |dλ| = %.2e", d, worst);
    free(lam);
    free(A);
    free(w);
  }
}

static void topk_by_subspace_iteration_matches_known_pairs(void) {
  size_t d = 1100, k = 10; /* above the full-solve threshold: exercises the iteration */
  double *lam = malloc(d * sizeof(double)), *A = malloc(d * d * sizeof(double));
  double *Q = malloc(d * d * sizeof(double));
  for (size_t i = 0; i < d; i++)
    lam[i] = 1.0 / (double)(i + 1);
  build(d, lam, 99, A, Q);
  double theta[10], *U = malloc(k * d * sizeof(double)), resid = -1;
  CHECK(ew__topk(A, d, k, NULL, 0, 1, theta, U, &resid, ws()) == 0, "cold");
  for (size_t i = 0; i < k; i++) {
    CHECK(tap_relerr(theta[i], lam[i]) <= 1e-10, "θ%zu = %.15g want %.15g", i, theta[i], lam[i]);
    double dot = 0;
    for (size_t t = 0; t < d; t++)
      dot += U[i * d + t] * Q[t + i * d];
    CHECK(1 - dot * dot <= 1e-8, "vector %zu: 1-<u,q>^2 = %.2e", i, 1 - dot * dot);
  }
  CHECK(resid >= 0 && resid <= 1e-9, "reported residual %.2e", resid);
  /* warm start from the answer converges at once to the same pairs */
  double theta2[10], *U2 = malloc(k * d * sizeof(double)), resid2;
  CHECK(ew__topk(A, d, k, U, k, 2, theta2, U2, &resid2, ws()) == 0, "warm");
  for (size_t i = 0; i < k; i++)
    CHECK(tap_relerr(theta2[i], lam[i]) <= 1e-10, "warm θ%zu", i);
  free(lam);
  free(A);
  free(Q);
  free(U);
  free(U2);
}

static void topk_full_solve_path_for_small_d(void) {
  size_t d = 40, k = 5;
  double lam[40], A[1600], Q[1600], theta[5], U[5 * 40], resid;
  for (size_t i = 0; i < d; i++)
    lam[i] = (double)(d - i);
  build(d, lam, 3, A, Q);
  CHECK(ew__topk(A, d, k, NULL, 0, 1, theta, U, &resid, ws()) == 0, "rc");
  for (size_t i = 0; i < k; i++)
    CHECK(tap_relerr(theta[i], lam[i]) <= 1e-13, "θ%zu", i);
  CHECK(resid <= 1e-11, "resid %.2e", resid);
  for (size_t i = 0; i < k; i++) { /* sign convention: largest-magnitude entry positive */
    size_t arg = 0;
    for (size_t t = 1; t < d; t++)
      if (fabs(U[i * d + t]) > fabs(U[i * d + arg]))
        arg = t;
    CHECK(U[i * d + arg] > 0, "sign of vector %zu", i);
  }
}

static void eigenpairs_reconstruct_the_matrix(void) {
  size_t d = 64;
  double lam[64], A[64 * 64], Z[64 * 64], w[64];
  for (size_t i = 0; i < d; i++)
    lam[i] = exp(-(double)i / 8.0);
  build(d, lam, 5, A, NULL);
  memcpy(Z, A, sizeof A);
  CHECK(ew__eigpairs(Z, d, w, ws()) == 0, "rc");
  double worst = 0;
  for (size_t i = 0; i < d; i++)
    for (size_t j = 0; j < d; j++) {
      double s = 0;
      for (size_t t = 0; t < d; t++)
        s += Z[i + t * d] * w[t] * Z[j + t * d];
      worst = fmax(worst, fabs(s - A[i + j * d]));
    }
  CHECK(worst <= 1e-13, "‖ZΛZᵀ − A‖_max = %.2e", worst);
  for (size_t i = 1; i < d; i++)
    CHECK(w[i] <= w[i - 1], "descending at %zu", i);
}

/* Block Lanczos top-k against dsyevd on the same matrix: spectra with gaps (power law), without
 * (nearly flat, a repeated eigenvalue straddling k, an exact cluster), and collapsed (rank 3).
 * Eigenvalues within 1e-10·λ₁; residuals as reported; warm restart from the answer. */
static void krylov_topk_matches_dsyevd_with_and_without_gaps(void) {
  size_t d = 700, k = 10;
  const char *names[] = {"power law 1/i", "nearly flat 1-1e-4 i", "repeated 3 (x5), 2 (x10)",
                         "rank 3", "exponential 0.99^i"};
  double *lam = malloc(d * sizeof(double)), *A = malloc(d * d * sizeof(double));
  double *Z = malloc(d * d * sizeof(double)), *w = malloc(d * sizeof(double));
  double *U = malloc(k * d * sizeof(double)), th[10], res[10];
  for (int c = 0; c < 5; c++) {
    for (size_t i = 0; i < d; i++) {
      double x = (double)i;
      lam[i] = c == 0   ? 1.0 / (x + 1)
               : c == 1 ? 1.0 - 1e-4 * x
               : c == 2 ? (i < 5 ? 3.0 : i < 15 ? 2.0 : 1.0 / (x + 1))
               : c == 3 ? (i < 3 ? 3.0 - x : 0.0)
                        : pow(0.99, x);
    }
    build(d, lam, 11 + (uint64_t)c, A, NULL);
    memcpy(Z, A, d * d * sizeof(double));
    CHECK(ew__eigvals(Z, d, w, ws()) == 0, "%s: dsyevd", names[c]);
    dense_t m = {A, d};
    ew__op_t op = {d, dense_apply_test, &m};
    ew__krylov_info_t info;
    int rc = ew__krylov_topk(&op, k, NULL, 0, 5, 1e-12, 20 * d, th, U, res, &info, ws());
    CHECK(rc == 0, "%s: converged (rc %d, %zu columns, %zu restarts)", names[c], rc, info.applied,
          info.restarts);
    double worst = 0, wr = 0;
    for (size_t i = 0; i < k; i++) {
      worst = fmax(worst, fabs(th[i] - w[i]) / w[0]);
      wr = fmax(wr, res[i]);
    }
    CHECK(worst <= 1e-10, "%s: max |θ - λ|/λ₁ = %.2e", names[c], worst);
    CHECK(wr <= 1e-12 * th[0] * 1.0000001, "%s: residuals %.2e <= 1e-12 θ₁", names[c], wr);
    /* the residual is the true one: recompute ‖A u − θ u‖ for u = U column 0 */
    double *Au = Z; /* scratch */
    cblas_dsymv(CblasColMajor, CblasUpper, (int)d, 1.0, A, (int)d, U, 1, 0.0, Au, 1);
    double r0 = 0;
    for (size_t t = 0; t < d; t++)
      r0 += (Au[t] - th[0] * U[t]) * (Au[t] - th[0] * U[t]);
    CHECK(fabs(sqrt(r0) - res[0]) <= 1e-13 * th[0] + 0.5 * res[0], "%s: residual honest (%.2e vs %.2e)",
          names[c], sqrt(r0), res[0]);
    size_t cold = info.applied;
    rc = ew__krylov_topk(&op, k, U, k, 6, 1e-12, 20 * d, th, U, res, &info, ws());
    CHECK(rc == 0 && info.applied <= cold, "%s: warm restart rc %d, %zu columns (cold %zu)",
          names[c], rc, info.applied, cold);
    worst = 0;
    for (size_t i = 0; i < k; i++)
      worst = fmax(worst, fabs(th[i] - w[i]) / w[0]);
    CHECK(worst <= 1e-10, "%s: warm max |θ - λ|/λ₁ = %.2e", names[c], worst);
  }
  free(lam);
  free(A);
  free(Z);
  free(w);
  free(U);
}

int main(void) {
  TAP_RUN(krylov_topk_matches_dsyevd_with_and_without_gaps);
  TAP_RUN(all_eigenvalues_descending_to_1e12);
  TAP_RUN(eigenpairs_reconstruct_the_matrix);
  TAP_RUN(topk_full_solve_path_for_small_d);
  TAP_RUN(topk_by_subspace_iteration_matches_known_pairs);
  TAP_DONE();
}
