/* metrics/entropy.c — the entropy family: von Neumann entropy (plain, over ln d, or truncated to
 * the top k), Rényi entropy and its exponential (the Vendi score), and the effective rank
 * exp(entropy). Each reaches its eigenvalues through route.c: exactly, or by the quick estimate,
 * whose error bar it carries through its formula. */
#include "metrics_priv.h"

#include <math.h>

int ew__m_entropy(mctx_t *cx) {
  double h, tr;
  int rc = ew__m_spectral_entropy(cx, &h, &tr);
  return rc ? rc : ew__m_scalar(cx, h);
}

int ew__m_entropy_normalized(mctx_t *cx) {
  if (cx->d < 2)
    return ew__m_fail(cx, EW_EDEGENERATE, "entropy_normalized divides by ln d, which is 0 for d = 1");
  double h, tr;
  int rc = ew__m_spectral_entropy(cx, &h, &tr);
  if (rc == 0 && cx->out->has_error)
    cx->out->error /= log((double)cx->d);
  return rc ? rc : ew__m_scalar(cx, h / log((double)cx->d));
}

int ew__m_renyi(mctx_t *cx) {
  double h;
  int rc = ew__m_renyi_of(cx, cx->p[0], &h);
  return rc ? rc : ew__m_scalar(cx, h);
}

/* exp of an estimate h ± e: the bar of exp(h) is exp(h)·(exp(e) − 1) (the wider side) */
static int scalar_exp(mctx_t *cx, double h) {
  if (cx->out->has_error)
    cx->out->error = exp(h) * expm1(cx->out->error);
  return ew__m_scalar(cx, exp(h));
}

int ew__m_vendi(mctx_t *cx) {
  double h;
  int rc = ew__m_renyi_of(cx, cx->p[0], &h);
  return rc ? rc : scalar_exp(cx, h);
}

int ew__m_erank(mctx_t *cx) {
  double h, tr;
  int rc = ew__m_spectral_entropy(cx, &h, &tr);
  return rc ? rc : scalar_exp(cx, h);
}

int ew__m_entropy_truncated(mctx_t *cx) {
  if (cx->d < 2)
    return ew__m_fail(cx, EW_EDEGENERATE, "entropy_truncated divides by ln d, which is 0 for d = 1");
  double tr;
  int rc = ew__m_eig_trace(cx, &tr);
  return rc ? rc : ew__m_scalar(cx, ew__m_entropy_of(cx->eig, cx->d, tr, (size_t)cx->p[0]) / log((double)cx->d));
}
