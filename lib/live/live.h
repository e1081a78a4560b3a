/* live/live.h — the live room: the live top-k estimate the stream keeps (rop.c), the Oja
 * estimate it replaced (oja.c) and live_topk's certificate (cert.c), which reads a view like a
 * metric: so it includes view/view.h, the room beside it, besides core/. */
#ifndef EW_LIVE_H
#define EW_LIVE_H

#include "../core/core.h"
#include "../view/view.h"

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

#endif /* EW_LIVE_H */
