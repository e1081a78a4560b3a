/* acc/tokens_sums.c — a batch's sums in one pass over blocks of its tokens (ingest's prepare,
 * acc/tokens.h's ew__tacc_t): each column's Σd, Σd² about a shift and its extremes, every pair's
 * Σ d_c d_e, in eight lanes per block — AVX2 where the CPU has it, SSE2 on any x86-64, scalar
 * elsewhere, the same bits every way — and the blocks' totals added with Neumaier's compensation.
 * A leaf, as tokens_reduce.c: it calls only core/. */
#include "tokens.h"

#include <math.h>
#include <string.h>

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
