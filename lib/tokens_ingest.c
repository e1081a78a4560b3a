/* tokens_ingest.c — the ingest path of a tokens stream: a batch packed into one buffer
 * (ew_tokens_pack), checked without allocating or converting (ew_tokens_check: one read of the
 * values' exponent bits), checked and summed in one pass (ew_tokens_prepare: the batch keeps the
 * packed bytes), then folded in by ew_stream_apply (stream_ingest.c), which moves the packed
 * bytes into the window's step as they are — no copy, no conversion — all or nothing, as rows
 * are.
 *
 * The packed form (little-endian):
 *   u32 magic "EWTK"  u32 ncols  u64 n  u64 nseq  u64 step  u32 keep_steps  u32 flags
 *   u8 dtype[8]  (EW_F32 ... per column; unused slots 0)  u64 keep_bytes
 *   per column: n values of its dtype, padded to 8 bytes
 *   flags & 1: the mask, n bytes, padded to 8 bytes
 *   flags & 2: the lengths, nseq u32 */
#include "ew_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define TK_MAGIC 0x4b545745u /* "EWTK" */
#define TK_HEAD 56
#define TK_MASK 1u
#define TK_LENGTHS 2u
#define TK_MAX_TOKENS ((uint64_t)1 << 40)

static size_t pad8(size_t n) { return (n + 7) / 8 * 8; }

EW_EXPORT size_t ew_tokens_packed_size(const ew_tokens_t *b, size_t ncols) {
  size_t t = TK_HEAD;
  for (size_t c = 0; c < ncols && c < EW_COLUMNS_MAX; c++)
    t += pad8(b->n * ew_dtype_size(b->dtype[c]));
  if (b->mask)
    t += pad8(b->n);
  if (b->lengths)
    t += b->nseq * 4;
  return t;
}

/* ew_tokens_pack, the columns' values left out when `values` is false (their zero padding still
 * written): ew_tokens_pack_prepare copies them block by block as it reads them. */
static void pack_into(const ew_tokens_t *b, size_t ncols, void *out, bool values) {
  unsigned char *p = out;
  uint32_t magic = TK_MAGIC, nc = (uint32_t)ncols, keep = b->keep_steps;
  uint32_t flags = (b->mask ? TK_MASK : 0) | (b->lengths ? TK_LENGTHS : 0);
  uint64_t n = b->n, nseq = b->lengths ? b->nseq : 0, step = b->step;
  memset(p, 0, TK_HEAD);
  memcpy(p, &magic, 4);
  memcpy(p + 4, &nc, 4);
  memcpy(p + 8, &n, 8);
  memcpy(p + 16, &nseq, 8);
  memcpy(p + 24, &step, 8);
  memcpy(p + 32, &keep, 4);
  memcpy(p + 36, &flags, 4);
  memcpy(p + 48, &b->keep_bytes, 8);
  size_t at = TK_HEAD;
  for (size_t c = 0; c < ncols && c < EW_COLUMNS_MAX; c++) {
    p[40 + c] = (unsigned char)b->dtype[c];
    size_t k = b->n * ew_dtype_size(b->dtype[c]);
    if (k && values)
      memcpy(p + at, b->col[c], k);
    memset(p + at + k, 0, pad8(k) - k);
    at += pad8(k);
  }
  if (b->mask) {
    memcpy(p + at, b->mask, b->n);
    memset(p + at + b->n, 0, pad8(b->n) - b->n);
    at += pad8(b->n);
  }
  if (b->lengths && b->nseq)
    memcpy(p + at, b->lengths, b->nseq * 4);
}

EW_EXPORT void ew_tokens_pack(const ew_tokens_t *b, size_t ncols, void *out) {
  pack_into(b, ncols, out, true);
}

/* A packed batch read back: pointers into the buffer. */
typedef struct {
  ew_tokens_t b;
  uint32_t flags;
} unpacked_t;

/* Column c's name in sentences: a tokens stream's column, or a stats batch's values or counts. */
static const char *col_name(const ew_stream_t *s, size_t c) {
  if (s->cfg.stream_kind == EW_STREAM_STATS)
    return c == 0 ? "values" : "counts";
  return s->cfg.columns.name[c];
}

/* Reads p[0, len) against s: 0, or the code with the sentence. */
static int unpack(const ew_stream_t *s, const unsigned char *p, size_t len, unpacked_t *u,
                  char *msg, size_t cap) {
  memset(u, 0, sizeof *u);
  bool stats = s->cfg.stream_kind == EW_STREAM_STATS;
  if (s->cfg.stream_kind == EW_STREAM_MATRIX)
    return ew__fail_msg(msg, cap, "this stream takes rows (kind matrix), not token columns");
  uint32_t magic = 0, nc = 0, keep = 0, flags = 0;
  uint64_t n = 0, nseq = 0;
  if (len >= TK_HEAD) {
    memcpy(&magic, p, 4);
    memcpy(&nc, p + 4, 4);
    memcpy(&n, p + 8, 8);
    memcpy(&nseq, p + 16, 8);
    memcpy(&u->b.step, p + 24, 8);
    memcpy(&keep, p + 32, 4);
    memcpy(&flags, p + 36, 4);
    memcpy(&u->b.keep_bytes, p + 48, 8);
  }
  if (len < TK_HEAD || magic != TK_MAGIC || (flags & ~3u) != 0) {
    ew__fail_msg(msg, cap, "not a packed tokens batch");
    return EW_EBADREQ;
  }
  if (stats ? (nc < 1 || nc > 2 || (flags & (TK_MASK | TK_LENGTHS))) : nc != s->cfg.columns.n) {
    ew__fail_msg(msg, cap, stats ? "a stats batch is its values and optional counts, no more"
                                 : "the batch has %u columns; the stream has %u",
                 nc, s->cfg.columns.n);
    return EW_EBADREQ;
  }
  if (stats && n != s->cfg.dim) {
    ew__fail_msg(msg, cap, "'values' holds %llu cells; the stream's shape has %zu",
                 (unsigned long long)n, s->cfg.dim);
    return EW_EBADREQ;
  }
  if (n > TK_MAX_TOKENS || nseq > TK_MAX_TOKENS) {
    ew__fail_msg(msg, cap, "a batch holds at most 2^40 tokens (this one says %llu)",
                 (unsigned long long)n);
    return EW_ETOOLARGE;
  }
  size_t at = TK_HEAD;
  u->b.n = (size_t)n;
  for (uint32_t c = 0; c < nc; c++) {
    if (p[40 + c] > EW_BF16) {
      ew__fail_msg(msg, cap, "column '%s' has an unknown dtype", col_name(s, c));
      return EW_EDTYPE;
    }
    u->b.dtype[c] = (ew_dtype_t)p[40 + c];
    u->b.col[c] = p + at;
    at += pad8((size_t)n * ew_dtype_size(u->b.dtype[c]));
  }
  if (flags & TK_MASK)
    u->b.mask = p + at, at += pad8((size_t)n);
  if (flags & TK_LENGTHS)
    u->b.lengths = p + at, u->b.nseq = (size_t)nseq, at += (size_t)nseq * 4;
  if (at != len) {
    ew__fail_msg(msg, cap, "the packed batch is %zu bytes; its header describes %zu", len, at);
    return EW_EBADREQ;
  }
  u->b.keep_steps = keep;
  u->flags = flags;
  if (u->b.lengths) {
    uint64_t sum = 0;
    for (size_t q = 0; q < u->b.nseq; q++) {
      uint32_t l;
      memcpy(&l, (const unsigned char *)u->b.lengths + 4 * q, 4);
      sum += l;
    }
    if (sum != n) {
      ew__fail_msg(msg, cap, "'lengths' sum to %llu tokens; the batch has %llu",
                   (unsigned long long)sum, (unsigned long long)n);
      return EW_EBADREQ;
    }
  }
  return 0;
}

static bool counted(const ew_tokens_t *b, size_t i) {
  return !b->mask || ((const unsigned char *)b->mask)[i] != 0;
}

/* Converts the counted tokens of column c, in order, into dst (NULL: only checks them, through a
 * block on the stack). 0, or EW_ENONFINITE with the sentence. Stats batches (small) take this
 * path; a tokens batch is checked by check_tokens(). */
static int convert_column(const ew_stream_t *s, const ew_tokens_t *b, size_t c, double *dst,
                          char *msg, size_t cap) {
  enum { BLK = 512 };
  unsigned char raw[BLK * 8];
  double tmp[BLK];
  size_t esz = ew_dtype_size(b->dtype[c]), out = 0;
  const unsigned char *src = b->col[c];
  for (size_t i = 0; i < b->n;) {
    size_t k = 0, first = i;
    for (; i < b->n && k < BLK; i++)
      if (counted(b, i))
        memcpy(raw + esz * k++, src + esz * i, esz);
    if (k && ew_convert_f64(raw, b->dtype[c], k, dst ? dst + out : tmp) != 0) {
      size_t at = first; /* the first bad counted token, for the sentence */
      double v;
      while (at < i && !(counted(b, at) && ew_convert_f64(src + esz * at, b->dtype[c], 1, &v)))
        at++;
      ew__fail_msg(msg, cap, "'%s' has a NaN or infinity at cell %zu; nothing was ingested",
                   col_name(s, c), at);
      return EW_ENONFINITE;
    }
    out += k;
  }
  return 0;
}

/* A value's bits: 1 when it is not finite, 2 when it is finite but too large for the sums of
 * squares in any sum a stream keeps (|x| ≥ 2^128, beyond the f32 range: f64 only), else 0. */
static int bad_bits(const unsigned char *p, ew_dtype_t dt) {
  if (dt == EW_F32) {
    uint32_t u;
    memcpy(&u, p, 4);
    return (u & 0x7f800000u) == 0x7f800000u;
  }
  if (dt == EW_F64) {
    uint64_t u, e;
    memcpy(&u, p, 8);
    e = (u >> 52) & 0x7ff;
    return e == 0x7ff ? 1 : e >= 1023 + 128 ? 2 : 0;
  }
  uint16_t h;
  memcpy(&h, p, 2);
  return dt == EW_F16 ? (h & 0x7c00u) == 0x7c00u : (h & 0x7f80u) == 0x7f80u;
}

/* The first counted token of column c that bad_bits refuses, or b->n: one read of the column's
 * bits, a block at a time (the blocks' tests vectorise; a bad block is then searched). */
static size_t first_bad(const ew_tokens_t *b, size_t c) {
  enum { BLK = 1024 };
  const unsigned char *m = b->mask, *p = b->col[c];
  ew_dtype_t dt = b->dtype[c];
  size_t esz = ew_dtype_size(dt);
  for (size_t i0 = 0; i0 < b->n; i0 += BLK) {
    size_t i1 = i0 + BLK < b->n ? i0 + BLK : b->n;
    unsigned bad = 0;
    if (dt == EW_F32) {
      const uint32_t *u = (const uint32_t *)(const void *)p;
      for (size_t i = i0; i < i1; i++)
        bad |= ((u[i] & 0x7f800000u) == 0x7f800000u) & (m ? m[i] != 0 : 1);
    } else if (dt == EW_F64) {
      const uint64_t *u = (const uint64_t *)(const void *)p;
      for (size_t i = i0; i < i1; i++)
        bad |= (((u[i] >> 52) & 0x7ff) >= 1023 + 128) & (m ? m[i] != 0 : 1);
    } else {
      const uint16_t *u = (const uint16_t *)(const void *)p;
      uint16_t e = dt == EW_F16 ? 0x7c00u : 0x7f80u;
      for (size_t i = i0; i < i1; i++)
        bad |= ((u[i] & e) == e) & (m ? m[i] != 0 : 1);
    }
    if (bad)
      for (size_t i = i0; i < i1; i++)
        if ((!m || m[i]) && bad_bits(p + esz * i, dt))
          return i;
  }
  return b->n;
}

/* Every counted token of a tokens batch finite and within the sums' range: 0, or EW_ENONFINITE /
 * EW_ERANGE with the sentence naming the column and the token. */
static int check_tokens(const ew_stream_t *s, const ew_tokens_t *b, char *msg, size_t cap) {
  for (size_t c = 0; c < s->cfg.columns.n; c++) {
    size_t i = first_bad(b, c);
    if (i == b->n)
      continue;
    const char *name = s->cfg.columns.name[c];
    if (bad_bits((const unsigned char *)b->col[c] + ew_dtype_size(b->dtype[c]) * i,
                 b->dtype[c]) == 1) {
      ew__fail_msg(msg, cap, "column '%s' has a NaN or infinity at token %zu, which the mask "
                   "counts; nothing was ingested", name, i);
      return EW_ENONFINITE;
    }
    ew__fail_msg(msg, cap, "column '%s' has a value of magnitude 2^128 or more at token %zu (beyond "
                 "the f32 range, where the stream's sums could overflow); nothing was ingested", name, i);
    return EW_ERANGE;
  }
  return 0;
}

/* Column c's per-sequence sums over the batch's sequences: into out->seq_*_sum[c], out->seqs
 * (Neumaier across sequences). */
static void seq_sums(const ew_tokens_t *b, size_t c, ew__tall_t *out) {
  enum { BLK = 512 };
  double v[BLK], sm = 0, cm = 0, ss = 0, cs = 0;
  uint64_t seqs = 0;
  for (size_t q = 0, at = 0; q < b->nseq; q++) {
    uint32_t l;
    memcpy(&l, (const unsigned char *)b->lengths + 4 * q, 4);
    double sum = 0;
    size_t k = 0;
    for (size_t i = at; i < at + l; i += BLK) {
      size_t e = i + BLK < at + l ? i + BLK : at + l;
      size_t m = ew__tok_gather(b->col[c], b->dtype[c], b->mask, i, e, v);
      for (size_t j = 0; j < m; j++)
        sum += v[j];
      k += m;
    }
    at += l;
    if (!k)
      continue;
    seqs++;
    double mean = sum / (double)k, t = sm + mean;
    cm += fabs(sm) >= fabs(mean) ? (sm - t) + mean : (mean - t) + sm, sm = t;
    t = ss + sum, cs += fabs(ss) >= fabs(sum) ? (ss - t) + sum : (sum - t) + ss, ss = t;
  }
  out->seqs = seqs;
  out->seq_mean_sum[c] = sm + cm;
  out->seq_sum_sum[c] = ss + cs;
}

/* Tokens [i0, i1) of column c from src's arrays into b's (the packed buffer's). */
static void copy_block(const ew_tokens_t *b, const ew_tokens_t *src, size_t c, size_t i0,
                       size_t i1) {
  size_t esz = ew_dtype_size(b->dtype[c]);
  if (i1 > i0)
    memcpy((unsigned char *)b->col[c] + esz * i0, (const unsigned char *)src->col[c] + esz * i0,
           esz * (i1 - i0));
}

/* One pass over a tokens batch: its counted tokens, a block at a time as f64 on the stack, into
 * the batch's sums (ew__tacc_t; then the sequences' when it has lengths), *m its counted tokens.
 * With src, b's columns are filled from src's as they are read (the batch being packed). 0, or —
 * a block with a value that is not finite or of magnitude 2^128 or more — check_tokens' code and
 * sentence for the first such token. */
static int scan(const ew_stream_t *s, const ew_tokens_t *b, const ew_tokens_t *src,
                ew__tall_t *sums, size_t *m, char *msg, size_t cap) {
  enum { BLK = 512, SUPER = 32 * BLK };
  size_t nc = s->cfg.columns.n;
  double blk[EW_COLUMNS_MAX][BLK];
  const double *v[EW_COLUMNS_MAX];
  const float *f[EW_COLUMNS_MAX] = {NULL};
  ew__tacc_t acc;
  ew__tacc_start(&acc, nc);
  for (size_t c = 0; c < nc; c++)
    v[c] = blk[c];
  for (size_t i0 = 0; i0 < b->n; i0 += BLK) {
    size_t i1 = i0 + BLK < b->n ? i0 + BLK : b->n, k = i1 - i0;
    for (size_t c = 0; c < nc; c++) {
      if (src && i0 % SUPER == 0) /* a run of blocks copied into the packed buffer (one large
                                     copy: no read of the lines it overwrites), then read again
                                     block by block while it is in the cache */
        copy_block(b, src, c, i0, i0 + SUPER < b->n ? i0 + SUPER : b->n);
      if (!b->mask && b->dtype[c] == EW_F32) /* read as they are, widened in the sums */
        f[c] = (const float *)b->col[c] + i0;
      else
        k = ew__tok_gather(b->col[c], b->dtype[c], b->mask, i0, i1, blk[c]);
    }
    if (k && ew__tacc_block_mixed(&acc, v, f, k) >= 0) {
      for (size_t c = 0; src && c < nc; c++) /* the rest copied, for check_tokens' sentence */
        copy_block(b, src, c, i1, b->n);
      return check_tokens(s, b, msg, cap);
    }
  }
  ew__tacc_finish(&acc, sums);
  if (b->lengths)
    for (size_t c = 0; c < nc; c++)
      seq_sums(b, c, sums);
  else
    sums->nolen = acc.n;
  *m = (size_t)acc.n;
  return 0;
}

/* The number of columns of an unpacked batch: the stream's, or a stats batch's 1 or 2. */
static size_t ncols_of(const ew_stream_t *s, const unpacked_t *u) {
  return s->cfg.stream_kind == EW_STREAM_STATS ? (u->b.col[1] ? 2 : 1) : s->cfg.columns.n;
}

/* A stats batch's counts (column 1, finite: convert_column checked them) must be positive:
 * 0, or EW_EBADREQ with the sentence naming the first cell that is not. */
static int counts_positive(const ew_tokens_t *b, char *msg, size_t cap) {
  enum { BLK = 512 };
  double k[BLK];
  size_t esz = ew_dtype_size(b->dtype[1]);
  for (size_t at = 0; at < b->n; at += BLK) {
    size_t m = b->n - at < BLK ? b->n - at : BLK;
    if (ew_convert_f64((const char *)b->col[1] + at * esz, b->dtype[1], m, k) != 0)
      return EW_ENONFINITE;
    for (size_t i = 0; i < m; i++)
      if (!(k[i] > 0)) {
        ew__fail_msg(msg, cap, "'counts' must be positive (cell %zu has %g)", at + i, k[i]);
        return EW_EBADREQ;
      }
  }
  return 0;
}

EW_EXPORT int ew_tokens_check(const ew_stream_t *s, const void *p, size_t len, char *msg,
                              size_t cap) {
  unpacked_t u;
  int rc = unpack(s, p, len, &u, msg, cap);
  size_t nc = rc ? 0 : ncols_of(s, &u);
  if (rc == 0 && s->cfg.stream_kind == EW_STREAM_TOKENS)
    return check_tokens(s, &u.b, msg, cap);
  for (size_t c = 0; rc == 0 && c < nc; c++)
    rc = convert_column(s, &u.b, c, NULL, msg, cap);
  if (rc == 0 && nc == 2 && s->cfg.stream_kind == EW_STREAM_STATS)
    rc = counts_positive(&u.b, msg, cap);
  return rc;
}

/* Prepares a stats batch: its values and counts (default 1) in f64. */
static int prepare_cells(const ew_stream_t *s, const ew_tokens_t *b, bool has_counts,
                         ew_batch_t **out, char *msg, size_t cap) {
  ew__ws_t *own = ew__ws_new();
  ew__cbatch_t *cb = own ? ew__ws_alloc(own, sizeof *cb) : NULL;
  double *x = cb ? ew__ws_alloc(own, b->n * sizeof(double) + 8) : NULL;
  double *k = x ? ew__ws_alloc(own, b->n * sizeof(double) + 8) : NULL;
  int rc = k ? convert_column(s, b, 0, x, msg, cap) : EW_ENOMEM;
  if (rc == 0 && has_counts && (rc = convert_column(s, b, 1, k, msg, cap)) == 0)
    rc = counts_positive(b, msg, cap);
  for (size_t i = 0; rc == 0 && !has_counts && i < b->n; i++)
    k[i] = 1;
  if (rc == 0) {
    *cb = (ew__cbatch_t){.x = x, .k = k, .step = b->step, .keep = b->keep_steps,
                         .keep_bytes = b->keep_bytes};
    if (!(*out = ew__batch_cells(own, cb, b->n)))
      rc = EW_ENOMEM;
  }
  if (rc)
    ew__ws_free(own);
  return rc;
}

/* Prepares the unpacked batch b (its `len` bytes in p, which the batch takes on success) into
 * *out: its tokens checked and summed in one pass; the stream keeps them where they are (the
 * packed bytes move into its step when the batch is applied). */
static int prepare_unpacked(const ew_stream_t *s, const ew_tokens_t *b, const ew_tokens_t *src,
                            void *p, size_t len, ew_batch_t **out, char *msg, size_t cap) {
  ew__ws_t *own = ew__ws_new();
  ew__tbatch_t *tb = own ? ew__ws_alloc(own, sizeof *tb) : NULL;
  if (!tb) {
    ew__ws_free(own);
    return EW_ENOMEM;
  }
  memset(tb, 0, sizeof *tb);
  size_t m = 0;
  int rc = scan(s, b, src, &tb->sums, &m, msg, cap);
  if (rc) {
    ew__ws_free(own);
    return rc;
  }
  for (size_t c = 0; c < s->cfg.columns.n; c++) {
    tb->col[c] = b->col[c];
    tb->dtype[c] = b->dtype[c];
  }
  tb->n = m;
  tb->sent = b->n;
  tb->bytes = len;
  tb->mask = b->mask;
  tb->lengths = b->lengths;
  tb->nseq = b->lengths ? b->nseq : 0;
  tb->has_len = b->lengths != NULL;
  tb->step = b->step;
  tb->keep = b->keep_steps;
  tb->keep_bytes = b->keep_bytes;
  if (!(*out = ew__batch_tokens(own, tb, s->cfg.columns.n, p))) {
    ew__ws_free(own);
    return EW_ENOMEM;
  }
  return 0;
}

EW_EXPORT int ew_tokens_prepare_owned(const ew_stream_t *s, void *p, size_t len,
                                      ew_batch_t **out, char *msg, size_t cap) {
  *out = NULL;
  unpacked_t u;
  int rc = unpack(s, p, len, &u, msg, cap);
  if (rc)
    return rc;
  if (s->cfg.stream_kind == EW_STREAM_STATS) {
    rc = prepare_cells(s, &u.b, u.b.col[1] != NULL, out, msg, cap);
    if (rc == 0)
      free(p); /* the cells were converted: the batch holds what it needs */
    return rc;
  }
  return prepare_unpacked(s, &u.b, NULL, p, len, out, msg, cap);
}

EW_EXPORT int ew_tokens_prepare(const ew_stream_t *s, const void *p, size_t len,
                                ew_batch_t **out, char *msg, size_t cap) {
  *out = NULL;
  void *copy = malloc(len ? len : 1);
  if (!copy)
    return EW_ENOMEM;
  if (len)
    memcpy(copy, p, len);
  int rc = ew_tokens_prepare_owned(s, copy, len, out, msg, cap);
  if (rc)
    free(copy);
  return rc;
}

EW_EXPORT int ew_tokens_pack_prepare(const ew_stream_t *s, const ew_tokens_t *b,
                                     ew_batch_t **out, char *msg, size_t cap) {
  *out = NULL;
  bool tokens = s->cfg.stream_kind == EW_STREAM_TOKENS;
  size_t nc = s->cfg.stream_kind == EW_STREAM_STATS ? (b->col[1] ? 2 : 1) : s->cfg.columns.n;
  size_t len = ew_tokens_packed_size(b, nc);
  void *p = malloc(len);
  if (!p)
    return EW_ENOMEM;
  pack_into(b, nc, p, !tokens); /* a tokens batch's values: copied as the scan reads them */
  unpacked_t u;
  int rc = unpack(s, p, len, &u, msg, cap);
  if (rc == 0 && tokens)
    rc = prepare_unpacked(s, &u.b, b, p, len, out, msg, cap);
  else if (rc == 0)
    rc = ew_tokens_prepare_owned(s, p, len, out, msg, cap);
  if (rc)
    free(p);
  return rc;
}

EW_EXPORT int ew_stream_ingest_tokens(ew_stream_t *s, const ew_tokens_t *b, char *msg,
                                      size_t cap) {
  if (b->n == 0)
    return 0;
  ew_batch_t *batch = NULL;
  int rc = ew_tokens_pack_prepare(s, b, &batch, msg, cap);
  if (rc == 0)
    rc = ew_stream_apply(s, batch);
  ew_batch_free(batch);
  return rc;
}

EW_EXPORT int ew_stream_settle(ew_stream_t *s) {
  ew__acc_t *a = s->acc[EW__ROLE_ALL];
  ew__ws_t *ws = ew__acc_is_tokens(a) ? ew__ws_thread() : NULL;
  if (!ws)
    return ew__acc_is_tokens(a) ? EW_ENOMEM : 0;
  ew__ws_mark_t mk = ew__ws_begin(ws);
  int rc = ew__acc_tokens_settle(a, ws);
  ew__stream_ws_used(s, ew__ws_end(ws, mk));
  return rc;
}

EW_EXPORT size_t ew_stream_window_bytes(const ew_stream_t *s) {
  const ew__acc_t *a = s->acc[EW__ROLE_ALL];
  return ew__acc_is_tokens(a)  ? ew__acc_tokens_window_bytes(a)
         : ew__acc_is_stats(a) ? ew__acc_stats_window_bytes(a)
                               : 0;
}
