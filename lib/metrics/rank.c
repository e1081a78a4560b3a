/* metrics/rank.c — how many directions the spectrum spreads over, and how unevenly: RankMe, the
 * participation ratio, the stable rank, the condition number, anisotropy and the spectral gap.
 * Those that need only λ₁ (or λ₁ and λ₂) take the top route (route.c) and carry its residual
 * bound into their error. */
#include "metrics_priv.h"

#include <math.h>

int ew__m_rankme(mctx_t *cx) {
  int rc = ew__m_need_eig(cx);
  if (rc)
    return rc;
  size_t m = cx->rows < cx->d ? (size_t)cx->rows : cx->d;
  double tot = 0;
  for (size_t i = 0; i < m; i++)
    tot += sqrt(cx->eig[i]);
  if (!(tot > 0))
    return ew__m_check_trace(cx, 0);
  double eps = cx->p[0], h = 0;
  for (size_t i = 0; i < m; i++) {
    double r = sqrt(cx->eig[i]) / tot + eps;
    if (r > 0)
      h -= r * log(r);
  }
  return ew__m_scalar(cx, exp(h));
}

int ew__m_participation_ratio(mctx_t *cx) {
  double tr, fro2;
  int rc = ew__m_trace_fro(cx, &tr, &fro2);
  if (rc || (rc = ew__m_check_trace(cx, tr)))
    return rc;
  return ew__m_scalar(cx, tr * tr / fro2);
}

int ew__m_stable_rank(mctx_t *cx) {
  double l1, tr, r;
  int rc = ew__m_top1_trace(cx, &l1, &tr, &r);
  if (rc)
    return rc;
  if (r > 0)
    ew__m_set_error(cx, l1 > r ? tr / (l1 - r) - tr / l1 : INFINITY); /* λ₁ ∈ [θ − r, θ + r] */
  return ew__m_scalar(cx, tr / l1);
}

int ew__m_condition_number(mctx_t *cx) {
  int rc = ew__m_need_eig(cx);
  if (rc)
    return rc;
  double lmax = cx->eig[0];
  if (!(lmax > 0))
    return ew__m_check_trace(cx, 0);
  double cut = cx->p[0] * lmax, lmin = lmax;
  for (size_t i = 0; i < cx->d; i++)
    if (cx->eig[i] > cut && cx->eig[i] < lmin)
      lmin = cx->eig[i];
  return ew__m_scalar(cx, lmax / lmin);
}

int ew__m_anisotropy(mctx_t *cx) {
  double l1, tr, r;
  int rc = ew__m_top1_trace(cx, &l1, &tr, &r);
  if (rc)
    return rc;
  if (r > 0)
    ew__m_set_error(cx, r / tr);
  return ew__m_scalar(cx, l1 / tr);
}

int ew__m_spectral_gap(mctx_t *cx) {
  if (cx->d < 2)
    return ew__m_fail(cx, EW_EDEGENERATE, "spectral_gap needs two eigenvalues; d = 1 has one");
  double l[2], r;
  int rc = ew__m_need_top(cx, 2, l, &r);
  if (rc)
    return rc;
  if (!(l[1] > r))
    return ew__m_fail(cx, EW_EDEGENERATE,
                "the second eigenvalue is zero (rank <= 1), so lambda_1/lambda_2 is undefined");
  if (r > 0)
    ew__m_set_error(cx, (l[0] + r) / (l[1] - r) - l[0] / l[1]);
  return ew__m_scalar(cx, l[0] / l[1]);
}
