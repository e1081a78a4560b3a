/* linalg/linalg.h — the linalg room: LAPACK's eigensolvers (eig.c), top-k of a dense matrix
 * (topk.c), block Lanczos through an operator (krylov.c) and stochastic Lanczos quadrature
 * (slq.c). It knows nothing of streams, accumulators or views; it includes only core/. */
#ifndef EW_LINALG_H
#define EW_LINALG_H

#include "../core/core.h"

/* ---- linalg/eig.c ---- */
/* All eigenvalues of the symmetric d×d A (upper triangle read, A destroyed), in descending order,
 * into w[d]. LAPACK's workspace comes from ws. Returns 0, EW_ENOMEM or EW_ELAPACK. */
int ew__eigvals(double *A, size_t d, double *w, ew__ws_t *ws);
/* All eigenpairs: w descending, A overwritten by the eigenvectors (column i belongs to w[i]).
 * Returns 0, EW_ENOMEM or EW_ELAPACK. */
int ew__eigpairs(double *A, size_t d, double *w, ew__ws_t *ws);
#define EW__TOPK_TOL 1e-10       /* residual (relative to θ₁) of an exact top-k answer */
#define EW__TOPK_FULL_DIM 512    /* at or below: top-k by a full solve */
/* ---- linalg/topk.c ---- */
/* Top-k eigenpairs of the symmetric d×d A (upper triangle read, not modified) by block Lanczos
 * (krylov.c) or, for small d or a gap too small to converge within 2d³ flops, a full solve;
 * warm-started from `warm` (wk×d rows, may be NULL). Writes theta[k] descending,
 * U[k×d] (row i = unit vector i), and *resid = max_i ‖A u_i − θ_i u_i‖ (an absolute bound on each
 * θ_i's distance to an eigenvalue). Returns 0, EW_ENOMEM or EW_ELAPACK. */
int ew__topk(const double *A, size_t d, size_t k, const double *warm, size_t wk, uint64_t seed,
             double *theta, double *U, double *resid, ew__ws_t *ws);
/* Copies k column-major eigenvectors (d×k) to k rows, each signed so that its largest-magnitude
 * entry is positive (the convention of every vector the library hands out). The two may be the
 * same array (the layouts coincide): then only the signs change. */
void ew__emit_rows(const double *U_colmajor, size_t d, size_t k, double *U_rows);

/* ---- linalg/kernel.c: kernel matrices of rows ---- */
typedef enum { EW__KERNEL_GAUSSIAN = 0, EW__KERNEL_LAPLACIAN = 1, EW__KERNEL_COSINE = 2 } ew__kernel_t;
/* K (n×n f64, both triangles) = k(xᵢ, xⱼ) over the rows pick[0, n) of `all` (row-major f32, d
 * columns; pick NULL: its first n rows): gaussian exp(−‖x − y‖²/(2σ²)), laplacian
 * exp(−‖x − y‖₁/σ), cosine ⟨x, y⟩/(‖x‖‖y‖) (a zero row: 0). Scratch (n·d + d + n doubles) from
 * ws. 0 or EW_ENOMEM. */
int ew__kernel_matrix(const float *all, size_t d, const size_t *pick, size_t n,
                      ew__kernel_t kind, double sigma, double *K, ew__ws_t *ws);

/* ---- linalg/schur.c: the Schur complement of paired blocks ----
 * With C = Σ/n of the sums sxx (fx×fx), sxy (fx×fy), syy (fy×fy), row-major, sxx and syy read in
 * their upper triangle: Δ = C_xyᵀ (C_xx + εI)⁺ C_xy, evaluated as Bᵀ diag(w) B with
 * C_xx = U diag(λ) Uᵀ, B = Uᵀ C_xy and w = 1/(λ + ε) (0 where |λ + ε| ≤ fx·2⁻⁵²·max|λ + ε|, pinv's
 * cut-off), and S = C_yy − Δ. Writes the eigenvalues of S into s_eig[fy] and of Δ into d_eig[fy]
 * (descending), and when astar is not NULL A* = (C_xx + εI)⁺ C_xy = U diag(w) B into astar
 * (fx×fy, row-major). Scratch (ew__schur_ws bytes at most) from ws. 0, EW_ENOMEM or EW_ELAPACK. */
int ew__schur(size_t fx, size_t fy, double n, const double *sxx, const double *sxy,
              const double *syy, double eps, double *s_eig, double *d_eig, double *astar,
              ew__ws_t *ws);
size_t ew__schur_ws(size_t fx, size_t fy);

/* ---- linalg/krylov.c: the top of the spectrum through an operator ---- */
/* A symmetric d×d operator: apply(ctx, X, Y, b) sets Y = A X for b columns (col-major, leading
 * dimension d; X and Y distinct). */
typedef struct {
  size_t d;
  void (*apply)(const void *ctx, const double *X, double *Y, size_t b);
  const void *ctx;
} ew__op_t;
typedef struct {
  size_t applied; /* columns the operator was applied to */
  size_t steps, restarts, block;
} ew__krylov_info_t;
/* The block size top-k uses for k pairs in dimension d. */
size_t ew__krylov_block(size_t k, size_t d);
/* Workspace ew__krylov_topk takes at most. */
size_t ew__krylov_ws(size_t d, size_t k);
/* Top-k eigenpairs of A by block Lanczos (full reorthogonalisation, thick restarts), warm-started
 * from warm (wk×d rows, may be NULL). Stops when every pair's residual ‖A u − θ u‖ is at most
 * tol·|θ_1|, when the basis spans R^d, or after max_apply operator columns. Writes theta[k]
 * descending, U[k×d] (row i = unit vector i), resid[k] (each pair's residual norm: an eigenvalue
 * lies within it of θ_i). Returns 0 (converged), 1 (the budget ran out: outputs hold the best
 * pairs so far), EW_EBADPARAM (k = 0 or k > d), EW_ENOMEM or EW_ELAPACK. */
int ew__krylov_topk(const ew__op_t *op, size_t k, const double *warm, size_t wk, uint64_t seed,
                    double tol, size_t max_apply, double *theta, double *U, double *resid,
                    ew__krylov_info_t *info, ew__ws_t *ws);
/* W (d×b) ← W − Q (Qᵀ W), Q d×m (orthonormal columns); C (m×b) scratch. Nothing when m or b is
 * 0. */
void ew__project_out(const double *Q, size_t d, size_t m, double *W, size_t b, double *C);

/* ---- linalg/slq.c: tr g(A) through an operator ---- */
/* SLQ: the Lanczos tridiagonals of nprobe Rademacher probes projected off span(U) (U: ku
 * orthonormal columns, d×ku col-major = ku×d rows; may be NULL when ku = 0), m steps each. */
typedef struct {
  size_t nprobe, m;
  double *alpha, *beta; /* nprobe×m: probe p's diagonal and off-diagonal at [p*m, p*m + len) */
  double *z2;           /* ‖z_⊥‖² per probe */
  size_t *len;          /* steps each probe ran (fewer than m when its Krylov space closed) */
} ew__slq_t;
typedef double (*ew__slq_fn)(double x, const void *ctx);
/* Workspace of ew__slq_run: what it keeps (ew__slq_keep_bytes: out's arrays, which stay in ws
 * until the caller releases them) plus scratch it gives back. */
size_t ew__slq_ws(size_t d, size_t ku, size_t nprobe, size_t m);
size_t ew__slq_keep_bytes(size_t nprobe, size_t m);
/* Runs the probes: one operator call on nprobe columns per step. Returns 0, EW_EBADPARAM
 * (nprobe or m is 0) or EW_ENOMEM. */
int ew__slq_run(const ew__op_t *op, const double *U, size_t ku, size_t nprobe, size_t m,
                uint64_t seed, ew__slq_t *out, ew__ws_t *ws);
/* The estimate of tr g(A) on span(U)^⊥ (g(0) must be 0 for the deflated directions to add
 * nothing), for g whose derivative of order 2m+1 has one sign on (0, top] (p ln p, √x, x^a: every
 * one the metrics use). Per probe, Gauss–Radau rules with a node fixed at 0 (≤ λ_min: A is PSD)
 * and at top (≥ λ_max; tr A will do) bracket zᵀ g(A) z from both sides (a probe whose Krylov
 * space closed early is exact). mu (may be NULL, or mu[1] NAN) holds the exact expectations of
 * the covariates zᵀAz and zᵀA²z over the probes, tr(PAP) and ‖PAP‖_F² with P the projector off
 * span(U): the estimate is then the regression (control-variate) estimator Σ w_p y_p of the
 * probes' brackets' midpoints y_p (the plain mean, w_p = 1/n, without covariates or when their
 * spread is degenerate). *quad_err = Σ |w_p| (half-width of bracket p), so the same estimator on
 * the exact zᵀ g(A) z lies within *est ± *quad_err; *se its standard error over probes (from the
 * regression's residuals; the largest for the brackets' lower ends, upper ends and midpoints).
 * g is evaluated at nodes clamped at 0. Returns 0, EW_ENOMEM or EW_ELAPACK. */
int ew__slq_eval(const ew__slq_t *s, ew__slq_fn g, const void *ctx, double top,
                 const double *mu, double *est, double *se, double *quad_err);

#endif /* EW_LINALG_H */
