/* acc/tokens_acc.c — the tokens kind: what a tokens stream keeps of its per-token scalars.
 *
 * Two parts, from the same batches:
 *  - the window: the counted tokens (per column, as f32 while they came exact in f32, else f64),
 *    per-sequence counts and sums of its newest `keep` steps, one segment per step in arrival
 *    order — the `step` view is the newest segment, the `window` view all of them;
 *  - all: exact mergeable sums of every counted token since creation (per column n, mean, M2,
 *    min, max; the co-moment of every pair of columns; per-sequence sums) and a quantile sketch
 *    per column (acc/tokens_sketch.c) whose rank error is certified.
 * A batch goes in at the cost of copying its tokens into its step's segment, their sums taken in
 * the same pass; the sketches take a step's tokens later, sorted (tokens_settle.c: the daemon
 * settles behind each step's batches, on its math thread; a step leaves the window settled, and
 * anything that reads the `all` view settles first) — so a step's sort serves its exact quantiles
 * and the sketches both, and ingest never sorts when its caller settles. The buffers of the step
 * that left last are kept for the next one (no page to fault in per step). A batch's fallible
 * part (room for its tokens; settling the steps it makes leave) comes before anything it
 * describes changes, so applying it is all or nothing. */
#include "tokens_priv.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static tok_t *T(ew__acc_t *a) { return (tok_t *)a; }
static const tok_t *CT(const ew__acc_t *a) { return (const tok_t *)a; }

void ew__tseg_free(const tok_t *t, tseg_t *g) {
  (void)t;
  for (size_t c = 0; c < EW_COLUMNS_MAX; c++) {
    free(g->x[c]);
    free(g->sorted[c]);
  }
  free(g->len);
  memset(g, 0, sizeof *g);
}

static void tok_clear(ew__acc_t *a) {
  tok_t *t = T(a);
  for (size_t i = 0; i < t->nseg; i++)
    ew__tseg_free(t, &t->seg[i]);
  ew__tseg_free(t, &t->spare);
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
  size_t b = g->capseq * sizeof(uint32_t);
  for (size_t c = 0; c < t->ncols; c++)
    b += g->cap[c] + g->sorted_cap[c];
  return b;
}

size_t ew__acc_tokens_window_bytes(const ew__acc_t *a) {
  const tok_t *t = CT(a);
  size_t b = seg_bytes(t, &t->spare);
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

/* ---- segments ---- */

void ew__tseg_read(const tseg_t *g, size_t c, size_t from, size_t m, double *dst) {
  if (g->esz[c] == 8) {
    memcpy(dst, (const double *)(const void *)g->x[c] + from, m * sizeof *dst);
    return;
  }
  const float *f = (const float *)(const void *)g->x[c] + from;
  for (size_t i = 0; i < m; i++)
    dst[i] = f[i];
}

/* Column c of g, held as f32, as f64 in place (its buffer holds 8 bytes a token). */
static void widen(tseg_t *g, size_t c) {
  const float *f = (const float *)(const void *)g->x[c];
  double *d = (double *)(void *)g->x[c];
  for (size_t i = g->n; i-- > 0;) /* from the end: each f64 lands at or past its f32 */
    d[i] = f[i];
  g->esz[c] = 8;
}

int ew__tseg_grow(tok_t *t, tseg_t *g, size_t more, size_t moreseq, const unsigned *esz) {
  for (size_t c = 0; c < t->ncols; c++) {
    unsigned e = g->esz[c] == 8 || esz[c] == 8 ? 8 : 4;
    if (g->n == 0)
      e = esz[c]; /* an empty segment (a spare's buffers) holds what the batch brings */
    size_t need = (g->n + more) * e;
    if (need > g->cap[c]) {
      size_t cap = g->cap[c] ? g->cap[c] : 4096;
      while (cap < need)
        cap *= 2;
      unsigned char *x = realloc(g->x[c], cap);
      if (!x)
        return EW_ENOMEM; /* columns grown so far keep their tokens: cap only bounds them */
      g->x[c] = x;
      g->cap[c] = cap;
    }
    if (e == 8 && g->esz[c] == 4 && g->n)
      widen(g, c);
    g->esz[c] = e;
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

/* s + v into the Neumaier pair (s, c). */
static void nsum(double *s, double *c, double v) {
  double t = *s + v;
  *c += fabs(*s) >= fabs(v) ? (*s - t) + v : (v - t) + *s;
  *s = t;
}

/* Converts b's counted tokens and sequences onto the end of g (room made), and takes their sums
 * into *sums in the same pass: a block of each column copied into the segment and read, as f64
 * on the stack, for the sums while it is in the cache. */
static void put_batch(tok_t *t, tseg_t *g, const ew__tbatch_t *b, ew__tall_t *sums) {
  enum { BLK = 512 };
  static _Thread_local double blk[EW_COLUMNS_MAX][BLK];
  ew__tacc_t acc;
  ew__tacc_start(&acc, t->ncols);
  const double *v[EW_COLUMNS_MAX];
  size_t at = g->n;
  for (size_t c = 0; c < t->ncols; c++)
    v[c] = blk[c];
  for (size_t i0 = 0; i0 < b->sent; i0 += BLK) {
    size_t i1 = i0 + BLK < b->sent ? i0 + BLK : b->sent, k = 0;
    for (size_t c = 0; c < t->ncols; c++) {
      if (g->esz[c] == 8) {
        double *d = (double *)(void *)g->x[c] + at;
        k = ew__tok_gather(b->col[c], b->dtype[c], b->mask, i0, i1, d);
        v[c] = d;
      } else {
        float *f = (float *)(void *)g->x[c] + at;
        k = ew__tok_gather_f32(b->col[c], b->dtype[c], b->mask, i0, i1, f);
        for (size_t i = 0; i < k; i++)
          blk[c][i] = f[i];
        v[c] = blk[c];
      }
    }
    if (k)
      (void)ew__tacc_block(&acc, v, k); /* prepare checked every value: nothing is refused */
    at += k;
  }
  ew__tacc_finish(&acc, sums);
  g->n = at;
  if (!b->has_len) {
    sums->nolen = b->n;
    g->nolen += b->n;
    return;
  }
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
  for (size_t c = 0; c < t->ncols; c++) { /* the sequences' sums, read back from the segment */
    double sm = 0, cm = 0, ss = 0, cs = 0, tmp[256];
    size_t seqs = 0;
    for (size_t q = 0, pos = g->n - b->n; q < b->nseq; pos += len[q], q++) {
      double sum = 0;
      for (size_t i = 0; i < len[q]; i += 256) {
        size_t m = len[q] - i < 256 ? len[q] - i : 256;
        ew__tseg_read(g, c, pos + i, m, tmp);
        for (size_t k = 0; k < m; k++)
          sum += tmp[k];
      }
      if (!len[q])
        continue;
      seqs++;
      nsum(&sm, &cm, sum / (double)len[q]);
      nsum(&ss, &cs, sum);
    }
    sums->seqs = seqs;
    sums->seq_mean_sum[c] = sm + cm;
    sums->seq_sum_sum[c] = ss + cs;
  }
  g->nseq += b->nseq;
}

/* The oldest step leaves the window (settled: its tokens are in the sketches); its buffers are
 * kept as the spare (the larger of the two when there is one already). */
void ew__tok_leave_oldest(tok_t *t) {
  tseg_t *g = &t->seg[0];
  ew__tok_retire_sorted(t, g);
  size_t have = 0, mine = 0;
  for (size_t c = 0; c < t->ncols; c++)
    have += t->spare.cap[c], mine += g->cap[c];
  if (mine >= have) {
    ew__tseg_free(t, &t->spare);
    t->spare = *g;
  } else {
    ew__tseg_free(t, g);
  }
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
  if (settle_leaving(t, b, fresh) != 0)
    return EW_ENOMEM;
  unsigned esz[EW_COLUMNS_MAX];
  for (size_t c = 0; c < t->ncols; c++)
    esz[c] = b->dtype[c] == EW_F64 ? 8 : 4;
  tseg_t tmp = t->spare, *g = fresh ? &tmp : &t->seg[t->nseg - 1];
  if (fresh) { /* the spare's buffers, emptied */
    memset(&t->spare, 0, sizeof t->spare);
    tmp.step = b->step;
    tmp.n = tmp.nseq = 0;
    tmp.nolen = tmp.folded = 0;
    memset(&tmp.sums, 0, sizeof tmp.sums);
  }
  if (ew__tseg_grow(t, g, b->n, b->has_len ? b->nseq : 0, esz) != 0) {
    if (fresh)
      t->spare = tmp; /* grown or not, still the spare */
    return EW_ENOMEM;
  }
  /* nothing below fails */
  ew__tall_t sums;
  put_batch(t, g, b, &sums);
  memset(g->sorted_n, 0, sizeof g->sorted_n); /* its sorted copies no longer hold all of it */
  ew__tall_merge(&g->sums, &sums, t->ncols);
  ew__tall_merge(&t->all, &sums, t->ncols);
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
    ew__tseg_free(t, &t->spare); /* the bound first takes the spare buffers, then the oldest */
    ew__tok_free_pool(t);
    while (t->nseg > 1 && ew__acc_tokens_window_bytes(a) > b->keep_bytes) {
      ew__tok_leave_oldest(t);
      ew__tseg_free(t, &t->spare);
    }
  }
  return 0;
}

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
  v->steps = t->nseg - first;
  if (t->nseg)
    v->last_step = t->seg[t->nseg - 1].step, v->first_step = t->seg[first].step;
  if (v->steps == 1) { /* one segment: read in place (f32 columns widened when a metric asks) */
    const tseg_t *g = &t->seg[first];
    for (size_t c = 0; c < t->ncols; c++) {
      if (g->esz[c] == 8)
        v->x[c] = (const double *)(const void *)g->x[c];
      else
        v->xf[c] = (const float *)(const void *)g->x[c];
    }
    v->len = g->len;
    return 0;
  }
  if (v->steps == 0)
    return 0;
  for (size_t c = 0; c < t->ncols; c++) { /* several steps: laid end to end in ws, as f64 */
    double *x = ew__ws_alloc(ws, n * sizeof(double) + 8);
    if (!x)
      return EW_ENOMEM;
    size_t at = 0;
    for (size_t i = first; i < t->nseg; i++) {
      ew__tseg_read(&t->seg[i], c, 0, t->seg[i].n, x + at);
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

int ew__acc_tokens_column(ew__tview_t *v, size_t c, ew__ws_t *ws, const double **out) {
  if (!v->x[c] && v->xf[c]) { /* an f32 column, widened once for this view */
    double *x = ew__ws_alloc(ws, v->n * sizeof(double) + 8);
    if (!x)
      return EW_ENOMEM;
    for (size_t i = 0; i < v->n; i++)
      x[i] = v->xf[c][i];
    v->x[c] = x;
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
