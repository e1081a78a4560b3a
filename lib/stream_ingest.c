/* stream_ingest.c — the ingest path of a stream (stream.c): rows converted, checked and
 * preprocessed into a batch, every accumulator's prepare run on it, then applied — in one call
 * (ew_stream_ingest) or in two (ew_batch_prepare on any thread, ew_stream_apply one at a time).
 *
 * Ingest is all-or-nothing. Everything that can fail (dimension, dtype, non-finite values,
 * scratch allocation) is checked or reserved before the first byte of state changes; after that
 * point nothing can fail. */
#include "ew_internal.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- ingest: prepare (no state touched) + apply (the state changes) ---- */

struct ew_batch {
  size_t n, d;
  bool f64, l2, decay;
  ew__ws_t *own;      /* a prepared batch's own memory (rows, statistics); NULL for one-call
                         ingest, whose batch lives in the thread's workspace */
  void *rows;         /* converted rows (f64 rows already normalised; f32 rows raw, see scale) */
  double *scale;      /* n inverse row norms (L2, f32 rows) or NULL */
  ew__in_t in;        /* the batch as the accumulators read it */
  ew__prep_t prep[EW__NROLES];
  size_t ws_peak;     /* the workspace prepare held at its peak */
  ew__tbatch_t *tok;  /* a tokens batch (tokens_ingest.c; in own), else NULL */
  ew__cbatch_t *cells; /* a stats batch (tokens_ingest.c; in own), else NULL */
  void *data;          /* a tokens batch's packed bytes, which tok reads (freed with it) */
  const uint32_t *labels; /* n labels (ew_batch_set_labels: own_labels, freed with it), or NULL */
  uint32_t *own_labels;
  ew_config_t cfg;        /* rows: the configuration of the stream it was prepared for (its kinds,
                             a paired kind's layout) */
};

ew_batch_t *ew__batch_cells(ew__ws_t *own, ew__cbatch_t *cb, size_t cells) {
  ew_batch_t *b = calloc(1, sizeof *b);
  if (!b)
    return NULL;
  b->own = own;
  b->cells = cb;
  b->n = 1;
  b->d = cells;
  return b;
}

ew_batch_t *ew__batch_tokens(ew__ws_t *own, ew__tbatch_t *tb, size_t ncols, void *data) {
  ew_batch_t *b = calloc(1, sizeof *b);
  if (!b)
    return NULL;
  b->own = own;
  b->data = data;
  b->tok = tb;
  b->n = tb->n;
  b->d = ncols;
  return b;
}

EW_EXPORT void ew_batch_free(ew_batch_t *b) {
  if (!b)
    return;
  ew__ws_free(b->own);
  free(b->data);
  free(b->own_labels);
  free(b);
}

EW_EXPORT size_t ew_batch_rows(const ew_batch_t *b) { return b ? b->n : 0; }

/* Every f32 value is taken exactly (moments.c widens every input to f64 before it is centred and
 * forms its batch Gram in f64). f64 rows must lie in the range f32 rows span, because the window and the live estimate
 * keep f32 copies: a batch whose largest magnitude is above FLT_MAX, or nonzero and below 2^-100,
 * is refused whole (EW_ERANGE) — accepted, it would leave inf or all zeros in the window, and
 * beyond 1e154 the f64 co-moments themselves overflow (a diverging run once sent 1e160). */
static int check_f64_range(const double *x, size_t count, bool paired) {
  double mx = 0;
  for (size_t i = 0; i < count; i++)
    mx = fmax(mx, fabs(x[i]));
  return mx == 0 || (mx <= FLT_MAX && (paired || mx >= 0x1p-100)) ? 0 : EW_ERANGE;
}

/* Converts and preprocesses n rows into *b and runs every accumulator's prepare. What the batch
 * keeps (rows, statistics) comes from `keep`, temporaries from `tmp` (the same workspace for
 * one-call ingest). No state changes. */
static int prepare_impl(const ew_stream_t *s, const void *data, ew_dtype_t dtype, size_t n,
                        size_t d, ew_batch_t *b, ew__ws_t *keep, ew__ws_t *tmp) {
  b->n = n;
  b->d = d;
  b->cfg = s->cfg;
  b->f64 = dtype == EW_F64;
  b->l2 = s->cfg.normalize == EW_NORMALIZE_L2;
  b->decay = s->cfg.decay_half_life > 0;
  size_t esz = b->f64 ? 8 : 4;
  /* One-call ingest (keep == tmp: the batch lives no longer than the caller's buffer) reads
   * aligned f32 input where it lies, once checked: nothing writes a batch's f32 rows. */
  bool borrow = keep == tmp && dtype == EW_F32 && (uintptr_t)data % _Alignof(float) == 0;
  b->rows = borrow ? (void *)(uintptr_t)data : ew__ws_alloc(keep, n * d * esz);
  b->scale = b->l2 && b->rows ? ew__ws_alloc(keep, n * sizeof(double)) : NULL;
  if (!b->rows || (b->l2 && !b->scale))
    return EW_ENOMEM;
  int rc = borrow   ? ew__check_f32(data, n * d)
           : b->f64 ? ew_convert_f64(data, dtype, n * d, b->rows)
                    : ew_convert_f32(data, dtype, n * d, b->rows);
  if (rc != 0)
    return rc;
  /* a paired stream keeps no f32 copy (only f64 sums, which FLT_MAX bounds): no lower bound */
  if (b->f64 && (rc = check_f64_range(b->rows, n * d,
                                      s->cfg.stream_kind == EW_STREAM_PAIRED)) != 0)
    return rc;
  /* L2 rows (zero rows stay zero and still count). f64 rows are scaled in place; for f32 rows
   * the inverse norms stay in f64 and are applied in f64 while centring (moments.c), so the
   * normalised row is never rounded to f32 on its way into the moments (the window and the live
   * estimate keep it rounded, as they keep every row in f32). */
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
  b->in = (ew__in_t){.n = n, .d = d, .f64 = b->f64,
                     .x64 = b->f64 ? b->rows : NULL, .x32 = b->f64 ? NULL : b->rows,
                     .scale = (b->l2 && !b->f64) ? b->scale : NULL};
  for (int r = 0; r < EW__NROLES; r++) {
    const ew__acc_t *a = s->acc[r];
    if (a && (rc = a->ops->prepare(a, &b->in, &b->prep[r], keep, tmp)) != 0)
      return rc;
  }
  return 0;
}

static int check_batch_args(const ew_stream_t *s, ew_dtype_t dtype, size_t n, size_t d) {
  if (s->cfg.stream_kind != EW_STREAM_MATRIX && s->cfg.stream_kind != EW_STREAM_PAIRED)
    return EW_EBADPARAM; /* rows go to matrix streams (and paired ones, x's then y's); a tokens
                            stream takes ew_tokens_t */
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

EW_EXPORT int ew_batch_check(const ew_stream_t *s, const void *data, ew_dtype_t dtype, size_t n,
                             size_t d) {
  int rc = check_batch_args(s, dtype, n, d);
  if (rc)
    return rc;
  const unsigned char *p = data;
  size_t count = n * d;
  if (dtype == EW_F64) {
    double mx = 0;
    for (size_t i = 0; i < count; i++) {
      double x;
      memcpy(&x, p + 8 * i, 8);
      if (!isfinite(x))
        return EW_ENONFINITE;
      mx = fmax(mx, fabs(x));
    }
    return mx == 0 || (mx <= FLT_MAX && (s->cfg.stream_kind == EW_STREAM_PAIRED ||
                                        mx >= 0x1p-100))
               ? 0
               : EW_ERANGE;
  }
  if (dtype == EW_F32) {
    for (size_t i = 0; i < count; i++) {
      float x;
      memcpy(&x, p + 4 * i, 4);
      if (!isfinite(x))
        return EW_ENONFINITE;
    }
    return 0;
  }
  /* f16: exponent 0x1f; bf16: exponent 0xff — NaN or Inf */
  uint16_t mask = dtype == EW_F16 ? 0x7c00u : 0x7f80u;
  for (size_t i = 0; i < count; i++) {
    uint16_t h;
    memcpy(&h, p + 2 * i, 2);
    if ((h & mask) == mask)
      return EW_ENONFINITE;
  }
  return 0;
}

EW_EXPORT int ew_batch_prepare(const ew_stream_t *s, const void *data, ew_dtype_t dtype, size_t n,
                               size_t d, ew_batch_t **out) {
  *out = NULL;
  int rc = check_batch_args(s, dtype, n, d);
  if (rc)
    return rc;
  ew__ws_t *tmp = ew__ws_thread();
  ew_batch_t *b = calloc(1, sizeof *b);
  if (!b || !tmp || !(b->own = ew__ws_new())) {
    ew_batch_free(b);
    return EW_ENOMEM;
  }
  ew__ws_mark_t mk = ew__ws_begin(tmp);
  rc = prepare_impl(s, data, dtype, n, d, b, b->own, tmp);
  b->ws_peak = ew__ws_end(tmp, mk);
  if (rc) {
    ew_batch_free(b);
    return rc;
  }
  *out = b;
  return 0;
}

/* Folds a prepared batch into s: reserves the workspace every accumulator's apply needs (the
 * only step that can fail), then applies them — every row to ALL, the f32 rows to the window —
 * and feeds the live estimate. */
static int apply_impl(ew_stream_t *s, ew_batch_t *b, ew__ws_t *ws) {
  size_t n = b->n, d = b->d;
  ew__in_t *in = &b->in;
  bool want32 = s->acc[EW__ROLE_WINDOW] || s->has_live;
  bool copy32 = want32 && (b->f64 || b->l2); /* else the f32 rows themselves are what is kept */
  size_t need = copy32 ? ew__ws_size(n * d * sizeof(float)) : 0, most = 0;
  for (int r = 0; r < EW__NROLES; r++) /* applies run one after another: the largest counts */
    if (s->acc[r]) {
      size_t k = s->acc[r]->ops->apply_ws(s->acc[r], in);
      most = k > most ? k : most;
    }
  ew__acc_t *all = s->acc[EW__ROLE_ALL], *win = s->acc[EW__ROLE_WINDOW];
  /* labels ride with the window's rows; a stream's first batch decides whether it has them */
  bool labelled = win && ew__window_labelled(win);
  if (b->labels ? !win || (!labelled && s->count) : labelled)
    return EW_EBADPARAM;
  if (ew__ws_reserve(ws, need + most) != 0 ||
      (b->labels && !labelled && ew__window_label_ready(win) != 0))
    return EW_ENOMEM;
  in->labels = b->labels;
  float *rows32 = copy32 ? ew__ws_alloc(ws, n * d * sizeof(float)) : NULL;
  all->ops->apply(all, in, &b->prep[EW__ROLE_ALL], ws);
  if (want32) {
    if (b->f64) {
      const double *x = b->rows;
      for (size_t i = 0; i < n * d; i++)
        rows32[i] = (float)x[i];
    } else if (b->l2) { /* the window and Oja keep the normalised rows, rounded to f32 */
      const float *x = b->rows;
      for (size_t r = 0; r < n; r++)
        for (size_t j = 0; j < d; j++)
          rows32[r * d + j] = (float)(x[r * d + j] * b->scale[r]);
    }
    in->rows32 = copy32 ? rows32 : b->rows;
    /* the ALL statistics describe exactly these f32 rows when nothing weighted or scaled them */
    in->plain32 = (!b->f64 && !b->decay && !b->l2) ? &b->prep[EW__ROLE_ALL].bs : NULL;
  }
  if (win) {
    if (b->f64)
      s->window_rounded = true;
    in->maintain = !s->win_tail_kept &&
                   (s->cfg.window_mode == EW_WINDOW_EAGER ||
                    (s->cfg.window_mode == EW_WINDOW_AUTO && s->win_queried &&
                     s->count - s->win_query_at < (uint64_t)ew__window_cap(win)));
    win->ops->apply(win, in, &b->prep[EW__ROLE_WINDOW], ws);
  }
  if (s->has_live) {
    ew__src_t src;
    (void)all->ops->view(all, 0, 0, &src, ws); /* the ALL kinds: cannot fail */
    ew__rop_push(&s->live, in->rows32, n, src.mean);
  }
  in->rows32 = NULL;
  in->plain32 = NULL;
  s->count += n;
  return 0;
}

EW_EXPORT int ew_stream_apply(ew_stream_t *s, ew_batch_t *b) {
  if ((b->tok != NULL) != (s->cfg.stream_kind == EW_STREAM_TOKENS) ||
      (b->cells != NULL) != (s->cfg.stream_kind == EW_STREAM_STATS) || b->d != s->d)
    return EW_EBADPARAM;
  if (b->cells) { /* one batch of cells counts one */
    int rc = ew__acc_stats_apply(s->acc[EW__ROLE_ALL], b->cells);
    s->count += rc == 0;
    return rc;
  }
  if (b->tok) {
    int rc = b->data ? ew__acc_tokens_apply(s->acc[EW__ROLE_ALL], b->tok, &b->data) : EW_EBADPARAM;
    if (rc == 0)
      s->count += b->tok->n;
    return rc;
  }
  /* rows prepared for a stream whose kinds (or paired layout) differ would be read as another
   * accumulator's statistics */
  if (b->d != s->d || b->l2 != (s->cfg.normalize == EW_NORMALIZE_L2) ||
      b->decay != (s->cfg.decay_half_life > 0) || ew_config_kinds(&b->cfg) != ew_config_kinds(&s->cfg) ||
      (s->cfg.stream_kind == EW_STREAM_PAIRED && !ew__config_mergeable(&b->cfg, &s->cfg)))
    return EW_EBADPARAM;
  ew__ws_t *ws = ew__ws_thread();
  if (!ws)
    return EW_ENOMEM;
  ew__ws_mark_t mk = ew__ws_begin(ws);
  int rc = apply_impl(s, b, ws);
  size_t peak = ew__ws_end(ws, mk);
  if (rc == 0)
    ew__stream_ws_used(s, peak > b->ws_peak ? peak : b->ws_peak);
  return rc;
}

EW_EXPORT int ew_stream_labelled(const ew_stream_t *s) {
  const ew__acc_t *win = s->acc[EW__ROLE_WINDOW];
  if (!win)
    return -1;
  return ew__window_labelled(win) ? 1 : s->count ? 0 : 2;
}

EW_EXPORT int ew_batch_set_labels(ew_batch_t *b, const uint32_t *labels, size_t n) {
  if (b->tok || b->cells || n != b->n)
    return EW_EBADPARAM;
  uint32_t *copy = malloc((n ? n : 1) * sizeof *copy);
  if (!copy)
    return EW_ENOMEM;
  memcpy(copy, labels, n * sizeof *copy);
  free(b->own_labels);
  b->own_labels = copy;
  b->labels = copy;
  return 0;
}

EW_EXPORT int ew_stream_ingest_labeled(ew_stream_t *s, const void *data, ew_dtype_t dtype,
                                       size_t n, size_t d, const uint32_t *labels) {
  if (n == 0 && d == s->d && ew_dtype_size(dtype))
    return 0;
  int rc = check_batch_args(s, dtype, n, d);
  if (rc)
    return rc;
  ew__ws_t *ws = ew__ws_thread();
  if (!ws)
    return EW_ENOMEM;
  ew_batch_t b; /* in this thread's workspace: no allocation per batch once it has grown; the
                   labels borrowed */
  memset(&b, 0, sizeof b);
  ew__ws_mark_t mk = ew__ws_begin(ws);
  rc = prepare_impl(s, data, dtype, n, d, &b, ws, ws);
  b.labels = labels;
  if (rc == 0)
    rc = apply_impl(s, &b, ws);
  size_t peak = ew__ws_end(ws, mk);
  if (rc == 0)
    ew__stream_ws_used(s, peak);
  return rc;
}

EW_EXPORT int ew_stream_ingest(ew_stream_t *s, const void *data, ew_dtype_t dtype, size_t n,
                               size_t d) {
  return ew_stream_ingest_labeled(s, data, dtype, n, d, NULL);
}
