/* view/spectrum.c — every eigenvalue of a view's matrix, and the stream's cache of them (one slot
 * per source and centring, answering while the stream is unchanged and the query's max_lag
 * allows). The route: the dual n×n Gram when the rows are held and fewer than d (a window,
 * window_cn, or all rows while the window holds every one), else the d×d matrix (of the moments,
 * or ZᵀZ/N for window_cn); the eigenvalues at the rounding floor — the moments' accumulated
 * noise/W plus the eigensolver's own round-off — are then zero. */
#include "view_priv.h"

#include <cblas.h>
#include <stdlib.h>
#include <string.h>

/* Eigenvalues of the N×N Gram X Xᵀ / N of rows X (N×d), zero-padded to d, descending. */
static int gram_eigs(const double *X, size_t N, size_t d, double *eig, ew__ws_t *ws) {
  ew__ws_mark_t mk = ew__ws_mark(ws);
  double *G = ew__ws_alloc(ws, N * N * sizeof(double));
  if (!G)
    return EW_ENOMEM;
  cblas_dsyrk(CblasColMajor, CblasUpper, CblasTrans, (int)N, (int)d, 1.0 / (double)N, X, (int)d,
              0.0, G, (int)N);
  int rc = ew__eigvals(G, N, eig, ws);
  for (size_t i = N; i < d; i++)
    eig[i] = 0.0;
  ew__ws_release(ws, mk);
  return rc;
}

#define EW__GRAM_CB 256 /* columns per block of the dual Gram */

/* Eigenvalues of the N×N Gram X Xᵀ / N of the window's rows (centred when center), zero-padded to
 * d, descending: the Gram accumulated over blocks of EW__GRAM_CB columns converted to f64, so
 * the rows are never copied whole (N·d·8 bytes: 128 MiB for 1024 rows at d = 16384). */
static int rows_gram_eigs(ew_stream_t *s, int center, ew__ws_t *ws, double *eig) {
  ew__src_t sv;
  size_t d = s->d;
  int rc = ew__view_source(s, EW_SOURCE_WINDOW, EW__WANT_ROWS, &sv, ws);
  if (rc)
    return rc;
  size_t N = sv.nseg[0] + sv.nseg[1];
  ew__ws_mark_t mk = ew__ws_mark(ws);
  double *G = ew__ws_alloc(ws, (N ? N * N : 1) * sizeof(double));
  double *mu = G ? ew__ws_alloc(ws, d * sizeof(double)) : NULL;
  double *B = mu ? ew__ws_alloc(ws, (N ? N : 1) * EW__GRAM_CB * sizeof(double)) : NULL;
  if (!B) {
    ew__ws_release(ws, mk);
    return EW_ENOMEM;
  }
  ew__view_rows_mean(&sv, d, center, mu);
  for (size_t j0 = 0; j0 < d; j0 += EW__GRAM_CB) {
    size_t cb = d - j0 < EW__GRAM_CB ? d - j0 : EW__GRAM_CB;
    for (int k = 0, r0 = 0; k < 2; r0 += (int)sv.nseg[k], k++)
      for (size_t r = 0; r < sv.nseg[k]; r++)
        for (size_t j = 0; j < cb; j++)
          B[((size_t)r0 + r) * cb + j] = sv.seg[k][r * d + j0 + j] - mu[j0 + j];
    /* B row-major N×cb is column-major cb×N: G += Bᵀ B over this block */
    cblas_dsyrk(CblasColMajor, CblasUpper, CblasTrans, (int)N, (int)cb, 1.0 / (double)N, B,
                (int)cb, j0 ? 1.0 : 0.0, G, (int)N);
  }
  rc = ew__eigvals(G, N, eig, ws);
  for (size_t i = N; i < d; i++)
    eig[i] = 0.0;
  ew__ws_release(ws, mk);
  return rc;
}

/* Eigenvalues of a source (descending, clamped), from the cache when its lag is within max_lag.
 * On success *eig points into the stream's cache (valid until the next call on this stream).
 * Uses the dual n×n Gram when the source's rows are held in the window and n < d. Temporaries
 * come from ws and are given back. */
static int spectrum(ew_stream_t *s, ew_source_t src, int center, uint64_t max_lag, ew__ws_t *ws,
                    const double **eig, size_t *clamped, uint64_t *as_of, double *floor_out) {
  size_t d = s->d;
  center = (src == EW_SOURCE_WINDOW_CN) ? 0 : (center ? 1 : 0);
  if (!ew__stream_acc(s, src))
    return EW_ENOWINDOW;
  ew__spec_cache_t *c = &s->cache[src][center];
  uint64_t tail = src == EW_SOURCE_ALL ? 0 : s->tail;
  if (c->valid && c->epoch == s->epoch && c->tail == tail && s->count - c->as_of <= max_lag) {
    *eig = c->eig;
    *clamped = c->clamped;
    *as_of = c->as_of;
    if (floor_out)
      *floor_out = c->floor;
    return 0;
  }
  ew__src_t sv;
  int rc = ew__view_source(s, src, 0, &sv, ws);
  if (rc)
    return rc;
  if (sv.rows == 0)
    return EW_EDEGENERATE;
  if (!c->eig && !(c->eig = malloc(d * sizeof(double))))
    return EW_ENOMEM;
  c->valid = false;
  ew__ws_mark_t mk = ew__ws_mark(ws);
  double floor = 0; /* rows read from the ring are exact in f64: no accumulated noise */
  size_t solved = d; /* the order of the matrix the eigensolver saw */
  if (src == EW_SOURCE_WINDOW_CN) {
    double *Z;
    size_t N;
    if ((rc = ew__view_window_cn(s, ws, &Z, &N)) == 0) {
      if (N < d) {
        rc = gram_eigs(Z, N, d, c->eig, ws);
        solved = N;
      } else {
        double *A = ew__ws_alloc(ws, d * d * sizeof(double));
        rc = A ? 0 : EW_ENOMEM;
        if (A) {
          cblas_dsyrk(CblasColMajor, CblasUpper, CblasNoTrans, (int)d, (int)N, 1.0 / (double)N,
                      Z, (int)d, 0.0, A, (int)d);
          rc = ew__eigvals(A, d, c->eig, ws);
        }
      }
    }
  } else if ((src == EW_SOURCE_WINDOW || ew__stream_all_in_window(s)) &&
             (src == EW_SOURCE_WINDOW ? sv.rows : ew_stream_window_count(s)) < d) {
    /* dual route: the N×N Gram has the same nonzero spectrum and costs O(N²d + N³) */
    rc = rows_gram_eigs(s, center, ws, c->eig);
    solved = src == EW_SOURCE_WINDOW ? (size_t)sv.rows : (size_t)ew_stream_window_count(s);
  } else {
    double *A = ew__ws_alloc(ws, d * d * sizeof(double));
    rc = A ? ew__view_source(s, src, EW__WANT_MOMENTS, &sv, ws) : EW_ENOMEM;
    if (rc == 0) {
      ew__moments_matrix_upper(sv.mom, center, A);
      rc = ew__eigvals(A, d, c->eig, ws);
      floor = sv.mom->w > 0 ? sv.mom->noise / sv.mom->w : 0.0;
    }
  }
  ew__ws_release(ws, mk);
  if (rc != 0)
    return rc;
  /* Negative eigenvalues, those at the accumulated rounding noise (moments.c), and those at the
   * eigensolver's own round-off are zero. dsyevd returns the eigenvalues of A + E with
   * ‖E‖₂ ≲ p(n)·u·‖A‖₂; an eigenvalue within n·u·λ₁ of zero is that round-off, not spectrum
   * (uncentred constant rows: 31 "eigenvalues" near 1e-15·λ₁, a spectral gap of 4e15). */
  double top = 0;
  for (size_t i = 0; i < d; i++)
    top = c->eig[i] > top ? c->eig[i] : top;
  floor += EW__EIG_ROUNDOFF * (double)solved * 0x1p-53 * top;
  size_t neg = 0;
  for (size_t i = 0; i < d; i++)
    if (c->eig[i] < 0 || (c->eig[i] > 0 && c->eig[i] <= floor)) {
      c->eig[i] = 0;
      neg++;
    }
  c->clamped = neg;
  c->floor = floor;
  c->tail = tail;
  c->as_of = s->count;
  c->epoch = s->epoch;
  c->valid = true;
  *eig = c->eig;
  *clamped = neg;
  *as_of = c->as_of;
  if (floor_out)
    *floor_out = floor;
  return 0;
}

int ew__view_spectrum(ew__view_t *v, const double **eig, size_t *clamped, double *err) {
  if (v->sk) /* a sketch has no exact spectrum: ew__view_sketch_bounds */
    return EW_EBADPARAM;
  if (!v->eig) {
    int rc = spectrum(v->s, v->src, v->center, v->max_lag, v->ws, &v->eig, &v->clamped,
                      &v->as_of, &v->floor);
    if (rc)
      return rc;
  }
  *eig = v->eig;
  if (clamped)
    *clamped = v->clamped;
  if (err) /* the eigenvalues carry the accumulated rounding bound and the solver's round-off */
    *err = v->floor;
  return 0;
}

bool ew__view_small_route(ew__view_t *v) {
  ew_stream_t *s = v->s;
  if (v->sk)
    return false;
  if (v->src == EW_SOURCE_WINDOW_CN)
    return ew_stream_window_count(s) < v->d;
  if (v->src == EW_SOURCE_WINDOW)
    return v->rows < v->d;
  return ew__stream_all_in_window(s) && ew_stream_window_count(s) < v->d;
}

bool ew__view_spectrum_cached(ew__view_t *v) {
  if (v->eig)
    return true;
  if (v->sk)
    return false;
  ew_stream_t *s = v->s;
  const ew__spec_cache_t *c = &s->cache[v->src][v->center];
  uint64_t tail = v->src == EW_SOURCE_ALL ? 0 : s->tail;
  return c->valid && c->epoch == s->epoch && c->tail == tail && s->count - c->as_of <= v->max_lag;
}
