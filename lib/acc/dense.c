/* dense.c — the two kinds built on moments alone (moments.c), behind the accumulator interface
 * (acc.h): dense (every row, exact) and decay (every weight times γ = 2^(-1/half-life) per row:
 * the state ages by a batch's rows, then the batch joins). Both save in the MALL section. */
#include "acc.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- the dense and decay kinds ---- */

#define TAG_MALL ((uint32_t)'M' | (uint32_t)'A' << 8 | (uint32_t)'L' << 16 | (uint32_t)'L' << 24)

typedef struct {
  ew__acc_t base;
  ew__moments_t m;
  double gamma; /* per-row forgetting factor; 1 for the dense kind */
} mom_acc_t;

#define MOM(a) ((mom_acc_t *)(a))
#define CMOM(a) ((const mom_acc_t *)(a))

static void mom_free(ew__acc_t *a) {
  if (!a)
    return;
  ew__moments_free(&MOM(a)->m);
  free(a);
}

static void mom_clear(ew__acc_t *a) { ew__moments_clear(&MOM(a)->m); }

static size_t mom_bytes(const ew__acc_t *a) { return sizeof(mom_acc_t) + ew__moments_bytes(&CMOM(a)->m); }

/* The batch's statistics: shift, s and the Gram in keep; decay weights γ^(n−1−r) (the newest row
 * weighs 1) as a temporary. */
static int mom_prepare(const ew__acc_t *a, const ew__in_t *in, ew__prep_t *p, ew__ws_t *keep,
                       ew__ws_t *tmp) {
  const mom_acc_t *k = CMOM(a);
  size_t n = in->n, d = in->d;
  double *shift = ew__ws_alloc(keep, d * sizeof(double));
  double *sv = shift ? ew__ws_alloc(keep, d * sizeof(double)) : NULL;
  double *g = sv ? ew__ws_alloc(keep, d * d * sizeof(double)) : NULL;
  if (!g)
    return EW_ENOMEM; /* what keep gave stays with the caller, who releases its mark */
  ew__ws_mark_t mk = ew__ws_mark(tmp);
  double *weights = NULL;
  if (k->gamma < 1.0) {
    if (!(weights = ew__ws_alloc(tmp, n * sizeof(double))))
      return EW_ENOMEM;
    double w = 1.0;
    for (size_t r = n; r-- > 0;) {
      weights[r] = w;
      w *= k->gamma;
    }
  }
  int rc = in->f64 ? ew__bstats_f64(in->x64, n, d, weights, shift, sv, g, tmp, &p->bs)
                   : ew__bstats_f32(in->x32, n, d, weights, in->scale, shift, sv, g, tmp, &p->bs);
  ew__ws_release(tmp, mk);
  p->has_bs = rc == 0;
  return rc;
}

static size_t mom_apply_ws(const ew__acc_t *a, const ew__in_t *in) {
  EW_UNUSED(in);
  return EW__MOMENTS_WS(CMOM(a)->m.d);
}

static void mom_apply(ew__acc_t *a, const ew__in_t *in, const ew__prep_t *p, ew__ws_t *ws) {
  mom_acc_t *k = MOM(a);
  if (k->gamma < 1.0) /* the state ages by the batch's rows, then the batch joins */
    ew__moments_scale(&k->m, pow(k->gamma, (double)in->n));
  ew__moments_add(&k->m, &p->bs, ws);
}

static void mom_merge(ew__acc_t *a, const ew__acc_t *o) { ew__moments_merge(&MOM(a)->m, &CMOM(o)->m); }

static void mom_scale(ew__acc_t *a, double g) { ew__moments_scale(&MOM(a)->m, g); }

static int mom_view(ew__acc_t *a, int want, uint64_t tail, ew__src_t *out, ew__ws_t *ws) {
  EW_UNUSED(ws), EW_UNUSED(tail); /* no rows kept: a tail is the whole */
  ew__moments_t *m = &MOM(a)->m;
  memset(out, 0, sizeof *out);
  out->rows = m->n;
  out->weight = m->w;
  out->mean = m->mean;
  if (want & EW__WANT_FULL)
    ew__moments_mirror(m);
  if (want & EW__WANT_MOMENTS)
    out->mom = m;
  return 0;
}

static uint64_t mom_saved_len(const ew__acc_t *a) { return ew__moments_saved_len(CMOM(a)->m.d); }

static void mom_save(const ew__acc_t *a, ew__wr_t *w) { ew__moments_save(&CMOM(a)->m, w); }

static void mom_load(ew__acc_t *a, ew__rd_t *r, uint64_t len) {
  if (len != mom_saved_len(a)) {
    ew__rd_fail(r, "section %s has the wrong length for this configuration", "MALL");
    return;
  }
  ew__moments_load(&MOM(a)->m, r);
  ew__check_moments(r, &MOM(a)->m, "MALL");
}

static const ew__acc_ops_t dense_ops = {
    .name = "dense", .tag = TAG_MALL, .free = mom_free, .clear = mom_clear, .bytes = mom_bytes,
    .prepare = mom_prepare, .apply_ws = mom_apply_ws, .apply = mom_apply, .merge = mom_merge,
    .scale = mom_scale, .view = mom_view, .saved_len = mom_saved_len, .save = mom_save,
    .load = mom_load};

/* decay saves in the same section: its half-life is in the configuration, and a decayed state
 * is moments with a smaller weight */
static const ew__acc_ops_t decay_ops = {
    .name = "decay", .tag = TAG_MALL, .free = mom_free, .clear = mom_clear, .bytes = mom_bytes,
    .prepare = mom_prepare, .apply_ws = mom_apply_ws, .apply = mom_apply, .merge = mom_merge,
    .scale = mom_scale, .view = mom_view, .saved_len = mom_saved_len, .save = mom_save,
    .load = mom_load};

static ew__acc_t *mom_new(const ew__acc_ops_t *ops, size_t d, double gamma) {
  mom_acc_t *k = calloc(1, sizeof *k);
  if (!k)
    return NULL;
  k->base.ops = ops;
  k->gamma = gamma;
  if (ew__moments_init(&k->m, d) != 0) {
    free(k);
    return NULL;
  }
  return &k->base;
}

ew__acc_t *ew__acc_dense_new(size_t d) { return mom_new(&dense_ops, d, 1.0); }

ew__acc_t *ew__acc_decay_new(size_t d, double half_life) {
  return mom_new(&decay_ops, d, exp2(-1.0 / half_life));
}

size_t ew__acc_dense_bound(size_t d) { return sizeof(mom_acc_t) + (d + d * d) * sizeof(double); }
