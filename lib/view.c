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

const ew__moments_t *ew__stream_win_moments(ew_stream_t *s) {
  s->win_queried = true;
  s->win_query_at = s->count;
  return ew__window_sync(&s->win) == 0 ? &s->win.mom : NULL;
}

void ew__stream_source_size(const ew_stream_t *s, ew_source_t src, uint64_t *rows,
                            double *weight) {
  if (src == EW_SOURCE_ALL) {
    *rows = s->all.n;
    *weight = s->all.w;
  } else {
    *rows = s->has_window ? s->win.count : 0;
    *weight = (double)*rows;
  }
}

/* Window rows as f64 into AUX (N×d), followed by their mean (d doubles, always computed); the
 * rows are centred on it when center. */
static int window_rows_f64(ew_stream_t *s, int center, double **Xp, size_t *Np) {
  size_t N = s->win.count, d = s->d;
  double *X = ew__scratch(EW__SCR_AUX, (N * d + d) * sizeof(double) + N * d * sizeof(float));
  if (!X)
    return EW_ENOMEM;
  double *mu = X + N * d;
  float *raw = (float *)(mu + d);
  ew__window_copy(&s->win, raw);
  memset(mu, 0, d * sizeof(double));
  for (size_t r = 0; r < N; r++)
    for (size_t j = 0; j < d; j++) {
      X[r * d + j] = raw[r * d + j];
      mu[j] += X[r * d + j];
    }
  for (size_t j = 0; j < d; j++)
    mu[j] /= (double)N;
  if (center)
    for (size_t r = 0; r < N; r++)
      for (size_t j = 0; j < d; j++)
        X[r * d + j] -= mu[j];
  *Xp = X;
  *Np = N;
  return 0;
}

int ew__stream_window_cn(ew_stream_t *s, double **Zp, size_t *Np, size_t *zero_rows) {
  size_t N, d = s->d, zeros = 0;
  double *Z;
  int rc = window_rows_f64(s, 1, &Z, &N);
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
    } else {
      zeros++; /* a row equal to the window mean stays zero (and still counts in N) */
    }
  }
  *Zp = Z;
  *Np = N;
  *zero_rows = zeros;
  return 0;
}

EW_EXPORT int ew_stream_matrix(ew_stream_t *s, ew_source_t src, int center, double *weight,
                               double *mean, double *A) {
  size_t d = s->d;
  if (src != EW_SOURCE_ALL && !s->has_window)
    return EW_ENOWINDOW;
  if (src == EW_SOURCE_ALL || src == EW_SOURCE_WINDOW) {
    const ew__moments_t *m = src == EW_SOURCE_ALL ? &s->all : ew__stream_win_moments(s);
    if (!m)
      return EW_ENOMEM;
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
  if (s->win.count == 0)
    return EW_EDEGENERATE;
  double *Z;
  size_t N, zeros;
  int rc = ew__stream_window_cn(s, &Z, &N, &zeros);
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

EW_EXPORT size_t ew_stream_live_vectors(const ew_stream_t *s, double *out, size_t cap_k) {
  return s->has_oja ? ew__oja_vectors(&s->oja, out, cap_k) : 0;
}

/* ---- spectra ---- */

/* Eigenvalues of the N×N Gram X Xᵀ / N of rows X (N×d), zero-padded to d, descending. */
static int gram_eigs(const double *X, size_t N, size_t d, double *eig) {
  double *G = ew__scratch(EW__SCR_MAT, N * N * sizeof(double));
  if (!G)
    return EW_ENOMEM;
  cblas_dsyrk(CblasColMajor, CblasUpper, CblasTrans, (int)N, (int)d, 1.0 / (double)N, X, (int)d,
              0.0, G, (int)N);
  int rc = ew__eigvals(G, N, eig);
  for (size_t i = N; i < d; i++)
    eig[i] = 0.0;
  return rc;
}

int ew__stream_spectrum(ew_stream_t *s, ew_source_t src, int center, uint64_t max_lag,
                        const double **eig, size_t *clamped, uint64_t *as_of) {
  size_t d = s->d;
  center = (src == EW_SOURCE_WINDOW_CN) ? 0 : (center ? 1 : 0);
  if (src != EW_SOURCE_ALL && !s->has_window)
    return EW_ENOWINDOW;
  ew__spec_cache_t *c = &s->cache[src][center];
  if (c->valid && c->epoch == s->epoch && s->count - c->as_of <= max_lag) {
    *eig = c->eig;
    *clamped = c->clamped;
    *as_of = c->as_of;
    return 0;
  }
  uint64_t rows;
  double w;
  ew__stream_source_size(s, src, &rows, &w);
  if (rows == 0)
    return EW_EDEGENERATE;
  if (!c->eig && !(c->eig = malloc(d * sizeof(double))))
    return EW_ENOMEM;
  c->valid = false;
  int rc;
  double floor = 0; /* rows read from the ring are exact in f64: no accumulated noise */
  bool all_in_window =
      s->has_window && s->gamma == 1.0 && s->win.count == s->count && !s->window_rounded;
  if (src == EW_SOURCE_WINDOW_CN) {
    double *Z;
    size_t N, zeros;
    if ((rc = ew__stream_window_cn(s, &Z, &N, &zeros)) != 0)
      return rc;
    if (N < d) {
      rc = gram_eigs(Z, N, d, c->eig);
    } else {
      double *A = ew__scratch(EW__SCR_MAT, d * d * sizeof(double));
      if (!A)
        return EW_ENOMEM;
      cblas_dsyrk(CblasColMajor, CblasUpper, CblasNoTrans, (int)d, (int)N, 1.0 / (double)N, Z,
                  (int)d, 0.0, A, (int)d);
      rc = ew__eigvals(A, d, c->eig);
    }
  } else if ((src == EW_SOURCE_WINDOW || all_in_window) && s->win.count < d) {
    /* dual route: the N×N Gram has the same nonzero spectrum and costs O(N²d + N³) */
    double *X;
    size_t N;
    if ((rc = window_rows_f64(s, center, &X, &N)) != 0)
      return rc;
    rc = gram_eigs(X, N, d, c->eig);
  } else {
    double *A = ew__scratch(EW__SCR_MAT, d * d * sizeof(double));
    const ew__moments_t *m = src == EW_SOURCE_ALL ? &s->all : ew__stream_win_moments(s);
    if (!A || !m)
      return EW_ENOMEM;
    ew__moments_matrix_upper(m, center, A);
    rc = ew__eigvals(A, d, c->eig);
    floor = m->w > 0 ? m->noise / m->w : 0.0;
  }
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
  c->as_of = s->count;
  c->epoch = s->epoch;
  c->valid = true;
  *eig = c->eig;
  *clamped = neg;
  *as_of = c->as_of;
  return 0;
}


/* ---- the view ---- */

/* The moments behind a moment-based source (all, window); NULL when out of memory. */
static const ew__moments_t *moments_of(ew__view_t *v) {
  return v->src == EW_SOURCE_ALL ? &v->s->all : ew__stream_win_moments(v->s);
}

int ew__view_open(ew__view_t *v, ew_stream_t *s, ew_source_t src, int center, uint64_t max_lag) {
  memset(v, 0, sizeof *v);
  v->s = s;
  v->src = src;
  v->center = src == EW_SOURCE_WINDOW_CN ? 0 : (center ? 1 : 0);
  v->max_lag = max_lag;
  v->d = s->d;
  v->as_of = s->count;
  if (src < 0 || src >= EW__NSRC)
    return EW_EBADPARAM;
  if (src != EW_SOURCE_ALL && !s->has_window)
    return EW_ENOWINDOW;
  ew__stream_source_size(s, src, &v->rows, &v->weight);
  return 0;
}

int ew__view_spectrum(ew__view_t *v, const double **eig, size_t *clamped, double *err) {
  if (!v->eig) {
    int rc = ew__stream_spectrum(v->s, v->src, v->center, v->max_lag, &v->eig, &v->clamped,
                                 &v->as_of);
    if (rc)
      return rc;
  }
  *eig = v->eig;
  if (clamped)
    *clamped = v->clamped;
  if (err) { /* eigenvalues of a moment source carry the accumulated rounding bound */
    const ew__moments_t *m = v->src == EW_SOURCE_WINDOW_CN ? NULL : moments_of(v);
    *err = m && m->w > 0 ? m->noise / m->w : 0.0;
  }
  return 0;
}

int ew__view_trace_fro2(ew__view_t *v, double *tr, double *fro2) {
  size_t d = v->d;
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
  const ew__moments_t *m = moments_of(v);
  if (!m)
    return EW_ENOMEM;
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
  const ew__moments_t *m = moments_of(v);
  if (!m)
    return EW_ENOMEM;
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
    double *Z;
    size_t N, zeros;
    int rc = ew__stream_window_cn(v->s, &Z, &N, &zeros);
    if (rc)
      return rc;
    memset(diag, 0, d * sizeof(double));
    for (size_t r = 0; r < N; r++)
      for (size_t j = 0; j < d; j++)
        diag[j] += Z[r * d + j] * Z[r * d + j];
    for (size_t j = 0; j < d; j++)
      diag[j] /= (double)N;
  } else {
    const ew__moments_t *m = moments_of(v);
    if (!m)
      return EW_ENOMEM;
    for (size_t j = 0; j < d; j++)
      diag[j] = m->m2[j + j * d] / m->w + (v->center ? 0.0 : m->mean[j] * m->mean[j]);
  }
  v->as_of = v->s->count;
  return 0;
}

int ew__view_matvec(ew__view_t *v, const double *x, double *y) {
  size_t d = v->d;
  if (v->src == EW_SOURCE_WINDOW_CN) {
    double *Z;
    size_t N, zeros;
    int rc = ew__stream_window_cn(v->s, &Z, &N, &zeros);
    if (rc)
      return rc;
    double *t = malloc((N ? N : 1) * sizeof(double));
    if (!t)
      return EW_ENOMEM;
    cblas_dgemv(CblasRowMajor, CblasNoTrans, (int)N, (int)d, 1.0, Z, (int)d, x, 1, 0.0, t, 1);
    cblas_dgemv(CblasRowMajor, CblasTrans, (int)N, (int)d, 1.0 / (double)N, Z, (int)d, t, 1, 0.0,
                y, 1);
    free(t);
  } else {
    const ew__moments_t *m = moments_of(v);
    if (!m)
      return EW_ENOMEM;
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

int ew__view_topk(ew__view_t *v, size_t k, double *theta, double *U, double *resid) {
  ew_stream_t *s = v->s;
  size_t d = v->d;
  double *A = ew__scratch(EW__SCR_MAT, d * d * sizeof(double));
  if (!A)
    return EW_ENOMEM;
  int rc = ew_stream_matrix(s, v->src, v->center, NULL, NULL, A);
  if (rc == 0)
    rc = ew__topk(A, d, k, s->topk_warm, s->topk_warm_k, s->cfg.seed ^ s->count, theta, U, resid);
  if (rc)
    return rc;
  double *warm = realloc(s->topk_warm, k * d * sizeof(double)); /* the next solve starts here */
  if (warm) {
    memcpy(warm, U, k * d * sizeof(double));
    s->topk_warm = warm;
    s->topk_warm_k = k;
  }
  v->as_of = s->count;
  return 0;
}

int ew__view_rows(ew__view_t *v, const float **rows, size_t *n) {
  ew_stream_t *s = v->s;
  if (v->src == EW_SOURCE_ALL || !s->has_window)
    return EW_ENOWINDOW;
  size_t N = s->win.count;
  float *raw = ew__scratch(EW__SCR_AUX, (N ? N : 1) * v->d * sizeof(float));
  if (!raw)
    return EW_ENOMEM;
  ew__window_copy(&s->win, raw);
  *rows = raw;
  *n = N;
  v->as_of = s->count;
  return 0;
}
