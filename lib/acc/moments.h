/* acc/moments.h — the exact moments (acc/moments.c): the state, the shifted batch statistics
 * every kind folds in, the Chan merge and un-merge, checks and the saved form. acc/acc.h, the
 * accumulator interface, includes it; it includes only core/. */
#ifndef EW_MOMENTS_H
#define EW_MOMENTS_H

#include "../core/core.h"

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
/* m ← o, both of the same d (the lower triangle too, and whether it mirrors the upper). */
void ew__moments_copy(ew__moments_t *m, const ew__moments_t *o);
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

#endif /* EW_MOMENTS_H */
