/* metrics/paired.c — the metrics of paired streams (docs/METRICS.md, "Paired streams"): the
 * Schur complement entropies of Dissecting CLIP (Ospanov et al. 2024), from the eigenvalues of
 * S = C_yy − Δ and Δ = C_xyᵀ (C_xx + εI)⁺ C_xy that view/paired.c solves once per change of the
 * stream. */
#include "metrics_priv.h"

#include <math.h>

#define SCE_CLAMP 1e-10

/* The reference's schur_vendi_from_eigs: exp(−Σ λ ln(λ/s)) over λ clamped at 1e-10 first, s the
 * clamped λ's sum — exp(s·H(λ/s)), the entropy weighted by the trace share s, which is what
 * CLIP-DISSECTION computes (not exp(H(λ/s))). */
static double schur_vendi(const double *lam, size_t n) {
  double s = 0, h = 0;
  for (size_t i = 0; i < n; i++)
    s += fmax(lam[i], SCE_CLAMP);
  for (size_t i = 0; i < n; i++) {
    double l = fmax(lam[i], SCE_CLAMP);
    h -= l * log(l / s);
  }
  return exp(h);
}

/* Side 0: S (sce), 1: Δ (sce_text). */
static int sce_of(mctx_t *cx, int side) {
  const double *se, *de;
  size_t fy;
  uint64_t n;
  int rc = ew__view_paired_schur(cx->stream, cx->ws, &se, &de, &fy, &n);
  if (rc == EW_EDEGENERATE)
    return ew__m_fail(cx, rc, "the stream has no pairs yet");
  if (rc)
    return ew__m_fail(cx, rc, "%s", ew_strerror(rc));
  cx->out->as_of = n;
  return ew__m_scalar(cx, schur_vendi(side ? de : se, fy));
}

int ew__m_sce(mctx_t *cx) { return sce_of(cx, 0); }
int ew__m_sce_text(mctx_t *cx) { return sce_of(cx, 1); }
