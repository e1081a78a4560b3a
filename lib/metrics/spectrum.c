/* metrics/spectrum.c — the metrics that answer with eigenvalues or a sum of them: the top k (and
 * their vectors), the live estimate's directions with their certificate, the whole spectrum, the
 * trace and the nuclear norm. */
#include "metrics_priv.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static int list_of(mctx_t *cx, const double *v, size_t n) {
  double *l = malloc((n ? n : 1) * sizeof(double));
  if (!l)
    return ew__m_fail(cx, EW_ENOMEM, "out of memory for a list of %zu values", n);
  memcpy(l, v, n * sizeof(double));
  cx->out->kind = EW_VALUE_LIST;
  cx->out->list = l;
  cx->out->len = n;
  return 0;
}

int ew__m_topk(mctx_t *cx) {
  size_t k = (size_t)cx->p[0];
  if (k > cx->d)
    k = cx->d;
  size_t kmax = ew__view_sketch_dirs(&cx->v);
  if (kmax && k > kmax)
    return ew__m_fail(cx, EW_EBADPARAM,
                "topk k = %zu asks for more directions than this stream's sketch holds (2 x "
                "sketch_rows + 1 = %zu); ask for at most %zu",
                k, kmax, kmax);
  bool vectors = cx->p[1] != 0;
  if (!vectors) {
    double *theta = malloc(k * sizeof(double)), r;
    if (!theta)
      return ew__m_fail(cx, EW_ENOMEM, "out of memory");
    int rc = ew__m_need_top(cx, k, theta, &r);
    if (rc == 0)
      rc = list_of(cx, theta, k);
    free(theta);
    if (rc == 0 && r > 0)
      ew__m_set_error(cx, r);
    return rc;
  }
  /* eigenpairs: block Lanczos warm-started from the last answer, or a full solve (view/solve.c) */
  size_t d = cx->d;
  double *theta = malloc(k * sizeof(double)), *U = malloc(k * d * sizeof(double));
  double resid = 0;
  int rc = (theta && U) ? ew__view_topk(&cx->v, k, theta, U, &resid) : EW_ENOMEM;
  if (rc != 0) {
    free(theta);
    free(U);
    return ew__m_fail(cx, rc, "%s", rc == EW_ELAPACK ? "the top-k eigensolver failed on this state"
                                               : ew_strerror(rc));
  }
  for (size_t i = 0; i < k; i++)
    if (theta[i] < 0) {
      theta[i] = 0;
      cx->out->clamped++;
    }
  cx->out->kind = EW_VALUE_LIST;
  cx->out->list = theta;
  cx->out->len = k;
  cx->out->vectors = U;
  cx->out->dim = d;
  cx->out->has_error = 1;
  cx->out->error = resid;
  return 0;
}

/* The live estimate's vectors with their Rayleigh quotients against the view's matrix and the
 * certificate of live/cert.c (the distance to the top eigenpairs, not only to some eigenpair). */
int ew__m_live_topk(mctx_t *cx) {
  size_t d = cx->d, want = (size_t)cx->p[0], kept;
  uint64_t consumed;
  double *V = malloc((want < d ? want : d) * d * sizeof(double));
  if (!V)
    return ew__m_fail(cx, EW_ENOMEM, "out of memory");
  size_t k = ew__view_live(&cx->v, V, want, &consumed, &kept);
  if (k == 0) {
    free(V);
    if (kept == 0)
      return ew__m_fail(cx, EW_EDEGENERATE,
                  "this stream keeps no live estimate (create it with live_k > 0)");
    return ew__m_fail(cx, EW_EDEGENERATE,
                "the live estimate has not taken its first power step yet (%llu rows have left "
                "its randomising buffer; it steps every %zu)",
                (unsigned long long)consumed, d / 2 > 256 ? d / 2 : 256);
  }
  double *theta = malloc(k * sizeof(double)), worst = 0;
  /* the Lanczos steps' random columns: seeded by what the estimate has seen, so that the same
   * state answers the same certificate */
  int rc = theta ? ew__live_certify(&cx->v, V, k, consumed ^ 0x11fec3u, theta, &worst, NULL)
                 : EW_ENOMEM;
  if (rc) {
    free(V);
    free(theta);
    return ew__m_view_fail(cx, rc);
  }
  double *U = malloc(k * d * sizeof(double));
  if (!U || cx->p[1] == 0) {
    free(U);
    U = NULL;
  } else {
    memcpy(U, V, k * d * sizeof(double));
  }
  free(V);
  if (cx->p[1] != 0 && !U) {
    free(theta);
    return ew__m_fail(cx, EW_ENOMEM, "out of memory");
  }
  cx->out->kind = EW_VALUE_LIST;
  cx->out->list = theta;
  cx->out->len = k;
  cx->out->vectors = U;
  cx->out->dim = U ? d : 0;
  ew__m_set_error(cx, worst);
  cx->v.as_of = consumed; /* the rows the estimate describes */
  return 0;
}

int ew__m_spectrum(mctx_t *cx) {
  int rc = ew__m_need_eig(cx);
  return rc ? rc : list_of(cx, cx->eig, cx->d);
}

int ew__m_trace(mctx_t *cx) {
  double tr;
  int rc = ew__view_trace(&cx->v, &tr);
  return rc ? ew__m_view_fail(cx, rc) : ew__m_scalar(cx, tr);
}

int ew__m_nuclear_norm(mctx_t *cx) {
  if (ew__m_want_quick(cx)) {
    const ew__quick_t *q;
    int rc = ew__view_quick(&cx->v, &q);
    if (rc)
      return ew__m_view_fail(cx, rc);
    gfun_t g = {2, q->tr, 0};
    double sum, e;
    rc = ew__m_quick_sum(cx, q, &g, &sum, &e);
    if (rc < 0)
      return rc;
    if (rc == 0) { /* else (1) AUTO, and the bar is too wide: exact below */
      ew__m_set_error(cx, e / sqrt(cx->weight));
      return ew__m_scalar(cx, sum / sqrt(cx->weight));
    }
  }
  int rc = ew__m_need_eig(cx);
  if (rc)
    return rc;
  double t = 0;
  for (size_t i = 0; i < cx->d; i++)
    t += sqrt(cx->eig[i]);
  /* σ_k(X) = sqrt(W λ_k(A)), so Σσ/W = Σ sqrt(λ_k) / sqrt(W) */
  return ew__m_scalar(cx, t / sqrt(cx->weight));
}
