/* acc/tokens_settle.c — the tokens kind's sorted side: a step's tokens into the quantile
 * sketches of the `all` view (settling: each column sorted once — radix, acc/tokens_sort.c — and
 * fed as a sorted run, ew__qs_add_sorted), the newest step's sorted columns kept for its exact
 * quantiles (their buffers pooled from step to step), and merging, which settles both sides so
 * that every token of the union is in the sketches once. */
#include "tokens_priv.h"

#include <stdlib.h>
#include <string.h>

void ew__tok_retire_sorted(tok_t *t, tseg_t *g) {
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

void ew__tok_free_pool(tok_t *t) {
  for (size_t c = 0; c < EW_COLUMNS_MAX; c++) {
    free(t->sbuf[c]);
    t->sbuf[c] = NULL;
    t->sbuf_cap[c] = 0;
  }
}

/* The tokens of g's chunks from `first` on, column c, sorted ascending into dst — as floats when
 * those chunks sent it narrow (f32, f16, bf16), else doubles; tmp as many doubles of scratch.
 * Returns whether they are floats. */
static bool sort_range(const tseg_t *g, size_t c, size_t first, void *dst, double *tmp) {
  bool narrow = ew__tseg_narrow(g, c, first);
  size_t m = 0;
  for (size_t k = first; k < g->nchunk; k++)
    m += narrow ? ew__tchunk_read_f32(&g->chunk[k], c, (float *)dst + m)
                : ew__tchunk_read(&g->chunk[k], c, (double *)dst + m);
  if (narrow)
    ew__tok_sort_f32(dst, m, dst, tmp);
  else
    ew__tok_sort(dst, m, tmp);
  return narrow;
}

/* Adds m sorted values v (floats when narrow) to sketch q; tmp m/2 doubles, distinct from v. */
static void add_sorted(ew__qsketch_t *q, const void *v, size_t m, bool narrow, double *tmp) {
  if (narrow)
    (void)ew__qs_add_sorted_f32(q, v, m, tmp);
  else
    (void)ew__qs_add_sorted(q, v, m, tmp);
}

/* Room for g's sorted copy of column c (its buffer, the pool's, or a new one). 0 or EW_ENOMEM. */
static int sorted_room(tok_t *t, tseg_t *g, size_t c) {
  size_t need = g->n * (ew__tseg_narrow(g, c, 0) ? 4 : 8);
  if (g->sorted_cap[c] >= need)
    return 0;
  if (t->sbuf_cap[c] >= need) {
    free(g->sorted[c]);
    g->sorted[c] = t->sbuf[c];
    g->sorted_cap[c] = t->sbuf_cap[c];
    t->sbuf[c] = NULL;
    t->sbuf_cap[c] = 0;
    return 0;
  }
  size_t cap = need + need / 8; /* the next steps are about as large */
  unsigned char *s = realloc(g->sorted[c], cap);
  if (!s)
    return EW_ENOMEM;
  g->sorted[c] = s;
  g->sorted_cap[c] = cap;
  return 0;
}

/* True when the newest step g may keep a sorted copy of column c within the window's byte bound. */
static bool may_keep(const tok_t *t, const tseg_t *g, size_t c) {
  size_t need = g->n * (ew__tseg_narrow(g, c, 0) ? 4 : 8);
  size_t more = g->sorted_cap[c] >= need ? 0 : need + need / 8;
  return !t->keep_bytes || ew__acc_tokens_window_bytes(&t->base) + more <= t->keep_bytes;
}

/* The newest step's column c sorted in g->sorted[c] (built if it is not there; scratch: n doubles,
 * or NULL to take them from ws). 0, EW_ENOMEM, or EW_ERANGE when the window's byte bound leaves
 * no room to keep it (nothing changed). */
static int ensure_sorted(tok_t *t, tseg_t *g, size_t c, ew__ws_t *ws, double *scratch) {
  if (g->sorted_n[c] == g->n && g->n)
    return 0;
  if (!may_keep(t, g, c))
    return EW_ERANGE;
  if (sorted_room(t, g, c) != 0)
    return EW_ENOMEM;
  ew__ws_mark_t mk = ew__ws_mark(ws);
  double *tmp = scratch ? scratch : ew__ws_alloc(ws, g->n * sizeof(double) + 8);
  if (tmp) {
    (void)sort_range(g, c, 0, g->sorted[c], tmp);
    g->sorted_n[c] = g->n;
  }
  ew__ws_release(ws, mk);
  return tmp ? 0 : EW_ENOMEM;
}

int ew__tok_settle_seg(tok_t *t, size_t i, ew__ws_t *ws) {
  tseg_t *g = &t->seg[i];
  size_t m = ew__tseg_unfolded(g);
  if (m == 0)
    return 0;
  bool keep = i == t->nseg - 1 && g->folded == 0; /* the newest step keeps its sorted copies */
  bool kept[EW_COLUMNS_MAX] = {false};              /* where the byte bound leaves room */
  ew__ws_mark_t mk = ew__ws_mark(ws);
  double *work = ew__ws_alloc(ws, m * sizeof(double) + 8);
  double *tmp = work ? ew__ws_alloc(ws, m * sizeof(double) + 8) : NULL;
  int rc = tmp ? 0 : EW_ENOMEM;
  for (size_t c = 0; c < t->ncols && rc == 0; c++)
    rc = ew__qs_reserve(&t->qs[c], m);
  for (size_t c = 0; c < t->ncols && rc == 0 && keep; c++) {
    int k = ensure_sorted(t, g, c, ws, tmp); /* tmp: n doubles (nothing folded yet) */
    kept[c] = k == 0;
    rc = k == EW_ENOMEM ? k : 0;
  }
  for (size_t c = 0; c < t->ncols && rc == 0; c++) { /* nothing here fails */
    if (kept[c])
      add_sorted(&t->qs[c], g->sorted[c], m, ew__tseg_narrow(g, c, 0), tmp);
    else
      add_sorted(&t->qs[c], work, m, sort_range(g, c, g->folded, work, tmp), tmp);
  }
  ew__ws_release(ws, mk);
  if (rc == 0)
    g->folded = g->nchunk;
  return rc;
}

int ew__acc_tokens_settle(ew__acc_t *a, ew__ws_t *ws) {
  tok_t *t = (tok_t *)a;
  for (size_t i = 0; i < t->nseg; i++) {
    int rc = ew__tok_settle_seg(t, i, ws);
    if (rc)
      return rc;
  }
  return 0;
}

int ew__acc_tokens_quantile(ew__tview_t *v, size_t c, double level, ew__ws_t *ws,
                            double *out) {
  tok_t *t = (tok_t *)v->acc;
  if (v->steps == 1 && v->src == EW_SOURCE_STEP) { /* the newest step: its kept copy */
    tseg_t *g = &t->seg[t->nseg - 1];
    int rc = ensure_sorted(t, g, c, ws, NULL);
    if (rc == 0) {
      const void *s = g->sorted[c];
      *out = ew__tok_quantile_sorted(s, ew__tseg_narrow(g, c, 0) ? s : NULL, g->n, level);
      return 0;
    }
    if (rc != EW_ERANGE) /* else no room to keep it: sorted in ws, below */
      return rc;
  }
  const double *x;
  if (ew__acc_tokens_column(v, c, ws, &x) != 0)
    return EW_ENOMEM;
  ew__ws_mark_t mk = ew__ws_mark(ws);
  double *s = ew__ws_alloc(ws, v->n * sizeof(double) + 8);
  double *tmp = s ? ew__ws_alloc(ws, v->n * sizeof(double) + 8) : NULL;
  if (tmp) {
    memcpy(s, x, v->n * sizeof(double));
    ew__tok_sort(s, v->n, tmp);
    *out = ew__tok_quantile_sorted(s, NULL, v->n, level);
  }
  ew__ws_release(ws, mk);
  return tmp ? 0 : EW_ENOMEM;
}

/* ---- merge: sums and sketches exactly; windows step by step ---- */

static void drop_pending(tok_t *t) {
  for (size_t c = 0; c < t->ncols; c++) {
    ew__qs_free(&t->pend[c]);
    ew__qs_init(&t->pend[c], QS_K);
  }
  for (size_t i = 0; i < t->npseg; i++)
    ew__tseg_free(t, &t->pseg[i]);
  free(t->pseg);
  t->pseg = NULL;
  t->npseg = 0;
}

/* A copy of o's step g in *d: its batches' bytes copied (their pointers into the copies), its
 * sequences and sums; every chunk counted as in the sketches (the merge puts them there). 0 or
 * EW_ENOMEM (d then holds what was copied, for ew__tseg_free). */
static int copy_seg(const tseg_t *g, tseg_t *d, size_t ncols) {
  *d = (tseg_t){.step = g->step, .n = g->n, .nseq = g->nseq, .nolen = g->nolen, .sums = g->sums};
  if (ew__tseg_room(d, g->nchunk, g->nseq) != 0)
    return EW_ENOMEM;
  for (size_t k = 0; k < g->nchunk; k++) {
    const tchunk_t *from = &g->chunk[k];
    tchunk_t *to = &d->chunk[k];
    unsigned char *data = malloc(from->bytes ? from->bytes : 1);
    if (!data)
      return EW_ENOMEM;
    const unsigned char *base = from->data;
    memcpy(data, base, from->bytes);
    *to = *from;
    to->data = data;
    for (size_t c = 0; c < ncols; c++)
      to->col[c] = data + (from->col[c] - base);
    to->mask = from->mask ? data + (from->mask - base) : NULL;
    d->nchunk = k + 1;
  }
  if (g->nseq)
    memcpy(d->len, g->len, g->nseq * sizeof(uint32_t));
  d->folded = d->nchunk;
  return 0;
}

/* Moves the copy p into t: onto t's step of the same number (room reserved), or as a new step
 * in step order (room reserved). */
static void move_seg(tok_t *t, tseg_t *p) {
  size_t at = 0;
  while (at < t->nseg && t->seg[at].step < p->step)
    at++;
  if (at == t->nseg || t->seg[at].step != p->step) {
    memmove(t->seg + at + 1, t->seg + at, (t->nseg - at) * sizeof *t->seg);
    t->seg[at] = *p;
    t->nseg++;
    memset(p, 0, sizeof *p);
    return;
  }
  tseg_t *d = &t->seg[at];
  memcpy(d->chunk + d->nchunk, p->chunk, p->nchunk * sizeof *p->chunk);
  if (p->nseq)
    memcpy(d->len + d->nseq, p->len, p->nseq * sizeof(uint32_t));
  d->nchunk += p->nchunk;
  d->folded = d->nchunk; /* merge_ready settled d; p's tokens go into the sketches now */
  d->n += p->n;
  d->nseq += p->nseq;
  d->nolen += p->nolen;
  ew__tall_merge(&d->sums, &p->sums, t->ncols);
  memset(d->sorted_n, 0, sizeof d->sorted_n);
  p->nchunk = 0; /* its chunks' bytes are d's now */
  ew__tseg_free(t, p);
}

void ew__tok_merge(ew__acc_t *a, const ew__acc_t *ob) {
  tok_t *t = (tok_t *)a;
  const tok_t *o = (const tok_t *)ob;
  ew__tall_merge(&t->all, &o->all, t->ncols);
  t->all.steps += o->all.steps;
  for (size_t c = 0; c < t->ncols; c++) {
    (void)ew__qs_merge(&t->qs[c], &o->qs[c]);
    (void)ew__qs_merge(&t->qs[c], &t->pend[c]);
  }
  for (size_t i = 0; i < t->npseg; i++)
    move_seg(t, &t->pseg[i]);
  drop_pending(t);
  if (o->keep > t->keep)
    t->keep = o->keep;
  while (t->nseg > t->keep)
    ew__tok_leave_oldest(t);
}

int ew__acc_tokens_merge_ready(ew__acc_t *a, const ew__acc_t *ob) {
  tok_t *t = (tok_t *)a;
  const tok_t *o = (const tok_t *)ob;
  ew__ws_t *ws = ew__ws_thread();
  int rc = ws ? ew__acc_tokens_settle(a, ws) : EW_ENOMEM; /* t's own tokens, first */
  drop_pending(t);
  /* o's tokens its sketches do not hold yet: sorted into a sketch of their own, t->pend, which
   * the merge that follows adds */
  for (size_t i = 0; i < o->nseg && rc == 0; i++) {
    const tseg_t *g = &o->seg[i];
    size_t m = ew__tseg_unfolded(g);
    if (m == 0)
      continue;
    ew__ws_mark_t mk = ew__ws_mark(ws);
    double *work = ew__ws_alloc(ws, m * sizeof(double) + 8);
    double *tmp = work ? ew__ws_alloc(ws, m * sizeof(double) + 8) : NULL;
    rc = tmp ? 0 : EW_ENOMEM;
    for (size_t c = 0; c < t->ncols && rc == 0; c++)
      if ((rc = ew__qs_reserve(&t->pend[c], m)) == 0)
        add_sorted(&t->pend[c], work, m, sort_range(g, c, g->folded, work, tmp), tmp);
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
  if (rc == 0 && o->nseg && !(t->pseg = calloc(o->nseg, sizeof *t->pseg)))
    rc = EW_ENOMEM;
  for (size_t i = 0; i < o->nseg && rc == 0; i++) { /* copies, and room where they join a step */
    t->npseg = i + 1;
    rc = copy_seg(&o->seg[i], &t->pseg[i], t->ncols);
    for (size_t k = 0; k < t->nseg && rc == 0; k++)
      if (t->seg[k].step == o->seg[i].step)
        rc = ew__tseg_room(&t->seg[k], o->seg[i].nchunk, o->seg[i].nseq);
  }
  if (rc)
    drop_pending(t);
  return rc;
}
