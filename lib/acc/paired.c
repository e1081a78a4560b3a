/* acc/paired.c — the paired kind (Dissecting CLIP, Ospanov et al. 2024): rows that come in pairs
 * (x, y) — a prompt's embedding and its image's, a layer's input and output — kept as their count
 * n and the three uncentred f64 blocks Σφ(x)φ(x)ᵀ, Σφ(x)φ(y)ᵀ, Σφ(y)φ(y)ᵀ. φ is the row itself
 * (features linear) or its random Fourier features [cos vΩ, sin vΩ]/√m (rff), one Ω for both
 * sides, drawn from the stream's seed when the stream is made and saved with its state. Sums
 * merge by addition, so ranks, batches and exports combine exactly (up to rounding).
 *
 * A batch arrives as rows of dx + dy values: x's row, then y's (stream_ingest.c converts and
 * checks it). Prepare forms its rows' features, and either keeps them (a batch of few rows:
 * apply forms their blocks into the sums) or forms the batch's three blocks (dsyrk, dgemm,
 * dsyrk over chunks of rows; apply adds them), whichever holds less until applied. The
 * symmetric blocks keep their upper triangle; the lower stays 0. */
#include "acc.h"

#include <cblas.h>
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define CHUNK 256 /* rows whose features are formed at once */
#define OMEGA_TAG 0x6f6d656761ULL /* "omega": mixed into the stream's seed for Ω */

typedef struct {
  ew__acc_t base;
  size_t dx, dy, m; /* m: rff_dim (0: linear) */
  size_t fx, fy;    /* feature dimensions: dx, dy or 2m */
  uint64_t n;
  double *omega; /* dx×m row-major (rff), else NULL */
  double *blk;   /* sxx (fx×fx), sxy (fx×fy), syy (fy×fy), one allocation */
} paired_t;

static paired_t *P(ew__acc_t *a) { return (paired_t *)a; }
static const paired_t *CP(const ew__acc_t *a) { return (const paired_t *)a; }

static size_t blk_len(const paired_t *t) { return t->fx * t->fx + t->fx * t->fy + t->fy * t->fy; }

/* φ of n rows v (stride ld, d values each) into phi (n×f, stride f) for rff: vΩ by dgemm into
 * phi's sin half, then both halves from it. */
static void rff(const paired_t *t, const double *v, size_t n, size_t ld, double *phi) {
  size_t m = t->m;
  cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)n, (int)m, (int)t->dx, 1.0, v,
              (int)ld, t->omega, (int)m, 0.0, phi + m, (int)(2 * m));
  double s = 1.0 / sqrt((double)m);
  for (size_t i = 0; i < n; i++) {
    double *r = phi + i * 2 * m;
    for (size_t j = 0; j < m; j++) {
      double z = r[m + j];
      r[j] = cos(z) * s;
      r[m + j] = sin(z) * s;
    }
  }
}

/* The blocks of n feature rows px (stride lx, fx each) and py (stride ly, fy each) added into
 * the sums at b (sxx, sxy, syy: the upper triangles of the symmetric ones). */
static void add_features(const paired_t *t, const double *px, size_t lx, const double *py,
                         size_t ly, size_t n, double *b) {
  size_t fx = t->fx, fy = t->fy;
  double *sxx = b, *sxy = b + fx * fx, *syy = sxy + fx * fy;
  cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, (int)fx, (int)n, 1.0, px, (int)lx, 1.0, sxx,
              (int)fx);
  cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)fx, (int)fy, (int)n, 1.0, px, (int)lx,
              py, (int)ly, 1.0, sxy, (int)fy);
  cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, (int)fy, (int)n, 1.0, py, (int)ly, 1.0, syy,
              (int)fy);
}

/* The features of n rows (x then y in each row of `row`, stride dx + dy, f64) into fx (n×fx) and
 * fy (n×fy), contiguous. */
static void features(const paired_t *t, const double *row, size_t n, double *ox, double *oy) {
  size_t ld = t->dx + t->dy;
  if (t->m) {
    rff(t, row, n, ld, ox);
    rff(t, row + t->dx, n, ld, oy);
    return;
  }
  for (size_t i = 0; i < n; i++) {
    memcpy(ox + i * t->dx, row + i * ld, t->dx * sizeof(double));
    memcpy(oy + i * t->dy, row + i * ld + t->dx, t->dy * sizeof(double));
  }
}

/* A batch of fewer rows than its blocks' size in features keeps its rows' features (apply forms
 * the blocks, on the stream's turn): a few rows of wide features cost n·(fx + fy) doubles until
 * applied, not fx² + fx·fy + fy². A larger batch forms its blocks here, in chunks of rows. */
static int pa_prepare(const ew__acc_t *a, const ew__in_t *in, ew__prep_t *p, ew__ws_t *keep,
                      ew__ws_t *tmp) {
  const paired_t *t = CP(a);
  size_t len = blk_len(t), d = t->dx + t->dy, n = in->n;
  bool feats = n * (t->fx + t->fy) <= len;
  p->vec = ew__ws_alloc(keep, (feats ? n * (t->fx + t->fy) : len) * sizeof(double));
  if (!p->vec)
    return EW_ENOMEM;
  p->feat_rows = feats ? n : 0;
  if (!feats)
    memset(p->vec, 0, len * sizeof(double));
  p->w = (double)n;
  ew__ws_mark_t mk = ew__ws_mark(tmp);
  size_t chunk = n < CHUNK ? n : CHUNK;
  double *rows = in->f64 ? NULL : ew__ws_alloc(tmp, chunk * d * sizeof(double));
  double *phi = feats ? NULL : ew__ws_alloc(tmp, chunk * (t->fx + t->fy) * sizeof(double));
  if ((!in->f64 && !rows) || (!feats && !phi)) {
    ew__ws_release(tmp, mk);
    return EW_ENOMEM;
  }
  for (size_t at = 0; at < n; at += chunk) {
    size_t k = n - at < chunk ? n - at : chunk;
    const double *r = in->x64 ? in->x64 + at * d : rows;
    if (!in->f64)
      for (size_t i = 0; i < k * d; i++)
        rows[i] = in->x32[at * d + i];
    if (feats) {
      features(t, r, k, p->vec + at * t->fx, p->vec + n * t->fx + at * t->fy);
    } else {
      features(t, r, k, phi, phi + k * t->fx);
      add_features(t, phi, t->fx, phi + k * t->fx, t->fy, k, p->vec);
    }
  }
  ew__ws_release(tmp, mk);
  return 0;
}

static size_t pa_apply_ws(const ew__acc_t *a, const ew__in_t *in) {
  (void)a, (void)in;
  return 0;
}

static void pa_apply(ew__acc_t *a, const ew__in_t *in, const ew__prep_t *p, ew__ws_t *ws) {
  (void)ws;
  paired_t *t = P(a);
  if (p->feat_rows) {
    size_t n = p->feat_rows;
    add_features(t, p->vec, t->fx, p->vec + n * t->fx, t->fy, n, t->blk);
  } else {
    size_t len = blk_len(t);
    for (size_t i = 0; i < len; i++)
      t->blk[i] += p->vec[i];
  }
  t->n += in->n;
}

static void pa_merge(ew__acc_t *a, const ew__acc_t *ob) {
  paired_t *t = P(a);
  const paired_t *o = CP(ob);
  size_t len = blk_len(t);
  for (size_t i = 0; i < len; i++)
    t->blk[i] += o->blk[i];
  t->n += o->n;
}

static void pa_clear(ew__acc_t *a) {
  paired_t *t = P(a);
  t->n = 0;
  memset(t->blk, 0, blk_len(t) * sizeof(double));
}

static void pa_free(ew__acc_t *a) {
  paired_t *t = P(a);
  free(t->omega);
  free(t->blk);
  free(t);
}

static size_t state_bytes(size_t dx, size_t m, size_t fx, size_t fy) {
  return sizeof(paired_t) + (dx * m + fx * fx + fx * fy + fy * fy) * sizeof(double);
}

static size_t pa_bytes(const ew__acc_t *a) {
  const paired_t *t = CP(a);
  return state_bytes(t->dx, t->m, t->fx, t->fy);
}

static int pa_view(ew__acc_t *a, int want, uint64_t tail, ew__src_t *out, ew__ws_t *ws) {
  (void)want, (void)tail, (void)ws;
  memset(out, 0, sizeof *out);
  out->rows = P(a)->n;
  out->weight = (double)P(a)->n;
  return 0;
}

/* ---- the saved form (docs/STATE.md, section PAIR): u64 n, dx, dy, m; Ω (dx·m f64, rff only);
 * the upper triangle of Σφxφxᵀ row by row (fx(fx+1)/2 f64); Σφxφyᵀ (fx·fy); the upper triangle
 * of Σφyφyᵀ (fy(fy+1)/2) ---- */

static uint64_t tri(uint64_t f) { return f * (f + 1) / 2; }

static uint64_t pa_saved_len(const ew__acc_t *a) {
  const paired_t *t = CP(a);
  return 32 + 8 * ((uint64_t)t->dx * t->m + tri(t->fx) + (uint64_t)t->fx * t->fy + tri(t->fy));
}

static void put_upper(ew__wr_t *w, const double *s, size_t f) {
  for (size_t i = 0; i < f; i++)
    ew__put(w, s + i * f + i, (f - i) * sizeof(double));
}

static void pa_save(const ew__acc_t *a, ew__wr_t *w) {
  const paired_t *t = CP(a);
  ew__put_u64(w, t->n);
  ew__put_u64(w, t->dx);
  ew__put_u64(w, t->dy);
  ew__put_u64(w, t->m);
  if (t->m)
    ew__put(w, t->omega, t->dx * t->m * sizeof(double));
  const double *sxx = t->blk, *sxy = sxx + t->fx * t->fx, *syy = sxy + t->fx * t->fy;
  put_upper(w, sxx, t->fx);
  ew__put(w, sxy, t->fx * t->fy * sizeof(double));
  put_upper(w, syy, t->fy);
}

/* Reads an upper triangle and checks it: finite, a diagonal ≥ 0 (a sum of squares). */
static void get_upper(ew__rd_t *r, double *s, size_t f, const char *what) {
  for (size_t i = 0; i < f && !r->err; i++) {
    ew__get(r, s + i * f + i, (f - i) * sizeof(double));
    if (ew__check_f64s(r, s + i * f + i, f - i, DBL_MAX, "PAIR", what) == 0 && s[i * f + i] < 0)
      ew__rd_failf(r, "section PAIR holds a negative diagonal entry of %s", what);
  }
}

static void pa_load(ew__acc_t *a, ew__rd_t *r, uint64_t len) {
  paired_t *t = P(a);
  uint64_t n = ew__get_u64(r), dx = ew__get_u64(r), dy = ew__get_u64(r), m = ew__get_u64(r);
  if (r->err)
    return;
  if (dx != t->dx || dy != t->dy || m != t->m || len != pa_saved_len(a) || n > EW__ROWS_MAX) {
    ew__rd_failf(r, "section PAIR describes %llu rows of dims [%llu, %llu] with m %llu, not this "
                 "stream's, or has the wrong length", (unsigned long long)n,
                 (unsigned long long)dx, (unsigned long long)dy, (unsigned long long)m);
    return;
  }
  t->n = n;
  if (t->m) {
    ew__get(r, t->omega, t->dx * t->m * sizeof(double));
    ew__check_f64s(r, t->omega, t->dx * t->m, DBL_MAX, "PAIR", "a frequency of Ω");
  }
  double *sxx = t->blk, *sxy = sxx + t->fx * t->fx, *syy = sxy + t->fx * t->fy;
  memset(t->blk, 0, blk_len(t) * sizeof(double));
  get_upper(r, sxx, t->fx, "Σφxφxᵀ");
  ew__get(r, sxy, t->fx * t->fy * sizeof(double));
  ew__check_f64s(r, sxy, t->fx * t->fy, DBL_MAX, "PAIR", "an entry of Σφxφyᵀ");
  get_upper(r, syy, t->fy, "Σφyφyᵀ");
  if (!r->err && n == 0)
    for (size_t i = 0; i < blk_len(t); i++)
      if (t->blk[i] != 0) {
        ew__rd_failf(r, "%s", "section PAIR holds sums of no rows that are not 0");
        return;
      }
}

static const ew__acc_ops_t paired_ops = {
    .name = "paired",
    .tag = EW_TAG('P', 'A', 'I', 'R'),
    .free = pa_free,
    .clear = pa_clear,
    .bytes = pa_bytes,
    .prepare = pa_prepare,
    .apply_ws = pa_apply_ws,
    .apply = pa_apply,
    .merge = pa_merge,
    .view = pa_view,
    .saved_len = pa_saved_len,
    .save = pa_save,
    .load = pa_load,
};

/* Feature dimensions of a configuration. */
static void feature_dims(const ew_config_t *c, size_t *m, size_t *fx, size_t *fy) {
  *m = c->features == EW_FEATURES_RFF ? c->rff_dim : 0;
  *fx = *m ? 2 * *m : c->shape[0];
  *fy = *m ? 2 * *m : c->shape[1];
}

ew__acc_t *ew__acc_paired_new(const ew_config_t *c) {
  paired_t *t = calloc(1, sizeof *t);
  if (!t)
    return NULL;
  t->base.ops = &paired_ops;
  t->dx = c->shape[0];
  t->dy = c->shape[1];
  feature_dims(c, &t->m, &t->fx, &t->fy);
  t->blk = calloc(blk_len(t), sizeof(double));
  t->omega = t->m ? malloc(t->dx * t->m * sizeof(double)) : NULL;
  if (!t->blk || (t->m && !t->omega)) {
    pa_free(&t->base);
    return NULL;
  }
  if (t->m) { /* Ω = N(0, 1)/σ, row-major dx×m, from the seed (core/rng.c's Box–Muller) */
    ew__rng_t g;
    ew__rng_seed(&g, c->seed ^ OMEGA_TAG);
    for (size_t i = 0; i < t->dx * t->m; i++)
      t->omega[i] = ew__rng_normal(&g) / c->sigma;
  }
  return &t->base;
}

bool ew__acc_is_paired(const ew__acc_t *a) { return a && a->ops == &paired_ops; }

size_t ew__acc_paired_bound(const ew_config_t *c) {
  size_t m, fx, fy;
  feature_dims(c, &m, &fx, &fy);
  return state_bytes(c->shape[0], m, fx, fy);
}

size_t ew__acc_paired_prepare_bytes(const ew_config_t *c, size_t n) {
  size_t m, fx, fy;
  feature_dims(c, &m, &fx, &fy);
  size_t chunk = n < CHUNK ? n : CHUNK, d = (size_t)c->shape[0] + c->shape[1];
  size_t len = fx * fx + fx * fy + fy * fy, feats = n * (fx + fy);
  return ew__ws_size((feats <= len ? feats : len) * sizeof(double)) +
         ew__ws_size(chunk * d * sizeof(double)) + ew__ws_size(chunk * (fx + fy) * sizeof(double));
}

void ew__acc_paired_view(const ew__acc_t *a, ew__pview_t *v) {
  const paired_t *t = CP(a);
  *v = (ew__pview_t){.n = t->n, .dx = t->dx, .dy = t->dy, .m = t->m, .fx = t->fx, .fy = t->fy,
                     .omega = t->omega, .sxx = t->blk, .sxy = t->blk + t->fx * t->fx,
                     .syy = t->blk + t->fx * t->fx + t->fx * t->fy};
}

bool ew__acc_paired_same_features(const ew__acc_t *a, const ew__acc_t *b) {
  const paired_t *t = CP(a), *o = CP(b);
  return t->dx == o->dx && t->dy == o->dy && t->m == o->m &&
         (!t->m || memcmp(t->omega, o->omega, t->dx * t->m * sizeof(double)) == 0);
}
