/* acc/tokens_reduce.c — the reductions of acc/tokens.h. Sums are compensated (Neumaier), so a
 * step of millions of tokens keeps numpy float64's digits; quantiles and the covariance top are
 * selections (Hoare partitions about a median of three: expected O(n), deterministic), never
 * sorts. */
#include "tokens.h"

#include <math.h>
#include <string.h>

/* Σ x[i] with Neumaier's compensation. */
static double csum(const double *x, size_t n) {
  double s = 0, c = 0;
  for (size_t i = 0; i < n; i++) {
    double t = s + x[i];
    c += fabs(s) >= fabs(x[i]) ? (s - t) + x[i] : (x[i] - t) + s;
    s = t;
  }
  return s + c;
}

void ew__tsum_of(const double *x, size_t n, ew__tsum_t *out) {
  memset(out, 0, sizeof *out);
  if (n == 0)
    return;
  double mean = csum(x, n) / (double)n, s = 0, c = 0, lo = x[0], hi = x[0];
  for (size_t i = 0; i < n; i++) {
    double d = x[i] - mean, v = d * d, t = s + v;
    c += s >= v ? (s - t) + v : (v - t) + s;
    s = t;
    lo = x[i] < lo ? x[i] : lo;
    hi = x[i] > hi ? x[i] : hi;
  }
  *out = (ew__tsum_t){.n = n, .mean = mean, .m2 = s + c, .min = lo, .max = hi};
}

void ew__tsum_merge(ew__tsum_t *a, const ew__tsum_t *b) {
  if (b->n == 0)
    return;
  if (a->n == 0) {
    *a = *b;
    return;
  }
  double na = (double)a->n, nb = (double)b->n, n = na + nb, d = b->mean - a->mean;
  a->m2 += b->m2 + d * d * na * nb / n;
  a->mean += d * nb / n;
  a->min = b->min < a->min ? b->min : a->min;
  a->max = b->max > a->max ? b->max : a->max;
  a->n += b->n;
}

void ew__tco_of(const double *x, const double *y, size_t n, ew__tco_t *out) {
  memset(out, 0, sizeof *out);
  if (n == 0)
    return;
  double mx = csum(x, n) / (double)n, my = csum(y, n) / (double)n, s = 0, c = 0;
  for (size_t i = 0; i < n; i++) {
    double v = (x[i] - mx) * (y[i] - my), t = s + v;
    c += fabs(s) >= fabs(v) ? (s - t) + v : (v - t) + s;
    s = t;
  }
  *out = (ew__tco_t){.n = n, .mx = mx, .my = my, .c = s + c};
}

void ew__tco_merge(ew__tco_t *a, const ew__tco_t *b) {
  if (b->n == 0)
    return;
  if (a->n == 0) {
    *a = *b;
    return;
  }
  double na = (double)a->n, nb = (double)b->n, n = na + nb;
  double dx = b->mx - a->mx, dy = b->my - a->my;
  a->c += b->c + dx * dy * na * nb / n;
  a->mx += dx * nb / n;
  a->my += dy * nb / n;
  a->n += b->n;
}

static void swap(double *a, double *b) {
  double t = *a;
  *a = *b;
  *b = t;
}

/* Reorders v[0, n) so that v[k] is the value a sort would put there, everything before it no
 * larger and everything after it no smaller; returns it. */
static double select_kth(double *v, size_t n, size_t k) {
  size_t lo = 0, hi = n - 1;
  while (hi > lo) {
    size_t mid = lo + (hi - lo) / 2; /* median of three as the pivot, moved to lo */
    if (v[mid] < v[lo])
      swap(&v[mid], &v[lo]);
    if (v[hi] < v[lo])
      swap(&v[hi], &v[lo]);
    if (v[hi] < v[mid])
      swap(&v[hi], &v[mid]);
    swap(&v[lo], &v[mid]);
    double p = v[lo];
    size_t i = lo, j = hi + 1;
    for (;;) { /* Hoare: [lo+1, i] <= p <= [j, hi] */
      do
        i++;
      while (i <= hi && v[i] < p);
      do
        j--;
      while (v[j] > p);
      if (i >= j)
        break;
      swap(&v[i], &v[j]);
    }
    swap(&v[lo], &v[j]);
    if (j == k)
      return v[k];
    if (k < j)
      hi = j - 1;
    else
      lo = j + 1;
  }
  return v[k];
}

double ew__tok_quantile(double *work, size_t n, double level) {
  double h = (double)(n - 1) * level;
  size_t k = (size_t)floor(h);
  if (k >= n - 1)
    return select_kth(work, n, n - 1);
  double a = select_kth(work, n, k), b = work[k + 1];
  for (size_t i = k + 2; i < n; i++) /* the next order statistic: the least above position k */
    b = work[i] < b ? work[i] : b;
  double t = h - (double)k, d = b - a;
  return t >= 0.5 ? b - d * (1 - t) : a + d * t; /* numpy's _lerp, both halves */
}

double ew__tok_quantile_sorted(const double *v, const float *f, size_t n, double level) {
  double h = (double)(n - 1) * level;
  size_t k = (size_t)floor(h);
  if (k >= n - 1)
    return f ? f[n - 1] : v[n - 1];
  double a = f ? f[k] : v[k], b = f ? f[k + 1] : v[k + 1], t = h - (double)k, d = b - a;
  return t >= 0.5 ? b - d * (1 - t) : a + d * t; /* numpy's _lerp, both halves */
}

double ew__tok_frac_above(const double *x, size_t n, double t) {
  uint64_t k = 0;
  for (size_t i = 0; i < n; i++)
    k += x[i] > t;
  return n ? (double)k / (double)n : 0.0;
}

void ew__tok_histogram(const double *x, size_t n, double lo, double hi, size_t bins,
                       uint64_t *counts) {
  memset(counts, 0, bins * sizeof *counts);
  for (size_t i = 0; i < n; i++) {
    double f = (x[i] - lo) / (hi - lo) * (double)bins;
    size_t b = !(f > 0) ? 0 : f >= (double)bins ? bins - 1 : (size_t)f;
    counts[b]++;
  }
}

double ew__tok_cov_band_frac(const double *x, const double *y, size_t n, double mx, double my,
                             double lb, double ub) {
  uint64_t k = 0;
  for (size_t i = 0; i < n; i++) {
    double c = (x[i] - mx) * (y[i] - my);
    k += lb < c && c < ub;
  }
  return n ? (double)k / (double)n : 0.0;
}

double ew__tok_cov_top(const double *x, const double *y, size_t n, double mx, double my,
                       double ratio, double *work) {
  size_t k = (size_t)floor(ratio * (double)n);
  k = k < 1 ? 1 : k > n ? n : k;
  for (size_t i = 0; i < n; i++)
    work[i] = (x[i] - mx) * (y[i] - my);
  return select_kth(work, n, n - k); /* the k-th largest */
}

size_t ew__tok_seq_means(const double *x, const uint32_t *len, size_t nseq, double *seq_mean,
                         double *seq_sum_mean) {
  double sm = 0, cm = 0, ss = 0, cs = 0;
  size_t used = 0, at = 0;
  for (size_t q = 0; q < nseq; at += len[q], q++) {
    if (!len[q])
      continue;
    double sum = csum(x + at, len[q]), mean = sum / (double)len[q], t;
    t = sm + mean, cm += fabs(sm) >= fabs(mean) ? (sm - t) + mean : (mean - t) + sm, sm = t;
    t = ss + sum, cs += fabs(ss) >= fabs(sum) ? (ss - t) + sum : (sum - t) + ss, ss = t;
    used++;
  }
  if (used) {
    *seq_mean = (sm + cm) / (double)used;
    *seq_sum_mean = (ss + cs) / (double)used;
  }
  return used;
}

double ew__tok_window_frac_above(const double *x, const uint32_t *len, size_t nseq, size_t w,
                                 double t_hi, uint64_t *windows) {
  uint64_t total = 0, above = 0;
  size_t at = 0;
  for (size_t q = 0; q < nseq; at += len[q], q++) {
    if (w == 0 || len[q] < w)
      continue;
    for (size_t t = 0; t + w <= len[q]; t++) { /* each window summed afresh: no drift */
      total++;
      above += csum(x + at + t, w) / (double)w > t_hi;
    }
  }
  if (windows)
    *windows = total;
  return total ? (double)above / (double)total : 0.0;
}

void ew__tall_of(ew__tall_t *out, const double *const *x, size_t ncols, size_t n,
                 const uint32_t *len, size_t nseq, bool has_len) {
  memset(out, 0, sizeof *out);
  for (size_t c = 0; c < ncols; c++) {
    ew__tsum_of(x[c], n, &out->sum[c]);
    for (size_t k = c + 1; k < ncols; k++)
      ew__tco_of(x[c], x[k], n, &out->co[c][k]);
  }
  if (!has_len) {
    out->nolen = n;
    return;
  }
  for (size_t c = 0; c < ncols; c++) {
    double mean = 0, sum = 0;
    size_t seqs = ew__tok_seq_means(x[c], len, nseq, &mean, &sum);
    out->seqs = seqs;
    out->seq_mean_sum[c] = seqs ? mean * (double)seqs : 0;
    out->seq_sum_sum[c] = seqs ? sum * (double)seqs : 0;
  }
}

void ew__tall_merge(ew__tall_t *a, const ew__tall_t *b, size_t ncols) {
  for (size_t c = 0; c < ncols; c++) {
    ew__tsum_merge(&a->sum[c], &b->sum[c]);
    for (size_t k = c + 1; k < ncols; k++)
      ew__tco_merge(&a->co[c][k], &b->co[c][k]);
    a->seq_mean_sum[c] += b->seq_mean_sum[c];
    a->seq_sum_sum[c] += b->seq_sum_sum[c];
  }
  a->seqs += b->seqs;
  a->nolen += b->nolen;
}

/* ---- the sums of a batch in one pass over blocks (ingest) ---- */

void ew__tacc_start(ew__tacc_t *a, size_t ncols) {
  memset(a, 0, sizeof *a);
  a->ncols = ncols;
}

/* Σ into a Neumaier pair (s, c). */
static void nadd(double *s, double *c, double v) {
  double t = *s + v;
  *c += fabs(*s) >= fabs(v) ? (*s - t) + v : (v - t) + *s;
  *s = t;
}

/* ---- the block kernels: eight lanes (element i of a block into lane i % 8), added lane by lane
 * in order afterwards, so every version gives the same bits: AVX2 (two four-wide registers) where
 * the CPU has it, SSE2 (four two-wide ones) on any x86-64, scalar elsewhere; multiplies and adds
 * are never fused. ---- */

typedef struct {
  double s[8], q[8], lo[8], hi[8];
} lanes8_t;

/* d[i] = x[i] − K; per lane Σd, Σd², min x, max x, over x[0, k8) (k8 a multiple of 8). */
__attribute__((unused)) static void lanes_scalar(const double *x, size_t k8, double K, double *d, lanes8_t *L) {
  for (size_t i = 0; i < k8; i += 8)
    for (int j = 0; j < 8; j++) {
      double v = x[i + j], e = v - K;
      d[i + j] = e;
      L->s[j] += e;
      L->q[j] += e * e;
      L->lo[j] = v < L->lo[j] ? v : L->lo[j];
      L->hi[j] = v > L->hi[j] ? v : L->hi[j];
    }
}

/* lanes_scalar for floats (each widened exactly: the same bits as the doubles would give). */
__attribute__((unused)) static void lanes_f32_scalar(const float *x, size_t k8, double K, double *d,
                                                     lanes8_t *L) {
  for (size_t i = 0; i < k8; i += 8)
    for (int j = 0; j < 8; j++) {
      double v = x[i + j], e = v - K;
      d[i + j] = e;
      L->s[j] += e;
      L->q[j] += e * e;
      L->lo[j] = v < L->lo[j] ? v : L->lo[j];
      L->hi[j] = v > L->hi[j] ? v : L->hi[j];
    }
}

/* p[j] += Σ a[i] b[i] over lane j. */
__attribute__((unused)) static void pair_scalar(const double *a, const double *b, size_t k8, double *p) {
  for (size_t i = 0; i < k8; i += 8)
    for (int j = 0; j < 8; j++)
      p[j] += a[i + j] * b[i + j];
}

#if defined(__x86_64__)
#include <immintrin.h>

static void lanes_sse2(const double *x, size_t k8, double K, double *d, lanes8_t *L) {
  __m128d s[4], q[4], lo[4], hi[4], kk = _mm_set1_pd(K);
  for (int g = 0; g < 4; g++) {
    s[g] = _mm_loadu_pd(L->s + 2 * g), q[g] = _mm_loadu_pd(L->q + 2 * g);
    lo[g] = _mm_loadu_pd(L->lo + 2 * g), hi[g] = _mm_loadu_pd(L->hi + 2 * g);
  }
  for (size_t i = 0; i < k8; i += 8)
    for (int g = 0; g < 4; g++) {
      __m128d v = _mm_loadu_pd(x + i + 2 * g), e = _mm_sub_pd(v, kk);
      _mm_storeu_pd(d + i + 2 * g, e);
      lo[g] = _mm_min_pd(v, lo[g]), hi[g] = _mm_max_pd(v, hi[g]);
      s[g] = _mm_add_pd(s[g], e), q[g] = _mm_add_pd(q[g], _mm_mul_pd(e, e));
    }
  for (int g = 0; g < 4; g++) {
    _mm_storeu_pd(L->s + 2 * g, s[g]), _mm_storeu_pd(L->q + 2 * g, q[g]);
    _mm_storeu_pd(L->lo + 2 * g, lo[g]), _mm_storeu_pd(L->hi + 2 * g, hi[g]);
  }
}

static void lanes_f32_sse2(const float *x, size_t k8, double K, double *d, lanes8_t *L) {
  __m128d s[4], q[4], lo[4], hi[4], kk = _mm_set1_pd(K);
  for (int g = 0; g < 4; g++) {
    s[g] = _mm_loadu_pd(L->s + 2 * g), q[g] = _mm_loadu_pd(L->q + 2 * g);
    lo[g] = _mm_loadu_pd(L->lo + 2 * g), hi[g] = _mm_loadu_pd(L->hi + 2 * g);
  }
  for (size_t i = 0; i < k8; i += 8) {
    __m128 f0 = _mm_loadu_ps(x + i), f1 = _mm_loadu_ps(x + i + 4);
    __m128d w[4] = {_mm_cvtps_pd(f0), _mm_cvtps_pd(_mm_movehl_ps(f0, f0)), _mm_cvtps_pd(f1),
                    _mm_cvtps_pd(_mm_movehl_ps(f1, f1))};
    for (int g = 0; g < 4; g++) {
      __m128d v = w[g], e = _mm_sub_pd(v, kk);
      _mm_storeu_pd(d + i + 2 * g, e);
      lo[g] = _mm_min_pd(v, lo[g]), hi[g] = _mm_max_pd(v, hi[g]);
      s[g] = _mm_add_pd(s[g], e), q[g] = _mm_add_pd(q[g], _mm_mul_pd(e, e));
    }
  }
  for (int g = 0; g < 4; g++) {
    _mm_storeu_pd(L->s + 2 * g, s[g]), _mm_storeu_pd(L->q + 2 * g, q[g]);
    _mm_storeu_pd(L->lo + 2 * g, lo[g]), _mm_storeu_pd(L->hi + 2 * g, hi[g]);
  }
}

static void pair_sse2(const double *a, const double *b, size_t k8, double *p) {
  __m128d acc[4];
  for (int g = 0; g < 4; g++)
    acc[g] = _mm_loadu_pd(p + 2 * g);
  for (size_t i = 0; i < k8; i += 8)
    for (int g = 0; g < 4; g++)
      acc[g] = _mm_add_pd(acc[g], _mm_mul_pd(_mm_loadu_pd(a + i + 2 * g),
                                             _mm_loadu_pd(b + i + 2 * g)));
  for (int g = 0; g < 4; g++)
    _mm_storeu_pd(p + 2 * g, acc[g]);
}

__attribute__((target("avx2"))) static void lanes_avx2(const double *x, size_t k8, double K,
                                                       double *d, lanes8_t *L) {
  __m256d s[2], q[2], lo[2], hi[2], kk = _mm256_set1_pd(K);
  for (int g = 0; g < 2; g++) {
    s[g] = _mm256_loadu_pd(L->s + 4 * g), q[g] = _mm256_loadu_pd(L->q + 4 * g);
    lo[g] = _mm256_loadu_pd(L->lo + 4 * g), hi[g] = _mm256_loadu_pd(L->hi + 4 * g);
  }
  for (size_t i = 0; i < k8; i += 8)
    for (int g = 0; g < 2; g++) {
      __m256d v = _mm256_loadu_pd(x + i + 4 * g), e = _mm256_sub_pd(v, kk);
      _mm256_storeu_pd(d + i + 4 * g, e);
      lo[g] = _mm256_min_pd(v, lo[g]), hi[g] = _mm256_max_pd(v, hi[g]);
      s[g] = _mm256_add_pd(s[g], e), q[g] = _mm256_add_pd(q[g], _mm256_mul_pd(e, e));
    }
  for (int g = 0; g < 2; g++) {
    _mm256_storeu_pd(L->s + 4 * g, s[g]), _mm256_storeu_pd(L->q + 4 * g, q[g]);
    _mm256_storeu_pd(L->lo + 4 * g, lo[g]), _mm256_storeu_pd(L->hi + 4 * g, hi[g]);
  }
}

__attribute__((target("avx2"))) static void lanes_f32_avx2(const float *x, size_t k8, double K,
                                                           double *d, lanes8_t *L) {
  __m256d s[2], q[2], lo[2], hi[2], kk = _mm256_set1_pd(K);
  for (int g = 0; g < 2; g++) {
    s[g] = _mm256_loadu_pd(L->s + 4 * g), q[g] = _mm256_loadu_pd(L->q + 4 * g);
    lo[g] = _mm256_loadu_pd(L->lo + 4 * g), hi[g] = _mm256_loadu_pd(L->hi + 4 * g);
  }
  for (size_t i = 0; i < k8; i += 8)
    for (int g = 0; g < 2; g++) {
      __m256d v = _mm256_cvtps_pd(_mm_loadu_ps(x + i + 4 * g)), e = _mm256_sub_pd(v, kk);
      _mm256_storeu_pd(d + i + 4 * g, e);
      lo[g] = _mm256_min_pd(v, lo[g]), hi[g] = _mm256_max_pd(v, hi[g]);
      s[g] = _mm256_add_pd(s[g], e), q[g] = _mm256_add_pd(q[g], _mm256_mul_pd(e, e));
    }
  for (int g = 0; g < 2; g++) {
    _mm256_storeu_pd(L->s + 4 * g, s[g]), _mm256_storeu_pd(L->q + 4 * g, q[g]);
    _mm256_storeu_pd(L->lo + 4 * g, lo[g]), _mm256_storeu_pd(L->hi + 4 * g, hi[g]);
  }
}

__attribute__((target("avx2"))) static void pair_avx2(const double *a, const double *b,
                                                      size_t k8, double *p) {
  __m256d acc[2] = {_mm256_loadu_pd(p), _mm256_loadu_pd(p + 4)};
  for (size_t i = 0; i < k8; i += 8)
    for (int g = 0; g < 2; g++)
      acc[g] = _mm256_add_pd(acc[g], _mm256_mul_pd(_mm256_loadu_pd(a + i + 4 * g),
                                                   _mm256_loadu_pd(b + i + 4 * g)));
  _mm256_storeu_pd(p, acc[0]), _mm256_storeu_pd(p + 4, acc[1]);
}

static int avx2(void) {
  static int have = -1; /* set once; a race writes the same value */
  int h = __atomic_load_n(&have, __ATOMIC_RELAXED);
  if (h < 0) {
    __builtin_cpu_init();
    h = __builtin_cpu_supports("avx2") ? 1 : 0;
    __atomic_store_n(&have, h, __ATOMIC_RELAXED);
  }
  return h;
}

static void lanes8(const double *x, size_t k8, double K, double *d, lanes8_t *L) {
  (avx2() ? lanes_avx2 : lanes_sse2)(x, k8, K, d, L);
}

static void lanes8_f32(const float *x, size_t k8, double K, double *d, lanes8_t *L) {
  (avx2() ? lanes_f32_avx2 : lanes_f32_sse2)(x, k8, K, d, L);
}

static void pair8(const double *a, const double *b, size_t k8, double *p) {
  (avx2() ? pair_avx2 : pair_sse2)(a, b, k8, p);
}
#else
#define lanes8 lanes_scalar
#define lanes8_f32 lanes_f32_scalar
#define pair8 pair_scalar
#endif

int ew__tacc_block(ew__tacc_t *a, const double *const *v, size_t k) {
  return ew__tacc_block_mixed(a, v, NULL, k);
}

/* Token i of a block: column c's doubles or floats. */
static double at(const double *const *v, const float *const *f, size_t c, size_t i) {
  return f && f[c] ? (double)f[c][i] : v[c][i];
}

int ew__tacc_block_mixed(ew__tacc_t *a, const double *const *v, const float *const *f,
                         size_t k) {
  enum { BLK = 512 };
  if (k == 0 || k > BLK)
    return k == 0 ? -1 : 0;
  size_t nc = a->ncols, k8 = k / 8 * 8;
  double d[EW_COLUMNS_MAX][BLK];
  if (a->n == 0) { /* the shift: the first block's mean, so the sums about it keep their digits */
    for (size_t c = 0; c < nc; c++) {
      double s = 0;
      for (size_t i = 0; i < k; i++)
        s += at(v, f, c, i);
      a->shift[c] = s / (double)k;
      a->lo[c] = a->hi[c] = at(v, f, c, 0);
    }
  }
  for (size_t c = 0; c < nc; c++) {
    double K = a->shift[c], x0 = at(v, f, c, 0);
    lanes8_t L;
    memset(L.s, 0, sizeof L.s), memset(L.q, 0, sizeof L.q);
    for (int j = 0; j < 8; j++)
      L.lo[j] = L.hi[j] = x0;
    if (f && f[c])
      lanes8_f32(f[c], k8, K, d[c], &L);
    else
      lanes8(v[c], k8, K, d[c], &L);
    for (size_t i = k8; i < k; i++) { /* the tail, in lane 0 */
      double x = at(v, f, c, i), e = x - K;
      d[c][i] = e;
      L.s[0] += e, L.q[0] += e * e;
      L.lo[0] = x < L.lo[0] ? x : L.lo[0];
      L.hi[0] = x > L.hi[0] ? x : L.hi[0];
    }
    double bs = 0, bq = 0;
    for (int j = 0; j < 8; j++) {
      bs += L.s[j], bq += L.q[j];
      a->lo[c] = L.lo[j] < a->lo[c] ? L.lo[j] : a->lo[c];
      a->hi[c] = L.hi[j] > a->hi[c] ? L.hi[j] : a->hi[c];
    }
    if (!isfinite(bs) || !isfinite(bq) || !(a->lo[c] > -0x1p128 && a->hi[c] < 0x1p128))
      return (int)c; /* a NaN or an infinity, or a value of magnitude 2^128 or more */
    nadd(&a->s[c], &a->cs[c], bs);
    nadd(&a->q[c], &a->cq[c], bq);
  }
  for (size_t c = 0; c < nc; c++)
    for (size_t e = c + 1; e < nc; e++) {
      double p[8] = {0};
      pair8(d[c], d[e], k8, p);
      for (size_t i = k8; i < k; i++)
        p[0] += d[c][i] * d[e][i];
      double t = 0;
      for (int j = 0; j < 8; j++)
        t += p[j];
      nadd(&a->p[c][e], &a->cp[c][e], t);
    }
  a->n += k;
  return -1;
}

void ew__tacc_finish(const ew__tacc_t *a, ew__tall_t *out) {
  memset(out, 0, sizeof *out);
  if (a->n == 0)
    return;
  double n = (double)a->n;
  double s[EW_COLUMNS_MAX];
  for (size_t c = 0; c < a->ncols; c++) {
    s[c] = a->s[c] + a->cs[c];
    double m2 = (a->q[c] + a->cq[c]) - s[c] * s[c] / n;
    out->sum[c] = (ew__tsum_t){.n = a->n, .mean = a->shift[c] + s[c] / n, .m2 = m2 > 0 ? m2 : 0,
                               .min = a->lo[c], .max = a->hi[c]};
  }
  for (size_t c = 0; c < a->ncols; c++)
    for (size_t e = c + 1; e < a->ncols; e++)
      out->co[c][e] = (ew__tco_t){.n = a->n, .mx = out->sum[c].mean, .my = out->sum[e].mean,
                                  .c = (a->p[c][e] + a->cp[c][e]) - s[c] * s[e] / n};
}

size_t ew__tok_gather(const void *col, ew_dtype_t dt, const unsigned char *mask, size_t i0,
                      size_t i1, double *dst) {
  size_t k = 0, m = i1 - i0;
  if (dt == EW_F32) {
    const float *f = (const float *)col + i0;
    if (!mask) {
      for (size_t i = 0; i < m; i++)
        dst[i] = f[i];
      return m;
    }
    for (size_t i = 0; i < m; i++)
      if (mask[i0 + i])
        dst[k++] = f[i];
    return k;
  }
  if (dt == EW_F64) {
    const double *f = (const double *)col + i0;
    if (!mask) {
      memcpy(dst, f, m * sizeof *dst);
      return m;
    }
    for (size_t i = 0; i < m; i++)
      if (mask[i0 + i])
        dst[k++] = f[i];
    return k;
  }
  size_t esz = ew_dtype_size(dt);
  const unsigned char *p = (const unsigned char *)col + esz * i0;
  if (!mask && ew_convert_f64(p, dt, m, dst) == 0)
    return m;
  for (size_t i = 0; i < m; i++) /* masked, or a value that is not finite: one at a time */
    if (!mask || mask[i0 + i]) {
      if (ew_convert_f64(p + esz * i, dt, 1, dst + k) != 0)
        dst[k] = NAN;
      k++;
    }
  return k;
}

size_t ew__tok_gather_f32(const void *col, ew_dtype_t dt, const unsigned char *mask, size_t i0,
                          size_t i1, float *dst) {
  size_t k = 0, m = i1 - i0;
  if (dt == EW_F32) {
    const float *f = (const float *)col + i0;
    if (!mask) {
      memcpy(dst, f, m * sizeof *dst);
      return m;
    }
    for (size_t i = 0; i < m; i++)
      if (mask[i0 + i])
        dst[k++] = f[i];
    return k;
  }
  enum { BLK = 256 };
  double v[BLK];
  for (size_t at = i0; at < i1; at += BLK) { /* f16, bf16: through f64, exactly */
    size_t e = at + BLK < i1 ? at + BLK : i1, got = ew__tok_gather(col, dt, mask, at, e, v);
    for (size_t i = 0; i < got; i++)
      dst[k++] = (float)v[i];
  }
  return k;
}
