/* window.c — the FIFO window: the last W preprocessed rows (f32, in a ring) and their own exact
 * moments.
 *
 * Each push merges the new rows' statistics, computes the statistics of the rows about to be
 * overwritten straight from the ring (one more syrk of the same size) and un-merges them, then
 * writes the new rows. Un-merging is subtractive, so rounding could in principle drift; measured
 * drift is ~1e-14 after dozens of turnovers, and the moments are rebuilt from the ring every
 * `rebuild_every` rows (64 turnovers) as cheap insurance. The window is never decayed.
 *
 * Maintenance is optional per push (the stream decides, see ew_window_mode_t): an unmaintained
 * push only writes the ring and marks the moments stale; ew__window_sync rebuilds them with one
 * pass over the ring when a query needs them. */
#include "ew_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define EW__WINDOW_REBUILD_TURNOVERS 64
/* rebuild when the maintained moments' noise exceeds this many times a fresh pass's */
#define EW__WINDOW_NOISE_REBUILD 8.0

int ew__window_init(ew__window_t *w, size_t d, size_t cap) {
  memset(w, 0, sizeof *w);
  w->d = d;
  w->cap = cap;
  w->rebuild_every = (uint64_t)cap * EW__WINDOW_REBUILD_TURNOVERS;
  w->synced = true;
  w->rows = malloc(cap * d * sizeof(float));
  w->tmp_shift = malloc(d * sizeof(double));
  w->tmp_s = malloc(d * sizeof(double));
  if (!w->rows || !w->tmp_shift || !w->tmp_s || ew__moments_init(&w->mom, d) != 0) {
    ew__window_free(w);
    return EW_ENOMEM;
  }
  return 0;
}

void ew__window_free(ew__window_t *w) {
  free(w->rows);
  free(w->tmp_shift);
  free(w->tmp_s);
  ew__moments_free(&w->mom);
  w->rows = NULL;
  w->tmp_shift = w->tmp_s = NULL;
}

void ew__window_clear(ew__window_t *w) {
  w->head = 0;
  w->count = 0;
  w->since_rebuild = 0;
  w->synced = true;
  ew__moments_clear(&w->mom);
}

size_t ew__window_bytes(const ew__window_t *w) {
  return w->cap * w->d * sizeof(float) + 2 * w->d * sizeof(double) + ew__moments_bytes(&w->mom);
}

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

int ew__window_rebuild(ew__window_t *w) {
  ew__moments_clear(&w->mom);
  w->since_rebuild = 0;
  w->noise2 = 0;
  w->synced = true;
  if (w->count == 0)
    return 0;
  const float *a, *b;
  size_t na, nb;
  segments(w, 0, w->count, &a, &na, &b, &nb);
  ew__bstats_t bs;
  int rc = ew__bstats_f32_2(a, na, b, nb, w->d, w->tmp_shift, w->tmp_s, &bs);
  if (rc != 0) {
    w->synced = false; /* never leave moments that claim to match the ring */
    return rc;
  }
  ew__moments_add(&w->mom, &bs);
  w->noise2 = bs.noise * bs.noise;
  return 0;
}

/* Writes n < cap rows at the tail, dropping the oldest as needed (no moments). */
static void ring_write(ew__window_t *w, const float *rows, size_t n) {
  size_t d = w->d;
  size_t excess = w->count + n > w->cap ? w->count + n - w->cap : 0;
  w->head = (w->head + excess) % w->cap;
  w->count -= excess;
  size_t tail = (w->head + w->count) % w->cap;
  size_t l1 = n < w->cap - tail ? n : w->cap - tail;
  memcpy(w->rows + tail * d, rows, l1 * d * sizeof(float));
  if (n > l1)
    memcpy(w->rows, rows + l1 * d, (n - l1) * d * sizeof(float));
  w->count += n;
}

int ew__window_sync(ew__window_t *w) { return w->synced ? 0 : ew__window_rebuild(w); }

int ew__window_push(ew__window_t *w, const float *rows, size_t n, const ew__bstats_t *same,
                    bool maintain) {
  size_t d = w->d;
  if (n == 0)
    return 0;
  if (n >= w->cap) { /* the batch alone fills the window: keep its last cap rows */
    memcpy(w->rows, rows + (n - w->cap) * d, w->cap * d * sizeof(float));
    w->head = 0;
    w->count = w->cap;
    if (!maintain) {
      w->synced = false;
      return 0;
    }
    return ew__window_rebuild(w);
  }
  if (!maintain || !w->synced) {
    ring_write(w, rows, n);
    w->synced = false;
    return 0;
  }
  ew__bstats_t bs;
  int rc;
  if (same) {
    bs = *same;
  } else if ((rc = ew__bstats_f32(rows, n, d, NULL, NULL, w->tmp_shift, w->tmp_s, NULL, &bs)) != 0) {
    return rc;
  }
  ew__moments_add(&w->mom, &bs);
  w->noise2 += bs.noise * bs.noise;
  size_t excess = w->count + n > w->cap ? w->count + n - w->cap : 0;
  if (excess) {
    const float *a, *b;
    size_t na, nb;
    segments(w, 0, excess, &a, &na, &b, &nb);
    ew__bstats_t ex;
    if ((rc = ew__bstats_f32_2(a, na, b, nb, d, w->tmp_shift, w->tmp_s, &ex)) != 0)
      return rc;
    ew__moments_sub(&w->mom, &ex);
    w->noise2 += ex.noise * ex.noise;
    w->head = (w->head + excess) % w->cap;
    w->count -= excess;
  }
  w->mom.noise = sqrt(w->noise2);
  ring_write(w, rows, n);
  w->since_rebuild += n;
  /* Rebuild on schedule, or at once when un-merged rows dwarfed what remains (after rows 1000x
   * larger leave, their rounding is most of the state: the condition number came out 298 for a
   * true 103): the noise is then far above what a fresh pass over the ring would carry. */
  double fresh = ew__noise_bound(w->count, 0x1p-24, ew__moments_trace(&w->mom));
  if (w->since_rebuild >= w->rebuild_every || w->mom.noise > EW__WINDOW_NOISE_REBUILD * fresh)
    return ew__window_rebuild(w);
  return 0;
}

void ew__window_copy(const ew__window_t *w, float *out) {
  const float *a, *b;
  size_t na, nb;
  segments(w, 0, w->count, &a, &na, &b, &nb);
  memcpy(out, a, na * w->d * sizeof(float));
  if (nb)
    memcpy(out + na * w->d, b, nb * w->d * sizeof(float));
}
