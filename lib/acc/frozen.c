/* frozen.c — the frozen kind: a read-only copy of what one accumulator's view offered at one
 * moment (its moments or its sketch, and/or its rows), behind the accumulator interface. A
 * snapshot (ew_stream_snapshot, snapshot.c) holds one per role, so that queries read it exactly
 * as they would have read the accumulator then, on any thread, while the accumulator goes on
 * changing. It takes no rows (a snapshot is never ingested into, merged or saved), and offers
 * only what it copied — moments it was given, or built from its rows the first time they are
 * asked for: a view asking for anything else, or for a different tail, is EW_EBADPARAM. */
#include "acc.h"

#include <stdlib.h>
#include <string.h>

typedef struct {
  ew__acc_t base;
  size_t d;
  uint64_t rows;
  uint64_t held;  /* rows the source held when copied (rows < held: a tail of them) */
  double weight;
  bool keeps_rows;
  bool has_mom;
  ew__moments_t mom;
  bool has_sketch;
  ew__sketch_t sk;
  double *skbuf;  /* the sketch's B, mean and diag M2 */
  float *rowbuf;  /* the rows, oldest first (rows × d), or NULL */
} frozen_t;

static void frozen_free(ew__acc_t *a) {
  frozen_t *f = (frozen_t *)a;
  if (!f)
    return;
  if (f->has_mom)
    ew__moments_free(&f->mom);
  free(f->skbuf);
  free(f->rowbuf);
  free(f);
}

static size_t frozen_bytes(const ew__acc_t *a) {
  const frozen_t *f = (const frozen_t *)a;
  return sizeof *f + (f->has_mom ? ew__moments_bytes(&f->mom) : 0) +
         (f->has_sketch ? (f->sk.nb * f->d + 2 * f->d) * sizeof(double) : 0) +
         (f->rowbuf ? (size_t)f->rows * f->d * sizeof(float) : 0);
}

/* Moments of the copied rows, built once on first use (a copy taken without them: the source's
 * were not kept on these rows, and the pass over them is better made here, off the source's
 * path, than there). The same computation the window makes for a tail it does not keep. */
static int build_moments(frozen_t *f, ew__ws_t *ws) {
  size_t d = f->d, n = (size_t)f->rows;
  ew__ws_mark_t mk = ew__ws_mark(ws);
  int rc = ew__ws_reserve(ws, ew__ws_size((d * d + 2 * d) * sizeof(double)) +
                                  EW__BSTATS_WS(n, d) + EW__MOMENTS_WS(d));
  double *g = rc == 0 ? ew__ws_alloc(ws, (d * d + 2 * d) * sizeof(double)) : NULL;
  ew__bstats_t bs;
  if (g && (rc = ew__bstats_f32(f->rowbuf, n, d, NULL, NULL, g + d * d, g + d * d + d, g, ws,
                                &bs)) == 0) {
    if ((rc = ew__moments_init(&f->mom, d)) == 0) {
      ew__moments_clear(&f->mom);
      ew__moments_add(&f->mom, &bs, ws);
      f->has_mom = true;
    }
  }
  ew__ws_release(ws, mk);
  return g ? rc : rc ? rc : EW_ENOMEM;
}

static int frozen_view(ew__acc_t *a, int want, uint64_t tail, ew__src_t *out, ew__ws_t *ws) {
  frozen_t *f = (frozen_t *)a;
  memset(out, 0, sizeof *out);
  if ((tail && tail < f->held ? tail : f->held) != f->rows)
    return EW_EBADPARAM;
  out->rows = f->rows;
  out->weight = f->weight;
  out->keeps_rows = f->keeps_rows;
  if (f->has_sketch)
    out->mean = f->sk.mean;
  if ((want & EW__WANT_MOMENTS) && !f->has_mom && !f->has_sketch && f->rowbuf &&
      f->rows >= f->d) {
    int rc = build_moments(f, ws);
    if (rc)
      return rc;
  }
  if (want & EW__WANT_MOMENTS) {
    if (f->has_mom) {
      if (want & EW__WANT_FULL)
        ew__moments_mirror(&f->mom);
      out->mom = &f->mom;
    } else if (f->has_sketch) {
      out->sketch = &f->sk;
    } else if (!f->keeps_rows || f->rows >= f->d) { /* a source with moments that were not kept */
      return EW_EBADPARAM;
    }
  }
  if (want & EW__WANT_ROWS) {
    if (!f->rowbuf && f->rows)
      return EW_EBADPARAM;
    out->seg[0] = f->rowbuf;
    out->nseg[0] = (size_t)f->rows;
  }
  return 0;
}

static const ew__acc_ops_t frozen_ops = {.name = "frozen", .free = frozen_free,
                                         .bytes = frozen_bytes, .view = frozen_view};

const ew__moments_t *ew__acc_frozen_moments(const ew__acc_t *a) {
  const frozen_t *f = (const frozen_t *)a;
  return a && a->ops == &frozen_ops && f->has_mom ? &f->mom : NULL;
}

bool ew__acc_frozen_sketch(const ew__acc_t *a) {
  return a && a->ops == &frozen_ops && ((const frozen_t *)a)->has_sketch;
}

/* Copies the moments of a view into f (a mirrored lower triangle too, when the view had one). */
static int copy_moments(frozen_t *f, const ew__moments_t *m) {
  size_t d = f->d;
  if (ew__moments_init(&f->mom, d) != 0)
    return EW_ENOMEM;
  f->has_mom = true;
  ew__moments_copy(&f->mom, m);
  return 0;
}

static int copy_sketch(frozen_t *f, const ew__sketch_t *k) {
  size_t d = f->d;
  f->skbuf = malloc((k->nb * d + 2 * d) * sizeof(double));
  if (!f->skbuf)
    return EW_ENOMEM;
  f->has_sketch = true;
  f->sk = *k;
  double *B = f->skbuf, *mean = B + k->nb * d, *dm2 = mean + d;
  memcpy(B, k->B, k->nb * d * sizeof(double));
  memcpy(mean, k->mean, d * sizeof(double));
  memcpy(dm2, k->dm2, d * sizeof(double));
  f->sk.B = B, f->sk.mean = mean, f->sk.dm2 = dm2;
  return 0;
}

ew__acc_t *ew__acc_frozen_new(ew__acc_t *src, size_t d, int want, uint64_t tail, ew__ws_t *ws,
                              int *rc) {
  frozen_t *f = calloc(1, sizeof *f);
  *rc = EW_ENOMEM;
  if (!f)
    return NULL;
  f->base.ops = &frozen_ops;
  f->d = d;
  ew__ws_mark_t mk = ew__ws_mark(ws);
  ew__src_t sv;
  *rc = src->ops->view(src, 0, 0, &sv, ws);
  f->held = sv.rows;
  if (*rc == 0)
    *rc = src->ops->view(src, want, tail, &sv, ws);
  if (*rc == 0) {
    f->rows = sv.rows;
    f->weight = sv.weight;
    f->keeps_rows = sv.keeps_rows;
    if (sv.mom)
      *rc = copy_moments(f, sv.mom);
    else if (sv.sketch)
      *rc = copy_sketch(f, sv.sketch);
  }
  if (*rc == 0 && (want & EW__WANT_ROWS) && sv.keeps_rows && sv.rows) {
    size_t n0 = sv.nseg[0], n1 = sv.nseg[1];
    f->rowbuf = malloc((n0 + n1) * d * sizeof(float));
    if (!f->rowbuf) {
      *rc = EW_ENOMEM;
    } else {
      memcpy(f->rowbuf, sv.seg[0], n0 * d * sizeof(float));
      if (n1)
        memcpy(f->rowbuf + n0 * d, sv.seg[1], n1 * d * sizeof(float));
    }
  }
  ew__ws_release(ws, mk);
  if (*rc) {
    frozen_free(&f->base);
    return NULL;
  }
  return &f->base;
}
