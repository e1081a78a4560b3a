/* window.c — the window kind: the last W preprocessed rows (f32, in a ring) and their own exact
 * moments, behind the accumulator interface (acc.h).
 *
 * Each push merges the new rows' statistics, computes the statistics of the rows about to be
 * overwritten straight from the ring (one more syrk of the same size) and un-merges them, then
 * writes the new rows. Un-merging is subtractive, so rounding could in principle drift; measured
 * drift is ~1e-14 after dozens of turnovers, and the moments are rebuilt from the ring every
 * `rebuild_every` rows (64 turnovers) as cheap insurance. The window is never decayed.
 *
 * Maintenance is optional per push (the stream decides, see ew_window_mode_t): an unmaintained
 * push only writes the ring and marks the moments stale; the view rebuilds them with one
 * pass over the ring when a query needs them.
 *
 * A caller that reads a tail of the window (the rows of the last few training steps) may keep the
 * moments on that tail instead (ew__window_tail): the moments then describe rows [mlo, mhi) of
 * the rows ever pushed, batches only write the ring, and each call moves the range with one
 * un-merge of the rows that left it and one merge of the rows that joined, when those are still
 * in the ring (else one pass over the tail). The noise rule above applies to it too.
 *
 * A window of fewer rows than dimensions (cap < d) keeps its rows only: its moments would be a
 * d×d matrix of rank < cap (2 GiB at d = 16384, against 64 MiB of rows for 1024 of them), and
 * every answer comes cheaper from the rows (the N×N Gram, Zᵀ(Zx)/N; view/). Its view offers no
 * moments. */
#include "acc.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define EW__WINDOW_REBUILD_TURNOVERS 64
/* rebuild when the maintained moments' noise exceeds this many times a fresh pass's */
#define EW__WINDOW_NOISE_REBUILD 8.0

#define TAG_WIND ((uint32_t)'W' | (uint32_t)'I' << 8 | (uint32_t)'N' << 16 | (uint32_t)'D' << 24)

typedef struct {
  ew__acc_t base;
  size_t d, cap;     /* capacity W rows */
  float *rows;       /* cap×d ring */
  size_t head;       /* index of the oldest row */
  size_t count;      /* rows held, <= cap */
  ew__moments_t mom; /* exact moments of the held rows (none when rows_only) */
  bool rows_only;    /* cap < d: no moments are kept */
  uint64_t total;    /* rows ever pushed since the last clear: the ring holds [total − count,
                        total) */
  bool synced;       /* mom describes exactly rows [mlo, mhi) (absolute, within the ring) */
  uint64_t mlo, mhi;
  uint64_t since_rebuild;   /* rows pushed since the moments were last rebuilt from the ring */
  uint64_t rebuild_every;   /* rebuild after this many rows (a multiple of cap) */
  double noise2;            /* Σ of squared noise bounds of the merges and un-merges since the
                               last rebuild (they are independent roundings: mom.noise is the
                               root of this sum) */
  double *tmp_shift, *tmp_s; /* d each: statistics of the rows being merged or expired */
  uint32_t *labels;          /* cap labels beside the rows (the same ring), or NULL: the window
                                keeps none (a stream's first labelled batch decides) */
} ew__window_t;

static void window_free(ew__acc_t *a);

static int window_init(ew__window_t *w, size_t d, size_t cap) {
  w->d = d;
  w->cap = cap;
  w->rebuild_every = (uint64_t)cap * EW__WINDOW_REBUILD_TURNOVERS;
  w->synced = true;
  w->rows_only = cap < d;
  w->rows = malloc(cap * d * sizeof(float));
  w->tmp_shift = malloc(d * sizeof(double));
  w->tmp_s = malloc(d * sizeof(double));
  if (!w->rows || !w->tmp_shift || !w->tmp_s ||
      (!w->rows_only && ew__moments_init(&w->mom, d) != 0))
    return EW_ENOMEM;
  return 0;
}

static void window_free(ew__acc_t *a) {
  ew__window_t *w = (ew__window_t *)a;
  if (!w)
    return;
  free(w->rows);
  free(w->labels);
  free(w->tmp_shift);
  free(w->tmp_s);
  ew__moments_free(&w->mom);
  free(w);
}

static void window_clear(ew__acc_t *a) {
  ew__window_t *w = (ew__window_t *)a;
  w->head = 0;
  w->count = 0;
  w->total = w->mlo = w->mhi = 0;
  w->since_rebuild = 0;
  w->synced = true;
  free(w->labels); /* a reset stream is decided again by its next batch */
  w->labels = NULL;
  if (!w->rows_only)
    ew__moments_clear(&w->mom);
}

static size_t window_bytes(const ew__acc_t *a) {
  const ew__window_t *w = (const ew__window_t *)a;
  return sizeof *w + w->cap * w->d * sizeof(float) + 2 * w->d * sizeof(double) +
         (w->labels ? w->cap * sizeof(uint32_t) : 0) +
         (w->rows_only ? 0 : ew__moments_bytes(&w->mom));
}

size_t ew__acc_window_bound(size_t d, size_t cap) { /* labels counted: a stream may have them */
  return sizeof(ew__window_t) + cap * (d * sizeof(float) + sizeof(uint32_t)) +
         2 * d * sizeof(double) + (cap < d ? 0 : (d + d * d) * sizeof(double));
}

bool ew__window_labelled(const ew__acc_t *a) { return ((const ew__window_t *)a)->labels != NULL; }

int ew__window_label_ready(ew__acc_t *a) {
  ew__window_t *w = (ew__window_t *)a;
  if (!w->labels && !(w->labels = calloc(w->cap, sizeof *w->labels)))
    return EW_ENOMEM;
  return 0;
}

/* n labels (NULL: none) at ring position `at` on, wrapping. */
static void labels_at(ew__window_t *w, size_t at, const uint32_t *labels, size_t n) {
  if (!w->labels || !labels)
    return;
  size_t l1 = n < w->cap - at ? n : w->cap - at;
  memcpy(w->labels + at, labels, l1 * sizeof *labels);
  memcpy(w->labels, labels + l1, (n - l1) * sizeof *labels);
}

bool ew__window_rows_only(const ew__acc_t *a) { return ((const ew__window_t *)a)->rows_only; }

/* The held rows as up to two contiguous ring segments, oldest first. */
static void segments(const ew__window_t *w, size_t first, size_t len, const float **a, size_t *na,
                     const float **b, size_t *nb) {
  size_t start = (w->head + first) % w->cap;
  size_t l1 = len < w->cap - start ? len : w->cap - start;
  *a = w->rows + start * w->d;
  *na = l1;
  *b = w->rows;
  *nb = len - l1;
}

/* Workspace of a rebuild or a push: a d×d f64 Gram, the statistics' temporaries (a block of
 * rows centred in f64), and a merge. */
static size_t window_ws(size_t d, size_t rows) {
  return ew__ws_size(d * d * sizeof(double)) + EW__BSTATS_WS(rows, d) + EW__MOMENTS_WS(d);
}

/* The first row the ring holds, as an absolute row number. */
static uint64_t ring_lo(const ew__window_t *w) { return w->total - w->count; }

/* True when the moments describe every row the ring holds. */
static bool whole(const ew__window_t *w) {
  return w->synced && w->mlo == ring_lo(w) && w->mhi == w->total;
}

/* The statistics of rows [lo, hi) (absolute, held in the ring) into *bs, with the d×d Gram g. */
static int range_stats(ew__window_t *w, uint64_t lo, uint64_t hi, double *g, ew__ws_t *ws,
                       ew__bstats_t *bs) {
  const float *a, *b;
  size_t na, nb;
  segments(w, (size_t)(lo - ring_lo(w)), (size_t)(hi - lo), &a, &na, &b, &nb);
  return ew__bstats_f32_2(a, na, b, nb, w->d, w->tmp_shift, w->tmp_s, g, ws, bs);
}

/* Moments of the last n held rows, from one pass over them. */
static int rebuild_tail(ew__window_t *w, size_t n, ew__ws_t *ws) {
  ew__moments_clear(&w->mom);
  w->since_rebuild = 0;
  w->noise2 = 0;
  w->synced = true;
  w->mlo = w->mhi = w->total;
  if (n == 0)
    return 0;
  ew__bstats_t bs;
  ew__ws_mark_t mk = ew__ws_mark(ws);
  double *g = ew__ws_alloc(ws, w->d * w->d * sizeof(double));
  int rc = g ? range_stats(w, w->total - n, w->total, g, ws, &bs) : EW_ENOMEM;
  if (rc != 0) {
    ew__ws_release(ws, mk);
    w->synced = false; /* never leave moments that claim to match the ring */
    return rc;
  }
  ew__moments_add(&w->mom, &bs, ws);
  w->noise2 = bs.noise * bs.noise;
  w->mlo = w->total - n;
  ew__ws_release(ws, mk);
  return 0;
}

static int window_rebuild(ew__window_t *w, ew__ws_t *ws) { return rebuild_tail(w, w->count, ws); }

/* Writes n < cap rows (and their labels, when the window keeps them) at the tail, dropping the
 * oldest as needed (no moments). */
static void ring_write(ew__window_t *w, const float *rows, const uint32_t *labels, size_t n) {
  size_t d = w->d;
  size_t excess = w->count + n > w->cap ? w->count + n - w->cap : 0;
  w->head = (w->head + excess) % w->cap;
  w->count -= excess;
  size_t tail = (w->head + w->count) % w->cap;
  labels_at(w, tail, labels, n);
  size_t l1 = n < w->cap - tail ? n : w->cap - tail;
  memcpy(w->rows + tail * d, rows, l1 * d * sizeof(float));
  if (n > l1)
    memcpy(w->rows, rows + l1 * d, (n - l1) * d * sizeof(float));
  w->count += n;
}

/* Pushes n preprocessed f32 rows. With maintain, and moments on every held row, the oldest
 * rows expire and are un-merged and the new ones merged: the moments stay on the whole ring.
 * Otherwise only the ring is written; moments on a range of rows (a kept tail) stay valid while
 * the ring still holds that range, and are marked stale once it does not. `same` (optional) are
 * the batch statistics of exactly these f32 rows, unweighted, to reuse. Cannot fail once
 * window_ws(d, max(n, cap)) bytes are reserved. */
static void window_push(ew__window_t *w, const float *rows, const uint32_t *labels, size_t n,
                        const ew__bstats_t *same, bool maintain, ew__ws_t *ws) {
  size_t d = w->d;
  if (n == 0)
    return;
  if (n >= w->cap) /* the batch alone fills the window: its last cap labels */
    labels_at(w, 0, labels ? labels + (n - w->cap) : NULL, w->cap);
  if (w->rows_only) {
    if (n >= w->cap) {
      memcpy(w->rows, rows + (n - w->cap) * d, w->cap * d * sizeof(float));
      w->head = 0;
      w->count = w->cap;
    } else {
      ring_write(w, rows, labels, n);
    }
    w->total += n;
    return;
  }
  if (n >= w->cap) { /* the batch alone fills the window: keep its last cap rows */
    memcpy(w->rows, rows + (n - w->cap) * d, w->cap * d * sizeof(float));
    w->head = 0;
    w->count = w->cap;
    w->total += n;
    if (!maintain)
      w->synced = false;
    else
      (void)window_rebuild(w, ws); /* reserved: cannot fail */
    return;
  }
  if (!maintain || !whole(w)) {
    ring_write(w, rows, labels, n);
    w->total += n;
    if (w->mlo < ring_lo(w)) /* rows the moments describe left the ring */
      w->synced = false;
    return;
  }
  ew__ws_mark_t mk = ew__ws_mark(ws);
  double *g = ew__ws_alloc(ws, d * d * sizeof(double)); /* reserved */
  ew__bstats_t bs;
  if (same)
    bs = *same;
  else
    (void)ew__bstats_f32(rows, n, d, NULL, NULL, w->tmp_shift, w->tmp_s, g, ws, &bs);
  ew__moments_add(&w->mom, &bs, ws);
  w->noise2 += bs.noise * bs.noise;
  size_t excess = w->count + n > w->cap ? w->count + n - w->cap : 0;
  if (excess) {
    const float *a, *b;
    size_t na, nb;
    segments(w, 0, excess, &a, &na, &b, &nb);
    ew__bstats_t ex;
    (void)ew__bstats_f32_2(a, na, b, nb, d, w->tmp_shift, w->tmp_s, g, ws, &ex);
    ew__moments_sub(&w->mom, &ex, ws);
    w->noise2 += ex.noise * ex.noise;
    w->head = (w->head + excess) % w->cap;
    w->count -= excess;
  }
  ew__ws_release(ws, mk);
  w->mom.noise = sqrt(w->noise2);
  ring_write(w, rows, labels, n);
  w->total += n;
  w->mlo = ring_lo(w);
  w->mhi = w->total;
  w->since_rebuild += n;
  /* Rebuild on schedule, or at once when un-merged rows dwarfed what remains (after rows 1000x
   * larger leave, their rounding is most of the state: the condition number came out 298 for a
   * true 103): the noise is then far above what a fresh pass over the ring would carry. */
  double fresh = ew__noise_bound(w->count, 0x1p-53, ew__moments_trace(&w->mom));
  if (w->since_rebuild >= w->rebuild_every || w->mom.noise > EW__WINDOW_NOISE_REBUILD * fresh)
    (void)window_rebuild(w, ws);
}

uint64_t ew__window_total(const ew__acc_t *a) { return ((const ew__window_t *)a)->total; }

bool ew__window_adopt(ew__acc_t *a, const ew__moments_t *m, uint64_t lo, uint64_t hi) {
  ew__window_t *w = (ew__window_t *)a;
  if (w->rows_only || lo < ring_lo(w) || hi > w->total || hi - lo != m->n ||
      (w->synced && w->mhi >= hi)) /* not held any more, or what the window keeps is newer */
    return false;
  ew__moments_copy(&w->mom, m);
  w->noise2 = m->noise * m->noise;
  w->since_rebuild = 0;
  w->mlo = lo;
  w->mhi = hi;
  w->synced = true;
  return true;
}

bool ew__window_kept(const ew__acc_t *a, uint64_t n) {
  const ew__window_t *w = (const ew__window_t *)a;
  if (n > w->count)
    n = w->count;
  return !w->rows_only && w->synced && w->mhi == w->total && w->mhi - w->mlo == n;
}

int ew__window_tail(ew__acc_t *a, uint64_t n, ew__ws_t *ws) {
  ew__window_t *w = (ew__window_t *)a;
  if (w->rows_only)
    return 0;
  if (n > w->count)
    n = w->count;
  uint64_t lo = w->total - n, hi = w->total;
  ew__ws_mark_t mk = ew__ws_mark(ws);
  int rc = ew__ws_reserve(ws, window_ws(w->d, n));
  if (rc) {
    ew__ws_release(ws, mk);
    return rc;
  }
  if (w->synced && w->mlo == lo && w->mhi == hi) {
    ew__ws_release(ws, mk);
    return 0;
  }
  /* the rows that leave the range, and those that join it (before it, after it) */
  bool overlap = w->synced && w->mlo >= ring_lo(w) && lo < w->mhi && w->mlo < hi;
  uint64_t out = overlap && lo > w->mlo ? lo - w->mlo : 0;
  uint64_t in_before = overlap && lo < w->mlo ? w->mlo - lo : 0;
  uint64_t in_after = overlap ? hi - w->mhi : 0;
  if (!overlap || out + in_before + in_after >= n) { /* one pass over the tail costs less */
    rc = rebuild_tail(w, (size_t)n, ws);
    ew__ws_release(ws, mk);
    return rc;
  }
  double *g = ew__ws_alloc(ws, w->d * w->d * sizeof(double)); /* reserved */
  ew__bstats_t bs;
  struct { uint64_t lo, hi; bool add; } moves[3] = {
      {w->mlo, w->mlo + out, false}, {lo, lo + in_before, true}, {w->mhi, hi, true}};
  for (int k = 0; k < 3; k++) {
    if (moves[k].hi == moves[k].lo)
      continue;
    (void)range_stats(w, moves[k].lo, moves[k].hi, g, ws, &bs); /* reserved: cannot fail */
    if (moves[k].add)
      ew__moments_add(&w->mom, &bs, ws);
    else
      ew__moments_sub(&w->mom, &bs, ws);
    w->noise2 += bs.noise * bs.noise;
  }
  w->mom.noise = sqrt(w->noise2);
  w->mlo = lo;
  w->mhi = hi;
  w->since_rebuild += out + in_before + in_after;
  double fresh = ew__noise_bound(n, 0x1p-53, ew__moments_trace(&w->mom));
  if (w->since_rebuild >= w->rebuild_every || w->mom.noise > EW__WINDOW_NOISE_REBUILD * fresh)
    rc = rebuild_tail(w, (size_t)n, ws);
  ew__ws_release(ws, mk);
  return rc;
}

/* ---- the interface ---- */

/* Nothing to prepare: which rows expire depends on the state at apply time. */
static int window_prepare(const ew__acc_t *a, const ew__in_t *in, ew__prep_t *p, ew__ws_t *keep,
                          ew__ws_t *tmp) {
  EW_UNUSED(a), EW_UNUSED(in), EW_UNUSED(keep), EW_UNUSED(tmp);
  p->has_bs = false;
  return 0;
}

static size_t window_apply_ws(const ew__acc_t *a, const ew__in_t *in) {
  const ew__window_t *w = (const ew__window_t *)a;
  if (w->rows_only)
    return 0;
  return window_ws(w->d, in->n > w->cap ? in->n : w->cap);
}

static void window_apply(ew__acc_t *a, const ew__in_t *in, const ew__prep_t *p, ew__ws_t *ws) {
  EW_UNUSED(p);
  window_push((ew__window_t *)a, in->rows32, in->labels, in->n, in->plain32, in->maintain, ws);
}

/* The moments of the last n rows (n < count), built in ws: the struct and its arrays stay in ws
 * for the caller, the temporaries are given back. */
static int tail_moments(ew__window_t *w, size_t n, ew__moments_t **out, ew__ws_t *ws) {
  size_t d = w->d;
  ew__moments_t *m = ew__ws_alloc(ws, sizeof *m);
  double *mean = ew__ws_alloc(ws, d * sizeof(double));
  double *m2 = ew__ws_alloc(ws, d * d * sizeof(double));
  if (!m || !mean || !m2)
    return EW_ENOMEM;
  *m = (ew__moments_t){.d = d, .mean = mean, .m2 = m2};
  ew__moments_clear(m);
  const float *a, *b;
  size_t na, nb;
  segments(w, w->count - n, n, &a, &na, &b, &nb);
  ew__ws_mark_t mk = ew__ws_mark(ws);
  int rc = ew__ws_reserve(ws, window_ws(d, n));
  double *g = rc == 0 ? ew__ws_alloc(ws, d * d * sizeof(double)) : NULL;
  ew__bstats_t bs;
  if (g && (rc = ew__bstats_f32_2(a, na, b, nb, d, w->tmp_shift, w->tmp_s, g, ws, &bs)) == 0)
    ew__moments_add(m, &bs, ws);
  ew__ws_release(ws, mk);
  if (!g && rc == 0)
    rc = EW_ENOMEM;
  *out = m;
  return rc;
}

static int window_view(ew__acc_t *a, int want, uint64_t tail, ew__src_t *out, ew__ws_t *ws) {
  ew__window_t *w = (ew__window_t *)a;
  memset(out, 0, sizeof *out);
  size_t n = tail && tail < w->count ? (size_t)tail : w->count;
  out->rows = n;
  out->weight = (double)n;
  out->keeps_rows = true;
  bool kept = w->synced && w->mhi == w->total && w->mhi - w->mlo == n; /* on exactly these rows */
  if (w->rows_only) { /* no moments: the view reads the rows */
  } else if ((want & EW__WANT_MOMENTS) && n < w->count && !kept) {
    ew__moments_t *m;
    int rc = tail_moments(w, n, &m, ws);
    if (rc)
      return rc;
    if (want & EW__WANT_FULL)
      ew__moments_mirror(m);
    out->mom = m;
  } else if (want & EW__WANT_MOMENTS) {
    if (!kept) {
      ew__ws_mark_t mk = ew__ws_mark(ws);
      int rc = ew__ws_reserve(ws, window_ws(w->d, w->count));
      if (rc == 0)
        rc = window_rebuild(w, ws);
      ew__ws_release(ws, mk);
      if (rc)
        return rc;
    }
    if (want & EW__WANT_FULL)
      ew__moments_mirror(&w->mom);
    out->mom = &w->mom;
  }
  if (want & EW__WANT_ROWS) {
    segments(w, w->count - n, n, &out->seg[0], &out->nseg[0], &out->seg[1], &out->nseg[1]);
    if (w->labels) { /* the same two runs of the label ring */
      size_t start = (w->head + w->count - n) % w->cap;
      out->lab[0] = w->labels + start;
      out->lab[1] = w->labels;
    }
  }
  return 0;
}

/* The saved form: count, synced, since_rebuild, noise2, a word saying whether moments follow
 * (0: they do; 1: rows only), the rows in arrival order (count×d f32), the moments; then, for a
 * window that keeps labels, u64 "LABL" and the rows' labels in arrival order (count u32,
 * zero-padded to 8 bytes) — a window without labels saves the same bytes it always did. */
#define LABL_MAGIC 0x4c42414cull /* "LABL" */
static uint64_t labels_len(uint64_t count) { return 8 + (count * 4 + 7) / 8 * 8; }

static uint64_t window_saved_len(const ew__acc_t *a) {
  const ew__window_t *w = (const ew__window_t *)a;
  return 8 * 5 + (uint64_t)w->count * w->d * 4 +
         (w->rows_only ? 0 : ew__moments_saved_len(w->d)) + (w->labels ? labels_len(w->count) : 0);
}

static void window_save(const ew__acc_t *a, ew__wr_t *wr) {
  const ew__window_t *w = (const ew__window_t *)a;
  ew__put_u64(wr, w->count);
  ew__put_u64(wr, whole(w)); /* the saved form knows moments on the whole ring only */
  ew__put_u64(wr, w->since_rebuild);
  ew__put_f64(wr, w->noise2);
  ew__put_u64(wr, w->rows_only);
  const float *s0, *s1;
  size_t n0, n1;
  segments(w, 0, w->count, &s0, &n0, &s1, &n1);
  ew__put(wr, s0, n0 * w->d * sizeof(float));
  ew__put(wr, s1, n1 * w->d * sizeof(float));
  if (!w->rows_only)
    ew__moments_save(&w->mom, wr);
  if (w->labels) {
    static const unsigned char zero[8];
    size_t start = w->head, l1 = w->count < w->cap - start ? w->count : w->cap - start;
    ew__put_u64(wr, LABL_MAGIC);
    ew__put(wr, w->labels + start, l1 * sizeof(uint32_t));
    ew__put(wr, w->labels, (w->count - l1) * sizeof(uint32_t));
    ew__put(wr, zero, (size_t)((8 - (w->count * 4) % 8) % 8));
  }
}

/* The labels part of a WIND section (its magic, count labels, padding) into a new label ring. */
static void load_labels(ew__window_t *w, ew__rd_t *r, uint64_t count) {
  if (ew__get_u64(r) != LABL_MAGIC) {
    ew__rd_fail(r, "section %s ends with something that is not its rows' labels", "WIND");
    return;
  }
  if (ew__window_label_ready(&w->base) != 0) {
    r->err = EW_ENOMEM;
    return;
  }
  ew__get(r, w->labels, (size_t)count * sizeof(uint32_t));
  unsigned char pad[8];
  ew__get(r, pad, (size_t)((8 - (count * 4) % 8) % 8));
}

static void window_load(ew__acc_t *a, ew__rd_t *r, uint64_t len) {
  ew__window_t *w = (ew__window_t *)a;
  uint64_t count = ew__get_u64(r);
  if (r->err)
    return;
  uint64_t mlen = ew__moments_saved_len(w->d), base = 40 + count * w->d * 4;
  /* labels close the section when the window kept them */
  uint64_t lab = count <= w->cap && (len == base + mlen + labels_len(count) ||
                                     (w->rows_only && len == base + labels_len(count)))
                     ? labels_len(count) : 0;
  len -= lab;
  /* moments follow unless the saver kept rows only; a state saved before rows-only windows has
   * them at any cap, and a rows-only window reads past them */
  if (count > w->cap || (len != base + mlen && !(w->rows_only && len == base))) {
    ew__rd_fail(r, "section %s has the wrong length for this configuration", "WIND");
    return;
  }
  w->synced = ew__get_u64(r) != 0;
  w->since_rebuild = ew__get_u64(r);
  w->noise2 = ew__get_f64(r);
  uint64_t saved_rows_only = ew__get_u64(r);
  if (!r->err && saved_rows_only != (len == base)) {
    ew__rd_fail(r, "section WIND %s", saved_rows_only ? "says rows only but carries moments"
                                                      : "says moments follow but has none");
    return;
  }
  w->head = 0;
  w->count = count;
  w->total = w->mhi = count; /* saved moments describe the whole ring */
  w->mlo = 0;
  ew__get(r, w->rows, count * w->d * sizeof(float));
  for (size_t i = 0; i < count * w->d && !r->err; i++)
    if (!isfinite(w->rows[i]))
      ew__rd_fail(r, "section %s holds a row value that is not finite: the window's rows are rows "
                  "ingest accepted", "WIND");
  if (!r->err && !(w->noise2 >= 0 && w->noise2 <= DBL_MAX))
    ew__rd_failf(r, "section WIND holds a noise sum of %g: it is finite and non-negative",
                 w->noise2);
  if (len != base && !w->rows_only) {
    ew__moments_load(&w->mom, r);
    ew__check_moments(r, &w->mom, "WIND");
    if (!r->err && w->mom.n > w->cap)
      ew__rd_failf(r, "section WIND's moments count %llu rows but the window holds at most %llu",
                   (unsigned long long)w->mom.n, (unsigned long long)w->cap);
  } else if (len != base) {
    for (uint64_t left = mlen; left > 0 && !r->err;) { /* not kept here: rebuilt from the rows */
      char skip[512];
      size_t k = left < sizeof skip ? (size_t)left : sizeof skip;
      ew__get(r, skip, k);
      left -= k;
    }
    w->synced = true;
  }
  if (lab && !r->err)
    load_labels(w, r, count);
}


/* Lays the window out anew from spans of a's and o's held rows (spans[i].from 0: a, 1: o), oldest
 * first, and rebuilds its moments from them. The caller has checked the spans against both
 * windows and a's capacity (ew_stream_merge_ex). Returns 0 or EW_ENOMEM (a unchanged). */
int ew__window_combine(ew__acc_t *a, const ew__acc_t *o, const ew_window_span_t *spans, size_t n,
                       bool keep_labels, ew__ws_t *ws) {
  ew__window_t *w = (ew__window_t *)a;
  const ew__window_t *src[2] = {w, (const ew__window_t *)o};
  size_t d = w->d, at = 0;
  float *rows = malloc(w->cap * d * sizeof(float));
  uint32_t *labels = keep_labels ? calloc(w->cap, sizeof *labels) : NULL;
  if (!rows || (keep_labels && !labels)) {
    free(rows);
    free(labels);
    return EW_ENOMEM;
  }
  for (size_t i = 0; i < n; i++) {
    const ew__window_t *f = src[spans[i].from];
    const float *s0, *s1;
    size_t n0, n1;
    segments(f, (size_t)spans[i].first, (size_t)spans[i].rows, &s0, &n0, &s1, &n1);
    memcpy(rows + at * d, s0, n0 * d * sizeof(float));
    memcpy(rows + (at + n0) * d, s1, n1 * d * sizeof(float));
    for (size_t k = 0; labels && f->labels && k < n0 + n1; k++)
      labels[at + k] = f->labels[(f->head + (size_t)spans[i].first + k) % f->cap];
    at += n0 + n1;
  }
  free(w->rows);
  w->rows = rows;
  free(w->labels); /* the union's labels, or none */
  w->labels = labels;
  w->head = 0;
  w->count = at;
  w->total = w->mhi = at;
  w->mlo = 0;
  if (w->rows_only) {
    w->synced = true;
    w->since_rebuild = 0;
    w->noise2 = 0;
    return 0;
  }
  (void)window_rebuild(w, ws); /* on failure the moments are marked stale: rebuilt when read */
  return 0;
}

static const ew__acc_ops_t window_ops = {
    .name = "window", .tag = TAG_WIND, .free = window_free, .clear = window_clear,
    .bytes = window_bytes, .prepare = window_prepare, .apply_ws = window_apply_ws,
    .apply = window_apply, .merge = NULL, .scale = NULL, .view = window_view,
    .saved_len = window_saved_len, .save = window_save, .load = window_load};

ew__acc_t *ew__acc_window_new(size_t d, size_t cap) {
  ew__window_t *w = calloc(1, sizeof *w);
  if (!w)
    return NULL;
  w->base.ops = &window_ops;
  if (window_init(w, d, cap) != 0) {
    window_free(&w->base);
    return NULL;
  }
  return &w->base;
}

size_t ew__window_cap(const ew__acc_t *a) { return ((const ew__window_t *)a)->cap; }
size_t ew__window_count(const ew__acc_t *a) { return ((const ew__window_t *)a)->count; }
