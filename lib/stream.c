/* stream.c — one stream: its creation from the kinds its configuration keeps (config.c),
 * merge/reset and the admission model; the ingest path is stream_ingest.c. What metrics read of
 * it (sources, matrices, spectra and their cache) is view/; the metric definitions are
 * metrics/. */
#include "ew_internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- sources and methods by name ---- */

_Static_assert(EW__NSRC == EW_SOURCE_STEP + 1, "one name per source");

EW_EXPORT int ew_source_parse(const char *name, size_t len, ew_source_t *out) {
  static const char *names[EW__NSRC] = {"all", "window", "window_cn", "step"};
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
  case EW_SOURCE_STEP:
    return "step";
  default:
    return "default";
  }
}

static const char *method_names[] = {"auto", "slq", "exact"};
_Static_assert(sizeof method_names / sizeof method_names[0] == EW_METHOD_EXACT + 1,
               "one name per method");

EW_EXPORT int ew_method_parse(const char *name, size_t len, ew_method_t *out) {
  for (int i = 0; i < 3; i++)
    if (strlen(method_names[i]) == len && memcmp(method_names[i], name, len) == 0) {
      *out = (ew_method_t)i;
      return 0;
    }
  return EW_EBADPARAM;
}

EW_EXPORT const char *ew_method_name(ew_method_t m) {
  return (unsigned)m < 3 ? method_names[m] : "auto";
}

#define EW__KIND_NAME(value, name) name,

/* ---- lifecycle ---- */

EW_EXPORT int ew_stream_create(const ew_config_t *cfg, ew_stream_t **out) {
  if (ew_config_check(cfg, NULL, 0) != 0)
    return EW_EBADPARAM;
  ew_stream_t *s = calloc(1, sizeof *s);
  if (!s)
    return EW_ENOMEM;
  s->cfg = *cfg;
  s->d = cfg->dim;
  /* configuration → kinds (EW_KIND_MAP): every row to dense moments, decayed ones or above
   * exact_max_dim a Frequent Directions sketch; the last W rows to a window; a live estimate */
  int rc = ew__kinds_attach(s);
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
  for (int r = 0; r < EW__NROLES; r++)
    if (s->acc[r])
      s->acc[r]->ops->free(s->acc[r]);
  if (s->has_live)
    ew__rop_free(&s->live);
  for (int i = 0; i < EW__NCACHE; i++)
    for (int c = 0; c < 2; c++)
      free(s->cache[i][c].eig);
  free(s->topk_warm);
  free(s->quick);
  for (int c = 0; c < 2; c++)
    free(s->skspec[c].theta);
  free(s->kspec.w);
  free(s->pspec.s_eig);
  free(s->pspec.d_eig);
  free(s->pspec.astar);
  free(s);
}

EW_EXPORT const ew_config_t *ew_stream_config(const ew_stream_t *s) { return &s->cfg; }

ew__acc_t *ew__stream_acc(const ew_stream_t *s, ew_source_t src) {
  return s->acc[src == EW_SOURCE_ALL ? EW__ROLE_ALL : EW__ROLE_WINDOW];
}

bool ew__stream_all_in_window(const ew_stream_t *s) {
  const ew__acc_t *w = s->acc[EW__ROLE_WINDOW];
  if (s->frozen)
    return s->frozen_all_in_window;
  return w && s->cfg.decay_half_life == 0 && ew__window_count(w) == s->count && !s->window_rounded;
}

void ew__stream_window_asked(ew_stream_t *s) {
  s->win_queried = true;
  s->win_query_at = s->count;
}

void ew__stream_ws_used(ew_stream_t *s, size_t peak) {
  if (peak > s->ws_peak)
    s->ws_peak = peak;
}

static void invalidate(ew_stream_t *s) {
  s->epoch++;
  for (int i = 0; i < EW__NCACHE; i++)
    for (int c = 0; c < 2; c++)
      s->cache[i][c].valid = false;
  for (int c = 0; c < 2; c++)
    s->skspec[c].valid = false;
}

EW_EXPORT void ew_stream_reset(ew_stream_t *s) {
  for (int r = 0; r < EW__NROLES; r++)
    if (s->acc[r])
      s->acc[r]->ops->clear(s->acc[r]);
  if (s->has_live)
    ew__rop_clear(&s->live);
  s->count = 0;
  s->win_queried = false;
  s->win_query_at = 0;
  s->topk_warm_k = 0;
  s->window_rounded = false;
  invalidate(s);
}

static int merge_fail(char *msg, size_t cap, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int merge_fail(char *msg, size_t cap, const char *fmt, ...) {
  if (msg && cap) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, cap, fmt, ap);
    va_end(ap);
  }
  return EW_EBADPARAM;
}

/* The window plan of ew_stream_merge_ex's rule (spans NULL) into sp[0, 2), or EW_EBADPARAM with
 * the sentence. */
static int window_rule(const ew_stream_t *dst, const ew_stream_t *src, ew_window_span_t *sp,
                       size_t *n, char *msg, size_t cap) {
  const ew__acc_t *a = dst->acc[EW__ROLE_WINDOW], *o = src->acc[EW__ROLE_WINDOW];
  size_t W = ew__window_cap(a);
  uint64_t ca = ew__window_count(a), co = o ? ew__window_count(o) : 0;
  *n = 0;
  if (src->count == 0)
    return 0; /* nothing joins: dst's window stays */
  if (!o)
    return merge_fail(msg, cap, "the state keeps no window, so its %llu rows cannot join this "
                      "stream's window of %zu rows (merge it into a stream with window 0)",
                      (unsigned long long)src->count, W);
  if (dst->count == 0) { /* the union is src: its newest rows that fit */
    uint64_t k = co < W ? co : W;
    sp[(*n)++] = (ew_window_span_t){1, co - k, k};
    return 0;
  }
  if (ca != dst->count || co != src->count || ca + co > W)
    return merge_fail(msg, cap, "this stream's window holds %llu of its %llu rows, the state's "
                      "%llu of %llu: the union's newest %zu rows are not known from them (merge "
                      "states that fit, or into a stream with window 0)",
                      (unsigned long long)ca, (unsigned long long)dst->count,
                      (unsigned long long)co, (unsigned long long)src->count, W);
  sp[(*n)++] = (ew_window_span_t){0, 0, ca};
  sp[(*n)++] = (ew_window_span_t){1, 0, co};
  return 0;
}

EW_EXPORT int ew_stream_merge_ex(ew_stream_t *dst, const ew_stream_t *src,
                                 const ew_window_span_t *spans, size_t n, char *msg, size_t cap) {
  if (msg && cap)
    msg[0] = 0;
  if (dst->d != src->d)
    return EW_EDIM;
  if (dst->cfg.stream_kind != src->cfg.stream_kind) {
    static const char *const kinds[] = {EW_ENUM_stream_kind(EW__KIND_NAME)};
    return merge_fail(msg, cap, "the state is a %s stream and this one a %s stream: a merge "
                      "combines streams of one kind", kinds[src->cfg.stream_kind],
                      kinds[dst->cfg.stream_kind]);
  }
  if (dst->cfg.stream_kind == EW_STREAM_PAIRED && src->cfg.stream_kind == EW_STREAM_PAIRED &&
      (!ew__config_mergeable(&dst->cfg, &src->cfg) ||
       !ew__acc_paired_same_features(dst->acc[EW__ROLE_ALL], src->acc[EW__ROLE_ALL])))
    return merge_fail(msg, cap, "the state's pairs are mapped to other features than this "
                      "stream's (features, sigma, rff_dim and seed, Ω itself, must be equal)");
  if (!ew__config_mergeable(&dst->cfg, &src->cfg)) /* EW_CF_MERGE fields, the same ALL kind */
    return EW_EBADPARAM;
  if (dst->count > EW__ROWS_MAX || src->count > EW__ROWS_MAX - dst->count)
    return EW_ERANGE;
  for (int r = 0; r < EW__NROLES; r++)
    if (src->acc[r] && ew__acc_fd_broken(src->acc[r]))
      return EW_ESTATE;
  ew__acc_t *win = dst->acc[EW__ROLE_WINDOW];
  const ew__acc_t *owin = src->acc[EW__ROLE_WINDOW];
  ew_window_span_t rule[2];
  bool lay_out = win != NULL; /* the window is laid out anew from the spans */
  if (win && !spans) {
    int rc = window_rule(dst, src, rule, &n, msg, cap);
    if (rc)
      return rc;
    spans = rule;
    lay_out = src->count != 0; /* nothing joins: dst's window stays as it is (it was emptied) */
  }
  if (win && owin && dst->count && src->count &&
      ew__window_labelled(win) != ew__window_labelled(owin))
    return merge_fail(msg, cap, "the %s rows carry labels and the %s do not: a window keeps labels "
                      "for every row or for none", ew__window_labelled(win) ? "stream's" : "state's",
                      ew__window_labelled(win) ? "state's" : "stream's");
  if (lay_out && spans) { /* every span inside its window, all of them inside dst's */
    uint64_t total = 0, held[2] = {ew__window_count(win), owin ? ew__window_count(owin) : 0};
    for (size_t i = 0; i < n; i++) {
      const ew_window_span_t *p = &spans[i];
      bool known = p->from == 0 || (p->from == 1 && owin);
      uint64_t h = known ? held[p->from] : 0;
      if (!known || p->first > h || p->rows > h - p->first)
        return merge_fail(msg, cap, "window span %zu (rows %llu..%llu of the %s window) lies "
                          "outside the rows that window holds (%llu)", i,
                          (unsigned long long)p->first, (unsigned long long)(p->first + p->rows),
                          p->from == 0 ? "stream's" : "state's", (unsigned long long)h);
      total += p->rows;
    }
    if (total > ew__window_cap(win))
      return merge_fail(msg, cap, "the window spans hold %llu rows together, more than this "
                        "stream's window of %zu", (unsigned long long)total,
                        ew__window_cap(win));
    /* the union keeps labels when dst does, or when dst is empty and the state's rows have them */
    bool labels = ew__window_labelled(win) ||
                  (!dst->count && owin && src->count && ew__window_labelled(owin));
    if (ew__window_combine(win, owin, spans, n, labels, ew__ws_thread()) != 0)
      return EW_ENOMEM;
  }
  if ((ew__acc_is_tokens(dst->acc[EW__ROLE_ALL]) &&
       ew__acc_tokens_merge_ready(dst->acc[EW__ROLE_ALL], src->acc[EW__ROLE_ALL]) != 0) ||
      (ew__acc_is_stats(dst->acc[EW__ROLE_ALL]) &&
       ew__acc_stats_merge_ready(dst->acc[EW__ROLE_ALL], src->acc[EW__ROLE_ALL]) != 0))
    return EW_ENOMEM;
    /* every accumulator whose kind has a union (the window was laid out above) */
  for (int r = 0; r < EW__NROLES; r++) {
    ew__acc_t *a = dst->acc[r];
    const ew__acc_t *o = src->acc[r];
    if (a && o && a->ops == o->ops && a->ops->merge)
      a->ops->merge(a, o);
  }
  if (win && src->window_rounded)
    dst->window_rounded = true;
  dst->count += src->count;
  invalidate(dst);
  return 0;
}

EW_EXPORT int ew_stream_merge(ew_stream_t *dst, const ew_stream_t *src) {
  return ew_stream_merge_ex(dst, src, NULL, 0, NULL, 0);
}

EW_EXPORT uint64_t ew_stream_count(const ew_stream_t *s) { return s->count; }

EW_EXPORT uint64_t ew_stream_window_count(const ew_stream_t *s) {
  if (s->frozen)
    return s->frozen_window_count;
  return s->acc[EW__ROLE_WINDOW] ? ew__window_count(s->acc[EW__ROLE_WINDOW]) : 0;
}

EW_EXPORT int ew_stream_window_tail(ew_stream_t *s, uint64_t rows) {
  ew__acc_t *w = s->acc[EW__ROLE_WINDOW];
  if (!w)
    return EW_ENOWINDOW;
  ew__ws_t *ws = ew__ws_thread();
  if (!ws)
    return EW_ENOMEM;
  s->win_tail_kept = true;
  ew__ws_mark_t mk = ew__ws_begin(ws);
  int rc = ew__window_tail(w, rows, ws);
  ew__stream_ws_used(s, ew__ws_end(ws, mk));
  return rc;
}

EW_EXPORT int ew_stream_window_kept(const ew_stream_t *s, uint64_t rows) {
  const ew__acc_t *w = s->acc[EW__ROLE_WINDOW];
  return w && ew__window_kept(w, rows);
}

EW_EXPORT size_t ew_stream_workspace_peak(const ew_stream_t *s) { return s->ws_peak; }

EW_EXPORT size_t ew_stream_memory(const ew_stream_t *s) {
  size_t t = sizeof *s;
  for (int r = 0; r < EW__NROLES; r++)
    if (s->acc[r])
      t += s->acc[r]->ops->bytes(s->acc[r]);
  if (s->has_live)
    t += ew__rop_bytes(&s->live);
  for (int i = 0; i < EW__NCACHE; i++)
    for (int c = 0; c < 2; c++)
      if (s->cache[i][c].eig)
        t += s->d * sizeof(double);
  t += s->topk_warm_k * s->d * sizeof(double);
  if (s->quick)
    t += sizeof *s->quick;
  for (int c = 0; c < 2; c++)
    if (s->skspec[c].theta)
      t += ew__skspec_bound(ew_config_solve_dim(&s->cfg)) / 2;
  t += s->kspec.cap * sizeof(double); /* the kernel metrics' last spectrum */
  if (s->cfg.stream_kind == EW_STREAM_PAIRED) /* its Schur spectra and A*, once asked for */
    t += ew__view_paired_cache_bytes(s);
  return t + s->ws_peak;
}

/* ---- the admission model ---- */

/* A paired stream: its blocks (and Ω), the Schur cache (2·fy spectra, A*); a query's solve
 * (linalg/schur.c), or a batch: its rows as converted (2x an f16 input as f32, or f64), the
 * batch's blocks and a chunk's features (acc/paired.c). */
static int paired_memory(const ew_config_t *cfg, size_t max_batch_bytes, ew_memory_model_t *out) {
  size_t fx = cfg->features == EW_FEATURES_RFF ? 2 * cfg->rff_dim : cfg->shape[0];
  size_t fy = cfg->features == EW_FEATURES_RFF ? 2 * cfg->rff_dim : cfg->shape[1];
  out->state = sizeof(ew_stream_t) + ew__kinds_state_bound(cfg) + (2 * fy + fx * fy) * sizeof(double);
  size_t q = ew__schur_ws(fx, fy) + ew__ws_size(fx * fy * sizeof(double));
  size_t rows = max_batch_bytes / (2 * cfg->dim) + 1; /* the most rows a batch holds (f16) */
  size_t b = 4 * max_batch_bytes + ew__acc_paired_prepare_bytes(cfg, rows);
  out->workspace = q > b ? q : b;
  return 0;
}

EW_EXPORT int ew_config_memory(const ew_config_t *cfg, size_t max_batch_bytes,
                               ew_memory_model_t *out) {
  if (ew_config_check(cfg, NULL, 0))
    return EW_EBADPARAM;
  if (cfg->stream_kind == EW_STREAM_PAIRED)
    return paired_memory(cfg, max_batch_bytes, out);
  size_t d = cfg->dim, W = cfg->window;
  bool sk = ew_config_sketched(cfg);
  size_t dd = d * d * sizeof(double);
  /* the same terms ew_stream_memory adds up, at their largest: every kind's state, then caches */
  size_t state = sizeof(ew_stream_t) + ew__kinds_state_bound(cfg);
  state += EW__NCACHE * 2 * d * sizeof(double); /* spectrum caches */
  state += EW__WARM_MAX * d * sizeof(double); /* warm top-k vectors */
  state += sizeof(ew__quick_t);                /* the quick estimate's slot */
  size_t q;
  if (sk) { /* the sketch's spectrum: its rows scaled (m×d, m ≤ 2ℓ+1), their Gram and dsyevd's
               work, vectors for top-k (k ≤ 65536 but at most m useful), two bracket spectra */
    size_t m = ew_config_solve_dim(cfg);
    state += ew__skspec_bound(m);
    q = (m * d + m * m + 1 + 6 * m + 2 * m * m + m) * sizeof(double) + (3 + 5 * m) * sizeof(int) +
        (m * d + 4 * d) * sizeof(double);
  } else { /* dsyevd with vectors on a d×d snapshot (A, Z, work 1+6d+2d², w, AZ) */
    q = dd + dd + (1 + 6 * d + 2 * d * d) * sizeof(double) + (3 + 5 * d) * sizeof(int) +
        d * sizeof(double) + 64 * d * sizeof(double);
  }
  if (W) { /* window rows in f64 and f32, their Gram when W < d, plus a snapshot's eigensolve */
    size_t wq = (W * d + d) * sizeof(double) + W * d * sizeof(float) +
                (W < d ? W * W * sizeof(double) : dd) + (2 * d + 1) * sizeof(double);
    if (wq > q)
      q = wq;
  }
  /* one batch: converted rows (up to 2x the input for f16/bf16 -> f32) and an f32 copy for the
   * window, a block of rows centred in f64 (moments.c: EW__GRAM_BLOCK rows, or 2x an f32 input
   * of fewer rows) and the d×d Gram in f64; with a window, its rebuild over W rows (another
   * centred block and the window's own f64 Gram) */
  size_t blk = EW__GRAM_BLOCK * d * sizeof(double);
  size_t in2 = 2 * 2 * max_batch_bytes;
  size_t b = in2 + (in2 < blk ? in2 : blk) +
             (sk ? 2 * d * sizeof(double) : dd) + 4 * d * sizeof(double);
  if (W && W >= d) /* a window of fewer rows than d keeps rows only: no rebuild */
    b += blk + dd;
  out->state = state;
  out->workspace = q > b ? q : b;
  return 0;
}
