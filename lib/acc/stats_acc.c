/* acc/stats_acc.c — the stats kind: pre-reduced statistics per cell (attention entropy or max
 * logit per layer and head, as flash/SDPA kernels return them), reduced over ranks and batches by
 * the stream's rule, exactly: `mean` keeps Σ count·value and Σ count per cell, `max`/`min` the
 * extreme, `sum` the sum. The newest `keep` steps are kept one segment each (the step and window
 * views), and one reduction of everything (all). Combining two reductions by the same rule is
 * associative, so steps, ranks, windows and merged exports all reduce the same way. */
#include "acc.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
  uint64_t step;
  double *v, *c; /* per cell: the reduction (Σ count·value for mean) and Σ count */
} cseg_t;

typedef struct {
  ew__acc_t base;
  size_t cells;
  ew_reduce_t rule;
  cseg_t *seg; /* oldest first */
  size_t nseg, capseg;
  uint32_t keep;
  double *allv, *allc;
  uint64_t steps;
} cells_t;

static cells_t *S(ew__acc_t *a) { return (cells_t *)a; }
static const cells_t *CS(const ew__acc_t *a) { return (const cells_t *)a; }

/* v, c ← (v, c) ⊕ (x, k) over n cells by rule r (c == 0: v is taken as it comes). */
static void reduce_into(ew_reduce_t r, double *v, double *c, const double *x, const double *k,
                        size_t n) {
  for (size_t i = 0; i < n; i++) {
    double xi = r == EW_REDUCE_MEAN ? x[i] * k[i] : x[i];
    if (c[i] == 0)
      v[i] = xi;
    else if (r == EW_REDUCE_MAX)
      v[i] = xi > v[i] ? xi : v[i];
    else if (r == EW_REDUCE_MIN)
      v[i] = xi < v[i] ? xi : v[i];
    else
      v[i] += xi;
    c[i] += k[i];
  }
}

/* The same for two reductions (mean: both already Σ count·value). */
static void combine(ew_reduce_t r, double *v, double *c, const double *ov, const double *oc,
                    size_t n) {
  for (size_t i = 0; i < n; i++) {
    if (oc[i] == 0)
      continue;
    if (c[i] == 0)
      v[i] = ov[i];
    else if (r == EW_REDUCE_MAX)
      v[i] = ov[i] > v[i] ? ov[i] : v[i];
    else if (r == EW_REDUCE_MIN)
      v[i] = ov[i] < v[i] ? ov[i] : v[i];
    else
      v[i] += ov[i];
    c[i] += oc[i];
  }
}

static void seg_free(cseg_t *g) {
  free(g->v);
  free(g->c);
  memset(g, 0, sizeof *g);
}

static void drop_oldest(cells_t *t) {
  while (t->nseg > t->keep) {
    seg_free(&t->seg[0]);
    memmove(t->seg, t->seg + 1, (t->nseg - 1) * sizeof *t->seg);
    t->nseg--;
  }
}

static void st_clear(ew__acc_t *a) {
  cells_t *t = S(a);
  for (size_t i = 0; i < t->nseg; i++)
    seg_free(&t->seg[i]);
  t->nseg = 0;
  t->steps = 0;
  memset(t->allv, 0, t->cells * sizeof(double));
  memset(t->allc, 0, t->cells * sizeof(double));
}

static void st_free(ew__acc_t *a) {
  cells_t *t = S(a);
  st_clear(a);
  free(t->seg);
  free(t->allv);
  free(t->allc);
  free(t);
}

static size_t st_bytes(const ew__acc_t *a) {
  const cells_t *t = CS(a);
  return sizeof *t + t->capseg * sizeof(cseg_t) + (2 + 2 * t->nseg) * t->cells * sizeof(double);
}

size_t ew__acc_stats_window_bytes(const ew__acc_t *a) {
  const cells_t *t = CS(a);
  return 2 * t->nseg * t->cells * sizeof(double);
}

/* Room for one more segment; a new segment of step `step` at position at. 0 or EW_ENOMEM. */
static int seg_insert(cells_t *t, size_t at, uint64_t step) {
  if (t->nseg == t->capseg) {
    size_t cap = t->capseg ? 2 * t->capseg : 4;
    cseg_t *s = realloc(t->seg, cap * sizeof *s);
    if (!s)
      return EW_ENOMEM;
    t->seg = s;
    t->capseg = cap;
  }
  cseg_t g = {.step = step, .v = calloc(t->cells, sizeof(double)),
              .c = calloc(t->cells, sizeof(double))};
  if (!g.v || !g.c) {
    seg_free(&g);
    return EW_ENOMEM;
  }
  memmove(t->seg + at + 1, t->seg + at, (t->nseg - at) * sizeof *t->seg);
  t->seg[at] = g;
  t->nseg++;
  return 0;
}

int ew__acc_stats_apply(ew__acc_t *a, const ew__cbatch_t *b) {
  cells_t *t = S(a);
  bool fresh = t->nseg == 0 || t->seg[t->nseg - 1].step != b->step;
  if (fresh && seg_insert(t, t->nseg, b->step) != 0)
    return EW_ENOMEM;
  cseg_t *g = &t->seg[t->nseg - 1];
  reduce_into(t->rule, g->v, g->c, b->x, b->k, t->cells);
  reduce_into(t->rule, t->allv, t->allc, b->x, b->k, t->cells);
  t->steps += fresh;
  t->keep = b->keep ? b->keep : 1;
  drop_oldest(t);
  while (b->keep_bytes && t->nseg > 1 && ew__acc_stats_window_bytes(a) > b->keep_bytes) {
    seg_free(&t->seg[0]);
    memmove(t->seg, t->seg + 1, (t->nseg - 1) * sizeof *t->seg);
    t->nseg--;
  }
  return 0;
}

int ew__acc_stats_view(ew__acc_t *a, ew_source_t src, ew__cview_t *v, ew__ws_t *ws) {
  cells_t *t = S(a);
  memset(v, 0, sizeof *v);
  v->cells = t->cells;
  v->rule = t->rule;
  if (src == EW_SOURCE_ALL) {
    v->v = t->allv, v->c = t->allc, v->steps = t->steps;
    return 0;
  }
  size_t first = src == EW_SOURCE_STEP && t->nseg ? t->nseg - 1 : 0;
  v->steps = t->nseg - first;
  if (v->steps == 0)
    return 0;
  v->last_step = t->seg[t->nseg - 1].step;
  if (v->steps == 1) {
    v->v = t->seg[first].v, v->c = t->seg[first].c;
    return 0;
  }
  double *sv = ew__ws_alloc(ws, t->cells * sizeof(double)),
         *sc = ew__ws_alloc(ws, t->cells * sizeof(double));
  if (!sv || !sc)
    return EW_ENOMEM;
  memset(sc, 0, t->cells * sizeof(double));
  for (size_t i = first; i < t->nseg; i++)
    combine(t->rule, sv, sc, t->seg[i].v, t->seg[i].c, t->cells);
  v->v = sv, v->c = sc;
  return 0;
}

/* ---- merge: every reduction combines by the rule; windows step by step ---- */

int ew__acc_stats_merge_ready(ew__acc_t *a, const ew__acc_t *ob) {
  cells_t *t = S(a);
  const cells_t *o = CS(ob);
  for (size_t i = 0; i < o->nseg; i++) {
    size_t at = 0;
    while (at < t->nseg && t->seg[at].step < o->seg[i].step)
      at++;
    if ((at == t->nseg || t->seg[at].step != o->seg[i].step) &&
        seg_insert(t, at, o->seg[i].step) != 0)
      return EW_ENOMEM; /* empty segments inserted so far: they count nothing */
  }
  return 0;
}

static void st_merge(ew__acc_t *a, const ew__acc_t *ob) {
  cells_t *t = S(a);
  const cells_t *o = CS(ob);
  combine(t->rule, t->allv, t->allc, o->allv, o->allc, t->cells);
  t->steps += o->steps;
  for (size_t i = 0; i < o->nseg; i++)
    for (size_t k = 0; k < t->nseg; k++)
      if (t->seg[k].step == o->seg[i].step)
        combine(t->rule, t->seg[k].v, t->seg[k].c, o->seg[i].v, o->seg[i].c, t->cells);
  if (o->keep > t->keep)
    t->keep = o->keep;
  drop_oldest(t);
}

/* ---- the saved form (docs/STATE.md, section CELL): u64 keep, u64 steps, all's cells (f64
 * values then f64 counts), u64 segments, each: u64 step, its values, its counts ---- */

static uint64_t st_saved_len(const ew__acc_t *a) {
  const cells_t *t = CS(a);
  return 24 + 16 * (uint64_t)t->cells + t->nseg * (8 + 16 * (uint64_t)t->cells);
}

static void st_save(const ew__acc_t *a, ew__wr_t *w) {
  const cells_t *t = CS(a);
  ew__put_u64(w, t->keep);
  ew__put_u64(w, t->steps);
  ew__put(w, t->allv, t->cells * sizeof(double));
  ew__put(w, t->allc, t->cells * sizeof(double));
  ew__put_u64(w, t->nseg);
  for (size_t i = 0; i < t->nseg; i++) {
    ew__put_u64(w, t->seg[i].step);
    ew__put(w, t->seg[i].v, t->cells * sizeof(double));
    ew__put(w, t->seg[i].c, t->cells * sizeof(double));
  }
}

/* Counts are sums of positive finite counts; values finite. */
static void check_cells(ew__rd_t *r, const double *v, const double *c, size_t n) {
  ew__check_f64s(r, v, n, DBL_MAX, "CELL", "a cell's value");
  ew__check_f64s(r, c, n, DBL_MAX, "CELL", "a cell's count");
  for (size_t i = 0; i < n && !r->err; i++)
    if (c[i] < 0 || (c[i] == 0 && v[i] != 0))
      ew__rd_failf(r, "section CELL holds a cell of count %g and value %g, which no ingest makes",
                   c[i], v[i]);
}

static void st_load(ew__acc_t *a, ew__rd_t *r, uint64_t len) {
  cells_t *t = S(a);
  uint64_t keep = ew__get_u64(r);
  t->steps = ew__get_u64(r);
  ew__get(r, t->allv, t->cells * sizeof(double));
  ew__get(r, t->allc, t->cells * sizeof(double));
  uint64_t nseg = ew__get_u64(r);
  if (r->err)
    return;
  if (keep == 0 || keep > 65536 || nseg > keep ||
      len != 24 + 16 * (uint64_t)t->cells + nseg * (8 + 16 * (uint64_t)t->cells)) {
    ew__rd_failf(r, "section CELL holds %llu steps of a window of %llu, or has the wrong length",
                 (unsigned long long)nseg, (unsigned long long)keep);
    return;
  }
  t->keep = (uint32_t)keep;
  check_cells(r, t->allv, t->allc, t->cells);
  for (uint64_t i = 0; i < nseg && !r->err; i++) {
    uint64_t step = ew__get_u64(r);
    if (i > 0 && step <= t->seg[i - 1].step) {
      ew__rd_failf(r, "%s", "section CELL holds its steps out of order");
      return;
    }
    if (seg_insert(t, (size_t)i, step) != 0) {
      r->err = EW_ENOMEM;
      return;
    }
    ew__get(r, t->seg[i].v, t->cells * sizeof(double));
    ew__get(r, t->seg[i].c, t->cells * sizeof(double));
    check_cells(r, t->seg[i].v, t->seg[i].c, t->cells);
  }
}

static const ew__acc_ops_t stats_ops = {
    .name = "stats",
    .tag = EW_TAG('C', 'E', 'L', 'L'),
    .free = st_free,
    .clear = st_clear,
    .bytes = st_bytes,
    .merge = st_merge,
    .saved_len = st_saved_len,
    .save = st_save,
    .load = st_load,
};

ew__acc_t *ew__acc_stats_new(size_t cells, ew_reduce_t rule) {
  cells_t *t = calloc(1, sizeof *t);
  if (!t)
    return NULL;
  t->base.ops = &stats_ops;
  t->cells = cells;
  t->rule = rule;
  t->keep = 1;
  t->allv = calloc(cells, sizeof(double));
  t->allc = calloc(cells, sizeof(double));
  if (!t->allv || !t->allc) {
    st_free(&t->base);
    return NULL;
  }
  return &t->base;
}

bool ew__acc_is_stats(const ew__acc_t *a) { return a && a->ops == &stats_ops; }

size_t ew__acc_stats_bound(size_t cells) {
  return sizeof(cells_t) + 2 * cells * sizeof(double); /* the window's grow with its steps */
}
