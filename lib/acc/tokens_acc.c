/* acc/tokens_acc.c — the tokens kind: what a tokens stream keeps of its per-token scalars.
 *
 * Two parts, from the same batches:
 *  - the window: its newest `keep` steps, one segment each — the `step` view is the newest, the
 *    `window` view all of them — each step its batches as they were sent (their packed bytes,
 *    moved in by apply: no copy, no conversion; a column in f32 stays 4 bytes a token, f16 and
 *    bf16 2), its sequences' counted tokens and its sums;
 *  - all: exact mergeable sums of every counted token since creation (per column n, mean, M2,
 *    min, max; the co-moment of every pair of columns; per-sequence sums) and a quantile sketch
 *    per column (acc/tokens_sketch.c) whose rank error is certified.
 * A batch's sums are taken when it is prepared (one pass that checks it too); applying it moves
 * its bytes into its step. The sketches take a step's tokens later, sorted (tokens_settle.c: the
 * daemon settles behind each step's batches, on its math thread; a step leaves the window
 * settled, and anything that reads the `all` view settles first) — so a step's sort serves its
 * exact quantiles and the sketches both, and ingest never sorts when its caller settles. A
 * metric reads a column as f64, gathered from the step's batches once per query
 * (ew__acc_tokens_column). A batch's fallible part (room for it; settling the steps it makes
 * leave) comes before anything it describes changes, so applying it is all or nothing. */
#include "tokens_priv.h"

#include <stdlib.h>
#include <string.h>

static tok_t *T(ew__acc_t *a) { return (tok_t *)a; }
static const tok_t *CT(const ew__acc_t *a) { return (const tok_t *)a; }

void ew__tseg_free(const tok_t *t, tseg_t *g) {
  (void)t;
  for (size_t k = 0; k < g->nchunk; k++)
    free(g->chunk[k].data);
  for (size_t c = 0; c < EW_COLUMNS_MAX; c++)
    free(g->sorted[c]);
  free(g->chunk);
  free(g->len);
  memset(g, 0, sizeof *g);
}

static void tok_clear(ew__acc_t *a) {
  tok_t *t = T(a);
  for (size_t i = 0; i < t->nseg; i++)
    ew__tseg_free(t, &t->seg[i]);
  ew__tok_free_pool(t);
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
  size_t b = g->capseq * sizeof(uint32_t) + g->capchunk * sizeof(tchunk_t);
  for (size_t k = 0; k < g->nchunk; k++)
    b += g->chunk[k].bytes;
  for (size_t c = 0; c < t->ncols; c++)
    b += g->sorted_cap[c];
  return b;
}

size_t ew__acc_tokens_window_bytes(const ew__acc_t *a) {
  const tok_t *t = CT(a);
  size_t b = 0;
  for (size_t c = 0; c < t->ncols; c++)
    b += t->sbuf_cap[c];
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

/* ---- segments and their batches ---- */

size_t ew__tchunk_read(const tchunk_t *k, size_t c, double *dst) {
  return ew__tok_gather(k->col[c], k->dtype[c], k->mask, 0, k->sent, dst);
}

size_t ew__tchunk_read_f32(const tchunk_t *k, size_t c, float *dstf) {
  return ew__tok_gather_f32(k->col[c], k->dtype[c], k->mask, 0, k->sent, dstf);
}

bool ew__tseg_narrow(const tseg_t *g, size_t c, size_t first) {
  for (size_t k = first; k < g->nchunk; k++)
    if (g->chunk[k].dtype[c] == EW_F64)
      return false;
  return true;
}

size_t ew__tseg_unfolded(const tseg_t *g) {
  size_t m = 0;
  for (size_t k = g->folded; k < g->nchunk; k++)
    m += g->chunk[k].n;
  return m;
}

int ew__tseg_room(tseg_t *g, size_t more, size_t moreseq) {
  if (g->nchunk + more > g->capchunk) {
    size_t cap = g->capchunk ? g->capchunk : 8;
    while (cap < g->nchunk + more)
      cap *= 2;
    tchunk_t *k = realloc(g->chunk, cap * sizeof *k);
    if (!k)
      return EW_ENOMEM;
    g->chunk = k;
    g->capchunk = cap;
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

/* ---- a batch in ---- */

/* b (its packed bytes `data`) onto the end of g (room made): a chunk, and its sequences' counted
 * tokens. */
static void put_batch(tok_t *t, tseg_t *g, const ew__tbatch_t *b, void *data) {
  tchunk_t *k = &g->chunk[g->nchunk++];
  *k = (tchunk_t){.data = data, .bytes = b->bytes, .mask = b->mask, .sent = b->sent, .n = b->n};
  for (size_t c = 0; c < t->ncols; c++) {
    k->col[c] = b->col[c];
    k->dtype[c] = b->dtype[c];
  }
  g->n += b->n;
  if (!b->has_len) {
    g->nolen += b->n;
    return;
  }
  const unsigned char *p = b->lengths;
  uint32_t *len = g->len + g->nseq;
  for (size_t q = 0, pos = 0; q < b->nseq; q++) {
    uint32_t l, n = 0;
    memcpy(&l, p + 4 * q, 4);
    if (b->mask)
      for (uint32_t i = 0; i < l; i++)
        n += b->mask[pos + i] != 0;
    len[q] = b->mask ? n : l;
    pos += l;
  }
  g->nseq += b->nseq;
}

void ew__tok_leave_oldest(tok_t *t) {
  ew__tok_retire_sorted(t, &t->seg[0]);
  ew__tseg_free(t, &t->seg[0]);
  memmove(t->seg, t->seg + 1, (t->nseg - 1) * sizeof *t->seg);
  t->nseg--;
}

/* Settles the steps this batch makes leave: past `keep` (counting a fresh step), and, under a
 * byte bound, every step but the newest (which of them leave depends on bytes not yet known).
 * 0 or EW_ENOMEM. */
static int settle_leaving(tok_t *t, const ew__tbatch_t *b, bool fresh) {
  uint32_t keep = b->keep ? b->keep : 1;
  size_t after = t->nseg + (fresh ? 1 : 0), leave = after > keep ? after - keep : 0;
  if (b->keep_bytes)
    leave = t->nseg - (fresh ? 0 : 1);
  ew__ws_t *ws = NULL;
  for (size_t i = 0; i < leave && i < t->nseg; i++) {
    if (!ew__tseg_unfolded(&t->seg[i]))
      continue;
    if (!ws && !(ws = ew__ws_thread()))
      return EW_ENOMEM;
    ew__ws_mark_t mk = ew__ws_mark(ws);
    int rc = ew__tok_settle_seg(t, i, ws);
    ew__ws_release(ws, mk);
    if (rc)
      return rc;
  }
  return 0;
}

int ew__acc_tokens_apply(ew__acc_t *a, const ew__tbatch_t *b, void **data) {
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
  if (settle_leaving(t, b, fresh) != 0)
    return EW_ENOMEM;
  tseg_t tmp = {.step = b->step}, *g = fresh ? &tmp : &t->seg[t->nseg - 1];
  if (ew__tseg_room(g, 1, b->has_len ? b->nseq : 0) != 0) {
    if (fresh)
      ew__tseg_free(t, &tmp);
    return EW_ENOMEM;
  }
  /* nothing below fails */
  put_batch(t, g, b, *data);
  *data = NULL;
  memset(g->sorted_n, 0, sizeof g->sorted_n); /* its sorted copies no longer hold all of it */
  ew__tall_merge(&g->sums, &b->sums, t->ncols);
  ew__tall_merge(&t->all, &b->sums, t->ncols);
  if (fresh) {
    if (t->nseg)
      ew__tok_retire_sorted(t, &t->seg[t->nseg - 1]); /* only the newest step keeps them */
    t->seg[t->nseg++] = tmp;
    t->all.steps++;
  }
  t->keep = b->keep ? b->keep : 1;
  t->keep_bytes = b->keep_bytes;
  while (t->nseg > t->keep)
    ew__tok_leave_oldest(t);
  if (b->keep_bytes && ew__acc_tokens_window_bytes(a) > b->keep_bytes) {
    ew__tok_free_pool(t); /* the bound first takes the pooled buffers, then the oldest steps */
    while (t->nseg > 1 && ew__acc_tokens_window_bytes(a) > b->keep_bytes)
      ew__tok_leave_oldest(t);
  }
  return 0;
}

/* ---- views ---- */

/* Segment g's column c, every counted token, as f64 into dst. */
static void read_seg(const tseg_t *g, size_t c, double *dst) {
  size_t at = 0;
  for (size_t k = 0; k < g->nchunk; k++)
    at += ew__tchunk_read(&g->chunk[k], c, dst + at);
}

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
    v->all = v->tall = &t->all;
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
  v->tall = &v->own;
  v->n = n;
  v->nseq = nseq;
  v->first = first;
  v->steps = t->nseg - first;
  if (t->nseg)
    v->last_step = t->seg[t->nseg - 1].step, v->first_step = t->seg[first].step;
  if (v->steps == 1) { /* one step: its sequences in place, its columns when a metric asks */
    v->len = t->seg[first].len;
    return 0;
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

int ew__acc_tokens_column(ew__tview_t *v, size_t c, ew__ws_t *ws, const double **out) {
  const tok_t *t = CT(v->acc);
  if (!v->x[c] && v->n) { /* gathered once for this view, as f64, from its steps' batches */
    const tseg_t *g = &t->seg[v->first];
    const tchunk_t *k = g->chunk;
    if (v->steps == 1 && g->nchunk == 1 && !k->mask && k->dtype[c] == EW_F64) {
      v->x[c] = (const double *)(const void *)k->col[c]; /* one f64 batch: in place */
    } else {
      double *x = ew__ws_alloc(ws, v->n * sizeof(double) + 8);
      if (!x)
        return EW_ENOMEM;
      size_t at = 0;
      for (size_t i = v->first; i < t->nseg; i++) {
        read_seg(&t->seg[i], c, x + at);
        at += t->seg[i].n;
      }
      v->x[c] = x;
    }
  }
  *out = v->x[c];
  return 0;
}

/* ---- the interface ---- */

static const ew__acc_ops_t tokens_ops = {
    .name = "tokens",
    .tag = EW_TAG('T', 'O', 'K', 'S'),
    .free = tok_free,
    .clear = tok_clear,
    .bytes = tok_bytes,
    .merge = ew__tok_merge,
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
