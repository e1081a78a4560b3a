/* acc/tokens_reduce.c — the reductions of acc/tokens.h over a view's tokens in f64, and reading a
 * column as sent (ew__tok_gather). Sums are compensated (Neumaier), so a step of millions of tokens
 * keeps numpy float64's digits; ew__tok_quantile and the covariance top are selections (Hoare
 * partitions about a median of three: expected O(n), deterministic); a view's exact quantiles
 * read its column sorted (tokens_sort.c, ew__tok_quantile_sorted). A batch's sums on ingest are
 * tokens_sums.c's. */
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
