/* acc/tokens_priv.h — the tokens kind's accumulator as its two files share it: tokens_acc.c
 * (batches in, views, settling, merge) and tokens_save.c (its saved form, section TOKS). */
#ifndef EW_TOKENS_PRIV_H
#define EW_TOKENS_PRIV_H

#include "acc.h"
#include "tokens.h"

#define QS_K 4096 /* values per sketch level: 3.5e-4 rank error measured on 1e6 tokens */

/* One step of the window: its counted tokens in f64 per column, in arrival order; its
 * sequences; its sums. Tokens [0, folded) are in the `all` view's sketches; the rest wait for
 * ew__acc_tokens_settle (or the step's leaving the window). sorted[c] (room for sorted_cap[c]),
 * when sorted_n[c] == n > 0, is column c's tokens in ascending order (the newest step's exact
 * quantiles read it). */
typedef struct {
  uint64_t step;
  size_t n, cap;                /* counted tokens held, and room */
  double *x[EW_COLUMNS_MAX];
  uint32_t *len;                /* counted tokens per sequence */
  size_t nseq, capseq;
  uint64_t nolen;               /* counted tokens of batches that carried no lengths */
  uint64_t folded;
  ew__tall_t sums;
  double *sorted[EW_COLUMNS_MAX];
  size_t sorted_n[EW_COLUMNS_MAX], sorted_cap[EW_COLUMNS_MAX];
} tseg_t;

typedef struct {
  ew__acc_t base;
  size_t ncols;
  tseg_t *seg;                  /* oldest first; seg[nseg - 1] is the step view */
  size_t nseg, capseg;
  uint32_t keep;                /* steps the window keeps (the newest batch's say) */
  tseg_t spare;                 /* the buffers of the step that left last, for the next (n 0) */
  double *sbuf[EW_COLUMNS_MAX]; /* the sorted copies' buffers of the step newest before, for the */
  size_t sbuf_cap[EW_COLUMNS_MAX]; /* next newest step's (sorted_cap) */
  ew__tall_t all;
  ew__qsketch_t qs[EW_COLUMNS_MAX];
  ew__qsketch_t pend[EW_COLUMNS_MAX]; /* between merge_ready and merge: the source's tokens its
                                         sketches did not hold yet, sorted in (else empty) */
} tok_t;

/* Grows g to hold `more` tokens and `moreseq` sequences. 0 or EW_ENOMEM (g keeps what it had). */
int ew__tseg_grow(tok_t *t, tseg_t *g, size_t more, size_t moreseq);
/* Frees g's memory (buffers and sorted copies); g is zeroed. */
void ew__tseg_free(const tok_t *t, tseg_t *g);

/* The saved form (tokens_save.c): the interface's saved_len, save and load. */
uint64_t ew__tok_saved_len(const ew__acc_t *a);
void ew__tok_save(const ew__acc_t *a, ew__wr_t *w);
void ew__tok_load(ew__acc_t *a, ew__rd_t *r, uint64_t len);

#endif /* EW_TOKENS_PRIV_H */
