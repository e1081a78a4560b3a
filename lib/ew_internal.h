/* ew_internal.h — what the library's files share with each other and with no one else.
 *
 * The layering inside lib/ is:
 *   core/ error.c convert.c rng.c  leaf utilities
 *   core/ws.c                      workspaces: stacked, never-aliased memory an operation borrows
 *   acc/acc.h                      the accumulator interface (prepare, apply, merge, scale, view,
 *                                  bytes, save, load)
 *   acc/moments.c                  (weight, mean, M2) with the batched Chan merge and un-merge,
 *                                  batch statistics, checks, the saved form
 *   acc/dense.c                    the dense and decay kinds (moments behind the interface)
 *   acc/window.c                   the window kind: a FIFO ring of the last W rows (f32) with
 *                                  its own exact moments, or rows only when W < d
 *   acc/fd.c                       the fd kind: a Frequent Directions sketch (d > exact_max_dim)
 *   live/rop.c                     the live top-k estimate (random-order block power)
 *   live/cert.c                    live_topk's certificate: the live vectors against the top
 *                                  eigenpairs of a view (a few block Lanczos steps)
 *   live/oja.c                     the fixed-rate Oja estimate streams kept before rop.c (no
 *                                  stream uses it; kept for tests/unit/test_live.c's comparison)
 *   core/bytes.c                   the byte writer/reader of saved states and their CRC-32C (a
 *                                  leaf: state/ and the kinds call it, it calls neither)
 *   linalg/eig.c                   LAPACK: all eigenvalues (dsyevd), all eigenpairs (a leaf)
 *   linalg/krylov.c                block Lanczos with thick restarts through an operator (uses
 *                                  eig.c)
 *   linalg/slq.c                   stochastic Lanczos quadrature (SLQ) for tr g(A) through an
 *                                  operator, off the top pairs (uses krylov.c's projection)
 *   linalg/topk.c                  top-k of a dense matrix: block Lanczos, or a full solve when
 *                                  cheaper (the policy; uses eig.c and krylov.c)
 *   config.c                       the kind and configuration tables at work: defaults, checks,
 *                                  equality, which kinds a configuration keeps, building them
 *   stream.c                       one stream: config → kinds (config.c), merge, reset, the
 *                                  admission model; stream_ingest.c its all-or-nothing ingest
 *   state/save.c, state/load.c     a whole stream as versioned, checksummed bytes and back
 *   view/view.c                    what metrics read: a source as a matrix (trace, ‖·‖_F²,
 *                                  diagonal, A·x, rows); opening and closing a view
 *   view/spectrum.c                every eigenvalue of a view with its error bound, and the
 *                                  stream's spectrum cache
 *   view/solve.c                   operators, Lanczos top-k, the quick (SLQ) estimate
 *   view/sketch.c                  sketched views: the sketch's spectrum, intervals, brackets
 *   metrics/table.c                the metric table: one row per metric, naming its function
 *   metrics/entropy.c              entropy (plain, normalised, truncated), Rényi, Vendi, erank
 *   metrics/rank.c                 RankMe, participation ratio, stable rank, condition number,
 *                                  anisotropy, spectral gap
 *   metrics/spectrum.c             top-k, live top-k, the spectrum, trace, nuclear norm
 *   metrics/rows.c                 the rows' columns: Matrix Nuclear-Norm, l2_std
 *   metrics/query.c                the query dispatcher (metrics read views only)
 *   metrics/route.c                how a metric reaches its eigenvalues: exact, quick, top
 *   metrics/info.c                 the table's typed columns as text, and ew_param_check
 * Nothing here is exported from the shared library (visibility is hidden by default).
 */
#ifndef EW_INTERNAL_H
#define EW_INTERNAL_H

#include "eigenwatch.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define EW_EXPORT __attribute__((visibility("default")))
#define EW_UNUSED(x) ((void)(x))

/* ---- rng.c: xoshiro256** seeded through splitmix64 ---- */
typedef struct {
  uint64_t s[4];
} ew__rng_t;
void ew__rng_seed(ew__rng_t *r, uint64_t seed);
uint64_t ew__rng_next(ew__rng_t *r);
/* uniform in [0, n) for n >= 1 (Lemire's multiply-shift, bias < 2^-32 for n < 2^32) */
uint64_t ew__rng_below(ew__rng_t *r, uint64_t n);
/* standard normal (Box–Muller) */
double ew__rng_normal(ew__rng_t *r);

/* ---- core/ws.c: workspaces ----
 * A stack of 64-byte-aligned allocations in chunks that never move. Every allocation is distinct
 * from every other live one; ew__ws_release(mark) gives back everything allocated after the mark.
 * Functions that need temporary memory take an ew__ws_t * and give back what they took before
 * returning, unless their contract says the result lives in the workspace. */
typedef struct ew__ws ew__ws_t;
typedef struct {
  size_t cur, off, used, peak;
} ew__ws_mark_t;
ew__ws_t *ew__ws_new(void);
void ew__ws_free(ew__ws_t *ws);
/* The bytes one allocation of `bytes` takes (what reservations add up). */
size_t ew__ws_size(size_t bytes);
/* At least `bytes` bytes, 64-byte aligned, contents unspecified; NULL when out of memory. */
void *ew__ws_alloc(ew__ws_t *ws, size_t bytes);
/* Makes the next allocations totalling at most `bytes` (each counted with ew__ws_size) succeed
 * without allocating. Returns 0 or EW_ENOMEM. */
int ew__ws_reserve(ew__ws_t *ws, size_t bytes);
ew__ws_mark_t ew__ws_mark(const ew__ws_t *ws);
void ew__ws_release(ew__ws_t *ws, ew__ws_mark_t m);
/* An operation's bracket: begin marks and starts measuring; end gives everything back and returns
 * the most bytes the operation held at once. Brackets nest. */
ew__ws_mark_t ew__ws_begin(ew__ws_t *ws);
size_t ew__ws_end(ew__ws_t *ws, ew__ws_mark_t m);
/* Bytes of chunks held; frees them all when nothing is live. */
size_t ew__ws_held(const ew__ws_t *ws);
void ew__ws_trim(ew__ws_t *ws);
/* The calling thread's workspace, which the public entry points hand down (NULL: out of memory).
 * Freed at thread exit; ew_thread_scratch_release() trims it. */
ew__ws_t *ew__ws_thread(void);

/* ---- core/bytes.c: the byte stream a saved state is read from / written to (a leaf) ----
 * Writers count and checksum every byte; readers checksum and record the first error (the
 * functions are no-ops after it), so a kind's save/load is a straight sequence of puts/gets. */
typedef struct ew__wr {
  ew_write_fn fn; /* NULL: only counting */
  void *ctx;
  uint32_t crc;
  size_t bytes;
  int err;
} ew__wr_t;
typedef struct ew__rd {
  ew_read_fn fn;
  void *ctx;
  uint32_t crc;
  int err;
  char *msg;
  size_t cap;
} ew__rd_t;
void ew__put(ew__wr_t *w, const void *p, size_t n);
void ew__put_u64(ew__wr_t *w, uint64_t v);
void ew__put_f64(ew__wr_t *w, double v);
int ew__get(ew__rd_t *r, void *p, size_t n);
uint64_t ew__get_u64(ew__rd_t *r);
double ew__get_f64(ew__rd_t *r);
/* Records EW_ESTATE with the sentence fmt (one %s: what) unless an error is already recorded. */
int ew__rd_fail(ew__rd_t *r, const char *fmt, const char *what);
/* The same with a printf format of any arguments. */
int ew__rd_failf(ew__rd_t *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Builds the checksum's tables once (thread-safe); every save and load calls it first. */
void ew__bytes_init(void);

/* What a loaded state's numbers may be (core/bytes.c, acc/moments.c): nothing ingest or merge can
 * produce lies outside these bounds, so a state outside them was not made by eigenwatch (or was
 * altered after its checksum was computed), and loading it would leave a stream answering
 * nonsense. Rows are at most FLT_MAX in magnitude (f64 batches beyond it are refused, f32 cannot
 * exceed it), so a mean is at most FLT_MAX and a centred co-moment's diagonal at most
 * W·(2·FLT_MAX)²; weights count rows exactly only up to 2^53, the most rows a state may describe. */
#define EW__ROWS_MAX ((uint64_t)1 << 53)
/* Records EW_ESTATE ("section SEC holds WHAT ...") unless each of the n doubles at x is finite and
 * at most lim in magnitude. Returns 0 or the error. */
int ew__check_f64s(ew__rd_t *r, const double *x, size_t n, double lim, const char *sec,
                   const char *what);

/* EW_ENONFINITE when any of count f32 values (any alignment) is NaN or ±Inf, else 0
 * (core/convert.c). */
int ew__check_f32(const void *src, size_t count);

/* ---- acc/moments.c: the exact moments ---- */
typedef struct {
  size_t d;
  uint64_t n;   /* rows that contributed (never decayed) */
  double w;     /* total weight (== n without decay) */
  double *mean; /* d */
  double *m2;   /* d×d column-major; upper triangle authoritative, lower unspecified */
  double noise; /* bound on ‖error‖₂ of m2 from rounding (batch Grams, un-merges): eigenvalues
                   of m2 at or below it cannot be told from zero (moments.c) */
  bool full;    /* the lower triangle mirrors the upper (ew__moments_mirror); every change clears
                   it */
} ew__moments_t;

/* Statistics of one batch in the shifted form (see moments.c for why):
 * shift m, s = Σ w_r (x_r − m), W = Σ w_r, G = Σ w_r (x_r − m)(x_r − m)ᵀ (upper, col-major,
 * leading dimension d, f64 whatever the rows' type). Borrowed pointers. */
typedef struct {
  size_t d;
  uint64_t n;
  double w;
  const double *shift;
  const double *s;
  const double *g;
  double noise;  /* bound on ‖rounding error‖₂ of G (moments.c, ew__noise_bound with 2⁻⁵³) */
} ew__bstats_t;

int ew__moments_init(ew__moments_t *m, size_t d);
void ew__moments_free(ew__moments_t *m);
void ew__moments_clear(ew__moments_t *m);
size_t ew__moments_bytes(const ew__moments_t *m);
/* m ← m ⊕ b (weighted Chan merge); workspace: EW__MOMENTS_WS(d) */
void ew__moments_add(ew__moments_t *m, const ew__bstats_t *b, ew__ws_t *ws);
/* m ← m ⊖ b (exact inverse of add up to rounding); b must be a subset of m's rows.
 * Workspace: EW__MOMENTS_WS(d). */
void ew__moments_sub(ew__moments_t *m, const ew__bstats_t *b, ew__ws_t *ws);
#define EW__MOMENTS_WS(d) ew__ws_size(2 * (d) * sizeof(double))
/* m ← m ⊕ o for two full states (associative merge) */
void ew__moments_merge(ew__moments_t *m, const ew__moments_t *o);
/* The rounding-error bound of a Gram of n rows with trace `trace` formed in precision `unit`
 * (2^-53: every batch Gram is f64): 2 (1 + sqrt(n/1024)) unit trace (see moments.c). */
double ew__noise_bound(uint64_t n, double unit, double trace);
/* tr M2 */
double ew__moments_trace(const ew__moments_t *m);
/* Copies the upper triangle of M2 into the lower (tiled; about one pass over the matrix) unless
 * it is already there, so that products may use dgemm on the full matrix, which reads it at up to
 * twice dsymm's speed; sets m->full. The saved form and every update read the upper only. */
void ew__moments_mirror(ew__moments_t *m);
/* Decay: weight and M2 scale by g in (0, 1]; mean unchanged. */
void ew__moments_scale(ew__moments_t *m, double g);
/* Fills a full symmetric A (d×d) = M2/w (+ μμᵀ when !center); the _upper variant writes only
 * the upper triangle (all LAPACK 'U' routines read). */
void ew__moments_matrix(const ew__moments_t *m, int center, double *A);
void ew__moments_matrix_upper(const ew__moments_t *m, int center, double *A);
/* The saved form of moments (n, w, noise, mean, upper triangle by columns) and its length. */
uint64_t ew__moments_saved_len(size_t d);
void ew__moments_save(const ew__moments_t *m, ew__wr_t *w);
void ew__moments_load(ew__moments_t *m, ew__rd_t *r);
/* Checks loaded moments (n, W, noise bound, mean, the upper triangle of M2: finite, in range,
 * |M2_ij| within Cauchy–Schwarz of the diagonal up to the noise bound). Records EW_ESTATE with a
 * sentence naming section `sec` and returns it, or returns 0. */
int ew__check_moments(ew__rd_t *r, const ew__moments_t *m, const char *sec);

/* Computes the shifted batch statistics of n rows (row-major n×d) with optional per-row weights
 * (NULL = all 1) and, for f32, optional per-row scale factors applied in f64 before centring
 * (NULL = 1; used for L2 normalisation). Every row is centred in f64 and the Gram formed by dsyrk
 * in f64 whatever the rows' type (an f32 Gram's rounding clamped real eigenvalues and biased the
 * diagonal: moments.c). The caller provides shift[d], s[d] and the Gram g[d×d] (f64); *out
 * borrows them. Temporaries come from ws and are given back: EW__BSTATS_WS(n, d), at most
 * EW__GRAM_BLOCK rows of f64 whatever n. The row buffers are not modified. Returns 0 or
 * EW_ENOMEM (nothing written). */
int ew__bstats_f32(const float *rows, size_t n, size_t d, const double *weights,
                   const double *scale, double *shift, double *s, double *g, ew__ws_t *ws,
                   ew__bstats_t *out);
int ew__bstats_f64(const double *rows, size_t n, size_t d, const double *weights, double *shift,
                   double *s, double *g, ew__ws_t *ws, ew__bstats_t *out);
/* Same, unweighted, for two row blocks seen as one (a wrapped ring segment): a then b. */
int ew__bstats_f32_2(const float *a, size_t na, const float *b, size_t nb, size_t d, double *shift,
                     double *s, double *g, ew__ws_t *ws, ew__bstats_t *out);
/* Rows centred per dsyrk call: 256 rows keep dsyrk at full speed (4096 rows, one BLAS thread,
 * best of 5: 16 calls of 256 took 0.69–0.99× the time of one call over all at d = 1024 and 4096)
 * and the temporary at 8 MiB at d = 4096. */
#define EW__GRAM_BLOCK ((size_t)256)
#define EW__BSTATS_WS(n, d) ew__ws_size(((n) < EW__GRAM_BLOCK ? ((n) ? (n) : 1) : EW__GRAM_BLOCK) * (d) * sizeof(double))

#include "acc/acc.h"

/* ---- acc/window.c: what the stream asks of a window beyond the interface ---- */
/* The window's capacity and rows held. */
size_t ew__window_cap(const ew__acc_t *a);
size_t ew__window_count(const ew__acc_t *a);
/* Lays a's window out anew from spans of a's and o's held rows (from 0: a, 1: o), oldest first,
 * and rebuilds its moments. Spans already checked against both windows and a's capacity.
 * Returns 0 or EW_ENOMEM (a unchanged). */
int ew__window_combine(ew__acc_t *a, const ew__acc_t *o, const ew_window_span_t *spans, size_t n,
                       ew__ws_t *ws);
/* True for a window of fewer rows than dimensions (cap < d): it keeps rows only, and its view
 * offers no moments (view/ answers from the rows). */
bool ew__window_rows_only(const ew__acc_t *a);

/* ---- live/oja.c: the fixed-rate Oja estimate the stream kept before rop.c (kept for the
 * comparison in tests/unit/test_live.c; no stream uses it) ---- */
typedef struct {
  size_t d, k, cap;
  float *buf;     /* shuffle buffer cap×d */
  size_t fill;
  double *V;      /* k×d, orthonormal rows */
  double *a;      /* d, the centred row being applied */
  double *avg;    /* k×d, Σ of iterates over the averaged part of the current epoch */
  uint64_t avg_n; /* iterates in avg */
  uint64_t epoch_start; /* rows applied when the current epoch began */
  uint64_t seen;  /* rows applied */
  uint64_t epoch_end;   /* rows applied when the current epoch ends */
  double eta;           /* fixed step of the current epoch */
  double lam_sum;       /* Σ (aᵀv₁)² this epoch */
  double tr_sum;        /* Σ ‖a‖² this epoch */
  uint64_t epoch_rows;
  uint64_t heavy;       /* rows whose step was capped (η‖a‖² > 0.1) */
  ew__rng_t rng;
  bool started;
} ew__oja_t;

int ew__oja_init(ew__oja_t *o, size_t d, size_t k, size_t cap, uint64_t seed);
void ew__oja_free(ew__oja_t *o);
void ew__oja_clear(ew__oja_t *o);
size_t ew__oja_bytes(const ew__oja_t *o);
/* Feeds n preprocessed rows through the shuffle buffer; rows leaving it are centred on `mean`
 * (current stream mean, d) and applied. O(k·d) per row amortised. */
void ew__oja_push(ew__oja_t *o, const float *rows, size_t n, const double *mean);
size_t ew__oja_vectors(const ew__oja_t *o, double *out, size_t cap_k);

/* ---- live/rop.c: the live estimate the stream keeps (random-order block power) ---- */
#define EW__ROP_HEAVY_MAX 64 /* heavy rows kept exactly */
typedef struct {
  size_t d, k, cap, hcap;
  float *buf;       /* randomising buffer cap×d */
  size_t fill;
  double *V;        /* k×d orthonormal rows: the estimate */
  double *Y;        /* k×d: Σ a (aᵀ v_i) over the current block's light rows */
  double *a;        /* d: the centred row being applied */
  float *H;         /* hcap×d heavy rows (as ingested, centred at use) */
  double *hn;       /* their squared centred norms when they arrived */
  size_t nh;
  uint64_t seen;    /* rows applied (left the buffer) */
  uint64_t light;   /* of which light */
  uint64_t cnt;     /* light rows in the current block */
  uint64_t blk;     /* the current block's length */
  uint64_t blocks;  /* power steps taken */
  uint64_t heavy_seen; /* rows classified heavy (kept or displaced) */
  double F;         /* Σ ‖a‖² of applied rows */
  double *Ysum;     /* 2k×d: the forgetting sum of the blocks' Y; then scratch */
  uint64_t nsum;    /* (weighted) light rows in Ysum */
  ew__rng_t rng;
} ew__rop_t;
int ew__rop_init(ew__rop_t *o, size_t d, size_t k, size_t cap, uint64_t seed);
void ew__rop_free(ew__rop_t *o);
void ew__rop_clear(ew__rop_t *o);
size_t ew__rop_bytes(const ew__rop_t *o);
/* The most ew__rop_bytes can be for this shape. */
size_t ew__rop_bound(size_t d, size_t k, size_t cap);
/* Feeds n preprocessed rows through the randomising buffer; rows leaving it are centred on mean
 * (the stream's current mean) and applied. O(k·d) per row, plus O(k·d·(k + heavy rows)) per
 * completed block. */
void ew__rop_push(ew__rop_t *o, const float *rows, size_t n, const double *mean);
/* The k estimated top vectors as rows (unit, largest-magnitude entry positive) into out[cap_k×d];
 * returns how many (0 before the first power step). */
size_t ew__rop_vectors(const ew__rop_t *o, double *out, size_t cap_k);

/* ---- linalg/eig.c ---- */
/* All eigenvalues of the symmetric d×d A (upper triangle read, A destroyed), in descending order,
 * into w[d]. LAPACK's workspace comes from ws. Returns 0, EW_ENOMEM or EW_ELAPACK. */
int ew__eigvals(double *A, size_t d, double *w, ew__ws_t *ws);
/* All eigenpairs: w descending, A overwritten by the eigenvectors (column i belongs to w[i]).
 * Returns 0, EW_ENOMEM or EW_ELAPACK. */
int ew__eigpairs(double *A, size_t d, double *w, ew__ws_t *ws);
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

/* ---- stream.c ---- */
#define EW__NSRC 3

/* A quick spectral estimate of one source (view/solve.c, ew__view_quick): the top pairs deflated
 * exactly and SLQ probes on the rest. Owned by the stream; one slot. */
#define EW__QUICK_DEFLATE 64 /* top pairs sought for deflation */
#define EW__QUICK_PROBES 32
#define EW__QUICK_STEPS 16
#define EW__QUICK_DEFL_TOL 1e-8  /* residual (relative to θ₁) for a pair to be deflated */
#define EW__QUICK_DEFL_PASSES 6  /* operator passes (blocks) the deflation may spend */
#define EW__QUICK_AUTO_REL 0.01  /* AUTO keeps a quick Σ g(λ) only when its bar is within this share */
#define EW__TOPK_TOL 1e-10       /* residual (relative to θ₁) of an exact top-k answer */
#define EW__TOPK_FULL_DIM 512    /* at or below: top-k by a full solve */
#define EW__WARM_MAX 64          /* warm top-k vectors a stream keeps */
typedef struct {
  bool valid;
  int src, center;
  uint64_t as_of, epoch, tail;
  double tr;          /* tr A (exact, O(d)) */
  double fro2;        /* ‖A‖_F² (exact, O(d²)), NAN where it would need the spectrum */
  size_t kd;          /* pairs deflated (residual ≤ EW__QUICK_DEFL_TOL·θ₁) */
  double theta[EW__QUICK_DEFLATE], res[EW__QUICK_DEFLATE];
  double alpha[EW__QUICK_PROBES * EW__QUICK_STEPS], beta[EW__QUICK_PROBES * EW__QUICK_STEPS];
  double z2[EW__QUICK_PROBES];
  size_t len[EW__QUICK_PROBES];
  size_t applied;     /* operator columns the estimate cost */
} ew__quick_t;
enum { EW__ROLE_ALL = 0, EW__ROLE_WINDOW = 1, EW__NROLES = 2 };

/* The spectrum of a sketched stream's matrix (view/sketch.c): its nonzero eigenvalues, one slot per
 * centring. theta holds up to 2ℓ+1 values, allocated on first use. */
typedef struct {
  double *theta;
  size_t m;
  uint64_t as_of, epoch;
  bool valid;
} ew__skspec_t;
/* Bytes both slots hold at most, for a sketch of m = 2ℓ+1 directions (ew_config_solve_dim). */
#define ew__skspec_bound(m) (2 * (size_t)(m) * sizeof(double))

typedef struct {
  double *eig;       /* d values, descending, clamped at 0 */
  size_t clamped;
  double floor;      /* eigenvalues at or below it were set to 0 (view/spectrum.c): the
                        accumulated rounding noise / W plus the eigensolver's round-off */
  uint64_t as_of;    /* stream count when computed */
  uint64_t epoch;    /* stream reset epoch when computed */
  uint64_t tail;     /* window rows it describes (0 = the whole window) */
  bool valid;
} ew__spec_cache_t;
/* Eigenvalues within EW__EIG_ROUNDOFF · n · 2⁻⁵³ · λ₁ of zero are the eigensolver's round-off on an
 * order-n matrix (view/spectrum.c). 4: ten times the largest measured, 0.38 n u λ₁ (dsyevd on
 * x xᵀ of f32 and f64 rows x, d = 8 to 1024, five draws each). */
#define EW__EIG_ROUNDOFF 4.0

struct ew_stream {
  ew_config_t cfg;
  size_t d;
  uint64_t count;     /* rows ingested since creation/reset */
  uint64_t epoch;     /* bumped by reset and merge: invalidates caches */
  bool window_rounded; /* an f64 batch was rounded to f32 on its way into the window */
  ew__acc_t *acc[EW__NROLES]; /* ALL: dense or decay; WINDOW: the window kind, or NULL */
  uint64_t win_query_at; /* stream count at the last query that used the window's moments */
  bool win_queried;
  bool has_live;
  ew__rop_t live;     /* the live top-k estimate (live/rop.c) */
  ew__spec_cache_t cache[EW__NSRC][2];
  ew__quick_t *quick; /* the last quick (SLQ) estimate, view/solve.c; allocated on first use */
  ew__skspec_t skspec[2]; /* sketched streams: the sketch's spectrum by centring (view/sketch.c) */
  double *topk_warm;  /* warm start for top-k vectors: topk_warm_k × d */
  size_t topk_warm_k;
  size_t ws_peak;     /* the most workspace one operation on this stream has held */
  uint64_t tail;      /* the open view's window tail (view/view.c; 0 = the whole window) */
};

/* ---- config.c ---- */
/* Builds every kind s->cfg keeps into s (accumulators, the live estimate): 0 or EW_ENOMEM (what
 * was built stays for ew_stream_free). */
int ew__kinds_attach(ew_stream_t *s);
/* The most bytes the states of the kinds cfg keeps hold (the admission model). */
size_t ew__kinds_state_bound(const ew_config_t *cfg);
/* 1 when streams of these configurations merge (their EW_CF_MERGE fields and their kind of role
 * ALL are equal), else 0. */
int ew__config_mergeable(const ew_config_t *a, const ew_config_t *b);

/* The accumulator behind a source (all → ALL; window, window_cn → WINDOW), or NULL. */
ew__acc_t *ew__stream_acc(const ew_stream_t *s, ew_source_t src);
/* True when the window holds every row the ALL accumulator describes, exactly (no decay, no f64
 * rounding, nothing expired): the window's rows may then answer for all. */
bool ew__stream_all_in_window(const ew_stream_t *s);
/* Records that the window's moments were asked for (the AUTO window mode maintains them eagerly
 * while they are). */
void ew__stream_window_asked(ew_stream_t *s);
/* Records the workspace an operation on s held at its peak. */
void ew__stream_ws_used(ew_stream_t *s, size_t peak);

/* ---- view/: what metrics read ----
 * One source of one stream as a symmetric d×d matrix A. Metrics reach the state only through
 * these functions (never through a struct field of the stream or an accumulator). Each returns
 * 0 or an EW_E* code and sets v->as_of to the stream count the value describes. Memory a view
 * hands out (spectrum aside, which is the stream's cache) lives in v->ws until the caller
 * releases it. */
typedef struct {
  ew_stream_t *s;    /* private to view/ */
  ew__ws_t *ws;      /* the workspace of the operation reading the view */
  ew__ws_mark_t mark; /* where the view's use of ws began */
  bool open;
  ew_source_t src;
  int center;        /* 1: C = M2/W; 0: S = C + μμᵀ (window_cn: always 0, its own centring) */
  uint64_t max_lag;  /* a cached spectrum at most this many rows old may answer */
  size_t d;
  uint64_t rows;     /* rows the source describes */
  double weight;     /* their total weight (== rows without decay) */
  uint64_t as_of;    /* stream count of the last value read */
  const double *eig; /* the spectrum once read (view/spectrum.c's cache; valid until the stream
                        changes) */
  size_t clamped;
  double floor;      /* what the spectrum treated as zero (its error bound: view/spectrum.c) */
  const ew__sketch_t *sk; /* source all of a sketched stream (fd kind): its sketch, else NULL */
} ew__view_t;

/* The accumulated rounding bound noise/W of the moments v reads (moments.c): every eigenvalue of
 * the view's matrix lies within it of the exact one's. 0 when v reads rows in f64 (a window of
 * rows only, window_cn) or a sketch (whose own bound is separate). */
double ew__view_noise(ew__view_t *v);
/* Opens a view of src read with workspace ws; for a window source, tail > 0 reads only its last
 * `tail` rows (the stream's `tail` holds it while the view is open). EW_ENOWINDOW when src needs a window the stream
 * lacks, EW_EBADPARAM for an unknown source. Fills rows and weight; reads nothing else. Whatever
 * it returns, ew__view_close ends it. */
int ew__view_open(ew__view_t *v, ew_stream_t *s, ew_source_t src, int center, uint64_t max_lag,
                  uint64_t tail, ew__ws_t *ws);
/* Gives back everything the view took from ws (rows it handed out included) and records the most
 * it held as the stream's workspace peak. Safe to call twice. */
void ew__view_close(ew__view_t *v);
/* tr A in O(d) (window_cn: from its spectrum). */
int ew__view_trace(ew__view_t *v, double *tr);
/* tr A and ‖A‖_F² (fro2 may be NULL) in O(d²) from the moments, or from the spectrum once it has
 * been read (so that both agree with it) and for window_cn. */
int ew__view_trace_fro2(ew__view_t *v, double *tr, double *fro2);
/* diag(A) into diag[d]. */
int ew__view_diag(ew__view_t *v, double *diag);
/* Every eigenvalue of A, descending, negative ones and those at or below the rounding bound set to
 * 0 (*clamped counts them); *err (may be NULL) is that bound: each eigenvalue is within it of
 * the exact one's. *eig stays valid until the stream next changes. */
int ew__view_spectrum(ew__view_t *v, const double **eig, size_t *clamped, double *err);
/* The top k eigenpairs: theta[k] descending, U[k×d] unit rows (U may be NULL: values only),
 * *resid = max ‖A u − θ u‖ (an absolute bound on each θ's distance to an eigenvalue). Block
 * Lanczos through the operator (no copy of the state), warm-started from the last answer and the
 * live estimate; a full solve for small d or when Lanczos would cost more. */
int ew__view_topk(ew__view_t *v, size_t k, double *theta, double *U, double *resid);
/* True when the view's exact spectrum comes from the n×n Gram of rows the window holds (n < d):
 * cheap, whatever d. */
bool ew__view_small_route(ew__view_t *v);
/* True when a spectrum within the view's max_lag is cached (ew__view_spectrum would not solve). */
bool ew__view_spectrum_cached(ew__view_t *v);
/* The operator y = A x of the view's matrix, valid while the view is open (scratch in v->ws). */
int ew__view_op(ew__view_t *v, ew__op_t *op);
/* The stream's live estimate: up to cap_k unit vectors (rows) into out; *consumed = rows it has
 * seen (not those still in its randomising buffer). Returns how many (0: none kept, or no power
 * step yet; *kept says how many the stream keeps). */
size_t ew__view_live(ew__view_t *v, double *out, size_t cap_k, uint64_t *consumed, size_t *kept);
/* The quick estimate of the view's spectrum (deflated SLQ), from the stream's slot when it
 * describes this source within max_lag. *q stays valid until the stream next changes. */
int ew__view_quick(ew__view_t *v, const ew__quick_t **q);
/* y = A x (x, y: d values, distinct). */
int ew__view_matvec(ew__view_t *v, const double *x, double *y);
/* Sketched views (source all of a stream with d > exact_max_dim). A sketch holds A only within
 * 0 ≼ A − A_sk ≼ δ·I (δ = ew__view_sketch_delta), with tr A and diag A exact. On a sketched view,
 * ew__view_spectrum, ew__view_quick, ew__view_op and ‖A‖_F² answer EW_EBADPARAM (none is
 * known); ew__view_topk gives midpoints of the certified intervals [θ_i, θ_i + δ] with
 * *resid = δ/2 and A_sk's vectors; ew__view_matvec applies A_sk. */
bool ew__view_is_sketch(const ew__view_t *v);
double ew__view_sketch_delta(const ew__view_t *v);
/* The most directions a sketched view can name (2ℓ + 1; 0 for an exact view). */
size_t ew__view_sketch_dirs(const ew__view_t *v);
/* The two extreme spectra the certificate allows, each d values descending and summing to tr A
 * (in v->ws): λ_i ∈ [θ_i, θ_i + δ] (θ_i = 0 beyond the sketch's rank) with Σλ = tr A. *most
 * majorises every such spectrum (the top intervals filled first) and *least is majorised by every
 * one (water-filling), so any Schur-concave function (entropy, Rényi, Σ√λ, −ln λ₁/T, T²/Σλ²) of
 * the true spectrum lies between its values at the two. *diag is A's exact diagonal, sorted
 * descending: the true spectrum majorises it too (Schur–Horn), so it bounds the same side as
 * *least, and the tighter of the two applies. */
int ew__view_sketch_bounds(ew__view_t *v, const double **most, const double **least,
                           const double **diag);
/* The source's raw rows in arrival order (window sources: N×d f32 in v->ws); EW_ENOWINDOW for a
 * source that keeps no rows. */
int ew__view_rows(ew__view_t *v, const float **rows, size_t *n);

/* ---- live/cert.c: live_topk's certificate (reads a view, like a metric) ---- */
typedef struct {
  double residual; /* max_i (ρ_i + δ)/θ_i: the residual part (the whole certificate before) */
  double top;      /* max_i max(hi_i − θ_i, θ_i − lo_i)/θ_i: the distance to the top brackets */
  double hi1;      /* hi_1, the upper end of λ₁'s bracket */
  size_t applied;  /* operator columns applied (0 on a sketched view) */
} ew__live_cert_t;
/* The certificate of k orthonormal vectors V (k rows of d, e.g. the live estimate's) against the
 * view's matrix A: theta[i] = v_iᵀ A v_i and *err = max_i max(ρ_i + δ, hi_i − θ_i, θ_i − lo_i)/θ_i
 * (∞ when some θ_i ≤ 0), with ρ_i = ‖A v_i − θ_i v_i‖, δ the sketch's bound (0 when exact) and
 * [lo_i, hi_i] a bracket of the i-th largest eigenvalue λ_i: from a few block Lanczos steps
 * started at V and random columns (lo_i = Ritz value, always ≤ λ_i; hi_i = Ritz value + its
 * residual, ≥ λ_i unless the Krylov space missed an eigenvalue above it), or on a sketch from the
 * sketch's spectrum (λ_i ∈ [λ_i(A_sk), λ_i(A_sk) + δ], unconditionally). So ρ_i ≤ err·θ_i and
 * |λ_i − θ_i| ≤ err·θ_i. seed drives the random columns; info (may be NULL) gets the parts.
 * Returns 0, EW_EBADPARAM (k = 0 or k > d), EW_ENOMEM, EW_ELAPACK or a view's error. */
int ew__live_certify(ew__view_t *v, const double *V, size_t k, uint64_t seed, double *theta,
                     double *err, ew__live_cert_t *info);

#endif /* EW_INTERNAL_H */
