/* view/view.h — what view/ offers the rooms above it (metrics/, live/cert.c, the stream): one
 * source of one stream as a matrix, and the quick estimate it computes. It includes only the
 * rooms below (core/, acc/ for the sketch, linalg/ for the operator); what the files of view/
 * share beyond it, and their reach into the stream they view, is view/view_priv.h. */
#ifndef EW_VIEW_H
#define EW_VIEW_H

#include "../core/core.h"
#include "../acc/acc.h"
#include "../linalg/linalg.h"

/* A quick spectral estimate of one source (view/solve.c, ew__view_quick): the top pairs deflated
 * exactly and SLQ probes on the rest. Owned by the stream; one slot. */
#define EW__QUICK_DEFLATE 64 /* top pairs sought for deflation */
#define EW__QUICK_PROBES 32
#define EW__QUICK_STEPS 16
#define EW__QUICK_DEFL_TOL 1e-8  /* residual (relative to θ₁) for a pair to be deflated */
#define EW__QUICK_DEFL_PASSES 6  /* operator passes (blocks) the deflation may spend */
#define EW__QUICK_AUTO_REL 0.01  /* AUTO keeps a quick Σ g(λ) only when its bar is within this share */
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
/* Tokens and stats streams (view/kinds.c): fills *tv (a tokens stream) or *cv (a stats stream)
 * with src's view of the stream's tokens or cells, workspace from ws. 0, EW_ENOMEM, or
 * EW_EBADPARAM for a matrix stream. ew__view_kind_close records `peak`, the most workspace the
 * metric held, as the stream's. */
int ew__view_kind_open(ew_stream_t *s, ew_source_t src, ew__tview_t *tv, ew__cview_t *cv,
                       ew__ws_t *ws);
/* Column c of an open tokens view (step or window) as f64 (ew__acc_tokens_column). */
int ew__view_kind_column(ew__tview_t *tv, size_t c, ew__ws_t *ws, const double **out);
/* The exact quantile at level of column c of an open tokens view (ew__acc_tokens_quantile). */
int ew__view_kind_quantile(ew__tview_t *tv, size_t c, double level, ew__ws_t *ws, double *out);
void ew__view_kind_close(ew_stream_t *s, size_t peak);
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
/* Paired streams (view/paired.c). The eigenvalues of S = C_yy − Δ and of
 * Δ = C_xyᵀ (C_xx + εI)⁺ C_xy (ε = EW__SCE_EPS; linalg/schur.c), fy each, descending, and the
 * pairs n: from the stream's cache, solved when the stream changed since (they stay valid until
 * it next changes). 0, EW_EBADPARAM (not a paired stream), EW_EDEGENERATE (no pairs), EW_ENOMEM
 * or EW_ELAPACK. */
#define EW__SCE_EPS 1e-12
int ew__view_paired_schur(ew_stream_t *s, ew__ws_t *ws, const double **s_eig,
                          const double **d_eig, size_t *fy, uint64_t *n);
/* A* = (C_xx + εI)⁺ C_xy (dx×dy, row-major) of a paired stream of linear features, cached the
 * same way; *dx and *dy are set whenever the stream is paired and linear. The codes above, and
 * EW_EBADPARAM for rff features. */
int ew__view_paired_astar(ew_stream_t *s, ew__ws_t *ws, const double **astar, size_t *dx,
                          size_t *dy);
/* Bytes the stream's paired cache holds. */
size_t ew__view_paired_cache_bytes(const ew_stream_t *s);
/* The kernel metrics' spectrum cache (view/kspec.c): the eigenvalues (n, and the sample's rows)
 * stored for kernel `kind` under σ and max_rows while the stream has not changed since — 0 — or
 * −1; and storing them (copied; without memory nothing is kept). */
int ew__view_kspec_get(ew__view_t *v, int kind, double sigma, size_t max_rows, const double **w,
                       size_t *n, uint64_t *sample_rows);
void ew__view_kspec_put(ew__view_t *v, int kind, double sigma, size_t max_rows, const double *w,
                        size_t n, uint64_t sample_rows);
/* The same with the rows' labels (*labels NULL when the window keeps none). */
int ew__view_rows_labels(ew__view_t *v, const float **rows, const uint32_t **labels, size_t *n);

#endif /* EW_VIEW_H */
