/* moments.c — the exact accumulator: total weight W, mean μ and centred co-moment M2, all f64.
 *
 * Batches arrive in the "shifted" form (ew__bstats_t): a shift m close to the batch mean, the
 * shifted sum s = Σ w_r (x_r − m) and Gram G = Σ w_r (x_r − m)(x_r − m)ᵀ. Then
 *     μ_b = m + s/W_b,   M2_b = G − s sᵀ/W_b,
 * and the batch joins the state by the Chan et al. pairwise merge
 *     M2 ← M2 + M2_b + (W_a W_b / W) δδᵀ,  δ = μ_b − μ_a,  μ ← μ_a + δ W_b / W.
 * Why the shift: the Gram is formed from x − m, small numbers near the data's spread, so that
 * data sitting far from the origin lose nothing to ‖μ‖²; s sᵀ/W_b then repairs the leftover
 * offset (m is the mean rounded, not the mean). The naive Σxxᵀ/n − μμᵀ loses ‖μ‖²/λ_min of
 * precision (8% error measured) and is not used.
 *
 * Why f64 for every dtype: f32/f16/bf16 rows are centred in f64 (exactly, for unscaled rows: the
 * shift is the mean rounded to f32) and their Gram formed by dsyrk. An f32 Gram (ssyrk, until
 * wave 3) carried rounding of 2⁻²⁴·tr G: a diagonal bias of 5e-7 at offset 1e4 on one CPU and
 * not another, and a noise floor that zeroed real eigenvalues (6–9 of Fashion-MNIST's 784, a
 * condition number off by 99.5%). In f64 the same cases agree with numpy to 1e-13 at about
 * 0.6 of the f32 Gram's ingest rate.
 *
 * The noise floor: a batch Gram carries rounding error of order u·tr(G) (u = 2⁻⁵³), growing
 * slowly with the rows summed. Each batch reports a bound, noise = 2 (1 + sqrt(n/1024)) u tr(G)
 * (about 16 times the largest error measured on collapsed data in f32, where it was visible);
 * the state adds them up (un-merges too: their rounding does not cancel), and queries treat
 * eigenvalues at or below noise/W, or at the eigensolver's own round-off, as zero
 * (view/spectrum.c).
 *
 * Only the upper triangle of M2 (column-major) is maintained; the merge loop runs down columns so
 * the compiler vectorises it.
 *
 * The two kinds built on moments alone, dense (every row, exact) and decay (every weight times
 * γ = 2^(-1/half-life) per row), are dense.c. This file knows nothing of streams, windows or
 * queries. */
#include "moments.h"

#include <cblas.h>
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

int ew__moments_init(ew__moments_t *m, size_t d) {
  memset(m, 0, sizeof *m);
  m->d = d;
  m->mean = calloc(d, sizeof(double));
  m->m2 = calloc(d * d, sizeof(double));
  if (!m->mean || !m->m2) {
    ew__moments_free(m);
    return EW_ENOMEM;
  }
  return 0;
}

void ew__moments_free(ew__moments_t *m) {
  free(m->mean);
  free(m->m2);
  m->mean = m->m2 = NULL;
}

void ew__moments_clear(ew__moments_t *m) {
  m->n = 0;
  m->w = 0;
  m->noise = 0;
  memset(m->mean, 0, m->d * sizeof(double));
  memset(m->m2, 0, m->d * m->d * sizeof(double));
  m->full = false;
}

void ew__moments_copy(ew__moments_t *m, const ew__moments_t *o) {
  size_t d = m->d;
  m->n = o->n;
  m->w = o->w;
  m->noise = o->noise;
  m->full = o->full;
  memcpy(m->mean, o->mean, d * sizeof(double));
  memcpy(m->m2, o->m2, d * d * sizeof(double));
}

size_t ew__moments_bytes(const ew__moments_t *m) { return (m->d + m->d * m->d) * sizeof(double); }

/* M2[:, j] (rows 0..j) += G[:, j] + a_j s + c_j δ, sign applied to the whole update. */
static void update_upper(ew__moments_t *m, const ew__bstats_t *b, const double *delta, double coef,
                         double sign) {
  size_t d = m->d;
  m->full = false;
  double inv_wb = 1.0 / b->w;
  for (size_t j = 0; j < d; j++) {
    double *col = m->m2 + j * d;
    double aj = -b->s[j] * inv_wb;
    double cj = coef * delta[j];
    const double *s = b->s;
    const double *g = b->g + j * d;
    for (size_t i = 0; i <= j; i++)
      col[i] += sign * (g[i] + aj * s[i] + cj * delta[i]);
  }
}

void ew__moments_add(ew__moments_t *m, const ew__bstats_t *b, ew__ws_t *ws) {
  size_t d = m->d;
  if (b->n == 0 || b->w <= 0)
    return;
  double wa = m->w, wb = b->w, w = wa + wb;
  ew__ws_mark_t mk = ew__ws_mark(ws);
  double *delta = ew__ws_alloc(ws, 2 * d * sizeof(double)); /* reserved: EW__MOMENTS_WS */
  double coef = wa > 0 ? wa * wb / w : 0.0;
  for (size_t j = 0; j < d; j++)
    delta[j] = (b->shift[j] + b->s[j] / wb) - (wa > 0 ? m->mean[j] : 0.0);
  update_upper(m, b, delta, coef, 1.0);
  for (size_t j = 0; j < d; j++)
    m->mean[j] = wa > 0 ? m->mean[j] + delta[j] * (wb / w) : b->shift[j] + b->s[j] / wb;
  m->n += b->n;
  m->w = w;
  m->noise += b->noise;
  ew__ws_release(ws, mk);
}

void ew__moments_sub(ew__moments_t *m, const ew__bstats_t *b, ew__ws_t *ws) {
  size_t d = m->d;
  if (b->n == 0)
    return;
  if (b->n >= m->n) {
    ew__moments_clear(m);
    return;
  }
  double w = m->w, wb = b->w, wa = w - wb;
  ew__ws_mark_t mk = ew__ws_mark(ws);
  double *delta = ew__ws_alloc(ws, 2 * d * sizeof(double)); /* reserved: EW__MOMENTS_WS */
  double *mua = delta + d;
  for (size_t j = 0; j < d; j++) {
    double mub = b->shift[j] + b->s[j] / wb;
    mua[j] = (w * m->mean[j] - wb * mub) / wa;
    delta[j] = mub - mua[j];
  }
  update_upper(m, b, delta, wa * wb / w, -1.0);
  memcpy(m->mean, mua, d * sizeof(double));
  m->n -= b->n;
  m->w = wa;
  m->noise += b->noise;
  ew__ws_release(ws, mk);
}

void ew__moments_merge(ew__moments_t *m, const ew__moments_t *o) {
  size_t d = m->d;
  if (o->n == 0)
    return;
  m->full = false;
  if (m->n == 0) {
    m->n = o->n;
    m->w = o->w;
    m->noise = o->noise;
    memcpy(m->mean, o->mean, d * sizeof(double));
    for (size_t j = 0; j < d; j++)
      memcpy(m->m2 + j * d, o->m2 + j * d, (j + 1) * sizeof(double));
    return;
  }
  double wa = m->w, wb = o->w, w = wa + wb, coef = wa * wb / w;
  for (size_t j = 0; j < d; j++) {
    double dj = coef * (o->mean[j] - m->mean[j]);
    double *col = m->m2 + j * d;
    const double *oc = o->m2 + j * d;
    for (size_t i = 0; i <= j; i++)
      col[i] += oc[i] + dj * (o->mean[i] - m->mean[i]);
  }
  for (size_t j = 0; j < d; j++)
    m->mean[j] += (o->mean[j] - m->mean[j]) * (wb / w);
  m->n += o->n;
  m->w = w;
  m->noise += o->noise;
}

void ew__moments_scale(ew__moments_t *m, double g) {
  size_t d = m->d;
  if (g == 1.0 || m->n == 0)
    return;
  m->full = false;
  m->w *= g;
  m->noise *= g;
  for (size_t j = 0; j < d; j++) {
    double *col = m->m2 + j * d;
    for (size_t i = 0; i <= j; i++)
      col[i] *= g;
  }
}

void ew__moments_matrix_upper(const ew__moments_t *m, int center, double *A) {
  size_t d = m->d;
  double inv = m->w > 0 ? 1.0 / m->w : 0.0;
  for (size_t j = 0; j < d; j++) {
    const double *src = m->m2 + j * d;
    double *dst = A + j * d, mj = center ? 0.0 : m->mean[j];
    for (size_t i = 0; i <= j; i++)
      dst[i] = src[i] * inv + m->mean[i] * mj;
  }
}

void ew__moments_matrix(const ew__moments_t *m, int center, double *A) {
  size_t d = m->d;
  ew__moments_matrix_upper(m, center, A);
  for (size_t j = 0; j < d; j++) /* mirror, a block of columns at a time for locality */
    for (size_t i = 0; i < j; i++)
      A[j + i * d] = A[i + j * d];
}

/* ---- batch statistics ---- */

double ew__noise_bound(uint64_t n, double unit, double trace) {
  return 2.0 * (1.0 + sqrt((double)n / 1024.0)) * unit * trace;
}

double ew__moments_trace(const ew__moments_t *m) {
  double t = 0;
  for (size_t j = 0; j < m->d; j++)
    t += m->m2[j * m->d + j];
  return t;
}

static void bstats_out(ew__bstats_t *out, size_t d, size_t n, double w, const double *shift,
                       const double *s, const double *g) {
  double tr = 0;
  for (size_t j = 0; j < d; j++)
    tr += g[j * d + j];
  *out = (ew__bstats_t){.d = d, .n = n, .w = w, .shift = shift, .s = s, .g = g,
                        .noise = ew__noise_bound(n, 0x1p-53, tr)};
}

/* Shared body: blocks[] of rows (row-major, f32 or f64), optional weights and scale factors over
 * their concatenation. Rows are centred in f64 EW__GRAM_BLOCK at a time into one temporary and
 * each block's Gram joins g by dsyrk (β = 1 after the first), so the temporary stays at
 * EW__GRAM_BLOCK·d doubles whatever the batch.
 *
 * The shift is the batch mean computed in f64; for unscaled f32 rows it is then rounded to f32, so
 * that x − shift is exact in f64 (the difference of two f32 values whose exponents differ by at
 * most 28 fits in 53 bits): the centred values, the shifted sum and the Gram see every bit the
 * producer sent, and the Gram's only error is dsyrk's own (unit 2⁻⁵³). Scaled (L2) and f64 rows
 * are centred on the f64 mean, rounding each centred value once at 2⁻⁵³. */
static int bstats_blocks(const void *const *blk, const size_t *nb, int nblk, bool f64, size_t d,
                         const double *weights, const double *scale, double *shift, double *s,
                         double *g, ew__ws_t *ws, ew__bstats_t *out) {
  size_t n = 0;
  for (int k = 0; k < nblk; k++)
    n += nb[k];
  size_t cap = n < EW__GRAM_BLOCK ? n : EW__GRAM_BLOCK;
  ew__ws_mark_t mk = ew__ws_mark(ws);
  double *c = ew__ws_alloc(ws, (cap ? cap : 1) * d * sizeof(double));
  if (!c)
    return EW_ENOMEM;
  memset(shift, 0, d * sizeof(double));
  size_t row = 0;
  for (int k = 0; k < nblk; k++)
    for (size_t r = 0; r < nb[k]; r++, row++) {
      double f = scale ? scale[row] : 1.0, *restrict sh = shift;
      if (f64) {
        const double *restrict x = (const double *)blk[k] + r * d;
        for (size_t j = 0; j < d; j++)
          sh[j] += x[j];
      } else {
        const float *restrict x = (const float *)blk[k] + r * d;
        for (size_t j = 0; j < d; j++)
          sh[j] += f * x[j];
      }
    }
  for (size_t j = 0; j < d; j++) {
    shift[j] /= (double)n;
    if (!f64 && !scale)
      shift[j] = (float)shift[j];
  }
  memset(s, 0, d * sizeof(double));
  double wsum = 0, beta = 0.0;
  size_t held = 0; /* rows centred into c, not yet in g */
  row = 0;
  for (int k = 0; k < nblk; k++)
    for (size_t r = 0; r < nb[k]; r++, row++) {
      double *restrict cr = c + held * d, *restrict sv = s;
      const double *restrict sh = shift;
      double wr = weights ? weights[row] : 1.0, f = scale ? scale[row] : 1.0;
      if (f64) {
        const double *restrict x = (const double *)blk[k] + r * d;
        for (size_t j = 0; j < d; j++)
          cr[j] = x[j] - sh[j];
      } else if (scale) {
        const float *restrict x = (const float *)blk[k] + r * d;
        for (size_t j = 0; j < d; j++)
          cr[j] = f * x[j] - sh[j];
      } else {
        const float *restrict x = (const float *)blk[k] + r * d;
        for (size_t j = 0; j < d; j++)
          cr[j] = (double)x[j] - sh[j];
      }
      if (weights) {
        double sq = sqrt(wr);
        for (size_t j = 0; j < d; j++) {
          sv[j] += wr * cr[j];
          cr[j] *= sq;
        }
      } else {
        for (size_t j = 0; j < d; j++)
          sv[j] += cr[j];
      }
      wsum += wr;
      if (++held == cap || row + 1 == n) {
        cblas_dsyrk(CblasColMajor, CblasUpper, CblasNoTrans, (int)d, (int)held, 1.0, c, (int)d,
                    beta, g, (int)d);
        beta = 1.0;
        held = 0;
      }
    }
  bstats_out(out, d, n, wsum, shift, s, g);
  ew__ws_release(ws, mk);
  return 0;
}

int ew__bstats_f32(const float *rows, size_t n, size_t d, const double *weights,
                   const double *scale, double *shift, double *s, double *g, ew__ws_t *ws,
                   ew__bstats_t *out) {
  const void *blk[1] = {rows};
  size_t nb[1] = {n};
  return bstats_blocks(blk, nb, 1, false, d, weights, scale, shift, s, g, ws, out);
}

int ew__bstats_f32_2(const float *a, size_t na, const float *b, size_t nb_, size_t d, double *shift,
                     double *s, double *g, ew__ws_t *ws, ew__bstats_t *out) {
  const void *blk[2] = {a, b};
  size_t nb[2] = {na, nb_};
  return bstats_blocks(blk, nb, nb_ ? 2 : 1, false, d, NULL, NULL, shift, s, g, ws, out);
}

int ew__bstats_f64(const double *rows, size_t n, size_t d, const double *weights, double *shift,
                   double *s, double *g, ew__ws_t *ws, ew__bstats_t *out) {
  const void *blk[1] = {rows};
  size_t nb[1] = {n};
  return bstats_blocks(blk, nb, 1, true, d, weights, NULL, shift, s, g, ws, out);
}

/* ---- what a loaded state's numbers may be (core/core.h, EW__ROWS_MAX): moments ---- */

#define ROW_MAX ((double)FLT_MAX)           /* the largest row magnitude ingest accepts */
#define M2_PER_WEIGHT (4.0 * ROW_MAX * ROW_MAX) /* (2·FLT_MAX)²: a centred square's largest */

/* A loaded MOMENTS block is one some ingest could have produced (the reading rules:
 * state/state_priv.h). */
int ew__check_moments(ew__rd_t *r, const ew__moments_t *m, const char *sec) {
  if (r->err)
    return r->err;
  size_t d = m->d;
  if (m->n > EW__ROWS_MAX)
    return ew__rd_failf(r, "section %s counts %llu rows, more than 2^53 (the most rows a state "
                        "describes: f64 weights count rows exactly only that far)", sec,
                        (unsigned long long)m->n);
  if (!(m->w >= 0) || m->w > (double)m->n * (1 + 1e-9) || (m->n == 0) != (m->w == 0))
    return ew__rd_failf(r, "section %s holds a weight of %g for %llu rows: a weight is finite, "
                        "positive when there are rows, 0 when there are none, and at most the "
                        "row count", sec, m->w, (unsigned long long)m->n);
  double dmax = m->w * M2_PER_WEIGHT * 1.01;
  if (!(m->noise >= 0) || !(m->noise <= dmax * (double)d + 1))
    return ew__rd_failf(r, "section %s holds a noise bound of %g: it is finite, non-negative and "
                        "at most the largest possible trace", sec, m->noise);
  if (ew__check_f64s(r, m->mean, d, ROW_MAX * 1.0001, sec, "a mean"))
    return r->err;
  /* the diagonal: finite, at most W·(2·FLT_MAX)², and not below zero by more than rounding */
  double top = 0;
  for (size_t j = 0; j < d; j++) {
    double x = m->m2[j * d + j];
    if (!(fabs(x) <= dmax + m->noise))
      return ew__rd_failf(r, "section %s holds an M2 diagonal of %g (coordinate %zu) for a "
                          "weight of %g: a co-moment of rows ingest accepts is finite and at "
                          "most %.3g", sec, x, j, m->w, dmax + m->noise);
    top = fmax(top, x);
  }
  double tol = 4 * m->noise + 1e-6 * top;
  for (size_t j = 0; j < d; j++)
    if (m->m2[j * d + j] < -tol)
      return ew__rd_failf(r, "section %s holds a negative M2 diagonal, %g (coordinate %zu), "
                          "beyond its rounding bound %g: a co-moment's diagonal is a sum of "
                          "squares", sec, m->m2[j * d + j], j, tol);
  /* off the diagonal: Cauchy–Schwarz with room for rounding twice over (a positive
   * semidefinite matrix has |M_ij| ≤ √(M_ii M_jj)) */
  for (size_t j = 0; j < d; j++) {
    double sj = sqrt(fabs(m->m2[j * d + j]) + m->noise);
    const double *col = m->m2 + j * d;
    for (size_t i = 0; i < j; i++) {
      double si = sqrt(fabs(m->m2[i * d + i]) + m->noise);
      if (!(fabs(col[i]) <= 2 * si * sj + 2 * m->noise))
        return ew__rd_failf(r, "section %s holds M2[%zu][%zu] = %g, beyond what its diagonal "
                            "allows (|M2_ij| <= sqrt(M2_ii M2_jj)): not a co-moment", sec, i, j,
                            col[i]);
    }
  }
  return 0;
}

/* ---- the saved form ---- */

uint64_t ew__moments_saved_len(size_t d) { return 8 + 8 + 8 + d * 8 + d * (d + 1) / 2 * 8; }

void ew__moments_save(const ew__moments_t *m, ew__wr_t *w) {
  ew__put_u64(w, m->n);
  ew__put_f64(w, m->w);
  ew__put_f64(w, m->noise);
  ew__put(w, m->mean, m->d * sizeof(double));
  for (size_t j = 0; j < m->d; j++) /* the upper triangle, column by column */
    ew__put(w, m->m2 + j * m->d, (j + 1) * sizeof(double));
}

void ew__moments_load(ew__moments_t *m, ew__rd_t *r) {
  m->full = false;
  m->n = ew__get_u64(r);
  m->w = ew__get_f64(r);
  m->noise = ew__get_f64(r);
  ew__get(r, m->mean, m->d * sizeof(double));
  for (size_t j = 0; j < m->d; j++)
    ew__get(r, m->m2 + j * m->d, (j + 1) * sizeof(double));
}

#define EW__MIRROR_TILE 32 /* measured at d = 4096: 23 ms (64: 25 ms; the other loop order 43) */

void ew__moments_mirror(ew__moments_t *m) {
  if (m->full)
    return;
  size_t d = m->d, T = EW__MIRROR_TILE;
  double *a = m->m2;
  /* tile by tile, so that the columns read stay in cache while each lower column is written
   * contiguously */
  for (size_t j0 = 0; j0 < d; j0 += T)
    for (size_t i0 = 0; i0 <= j0; i0 += T) {
      size_t j1 = j0 + T < d ? j0 + T : d, i1 = i0 + T < d ? i0 + T : d;
      for (size_t i = i0; i < i1; i++)
        for (size_t j = i + 1 > j0 ? i + 1 : j0; j < j1; j++)
          a[j + i * d] = a[i + j * d];
    }
  m->full = true;
}
