/* acc/tokens_save.c — the saved form of the tokens kind (docs/STATE.md, section TOKS), read back
 * with every field checked:
 *   u64 keep, u64 steps; the sums of every token (SUMS below); per column its sketch
 *   (acc/tokens_sketch.c); u64 nseg; per step of the window: u64 step, n, nseq, nolen, folded
 *   (its first `folded` tokens are in the sketches), its SUMS, then n f64 per column, nseq u32
 *   (padded to 8 bytes).
 *   SUMS: per column n (u64), mean, m2, min, max; per pair i < j: n (u64), mx, my, c; u64 seqs,
 *   u64 nolen; per column Σ sequence means, Σ sequence sums. */
#include "tokens_priv.h"

#include <float.h>
#include <stdlib.h>
#include <string.h>

static uint64_t sums_len(uint64_t c) { return c * 40 + c * (c - 1) / 2 * 32 + 16 + c * 16; }

static void put_sums(ew__wr_t *w, const ew__tall_t *s, size_t ncols) {
  for (size_t c = 0; c < ncols; c++) {
    ew__put_u64(w, s->sum[c].n);
    ew__put_f64(w, s->sum[c].mean);
    ew__put_f64(w, s->sum[c].m2);
    ew__put_f64(w, s->sum[c].min);
    ew__put_f64(w, s->sum[c].max);
  }
  for (size_t i = 0; i < ncols; i++)
    for (size_t j = i + 1; j < ncols; j++) {
      const ew__tco_t *p = &s->co[i][j];
      ew__put_u64(w, p->n);
      ew__put_f64(w, p->mx);
      ew__put_f64(w, p->my);
      ew__put_f64(w, p->c);
    }
  ew__put_u64(w, s->seqs);
  ew__put_u64(w, s->nolen);
  for (size_t c = 0; c < ncols; c++) {
    ew__put_f64(w, s->seq_mean_sum[c]);
    ew__put_f64(w, s->seq_sum_sum[c]);
  }
}

/* Reads SUMS into *s, checking them against each other; `what` names them in sentences. */
static void get_sums(ew__rd_t *r, ew__tall_t *s, size_t ncols, const char *what) {
  for (size_t c = 0; c < ncols && !r->err; c++) {
    s->sum[c].n = ew__get_u64(r);
    s->sum[c].mean = ew__get_f64(r);
    s->sum[c].m2 = ew__get_f64(r);
    s->sum[c].min = ew__get_f64(r);
    s->sum[c].max = ew__get_f64(r);
    ew__check_f64s(r, &s->sum[c].mean, 4, DBL_MAX, "TOKS", "a column's sums");
    if (!r->err && (s->sum[c].n != s->sum[0].n || s->sum[c].m2 < 0 || s->sum[c].n > EW__ROWS_MAX))
      ew__rd_failf(r, "section TOKS holds %s's column sums that no ingest makes (counts %llu and "
                   "%llu, M2 %g)", what, (unsigned long long)s->sum[c].n,
                   (unsigned long long)s->sum[0].n, s->sum[c].m2);
  }
  for (size_t i = 0; i < ncols && !r->err; i++)
    for (size_t j = i + 1; j < ncols && !r->err; j++) {
      ew__tco_t *p = &s->co[i][j];
      p->n = ew__get_u64(r);
      p->mx = ew__get_f64(r);
      p->my = ew__get_f64(r);
      p->c = ew__get_f64(r);
      ew__check_f64s(r, &p->mx, 3, DBL_MAX, "TOKS", "a co-moment");
      if (!r->err && p->n != s->sum[0].n)
        ew__rd_failf(r, "section TOKS holds %s's co-moment of another token count", what);
    }
  s->seqs = ew__get_u64(r);
  s->nolen = ew__get_u64(r);
  for (size_t c = 0; c < ncols && !r->err; c++) {
    s->seq_mean_sum[c] = ew__get_f64(r);
    s->seq_sum_sum[c] = ew__get_f64(r);
    ew__check_f64s(r, &s->seq_mean_sum[c], 1, DBL_MAX, "TOKS", "a sum of sequence means");
    ew__check_f64s(r, &s->seq_sum_sum[c], 1, DBL_MAX, "TOKS", "a sum of sequence sums");
  }
  if (!r->err && (s->nolen > s->sum[0].n || s->seqs > s->sum[0].n))
    ew__rd_failf(r, "section TOKS holds %s with more sequences or tokens without lengths than "
                 "tokens", what);
}

static uint64_t seg_saved_len(const tok_t *t, const tseg_t *g) {
  return 40 + sums_len(t->ncols) + (uint64_t)g->n * 8 * t->ncols +
         ((uint64_t)g->nseq * 4 + 7) / 8 * 8;
}

uint64_t ew__tok_saved_len(const ew__acc_t *a) {
  const tok_t *t = (const tok_t *)a;
  uint64_t b = 16 + sums_len(t->ncols) + 8;
  for (size_t i = 0; i < t->ncols; i++)
    b += ew__qs_saved_len(&t->qs[i]);
  for (size_t i = 0; i < t->nseg; i++)
    b += seg_saved_len(t, &t->seg[i]);
  return b;
}

void ew__tok_save(const ew__acc_t *a, ew__wr_t *w) {
  const tok_t *t = (const tok_t *)a;
  ew__put_u64(w, t->keep);
  ew__put_u64(w, t->all.steps);
  put_sums(w, &t->all, t->ncols);
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
    uint64_t folded = 0; /* the tokens of the chunks in the sketches */
    for (size_t k = 0; k < g->folded; k++)
      folded += g->chunk[k].n;
    ew__put_u64(w, folded);
    put_sums(w, &g->sums, t->ncols);
    for (size_t c = 0; c < t->ncols; c++) /* f64, whatever each batch sent */
      for (size_t k = 0; k < g->nchunk; k++) {
        const tchunk_t *ch = &g->chunk[k];
        double buf[256];
        for (size_t at = 0; at < ch->sent; at += 256) {
          size_t e = ch->sent - at < 256 ? ch->sent : at + 256;
          size_t m = ew__tok_gather(ch->col[c], ch->dtype[c], ch->mask, at, e, buf);
          ew__put(w, buf, m * sizeof(double));
        }
      }
    if (g->nseq)
      ew__put(w, g->len, g->nseq * sizeof(uint32_t));
    ew__put(w, zero, (size_t)((8 - (g->nseq * 4) % 8) % 8));
  }
}

/* A chunk of n f64 tokens per column in its own buffer (as if sent so): 0 or EW_ENOMEM. */
static int f64_chunk(tchunk_t *k, size_t n, size_t ncols) {
  size_t bytes = n * ncols * sizeof(double);
  unsigned char *data = malloc(bytes ? bytes : 1);
  if (!data)
    return EW_ENOMEM;
  *k = (tchunk_t){.data = data, .bytes = bytes, .sent = n, .n = n};
  for (size_t c = 0; c < ncols; c++) {
    k->col[c] = data + c * n * sizeof(double);
    k->dtype[c] = EW_F64;
  }
  return 0;
}

/* Reads one step of the window into g (seg[i]): its tokens as one f64 chunk, or two when the
 * sketches hold only the first `folded` of them; *used counts the section's bytes. */
static void load_seg(tok_t *t, tseg_t *g, uint64_t i, ew__rd_t *r, uint64_t len, uint64_t *used) {
  g->step = ew__get_u64(r);
  uint64_t n = ew__get_u64(r), nseq = ew__get_u64(r);
  g->nolen = ew__get_u64(r);
  uint64_t folded = ew__get_u64(r);
  if (r->err)
    return;
  uint64_t need = 40 + sums_len(t->ncols) + n * 8 * t->ncols + (nseq * 4 + 7) / 8 * 8;
  if (n > EW__ROWS_MAX || nseq > EW__ROWS_MAX || *used + need > len ||
      (i > 0 && g->step <= t->seg[i - 1].step) || g->nolen > n || folded > n) {
    ew__rd_failf(r, "section TOKS's step %llu does not fit the section or its order",
                 (unsigned long long)i);
    return;
  }
  *used += need;
  get_sums(r, &g->sums, t->ncols, "a step");
  if (!r->err && (g->sums.sum[0].n != n || g->sums.nolen != g->nolen))
    ew__rd_failf(r, "section TOKS's step %llu has sums of %llu tokens for %llu",
                 (unsigned long long)i, (unsigned long long)g->sums.sum[0].n,
                 (unsigned long long)n);
  if (r->err)
    return;
  size_t part[2] = {(size_t)folded, (size_t)(n - folded)};
  if (ew__tseg_room(g, 2, (size_t)nseq) != 0) {
    r->err = EW_ENOMEM;
    return;
  }
  for (int h = 0; h < 2; h++) {
    if (!part[h])
      continue;
    if (f64_chunk(&g->chunk[g->nchunk], part[h], t->ncols) != 0) {
      r->err = EW_ENOMEM;
      return;
    }
    g->nchunk++;
  }
  g->folded = folded ? 1 : 0;
  for (size_t c = 0; c < t->ncols && !r->err; c++)
    for (size_t k = 0; k < g->nchunk && !r->err; k++) {
      double *x = (double *)(void *)g->chunk[k].col[c];
      size_t m = g->chunk[k].n;
      if (m)
        ew__get(r, x, m * sizeof(double));
      ew__check_f64s(r, x, m, 0x1p128, "TOKS", "a token");
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

void ew__tok_load(ew__acc_t *a, ew__rd_t *r, uint64_t len) {
  tok_t *t = (tok_t *)a;
  ew__tall_t *s = &t->all;
  uint64_t keep = ew__get_u64(r);
  s->steps = ew__get_u64(r);
  if (!r->err && (keep == 0 || keep > 65536)) {
    ew__rd_failf(r, "section TOKS keeps %llu steps (1 to 65536)", (unsigned long long)keep);
    return;
  }
  t->keep = (uint32_t)keep;
  get_sums(r, s, t->ncols, "the stream");
  uint64_t unfolded = 0;
  for (size_t c = 0; c < t->ncols && !r->err; c++)
    ew__qs_load(&t->qs[c], r, "TOKS");
  uint64_t nseg = ew__get_u64(r);
  if (!r->err && (nseg > keep || nseg > len / 40)) {
    ew__rd_failf(r, "section TOKS holds %llu steps in a window that keeps %llu",
                 (unsigned long long)nseg, (unsigned long long)keep);
    return;
  }
  uint64_t used = 16 + sums_len(t->ncols) + 8;
  for (size_t c = 0; c < t->ncols; c++)
    used += ew__qs_saved_len(&t->qs[c]);
  if (!r->err && !(t->seg = calloc(nseg ? nseg : 1, sizeof *t->seg))) {
    r->err = EW_ENOMEM;
    return;
  }
  t->capseg = nseg ? nseg : 1;
  for (uint64_t i = 0; i < nseg && !r->err; i++) {
    t->nseg = (size_t)i + 1;
    load_seg(t, &t->seg[i], i, r, len, &used);
    unfolded += ew__tseg_unfolded(&t->seg[i]);
  }
  for (size_t c = 0; c < t->ncols && !r->err; c++) /* the sketches hold every token but those */
    if (t->qs[c].n + unfolded != s->sum[0].n)
      ew__rd_failf(r, "section TOKS holds a quantile sketch of %llu tokens and %llu waiting, for "
                   "%llu counted", (unsigned long long)t->qs[c].n, (unsigned long long)unfolded,
                   (unsigned long long)s->sum[0].n);
  if (!r->err && used != len)
    ew__rd_failf(r, "%s", "section TOKS has the wrong length for what it holds");
}
