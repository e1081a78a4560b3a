/* view.c — what metrics read. A view is one source of one stream — every row (or the decayed
 * state), the window's rows, or the window's rows centred then L2-normalised — seen as one
 * symmetric d×d matrix A (C = M2/W when centred, S = C + μμᵀ when not, ZᵀZ/N for window_cn),
 * reached only through the functions below: trace, ‖A‖_F², the diagonal, all eigenvalues with
 * their error bound, the top-k eigenpairs with a residual bound, A·x, and the raw rows where the
 * source keeps them. Metrics (metrics.c) never read an accumulator's fields, so a new kind of
 * state adds its branch here and none in any metric. This file also owns the spectrum cache. */
#include "ew_internal.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- sources ---- */

/* What the accumulator behind src offers (moments and/or rows, per want). Asking a window for its
 * moments records the ask (the AUTO window mode then maintains them eagerly). */
static int source(ew_stream_t *s, ew_source_t src, int want, ew__src_t *out, ew__ws_t *ws) {
  ew__acc_t *a = ew__stream_acc(s, src);
  if (!a)
    return EW_ENOWINDOW;
  if (src != EW_SOURCE_ALL && (want & EW__WANT_MOMENTS))
    ew__stream_window_asked(s);
  return a->ops->view(a, want, src == EW_SOURCE_ALL ? 0 : s->tail, out, ws);
}

/* The rows of a source that keeps them, as f64 (N×d) followed by their mean (d doubles, always
 * computed), in ws; the rows are centred on it when center. */
static int rows_f64(ew_stream_t *s, ew_source_t src, int center, ew__ws_t *ws, double **Xp,
                    size_t *Np) {
  ew__src_t sv;
  int rc = source(s, src, EW__WANT_ROWS, &sv, ws);
  if (rc)
    return rc;
  if (!sv.keeps_rows)
    return EW_ENOWINDOW;
  size_t N = sv.nseg[0] + sv.nseg[1], d = s->d;
  double *X = ew__ws_alloc(ws, (N * d + d) * sizeof(double));
  if (!X)
    return EW_ENOMEM;
  double *mu = X + N * d;
  memset(mu, 0, d * sizeof(double));
  for (int k = 0, r0 = 0; k < 2; r0 += (int)sv.nseg[k], k++)
    for (size_t r = 0; r < sv.nseg[k]; r++)
      for (size_t j = 0; j < d; j++) {
        double x = sv.seg[k][r * d + j];
        X[((size_t)r0 + r) * d + j] = x;
        mu[j] += x;
      }
  for (size_t j = 0; j < d; j++)
    mu[j] /= (double)(N ? N : 1);
  if (center)
    for (size_t r = 0; r < N; r++)
      for (size_t j = 0; j < d; j++)
        X[r * d + j] -= mu[j];
  *Xp = X;
  *Np = N;
  return 0;
}

/* The window's rows centred over the window then L2-normalised (f64, N×d, in ws), followed by the
 * window mean; a row equal to the mean stays zero (and still counts in N). */
static int window_cn(ew_stream_t *s, ew__ws_t *ws, double **Zp, size_t *Np) {
  size_t N, d = s->d;
  double *Z;
  int rc = rows_f64(s, EW_SOURCE_WINDOW, 1, ws, &Z, &N);
  if (rc != 0)
    return rc;
  for (size_t r = 0; r < N; r++) {
    double *z = Z + r * d, nrm = 0;
    for (size_t j = 0; j < d; j++)
      nrm += z[j] * z[j];
    if (nrm > 0) {
      double inv = 1.0 / sqrt(nrm);
      for (size_t j = 0; j < d; j++)
        z[j] *= inv;
    }
  }
  *Zp = Z;
  *Np = N;
  return 0;
}

static int matrix_impl(ew_stream_t *s, ew_source_t src, int center, double *weight, double *mean,
                       double *A, ew__ws_t *ws) {
  size_t d = s->d;
  if (src == EW_SOURCE_ALL || src == EW_SOURCE_WINDOW) {
    ew__src_t sv;
    int rc = source(s, src, EW__WANT_MOMENTS, &sv, ws);
    if (rc)
      return rc;
    if (sv.sketch) { /* the sketch's matrix: BᵀB/W (+ μμᵀ), within Δ/W below the exact one */
      const ew__sketch_t *k = sv.sketch;
      if (k->w == 0)
        return EW_EDEGENERATE;
      if (weight)
        *weight = k->w;
      if (mean)
        memcpy(mean, k->mean, d * sizeof(double));
      if (A) {
        cblas_dsyrk(CblasColMajor, CblasUpper, CblasNoTrans, (int)d, (int)k->nb, 1.0 / k->w, k->B,
                    (int)d, 0.0, A, (int)d);
        if (!center)
          cblas_dsyr(CblasColMajor, CblasUpper, (int)d, 1.0, k->mean, 1, A, (int)d);
        for (size_t j = 0; j < d; j++)
          for (size_t i = 0; i < j; i++)
            A[j + i * d] = A[i + j * d];
      }
      return 0;
    }
    const ew__moments_t *m = sv.mom;
    if (m->n == 0)
      return EW_EDEGENERATE;
    if (weight)
      *weight = m->w;
    if (mean)
      memcpy(mean, m->mean, d * sizeof(double));
    if (A)
      ew__moments_matrix(m, center, A);
    return 0;
  }
  if (src != EW_SOURCE_WINDOW_CN)
    return EW_EBADPARAM;
  if (!ew__stream_acc(s, src))
    return EW_ENOWINDOW;
  if (ew_stream_window_count(s) == 0)
    return EW_EDEGENERATE;
  double *Z;
  size_t N;
  int rc = window_cn(s, ws, &Z, &N);
  if (rc != 0)
    return rc;
  if (weight)
    *weight = (double)N;
  if (mean)
    memcpy(mean, Z + N * d, d * sizeof(double));
  if (A) {
    cblas_dsyrk(CblasColMajor, CblasUpper, CblasNoTrans, (int)d, (int)N, 1.0 / (double)N, Z,
                (int)d, 0.0, A, (int)d);
    for (size_t j = 0; j < d; j++)
      for (size_t i = 0; i < j; i++)
        A[j + i * d] = A[i + j * d];
  }
  return 0;
}

EW_EXPORT int ew_stream_matrix(ew_stream_t *s, ew_source_t src, int center, double *weight,
                               double *mean, double *A) {
  if (src != EW_SOURCE_ALL && src != EW_SOURCE_WINDOW && src != EW_SOURCE_WINDOW_CN)
    return EW_EBADPARAM;
  ew__ws_t *ws = ew__ws_thread();
  if (!ws)
    return EW_ENOMEM;
  ew__ws_mark_t mk = ew__ws_begin(ws);
  int rc = matrix_impl(s, src, center, weight, mean, A, ws);
  ew__stream_ws_used(s, ew__ws_end(ws, mk));
  return rc;
}

EW_EXPORT size_t ew_stream_live_vectors(const ew_stream_t *s, double *out, size_t cap_k) {
  return s->has_live ? ew__rop_vectors(&s->live, out, cap_k) : 0;
}

size_t ew__view_live(ew__view_t *v, double *out, size_t cap_k, uint64_t *consumed, size_t *kept) {
  const ew_stream_t *s = v->s;
  *kept = s->has_live ? s->live.k : 0;
  *consumed = s->has_live ? s->live.seen : 0;
  return s->has_live ? ew__rop_vectors(&s->live, out, cap_k) : 0;
}

/* ---- spectra ---- */

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
    return 0;
  }
  ew__src_t sv;
  int rc = source(s, src, 0, &sv, ws);
  if (rc)
    return rc;
  if (sv.rows == 0)
    return EW_EDEGENERATE;
  if (!c->eig && !(c->eig = malloc(d * sizeof(double))))
    return EW_ENOMEM;
  c->valid = false;
  ew__ws_mark_t mk = ew__ws_mark(ws);
  double floor = 0; /* rows read from the ring are exact in f64: no accumulated noise */
  if (src == EW_SOURCE_WINDOW_CN) {
    double *Z;
    size_t N;
    if ((rc = window_cn(s, ws, &Z, &N)) == 0) {
      if (N < d) {
        rc = gram_eigs(Z, N, d, c->eig, ws);
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
    double *X;
    size_t N;
    if ((rc = rows_f64(s, EW_SOURCE_WINDOW, center, ws, &X, &N)) == 0)
      rc = gram_eigs(X, N, d, c->eig, ws);
  } else {
    double *A = ew__ws_alloc(ws, d * d * sizeof(double));
    rc = A ? source(s, src, EW__WANT_MOMENTS, &sv, ws) : EW_ENOMEM;
    if (rc == 0) {
      ew__moments_matrix_upper(sv.mom, center, A);
      rc = ew__eigvals(A, d, c->eig, ws);
      floor = sv.mom->w > 0 ? sv.mom->noise / sv.mom->w : 0.0;
    }
  }
  ew__ws_release(ws, mk);
  if (rc != 0)
    return rc;
  /* negative eigenvalues, and those at the accumulated rounding noise (moments.c), are zero */
  size_t neg = 0;
  for (size_t i = 0; i < d; i++)
    if (c->eig[i] < 0 || (c->eig[i] > 0 && c->eig[i] <= floor)) {
      c->eig[i] = 0;
      neg++;
    }
  c->clamped = neg;
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

/* ---- the view ---- */

/* The moments behind a moment-based source (all, window). */
static int moments_of(ew__view_t *v, const ew__moments_t **m) {
  ew__src_t sv;
  int rc = source(v->s, v->src, EW__WANT_MOMENTS, &sv, v->ws);
  *m = rc == 0 ? sv.mom : NULL;
  return rc;
}

int ew__view_open(ew__view_t *v, ew_stream_t *s, ew_source_t src, int center, uint64_t max_lag,
                  uint64_t tail, ew__ws_t *ws) {
  memset(v, 0, sizeof *v);
  s->tail = src == EW_SOURCE_ALL ? 0 : tail;
  v->s = s;
  v->ws = ws;
  v->mark = ew__ws_begin(ws);
  v->open = true;
  v->src = src;
  v->center = src == EW_SOURCE_WINDOW_CN ? 0 : (center ? 1 : 0);
  v->max_lag = max_lag;
  v->d = s->d;
  v->as_of = s->count;
  if (src < 0 || src >= EW__NSRC)
    return EW_EBADPARAM;
  ew__src_t sv;
  int rc = source(s, src, 0, &sv, ws);
  if (rc)
    return rc;
  v->rows = sv.rows;
  v->weight = sv.weight;
  if (src == EW_SOURCE_ALL && ew__acc_is_sketch(ew__stream_acc(s, src))) {
    if ((rc = source(s, src, EW__WANT_MOMENTS, &sv, ws)) != 0)
      return rc;
    v->sk = sv.sketch;
  }
  return 0;
}

void ew__view_close(ew__view_t *v) {
  if (!v->open)
    return;
  v->open = false;
  v->s->tail = 0;
  ew__stream_ws_used(v->s, ew__ws_end(v->ws, v->mark));
}

int ew__view_spectrum(ew__view_t *v, const double **eig, size_t *clamped, double *err) {
  if (v->sk) /* a sketch has no exact spectrum: ew__view_sketch_bounds */
    return EW_EBADPARAM;
  if (!v->eig) {
    int rc = spectrum(v->s, v->src, v->center, v->max_lag, v->ws, &v->eig, &v->clamped,
                      &v->as_of, NULL);
    if (rc)
      return rc;
  }
  *eig = v->eig;
  if (clamped)
    *clamped = v->clamped;
  if (err) { /* eigenvalues of a moment source carry the accumulated rounding bound */
    const ew__moments_t *m = NULL;
    if (v->src != EW_SOURCE_WINDOW_CN && moments_of(v, &m) != 0)
      m = NULL;
    *err = m && m->w > 0 ? m->noise / m->w : 0.0;
  }
  return 0;
}

int ew__view_trace_fro2(ew__view_t *v, double *tr, double *fro2) {
  size_t d = v->d;
  if (v->sk) { /* tr exact; ‖A‖_F² is not known from a sketch */
    if (fro2)
      return EW_EBADPARAM;
    return ew__view_trace(v, tr);
  }
  if (v->src == EW_SOURCE_WINDOW_CN || v->eig) { /* from the spectrum (consistent with it) */
    const double *w;
    int rc = ew__view_spectrum(v, &w, NULL, NULL);
    if (rc)
      return rc;
    double t = 0, f = 0;
    for (size_t i = 0; i < d; i++) {
      t += w[i];
      f += w[i] * w[i];
    }
    *tr = t;
    if (fro2)
      *fro2 = f;
    return 0;
  }
  const ew__moments_t *m;
  int rc = moments_of(v, &m);
  if (rc)
    return rc;
  double inv = 1.0 / m->w, t = 0, off = 0, diag = 0;
  for (size_t j = 0; j < d; j++) {
    const double *col = m->m2 + j * d;
    double mj = v->center ? 0.0 : m->mean[j];
    if (fro2)
      for (size_t i = 0; i < j; i++) {
        double a = col[i] * inv + (v->center ? 0.0 : m->mean[i] * mj);
        off += a * a;
      }
    double a = col[j] * inv + mj * mj;
    diag += a * a;
    t += a;
  }
  *tr = t;
  if (fro2)
    *fro2 = diag + 2.0 * off;
  v->as_of = v->s->count;
  return 0;
}

int ew__view_trace(ew__view_t *v, double *tr) {
  if (v->src == EW_SOURCE_WINDOW_CN)
    return ew__view_trace_fro2(v, tr, NULL);
  if (v->sk) {
    const ew__sketch_t *k = v->sk;
    double t = 0;
    for (size_t j = 0; j < v->d; j++)
      t += k->dm2[j] / k->w + (v->center ? 0.0 : k->mean[j] * k->mean[j]);
    *tr = t;
    v->as_of = v->s->count;
    return 0;
  }
  const ew__moments_t *m;
  int rc = moments_of(v, &m);
  if (rc)
    return rc;
  double t = 0;
  for (size_t j = 0; j < v->d; j++)
    t += m->m2[j + j * v->d] / m->w + (v->center ? 0.0 : m->mean[j] * m->mean[j]);
  *tr = t;
  v->as_of = v->s->count;
  return 0;
}

int ew__view_diag(ew__view_t *v, double *diag) {
  size_t d = v->d;
  if (v->src == EW_SOURCE_WINDOW_CN) {
    ew__ws_mark_t mk = ew__ws_mark(v->ws);
    double *Z;
    size_t N;
    int rc = window_cn(v->s, v->ws, &Z, &N);
    if (rc == 0) {
      memset(diag, 0, d * sizeof(double));
      for (size_t r = 0; r < N; r++)
        for (size_t j = 0; j < d; j++)
          diag[j] += Z[r * d + j] * Z[r * d + j];
      for (size_t j = 0; j < d; j++)
        diag[j] /= (double)N;
    }
    ew__ws_release(v->ws, mk);
    if (rc)
      return rc;
  } else if (v->sk) {
    const ew__sketch_t *k = v->sk;
    for (size_t j = 0; j < d; j++)
      diag[j] = k->dm2[j] / k->w + (v->center ? 0.0 : k->mean[j] * k->mean[j]);
  } else {
    const ew__moments_t *m;
    int rc = moments_of(v, &m);
    if (rc)
      return rc;
    for (size_t j = 0; j < d; j++)
      diag[j] = m->m2[j + j * d] / m->w + (v->center ? 0.0 : m->mean[j] * m->mean[j]);
  }
  v->as_of = v->s->count;
  return 0;
}

int ew__view_matvec(ew__view_t *v, const double *x, double *y) {
  size_t d = v->d;
  if (v->src == EW_SOURCE_WINDOW_CN) {
    ew__ws_mark_t mk = ew__ws_mark(v->ws);
    double *Z, *t = NULL;
    size_t N;
    int rc = window_cn(v->s, v->ws, &Z, &N);
    if (rc == 0 && !(t = ew__ws_alloc(v->ws, (N ? N : 1) * sizeof(double))))
      rc = EW_ENOMEM;
    if (rc == 0) {
      cblas_dgemv(CblasRowMajor, CblasNoTrans, (int)N, (int)d, 1.0, Z, (int)d, x, 1, 0.0, t, 1);
      cblas_dgemv(CblasRowMajor, CblasTrans, (int)N, (int)d, 1.0 / (double)N, Z, (int)d, t, 1,
                  0.0, y, 1);
    }
    ew__ws_release(v->ws, mk);
    if (rc)
      return rc;
  } else if (v->sk) { /* the sketch's matrix: Bᵀ(Bx)/W (+ μ(μᵀx)) */
    const ew__sketch_t *k = v->sk;
    ew__ws_mark_t mk = ew__ws_mark(v->ws);
    double *t = ew__ws_alloc(v->ws, (k->nb ? k->nb : 1) * sizeof(double));
    if (!t)
      return EW_ENOMEM;
    cblas_dgemv(CblasRowMajor, CblasNoTrans, (int)k->nb, (int)d, 1.0, k->B, (int)d, x, 1, 0.0, t,
                1);
    cblas_dgemv(CblasRowMajor, CblasTrans, (int)k->nb, (int)d, 1.0 / k->w, k->B, (int)d, t, 1,
                0.0, y, 1);
    if (!v->center)
      cblas_daxpy((int)d, cblas_ddot((int)d, k->mean, 1, x, 1), k->mean, 1, y, 1);
    ew__ws_release(v->ws, mk);
  } else {
    const ew__moments_t *m;
    int rc = moments_of(v, &m);
    if (rc)
      return rc;
    /* M2's upper triangle, column-major, is the lower of its row-major reading */
    cblas_dsymv(CblasColMajor, CblasUpper, (int)d, 1.0 / m->w, m->m2, (int)d, x, 1, 0.0, y, 1);
    if (!v->center) {
      double mx = cblas_ddot((int)d, m->mean, 1, x, 1);
      cblas_daxpy((int)d, mx, m->mean, 1, y, 1);
    }
  }
  v->as_of = v->s->count;
  return 0;
}

/* Keeps the first k vectors (column-major d×k = k rows; at most EW__WARM_MAX) as the next top-k
 * solve's warm start. */
static void keep_warm(ew_stream_t *s, const double *V, size_t k) {
  if (k > EW__WARM_MAX)
    k = EW__WARM_MAX;
  double *warm = realloc(s->topk_warm, k * s->d * sizeof(double));
  if (warm) {
    memcpy(warm, V, k * s->d * sizeof(double));
    s->topk_warm = warm;
    s->topk_warm_k = k;
  }
}

/* ---- operators: A·X without a copy of the state ---- */

#define EW__OP_CHUNK 128 /* columns per pass of the mean correction's scratch */

typedef struct {
  const ew__moments_t *m;
  int center;
  double *t; /* EW__OP_CHUNK doubles */
} mom_op_t;

/* Y = M2 X / w (+ μ (μᵀ X) when uncentred); M2's upper triangle, column-major. */
static void mom_apply(const void *ctx, const double *X, double *Y, size_t b) {
  const mom_op_t *o = ctx;
  const ew__moments_t *m = o->m;
  int d = (int)m->d;
  cblas_dsymm(CblasColMajor, CblasLeft, CblasUpper, d, (int)b, 1.0 / m->w, m->m2, d, X, d, 0.0, Y,
              d);
  if (o->center)
    return;
  for (size_t c0 = 0; c0 < b; c0 += EW__OP_CHUNK) {
    int nb = (int)(b - c0 < EW__OP_CHUNK ? b - c0 : EW__OP_CHUNK);
    cblas_dgemv(CblasColMajor, CblasTrans, d, nb, 1.0, X + c0 * m->d, d, m->mean, 1, 0.0, o->t, 1);
    cblas_dger(CblasColMajor, d, nb, 1.0, m->mean, 1, o->t, 1, Y + c0 * m->d, d);
  }
}

typedef struct {
  const double *Z; /* N rows of d (row-major) = d×N column-major */
  size_t N, d;
  double *T;       /* N × EW__OP_CHUNK */
} rows_op_t;

/* Y = Zᵀ Z X / N in row terms: with Zc = Z read column-major (d×N), Y = Zc (Zcᵀ X) / N. */
static void rows_apply(const void *ctx, const double *X, double *Y, size_t b) {
  const rows_op_t *o = ctx;
  int d = (int)o->d, N = (int)o->N;
  for (size_t c0 = 0; c0 < b; c0 += EW__OP_CHUNK) {
    int nb = (int)(b - c0 < EW__OP_CHUNK ? b - c0 : EW__OP_CHUNK);
    cblas_dgemm(CblasColMajor, CblasTrans, CblasNoTrans, N, nb, d, 1.0, o->Z, d, X + c0 * o->d, d,
                0.0, o->T, N);
    cblas_dgemm(CblasColMajor, CblasNoTrans, CblasNoTrans, d, nb, N, 1.0 / (double)o->N, o->Z, d,
                o->T, N, 0.0, Y + c0 * o->d, d);
  }
}

int ew__view_op(ew__view_t *v, ew__op_t *op) {
  ew_stream_t *s = v->s;
  size_t d = v->d;
  if (v->sk) /* Krylov on a sketch would only re-derive its small spectrum */
    return EW_EBADPARAM;
  if (v->src == EW_SOURCE_WINDOW_CN) {
    double *Z;
    size_t N;
    int rc = window_cn(s, v->ws, &Z, &N);
    if (rc)
      return rc;
    rows_op_t *o = ew__ws_alloc(v->ws, sizeof *o);
    double *T = o ? ew__ws_alloc(v->ws, (N ? N : 1) * EW__OP_CHUNK * sizeof(double)) : NULL;
    if (!T)
      return EW_ENOMEM;
    *o = (rows_op_t){Z, N, d, T};
    *op = (ew__op_t){d, rows_apply, o};
    return 0;
  }
  const ew__moments_t *m;
  int rc = moments_of(v, &m);
  if (rc)
    return rc;
  mom_op_t *o = ew__ws_alloc(v->ws, sizeof *o);
  double *t = o ? ew__ws_alloc(v->ws, EW__OP_CHUNK * sizeof(double)) : NULL;
  if (!t)
    return EW_ENOMEM;
  *o = (mom_op_t){m, v->center, t};
  *op = (ew__op_t){d, mom_apply, o};
  v->as_of = s->count;
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

/* ---- sketched streams (the fd kind): the sketch's spectrum and the bounds it certifies ---- */

/* The sketch's matrix as m rows M (m×d, in ws): A_sk = MᵀM = BᵀB/W (+ μμᵀ when uncentred). */
static int sketch_matrix_rows(ew__view_t *v, double **Mp, size_t *mp) {
  const ew__sketch_t *k = v->sk;
  size_t d = v->d, m = k->nb + (v->center ? 0 : 1);
  double *M = ew__ws_alloc(v->ws, (m ? m : 1) * d * sizeof(double));
  if (!M)
    return EW_ENOMEM;
  double sc = 1.0 / sqrt(k->w);
  for (size_t i = 0; i < k->nb * d; i++)
    M[i] = k->B[i] * sc;
  if (!v->center)
    memcpy(M + k->nb * d, k->mean, d * sizeof(double));
  *Mp = M;
  *mp = m;
  return 0;
}

/* The nonzero spectrum of A_sk (at most min(m, d) values, descending, clamped at 0), cached per
 * centring within max_lag. */
static int sketch_spectrum(ew__view_t *v, const double **theta, size_t *mt) {
  ew_stream_t *s = v->s;
  const ew__sketch_t *k = v->sk;
  if (k->broken)
    return EW_ELAPACK;
  ew__skspec_t *c = &s->skspec[v->center];
  if (c->valid && c->epoch == s->epoch && s->count - c->as_of <= v->max_lag) {
    *theta = c->theta;
    *mt = c->m;
    v->as_of = c->as_of;
    return 0;
  }
  if (!c->theta && !(c->theta = malloc((2 * k->ell + 1) * sizeof(double))))
    return EW_ENOMEM;
  ew__ws_mark_t mk = ew__ws_mark(v->ws);
  double *M, *G, *w;
  size_t m;
  int rc = sketch_matrix_rows(v, &M, &m);
  if (rc == 0 && m > 0) {
    G = ew__ws_alloc(v->ws, m * m * sizeof(double));
    w = G ? ew__ws_alloc(v->ws, m * sizeof(double)) : NULL;
    rc = w ? 0 : EW_ENOMEM;
    if (rc == 0) {
      cblas_dsyrk(CblasColMajor, CblasUpper, CblasTrans, (int)m, (int)v->d, 1.0, M, (int)v->d,
                  0.0, G, (int)m);
      rc = ew__eigvals(G, m, w, v->ws);
    }
    if (rc == 0)
      for (size_t i = 0; i < m && i < v->d; i++)
        c->theta[i] = w[i] > 0 ? w[i] : 0.0;
  }
  ew__ws_release(v->ws, mk);
  if (rc)
    return rc;
  c->m = m < v->d ? m : v->d;
  c->as_of = s->count;
  c->epoch = s->epoch;
  c->valid = true;
  *theta = c->theta;
  *mt = c->m;
  v->as_of = c->as_of;
  return 0;
}

/* A_sk's top k eigenvectors as column-major d×k: u_i = Mᵀ g_i / √γ_i from the eigenpairs
 * (γ_i, g_i) of the rows' Gram; beyond the sketch's rank, unit vectors orthogonal to the rest. */
static int sketch_vectors(ew__view_t *v, size_t k, double *Uc) {
  size_t d = v->d, m;
  double *M, *G, *w = NULL;
  int rc = sketch_matrix_rows(v, &M, &m);
  if (rc)
    return rc;
  G = ew__ws_alloc(v->ws, (m ? m * m : 1) * sizeof(double));
  w = G ? ew__ws_alloc(v->ws, (m ? m : 1) * sizeof(double)) : NULL;
  if (!w)
    return EW_ENOMEM;
  if (m > 0) {
    cblas_dsyrk(CblasColMajor, CblasUpper, CblasTrans, (int)m, (int)d, 1.0, M, (int)d, 0.0, G,
                (int)m);
    if ((rc = ew__eigpairs(G, m, w, v->ws)) != 0)
      return rc;
  }
  for (size_t i = 0; i < k; i++) {
    double *u = Uc + i * d;
    if (i < m && w[i] > 0) {
      cblas_dgemv(CblasRowMajor, CblasTrans, (int)m, (int)d, 1.0 / sqrt(w[i]), M, (int)d,
                  G + i * m, 1, 0.0, u, 1);
      continue;
    }
    memset(u, 0, d * sizeof(double));
    u[i % d] = 1.0;
    for (int pass = 0; pass < 2; pass++)
      for (size_t j = 0; j < i; j++)
        cblas_daxpy((int)d, -cblas_ddot((int)d, Uc + j * d, 1, u, 1), Uc + j * d, 1, u, 1);
    double nrm = cblas_dnrm2((int)d, u, 1);
    cblas_dscal((int)d, nrm > 0 ? 1.0 / nrm : 0.0, u, 1);
  }
  return 0;
}

bool ew__view_is_sketch(const ew__view_t *v) { return v->sk != NULL; }

size_t ew__view_sketch_dirs(const ew__view_t *v) { return v->sk ? 2 * v->sk->ell + 1 : 0; }

double ew__view_sketch_delta(const ew__view_t *v) {
  return v->sk && v->sk->w > 0 ? v->sk->delta / v->sk->w : 0.0;
}

/* Top-k of a sketched view: λ_i ∈ [θ_i, θ_i + Δ/W] (Weyl, from 0 ≼ A − A_sk ≼ (Δ/W)·I); theta
 * gets the midpoints and *resid the half-width. Vectors are A_sk's: u_i = Mᵀ g_i / √θ_i. */
static int sketch_topk(ew__view_t *v, size_t k, double *theta, double *U, double *resid) {
  size_t d = v->d, m;
  const double *th;
  double half = 0.5 * ew__view_sketch_delta(v);
  int rc = sketch_spectrum(v, &th, &m);
  if (rc)
    return rc;
  for (size_t i = 0; i < k; i++)
    theta[i] = (i < m ? th[i] : 0.0) + half;
  *resid = half;
  if (!U)
    return 0;
  ew__ws_mark_t mk = ew__ws_mark(v->ws);
  rc = sketch_vectors(v, k, U); /* column-major d×k is row-major k×d: written in place */
  if (rc == 0)
    ew__emit_rows(U, d, k, U);
  ew__ws_release(v->ws, mk);
  return rc;
}

/* Σ_i clamp(c, lo_i, hi_i) */
static double fill_sum(const double *lo, const double *hi, size_t d, double c) {
  double t = 0;
  for (size_t i = 0; i < d; i++)
    t += c < lo[i] ? lo[i] : (c > hi[i] ? hi[i] : c);
  return t;
}

static int cmp_desc_d(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x < y) - (x > y);
}

int ew__view_sketch_bounds(ew__view_t *v, const double **most, const double **least,
                           const double **diag) {
  if (!v->sk)
    return EW_EBADPARAM;
  size_t d = v->d, m;
  const double *th;
  double T, dl = ew__view_sketch_delta(v);
  int rc = ew__view_trace(v, &T);
  if (rc == 0)
    rc = sketch_spectrum(v, &th, &m);
  if (rc)
    return rc;
  double *lo = ew__ws_alloc(v->ws, 5 * d * sizeof(double));
  if (!lo)
    return EW_ENOMEM;
  double *hi = lo + d, *g = hi + d, *f = g + d, *dg = f + d, slo = 0, shi = 0;
  if ((rc = ew__view_diag(v, dg)) != 0)
    return rc;
  for (size_t i = 0; i < d; i++)
    dg[i] = dg[i] > 0 ? dg[i] : 0.0;
  qsort(dg, d, sizeof(double), cmp_desc_d);
  for (size_t i = 0; i < d; i++) {
    lo[i] = i < m ? th[i] : 0.0;
    hi[i] = lo[i] + dl;
    slo += lo[i];
    shi += hi[i];
  }
  if (slo >= T) { /* the sketch already holds the whole trace (to rounding): nothing is missing */
    for (size_t i = 0; i < d; i++)
      g[i] = f[i] = slo > 0 ? lo[i] * (T / slo) : 0.0;
  } else {
    /* rounding can leave the boxes a hair short of the trace: widen them evenly (never seen
       beyond 1e-15 relative) so that both vectors stay feasible */
    if (shi < T)
      for (size_t i = 0; i < d; i++)
        hi[i] += (T - shi) / (double)d;
    /* most spread (majorises every feasible vector): the top boxes filled first */
    double left = T - slo;
    for (size_t i = 0; i < d; i++) {
      double add = hi[i] - lo[i] < left ? hi[i] - lo[i] : left;
      g[i] = lo[i] + add;
      left -= add;
    }
    /* least spread (majorised by every feasible vector): water-filling clamp(c, lo, hi) */
    double a = 0, b = hi[0];
    for (int it = 0; it < 200 && b - a > 1e-17 * b; it++) {
      double c = 0.5 * (a + b);
      if (fill_sum(lo, hi, d, c) < T)
        a = c;
      else
        b = c;
    }
    double c = 0.5 * (a + b);
    for (size_t i = 0; i < d; i++)
      f[i] = c < lo[i] ? lo[i] : (c > hi[i] ? hi[i] : c);
  }
  *most = g;
  *least = f;
  *diag = dg;
  return 0;
}

/* The full solve: A materialised, all pairs, the top k kept. */
static int topk_dense(ew__view_t *v, size_t k, double *theta, double *U, double *resid) {
  ew_stream_t *s = v->s;
  size_t d = v->d;
  ew__ws_mark_t mk = ew__ws_mark(v->ws);
  double *A = ew__ws_alloc(v->ws, d * d * sizeof(double));
  double *Ub = A ? ew__ws_alloc(v->ws, k * d * sizeof(double)) : NULL;
  int rc = Ub ? matrix_impl(s, v->src, v->center, NULL, NULL, A, v->ws) : EW_ENOMEM;
  if (rc == 0)
    rc = ew__topk(A, d, k, s->topk_warm, s->topk_warm_k, s->cfg.seed ^ s->count, theta, Ub, resid,
                  v->ws);
  if (rc == 0 && U)
    memcpy(U, Ub, k * d * sizeof(double));
  if (rc == 0)
    keep_warm(s, Ub, k);
  ew__ws_release(v->ws, mk);
  return rc;
}

int ew__view_topk(ew__view_t *v, size_t k, double *theta, double *U, double *resid) {
  ew_stream_t *s = v->s;
  size_t d = v->d;
  if (v->sk)
    return sketch_topk(v, k, theta, U, resid);
  if (d <= EW__TOPK_FULL_DIM || 4 * ew__krylov_block(k, d) >= d)
    return topk_dense(v, k, theta, U, resid);
  ew__ws_mark_t mk = ew__ws_mark(v->ws);
  ew__op_t op;
  int rc = ew__view_op(v, &op);
  /* warm start: the last answer, then the live estimate's vectors */
  size_t b = ew__krylov_block(k, d), nw = 0;
  double *warm = rc == 0 ? ew__ws_alloc(v->ws, b * d * sizeof(double)) : NULL;
  double *r = warm ? ew__ws_alloc(v->ws, k * sizeof(double)) : NULL;
  double *V = r ? ew__ws_alloc(v->ws, k * d * sizeof(double)) : NULL;
  if (rc == 0 && !V)
    rc = EW_ENOMEM;
  if (rc == 0) {
    nw = s->topk_warm_k < b ? s->topk_warm_k : b;
    if (nw)
      memcpy(warm, s->topk_warm, nw * d * sizeof(double));
    nw += ew_stream_live_vectors(s, warm + nw * d, b - nw);
    /* a budget of d operator columns costs 2d³ flops, about what the full solve costs */
    rc = ew__krylov_topk(&op, k, warm, nw, s->cfg.seed ^ s->count, EW__TOPK_TOL, d, theta, V, r,
                         NULL, v->ws);
  }
  if (rc == 0) {
    double worst = 0;
    for (size_t i = 0; i < k; i++)
      worst = r[i] > worst ? r[i] : worst;
    *resid = worst;
    if (U)
      ew__emit_rows(V, d, k, U);
    keep_warm(s, V, k);
  }
  ew__ws_release(v->ws, mk);
  if (rc == 1) /* the gap is too small for the budget: the full solve is exact */
    return topk_dense(v, k, theta, U, resid);
  if (rc == 0)
    v->as_of = s->count;
  return rc;
}

/* ---- the quick estimate: deflated stochastic Lanczos quadrature ---- */

int ew__view_quick(ew__view_t *v, const ew__quick_t **out) {
  ew_stream_t *s = v->s;
  size_t d = v->d;
  if (v->sk) /* probes of the sketch would estimate the sketch, not the stream */
    return EW_EBADPARAM;
  if (!s->quick && !(s->quick = calloc(1, sizeof *s->quick)))
    return EW_ENOMEM;
  ew__quick_t *q = s->quick;
  uint64_t tail = v->src == EW_SOURCE_ALL ? 0 : s->tail;
  if (q->valid && q->epoch == s->epoch && q->src == (int)v->src && q->center == v->center &&
      q->tail == tail && s->count - q->as_of <= v->max_lag) {
    v->as_of = q->as_of;
    *out = q;
    return 0;
  }
  q->valid = false;
  double tr;
  int rc = ew__view_trace(v, &tr);
  if (rc)
    return rc;
  ew__ws_mark_t mk = ew__ws_mark(v->ws);
  ew__op_t op;
  size_t kmax = EW__QUICK_DEFLATE < d / 4 ? EW__QUICK_DEFLATE : d / 4;
  size_t b = ew__krylov_block(kmax > 0 ? kmax : 1, d);
  double *warm = NULL, *th = NULL, *U = NULL, *r = NULL;
  if ((rc = ew__view_op(v, &op)) == 0 && kmax > 0) {
    warm = ew__ws_alloc(v->ws, b * d * sizeof(double));
    th = warm ? ew__ws_alloc(v->ws, kmax * sizeof(double)) : NULL;
    r = th ? ew__ws_alloc(v->ws, kmax * sizeof(double)) : NULL;
    U = r ? ew__ws_alloc(v->ws, kmax * d * sizeof(double)) : NULL;
    if (!U)
      rc = EW_ENOMEM;
  }
  size_t applied = 0, kd = 0;
  if (rc == 0 && kmax > 0) {
    size_t nw = s->topk_warm_k < b ? s->topk_warm_k : b;
    if (nw)
      memcpy(warm, s->topk_warm, nw * d * sizeof(double));
    /* a fixed budget: the pairs that converge in it are deflated, the rest left to the probes */
    ew__krylov_info_t info = {0};
    rc = ew__krylov_topk(&op, kmax, warm, nw, s->cfg.seed ^ s->count ^ 0x51u, EW__QUICK_DEFL_TOL,
                         EW__QUICK_DEFL_PASSES * b, th, U, r, &info, v->ws);
    applied += info.applied;
    if (rc == 1)
      rc = 0;
    /* keep the converged pairs, compacted to the front (U's columns are col-major d-vectors) */
    for (size_t i = 0; rc == 0 && i < kmax; i++)
      if (r[i] <= EW__QUICK_DEFL_TOL * fabs(th[0]) && th[i] > 0) {
        if (kd != i)
          memcpy(U + kd * d, U + i * d, d * sizeof(double));
        q->theta[kd] = th[i];
        q->res[kd] = r[i];
        kd++;
      }
  }
  ew__slq_t sq;
  if (rc == 0)
    rc = ew__slq_run(&op, kd ? U : NULL, kd, EW__QUICK_PROBES, EW__QUICK_STEPS,
                     s->cfg.seed ^ s->count ^ 0x5a9u, &sq, v->ws);
  if (rc == 0) {
    memcpy(q->alpha, sq.alpha, sizeof q->alpha);
    memcpy(q->beta, sq.beta, sizeof q->beta);
    memcpy(q->z2, sq.z2, sizeof q->z2);
    memcpy(q->len, sq.len, sizeof q->len);
    for (size_t p = 0; p < EW__QUICK_PROBES; p++)
      applied += sq.len[p];
    q->kd = kd;
    q->tr = tr;
    q->applied = applied;
    q->src = (int)v->src;
    q->center = v->center;
    q->tail = tail;
    q->as_of = s->count;
    q->epoch = s->epoch;
    q->valid = true;
    v->as_of = q->as_of;
    *out = q;
  }
  ew__ws_release(v->ws, mk);
  return rc;
}

int ew__view_rows(ew__view_t *v, const float **rows, size_t *n) {
  ew__src_t sv;
  if (v->src == EW_SOURCE_ALL)
    return EW_ENOWINDOW;
  int rc = source(v->s, v->src, EW__WANT_ROWS, &sv, v->ws);
  if (rc)
    return rc;
  if (!sv.keeps_rows)
    return EW_ENOWINDOW;
  size_t N = sv.nseg[0] + sv.nseg[1], d = v->d;
  float *raw = ew__ws_alloc(v->ws, (N ? N : 1) * d * sizeof(float));
  if (!raw)
    return EW_ENOMEM;
  memcpy(raw, sv.seg[0], sv.nseg[0] * d * sizeof(float));
  if (sv.nseg[1])
    memcpy(raw + sv.nseg[0] * d, sv.seg[1], sv.nseg[1] * d * sizeof(float));
  *rows = raw;
  *n = N;
  v->as_of = v->s->count;
  return 0;
}
