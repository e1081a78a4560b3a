/* acc/tokens_sketch.c — the quantile summary of every token a tokens stream has seen (its `all`
 * view), mergeable across ranks, steps and daemons with a certified rank error.
 *
 * A hierarchy of compactors (Manku, Rajagopalan & Lindsay, SIGMOD 1998; the deterministic
 * skeleton of KLL): level h holds values of weight 2^h. When a level reaches k values it is sorted
 * and every other value (alternating the first kept between compactions) moves up a level with
 * twice the weight; an odd one out stays. One compaction at level h moves any value's estimated
 * rank by at most 2^h, so the sum of 2^h over the compactions made (`err`, carried through
 * merges, which add) bounds |estimated rank − true rank| for every value at once. A quantile is
 * the stored value whose cumulative weight first reaches the asked rank; its true rank is within
 * err + (its own weight) of the asked one, returned as a share of n. Until the first compaction
 * every value is held and the answer is numpy's `linear` quantile, exactly. */
#include "tokens.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

int ew__qs_init(ew__qsketch_t *q, size_t k) {
  memset(q, 0, sizeof *q);
  q->k = k < 8 ? 8 : k + (k & 1); /* even: a compaction halves a full level exactly */
  return 0;
}

void ew__qs_free(ew__qsketch_t *q) {
  for (int h = 0; h < EW__QS_LEVELS; h++)
    free(q->buf[h]);
  memset(q, 0, sizeof *q);
}

size_t ew__qs_bytes(const ew__qsketch_t *q) {
  size_t b = 0;
  for (int h = 0; h < EW__QS_LEVELS; h++)
    b += q->buf[h] ? q->k * sizeof(double) : 0;
  return b;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

/* Room for one more value at level h (allocated on first use). */
static int level_ready(ew__qsketch_t *q, int h) {
  if (!q->buf[h] && !(q->buf[h] = malloc(q->k * sizeof(double))))
    return EW_ENOMEM;
  return 0;
}

/* Compacts level h while it is full, carrying upward. */
static int settle(ew__qsketch_t *q, int h) {
  for (; h < EW__QS_LEVELS - 1 && q->len[h] >= q->k; h++) {
    int rc = level_ready(q, h + 1);
    if (rc)
      return rc;
    qsort(q->buf[h], q->len[h], sizeof(double), cmp_double);
    size_t keep = q->len[h] & 1; /* an odd one out stays at this level */
    size_t pairs = q->len[h] / 2, off = q->flip[h] ? 1 : 0;
    for (size_t i = 0; i < pairs; i++) {
      if (q->len[h + 1] >= q->k) { /* the level above filled while carrying: settle it first */
        if ((rc = settle(q, h + 1)) != 0)
          return rc;
      }
      q->buf[h + 1][q->len[h + 1]++] = q->buf[h][keep + 2 * i + off];
    }
    q->len[h] = keep; /* the smallest, when the count was odd, stays at buf[h][0] */
    q->flip[h] = !q->flip[h];
    q->err += ldexp(1.0, h);
    if (h + 1 > q->top)
      q->top = h + 1;
  }
  return 0;
}

/* Levels 0..L ready, L the first level past at_least whose values (2^(L−1) each, k of them
 * before a compaction) would outweigh `total` tokens. */
static int levels_for(ew__qsketch_t *q, uint64_t total, int at_least) {
  int top = at_least;
  while (top < EW__QS_LEVELS - 1 && ldexp((double)q->k, top - 1) <= (double)total)
    top++;
  for (int h = 0; h <= top; h++)
    if (level_ready(q, h) != 0)
      return EW_ENOMEM;
  return 0;
}

int ew__qs_reserve(ew__qsketch_t *q, uint64_t more) {
  return levels_for(q, q->n + more, q->top + 1);
}

int ew__qs_reserve_merge(ew__qsketch_t *q, const ew__qsketch_t *o) {
  return levels_for(q, q->n + o->n, (q->top > o->top ? q->top : o->top) + 1);
}

int ew__qs_add(ew__qsketch_t *q, const double *x, size_t n) {
  int rc = level_ready(q, 0);
  for (size_t i = 0; i < n && rc == 0; i++) {
    q->buf[0][q->len[0]++] = x[i];
    q->n++;
    if (q->len[0] >= q->k)
      rc = settle(q, 0);
  }
  return rc;
}

/* Puts x at level h, compacting it (and what carries) when it fills. */
static int put(ew__qsketch_t *q, int h, double x) {
  q->buf[h][q->len[h]++] = x;
  if (h > q->top)
    q->top = h;
  return q->len[h] >= q->k ? settle(q, h) : 0;
}

/* Adds the sorted run[0, m) at level h: compacted while it holds k or more, as a full level is
 * (its smallest staying when the count is odd), without being copied into the level first — every
 * compaction moves a rank by at most 2^h, as settle's do. tmp: m/2 doubles, or run itself. */
static int add_run(ew__qsketch_t *q, const double *run, size_t m, int h, double *tmp) {
  int rc = 0;
  while (m >= q->k && h < EW__QS_LEVELS - 1 && rc == 0) {
    size_t keep = m & 1, pairs = m / 2, off = q->flip[h] ? 1 : 0;
    if (keep)
      rc = put(q, h, run[0]);
    for (size_t i = 0; i < pairs; i++)
      tmp[i] = run[keep + 2 * i + off]; /* forward: tmp may be run itself */
    q->flip[h] = !q->flip[h];
    q->err += ldexp(1.0, h);
    run = tmp;
    m = pairs;
    h++;
  }
  for (size_t i = 0; i < m && rc == 0; i++)
    rc = put(q, h, run[i]);
  return rc;
}

int ew__qs_add_sorted(ew__qsketch_t *q, const double *v, size_t n, double *tmp) {
  int rc = add_run(q, v, n, 0, tmp);
  q->n += n;
  return rc;
}

int ew__qs_add_sorted_f32(ew__qsketch_t *q, const float *v, size_t n, double *tmp) {
  int rc = 0;
  if (n < q->k) {
    for (size_t i = 0; i < n && rc == 0; i++)
      rc = put(q, 0, v[i]);
  } else { /* the first compaction reads the floats; the rest is add_run's */
    size_t keep = n & 1, pairs = n / 2, off = q->flip[0] ? 1 : 0;
    if (keep)
      rc = put(q, 0, v[0]);
    for (size_t i = 0; i < pairs; i++)
      tmp[i] = v[keep + 2 * i + off];
    q->flip[0] = !q->flip[0];
    q->err += 1;
    if (rc == 0)
      rc = add_run(q, tmp, pairs, 1, tmp);
  }
  q->n += n;
  return rc;
}

int ew__qs_merge(ew__qsketch_t *q, const ew__qsketch_t *o) {
  for (int h = 0; h <= o->top && h < EW__QS_LEVELS; h++) {
    for (size_t i = 0; i < o->len[h]; i++) {
      int rc = level_ready(q, h);
      if (rc)
        return rc;
      q->buf[h][q->len[h]++] = o->buf[h][i];
      if (h > q->top)
        q->top = h;
      if (q->len[h] >= q->k && (rc = settle(q, h)) != 0)
        return rc;
    }
  }
  q->n += o->n;
  q->err += o->err;
  return 0;
}

typedef struct {
  double v, w;
} wv_t;

static int cmp_wv(const void *a, const void *b) {
  double x = ((const wv_t *)a)->v, y = ((const wv_t *)b)->v;
  return (x > y) - (x < y);
}

int ew__qs_quantile(const ew__qsketch_t *q, double level, double *value, double *rank_err) {
  if (q->n == 0)
    return EW_EDEGENERATE;
  size_t m = 0;
  for (int h = 0; h <= q->top; h++)
    m += q->len[h];
  if (q->err == 0) { /* nothing compacted: every value is held, numpy's answer exactly */
    double *w = malloc(m * sizeof *w);
    if (!w)
      return EW_ENOMEM;
    memcpy(w, q->buf[0], m * sizeof *w);
    *value = ew__tok_quantile(w, m, level);
    *rank_err = 0;
    free(w);
    return 0;
  }
  wv_t *a = malloc(m * sizeof *a);
  if (!a)
    return EW_ENOMEM;
  size_t at = 0;
  for (int h = 0; h <= q->top; h++)
    for (size_t i = 0; i < q->len[h]; i++)
      a[at++] = (wv_t){q->buf[h][i], ldexp(1.0, h)};
  qsort(a, m, sizeof *a, cmp_wv);
  double want = level * (double)(q->n - 1), cum = 0, maxw = 0;
  size_t i = 0;
  for (; i < m - 1; i++) { /* the value whose cumulative weight passes the asked rank */
    cum += a[i].w;
    if (cum > want)
      break;
  }
  for (size_t j = 0; j < m; j++)
    maxw = a[j].w > maxw ? a[j].w : maxw;
  *value = a[i].v;
  *rank_err = (q->err + maxw) / (double)q->n;
  free(a);
  return 0;
}

/* ---- the saved form: u64 k, u64 n, f64 err, u64 top, then per level 0..top: u64 flip, u64 len,
 * len f64 values ---- */

uint64_t ew__qs_saved_len(const ew__qsketch_t *q) {
  uint64_t b = 8 * 4;
  for (int h = 0; h <= q->top; h++)
    b += 16 + 8 * (uint64_t)q->len[h];
  return b;
}

void ew__qs_save(const ew__qsketch_t *q, ew__wr_t *w) {
  ew__put_u64(w, q->k);
  ew__put_u64(w, q->n);
  ew__put_f64(w, q->err);
  ew__put_u64(w, (uint64_t)q->top);
  for (int h = 0; h <= q->top; h++) {
    ew__put_u64(w, q->flip[h]);
    ew__put_u64(w, q->len[h]);
    if (q->len[h])
      ew__put(w, q->buf[h], q->len[h] * sizeof(double));
  }
}

void ew__qs_load(ew__qsketch_t *q, ew__rd_t *r, const char *sec) {
  uint64_t k = ew__get_u64(r), n = ew__get_u64(r);
  double err = ew__get_f64(r);
  uint64_t top = ew__get_u64(r);
  if (r->err)
    return;
  if (k != q->k || top >= EW__QS_LEVELS || !(err >= 0 && err <= 0x1p64)) {
    ew__rd_failf(r, "section %s holds a quantile sketch of k = %llu, %llu levels and error %g: "
                 "this stream's has k = %zu, at most %d levels and a finite error", sec,
                 (unsigned long long)k, (unsigned long long)top + 1, err, q->k, EW__QS_LEVELS);
    return;
  }
  double weight = 0; /* compactions keep the weight: the values' weights add up to n */
  for (int h = 0; h <= (int)top && !r->err; h++) {
    uint64_t flip = ew__get_u64(r), len = ew__get_u64(r);
    if (r->err)
      return;
    if (flip > 1 || len >= q->k || level_ready(q, h) != 0) {
      ew__rd_failf(r, "section %s's quantile sketch level %d holds %llu values (fewer than k = "
                   "%zu fit) or a bad flag", sec, h, (unsigned long long)len, q->k);
      return;
    }
    ew__get(r, q->buf[h], (size_t)len * sizeof(double));
    for (uint64_t i = 0; i < len && !r->err; i++)
      if (!isfinite(q->buf[h][i]))
        ew__rd_failf(r, "section %s's quantile sketch holds a value that is not finite", sec);
    q->flip[h] = flip != 0;
    q->len[h] = (size_t)len;
    weight += ldexp((double)len, h);
  }
  if (!r->err && weight != (double)n)
    ew__rd_failf(r, "section %s's quantile sketch says %llu tokens but its values weigh %.17g",
                 sec, (unsigned long long)n, weight);
  if (!r->err) {
    q->n = n;
    q->err = err;
    q->top = (int)top;
  }
}
