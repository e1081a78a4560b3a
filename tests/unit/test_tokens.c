/* test_tokens.c — the token reductions (lib/acc/tokens_reduce.c) against published worked values and an
 * independent statement in this file (sorted copies, long-double sums):
 *  - the union, not the mean of rank means: rank 0 [0.1, 0.2, 2.0], rank 1 [2.5, 0.1] give
 *    token_mean 0.98 (the mean of the rank means is 1.0333), p50 0.2, p95 2.4 (numpy `linear`),
 *    frac_above 1.0 = 0.4 — merged from the ranks and computed on the union alike;
 *  - Clip-Cov's covariance: A = [1,1,1,−1,−1,−1,2,0], logπ = [−.1,−2,−.5,−.2,−3,−1,−.05,−.7]
 *    give Cov 0.4234375, directly and merged from the split 3 + 5;
 *  - verl's aggregation modes on sequences [1,1,1,1] and [3]: token-mean 1.4, seq-mean-token-mean
 *    2.0, seq-mean-token-sum 3.5;
 *  - ARES's window entropy: H = [0.1, 0.2, 2.0, 2.5, 0.1, 0.0, 1.8], w = 3: window means
 *    [0.7667, 1.5667, 1.5333, 0.8667, 0.6333], 2 of 5 above 1.0; windows stay inside sequences;
 *  - 200 random draws (n up to 5,000, with ties): every quantile level equals numpy's formula on a
 *    sorted copy exactly; sums merged from random splits equal one pass to 1e-12; the covariance
 *    top equals the sorted cov_i; histogram and band counts equal a direct count;
 *  - the quantile sketch of the `all` view: 1e6 skewed tokens summarised as eight merged ranks
 *    and as one: each answer's true rank within the error it states (< 1% of n); numpy's
 *    answer exactly before its first compaction; its saved form round-trips bit for bit and
 *    refuses another k, an overfull level, a value that is not finite and weights that do not
 *    add up, each with a sentence;
 *  - the radix sort (acc/tokens_sort.c), both key widths, and the f32 sort equal qsort element
 *    by element on n = 0 … 1e5 (±0, subnormal floats, ±FLT_MAX; ±1e300, −1e-300, denormal
 *    doubles, duplicates; sorted, reversed, equal, organ-pipe and one-byte patterns);
 *  - ew__qs_add_sorted: 1e6 values in sorted runs (one; 1000 × 1000; k − 1, k, k + 1 for k 4096
 *    and 64): n and the weights add up, no level full, the saved form loads, and at 50 levels the
 *    answer's true rank (from the sorted array) within the stated rank_err·n;
 *  - tacc_sums_near_the_bound: a batch's sums, and Chan's merge, of values just under the 2^128
 *    bound against long double: finite and exact. */
#include "tap.h"
#include "membuf.h"
#include "acc/tokens.h"

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static int cmp(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

/* numpy.quantile(x, q) (method `linear`) on a sorted copy. */
static double np_quantile(const double *x, size_t n, double q) {
  double *s = malloc(n * sizeof *s);
  memcpy(s, x, n * sizeof *s);
  qsort(s, n, sizeof *s, cmp);
  double h = (double)(n - 1) * q;
  size_t k = (size_t)floor(h);
  double r;
  if (k >= n - 1) {
    r = s[n - 1];
  } else {
    double t = h - (double)k, d = s[k + 1] - s[k];
    r = t >= 0.5 ? s[k + 1] - d * (1 - t) : s[k] + d * t;
  }
  free(s);
  return r;
}

static double quantile_of(const double *x, size_t n, double q) {
  double *w = malloc(n * sizeof *w);
  memcpy(w, x, n * sizeof *w);
  double r = ew__tok_quantile(w, n, q);
  free(w);
  return r;
}

static void union_not_mean_of_rank_means(void) {
  const double r0[] = {0.1, 0.2, 2.0}, r1[] = {2.5, 0.1}, all[] = {0.1, 0.2, 2.0, 2.5, 0.1};
  ew__tsum_t a, b, u;
  ew__tsum_of(r0, 3, &a);
  ew__tsum_of(r1, 2, &b);
  ew__tsum_of(all, 5, &u);
  double mean_of_means = (a.mean + b.mean) / 2;
  ew__tsum_merge(&a, &b);
  CHECK(fabs(a.mean - 0.98) < 1e-15 && fabs(u.mean - 0.98) < 1e-15, "%.17g %.17g", a.mean, u.mean);
  CHECK(fabs(mean_of_means - 1.0333333333333334) < 1e-15, "%.17g", mean_of_means);
  CHECK(fabs(a.m2 - u.m2) < 1e-14 && a.n == 5 && a.min == 0.1 && a.max == 2.5, "%g %g", a.m2, u.m2);
  double var = 0;
  for (int i = 0; i < 5; i++)
    var += (all[i] - 0.98) * (all[i] - 0.98);
  CHECK(fabs(u.m2 - var) < 1e-15, "%.17g vs %.17g", u.m2, var);
  CHECK(fabs(quantile_of(all, 5, 0.5) - 0.2) < 1e-15, "p50");
  CHECK(fabs(quantile_of(all, 5, 0.95) - 2.4) < 1e-15, "p95 %.17g", quantile_of(all, 5, 0.95));
  CHECK(ew__tok_frac_above(all, 5, 1.0) == 0.4, "frac_above");
}

static void clip_cov_covariance_merges(void) {
  const double A[] = {1, 1, 1, -1, -1, -1, 2, 0};
  const double L[] = {-.1, -2, -.5, -.2, -3, -1, -.05, -.7};
  ew__tco_t all, p, q;
  ew__tco_of(A, L, 8, &all);
  ew__tco_of(A, L, 3, &p);
  ew__tco_of(A + 3, L + 3, 5, &q);
  ew__tco_merge(&p, &q);
  CHECK(fabs(all.c / 8 - 0.4234375) < 1e-15, "%.17g", all.c / 8);
  CHECK(fabs(p.c / 8 - 0.4234375) < 1e-15 && p.n == 8, "%.17g", p.c / 8);
  /* the band and the top about the union's means */
  double cov[8], work[8];
  for (int i = 0; i < 8; i++)
    cov[i] = (A[i] - all.mx) * (L[i] - all.my);
  int band = 0;
  for (int i = 0; i < 8; i++)
    band += 1.0 < cov[i] && cov[i] < 5.0;
  CHECK(ew__tok_cov_band_frac(A, L, 8, all.mx, all.my, 1, 5) == band / 8.0, "band");
  qsort(cov, 8, sizeof *cov, cmp);
  CHECK(ew__tok_cov_top(A, L, 8, all.mx, all.my, 2e-4, work) == cov[7], "top 1");
  CHECK(ew__tok_cov_top(A, L, 8, all.mx, all.my, 0.25, work) == cov[6], "top 2");
}

static void verl_aggregation_modes(void) {
  const double x[] = {1, 1, 1, 1, 3};
  const uint32_t len[] = {4, 1};
  ew__tsum_t s;
  ew__tsum_of(x, 5, &s);
  double sm = 0, ssm = 0;
  CHECK(ew__tok_seq_means(x, len, 2, &sm, &ssm) == 2, "sequences");
  CHECK(fabs(s.mean - 1.4) < 1e-15 && sm == 2.0 && ssm == 3.5, "%g %g %g", s.mean, sm, ssm);
  const uint32_t with_empty[] = {4, 0, 1};
  CHECK(ew__tok_seq_means(x, with_empty, 3, &sm, &ssm) == 2 && sm == 2.0 && ssm == 3.5,
        "an empty sequence does not count");
}

static void window_entropy(void) {
  const double H[] = {0.1, 0.2, 2.0, 2.5, 0.1, 0.0, 1.8};
  const uint32_t one[] = {7}, two[] = {4, 3};
  uint64_t windows = 0;
  CHECK(ew__tok_window_frac_above(H, one, 1, 3, 1.0, &windows) == 0.4 && windows == 5, "one");
  /* [0.7667, 1.5667] in the first sequence, [0.6333] in the second: 1 of 3 */
  CHECK(fabs(ew__tok_window_frac_above(H, two, 2, 3, 1.0, &windows) - 1.0 / 3) < 1e-15 &&
            windows == 3, "two sequences");
  CHECK(ew__tok_window_frac_above(H, two, 2, 5, 1.0, &windows) == 0 && windows == 0,
        "no full window");
}

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static double uniform(void) {
  rng_state ^= rng_state << 13, rng_state ^= rng_state >> 7, rng_state ^= rng_state << 17;
  return (double)(rng_state >> 11) * 0x1p-53;
}

static void random_draws_equal_the_direct_statement(void) {
  int bad_q = 0, bad_sum = 0, bad_top = 0, bad_hist = 0;
  for (int draw = 0; draw < 200; draw++) {
    size_t n = 1 + (size_t)(uniform() * 5000);
    double *x = malloc(n * sizeof *x), *y = malloc(n * sizeof *y), *w = malloc(n * sizeof *w);
    for (size_t i = 0; i < n; i++) {
      x[i] = draw % 3 == 0 ? floor(uniform() * 6) : 8 * uniform() - 1; /* ties in a third */
      y[i] = uniform() - 0.5 + 0.3 * x[i];
    }
    const double levels[] = {0, 0.05, 0.25, 0.5, 0.75, 0.95, 1, uniform()};
    for (int l = 0; l < 8; l++)
      bad_q += quantile_of(x, n, levels[l]) != np_quantile(x, n, levels[l]);
    ew__tsum_t one, parts = {0};
    ew__tsum_of(x, n, &one);
    for (size_t at = 0; at < n;) { /* random splits, merged */
      size_t k = 1 + (size_t)(uniform() * (double)(n - at));
      ew__tsum_t p;
      ew__tsum_of(x + at, k, &p);
      ew__tsum_merge(&parts, &p);
      at += k;
    }
    long double m = 0, v = 0;
    for (size_t i = 0; i < n; i++)
      m += x[i];
    m /= (long double)n;
    for (size_t i = 0; i < n; i++)
      v += (x[i] - m) * (x[i] - m);
    bad_sum += fabs(one.mean - (double)m) > 1e-12 * (fabs((double)m) + 1) ||
               fabs(parts.mean - one.mean) > 1e-12 * (fabs(one.mean) + 1) ||
               fabs(one.m2 - (double)v) > 1e-12 * ((double)v + 1e-300) ||
               fabs(parts.m2 - one.m2) > 1e-12 * (one.m2 + 1e-300) || parts.n != n;
    ew__tco_t c;
    ew__tco_of(x, y, n, &c);
    for (size_t i = 0; i < n; i++)
      w[i] = (x[i] - c.mx) * (y[i] - c.my);
    qsort(w, n, sizeof *w, cmp);
    double ratio = uniform() * 0.01;
    size_t k = (size_t)floor(ratio * (double)n);
    k = k < 1 ? 1 : k;
    double *work = malloc(n * sizeof *work);
    bad_top += ew__tok_cov_top(x, y, n, c.mx, c.my, ratio, work) != w[n - k];
    free(work);
    uint64_t counts[16], want[16] = {0};
    ew__tok_histogram(x, n, 0, 6, 16, counts);
    for (size_t i = 0; i < n; i++) {
      long b = (long)floor((x[i] - 0) / 6.0 * 16);
      want[b < 0 ? 0 : b > 15 ? 15 : b]++;
    }
    bad_hist += memcmp(counts, want, sizeof counts) != 0;
    free(x), free(y), free(w);
  }
  CHECK(bad_q == 0, "%d quantiles differ from numpy's formula on a sorted copy", bad_q);
  CHECK(bad_sum == 0, "%d draws' sums off", bad_sum);
  CHECK(bad_top == 0, "%d covariance tops differ", bad_top);
  CHECK(bad_hist == 0, "%d histograms differ", bad_hist);
}

/* The true rank interval of v in x: [#{x < v}, #{x <= v} - 1]; its distance to r. */
static double rank_distance(const double *sorted, size_t n, double v, double r) {
  size_t lo = 0, hi = n;
  while (lo < hi) { /* first index with sorted[i] >= v */
    size_t mid = (lo + hi) / 2;
    if (sorted[mid] < v)
      lo = mid + 1;
    else
      hi = mid;
  }
  size_t below = lo, upto = lo;
  while (upto < n && sorted[upto] == v)
    upto++;
  double a = (double)below, b = upto ? (double)upto - 1 : 0;
  return r < a ? a - r : r > b ? r - b : 0;
}

/* Eight "ranks" of 125,000 tokens each summarised apart and merged (1e6 in all), and one
 * sketch of the union: every answer's true rank is within the stated error of the asked one, and
 * the stated error stays under 1%. A sketch that never compacted answers numpy's quantile. */
static void quantile_sketch_merges_with_a_certified_rank_error(void) {
  const size_t per = 125000, ranks = 8, n = per * ranks, k = 4096;
  double *x = malloc(n * sizeof *x), *sorted = malloc(n * sizeof *sorted);
  for (size_t i = 0; i < n; i++) /* skewed, with ties: an entropy-like spread */
    x[i] = i % 7 == 0 ? 0.0 : -log(uniform() + 1e-300) * (1 + (double)(i % 3));
  memcpy(sorted, x, n * sizeof *x);
  qsort(sorted, n, sizeof *sorted, cmp);
  ew__qsketch_t all, one, part;
  ew__qs_init(&all, k);
  ew__qs_init(&one, k);
  CHECK(ew__qs_add(&one, x, n) == 0, "add");
  for (size_t r = 0; r < ranks; r++) {
    ew__qs_init(&part, k);
    CHECK(ew__qs_add(&part, x + r * per, per) == 0, "add part");
    CHECK(ew__qs_merge(&all, &part) == 0, "merge");
    ew__qs_free(&part);
  }
  CHECK(all.n == n && one.n == n, "counts");
  const double levels[] = {0, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99, 1};
  double worst = 0, stated = 0;
  for (int s = 0; s < 2; s++) {
    const ew__qsketch_t *q = s ? &all : &one;
    for (int l = 0; l < 8; l++) {
      double v, e;
      CHECK(ew__qs_quantile(q, levels[l], &v, &e) == 0, "quantile");
      double dist = rank_distance(sorted, n, v, levels[l] * (double)(n - 1)) / (double)n;
      CHECK(dist <= e, "level %g: rank off by %.3g of n, stated %.3g", levels[l], dist, e);
      worst = dist > worst ? dist : worst;
      stated = e > stated ? e : stated;
    }
  }
  CHECK(stated < 0.01, "stated rank error %.3g", stated);
  printf("# 1e6 tokens, k = %zu: rank error at most %.2e of n, stated %.2e; %zu KiB\n", k, worst,
         stated, ew__qs_bytes(&all) / 1024);
  ew__qsketch_t small;
  ew__qs_init(&small, k);
  ew__qs_add(&small, x, 1000);
  for (int l = 0; l < 8; l++) {
    double v, e;
    ew__qs_quantile(&small, levels[l], &v, &e);
    CHECK(v == np_quantile(x, 1000, levels[l]) && e == 0, "uncompacted: numpy's answer");
  }
  double v, e;
  ew__qsketch_t none;
  ew__qs_init(&none, k);
  CHECK(ew__qs_quantile(&none, 0.5, &v, &e) == EW_EDEGENERATE, "empty");
  ew__qs_free(&small), ew__qs_free(&all), ew__qs_free(&one), ew__qs_free(&none);
  free(x), free(sorted);
}

/* Loads bytes into an empty sketch of k: the error code and the sentence. */
static int load_bytes(const buf_t *src, size_t k, char *msg, size_t cap, ew__qsketch_t *out) {
  buf_t b = *src;
  b.off = 0;
  ew__qs_init(out, k);
  ew__rd_t r = {.fn = buf_read, .ctx = &b, .msg = msg, .cap = cap};
  msg[0] = 0;
  ew__qs_load(out, &r, "tTOK");
  return r.err;
}

/* The saved form: written, read back and written again the bytes are the same and every answer
 * is; another k, a level as full as k, a value that is not finite and weights that do not add up
 * to the tokens it says are each refused with a sentence naming the section. */
static void quantile_sketch_saved_form(void) {
  ew__bytes_init();
  const size_t n = 50000, k = 512;
  double *x = malloc(n * sizeof *x);
  for (size_t i = 0; i < n; i++)
    x[i] = -log(uniform() + 1e-300);
  ew__qsketch_t a, b;
  ew__qs_init(&a, k);
  ew__qs_add(&a, x, n);
  buf_t one = {0}, two = {0};
  ew__wr_t w = {.fn = buf_write, .ctx = &one};
  ew__qs_save(&a, &w);
  CHECK(w.err == 0 && one.len == ew__qs_saved_len(&a), "%zu bytes, saved_len %llu", one.len,
        (unsigned long long)ew__qs_saved_len(&a));
  char msg[256];
  CHECK(load_bytes(&one, k, msg, sizeof msg, &b) == 0, "load: %s", msg);
  ew__wr_t w2 = {.fn = buf_write, .ctx = &two};
  ew__qs_save(&b, &w2);
  CHECK(two.len == one.len && memcmp(one.p, two.p, one.len) == 0, "saved again, same bytes");
  for (int l = 0; l <= 10; l++) {
    double va, ea, vb, eb;
    ew__qs_quantile(&a, l / 10.0, &va, &ea);
    ew__qs_quantile(&b, l / 10.0, &vb, &eb);
    CHECK(va == vb && ea == eb, "level %d", l);
  }
  ew__qs_free(&b);
  CHECK(load_bytes(&one, k + 2, msg, sizeof msg, &b) == EW_ESTATE && strstr(msg, "tTOK") &&
            strstr(msg, "k = 512"), "another k: %s", msg);
  ew__qs_free(&b);
  buf_t bad = {malloc(one.len), one.len, one.len, 0};
  memcpy(bad.p, one.p, one.len);
  uint64_t n1 = n + 1;
  memcpy(bad.p + 8, &n1, 8); /* says one more token than its values weigh */
  CHECK(load_bytes(&bad, k, msg, sizeof msg, &b) == EW_ESTATE && strstr(msg, "weigh"), "%s", msg);
  ew__qs_free(&b);
  memcpy(bad.p, one.p, one.len);
  double nan = NAN;
  memcpy(bad.p + 8 * 4 + 16, &nan, 8); /* the first value of level 0 */
  CHECK(load_bytes(&bad, k, msg, sizeof msg, &b) == EW_ESTATE && strstr(msg, "not finite"), "%s",
        msg);
  ew__qs_free(&b);
  memcpy(bad.p, one.p, one.len);
  uint64_t full = k;
  memcpy(bad.p + 8 * 4 + 8, &full, 8); /* level 0 as full as k */
  CHECK(load_bytes(&bad, k, msg, sizeof msg, &b) == EW_ESTATE && strstr(msg, "level 0"), "%s",
        msg);
  ew__qs_free(&b);
  ew__qs_free(&a);
  free(bad.p), free(one.p), free(two.p), free(x);
}

/* ---- acc/tokens_sort.c against qsort ---- */

/* A value that is exactly an f32: random magnitudes over the whole f32 range, both signs, ±0,
 * subnormal floats, ±FLT_MAX, ±FLT_TRUE_MIN, small integers (ties). */
static double f32_value(void) {
  double u = uniform(), s = uniform() < 0.5 ? -1.0 : 1.0;
  int pick = (int)(uniform() * 10);
  switch (pick) {
  case 0: return s * 0.0;
  case 1: return (double)(float)(s * ldexp(uniform(), -126 - (int)(uniform() * 23))); /* subnormal */
  case 2: return s * (double)FLT_MAX;
  case 3: return s * (double)FLT_TRUE_MIN;
  case 4: return s * floor(uniform() * 8); /* ties */
  default: return (double)(float)(s * ldexp(u, (int)(uniform() * 250) - 125));
  }
}

/* A value of a column that is not all f32: random doubles of every magnitude, ±1e300, −1e-300,
 * double denormals, ±0, ±DBL_MAX, and duplicates drawn from a pool of 16. */
static double f64_value(const double *pool) {
  double s = uniform() < 0.5 ? -1.0 : 1.0;
  int pick = (int)(uniform() * 12);
  switch (pick) {
  case 0: return 1e300;
  case 1: return -1e-300;
  case 2: return s * ldexp(uniform(), -1074 + (int)(uniform() * 50)); /* denormal doubles */
  case 3: return s * 0.0;
  case 4: return s * DBL_MAX;
  case 5: return -1e300;
  case 6: case 7: return pool[(int)(uniform() * 16)]; /* many duplicates */
  default: return s * ldexp(uniform(), (int)(uniform() * 2000) - 1000);
  }
}

/* Sorts a copy of x[0, n) with ew__tok_sort (tmp: n doubles) and, when every value is exact in
 * f32, its floats with ew__tok_sort_f32 (else the second sort is ew__tok_sort's again), and
 * compares both with qsort element by element (−0.0 == 0.0), and the count of −0.0 kept (a sort
 * permutes: the bits of every value survive). Returns the mismatches. */
static int sorts_match_qsort(const double *x, size_t n, const char *what) {
  double *ref = malloc((n + 1) * sizeof *ref), *a = malloc((n + 1) * sizeof *a),
         *b = malloc((n + 1) * sizeof *b), *tmp = malloc((n + 1) * sizeof *tmp);
  if (n)
    memcpy(ref, x, n * sizeof *x), memcpy(a, x, n * sizeof *x), memcpy(b, x, n * sizeof *x);
  qsort(ref, n, sizeof *ref, cmp);
  ew__tok_sort(a, n, tmp);
  bool narrow = true;
  for (size_t i = 0; i < n && narrow; i++)
    narrow = (double)(float)x[i] == x[i];
  float *fx = malloc((n + 1) * sizeof *fx), *fo = malloc((n + 1) * sizeof *fo);
  for (size_t i = 0; i < n; i++)
    fx[i] = (float)x[i];
  if (narrow) {
    ew__tok_sort_f32(fx, n, fo, tmp);
    for (size_t i = 0; i < n; i++)
      b[i] = fo[i];
  } else if (n) {
    memcpy(b, a, n * sizeof *a);
  }
  free(fx), free(fo);
  size_t nz_in = 0, nz_a = 0, nz_b = 0, bad_a = 0, bad_b = 0, first_a = n, first_b = n;
  for (size_t i = 0; i < n; i++) {
    nz_in += x[i] == 0 && signbit(x[i]);
    nz_a += a[i] == 0 && signbit(a[i]);
    nz_b += b[i] == 0 && signbit(b[i]);
    if (a[i] != ref[i] && bad_a++ == 0)
      first_a = i;
    if (b[i] != ref[i] && bad_b++ == 0)
      first_b = i;
  }
  CHECK(bad_a == 0, "%s n=%zu: ew__tok_sort differs from qsort at %zu places, first [%zu]: %.17g "
        "vs %.17g", what, n, bad_a, first_a, first_a < n ? a[first_a] : 0, first_a < n ? ref[first_a] : 0);
  CHECK(bad_b == 0, "%s n=%zu: ew__tok_sort_f32 differs from qsort at %zu places, first [%zu]: "
        "%.17g vs %.17g", what, n, bad_b, first_b, first_b < n ? b[first_b] : 0,
        first_b < n ? ref[first_b] : 0);
  CHECK(nz_a == nz_in && nz_b == nz_in, "%s n=%zu: -0.0 count %zu in, %zu / %zu out", what, n,
        nz_in, nz_a, nz_b);
  free(ref), free(a), free(b), free(tmp);
  return (int)(bad_a + bad_b);
}

/* ew__tok_sort (both key widths) and ew__tok_sort_f32 equal qsort on n = 0, 1, 2, 3, 100,
 * 1e5: values all exactly f32 (32-bit keys) and values that are not (64-bit keys: one f64 value
 * last, after f32 ones, as well as throughout), and the patterns that defeat naive quicksorts
 * (sorted, reversed, all equal, organ pipe, two values) and skip radix passes (one shared byte). */
static void tok_sort_equals_qsort(void) {
  const size_t ns[] = {0, 1, 2, 3, 100, 100000};
  double pool[16];
  for (int i = 0; i < 16; i++)
    pool[i] = (uniform() - 0.5) * 1e10 + 0.1;
  for (size_t t = 0; t < sizeof ns / sizeof *ns; t++) {
    size_t n = ns[t];
    double *x = malloc((n + 1) * sizeof *x);
    for (int rep = 0; rep < (n < 100 ? 50 : 3); rep++) {
      for (size_t i = 0; i < n; i++)
        x[i] = f32_value();
      sorts_match_qsort(x, n, "f32-exact");
      for (size_t i = 0; i < n; i++)
        x[i] = f64_value(pool);
      sorts_match_qsort(x, n, "not f32-exact");
      if (n) { /* f32-exact but the last: the sort learns it needs 64-bit keys at the end */
        for (size_t i = 0; i < n; i++)
          x[i] = f32_value();
        x[n - 1] = 0.1;
        sorts_match_qsort(x, n, "f32-exact but the last");
      }
    }
    for (int f64 = 0; f64 < 2; f64++) {
      double off = f64 ? 0.1 : 0; /* 0.1 is not an f32: 64-bit keys */
      for (size_t i = 0; i < n; i++)
        x[i] = (double)i + off;
      sorts_match_qsort(x, n, f64 ? "sorted f64" : "sorted f32");
      for (size_t i = 0; i < n; i++)
        x[i] = (double)(n - i) - off;
      sorts_match_qsort(x, n, f64 ? "reversed f64" : "reversed f32");
      for (size_t i = 0; i < n; i++)
        x[i] = 3 + off;
      sorts_match_qsort(x, n, f64 ? "all equal f64" : "all equal f32");
      for (size_t i = 0; i < n; i++)
        x[i] = (double)(i < n / 2 ? i : n - i) + off;
      sorts_match_qsort(x, n, f64 ? "organ pipe f64" : "organ pipe f32");
      for (size_t i = 0; i < n; i++)
        x[i] = (uniform() < 0.5 ? -1.0 : 2.0) + off;
      sorts_match_qsort(x, n, f64 ? "two values f64" : "two values f32");
      for (size_t i = 0; i < n; i++) /* only the lowest byte differs: 7 of 8 passes skipped */
        x[i] = f64 ? ldexp(1.0 + ldexp((double)(int)(uniform() * 256), -52), 10)
                   : ldexp(1.0 + ldexp((double)(int)(uniform() * 256), -23), 10);
      sorts_match_qsort(x, n, f64 ? "low byte f64" : "low byte f32");
      for (size_t i = 0; i < n; i++) /* only the sign differs */
        x[i] = (uniform() < 0.5 ? -1.5 : 1.5) * (f64 ? 1.1 : 1);
      sorts_match_qsort(x, n, f64 ? "sign only f64" : "sign only f32");
      for (size_t i = 0; i < n; i++) /* ±0.0 only */
        x[i] = uniform() < 0.5 ? -0.0 : 0.0;
      if (f64 && n)
        x[n / 2] = 5e-324;
      sorts_match_qsort(x, n, f64 ? "zeros and a denormal" : "zeros");
    }
    free(x);
  }
}

/* ---- ew__qs_add_sorted: sorted runs compacted straight to their level ---- */

/* Adds src[0, n) in runs: run sizes from `runs` (cycled), each run a contiguous chunk of src,
 * sorted (src itself sorted: consecutive chunks of the sorted array, each above the last; else
 * each chunk sorted as a step's is), levels reserved first. tmp_is_v: the run's own copy serves
 * as tmp (overwritten). */
static void add_in_runs(ew__qsketch_t *q, const double *src, size_t n, const size_t *runs,
                        size_t nruns, int tmp_is_v) {
  double *run = malloc(n * sizeof *run), *tmp = malloc((n / 2 + 1) * sizeof *tmp);
  size_t at = 0, r = 0;
  while (at < n) {
    size_t m = runs[r++ % nruns];
    m = m < n - at ? m : n - at;
    memcpy(run, src + at, m * sizeof *run);
    qsort(run, m, sizeof *run, cmp);
    CHECK(ew__qs_reserve(q, m) == 0, "reserve");
    CHECK(ew__qs_add_sorted(q, run, m, tmp_is_v ? run : tmp) == 0, "add_sorted");
    at += m;
  }
  free(run), free(tmp);
}

/* The sketch's invariants and its answers: n counted, every level below k, the weights Σ
 * len[h]·2^h adding to n (and the saved form reading back: ew__qs_load checks the same), and at
 * 50 levels the answer's true rank in sorted[0, n) (an interval: #{< v} .. #{≤ v} − 1) within
 * rank_err·n of level·(n − 1), the answer one of the values added. */
static void sketch_answers_within_error(const ew__qsketch_t *q, const double *sorted, size_t n,
                                        const char *what) {
  CHECK(q->n == n, "%s: n %llu, want %zu", what, (unsigned long long)q->n, n);
  double weight = 0;
  int full = -1;
  for (int h = 0; h < EW__QS_LEVELS; h++) {
    weight += ldexp((double)q->len[h], h);
    if (q->len[h] >= q->k && full < 0)
      full = h;
    if (h > q->top)
      CHECK(q->len[h] == 0, "%s: level %d above top %d holds %zu", what, h, q->top, q->len[h]);
  }
  CHECK(weight == (double)n, "%s: weights add to %.17g, want %zu", what, weight, n);
  CHECK(full < 0, "%s: level %d holds %zu >= k = %zu values", what, full, full < 0 ? 0 : q->len[full], q->k);
  buf_t b = {0};
  ew__wr_t w = {.fn = buf_write, .ctx = &b};
  ew__qs_save(q, &w);
  char msg[256] = "";
  ew__qsketch_t back;
  ew__qs_init(&back, q->k);
  ew__rd_t r = {.fn = buf_read, .ctx = &b, .msg = msg, .cap = sizeof msg};
  ew__qs_load(&back, &r, "tTOK");
  CHECK(r.err == 0 && back.n == n, "%s: the saved form does not load: %s", what, msg);
  ew__qs_free(&back);
  free(b.p);
  int bad = 0;
  double worst = 0, stated = 0;
  for (int l = 0; l < 50; l++) {
    double level = l / 49.0, v = NAN, e = NAN;
    CHECK(ew__qs_quantile(q, level, &v, &e) == 0, "%s: quantile", what);
    double want = level * (double)(n - 1);
    double dist = rank_distance(sorted, n, v, want);
    size_t lo = 0, hi = n; /* v is one of the values added */
    while (lo < hi) {
      size_t mid = (lo + hi) / 2;
      if (sorted[mid] < v)
        lo = mid + 1;
      else
        hi = mid;
    }
    CHECK(lo < n && sorted[lo] == v, "%s: level %g answers %.17g, not a value added", what, level, v);
    if (!(dist <= e * (double)n * (1 + 1e-12))) {
      if (bad++ < 5)
        CHECK(0, "%s: level %g answers %.17g whose rank is %.0f off %.1f; stated %.3g·n = %.1f",
              what, level, v, dist, want, e, e * (double)n);
    }
    worst = dist / (double)n > worst ? dist / (double)n : worst;
    stated = e > stated ? e : stated;
  }
  CHECK(bad == 0, "%s: %d of 50 levels outside their stated error", what, bad);
  printf("# %s: k = %zu, err %.0f, rank error at most %.2e of n, stated up to %.2e\n", what, q->k,
         q->err, worst, stated);
}

/* 1e6 random doubles added as sorted runs: one run of 1e6; 1000 runs of 1000; runs of k − 1, k
 * and k + 1 (k = 4096, the tokens stream's, and k = 64, compacting at every level many times);
 * chunks of the sorted array (each run above the last) and of the shuffled one (each run sorted,
 * as a step is); tmp its own buffer or the run itself. */
static void qs_add_sorted_within_error(void) {
  const size_t n = 1000000;
  double *x = malloc(n * sizeof *x), *sorted = malloc(n * sizeof *sorted);
  for (size_t i = 0; i < n; i++) /* skewed, signs, ties in a tenth */
    x[i] = i % 10 == 0 ? floor(uniform() * 20) : -log(uniform() + 1e-300) * (uniform() < 0.3 ? -1 : 3);
  memcpy(sorted, x, n * sizeof *x);
  qsort(sorted, n, sizeof *sorted, cmp);
  const size_t ks[] = {4096, 64};
  for (int ki = 0; ki < 2; ki++) {
    size_t k = ks[ki];
    struct {
      const char *name;
      size_t runs[3], nruns;
    } plans[] = {{"one run of 1e6", {1000000}, 1},
                 {"1000 runs of 1000", {1000}, 1},
                 {"runs of k-1", {k - 1}, 1},
                 {"runs of k", {k}, 1},
                 {"runs of k+1", {k + 1}, 1},
                 {"runs of k-1, k, k+1", {k - 1, k, k + 1}, 3}};
    for (size_t p = 0; p < sizeof plans / sizeof *plans; p++)
      for (int src_sorted = 0; src_sorted < 2; src_sorted++) {
        int tmp_is_v = (int)((p + (size_t)src_sorted) & 1);
        char what[160];
        snprintf(what, sizeof what, "k=%zu %s of the %s array, tmp %s", k, plans[p].name,
                 src_sorted ? "sorted" : "shuffled", tmp_is_v ? "= v" : "apart");
        ew__qsketch_t q;
        ew__qs_init(&q, k);
        add_in_runs(&q, src_sorted ? sorted : x, n, plans[p].runs, plans[p].nruns, tmp_is_v);
        sketch_answers_within_error(&q, sorted, n, what);
        ew__qs_free(&q);
      }
  }
  /* runs after values added one by one (level 0 partly full when a run arrives), and merged */
  ew__qsketch_t q, o;
  ew__qs_init(&q, 64);
  ew__qs_init(&o, 64);
  CHECK(ew__qs_add(&q, x, 1000) == 0, "add");
  const size_t mixed[] = {63, 1, 65, 4000, 7};
  add_in_runs(&o, x + 1000, n - 1000, mixed, 5, 0);
  CHECK(ew__qs_reserve_merge(&q, &o) == 0 && ew__qs_merge(&q, &o) == 0, "merge");
  sketch_answers_within_error(&q, sorted, n, "k=64 1000 added, then runs merged in");
  ew__qs_free(&q), ew__qs_free(&o);
  free(x), free(sorted);
}

/* Prepare refuses f64 tokens of magnitude 2^128 or more so that no sum can overflow: M2 =
 * Σd² − (Σd)²/n with d = x − (the first block's mean), and Chan's d·d·na·nb/n, stay finite and
 * exact for a batch whose first block of 512 is −c and whose next 10^4 tokens are +c, c just under
 * the bound (a bound of 2^500 once let (Σd)² overflow after ~2e3 tokens: std 0, a co-moment −inf)
 * and for a merge of 2^40 tokens at −c with 2^40 at +c. The reference: two passes in long
 * double. */
static void tacc_sums_near_the_bound(void) {
  const double cs[] = {0x1.fffffffffffffp127, 1e38};
  for (int t = 0; t < 2; t++) {
    double c = cs[t];
    size_t n = 512 + (t ? 10000 : 4000);
    double *x = malloc(n * sizeof *x);
    for (size_t i = 0; i < n; i++)
      x[i] = i < 512 ? -c : c;
    ew__tacc_t acc;
    ew__tacc_start(&acc, 2);
    for (size_t i0 = 0; i0 < n; i0 += 512) {
      size_t k = n - i0 < 512 ? n - i0 : 512;
      const double *v[2] = {x + i0, x + i0};
      CHECK(ew__tacc_block(&acc, v, k) == -1, "block at %zu refused", i0);
    }
    ew__tall_t out;
    ew__tacc_finish(&acc, &out);
    long double m = 0, m2 = 0;
    for (size_t i = 0; i < n; i++)
      m += x[i];
    m /= (long double)n;
    for (size_t i = 0; i < n; i++)
      m2 += ((long double)x[i] - m) * ((long double)x[i] - m);
    CHECK(out.sum[0].n == n, "n");
    CHECK(tap_relerr(out.sum[0].mean, (double)m) < 1e-12, "c = %g: mean %.17g, want %.17g", c,
          out.sum[0].mean, (double)m);
    CHECK(tap_relerr(out.sum[0].m2, (double)m2) < 1e-12,
          "c = %g, 512 × -c then %zu × +c: M2 %.17g, want %.17g (token_std %g, want %g)",
          c, n - 512, out.sum[0].m2, (double)m2, sqrt(out.sum[0].m2 / (double)n),
          (double)sqrtl(m2 / (long double)n));
    CHECK(tap_relerr(out.co[0][1].c, (double)m2) < 1e-12,
          "c = %g: the co-moment of the column with itself %.17g, want %.17g", c,
          out.co[0][1].c, (double)m2);
    free(x);
  }
  /* Chan's merge of 2^40 tokens at −c with 2^40 at +c: M2 = (2c)² 2^39 */
  double c = 0x1.fffffffffffffp127;
  ew__tsum_t a = {1ull << 40, -c, 0, -c, -c}, b = {1ull << 40, c, 0, c, c};
  ew__tsum_merge(&a, &b);
  long double want = (2.0L * c) * (2.0L * c) * 0x1p39L;
  CHECK(isfinite(a.m2) && tap_relerr(a.m2, (double)want) < 1e-12,
        "Chan's merge of 2^40 × -c and 2^40 × +c: M2 %.17g, want %.17Lg", a.m2, want);
  ew__tco_t p = {1ull << 40, -c, -c, 0}, q = {1ull << 40, c, c, 0};
  ew__tco_merge(&p, &q);
  CHECK(isfinite(p.c) && tap_relerr(p.c, (double)want) < 1e-12,
        "the co-moment merge of the same: C %.17g, want %.17Lg", p.c, want);
}

int main(void) {
  TAP_RUN(union_not_mean_of_rank_means);
  TAP_RUN(clip_cov_covariance_merges);
  TAP_RUN(verl_aggregation_modes);
  TAP_RUN(window_entropy);
  TAP_RUN(random_draws_equal_the_direct_statement);
  TAP_RUN(quantile_sketch_merges_with_a_certified_rank_error);
  TAP_RUN(quantile_sketch_saved_form);
  TAP_RUN(tok_sort_equals_qsort);
  TAP_RUN(qs_add_sorted_within_error);
  TAP_RUN(tacc_sums_near_the_bound);
  TAP_DONE();
}
