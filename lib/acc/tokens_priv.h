/* acc/tokens_priv.h — the tokens kind's accumulator as its two files share it: tokens_acc.c
 * (batches in, views, settling, merge) and tokens_save.c (its saved form, section TOKS). */
#ifndef EW_TOKENS_PRIV_H
#define EW_TOKENS_PRIV_H

#include "acc.h"
#include "tokens.h"

#define QS_K 4096 /* values per sketch level: 3.5e-4 rank error measured on 1e6 tokens */

/* One batch of a step, held as it was sent: its packed bytes (owned), per column `sent` values
 * of dtype[c] at col[c], the mask (NULL: every token counted); n of them counted. */
typedef struct {
  void *data;
  size_t bytes;
  const unsigned char *col[EW_COLUMNS_MAX];
  ew_dtype_t dtype[EW_COLUMNS_MAX];
  const unsigned char *mask;
  size_t sent, n;
} tchunk_t;

/* One step of the window: its batches in arrival order (chunks: their counted tokens, in order,
 * are the step's), its sequences' counted tokens, its sums. The first `folded` chunks' tokens
 * are in the `all` view's sketches; the rest wait for ew__acc_tokens_settle (a step leaves the
 * window settled). sorted[c] (sorted_cap[c] bytes), when sorted_n[c] == n > 0, is column c's
 * tokens in ascending order, as floats when every chunk sent the column as f32, f16 or bf16
 * (narrow), else doubles (the newest step's exact quantiles read it). */
typedef struct {
  uint64_t step;
  size_t n;                       /* counted tokens */
  tchunk_t *chunk;
  size_t nchunk, capchunk, folded;
  uint32_t *len;                  /* counted tokens per sequence */
  size_t nseq, capseq;
  uint64_t nolen;                 /* counted tokens of batches that carried no lengths */
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
  unsigned char *sbuf[EW_COLUMNS_MAX]; /* the sorted copies' buffers of the step newest before,
                                          for the next newest step's */
  size_t sbuf_cap[EW_COLUMNS_MAX];     /* bytes */
  ew__tall_t all;
  ew__qsketch_t qs[EW_COLUMNS_MAX];
  ew__qsketch_t pend[EW_COLUMNS_MAX]; /* between merge_ready and merge: the source's tokens its
                                         sketches did not hold yet, sorted in (else empty) */
  tseg_t *pseg;                       /* and copies of its steps, to move in */
  size_t npseg;
} tok_t;

/* Room in g for `more` chunks and `moreseq` sequences. 0 or EW_ENOMEM (g unchanged). */
int ew__tseg_room(tseg_t *g, size_t more, size_t moreseq);
/* Chunk k's counted tokens of column c as f64 into dst (room for k->n), or as floats into dstf
 * (a column sent as f32, f16 or bf16): returns how many (k->n). */
size_t ew__tchunk_read(const tchunk_t *k, size_t c, double *dst);
size_t ew__tchunk_read_f32(const tchunk_t *k, size_t c, float *dstf);
/* True when every chunk of g from `first` on sent column c as f32, f16 or bf16. */
bool ew__tseg_narrow(const tseg_t *g, size_t c, size_t first);
/* Tokens of g not yet in the sketches (those of chunks folded and on). */
size_t ew__tseg_unfolded(const tseg_t *g);
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
/* The oldest step leaves the window (settled): its batches are freed. */
void ew__tok_leave_oldest(tok_t *t);
/* Frees g's memory (buffers and sorted copies); g is zeroed. */
void ew__tseg_free(const tok_t *t, tseg_t *g);

/* The saved form (tokens_save.c): the interface's saved_len, save and load. */
uint64_t ew__tok_saved_len(const ew__acc_t *a);
void ew__tok_save(const ew__acc_t *a, ew__wr_t *w);
void ew__tok_load(ew__acc_t *a, ew__rd_t *r, uint64_t len);

#endif /* EW_TOKENS_PRIV_H */
