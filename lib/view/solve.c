/* view/solve.c — the solves behind a view (view/view.c): the operators that apply A to a block without
 * a copy of the state (moments by dsymm on the stored triangle, held rows as Zᵀ(ZX)/N), top-k by
 * block Lanczos warm-started from the last answer and the live estimate (a full solve for small
 * d), and the quick estimate (deflated stochastic Lanczos quadrature) in the stream's one slot. */
#include "view_priv.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

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

/* Y = M2 X / w (+ μ (μᵀ X) when uncentred); M2 column-major, the full matrix when mirrored,
 * else its upper triangle. */
static void mom_apply(const void *ctx, const double *X, double *Y, size_t b) {
  const mom_op_t *o = ctx;
  const ew__moments_t *m = o->m;
  int d = (int)m->d;
  if (m->full) /* the mirrored matrix: dgemm reads it at up to twice dsymm's speed */
    cblas_dgemm(CblasColMajor, CblasNoTrans, CblasNoTrans, d, (int)b, d, 1.0 / m->w, m->m2, d, X,
                d, 0.0, Y, d);
  else
    cblas_dsymm(CblasColMajor, CblasLeft, CblasUpper, d, (int)b, 1.0 / m->w, m->m2, d, X, d, 0.0,
                Y, d);
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
  if (v->src == EW_SOURCE_WINDOW_CN || ew__view_rows_only(v)) { /* Zᵀ(Z X)/N */
    double *Z;
    size_t N;
    int rc = v->src == EW_SOURCE_WINDOW_CN ? ew__view_window_cn(s, v->ws, &Z, &N)
                                           : ew__view_rows_f64(s, v->src, v->center, v->ws, &Z, &N);
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
  ew__src_t sv; /* the moments with their lower triangle mirrored: products by dgemm */
  int rc = ew__view_source(s, v->src, EW__WANT_MOMENTS | EW__WANT_FULL, &sv, v->ws);
  if (rc == 0 && !sv.mom)
    rc = EW_EBADPARAM;
  if (rc)
    return rc;
  const ew__moments_t *m = sv.mom;
  mom_op_t *o = ew__ws_alloc(v->ws, sizeof *o);
  double *t = o ? ew__ws_alloc(v->ws, EW__OP_CHUNK * sizeof(double)) : NULL;
  if (!t)
    return EW_ENOMEM;
  *o = (mom_op_t){m, v->center, t};
  *op = (ew__op_t){d, mom_apply, o};
  v->as_of = s->count;
  return 0;
}

/* The full solve: A materialised, all pairs, the top k kept. */
static int topk_dense(ew__view_t *v, size_t k, double *theta, double *U, double *resid) {
  ew_stream_t *s = v->s;
  size_t d = v->d;
  ew__ws_mark_t mk = ew__ws_mark(v->ws);
  double *A = ew__ws_alloc(v->ws, d * d * sizeof(double));
  double *Ub = A ? ew__ws_alloc(v->ws, k * d * sizeof(double)) : NULL;
  int rc = Ub ? ew__view_matrix(s, v->src, v->center, NULL, NULL, A, v->ws) : EW_ENOMEM;
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
    return ew__view_sketch_topk(v, k, theta, U, resid);
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
  /* ‖A‖_F² (the probes' control variate) where it costs O(d²): not from rows or window_cn,
   * whose ‖A‖_F² would take their spectrum */
  double tr, fro2 = NAN;
  int rc = v->eig || (v->src != EW_SOURCE_WINDOW_CN && !ew__view_rows_only(v))
               ? ew__view_trace_fro2(v, &tr, &fro2)
               : ew__view_trace(v, &tr);
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
    q->fro2 = fro2;
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
