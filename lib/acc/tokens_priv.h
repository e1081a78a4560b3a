/* acc/tokens_priv.h — the tokens kind's accumulator as its two files share it: tokens_acc.c
 * (batches in, views, settling, merge) and tokens_save.c (its saved form, section TOKS). */
#ifndef EW_TOKENS_PRIV_H
#define EW_TOKENS_PRIV_H

#include "acc.h"
#include "tokens.h"

#define QS_K 4096 /* values per sketch level: 3.5e-4 rank error measured on 1e6 tokens */

/* One step of the window: its counted tokens per column in arrival order — as f32 (esz 4) while
 * every batch sent the column as f32, f16 or bf16 (exact), else as f64 (esz 8) — its sequences,
 * its sums. Tokens [0, folded) are in the `all` view's sketches; the rest wait for
 * ew__acc_tokens_settle (a step leaves the window settled). sorted[c] (sorted_cap[c] bytes),
 * when sorted_n[c] == n > 0, is column c's tokens in ascending order, held as the column is (the
 * newest step's exact quantiles read it). */
typedef struct {
  uint64_t step;
  size_t n;                       /* counted tokens held */
  unsigned char *x[EW_COLUMNS_MAX];
  size_t cap[EW_COLUMNS_MAX];     /* bytes x[c] holds */
  unsigned esz[EW_COLUMNS_MAX];   /* 4 or 8 (0: no buffer yet) */
  uint32_t *len;                  /* counted tokens per sequence */
  size_t nseq, capseq;
  uint64_t nolen;                 /* counted tokens of batches that carried no lengths */
  uint64_t folded;
  ew__tall_t sums;
  unsigned char *sorted[EW_COLUMNS_MAX];
  size_t sorted_n[EW_COLUMNS_MAX], sorted_cap[EW_COLUMNS_MAX];
} tseg_t;

typedef struct {
  ew__acc_t base;
  size_t ncols;
  tseg_t *seg;                  /* oldest first; seg[nseg - 1] is the step view */
  size_t nseg, capseg;
  uint32_t keep;                /* steps the window keeps (the newest batch's say) */
  uint64_t keep_bytes;          /* and in how many bytes (the newest batch's say; 0: no bound):
                                   sorted copies are kept only within it */
  tseg_t spare;                 /* the buffers of the step that left last, for the next (n 0) */
  unsigned char *sbuf[EW_COLUMNS_MAX]; /* the sorted copies' buffers of the step newest before,
                                          for the next newest step's */
  size_t sbuf_cap[EW_COLUMNS_MAX];     /* bytes */
  ew__tall_t all;
  ew__qsketch_t qs[EW_COLUMNS_MAX];
  ew__qsketch_t pend[EW_COLUMNS_MAX]; /* between merge_ready and merge: the source's tokens its
                                         sketches did not hold yet, sorted in (else empty) */
} tok_t;

/* Grows g to hold `more` tokens and `moreseq` sequences, column c as esz[c] bytes a token (a
 * column held as f32 and wanted as f64 is widened). 0 or EW_ENOMEM (g keeps what it describes). */
int ew__tseg_grow(tok_t *t, tseg_t *g, size_t more, size_t moreseq, const unsigned *esz);
/* Tokens [from, from + m) of g's column c as f64 into dst. */
void ew__tseg_read(const tseg_t *g, size_t c, size_t from, size_t m, double *dst);
/* Tokens of g not yet in the sketches. */
static inline size_t ew__tseg_unfolded(const tseg_t *g) { return g->n - (size_t)g->folded; }
/* ---- tokens_settle.c ---- */
/* Puts tokens [folded, n) of seg[i] into the sketches (sorted in ws; the newest step, when none
 * of it is in yet, through its kept sorted copies). 0 or EW_ENOMEM (nothing changes). */
int ew__tok_settle_seg(tok_t *t, size_t i, ew__ws_t *ws);
/* g is no longer the newest step: its sorted copies' buffers go to the pool (the larger kept). */
void ew__tok_retire_sorted(tok_t *t, tseg_t *g);
/* Frees the pool of sorted buffers. */
void ew__tok_free_pool(tok_t *t);
/* The interface's merge (after ew__acc_tokens_merge_ready). */
void ew__tok_merge(ew__acc_t *a, const ew__acc_t *o);
/* ---- tokens_acc.c ---- */
/* The oldest step leaves the window (settled); its buffers become the spare. */
void ew__tok_leave_oldest(tok_t *t);
/* Frees g's memory (buffers and sorted copies); g is zeroed. */
void ew__tseg_free(const tok_t *t, tseg_t *g);

/* The saved form (tokens_save.c): the interface's saved_len, save and load. */
uint64_t ew__tok_saved_len(const ew__acc_t *a);
void ew__tok_save(const ew__acc_t *a, ew__wr_t *w);
void ew__tok_load(ew__acc_t *a, ew__rd_t *r, uint64_t len);

#endif /* EW_TOKENS_PRIV_H */
