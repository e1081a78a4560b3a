/* acc/tokens.h — the reductions of per-token scalars (RL policy entropy, log-probabilities,
 * advantages) that the tokens kind is made of: exact over the union of every rank's counted
 * tokens, never a mean of per-rank means. Inputs are one column's counted tokens in f64 (masked
 * tokens already left out), and, for the per-sequence reductions, the counted tokens of each
 * sequence in order. Mergeable parts (count, mean, M2, min, max; the co-moment of two columns)
 * merge by Chan's rule; the others (quantiles, the covariance band and top, windows) read the
 * tokens. A leaf (acc/tokens_reduce.c calls only core/): the tokens kind's accumulator (acc/)
 * and its metrics (metrics/) are made of it. */
#ifndef EW_TOKENS_H
#define EW_TOKENS_H

#include "../core/core.h"
#include "eigenwatch.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* One column's mergeable sums: n, mean, M2 = Σ(x − mean)², min, max (n == 0: the rest 0). */
typedef struct {
  uint64_t n;
  double mean, m2, min, max;
} ew__tsum_t;
/* The sums of x[0, n), two passes (the mean, then the squared deviations about it). */
void ew__tsum_of(const double *x, size_t n, ew__tsum_t *out);
/* a ← a ⊕ b (Chan: M2 += M2_b + δ² n_a n_b / n). */
void ew__tsum_merge(ew__tsum_t *a, const ew__tsum_t *b);

/* Two columns' co-moment: n, their means, C = Σ(x − x̄)(y − ȳ); Cov = C/n (Clip-Cov's mean of
 * cov_i). */
typedef struct {
  uint64_t n;
  double mx, my, c;
} ew__tco_t;
void ew__tco_of(const double *x, const double *y, size_t n, ew__tco_t *out);
/* a ← a ⊕ b: C += C_b + (x̄_b − x̄_a)(ȳ_b − ȳ_a) n_a n_b / n. */
void ew__tco_merge(ew__tco_t *a, const ew__tco_t *b);

/* numpy's default (`linear`) quantile at level ∈ [0, 1] of work[0, n), n ≥ 1: with h = (n − 1)
 * level and the sorted values v, v[⌊h⌋] + (h − ⌊h⌋)(v[⌊h⌋+1] − v[⌊h⌋]). work is reordered (an
 * expected O(n) selection, no sort). */
double ew__tok_quantile(double *work, size_t n, double level);
/* The same quantile of v[0, n) sorted ascending, n ≥ 1: a lookup (of floats: f32, else f64). */
double ew__tok_quantile_sorted(const double *v, const float *f, size_t n, double level);
/* The share of x[0, n) strictly above t (0 when n == 0). */
double ew__tok_frac_above(const double *x, size_t n, double t);
/* counts[0, bins) of x[0, n) on [lo, hi) in equal bins; below lo counts in the first bin, at or
 * above hi in the last (bins ≥ 1, lo < hi). */
void ew__tok_histogram(const double *x, size_t n, double lo, double hi, size_t bins,
                       uint64_t *counts);
/* The share of tokens with lb < (x − mx)(y − my) < ub: Clip-Cov's candidates, about the union's
 * means (mx, my). */
double ew__tok_cov_band_frac(const double *x, const double *y, size_t n, double mx, double my,
                             double lb, double ub);
/* The k-th largest (x − mx)(y − my), k = max(1, ⌊ratio·n⌋) (KL-Cov's threshold; ratio a
 * fraction). work: n doubles of scratch. n ≥ 1. */
double ew__tok_cov_top(const double *x, const double *y, size_t n, double mx, double my,
                       double ratio, double *work);
/* Per-sequence reductions over len[0, nseq) (counted tokens per sequence, summing to the
 * tokens in x): *seq_mean = mean over sequences with a token of (Σ_t x)/n_t (verl's
 * seq-mean-token-mean), *seq_sum_mean = mean over those sequences of Σ_t x (seq-mean-token-sum).
 * Returns the sequences with a token (0: both left unset). */
size_t ew__tok_seq_means(const double *x, const uint32_t *len, size_t nseq, double *seq_mean,
                         double *seq_sum_mean);
/* The share, among positions t with a full forward window of w tokens inside their sequence, of
 * those whose window mean (1/w) Σ_{τ=t}^{t+w−1} x_τ exceeds t_hi (ARES's high window entropy).
 * *windows (may be NULL) = the positions with a full window; 0 of them gives 0. */
double ew__tok_window_frac_above(const double *x, const uint32_t *len, size_t nseq, size_t w,
                                 double t_hi, uint64_t *windows);

/* Every counted token's mergeable sums, by column (ncols ≤ EW_COLUMNS_MAX): n, mean, M2, min,
 * max; the co-moment of every pair i < j (co[i][j]); sequences with a counted token and, per
 * column, Σ over them of the sequence's mean and of its sum (seqs from batches that carried
 * lengths; nolen counts the tokens of batches that did not); steps described. */
typedef struct {
  ew__tsum_t sum[EW_COLUMNS_MAX];
  ew__tco_t co[EW_COLUMNS_MAX][EW_COLUMNS_MAX];
  uint64_t seqs, nolen, steps;
  double seq_mean_sum[EW_COLUMNS_MAX], seq_sum_sum[EW_COLUMNS_MAX];
} ew__tall_t;
/* The sums of one batch: x[c][0, n) per column, and (has_len) its sequences' counted tokens
 * len[0, nseq). steps is left 0. */
void ew__tall_of(ew__tall_t *out, const double *const *x, size_t ncols, size_t n,
                 const uint32_t *len, size_t nseq, bool has_len);
/* The sums of a batch read block by block (ingest's one pass): about a shift per column (the first
 * block's mean), Σd, Σd², the extremes and Σ d_c d_e per pair, each block's totals added with
 * Neumaier's compensation. M2 = Σd² − (Σd)²/n loses nothing that matters while the shift is
 * within a few spreads of the mean (the first block's mean is). */
typedef struct {
  size_t ncols;
  uint64_t n;
  double shift[EW_COLUMNS_MAX], lo[EW_COLUMNS_MAX], hi[EW_COLUMNS_MAX];
  double s[EW_COLUMNS_MAX], cs[EW_COLUMNS_MAX], q[EW_COLUMNS_MAX], cq[EW_COLUMNS_MAX];
  double p[EW_COLUMNS_MAX][EW_COLUMNS_MAX], cp[EW_COLUMNS_MAX][EW_COLUMNS_MAX];
} ew__tacc_t;
void ew__tacc_start(ew__tacc_t *a, size_t ncols);
/* Adds a block of 1 ≤ k ≤ 512 tokens, v[c][0, k) per column (k > 512: refused as column 0). −1, or the first column c whose block
 * holds a NaN or an infinity or a value of magnitude 2^128 or more (the sums are then not to be
 * used; below 2^128 none of them can overflow, whatever the count). */
int ew__tacc_block(ew__tacc_t *a, const double *const *v, size_t k);
/* The same where column c may be floats f[c] (when f and f[c] are not NULL; widened exactly:
 * the same bits as their doubles). */
int ew__tacc_block_mixed(ew__tacc_t *a, const double *const *v, const float *const *f,
                         size_t k);
/* The sums (n, mean, M2, min, max per column; the co-moments) of what was added; seqs, nolen and
 * the sequence sums are left 0. */
void ew__tacc_finish(const ew__tacc_t *a, ew__tall_t *out);
/* a ← a ⊕ b over ncols columns (Chan for sums and co-moments; counts and sums add; steps not
 * touched). */
void ew__tall_merge(ew__tall_t *a, const ew__tall_t *b, size_t ncols);

/* ---- acc/tokens_sketch.c: quantiles of everything seen, mergeable, with a certified rank error
 * Level h holds values of weight 2^h, at most k of them; err bounds every value's rank error. */
#define EW__QS_LEVELS 48
typedef struct {
  size_t k;
  double *buf[EW__QS_LEVELS];
  size_t len[EW__QS_LEVELS];
  bool flip[EW__QS_LEVELS];
  int top;    /* highest level in use */
  uint64_t n; /* values summarised */
  double err; /* Σ 2^h over the compactions made (merges add theirs) */
} ew__qsketch_t;
/* An empty sketch of k values per level (k ≥ 8, rounded up to even). Returns 0. */
int ew__qs_init(ew__qsketch_t *q, size_t k);
void ew__qs_free(ew__qsketch_t *q);
/* Heap bytes held (k doubles per level in use). */
size_t ew__qs_bytes(const ew__qsketch_t *q);
/* Allocates every level adding `more` values (ew__qs_reserve), or merging o
 * (ew__qs_reserve_merge), can reach, so that the add or merge that follows cannot fail. 0 or
 * EW_ENOMEM (nothing summarised changes). */
int ew__qs_reserve(ew__qsketch_t *q, uint64_t more);
int ew__qs_reserve_merge(ew__qsketch_t *q, const ew__qsketch_t *o);
/* Adds x[0, n). 0 or EW_ENOMEM (then the values before the failing one are in). */
int ew__qs_add(ew__qsketch_t *q, const double *x, size_t n);
/* Adds the sorted values v[0, n) (ascending): a run of k or more is compacted straight to the
 * level where fewer than k remain — O(n), no sort. tmp holds n/2 doubles, or is v itself (v is
 * then overwritten). The levels must be reserved (ew__qs_reserve(q, n)): then it cannot fail. */
int ew__qs_add_sorted(ew__qsketch_t *q, const double *v, size_t n, double *tmp);
/* The same for sorted floats (tmp n/2 doubles, distinct from v). */
int ew__qs_add_sorted_f32(ew__qsketch_t *q, const float *v, size_t n, double *tmp);
/* q ← q ⊕ o (the same k): what either summarised, err the sum of both plus the compactions the
 * merge makes. 0 or EW_ENOMEM. */
int ew__qs_merge(ew__qsketch_t *q, const ew__qsketch_t *o);
/* The value at rank level·(n − 1) among everything summarised, and its certified rank error as a
 * share of n (*rank_err: the true rank of *value is within rank_err·n of the asked one). Until
 * the first compaction, numpy's `linear` quantile exactly, with *rank_err 0. EW_EDEGENERATE when
 * empty, EW_ENOMEM. */
int ew__qs_quantile(const ew__qsketch_t *q, double level, double *value, double *rank_err);
/* The saved form: its length, writing it, and reading it into an empty sketch of the same k
 * (errors through r, naming section `sec`: another k, a level fuller than k, a value that is not
 * finite, weights that do not add up to the tokens it says it summarises). */
uint64_t ew__qs_saved_len(const ew__qsketch_t *q);
void ew__qs_save(const ew__qsketch_t *q, ew__wr_t *w);
void ew__qs_load(ew__qsketch_t *q, ew__rd_t *r, const char *sec);

/* The same into floats, for a column sent as f32, f16 or bf16 (exact in f32): returns how many. */
size_t ew__tok_gather_f32(const void *col, ew_dtype_t dt, const unsigned char *mask, size_t i0,
                          size_t i1, float *dst);
/* The counted tokens among i0 ≤ i < i1 of a column as sent (values of dtype dt; mask: 1 = counted,
 * NULL: all), in order, in f64 into dst (room for i1 − i0): returns how many. A value that is not
 * finite comes as it is (f32, f64) or as NaN (f16, bf16). */
size_t ew__tok_gather(const void *col, ew_dtype_t dt, const unsigned char *mask, size_t i0,
                      size_t i1, double *dst);

/* ---- acc/tokens_sort.c ----
 * x[0, n) (finite) in ascending order: a radix sort on the values' bits, tmp n doubles of scratch;
 * O(n), four passes over values that came as f32. */
void ew__tok_sort(double *x, size_t n, double *tmp);
/* v[0, n) (finite f32) sorted ascending into out (n floats); tmp n doubles of scratch. */
void ew__tok_sort_f32(const float *v, size_t n, float *out, double *tmp);

#endif /* EW_TOKENS_H */
