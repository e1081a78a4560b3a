/* acc/tokens_acc.c — the tokens kind: what a tokens stream keeps of its per-token scalars.
 *
 * Two parts, from the same batches:
 *  - the window: the counted tokens (f64, per column), per-sequence counts and sums of its newest
 *    `keep` steps, one segment per step in arrival order — the `step` view is the newest segment,
 *    the `window` view all of them;
 *  - all: exact mergeable sums of every counted token since creation (per column n, mean, M2,
 *    min, max; the co-moment of every pair of columns; per-sequence sums) and a quantile sketch
 *    per column (acc/tokens_sketch.c) whose rank error is certified.
 * A batch goes in at the cost of converting its tokens into its step's segment (its sums were
 * taken when it was prepared); the sketches take a step's tokens later, sorted
 * (ew__acc_tokens_settle: the daemon settles after evaluating the step, on its math thread), or
 * when the step leaves the window, or before anything reads the `all` view — so a step's sort
 * serves its exact quantiles and the sketches both, and ingest never sorts. The buffers of the
 * step that left last are kept for the next one (no page to fault in per step). A batch's
 * fallible part (room for its tokens, the sketch's levels) is reserved before anything changes,
 * so applying it is all or nothing. */
#include "tokens_priv.h"

#include <stdlib.h>
#include <string.h>

static tok_t *T(ew__acc_t *a) { return (tok_t *)a; }
static const tok_t *CT(const ew__acc_t *a) { return (const tok_t *)a; }

/* g's sorted copies no longer hold its tokens (their buffers stay). */
static void stale_sorted(tseg_t *g) { memset(g->sorted_n, 0, sizeof g->sorted_n); }

/* g is no longer the newest step: its sorted copies' buffers go to the pool (the larger kept). */
static void retire_sorted(tok_t *t, tseg_t *g) {
  for (size_t c = 0; c < EW_COLUMNS_MAX; c++) {
    if (g->sorted[c] && g->sorted_cap[c] > t->sbuf_cap[c]) {
      free(t->sbuf[c]);
      t->sbuf[c] = g->sorted[c];
      t->sbuf_cap[c] = g->sorted_cap[c];
    } else {
      free(g->sorted[c]);
    }
    g->sorted[c] = NULL;
    g->sorted_n[c] = g->sorted_cap[c] = 0;
  }
}

static void free_pool(tok_t *t) {
  for (size_t c = 0; c < EW_COLUMNS_MAX; c++) {
    free(t->sbuf[c]);
    t->sbuf[c] = NULL;
    t->sbuf_cap[c] = 0;
  }
}

void ew__tseg_free(const tok_t *t, tseg_t *g) {
  for (size_t c = 0; c < t->ncols; c++)
    free(g->x[c]);
  free(g->len);
  for (size_t c = 0; c < EW_COLUMNS_MAX; c++)
    free(g->sorted[c]);
  memset(g, 0, sizeof *g);
}

static void tok_clear(ew__acc_t *a) {
  tok_t *t = T(a);
  for (size_t i = 0; i < t->nseg; i++)
    ew__tseg_free(t, &t->seg[i]);
  ew__tseg_free(t, &t->spare);
  free_pool(t);
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
  for (size_t c = 0; c < t->ncols; c++) {
    ew__qs_free(&t->qs[c]);
    ew__qs_free(&t->pend[c]);
  }
  free(t->seg);
  free(t);
}

static size_t seg_bytes(const tok_t *t, const tseg_t *g) {
  size_t b = g->cap * t->ncols * sizeof(double) + g->capseq * sizeof(uint32_t);
  for (size_t c = 0; c < t->ncols; c++)
    b += g->sorted_cap[c] * sizeof(double);
  return b;
}

size_t ew__acc_tokens_window_bytes(const ew__acc_t *a) {
  const tok_t *t = CT(a);
  size_t b = seg_bytes(t, &t->spare);
  for (size_t c = 0; c < t->ncols; c++)
    b += t->sbuf_cap[c] * sizeof(double);
  for (size_t i = 0; i < t->nseg; i++)
    b += seg_bytes(t, &t->seg[i]);
  return b;
}

static size_t tok_bytes(const ew__acc_t *a) {
  const tok_t *t = CT(a);
  size_t b = sizeof *t + t->capseg * sizeof(tseg_t) + ew__acc_tokens_window_bytes(a);
  for (size_t c = 0; c < t->ncols; c++)
    b += ew__qs_bytes(&t->qs[c]);
  return b;
}

/* ---- a batch in ---- */

int ew__tseg_grow(tok_t *t, tseg_t *g, size_t more, size_t moreseq) {
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

/* Folds tokens [folded, n) of g into the sketches where they lie, sorting them in place — the
 * step is leaving the window, nothing may be asked for (the sketches' levels are reserved): the
 * spare's buffer, when it is large enough, serves the radix sort. */
static void fold_leaving(tok_t *t, tseg_t *g) {
  size_t m = g->n - g->folded;
  for (size_t c = 0; c < t->ncols && m; c++) {
    double *x = g->x[c] + g->folded;
    if (t->spare.cap >= m && t->spare.x[0])
      ew__tok_sort(x, m, t->spare.x[0]);
    else
      ew__tok_sort_inplace(x, m);
    (void)ew__qs_add_sorted(&t->qs[c], x, m, x);
  }
  g->folded = g->n;
}

/* The oldest step leaves the window: its tokens into the sketches, its buffers kept as the spare
 * (the larger of the two when there is one already). */
static void leave_oldest(tok_t *t) {
  tseg_t *g = &t->seg[0];
  if (g->folded < g->n)
    fold_leaving(t, g);
  retire_sorted(t, g);
  if (g->cap >= t->spare.cap) {
    ew__tseg_free(t, &t->spare);
    t->spare = *g;
  } else {
    ew__tseg_free(t, g);
  }
  memmove(t->seg, t->seg + 1, (t->nseg - 1) * sizeof *t->seg);
  t->nseg--;
}

/* Tokens not yet in the sketches. */
static uint64_t unfolded(const tok_t *t) {
  uint64_t u = 0;
  for (size_t i = 0; i < t->nseg; i++)
    u += t->seg[i].n - t->seg[i].folded;
  return u;
}

/* Converts b's counted tokens and sequences onto the end of g (room made), and takes their sums
 * into *sums in the same pass: a block of each column converted into the segment, then summed
 * while it is in the cache. */
static void put_batch(tok_t *t, tseg_t *g, const ew__tbatch_t *b, ew__tall_t *sums) {
  enum { BLK = 512 };
  ew__tacc_t acc;
  ew__tacc_start(&acc, t->ncols);
  const double *v[EW_COLUMNS_MAX];
  size_t at = g->n;
  for (size_t i0 = 0; i0 < b->sent; i0 += BLK) {
    size_t i1 = i0 + BLK < b->sent ? i0 + BLK : b->sent, k = 0;
    for (size_t c = 0; c < t->ncols; c++) {
      k = ew__tok_gather(b->col[c], b->dtype[c], b->mask, i0, i1, g->x[c] + at);
      v[c] = g->x[c] + at;
    }
    if (k)
      (void)ew__tacc_block(&acc, v, k); /* prepare checked every value: nothing is refused */
    at += k;
  }
  ew__tacc_finish(&acc, sums);
  if (b->has_len) {
    const unsigned char *p = b->lengths;
    uint32_t *len = g->len + g->nseq;
    for (size_t q = 0, pos = 0; q < b->nseq; q++) {
      uint32_t l, k = 0;
      memcpy(&l, p + 4 * q, 4);
      if (b->mask)
        for (uint32_t i = 0; i < l; i++)
          k += b->mask[pos + i] != 0;
      len[q] = b->mask ? k : l;
      pos += l;
    }
    for (size_t c = 0; c < t->ncols; c++) {
      double mean = 0, sum = 0;
      size_t seqs = ew__tok_seq_means(g->x[c] + g->n, len, b->nseq, &mean, &sum);
      sums->seqs = seqs;
      sums->seq_mean_sum[c] = seqs ? mean * (double)seqs : 0;
      sums->seq_sum_sum[c] = seqs ? sum * (double)seqs : 0;
    }
    g->nseq += b->nseq;
  } else {
    sums->nolen = b->n;
    g->nolen += b->n;
  }
  g->n += b->n;
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
  tseg_t tmp = t->spare, *g = fresh ? &tmp : &t->seg[t->nseg - 1];
  if (fresh) { /* the spare's buffers, emptied */
    memset(&t->spare, 0, sizeof t->spare);
    tmp.step = b->step;
    tmp.n = tmp.nseq = 0;
    tmp.nolen = tmp.folded = 0;
    memset(&tmp.sums, 0, sizeof tmp.sums);
  }
  int rc = ew__tseg_grow(t, g, b->n, b->has_len ? b->nseq : 0);
  for (size_t c = 0; c < t->ncols && rc == 0; c++) /* what the steps leaving may fold */
    rc = ew__qs_reserve(&t->qs[c], unfolded(t) + b->n);
  if (rc) {
    if (fresh)
      t->spare = tmp; /* grown or not, still the spare */
    return EW_ENOMEM;
  }
  /* nothing below fails */
  ew__tall_t sums;
  put_batch(t, g, b, &sums);
  stale_sorted(g); /* the step's sorted copies no longer hold all of it */
  ew__tall_merge(&g->sums, &sums, t->ncols);
  ew__tall_merge(&t->all, &sums, t->ncols);
  if (fresh) {
    if (t->nseg)
      retire_sorted(t, &t->seg[t->nseg - 1]); /* only the newest step keeps them */
    t->seg[t->nseg++] = tmp;
    t->all.steps++;
  }
  t->keep = b->keep ? b->keep : 1;
  while (t->nseg > t->keep)
    leave_oldest(t);
  if (b->keep_bytes && ew__acc_tokens_window_bytes(a) > b->keep_bytes) {
    ew__tseg_free(t, &t->spare); /* the bound first takes the spare buffers, then the oldest */
    free_pool(t);
    while (t->nseg > 1 && ew__acc_tokens_window_bytes(a) > b->keep_bytes) {
      leave_oldest(t);
      ew__tseg_free(t, &t->spare);
    }
  }
  return 0;
}

/* ---- settling: the window's tokens into the sketches, sorted ---- */

/* Column c of g sorted into dst (n doubles), tmp n doubles of scratch. */
static void sort_column(const tseg_t *g, size_t c, size_t from, double *dst, double *tmp) {
  memcpy(dst, g->x[c] + from, (g->n - from) * sizeof *dst);
  ew__tok_sort(dst, g->n - from, tmp);
}

/* The newest step's column c sorted (built in g->sorted[c] if it is not there: in its buffer, the
 * pool's, or a new one). 0 or EW_ENOMEM. */
static int ensure_sorted(tok_t *t, tseg_t *g, size_t c, ew__ws_t *ws) {
  if (g->sorted_n[c] == g->n && g->n)
    return 0;
  if (g->sorted_cap[c] < g->n && t->sbuf_cap[c] >= g->n) { /* the pool's */
    free(g->sorted[c]);
    g->sorted[c] = t->sbuf[c];
    g->sorted_cap[c] = t->sbuf_cap[c];
    t->sbuf[c] = NULL;
    t->sbuf_cap[c] = 0;
  }
  if (g->sorted_cap[c] < g->n) {
    double *s = realloc(g->sorted[c], g->cap * sizeof(double) + 8);
    if (!s)
      return EW_ENOMEM;
    g->sorted[c] = s;
    g->sorted_cap[c] = g->cap;
  }
  ew__ws_mark_t mk = ew__ws_mark(ws);
  double *tmp = ew__ws_alloc(ws, g->n * sizeof(double) + 8);
  if (tmp)
    sort_column(g, c, 0, g->sorted[c], tmp);
  ew__ws_release(ws, mk);
  if (!tmp)
    return EW_ENOMEM;
  g->sorted_n[c] = g->n;
  return 0;
}

int ew__acc_tokens_settle(ew__acc_t *a, ew__ws_t *ws) {
  tok_t *t = T(a);
  for (size_t i = 0; i < t->nseg; i++) {
    tseg_t *g = &t->seg[i];
    size_t m = g->n - g->folded;
    if (m == 0)
      continue;
    bool keep = i == t->nseg - 1 && g->folded == 0; /* the newest step keeps its sorted copies */
    ew__ws_mark_t mk = ew__ws_mark(ws);
    double *work = ew__ws_alloc(ws, m * sizeof(double) + 8);
    double *tmp = work ? ew__ws_alloc(ws, m * sizeof(double) + 8) : NULL;
    int rc = tmp ? 0 : EW_ENOMEM;
    for (size_t c = 0; c < t->ncols && rc == 0; c++)
      rc = ew__qs_reserve(&t->qs[c], m);
    for (size_t c = 0; c < t->ncols && rc == 0 && keep; c++)
      rc = ensure_sorted(t, g, c, ws);
    for (size_t c = 0; c < t->ncols && rc == 0; c++) { /* nothing here fails */
      if (keep) {
        (void)ew__qs_add_sorted(&t->qs[c], g->sorted[c], m, tmp);
      } else {
        sort_column(g, c, g->folded, work, tmp);
        (void)ew__qs_add_sorted(&t->qs[c], work, m, work);
      }
    }
    ew__ws_release(ws, mk);
    if (rc)
      return rc;
    g->folded = g->n;
  }
  return 0;
}

bool ew__acc_tokens_settled(const ew__acc_t *a) { return unfolded(CT(a)) == 0; }

/* ---- views ---- */

int ew__acc_tokens_view(ew__acc_t *a, ew_source_t src, ew__tview_t *v, ew__ws_t *ws) {
  tok_t *t = T(a);
  memset(v, 0, sizeof *v);
  v->ncols = t->ncols;
  v->acc = a;
  v->src = src;
  if (src == EW_SOURCE_ALL) {
    int rc = ew__acc_tokens_settle(a, ws);
    if (rc)
      return rc;
    v->all = v->sums = &t->all;
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
    ew__tall_merge(&v->own, &t->seg[i].sums, t->ncols);
  }
  v->sums = &v->own;
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

int ew__acc_tokens_sorted(ew__tview_t *v, size_t c, ew__ws_t *ws, const double **out) {
  tok_t *t = T(v->acc);
  if (v->steps == 1 && v->src == EW_SOURCE_STEP) { /* the newest step: its kept copy */
    tseg_t *g = &t->seg[t->nseg - 1];
    int rc = ensure_sorted(t, g, c, ws);
    *out = rc ? NULL : g->sorted[c];
    return rc;
  }
  double *x = ew__ws_alloc(ws, v->n * sizeof(double) + 8);
  ew__ws_mark_t mk = ew__ws_mark(ws);
  double *tmp = x ? ew__ws_alloc(ws, v->n * sizeof(double) + 8) : NULL;
  if (!tmp)
    return EW_ENOMEM;
  memcpy(x, v->x[c], v->n * sizeof(double));
  ew__tok_sort(x, v->n, tmp);
  ew__ws_release(ws, mk);
  *out = x;
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
  if (ew__tseg_grow(t, d, g->n, g->nseq) != 0)
    return EW_ENOMEM;
  for (size_t c = 0; c < o->ncols; c++)
    if (g->n)
      memcpy(d->x[c] + d->n, g->x[c], g->n * sizeof(double));
  if (g->nseq)
    memcpy(d->len + d->nseq, g->len, g->nseq * sizeof(uint32_t));
  d->n += g->n;
  d->nseq += g->nseq;
  d->nolen += g->nolen;
  d->folded = d->n; /* merge_ready settled both sides' tokens into t's sketches */
  stale_sorted(d);
  ew__tall_merge(&d->sums, &g->sums, t->ncols);
  return 0;
}

static void drop_pending(tok_t *t) {
  for (size_t c = 0; c < t->ncols; c++) {
    ew__qs_free(&t->pend[c]);
    ew__qs_init(&t->pend[c], QS_K);
  }
}

static void tok_merge(ew__acc_t *a, const ew__acc_t *ob) {
  tok_t *t = T(a);
  const tok_t *o = CT(ob);
  ew__tall_merge(&t->all, &o->all, t->ncols);
  t->all.steps += o->all.steps;
  for (size_t c = 0; c < t->ncols; c++) {
    (void)ew__qs_merge(&t->qs[c], &o->qs[c]);
    (void)ew__qs_merge(&t->qs[c], &t->pend[c]);
  }
  drop_pending(t);
  for (size_t i = 0; i < o->nseg; i++)
    (void)merge_seg(t, o, &o->seg[i]);
  if (o->keep > t->keep)
    t->keep = o->keep;
  while (t->nseg > t->keep)
    leave_oldest(t);
}

int ew__acc_tokens_merge_ready(ew__acc_t *a, const ew__acc_t *ob) {
  tok_t *t = T(a);
  const tok_t *o = CT(ob);
  ew__ws_t *ws = ew__ws_thread();
  int rc = ws ? ew__acc_tokens_settle(a, ws) : EW_ENOMEM; /* t's own tokens, first */
  drop_pending(t);
  /* o's tokens its sketches do not hold yet: sorted into a sketch of their own, t->pend, which
   * the merge that follows adds */
  for (size_t i = 0; i < o->nseg && rc == 0; i++) {
    const tseg_t *g = &o->seg[i];
    size_t m = g->n - g->folded;
    if (m == 0)
      continue;
    ew__ws_mark_t mk = ew__ws_mark(ws);
    double *work = ew__ws_alloc(ws, m * sizeof(double) + 8);
    double *tmp = work ? ew__ws_alloc(ws, m * sizeof(double) + 8) : NULL;
    rc = tmp ? 0 : EW_ENOMEM;
    for (size_t c = 0; c < t->ncols && rc == 0; c++)
      if ((rc = ew__qs_reserve(&t->pend[c], m)) == 0) {
        sort_column(g, c, g->folded, work, tmp);
        (void)ew__qs_add_sorted(&t->pend[c], work, m, work);
      }
    ew__ws_release(ws, mk);
  }
  for (size_t c = 0; c < t->ncols && rc == 0; c++) {
    ew__qsketch_t both = o->qs[c]; /* the levels either merge reaches */
    both.n += t->pend[c].n;
    both.top = both.top > t->pend[c].top ? both.top : t->pend[c].top;
    rc = ew__qs_reserve_merge(&t->qs[c], &both);
  }
  size_t more = t->nseg + o->nseg;
  if (rc == 0 && more > t->capseg) {
    tseg_t *s = realloc(t->seg, more * sizeof *s);
    if (!s)
      rc = EW_ENOMEM;
    else
      t->seg = s, t->capseg = more;
  }
  for (size_t i = 0; i < o->nseg && rc == 0; i++) { /* room in the segments the merge appends to */
    const tseg_t *g = &o->seg[i];
    for (size_t k = 0; k < t->nseg && rc == 0; k++)
      if (t->seg[k].step == g->step && ew__tseg_grow(t, &t->seg[k], g->n, g->nseq) != 0)
        rc = EW_ENOMEM;
  }
  if (rc)
    drop_pending(t);
  return rc;
}

/* ---- the interface ---- */

static const ew__acc_ops_t tokens_ops = {
    .name = "tokens",
    .tag = EW_TAG('T', 'O', 'K', 'S'),
    .free = tok_free,
    .clear = tok_clear,
    .bytes = tok_bytes,
    .merge = tok_merge,
    .saved_len = ew__tok_saved_len,
    .save = ew__tok_save,
    .load = ew__tok_load,
};

ew__acc_t *ew__acc_tokens_new(size_t ncols) {
  tok_t *t = calloc(1, sizeof *t);
  if (!t)
    return NULL;
  t->base.ops = &tokens_ops;
  t->ncols = ncols;
  t->keep = 1;
  for (size_t c = 0; c < ncols; c++) {
    ew__qs_init(&t->qs[c], QS_K);
    ew__qs_init(&t->pend[c], QS_K);
  }
  return &t->base;
}

bool ew__acc_is_tokens(const ew__acc_t *a) { return a && a->ops == &tokens_ops; }

size_t ew__acc_tokens_bound(size_t ncols) {
  /* the sums and, per column, a sketch of at most 2^53 tokens: levels up to 53 − log2(k) + 1 */
  return sizeof(tok_t) + ncols * (size_t)(53 - 12 + 2) * QS_K * sizeof(double);
}
