/* view/view.c — what metrics read. A view is one source of one stream — every row (or the decayed
 * state), the window's rows, or the window's rows centred then L2-normalised — seen as one
 * symmetric d×d matrix A (C = M2/W when centred, S = C + μμᵀ when not, ZᵀZ/N for window_cn),
 * reached only through the functions below: trace, ‖A‖_F², the diagonal, all eigenvalues with
 * their error bound, the top-k eigenpairs with a residual bound, A·x, and the raw rows where the
 * source keeps them. Metrics (metrics/) never read an accumulator's fields, so a new kind of
 * state adds its branch here and none in any metric. The spectrum and its cache are
 * view/spectrum.c; the solves (operators, Lanczos top-k, the quick estimate) are view/solve.c,
 * and what a sketched stream's view answers is view/sketch.c. */
#include "view_priv.h"

#include <cblas.h>
#include <math.h>
#include <string.h>

/* ---- sources ---- */

/* A full symmetric matrix from its upper triangle (column-major d×d). */
static void mirror_upper(double *A, size_t d) {
  for (size_t j = 0; j < d; j++)
    for (size_t i = 0; i < j; i++)
      A[j + i * d] = A[i + j * d];
}

/* The mean of a source's rows (its two segments) in f64 when center, else zeros (what the
 * uncentred matrix subtracts). */
void ew__view_rows_mean(const ew__src_t *sv, size_t d, int center, double *mu) {
  size_t N = sv->nseg[0] + sv->nseg[1];
  memset(mu, 0, d * sizeof(double));
  for (int k = 0; k < 2 && center; k++)
    for (size_t r = 0; r < sv->nseg[k]; r++)
      for (size_t j = 0; j < d; j++)
        mu[j] += sv->seg[k][r * d + j];
  for (size_t j = 0; j < d; j++)
    mu[j] /= (double)(N ? N : 1);
}

/* What the accumulator behind src offers (moments and/or rows, per want). Asking a window for its
 * moments records the ask (the AUTO window mode then maintains them eagerly). */
int ew__view_source(ew_stream_t *s, ew_source_t src, int want, ew__src_t *out, ew__ws_t *ws) {
  ew__acc_t *a = ew__stream_acc(s, src);
  if (!a)
    return EW_ENOWINDOW;
  if (src != EW_SOURCE_ALL && (want & EW__WANT_MOMENTS))
    ew__stream_window_asked(s);
  return a->ops->view(a, want, src == EW_SOURCE_ALL ? 0 : s->tail, out, ws);
}

/* The rows of a source that keeps them, as f64 (N×d) followed by their mean (d doubles, always
 * computed), in ws; the rows are centred on it when center. */
int ew__view_rows_f64(ew_stream_t *s, ew_source_t src, int center, ew__ws_t *ws, double **Xp,
                    size_t *Np) {
  ew__src_t sv;
  int rc = ew__view_source(s, src, EW__WANT_ROWS, &sv, ws);
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
int ew__view_window_cn(ew_stream_t *s, ew__ws_t *ws, double **Zp, size_t *Np) {
  size_t N, d = s->d;
  double *Z;
  int rc = ew__view_rows_f64(s, EW_SOURCE_WINDOW, 1, ws, &Z, &N);
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

bool ew__view_rows_only(const ew__view_t *v) {
  return v->src == EW_SOURCE_WINDOW && v->rows < v->d;
}

/* diag(A) of a source read from its rows, in f64 (two passes: the mean, then the centred or raw
 * squares over N). */
static int rows_diag(ew__view_t *v, double *diag) {
  ew__src_t sv;
  size_t d = v->d;
  int rc = ew__view_source(v->s, v->src, EW__WANT_ROWS, &sv, v->ws);
  if (rc)
    return rc;
  size_t N = sv.nseg[0] + sv.nseg[1];
  ew__ws_mark_t mk = ew__ws_mark(v->ws);
  double *mu = ew__ws_alloc(v->ws, d * sizeof(double));
  if (!mu)
    return EW_ENOMEM;
  ew__view_rows_mean(&sv, d, v->center, mu);
  memset(diag, 0, d * sizeof(double));
  for (int k = 0; k < 2; k++)
    for (size_t r = 0; r < sv.nseg[k]; r++)
      for (size_t j = 0; j < d; j++) {
        double x = sv.seg[k][r * d + j] - mu[j];
        diag[j] += x * x;
      }
  for (size_t j = 0; j < d; j++)
    diag[j] /= (double)(N ? N : 1);
  ew__ws_release(v->ws, mk);
  return 0;
}

int ew__view_matrix(ew_stream_t *s, ew_source_t src, int center, double *weight, double *mean,
                       double *A, ew__ws_t *ws) {
  size_t d = s->d;
  if (src == EW_SOURCE_ALL || src == EW_SOURCE_WINDOW) {
    ew__src_t sv;
    int rc = ew__view_source(s, src, 0, &sv, ws); /* how many rows: few are read as rows */
    if (rc == 0 && !(src == EW_SOURCE_WINDOW && sv.rows < d))
      rc = ew__view_source(s, src, EW__WANT_MOMENTS, &sv, ws);
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
        mirror_upper(A, d);
      }
      return 0;
    }
    if (src == EW_SOURCE_WINDOW && sv.rows < d) {
      /* fewer rows than d (a window of rows only, or a tail): A = XᵀX/N of the (centred) rows */
      double *X;
      size_t N;
      if (sv.rows == 0)
        return EW_EDEGENERATE;
      ew__ws_mark_t mk = ew__ws_mark(ws);
      if ((rc = ew__view_rows_f64(s, src, center, ws, &X, &N)) != 0)
        return rc;
      if (weight)
        *weight = (double)N;
      if (mean)
        memcpy(mean, X + N * d, d * sizeof(double));
      if (A) {
        cblas_dsyrk(CblasColMajor, CblasUpper, CblasNoTrans, (int)d, (int)N, 1.0 / (double)N, X,
                    (int)d, 0.0, A, (int)d);
        mirror_upper(A, d);
      }
      ew__ws_release(ws, mk);
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
  int rc = ew__view_window_cn(s, ws, &Z, &N);
  if (rc != 0)
    return rc;
  if (weight)
    *weight = (double)N;
  if (mean)
    memcpy(mean, Z + N * d, d * sizeof(double));
  if (A) {
    cblas_dsyrk(CblasColMajor, CblasUpper, CblasNoTrans, (int)d, (int)N, 1.0 / (double)N, Z,
                (int)d, 0.0, A, (int)d);
    mirror_upper(A, d);
  }
  return 0;
}

EW_EXPORT int ew_stream_matrix(ew_stream_t *s, ew_source_t src, int center, double *weight,
                               double *mean, double *A) {
  if ((src != EW_SOURCE_ALL && src != EW_SOURCE_WINDOW && src != EW_SOURCE_WINDOW_CN) ||
      ew_stream_config(s)->stream_kind != EW_STREAM_MATRIX) /* the other kinds keep no matrix */
    return EW_EBADPARAM;
  ew__ws_t *ws = ew__ws_thread();
  if (!ws)
    return EW_ENOMEM;
  ew__ws_mark_t mk = ew__ws_begin(ws);
  int rc = ew__view_matrix(s, src, center, weight, mean, A, ws);
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

/* ---- the view ---- */

/* The moments behind a moment-based source (all, window). */
int ew__view_moments(ew__view_t *v, const ew__moments_t **m) {
  ew__src_t sv;
  int rc = ew__view_source(v->s, v->src, EW__WANT_MOMENTS, &sv, v->ws);
  *m = rc == 0 ? sv.mom : NULL;
  return rc == 0 && !sv.mom ? EW_EBADPARAM : rc; /* a kind without moments (sketch, rows only) */
}

double ew__view_noise(ew__view_t *v) {
  const ew__moments_t *m = NULL;
  if (v->sk || v->src == EW_SOURCE_WINDOW_CN || ew__view_rows_only(v) ||
      ew__view_moments(v, &m) != 0 || !m || !(m->w > 0))
    return 0.0;
  return m->noise / m->w;
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
  if (src < 0 || src >= EW__NCACHE)
    return EW_EBADPARAM;
  ew__src_t sv;
  int rc = ew__view_source(s, src, 0, &sv, ws);
  if (rc)
    return rc;
  v->rows = sv.rows;
  v->weight = sv.weight;
  if (src == EW_SOURCE_ALL && ew__acc_is_sketch(ew__stream_acc(s, src))) {
    if ((rc = ew__view_source(s, src, EW__WANT_MOMENTS, &sv, ws)) != 0)
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


int ew__view_trace_fro2(ew__view_t *v, double *tr, double *fro2) {
  size_t d = v->d;
  if (v->sk) { /* tr exact; ‖A‖_F² is not known from a sketch */
    if (fro2)
      return EW_EBADPARAM;
    return ew__view_trace(v, tr);
  }
  if (v->src == EW_SOURCE_WINDOW_CN || v->eig || ew__view_rows_only(v)) {
    /* from the spectrum (consistent with it; for rows, the N×N Gram's) */
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
  int rc = ew__view_moments(v, &m);
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
  if (ew__view_rows_only(v)) {
    ew__ws_mark_t mk = ew__ws_mark(v->ws);
    double *dg = ew__ws_alloc(v->ws, v->d * sizeof(double)), t = 0;
    int rc = dg ? rows_diag(v, dg) : EW_ENOMEM;
    for (size_t j = 0; rc == 0 && j < v->d; j++)
      t += dg[j];
    ew__ws_release(v->ws, mk);
    *tr = t;
    v->as_of = v->s->count;
    return rc;
  }
  const ew__moments_t *m;
  int rc = ew__view_moments(v, &m);
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
    int rc = ew__view_window_cn(v->s, v->ws, &Z, &N);
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
  } else if (ew__view_rows_only(v)) {
    int rc = rows_diag(v, diag);
    if (rc)
      return rc;
  } else {
    const ew__moments_t *m;
    int rc = ew__view_moments(v, &m);
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
  if (v->src == EW_SOURCE_WINDOW_CN || ew__view_rows_only(v)) { /* Zᵀ(Z x)/N */
    ew__ws_mark_t mk = ew__ws_mark(v->ws);
    double *Z, *t = NULL;
    size_t N;
    int rc = v->src == EW_SOURCE_WINDOW_CN ? ew__view_window_cn(v->s, v->ws, &Z, &N)
                                           : ew__view_rows_f64(v->s, v->src, v->center, v->ws, &Z, &N);
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
    int rc = ew__view_moments(v, &m);
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


int ew__view_rows(ew__view_t *v, const float **rows, size_t *n) {
  return ew__view_rows_labels(v, rows, NULL, n);
}

int ew__view_rows_labels(ew__view_t *v, const float **rows, const uint32_t **labels, size_t *n) {
  ew__src_t sv;
  if (v->src == EW_SOURCE_ALL)
    return EW_ENOWINDOW;
  int rc = ew__view_source(v->s, v->src, EW__WANT_ROWS, &sv, v->ws);
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
  if (labels) { /* the same rows' labels, or NULL when the window keeps none */
    uint32_t *lab = NULL;
    if (sv.lab[0] && !(lab = ew__ws_alloc(v->ws, (N ? N : 1) * sizeof *lab)))
      return EW_ENOMEM;
    if (lab) {
      memcpy(lab, sv.lab[0], sv.nseg[0] * sizeof *lab);
      memcpy(lab + sv.nseg[0], sv.lab[1], sv.nseg[1] * sizeof *lab);
    }
    *labels = lab;
  }
  *rows = raw;
  *n = N;
  v->as_of = v->s->count;
  return 0;
}
