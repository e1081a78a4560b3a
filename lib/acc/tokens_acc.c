/* acc/tokens_acc.c — the tokens kind: what a tokens stream keeps of its per-token scalars.
 *
 * Two parts, from the same batches:
 *  - the window: the counted tokens (f64, per column) and per-sequence counts of its newest
 *    `keep` steps, one segment per step in arrival order — the `step` view is the newest segment,
 *    the `window` view all of them;
 *  - all: exact mergeable sums of every counted token since creation (per column n, mean, M2,
 *    min, max; the co-moment of every pair of columns; per-sequence sums) and a quantile sketch
 *    per column (acc/tokens_sketch.c) whose rank error is certified.
 * A batch's fallible part (room for its tokens, the sketch's levels) is reserved before anything
 * changes, so applying it is all or nothing. */
#include "acc.h"
#include "tokens.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define QS_K 4096 /* values per sketch level: 3.5e-4 rank error measured on 1e6 tokens */

typedef struct {
  uint64_t step;
  size_t n, cap;                /* counted tokens held, and room */
  double *x[EW_COLUMNS_MAX];    /* per column */
  uint32_t *len;                /* counted tokens per sequence */
  size_t nseq, capseq;
  uint64_t nolen;               /* counted tokens of batches that carried no lengths */
} tseg_t;

typedef struct {
  ew__acc_t base;
  size_t ncols;
  tseg_t *seg;                  /* oldest first; seg[nseg - 1] is the step view */
  size_t nseg, capseg;
  uint32_t keep;                /* steps the window keeps (the newest batch's say) */
  ew__tall_t all;
  ew__qsketch_t qs[EW_COLUMNS_MAX];
} tok_t;

static tok_t *T(ew__acc_t *a) { return (tok_t *)a; }
static const tok_t *CT(const ew__acc_t *a) { return (const tok_t *)a; }

static void seg_free(tok_t *t, tseg_t *g) {
  for (size_t c = 0; c < t->ncols; c++)
    free(g->x[c]);
  free(g->len);
  memset(g, 0, sizeof *g);
}

static void tok_clear(ew__acc_t *a) {
  tok_t *t = T(a);
  for (size_t i = 0; i < t->nseg; i++)
    seg_free(t, &t->seg[i]);
  t->nseg = 0;
  memset(&t->all, 0, sizeof t->all);
  for (size_t c = 0; c < t->ncols; c++) {
    ew__qs_free(&t->qs[c]);
    ew__qs_init(&t->qs[c], QS_K);
  }
}

static void tok_free(ew__acc_t *a) {
  tok_t *t = T(a);
  tok_clear(a);
  for (size_t c = 0; c < t->ncols; c++)
    ew__qs_free(&t->qs[c]);
  free(t->seg);
  free(t);
}

static size_t seg_bytes(const tok_t *t, const tseg_t *g) {
  return g->cap * t->ncols * sizeof(double) + g->capseq * sizeof(uint32_t);
}

static size_t tok_bytes(const ew__acc_t *a) {
  const tok_t *t = CT(a);
  size_t b = sizeof *t + t->capseg * sizeof(tseg_t);
  for (size_t i = 0; i < t->nseg; i++)
    b += seg_bytes(t, &t->seg[i]);
  for (size_t c = 0; c < t->ncols; c++)
    b += ew__qs_bytes(&t->qs[c]);
  return b;
}

size_t ew__acc_tokens_window_bytes(const ew__acc_t *a) {
  const tok_t *t = CT(a);
  size_t b = 0;
  for (size_t i = 0; i < t->nseg; i++)
    b += seg_bytes(t, &t->seg[i]);
  return b;
}

/* ---- a batch in ---- */

/* Grows g to hold `more` tokens and `moreseq` sequences. 0 or EW_ENOMEM (g keeps what it had). */
static int seg_grow(tok_t *t, tseg_t *g, size_t more, size_t moreseq) {
  if (g->n + more > g->cap) {
    size_t cap = g->cap ? g->cap : 1024;
    while (cap < g->n + more)
      cap *= 2;
    for (size_t c = 0; c < t->ncols; c++) {
      double *x = realloc(g->x[c], cap * sizeof(double));
      if (!x)
        return EW_ENOMEM; /* columns grown so far keep their tokens: cap only bounds them */
      g->x[c] = x;
    }
    g->cap = cap;
  }
  if (g->nseq + moreseq > g->capseq) {
    size_t cap = g->capseq ? g->capseq : 64;
    while (cap < g->nseq + moreseq)
      cap *= 2;
    uint32_t *l = realloc(g->len, cap * sizeof(uint32_t));
    if (!l)
      return EW_ENOMEM;
    g->len = l;
    g->capseq = cap;
  }
  return 0;
}

int ew__acc_tokens_apply(ew__acc_t *a, const ew__tbatch_t *b) {
  tok_t *t = T(a);
  bool fresh = t->nseg == 0 || t->seg[t->nseg - 1].step != b->step;
  if (fresh && t->nseg == t->capseg) {
    size_t cap = t->capseg ? 2 * t->capseg : 4;
    tseg_t *s = realloc(t->seg, cap * sizeof *s);
    if (!s)
      return EW_ENOMEM;
    t->seg = s;
    t->capseg = cap;
  }
  tseg_t tmp = {.step = b->step}, *g = fresh ? &tmp : &t->seg[t->nseg - 1];
  if (seg_grow(t, g, b->n, b->has_len ? b->nseq : 0) != 0) {
    if (fresh)
      seg_free(t, &tmp);
    return EW_ENOMEM;
  }
  for (size_t c = 0; c < t->ncols; c++)
    if (ew__qs_reserve(&t->qs[c], b->n) != 0) {
      if (fresh)
        seg_free(t, &tmp);
      return EW_ENOMEM;
    }
  /* nothing below fails */
  for (size_t c = 0; c < t->ncols; c++) {
    if (b->n)
      memcpy(g->x[c] + g->n, b->x[c], b->n * sizeof(double));
    (void)ew__qs_add(&t->qs[c], b->x[c], b->n);
  }
  g->n += b->n;
  if (b->has_len) {
    memcpy(g->len + g->nseq, b->len, b->nseq * sizeof(uint32_t));
    g->nseq += b->nseq;
  } else {
    g->nolen += b->n;
  }
  ew__tall_merge(&t->all, &b->sums, t->ncols);
  if (fresh) {
    t->seg[t->nseg++] = tmp;
    t->all.steps++;
  }
  t->keep = b->keep ? b->keep : 1;
  while (t->nseg > t->keep ||
         (b->keep_bytes && t->nseg > 1 && ew__acc_tokens_window_bytes(a) > b->keep_bytes)) {
    seg_free(t, &t->seg[0]); /* the oldest steps leave the window */
    memmove(t->seg, t->seg + 1, (t->nseg - 1) * sizeof *t->seg);
    t->nseg--;
  }
  return 0;
}

/* ---- views ---- */

int ew__acc_tokens_view(ew__acc_t *a, ew_source_t src, ew__tview_t *v, ew__ws_t *ws) {
  tok_t *t = T(a);
  memset(v, 0, sizeof *v);
  v->ncols = t->ncols;
  if (src == EW_SOURCE_ALL) {
    v->all = &t->all;
    v->n = t->all.sum[0].n;
    v->qs = t->qs;
    v->steps = t->all.steps;
    return 0;
  }
  size_t first = src == EW_SOURCE_STEP && t->nseg ? t->nseg - 1 : 0;
  size_t n = 0, nseq = 0;
  for (size_t i = first; i < t->nseg; i++) {
    n += t->seg[i].n;
    nseq += t->seg[i].nseq;
    v->nolen += t->seg[i].nolen;
  }
  v->n = n;
  v->nseq = nseq;
  v->steps = t->nseg - first;
  if (t->nseg)
    v->last_step = t->seg[t->nseg - 1].step, v->first_step = t->seg[first].step;
  if (v->steps == 1) { /* one segment: read in place */
    const tseg_t *g = &t->seg[first];
    for (size_t c = 0; c < t->ncols; c++)
      v->x[c] = g->x[c];
    v->len = g->len;
    return 0;
  }
  if (v->steps == 0)
    return 0;
  for (size_t c = 0; c < t->ncols; c++) { /* several steps: laid end to end in ws */
    double *x = ew__ws_alloc(ws, n * sizeof(double) + 8);
    if (!x)
      return EW_ENOMEM;
    size_t at = 0;
    for (size_t i = first; i < t->nseg; i++) {
      if (t->seg[i].n)
        memcpy(x + at, t->seg[i].x[c], t->seg[i].n * sizeof(double));
      at += t->seg[i].n;
    }
    v->x[c] = x;
  }
  uint32_t *len = ew__ws_alloc(ws, nseq * sizeof(uint32_t) + 8);
  if (!len)
    return EW_ENOMEM;
  size_t at = 0;
  for (size_t i = first; i < t->nseg; i++) {
    if (t->seg[i].nseq)
      memcpy(len + at, t->seg[i].len, t->seg[i].nseq * sizeof(uint32_t));
    at += t->seg[i].nseq;
  }
  v->len = len;
  return 0;
}

/* ---- merge: sums and sketches exactly; windows step by step ---- */

/* Appends o's segment g to t's segment of the same step (or a new one, in step order). 0 or
 * EW_ENOMEM. */
static int merge_seg(tok_t *t, const tok_t *o, const tseg_t *g) {
  size_t at = 0;
  while (at < t->nseg && t->seg[at].step < g->step)
    at++;
  bool fresh = at == t->nseg || t->seg[at].step != g->step;
  if (fresh) {
    if (t->nseg == t->capseg) {
      size_t cap = t->capseg ? 2 * t->capseg : 4;
      tseg_t *s = realloc(t->seg, cap * sizeof *s);
      if (!s)
        return EW_ENOMEM;
      t->seg = s;
      t->capseg = cap;
    }
    memmove(t->seg + at + 1, t->seg + at, (t->nseg - at) * sizeof *t->seg);
    t->seg[at] = (tseg_t){.step = g->step};
    t->nseg++;
  }
  tseg_t *d = &t->seg[at];
  if (seg_grow(t, d, g->n, g->nseq) != 0)
    return EW_ENOMEM;
  for (size_t c = 0; c < o->ncols; c++)
    if (g->n)
      memcpy(d->x[c] + d->n, g->x[c], g->n * sizeof(double));
  if (g->nseq)
    memcpy(d->len + d->nseq, g->len, g->nseq * sizeof(uint32_t));
  d->n += g->n;
  d->nseq += g->nseq;
  d->nolen += g->nolen;
  return 0;
}

static void tok_merge(ew__acc_t *a, const ew__acc_t *ob) {
  tok_t *t = T(a);
  const tok_t *o = CT(ob);
  ew__tall_merge(&t->all, &o->all, t->ncols);
  t->all.steps += o->all.steps;
  for (size_t c = 0; c < t->ncols; c++)
    (void)ew__qs_merge(&t->qs[c], &o->qs[c]);
  for (size_t i = 0; i < o->nseg; i++)
    (void)merge_seg(t, o, &o->seg[i]);
  if (o->keep > t->keep)
    t->keep = o->keep;
  while (t->nseg > t->keep) {
    seg_free(t, &t->seg[0]);
    memmove(t->seg, t->seg + 1, (t->nseg - 1) * sizeof *t->seg);
    t->nseg--;
  }
}

int ew__acc_tokens_merge_ready(ew__acc_t *a, const ew__acc_t *ob) {
  tok_t *t = T(a);
  const tok_t *o = CT(ob);
  for (size_t c = 0; c < t->ncols; c++)
    if (ew__qs_reserve_merge(&t->qs[c], &o->qs[c]) != 0)
      return EW_ENOMEM;
  size_t more = t->nseg + o->nseg;
  if (more > t->capseg) {
    tseg_t *s = realloc(t->seg, more * sizeof *s);
    if (!s)
      return EW_ENOMEM;
    t->seg = s;
    t->capseg = more;
  }
  for (size_t i = 0; i < o->nseg; i++) { /* room in the segments the merge appends to */
    const tseg_t *g = &o->seg[i];
    for (size_t k = 0; k < t->nseg; k++)
      if (t->seg[k].step == g->step && seg_grow(t, &t->seg[k], g->n, g->nseq) != 0)
        return EW_ENOMEM;
  }
  return 0;
}

/* ---- the saved form (docs/STATE.md, section TOKS) ----
 * u64 keep, u64 steps; per column: n, mean, m2, min, max (f64 bits but n u64); per pair i < j:
 * n, mx, my, c; u64 seqs, u64 nolen; per column: Σ seq means, Σ seq sums; per column the sketch;
 * u64 nseg; per segment: u64 step, n, nseq, nolen, then n f64 per column, nseq u32 (padded to 8
 * bytes). */

static uint64_t seg_saved_len(const tok_t *t, const tseg_t *g) {
  return 32 + (uint64_t)g->n * 8 * t->ncols + ((uint64_t)g->nseq * 4 + 7) / 8 * 8;
}

static uint64_t tok_saved_len(const ew__acc_t *a) {
  const tok_t *t = CT(a);
  uint64_t c = t->ncols, b = 16 + c * 40 + c * (c - 1) / 2 * 32 + 16 + c * 16 + 8;
  for (size_t i = 0; i < t->ncols; i++)
    b += ew__qs_saved_len(&t->qs[i]);
  for (size_t i = 0; i < t->nseg; i++)
    b += seg_saved_len(t, &t->seg[i]);
  return b;
}

static void tok_save(const ew__acc_t *a, ew__wr_t *w) {
  const tok_t *t = CT(a);
  const ew__tall_t *s = &t->all;
  ew__put_u64(w, t->keep);
  ew__put_u64(w, s->steps);
  for (size_t c = 0; c < t->ncols; c++) {
    ew__put_u64(w, s->sum[c].n);
    ew__put_f64(w, s->sum[c].mean);
    ew__put_f64(w, s->sum[c].m2);
    ew__put_f64(w, s->sum[c].min);
    ew__put_f64(w, s->sum[c].max);
  }
  for (size_t i = 0; i < t->ncols; i++)
    for (size_t j = i + 1; j < t->ncols; j++) {
      const ew__tco_t *p = &s->co[i][j];
      ew__put_u64(w, p->n);
      ew__put_f64(w, p->mx);
      ew__put_f64(w, p->my);
      ew__put_f64(w, p->c);
    }
  ew__put_u64(w, s->seqs);
  ew__put_u64(w, s->nolen);
  for (size_t c = 0; c < t->ncols; c++) {
    ew__put_f64(w, s->seq_mean_sum[c]);
    ew__put_f64(w, s->seq_sum_sum[c]);
  }
  for (size_t c = 0; c < t->ncols; c++)
    ew__qs_save(&t->qs[c], w);
  ew__put_u64(w, t->nseg);
  static const unsigned char zero[8];
  for (size_t i = 0; i < t->nseg; i++) {
    const tseg_t *g = &t->seg[i];
    ew__put_u64(w, g->step);
    ew__put_u64(w, g->n);
    ew__put_u64(w, g->nseq);
    ew__put_u64(w, g->nolen);
    for (size_t c = 0; c < t->ncols; c++)
      if (g->n)
        ew__put(w, g->x[c], g->n * sizeof(double));
    if (g->nseq)
      ew__put(w, g->len, g->nseq * sizeof(uint32_t));
    ew__put(w, zero, (size_t)((8 - (g->nseq * 4) % 8) % 8));
  }
}

static void tok_load(ew__acc_t *a, ew__rd_t *r, uint64_t len) {
  tok_t *t = T(a);
  ew__tall_t *s = &t->all;
  uint64_t keep = ew__get_u64(r);
  s->steps = ew__get_u64(r);
  if (!r->err && (keep == 0 || keep > 65536)) {
    ew__rd_failf(r, "section TOKS keeps %llu steps (1 to 65536)", (unsigned long long)keep);
    return;
  }
  t->keep = (uint32_t)keep;
  for (size_t c = 0; c < t->ncols && !r->err; c++) {
    s->sum[c].n = ew__get_u64(r);
    s->sum[c].mean = ew__get_f64(r);
    s->sum[c].m2 = ew__get_f64(r);
    s->sum[c].min = ew__get_f64(r);
    s->sum[c].max = ew__get_f64(r);
    ew__check_f64s(r, &s->sum[c].mean, 4, DBL_MAX, "TOKS", "a column's sums");
    if (!r->err && (s->sum[c].n != s->sum[0].n || s->sum[c].m2 < 0 || s->sum[c].n > EW__ROWS_MAX))
      ew__rd_failf(r, "section TOKS holds column sums that no ingest makes (counts %llu and %llu, "
                   "M2 %g)", (unsigned long long)s->sum[c].n, (unsigned long long)s->sum[0].n,
                   s->sum[c].m2);
  }
  for (size_t i = 0; i < t->ncols && !r->err; i++)
    for (size_t j = i + 1; j < t->ncols && !r->err; j++) {
      ew__tco_t *p = &s->co[i][j];
      p->n = ew__get_u64(r);
      p->mx = ew__get_f64(r);
      p->my = ew__get_f64(r);
      p->c = ew__get_f64(r);
      ew__check_f64s(r, &p->mx, 3, DBL_MAX, "TOKS", "a co-moment");
      if (!r->err && p->n != s->sum[0].n)
        ew__rd_failf(r, "%s", "section TOKS holds a co-moment of another token count");
    }
  s->seqs = ew__get_u64(r);
  s->nolen = ew__get_u64(r);
  for (size_t c = 0; c < t->ncols && !r->err; c++) {
    s->seq_mean_sum[c] = ew__get_f64(r);
    s->seq_sum_sum[c] = ew__get_f64(r);
    ew__check_f64s(r, &s->seq_mean_sum[c], 1, DBL_MAX, "TOKS", "a sum of sequence means");
    ew__check_f64s(r, &s->seq_sum_sum[c], 1, DBL_MAX, "TOKS", "a sum of sequence sums");
  }
  for (size_t c = 0; c < t->ncols && !r->err; c++) {
    ew__qs_load(&t->qs[c], r, "TOKS");
    if (!r->err && t->qs[c].n != s->sum[0].n)
      ew__rd_failf(r, "section TOKS holds a quantile sketch of %llu tokens for %llu counted",
                   (unsigned long long)t->qs[c].n, (unsigned long long)s->sum[0].n);
  }
  uint64_t nseg = ew__get_u64(r);
  if (!r->err && (nseg > keep || nseg > len / 32)) {
    ew__rd_failf(r, "section TOKS holds %llu steps in a window that keeps %llu",
                 (unsigned long long)nseg, (unsigned long long)keep);
    return;
  }
  uint64_t used = 16 + t->ncols * 40 + t->ncols * (t->ncols - 1) / 2 * 32 + 16 + t->ncols * 16 + 8;
  for (size_t c = 0; c < t->ncols; c++)
    used += ew__qs_saved_len(&t->qs[c]);
  if (!r->err && !(t->seg = calloc(nseg ? nseg : 1, sizeof *t->seg))) {
    r->err = EW_ENOMEM;
    return;
  }
  t->capseg = nseg ? nseg : 1;
  for (uint64_t i = 0; i < nseg && !r->err; i++) {
    tseg_t *g = &t->seg[i];
    g->step = ew__get_u64(r);
    uint64_t n = ew__get_u64(r), nseq = ew__get_u64(r);
    g->nolen = ew__get_u64(r);
    if (r->err)
      return;
    uint64_t need = 32 + n * 8 * t->ncols + (nseq * 4 + 7) / 8 * 8;
    if (n > EW__ROWS_MAX || nseq > EW__ROWS_MAX || used + need > len ||
        (i > 0 && g->step <= t->seg[i - 1].step) || g->nolen > n) {
      ew__rd_failf(r, "section TOKS's step %llu does not fit the section or its order",
                   (unsigned long long)i);
      return;
    }
    used += need;
    t->nseg = (size_t)i + 1;
    if (seg_grow(t, g, (size_t)n, (size_t)nseq) != 0) {
      r->err = EW_ENOMEM;
      return;
    }
    for (size_t c = 0; c < t->ncols && !r->err; c++) {
      if (n)
        ew__get(r, g->x[c], (size_t)n * sizeof(double));
      ew__check_f64s(r, g->x[c], (size_t)n, DBL_MAX, "TOKS", "a token");
    }
    if (nseq)
      ew__get(r, g->len, (size_t)nseq * sizeof(uint32_t));
    unsigned char pad[8];
    ew__get(r, pad, (size_t)((8 - (nseq * 4) % 8) % 8));
    g->n = (size_t)n;
    g->nseq = (size_t)nseq;
    uint64_t sum = 0;
    for (size_t k = 0; k < g->nseq; k++)
      sum += g->len[k];
    if (!r->err && sum + g->nolen != g->n)
      ew__rd_failf(r, "section TOKS's step %llu has sequences of %llu tokens and %llu without, "
                   "for %llu tokens", (unsigned long long)g->step, (unsigned long long)sum,
                   (unsigned long long)g->nolen, (unsigned long long)g->n);
  }
  if (!r->err && used != len)
    ew__rd_failf(r, "%s", "section TOKS has the wrong length for what it holds");
}

static const ew__acc_ops_t tokens_ops = {
    .name = "tokens",
    .tag = EW_TAG('T', 'O', 'K', 'S'),
    .free = tok_free,
    .clear = tok_clear,
    .bytes = tok_bytes,
    .merge = tok_merge,
    .saved_len = tok_saved_len,
    .save = tok_save,
    .load = tok_load,
};

ew__acc_t *ew__acc_tokens_new(size_t ncols) {
  tok_t *t = calloc(1, sizeof *t);
  if (!t)
    return NULL;
  t->base.ops = &tokens_ops;
  t->ncols = ncols;
  t->keep = 1;
  for (size_t c = 0; c < ncols; c++)
    ew__qs_init(&t->qs[c], QS_K);
  return &t->base;
}

bool ew__acc_is_tokens(const ew__acc_t *a) { return a && a->ops == &tokens_ops; }

size_t ew__acc_tokens_bound(size_t ncols) {
  /* the sums and, per column, a sketch of at most 2^53 tokens: levels up to 53 − log2(k) + 1 */
  return sizeof(tok_t) + ncols * (size_t)(53 - 12 + 2) * QS_K * sizeof(double);
}
