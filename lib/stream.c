/* stream.c — one stream: its configuration, the ingest path, merge/reset and the admission
 * model. What metrics read of it (sources, matrices, spectra and their cache) is view.c; the
 * metric definitions are metrics.c.
 *
 * Ingest is all-or-nothing. Everything that can fail (dimension, dtype, non-finite values,
 * scratch allocation) is checked or reserved before the first byte of state changes; after that
 * point nothing can fail. */
#include "ew_internal.h"

#include <cblas.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- configuration ---- */

EW_EXPORT void ew_config_default(ew_config_t *cfg, size_t dim) {
  memset(cfg, 0, sizeof *cfg);
  cfg->dim = dim;
  cfg->normalize = EW_NORMALIZE_NONE;
  cfg->window = dim <= EW_WINDOW_AUTO_MAX_DIM ? EW_DEFAULT_WINDOW : 0;
  cfg->decay_half_life = 0;
  cfg->live_k = 1;
  cfg->shuffle = EW_DEFAULT_SHUFFLE;
  cfg->seed = 0x5eed;
}

static int cfg_fail(char *msg, size_t cap, const char *text) {
  if (msg && cap)
    snprintf(msg, cap, "%s", text);
  return EW_EBADPARAM;
}

EW_EXPORT int ew_config_check(const ew_config_t *cfg, char *msg, size_t cap) {
  if (cfg->dim < 1 || cfg->dim > EW_MAX_DIM)
    return cfg_fail(msg, cap, "dim must be between 1 and 65536");
  if (cfg->normalize != EW_NORMALIZE_NONE && cfg->normalize != EW_NORMALIZE_L2)
    return cfg_fail(msg, cap, "normalize must be \"none\" or \"l2\"");
  if (cfg->window > ((size_t)1 << 26) || cfg->window * cfg->dim > ((size_t)1 << 32))
    return cfg_fail(msg, cap, "window too large: window*dim must stay below 2^32 values");
  if (!(cfg->decay_half_life >= 0) || !isfinite(cfg->decay_half_life))
    return cfg_fail(msg, cap, "decay half-life must be a finite number of rows >= 0");
  if (cfg->decay_half_life > 0 && cfg->decay_half_life < 1)
    return cfg_fail(msg, cap, "decay half-life must be at least 1 row (or 0 for no decay)");
  if (cfg->window_mode != EW_WINDOW_AUTO && cfg->window_mode != EW_WINDOW_EAGER &&
      cfg->window_mode != EW_WINDOW_LAZY)
    return cfg_fail(msg, cap, "window_mode must be \"auto\", \"eager\" or \"lazy\"");
  if (cfg->live_k > 64 || cfg->live_k > cfg->dim)
    return cfg_fail(msg, cap, "topk (live vectors) must be between 0 and min(64, dim)");
  if (cfg->live_k > 0 && (cfg->shuffle < 1 || cfg->shuffle > 65536))
    return cfg_fail(msg, cap, "shuffle buffer must hold between 1 and 65536 rows");
  return 0;
}

EW_EXPORT int ew_config_equal(const ew_config_t *a, const ew_config_t *b) {
  return a->dim == b->dim && a->normalize == b->normalize && a->window == b->window &&
         a->window_mode == b->window_mode &&
         a->decay_half_life == b->decay_half_life && a->live_k == b->live_k &&
         (a->live_k == 0 || a->shuffle == b->shuffle) && a->seed == b->seed;
}

EW_EXPORT int ew_source_parse(const char *name, size_t len, ew_source_t *out) {
  static const char *names[EW__NSRC] = {"all", "window", "window_cn"};
  for (int i = 0; i < EW__NSRC; i++)
    if (strlen(names[i]) == len && memcmp(names[i], name, len) == 0) {
      *out = (ew_source_t)i;
      return 0;
    }
  return EW_EBADPARAM;
}

EW_EXPORT const char *ew_source_name(ew_source_t src) {
  switch (src) {
  case EW_SOURCE_ALL:
    return "all";
  case EW_SOURCE_WINDOW:
    return "window";
  case EW_SOURCE_WINDOW_CN:
    return "window_cn";
  default:
    return "default";
  }
}

/* ---- lifecycle ---- */

EW_EXPORT int ew_stream_create(const ew_config_t *cfg, ew_stream_t **out) {
  if (ew_config_check(cfg, NULL, 0) != 0)
    return EW_EBADPARAM;
  ew_stream_t *s = calloc(1, sizeof *s);
  if (!s)
    return EW_ENOMEM;
  s->cfg = *cfg;
  s->d = cfg->dim;
  s->gamma = cfg->decay_half_life > 0 ? exp2(-1.0 / cfg->decay_half_life) : 1.0;
  s->shift = malloc(s->d * sizeof(double));
  s->s = malloc(s->d * sizeof(double));
  int rc = (s->shift && s->s) ? 0 : EW_ENOMEM;
  if (rc == 0)
    rc = ew__moments_init(&s->all, s->d);
  if (rc == 0 && cfg->window > 0) {
    rc = ew__window_init(&s->win, s->d, cfg->window);
    s->has_window = rc == 0;
  }
  if (rc == 0 && cfg->live_k > 0) {
    rc = ew__oja_init(&s->oja, s->d, cfg->live_k, cfg->shuffle, cfg->seed);
    s->has_oja = rc == 0;
  }
  if (rc != 0) {
    ew_stream_free(s);
    return rc;
  }
  *out = s;
  return 0;
}

EW_EXPORT void ew_stream_free(ew_stream_t *s) {
  if (!s)
    return;
  ew__moments_free(&s->all);
  if (s->has_window)
    ew__window_free(&s->win);
  if (s->has_oja)
    ew__oja_free(&s->oja);
  for (int i = 0; i < EW__NSRC; i++)
    for (int c = 0; c < 2; c++)
      free(s->cache[i][c].eig);
  free(s->topk_warm);
  free(s->shift);
  free(s->s);
  free(s);
}

EW_EXPORT const ew_config_t *ew_stream_config(const ew_stream_t *s) { return &s->cfg; }

static void invalidate(ew_stream_t *s) {
  s->epoch++;
  for (int i = 0; i < EW__NSRC; i++)
    for (int c = 0; c < 2; c++)
      s->cache[i][c].valid = false;
}

EW_EXPORT void ew_stream_reset(ew_stream_t *s) {
  ew__moments_clear(&s->all);
  if (s->has_window)
    ew__window_clear(&s->win);
  if (s->has_oja)
    ew__oja_clear(&s->oja);
  s->count = 0;
  s->win_queried = false;
  s->win_query_at = 0;
  s->topk_warm_k = 0;
  s->window_rounded = false;
  invalidate(s);
}

EW_EXPORT int ew_stream_merge(ew_stream_t *dst, const ew_stream_t *src) {
  if (dst->d != src->d)
    return EW_EDIM;
  if (dst->cfg.normalize != src->cfg.normalize ||
      dst->cfg.decay_half_life != src->cfg.decay_half_life)
    return EW_EBADPARAM;
  ew__moments_merge(&dst->all, &src->all);
  dst->count += src->count;
  invalidate(dst);
  return 0;
}

EW_EXPORT uint64_t ew_stream_count(const ew_stream_t *s) { return s->count; }

EW_EXPORT uint64_t ew_stream_window_count(const ew_stream_t *s) {
  return s->has_window ? s->win.count : 0;
}

EW_EXPORT size_t ew_stream_memory(const ew_stream_t *s) {
  size_t t = sizeof *s + 2 * s->d * sizeof(double) + ew__moments_bytes(&s->all);
  if (s->has_window)
    t += ew__window_bytes(&s->win);
  if (s->has_oja)
    t += ew__oja_bytes(&s->oja);
  for (int i = 0; i < EW__NSRC; i++)
    for (int c = 0; c < 2; c++)
      if (s->cache[i][c].eig)
        t += s->d * sizeof(double);
  t += s->topk_warm_k * s->d * sizeof(double);
  return t;
}

/* ---- ingest: prepare (no state touched) + apply (the state changes) ---- */

struct ew_batch {
  size_t n, d;
  bool f64, l2, decay;
  bool owned;         /* buffers malloc'ed (ew_batch_prepare) or borrowed from scratch */
  void *rows;         /* converted rows (f64 rows already normalised; f32 rows raw, see scale) */
  double *scale;      /* n inverse row norms (L2, f32 rows) or NULL */
  double *weights;    /* n decay weights or NULL */
  double *shift, *s;  /* d each */
  void *gram;         /* d×d f32 or f64 */
  ew__bstats_t bs;
};

EW_EXPORT void ew_batch_free(ew_batch_t *b) {
  if (!b)
    return;
  if (!b->owned) {
    free(b);
    return;
  }
  free(b->rows);
  free(b->scale);
  free(b->weights);
  free(b->shift);
  free(b->s);
  free(b->gram);
  free(b);
}

EW_EXPORT size_t ew_batch_rows(const ew_batch_t *b) { return b ? b->n : 0; }

/* Every f32 value is taken exactly (moments.c scales its batch Gram by a power of two when it
 * must). f64 rows must lie in the range f32 rows span, because the window and the live estimate
 * keep f32 copies: a batch whose largest magnitude is above FLT_MAX, or nonzero and below 2^-100,
 * is refused whole (EW_ERANGE) — accepted, it would leave inf or all zeros in the window, and
 * beyond 1e154 the f64 co-moments themselves overflow (a diverging run once sent 1e160). */
static int check_f64_range(const double *x, size_t count) {
  double mx = 0;
  for (size_t i = 0; i < count; i++)
    mx = fmax(mx, fabs(x[i]));
  return mx == 0 || (mx <= FLT_MAX && mx >= 0x1p-100) ? 0 : EW_ERANGE;
}

/* Fills *b for n rows. With scratch, the rows, row factors and Gram live in the calling thread's
 * scratch and shift/s in the given arrays (the one-call ingest path: no allocation per batch);
 * otherwise everything is malloc'ed and owned by the batch (prepared here, applied anywhere). */
static int prepare_impl(const ew_stream_t *s, const void *data, ew_dtype_t dtype, size_t n,
                        size_t d, ew_batch_t *b, bool scratch, double *shift, double *sv) {
  memset(b, 0, sizeof *b);
  b->n = n;
  b->d = d;
  b->f64 = dtype == EW_F64;
  b->l2 = s->cfg.normalize == EW_NORMALIZE_L2;
  b->decay = s->gamma < 1.0;
  b->owned = !scratch;
  size_t esz = b->f64 ? 8 : 4;
  if (scratch) {
    size_t in_rows = (n * d * esz + 63) & ~(size_t)63; /* keeps the doubles after it aligned */
    char *in = ew__scratch(EW__SCR_IN, in_rows + 2 * n * sizeof(double));
    b->gram = ew__scratch(EW__SCR_GRAM, d * d * esz);
    if (!in || !b->gram)
      return EW_ENOMEM;
    b->rows = in;
    b->scale = b->l2 ? (double *)(in + in_rows) : NULL;
    b->weights = b->decay ? (double *)(in + in_rows + n * sizeof(double)) : NULL;
    b->shift = shift;
    b->s = sv;
  } else {
    b->rows = malloc(n * d * esz);
    b->shift = malloc(d * sizeof(double));
    b->s = malloc(d * sizeof(double));
    b->gram = malloc(d * d * esz);
    if (b->l2)
      b->scale = malloc(n * sizeof(double));
    if (b->decay)
      b->weights = malloc(n * sizeof(double));
    if (!b->rows || !b->shift || !b->s || !b->gram || (b->l2 && !b->scale) ||
        (b->decay && !b->weights))
      return EW_ENOMEM;
  }
  /* the scratch the batch statistics use, reserved now so nothing below can fail */
  if (!ew__scratch(EW__SCR_ROWS, n * d * esz) || !ew__scratch(EW__SCR_WORK, 2 * d * sizeof(double)))
    return EW_ENOMEM;
  int rc = b->f64 ? ew_convert_f64(data, dtype, n * d, b->rows)
                  : ew_convert_f32(data, dtype, n * d, b->rows);
  if (rc != 0)
    return rc;
  if (b->f64 && (rc = check_f64_range(b->rows, n * d)) != 0)
    return rc;
  /* L2 rows (zero rows stay zero and still count). f64 rows are scaled in place; for f32 rows
   * the inverse norms stay in f64 and are applied before centring, so that only the small
   * centred value is rounded to f32 (rounding the normalised row first loses ‖μ‖/spread of
   * precision when rows share a large mean). */
  if (b->l2) {
    for (size_t r = 0; r < n; r++) {
      double nrm = 0;
      if (b->f64) {
        const double *x = (const double *)b->rows + r * d;
        for (size_t j = 0; j < d; j++)
          nrm += x[j] * x[j];
      } else {
        const float *x = (const float *)b->rows + r * d;
        for (size_t j = 0; j < d; j++)
          nrm += (double)x[j] * x[j];
      }
      b->scale[r] = nrm > 0 ? 1.0 / sqrt(nrm) : 0.0;
    }
    if (b->f64) {
      double *x = b->rows;
      for (size_t r = 0; r < n; r++)
        for (size_t j = 0; j < d; j++)
          x[r * d + j] *= b->scale[r];
    }
  }
  /* decay: row r of the batch weighs γ^(n−1−r); the state's weight is scaled at apply time */
  if (b->decay) {
    double g = 1.0;
    for (size_t r = n; r-- > 0;) {
      b->weights[r] = g;
      g *= s->gamma;
    }
  }
  return b->f64 ? ew__bstats_f64(b->rows, n, d, b->weights, b->shift, b->s, b->gram, &b->bs)
                : ew__bstats_f32(b->rows, n, d, b->weights, (b->l2 && !b->f64) ? b->scale : NULL,
                                 b->shift, b->s, b->gram, &b->bs);
}

static int check_batch_args(const ew_stream_t *s, ew_dtype_t dtype, size_t n, size_t d) {
  if (d != s->d)
    return EW_EDIM;
  if (ew_dtype_size(dtype) == 0)
    return EW_EDTYPE;
  if (n == 0)
    return EW_EBADPARAM;
  if (n > ((size_t)1 << 40) / d)
    return EW_ETOOLARGE;
  return 0;
}

EW_EXPORT int ew_batch_prepare(const ew_stream_t *s, const void *data, ew_dtype_t dtype, size_t n,
                               size_t d, ew_batch_t **out) {
  *out = NULL;
  int rc = check_batch_args(s, dtype, n, d);
  if (rc)
    return rc;
  ew_batch_t *b = calloc(1, sizeof *b);
  if (!b)
    return EW_ENOMEM;
  rc = prepare_impl(s, data, dtype, n, d, b, false, NULL, NULL);
  if (rc) {
    ew_batch_free(b);
    return rc;
  }
  *out = b;
  return 0;
}

EW_EXPORT int ew_stream_apply(ew_stream_t *s, ew_batch_t *b) {
  size_t n = b->n, d = b->d;
  if (d != s->d || b->l2 != (s->cfg.normalize == EW_NORMALIZE_L2) || b->decay != (s->gamma < 1.0))
    return EW_EBADPARAM;
  size_t wcap = s->has_window ? s->win.cap : 0;
  size_t rows_need = (n > wcap ? n : wcap) * d * 4;
  /* reserve what the window and live estimate may need; after this nothing can fail */
  if ((s->has_window || s->has_oja) &&
      (!ew__scratch(EW__SCR_ROWS, rows_need) || !ew__scratch(EW__SCR_GRAM, d * d * 4) ||
       !ew__scratch(EW__SCR_WORK, 2 * d * sizeof(double)) ||
       (b->f64 && !ew__scratch(EW__SCR_AUX, n * d * 4))))
    return EW_ENOMEM;
  if (b->decay)
    ew__moments_scale(&s->all, pow(s->gamma, (double)n));
  ew__moments_add(&s->all, &b->bs);

  if (s->has_window || s->has_oja) {
    const float *rows32 = b->rows;
    if (!b->f64 && b->l2) { /* the window and Oja keep the normalised rows, rounded to f32 */
      float *x = b->rows;
      for (size_t r = 0; r < n; r++)
        for (size_t j = 0; j < d; j++)
          x[r * d + j] = (float)(x[r * d + j] * b->scale[r]);
    }
    if (b->f64) {
      float *aux = ew__scratch(EW__SCR_AUX, n * d * 4);
      const double *x = b->rows;
      for (size_t i = 0; i < n * d; i++)
        aux[i] = (float)x[i];
      rows32 = aux;
    }
    if (s->has_window) {
      if (b->f64)
        s->window_rounded = true;
      bool maintain = s->cfg.window_mode == EW_WINDOW_EAGER ||
                      (s->cfg.window_mode == EW_WINDOW_AUTO && s->win_queried &&
                       s->count - s->win_query_at < (uint64_t)s->win.cap);
      (void)ew__window_push(&s->win, rows32, n, (!b->f64 && !b->decay && !b->l2) ? &b->bs : NULL,
                            maintain);
    }
    if (s->has_oja)
      ew__oja_push(&s->oja, rows32, n, s->all.mean);
  }
  s->count += n;
  return 0;
}

EW_EXPORT int ew_stream_ingest(ew_stream_t *s, const void *data, ew_dtype_t dtype, size_t n,
                               size_t d) {
  if (n == 0 && d == s->d && ew_dtype_size(dtype))
    return 0;
  int rc = check_batch_args(s, dtype, n, d);
  if (rc)
    return rc;
  ew_batch_t b; /* in this thread's scratch: no allocation per batch */
  rc = prepare_impl(s, data, dtype, n, d, &b, true, s->shift, s->s);
  return rc ? rc : ew_stream_apply(s, &b);
}

/* ---- the admission model ---- */

EW_EXPORT int ew_config_memory(const ew_config_t *cfg, size_t max_batch_bytes,
                               ew_memory_model_t *out) {
  if (ew_config_check(cfg, NULL, 0))
    return EW_EBADPARAM;
  size_t d = cfg->dim, W = cfg->window, k = cfg->live_k;
  size_t dd = d * d * sizeof(double);
  /* the same terms ew_stream_memory adds up, at their largest */
  size_t state = sizeof(ew_stream_t) + 2 * d * sizeof(double) + (d * sizeof(double) + dd);
  if (W)
    state += W * d * sizeof(float) + 2 * d * sizeof(double) + (d * sizeof(double) + dd);
  if (k)
    state += (cfg->shuffle ? cfg->shuffle : 1) * d * sizeof(float) + (2 * k + 1) * d * sizeof(double);
  state += EW__NSRC * 2 * d * sizeof(double); /* spectrum caches */
  state += 64 * d * sizeof(double);           /* warm top-k vectors (k <= 64) */
  /* the heaviest query: dsyevd with vectors on a d×d snapshot (A, Z, work 1+6d+2d², w, AZ) */
  size_t q = dd + dd + (1 + 6 * d + 2 * d * d) * sizeof(double) + (3 + 5 * d) * sizeof(int) +
             d * sizeof(double) + 64 * d * sizeof(double);
  if (W) { /* window rows in f64 and f32, their Gram when W < d, plus a snapshot's eigensolve */
    size_t wq = (W * d + d) * sizeof(double) + W * d * sizeof(float) +
                (W < d ? W * W * sizeof(double) : dd) + (2 * d + 1) * sizeof(double);
    if (wq > q)
      q = wq;
  }
  /* one batch: converted rows (up to 2x the input for f16/bf16 -> f32), a centred copy and an
   * f32 copy for the window, and the d×d Gram in f64 (the f64 path) */
  size_t b = 3 * 2 * max_batch_bytes + dd + 4 * d * sizeof(double);
  out->state = state;
  out->workspace = q > b ? q : b;
  return 0;
}
