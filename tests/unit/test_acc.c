/* test_acc.c — the accumulator interface (lib/acc/) and workspaces (lib/core/ws.c).
 *
 * Workspaces: live allocations never overlap (each is filled with its own byte and checked after
 * every other allocation), are 64-byte aligned, survive a release of later ones; a reservation
 * makes the allocations it covers succeed without a new chunk; peaks are measured per bracket and
 * brackets nest.
 * Kinds, driven only through their ops: dense and decay moments of f64 rows match a two-pass f64
 * computation on the rows they describe (decay: weights 2^(-age/half-life)) to 1e-12 relative,
 * and a window's (f32 rows, f32 Gram) is within the rounding bound it carries (moments.noise);
 * dense merge of three parts equals the whole; scale multiplies weight and M2; save → load → save
 * is byte-identical and the loaded moments and rows are bit-identical; a section of the wrong
 * length is refused. Streams: ew_stream_memory is the state plus the peak workspace, and that
 * peak covers what an ingest and a query must hold. */
#include "ew_internal.h"
#include "tap.h"
#include "membuf.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* ---- workspaces ---- */

static void workspace_allocations_never_alias(void) {
  ew__ws_t *ws = ew__ws_new();
  enum { N = 40 };
  unsigned char *p[N];
  size_t sz[N];
  unsigned r = 12345;
  ew__ws_mark_t half = {0};
  for (int i = 0; i < N; i++) {
    r = r * 1103515245u + 12345u;
    sz[i] = (i % 7 == 3) ? (size_t)200000 + r % 100000 : 1 + r % 5000; /* some outgrow a chunk */
    if (i == N / 2)
      half = ew__ws_mark(ws);
    p[i] = ew__ws_alloc(ws, sz[i]);
    CHECK(p[i] && (uintptr_t)p[i] % 64 == 0, "allocation %d aligned", i);
    memset(p[i], i + 1, sz[i]);
  }
  int bad = 0;
  for (int i = 0; i < N; i++)
    for (size_t k = 0; k < sz[i]; k++)
      bad += p[i][k] != (unsigned char)(i + 1);
  CHECK(bad == 0, "%d bytes overwritten by a later allocation", bad);
  ew__ws_release(ws, half); /* the second half goes; the first must survive new allocations */
  for (int i = N / 2; i < N; i++) {
    unsigned char *q = ew__ws_alloc(ws, sz[i]);
    memset(q, 0xee, sz[i]);
  }
  bad = 0;
  for (int i = 0; i < N / 2; i++)
    for (size_t k = 0; k < sz[i]; k++)
      bad += p[i][k] != (unsigned char)(i + 1);
  CHECK(bad == 0, "%d bytes of kept allocations overwritten after a release", bad);
  ew__ws_free(ws);
}

static void workspace_reserve_then_no_allocation(void) {
  ew__ws_t *ws = ew__ws_new();
  (void)ew__ws_alloc(ws, 1000); /* something live, so the reservation must look past it */
  size_t sizes[] = {70000, 5, 300000, 64, 129};
  size_t total = 0;
  for (size_t i = 0; i < 5; i++)
    total += ew__ws_size(sizes[i]);
  CHECK(ew__ws_reserve(ws, total) == 0, "reserve");
  size_t held = ew__ws_held(ws);
  for (size_t i = 0; i < 5; i++)
    CHECK(ew__ws_alloc(ws, sizes[i]) != NULL, "alloc %zu", i);
  CHECK(ew__ws_held(ws) == held, "a reserved allocation made a chunk: %zu -> %zu", held,
        ew__ws_held(ws));
  ew__ws_free(ws);
}

static void workspace_peaks_nest_and_chunks_merge(void) {
  ew__ws_t *ws = ew__ws_new();
  ew__ws_mark_t outer = ew__ws_begin(ws);
  (void)ew__ws_alloc(ws, 1000);
  ew__ws_mark_t inner = ew__ws_begin(ws);
  (void)ew__ws_alloc(ws, 500000);
  size_t pin = ew__ws_end(ws, inner);
  (void)ew__ws_alloc(ws, 3000);
  size_t pout = ew__ws_end(ws, outer);
  CHECK(pin == ew__ws_size(500000), "inner peak %zu", pin);
  CHECK(pout == ew__ws_size(1000) + ew__ws_size(500000), "outer peak %zu counts the inner one",
        pout);
  /* the operation spanned two chunks; once empty they become one, and the same operation then
   * fits without allocating */
  ew__ws_mark_t again = ew__ws_begin(ws);
  (void)ew__ws_alloc(ws, 1000);
  (void)ew__ws_alloc(ws, 500000);
  size_t held = ew__ws_held(ws);
  (void)ew__ws_alloc(ws, 3000);
  CHECK(ew__ws_held(ws) == held && held >= pout, "merged chunk %zu for a peak of %zu", held, pout);
  ew__ws_end(ws, again);
  ew__ws_trim(ws);
  CHECK(ew__ws_held(ws) == 0, "trim frees everything");
  ew__ws_free(ws);
}

/* ---- kinds ---- */

#define D 9

/* rows in f32 with an offset and unequal spreads */
static float *rows_make(size_t n, unsigned seed) {
  float *x = malloc(n * D * sizeof(float));
  unsigned r = seed;
  for (size_t i = 0; i < n * D; i++) {
    r = r * 1103515245u + 12345u;
    x[i] = (float)((r >> 8) % 4001) / 1000.0f * (float)(1 + i % D) + 5.0f;
  }
  return x;
}

/* Two-pass weighted moments of rows[lo, hi) with weight g^(hi-1-i) for row i. */
static void reference(const float *x, size_t lo, size_t hi, double g, double *w, double *mean,
                      double *m2) {
  double W = 0;
  memset(mean, 0, D * sizeof(double));
  memset(m2, 0, D * D * sizeof(double));
  for (size_t i = lo; i < hi; i++) {
    double wi = pow(g, (double)(hi - 1 - i));
    W += wi;
    for (size_t j = 0; j < D; j++)
      mean[j] += wi * x[i * D + j];
  }
  for (size_t j = 0; j < D; j++)
    mean[j] /= W;
  for (size_t i = lo; i < hi; i++) {
    double wi = pow(g, (double)(hi - 1 - i));
    for (size_t a = 0; a < D; a++)
      for (size_t b = 0; b < D; b++)
        m2[a * D + b] += wi * (x[i * D + a] - mean[a]) * (x[i * D + b] - mean[b]);
  }
  *w = W;
}

/* Feeds x in batches of the given sizes through prepare, apply_ws (reserved) and apply; as f64
 * rows (the same values) when f64. */
static void feed(ew__acc_t *a, const float *x, const size_t *sizes, size_t nb, bool f64,
                 ew__ws_t *ws) {
  size_t off = 0;
  for (size_t k = 0; k < nb; k++) {
    ew__ws_mark_t mk = ew__ws_mark(ws);
    const float *b = x + off * D;
    double *b64 = ew__ws_alloc(ws, sizes[k] * D * sizeof(double));
    for (size_t i = 0; i < sizes[k] * D; i++)
      b64[i] = b[i];
    ew__in_t in = {.n = sizes[k], .d = D, .f64 = f64, .x32 = f64 ? NULL : b,
                   .x64 = f64 ? b64 : NULL, .rows32 = b, .maintain = true};
    ew__prep_t p;
    CHECK(a->ops->prepare(a, &in, &p, ws, ws) == 0, "%s prepare", a->ops->name);
    CHECK(ew__ws_reserve(ws, a->ops->apply_ws(a, &in)) == 0, "reserve");
    a->ops->apply(a, &in, &p, ws);
    ew__ws_release(ws, mk);
    off += sizes[k];
  }
}

/* Largest relative error of weight and mean, and largest absolute error of M2's entries. */
static double max_relerr_moments(const ew__moments_t *m, double w, const double *mean,
                                 const double *m2, double *m2_abs) {
  double scale = 0, err = fabs(m->w - w) / w, abs = 0;
  for (size_t i = 0; i < D * D; i++)
    scale = fmax(scale, fabs(m2[i]));
  for (size_t j = 0; j < D; j++) {
    err = fmax(err, fabs(m->mean[j] - mean[j]) / fabs(mean[j]));
    for (size_t i = 0; i <= j; i++)
      abs = fmax(abs, fabs(m->m2[j * D + i] - m2[i * D + j]));
  }
  if (m2_abs)
    *m2_abs = abs;
  return fmax(err, abs / scale);
}

static const ew__moments_t *moments(ew__acc_t *a, ew__ws_t *ws) {
  ew__src_t sv;
  CHECK(a->ops->view(a, EW__WANT_MOMENTS | EW__WANT_ROWS, 0, &sv, ws) == 0, "view");
  return sv.mom;
}

static void each_kind_matches_a_two_pass_reference(void) {
  size_t sizes[] = {13, 40, 1, 29, 17}, N = 100;
  float *x = rows_make(N, 3);
  ew__ws_t *ws = ew__ws_new();
  struct {
    ew__acc_t *a;
    size_t lo;
    double g;
  } kinds[] = {{ew__acc_dense_new(D), 0, 1.0},
               {ew__acc_decay_new(D, 25.0), 0, exp2(-1.0 / 25.0)},
               {ew__acc_window_new(D, 37), N - 37, 1.0}};
  for (int k = 0; k < 3; k++) {
    ew__acc_t *a = kinds[k].a;
    bool f64 = k < 2; /* a window keeps f32 rows and forms their Gram in f32 */
    feed(a, x, sizes, 5, f64, ws);
    double w, mean[D], m2[D * D], abs;
    reference(x, kinds[k].lo, N, kinds[k].g, &w, mean, m2);
    const ew__moments_t *m = moments(a, ws);
    double err = max_relerr_moments(m, w, mean, m2, &abs);
    if (f64)
      CHECK(err <= 1e-12, "%s: relative error %.3g", a->ops->name, err);
    else /* f32: M2 within the rounding bound the accumulator carries, the mean to 1e-6 */
      CHECK(abs <= m->noise && err <= 1e-6, "%s: |ΔM2| %.3g vs its bound %.3g, relative %.3g",
            a->ops->name, abs, m->noise, err);
    CHECK(m->n == N - kinds[k].lo, "%s counts %llu rows", a->ops->name,
          (unsigned long long)m->n);
    a->ops->free(a);
  }
  CHECK(ew__ws_held(ws) > 0, "the workspace was used");
  ew__ws_free(ws);
  free(x);
}

static void dense_merge_of_parts_equals_the_whole_and_scale(void) {
  size_t N = 90;
  float *x = rows_make(N, 11);
  ew__ws_t *ws = ew__ws_new();
  ew__acc_t *whole = ew__acc_dense_new(D), *part[3];
  size_t all[] = {90}, one[] = {30};
  feed(whole, x, all, 1, true, ws);
  for (int i = 0; i < 3; i++) {
    part[i] = ew__acc_dense_new(D);
    feed(part[i], x + (size_t)i * 30 * D, one, 1, true, ws);
  }
  part[0]->ops->merge(part[0], part[1]);
  part[0]->ops->merge(part[0], part[2]);
  const ew__moments_t *m = moments(part[0], ws), *t = moments(whole, ws);
  double full[D * D];
  for (size_t j = 0; j < D; j++)
    for (size_t i = 0; i <= j; i++)
      full[i * D + j] = full[j * D + i] = t->m2[j * D + i];
  double err = max_relerr_moments(m, t->w, t->mean, full, NULL);
  CHECK(m->n == 90 && err <= 1e-12, "merged: n %llu, relative error %.3g",
        (unsigned long long)m->n, err);
  ew__acc_t *win = ew__acc_window_new(D, 10);
  CHECK(win->ops->merge == NULL && win->ops->scale == NULL, "a window has no union, no decay");
  double w0 = t->w, m00 = t->m2[0], mean0 = t->mean[0];
  whole->ops->scale(whole, 0.25);
  CHECK(t->w == 0.25 * w0 && t->m2[0] == 0.25 * m00 && t->mean[0] == mean0,
        "scale: weight and M2 times g, mean unchanged");
  for (int i = 0; i < 3; i++)
    part[i]->ops->free(part[i]);
  whole->ops->free(whole);
  win->ops->free(win);
  ew__ws_free(ws);
  free(x);
}

static void save_load_is_bit_identical_for_every_kind(void) {
  size_t N = 80, sizes[] = {50, 30};
  float *x = rows_make(N, 5);
  ew__ws_t *ws = ew__ws_new();
  ew__acc_t *a[3] = {ew__acc_dense_new(D), ew__acc_decay_new(D, 7.5), ew__acc_window_new(D, 64)};
  ew__acc_t *b[3] = {ew__acc_dense_new(D), ew__acc_decay_new(D, 7.5), ew__acc_window_new(D, 64)};
  for (int k = 0; k < 3; k++) {
    feed(a[k], x, sizes, 2, false, ws);
    buf_t one = {0}, two = {0};
    ew__wr_t w = {.fn = buf_write, .ctx = &one};
    a[k]->ops->save(a[k], &w);
    CHECK(w.err == 0 && one.len == a[k]->ops->saved_len(a[k]), "%s: %zu bytes, saved_len %llu",
          a[k]->ops->name, one.len, (unsigned long long)a[k]->ops->saved_len(a[k]));
    ew__rd_t r = {.fn = buf_read, .ctx = &one};
    b[k]->ops->load(b[k], &r, one.len);
    CHECK(r.err == 0, "%s: load", a[k]->ops->name);
    ew__wr_t w2 = {.fn = buf_write, .ctx = &two};
    b[k]->ops->save(b[k], &w2);
    CHECK(two.len == one.len && memcmp(one.p, two.p, one.len) == 0, "%s: saved again, same bytes",
          a[k]->ops->name);
    ew__src_t sa, sb;
    a[k]->ops->view(a[k], EW__WANT_MOMENTS | EW__WANT_ROWS, 0, &sa, ws);
    b[k]->ops->view(b[k], EW__WANT_MOMENTS | EW__WANT_ROWS, 0, &sb, ws);
    int same = sa.mom->n == sb.mom->n && sa.mom->w == sb.mom->w && sa.mom->noise == sb.mom->noise &&
               memcmp(sa.mom->mean, sb.mom->mean, D * sizeof(double)) == 0;
    for (size_t j = 0; j < D; j++) /* the upper triangle (the lower is unspecified) */
      same = same && memcmp(sa.mom->m2 + j * D, sb.mom->m2 + j * D, (j + 1) * sizeof(double)) == 0;
    CHECK(same, "%s: loaded moments are bit-identical", a[k]->ops->name);
    if (sa.keeps_rows) {
      size_t n0 = sa.nseg[0] + sa.nseg[1];
      float *ra = malloc(n0 * D * sizeof(float));
      memcpy(ra, sa.seg[0], sa.nseg[0] * D * sizeof(float));
      memcpy(ra + sa.nseg[0] * D, sa.seg[1], sa.nseg[1] * D * sizeof(float));
      CHECK(sb.nseg[0] + sb.nseg[1] == n0 &&
                memcmp(ra, sb.seg[0], sb.nseg[0] * D * sizeof(float)) == 0,
            "%s: the rows, in arrival order", a[k]->ops->name);
      free(ra);
    }
    /* a section one byte short is refused with a sentence */
    ew__acc_t *c = k == 2 ? ew__acc_window_new(D, 64) : ew__acc_dense_new(D);
    char msg[160] = "";
    ew__rd_t bad = {.fn = buf_read, .ctx = &one, .msg = msg, .cap = sizeof msg};
    one.off = 0;
    c->ops->load(c, &bad, one.len - 1);
    CHECK(bad.err == EW_ESTATE && strstr(msg, "wrong length"), "%s: short section: %s",
          a[k]->ops->name, msg);
    c->ops->free(c);
    CHECK(a[k]->ops->bytes(a[k]) >= (D + D * D) * sizeof(double), "%s: bytes", a[k]->ops->name);
    free(one.p);
    free(two.p);
    a[k]->ops->free(a[k]);
    b[k]->ops->free(b[k]);
  }
  ew__ws_free(ws);
  free(x);
}

/* ---- streams report their workspace ---- */

static void stream_memory_adds_the_peak_workspace(void) {
  size_t d = 256, n = 512;
  ew_config_t c;
  ew_config_default(&c, d);
  c.window = 0;
  ew_stream_t *s = NULL;
  CHECK(ew_stream_create(&c, &s) == 0, "create");
  size_t m0 = ew_stream_memory(s);
  CHECK(ew_stream_workspace_peak(s) == 0, "nothing run yet");
  float *x = malloc(n * d * sizeof(float));
  for (size_t i = 0; i < n * d; i++)
    x[i] = (float)((i * 2654435761u) % 1000) / 1000.0f;
  CHECK(ew_stream_ingest(s, x, EW_F32, n, d) == 0, "ingest");
  size_t after_ingest = ew_stream_workspace_peak(s);
  /* an ingest holds a block of rows centred in f64 (EW__GRAM_BLOCK of them) and the f64 batch
   * Gram at once; the caller's aligned f32 rows are read where they lie */
  size_t need = EW__GRAM_BLOCK * d * sizeof(double) + d * d * sizeof(double);
  CHECK(after_ingest >= need, "ingest peak %zu >= %zu", after_ingest, need);
  CHECK(ew_stream_memory(s) == m0 + after_ingest, "memory = state + peak (%zu, %zu, %zu)",
        ew_stream_memory(s), m0, after_ingest);
  ew_query_t q = {.metric = "entropy", .center = -1, .source = EW_SOURCE_DEFAULT};
  ew_result_t r;
  CHECK(ew_stream_query(s, &q, &r) == 0, "entropy");
  ew_result_clear(&r);
  size_t after_query = ew_stream_workspace_peak(s);
  CHECK(after_query >= d * d * sizeof(double), "a solve holds a d×d snapshot: %zu", after_query);
  CHECK(ew_thread_scratch_bytes() >= after_query, "the thread holds what the peak used");
  ew_thread_scratch_release();
  CHECK(ew_thread_scratch_bytes() == 0, "released");
  free(x);
  ew_stream_free(s);
}

int main(void) {
  TAP_RUN(workspace_allocations_never_alias);
  TAP_RUN(workspace_reserve_then_no_allocation);
  TAP_RUN(workspace_peaks_nest_and_chunks_merge);
  TAP_RUN(each_kind_matches_a_two_pass_reference);
  TAP_RUN(dense_merge_of_parts_equals_the_whole_and_scale);
  TAP_RUN(save_load_is_bit_identical_for_every_kind);
  TAP_RUN(stream_memory_adds_the_peak_workspace);
  TAP_DONE();
}
