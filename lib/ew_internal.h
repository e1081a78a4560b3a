/* ew_internal.h — what the library's files share with each other and with no one else.
 *
 * The layering inside lib/ is:
 *   error.c, convert.c, rng.c      leaf utilities
 *   scratch.c                      per-thread scratch buffers shared by every stream on a thread
 *   moments.c                      (weight, mean, M2) with the batched Chan merge and un-merge
 *   window.c                       FIFO ring of the last W rows with its own exact moments
 *   oja.c                          the live top-eigenvector estimate (fixed-rate Oja + shuffle)
 *   eig.c                          LAPACK wrappers: all eigenvalues, top-k by subspace iteration
 *   stream.c                       one stream: config, ingest, merge, reset, admission model
 *   state.c                        a whole stream as versioned, checksummed bytes and back
 *   view.c                         what metrics read: a source as a matrix (trace, ‖·‖_F²,
 *                                  diagonal, spectrum + error, top-k + residual, A·x, rows);
 *                                  the spectrum cache
 *   metrics.c                      the metric table and the query dispatcher (reads views only)
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

/* ---- scratch.c: growable per-thread buffers ----
 * Slot i is a buffer owned by the calling thread; ew__scratch returns at least `bytes` bytes,
 * 64-byte aligned, contents unspecified, or NULL on allocation failure. A later call with the same
 * slot may move it. Freed at thread exit or by ew_thread_scratch_release(). */
enum {
  EW__SCR_IN = 0,    /* an ingest's converted, preprocessed rows (live for the whole ingest) */
  EW__SCR_ROWS = 1,  /* centred copy of a block of rows for syrk */
  EW__SCR_GRAM = 2,  /* f32 or f64 d×d batch Gram */
  EW__SCR_MAT = 3,   /* f64 d×d snapshot handed to LAPACK */
  EW__SCR_WORK = 4,  /* LAPACK workspace and small vectors */
  EW__SCR_AUX = 5,   /* f32 copy of f64 rows for the window; window_cn rows at query time */
  EW__SCR_N = 6
};
void *ew__scratch(int slot, size_t bytes);
size_t ew__scratch_bytes(void);

/* ---- moments.c ---- */
typedef struct {
  size_t d;
  uint64_t n;   /* rows that contributed (never decayed) */
  double w;     /* total weight (== n without decay) */
  double *mean; /* d */
  double *m2;   /* d×d column-major; upper triangle authoritative, lower unspecified */
  double noise; /* bound on ‖error‖₂ of m2 from rounding (batch Grams, un-merges): eigenvalues
                   of m2 at or below it cannot be told from zero (moments.c) */
} ew__moments_t;

/* Statistics of one batch in the shifted form (see moments.c for why):
 * shift m, s = Σ w_r (x_r − m), W = Σ w_r, G = Σ w_r (x_r − m)(x_r − m)ᵀ (upper, col-major,
 * leading dimension d) held either as float (g32) or double (g64), times gscale. Borrowed
 * pointers. */
typedef struct {
  size_t d;
  uint64_t n;
  double w;
  const double *shift;
  const double *s;
  const float *g32;
  const double *g64;
  double gscale; /* the Gram is G = gscale · g (a power of two; f32 batches outside f32's range) */
  double noise;  /* bound on ‖rounding error‖₂ of G (moments.c, noise_of) */
} ew__bstats_t;

int ew__moments_init(ew__moments_t *m, size_t d);
void ew__moments_free(ew__moments_t *m);
void ew__moments_clear(ew__moments_t *m);
size_t ew__moments_bytes(const ew__moments_t *m);
/* m ← m ⊕ b (weighted Chan merge) */
void ew__moments_add(ew__moments_t *m, const ew__bstats_t *b);
/* m ← m ⊖ b (exact inverse of add up to rounding); b must be a subset of m's rows */
void ew__moments_sub(ew__moments_t *m, const ew__bstats_t *b);
/* m ← m ⊕ o for two full states (associative merge) */
void ew__moments_merge(ew__moments_t *m, const ew__moments_t *o);
/* The rounding-error bound of a Gram of n rows with trace `trace` formed in precision `unit`
 * (2^-24 for f32, 2^-53 for f64): 2 (1 + sqrt(n/1024)) unit trace (see moments.c). */
double ew__noise_bound(uint64_t n, double unit, double trace);
/* tr M2 */
double ew__moments_trace(const ew__moments_t *m);
/* Decay: weight and M2 scale by g in (0, 1]; mean unchanged. */
void ew__moments_scale(ew__moments_t *m, double g);
/* Fills a full symmetric A (d×d) = M2/w (+ μμᵀ when !center); the _upper variant writes only
 * the upper triangle (all LAPACK 'U' routines read). */
void ew__moments_matrix(const ew__moments_t *m, int center, double *A);
void ew__moments_matrix_upper(const ew__moments_t *m, int center, double *A);

/* Computes the shifted batch statistics of n rows (row-major n×d) with optional per-row weights
 * (NULL = all 1) and, for f32, optional per-row scale factors applied in f64 before centring
 * (NULL = 1; used for L2 normalisation so that only the small centred value is rounded to f32).
 * The Gram goes to g_out (d×d, owned by the caller) or, when g_out is NULL, to the GRAM scratch.
 * The row buffers are not modified. Work buffers come from the thread's scratch
 * (EW__SCR_ROWS, EW__SCR_GRAM, EW__SCR_WORK); *out points into them and stays valid until the next
 * scratch use. The caller provides shift[d] and s[d] storage. Returns 0 or EW_ENOMEM. */
int ew__bstats_f32(const float *rows, size_t n, size_t d, const double *weights,
                   const double *scale, double *shift, double *s, float *g_out,
                   ew__bstats_t *out);
int ew__bstats_f64(const double *rows, size_t n, size_t d, const double *weights, double *shift,
                   double *s, double *g_out, ew__bstats_t *out);
/* Same, unweighted, for two row blocks seen as one (a wrapped ring segment): a then b. */
int ew__bstats_f32_2(const float *a, size_t na, const float *b, size_t nb, size_t d, double *shift,
                     double *s, ew__bstats_t *out);

/* ---- window.c ---- */
typedef struct {
  size_t d, cap;     /* capacity W rows */
  float *rows;       /* cap×d ring */
  size_t head;       /* index of the oldest row */
  size_t count;      /* rows held, <= cap */
  ew__moments_t mom; /* exact moments of the held rows */
  bool synced;              /* mom describes exactly the held rows */
  uint64_t since_rebuild;   /* rows pushed since the moments were last rebuilt from the ring */
  uint64_t rebuild_every;   /* rebuild after this many rows (a multiple of cap) */
  double noise2;            /* Σ of squared noise bounds of the merges and un-merges since the
                               last rebuild (they are independent roundings: mom.noise is the
                               root of this sum) */
  double *tmp_shift, *tmp_s; /* d each */
} ew__window_t;

int ew__window_init(ew__window_t *w, size_t d, size_t cap);
void ew__window_free(ew__window_t *w);
void ew__window_clear(ew__window_t *w);
size_t ew__window_bytes(const ew__window_t *w);
/* Pushes n preprocessed f32 rows: expires the oldest, un-merges them, merges the new ones.
 * `same` (optional) are the batch statistics of exactly these f32 rows, unweighted, to reuse.
 * With maintain == false (or when the moments are already stale) only the ring is written and
 * the moments are marked stale. Returns 0 or EW_ENOMEM (moments then marked stale, never wrong). */
int ew__window_push(ew__window_t *w, const float *rows, size_t n, const ew__bstats_t *same,
                    bool maintain);
/* Makes mom describe the held rows (rebuilds from the ring when pushes were not maintained). */
int ew__window_sync(ew__window_t *w);
/* Rebuilds the moments from the ring with one pass. Returns 0 or EW_ENOMEM. */
int ew__window_rebuild(ew__window_t *w);
/* Copies the held rows in arrival order into out[count×d]. */
void ew__window_copy(const ew__window_t *w, float *out);

/* ---- oja.c ---- */
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

/* ---- eig.c ---- */
/* All eigenvalues of the symmetric d×d A (upper triangle read, A destroyed), in descending order,
 * into w[d]. Returns 0, EW_ENOMEM or EW_ELAPACK. */
int ew__eigvals(double *A, size_t d, double *w);
/* All eigenpairs: w descending, Z d×d whose column i (col-major) is the eigenvector of w[i].
 * A is overwritten by the vectors when Z == A. Returns 0, EW_ENOMEM or EW_ELAPACK. */
int ew__eigpairs(double *A, size_t d, double *w);
/* Top-k eigenpairs of the symmetric d×d A (full matrix, not modified) by block subspace iteration
 * with Rayleigh–Ritz, warm-started from `warm` (wk×d rows, may be NULL). Writes theta[k] descending,
 * U[k×d] (row i = unit vector i), and *resid = max_i ‖A u_i − θ_i u_i‖ (an absolute bound on each
 * θ_i's distance to an eigenvalue). Returns 0, EW_ENOMEM or EW_ELAPACK. */
int ew__topk(const double *A, size_t d, size_t k, const double *warm, size_t wk, uint64_t seed,
             double *theta, double *U, double *resid);

/* ---- stream.c ---- */
#define EW__NSRC 3

typedef struct {
  double *eig;       /* d values, descending, clamped at 0 */
  size_t clamped;
  uint64_t as_of;    /* stream count when computed */
  uint64_t epoch;    /* stream reset epoch when computed */
  bool valid;
} ew__spec_cache_t;

struct ew_stream {
  ew_config_t cfg;
  size_t d;
  uint64_t count;     /* rows ingested since creation/reset */
  uint64_t epoch;     /* bumped by reset and merge: invalidates caches */
  bool window_rounded; /* an f64 batch was rounded to f32 on its way into the window */
  double gamma;       /* per-row decay factor, 1 without decay */
  ew__moments_t all;
  bool has_window;
  ew__window_t win;
  uint64_t win_query_at; /* stream count at the last query that used the window's moments */
  bool win_queried;
  bool has_oja;
  ew__oja_t oja;
  double *shift, *s;  /* d each: batch statistics storage */
  ew__spec_cache_t cache[EW__NSRC][2];
  double *topk_warm;  /* warm start for top-k vectors: topk_warm_k × d */
  size_t topk_warm_k;
};

/* Eigenvalues of a source (descending, clamped), from the cache when its lag is within max_lag.
 * On success *eig points into the stream's cache (valid until the next call on this stream).
 * Uses the dual n×n Gram when the source's rows are held in the window and n < d. */
int ew__stream_spectrum(ew_stream_t *s, ew_source_t src, int center, uint64_t max_lag,
                        const double **eig, size_t *clamped, uint64_t *as_of);
/* The window's moments, synced from the ring if needed; records that window moments were asked
 * for (the AUTO window mode maintains them eagerly while they are). NULL on EW_ENOMEM. */
const ew__moments_t *ew__stream_win_moments(ew_stream_t *s);
/* Rows (and weight) a source describes: count for all (weight may be decayed), window count. */
void ew__stream_source_size(const ew_stream_t *s, ew_source_t src, uint64_t *rows, double *weight);
/* The window's rows centred over the window then L2-normalised, as f64 rows (N×d) into the AUX
 * scratch, followed by the window mean (d doubles); *zero_rows counts rows that were equal to the
 * mean (left at zero). */
int ew__stream_window_cn(ew_stream_t *s, double **Z, size_t *N, size_t *zero_rows);

/* ---- view.c: what metrics read ----
 * One source of one stream as a symmetric d×d matrix A. Metrics reach the state only through
 * these functions (never through a struct field of the stream or an accumulator). Each returns
 * 0 or an EW_E* code and sets v->as_of to the stream count the value describes. */
typedef struct {
  ew_stream_t *s;    /* private to view.c */
  ew_source_t src;
  int center;        /* 1: C = M2/W; 0: S = C + μμᵀ (window_cn: always 0, its own centring) */
  uint64_t max_lag;  /* a cached spectrum at most this many rows old may answer */
  size_t d;
  uint64_t rows;     /* rows the source describes */
  double weight;     /* their total weight (== rows without decay) */
  uint64_t as_of;    /* stream count of the last value read */
  const double *eig; /* the spectrum once read (view.c's cache; valid until the stream changes) */
  size_t clamped;
} ew__view_t;

/* Opens a view of src. EW_ENOWINDOW when src needs a window the stream lacks, EW_EBADPARAM for
 * an unknown source. Fills rows and weight; reads nothing else. */
int ew__view_open(ew__view_t *v, ew_stream_t *s, ew_source_t src, int center, uint64_t max_lag);
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
/* The top k eigenpairs: theta[k] descending, U[k×d] unit rows, *resid = max ‖A u − θ u‖ (an
 * absolute bound on each θ's distance to an eigenvalue). Warm-started from the last answer. */
int ew__view_topk(ew__view_t *v, size_t k, double *theta, double *U, double *resid);
/* y = A x (x, y: d values, distinct). */
int ew__view_matvec(ew__view_t *v, const double *x, double *y);
/* The source's raw rows in arrival order (window sources: N×d f32, in the thread's scratch, valid
 * until its next use); EW_ENOWINDOW for a source that keeps no rows. */
int ew__view_rows(ew__view_t *v, const float **rows, size_t *n);

#endif /* EW_INTERNAL_H */
