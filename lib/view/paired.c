/* view/paired.c — what the paired metrics and nullify read of a paired stream (acc/paired.c):
 * the Schur spectra of its blocks and A* = (C_xx + εI)⁺ C_xy (linalg/schur.c), each kept with the
 * stream until it changes (its count or reset epoch), so that sce after sce_text, a dashboard's
 * repeated query or a run of nullify calls costs no second solve. */
#include "view_priv.h"

#include <stdlib.h>
#include <string.h>

/* The paired accumulator's blocks into *pv: 0, or EW_EBADPARAM (not a paired stream) or
 * EW_EDEGENERATE (no pairs yet). */
static int blocks(const ew_stream_t *s, ew__pview_t *pv) {
  const ew__acc_t *a = s->acc[EW__ROLE_ALL];
  if (!ew__acc_is_paired(a))
    return EW_EBADPARAM;
  ew__acc_paired_view(a, pv);
  return pv->n ? 0 : EW_EDEGENERATE;
}

/* *p grown to n doubles (kept on failure). */
static int grow(double **p, size_t n) {
  double *q = realloc(*p, (n ? n : 1) * sizeof *q);
  if (!q)
    return EW_ENOMEM;
  *p = q;
  return 0;
}

int ew__view_paired_schur(ew_stream_t *s, ew__ws_t *ws, const double **s_eig,
                          const double **d_eig, size_t *fy, uint64_t *n) {
  ew__pview_t pv;
  int rc = blocks(s, &pv);
  if (rc)
    return rc;
  ew__pspec_t *c = &s->pspec;
  *fy = pv.fy;
  *n = pv.n;
  if (!(c->valid && c->as_of == s->count && c->epoch == s->epoch)) {
    c->valid = false;
    if (grow(&c->s_eig, pv.fy) || grow(&c->d_eig, pv.fy))
      return EW_ENOMEM;
    ew__ws_mark_t mk = ew__ws_begin(ws);
    bool linear = pv.m == 0;
    double *astar = linear ? ew__ws_alloc(ws, pv.fx * pv.fy * sizeof(double)) : NULL;
    rc = linear && !astar ? EW_ENOMEM
                          : ew__schur(pv.fx, pv.fy, (double)pv.n, pv.sxx, pv.sxy, pv.syy,
                                      EW__SCE_EPS, c->s_eig, c->d_eig, astar, ws);
    if (rc == 0 && astar && grow(&c->astar, pv.fx * pv.fy) == 0) { /* A* comes free with it */
      memcpy(c->astar, astar, pv.fx * pv.fy * sizeof(double));
      c->astar_valid = true, c->astar_as_of = s->count, c->astar_epoch = s->epoch;
    }
    ew__stream_ws_used(s, ew__ws_end(ws, mk));
    if (rc)
      return rc;
    c->valid = true, c->as_of = s->count, c->epoch = s->epoch;
  }
  *s_eig = c->s_eig;
  *d_eig = c->d_eig;
  return 0;
}

int ew__view_paired_astar(ew_stream_t *s, ew__ws_t *ws, const double **astar, size_t *dx,
                          size_t *dy) {
  ew__pview_t pv;
  int rc = blocks(s, &pv);
  if (rc == EW_EBADPARAM || (rc == 0 && pv.m != 0))
    return EW_EBADPARAM;
  *dx = pv.dx;
  *dy = pv.dy;
  if (rc)
    return rc;
  ew__pspec_t *c = &s->pspec;
  if (!(c->astar_valid && c->astar_as_of == s->count && c->astar_epoch == s->epoch)) {
    const double *se, *de;
    size_t fy;
    uint64_t n;
    c->valid = false; /* solve again: the spectra come with A* */
    if ((rc = ew__view_paired_schur(s, ws, &se, &de, &fy, &n)) != 0)
      return rc;
    if (!(c->astar_valid && c->astar_as_of == s->count && c->astar_epoch == s->epoch))
      return EW_ENOMEM; /* the spectra were kept, A* could not be */
  }
  *astar = c->astar;
  return 0;
}

size_t ew__view_paired_cache_bytes(const ew_stream_t *s) {
  ew__pview_t pv;
  const ew__acc_t *a = s->acc[EW__ROLE_ALL];
  if (!ew__acc_is_paired(a))
    return 0;
  ew__acc_paired_view(a, &pv);
  return ((s->pspec.s_eig ? 2 * pv.fy : 0) + (s->pspec.astar ? pv.fx * pv.fy : 0)) *
         sizeof(double);
}
