/* eigenwatch.h — the one public header of libeigenwatch.
 *
 * libeigenwatch keeps incremental covariance state for a stream of vectors and turns it into
 * entropy, effective-rank, diversity and spectral metrics. It is the numerics of the eigenwatch
 * daemon and is usable in-process on its own. It knows nothing of sockets, msgpack or libuv.
 *
 * Conventions (the same in every function below):
 *  - Functions that can fail return int: 0 on success or a negative EW_E* code. ew_strerror()
 *    gives a sentence, ew_err_name() the wire name ("NON_FINITE"). Nothing here aborts or prints.
 *  - A stream is not thread-safe: one caller at a time per stream (the daemon serialises each
 *    stream on its math thread). Different streams may be used from different threads.
 *  - Pointer parameters are borrowed for the duration of the call unless the comment says who
 *    owns them afterwards.
 *  - Row data are row-major n×d, little-endian, and need not be aligned.
 */
#ifndef EIGENWATCH_H
#define EIGENWATCH_H

#include <float.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define EW_VERSION_STRING "0.1.0"

/* ---- errors ---------------------------------------------------------------------------------
 * One list generates the enum, ew_err_name() (the wire code) and ew_strerror() (the sentence).
 * XX(ENUM_SUFFIX, "WIRE_NAME", "sentence") */
#define EW_ERRNO_MAP(XX)                                                                          \
  XX(BADREQ, "BAD_REQUEST", "the request is malformed")                                           \
  XX(UNKMETHOD, "UNKNOWN_METHOD", "no such method")                                               \
  XX(NOSTREAM, "NO_SUCH_STREAM", "no such stream")                                                \
  XX(DIM, "DIM_MISMATCH", "the rows do not have the stream's dimension")                          \
  XX(DTYPE, "BAD_DTYPE", "unsupported dtype (use f32, f64, f16 or bf16)")                         \
  XX(NONFINITE, "NON_FINITE", "the batch contains a NaN or infinite value; nothing was ingested") \
  XX(TOOLARGE, "TOO_LARGE", "the input exceeds a size limit")                                     \
  XX(EXISTS, "STREAM_EXISTS", "the stream exists with a different configuration")                 \
  XX(UNKMETRIC, "UNKNOWN_METRIC", "no such metric")                                               \
  XX(BADPARAM, "BAD_PARAM", "a metric parameter or query option is unknown or out of range")      \
  XX(DEGENERATE, "DEGENERATE", "the state cannot define this metric (too few rows or zero trace)") \
  XX(NOWINDOW, "NO_WINDOW", "the stream keeps no window of recent rows")                          \
  XX(LIMIT, "LIMIT", "a configured limit was reached")                                            \
  XX(NOMEM, "NO_MEMORY", "out of memory")                                                         \
  XX(AUTH, "AUTH", "not authorised")                                                              \
  XX(LAPACK, "INTERNAL", "an eigensolver failed to converge")                                     \
  XX(INTERNAL, "INTERNAL", "internal error")                                                      \
  XX(RANGE, "OUT_OF_RANGE",                                                                       \
     "the largest magnitude in an f64 batch must lie in [2^-100, 3.4e38] (the range f32 rows "     \
     "span, which the window and live estimate keep), or the batch be all zeros; nothing was "    \
     "ingested")                                                                                 \
  XX(STATE, "BAD_STATE",                                                                          \
     "the saved state is truncated, corrupt, or of a format version this library does not read")  \
  XX(IO, "IO_ERROR", "the caller's writer or reader failed")

typedef enum {
  EW_OK = 0,
  EW__ERR_BASE = -1000,
#define EW__XX(name, wire, msg) EW_E##name,
  EW_ERRNO_MAP(EW__XX)
#undef EW__XX
  EW__ERR_END
} ew_errno_t;

/* Returns a static sentence for an EW_E* code (or "success" for 0, "unknown error" otherwise). */
const char *ew_strerror(int err);
/* Returns the static UPPER_SNAKE wire name for an EW_E* code ("OK" for 0, "INTERNAL" otherwise). */
const char *ew_err_name(int err);

/* ---- input types ------------------------------------------------------------------------- */
typedef enum { EW_F32 = 0, EW_F64 = 1, EW_F16 = 2, EW_BF16 = 3 } ew_dtype_t;

/* Parses "f32" | "f64" | "f16" | "bf16" (also "float32", "float64", "float16", "bfloat16").
 * Returns 0 and sets *out, or EW_EDTYPE. `len` is the byte length of `name` (not NUL-terminated). */
int ew_dtype_parse(const char *name, size_t len, ew_dtype_t *out);
/* Returns the size in bytes of one element of `dtype` (4, 8, 2, 2), or 0 for an invalid value. */
size_t ew_dtype_size(ew_dtype_t dtype);
/* Returns the canonical short name ("f32", ...) or NULL for an invalid value. */
const char *ew_dtype_name(ew_dtype_t dtype);

/* Converts `count` elements of `dtype` at `src` (little-endian, any alignment) to float/double.
 * Conversions are exact (f16 and bf16 widen exactly to f32). Returns EW_ENONFINITE if any element
 * is NaN or ±Inf; `dst` may then be partly written but the caller's state is untouched.
 * ew_convert_f64 accepts every dtype; ew_convert_f32 rejects EW_F64 with EW_EDTYPE (narrowing
 * would not be exact). */
int ew_convert_f32(const void *src, ew_dtype_t dtype, size_t count, float *dst);
int ew_convert_f64(const void *src, ew_dtype_t dtype, size_t count, double *dst);

#include "eigenwatch_config.h" /* stream kinds and configuration: two tables */

/* ---- streams ------------------------------------------------------------------------------- */
typedef struct ew_stream ew_stream_t;

/* Creates an empty stream. On success *out owns a stream the caller frees with ew_stream_free.
 * Returns EW_EBADPARAM for a bad configuration, EW_ENOMEM if the state cannot be allocated. */
int ew_stream_create(const ew_config_t *cfg, ew_stream_t **out);
/* Frees a stream and everything it owns. NULL is allowed. */
void ew_stream_free(ew_stream_t *s);
/* Returns the stream's configuration (borrowed; valid until ew_stream_free). */
const ew_config_t *ew_stream_config(const ew_stream_t *s);

/* Ingests n rows of dimension d from `data` (n*d elements of `dtype`).
 * The batch is accepted whole or not at all: EW_EDIM if d differs from the stream's, EW_EDTYPE
 * for a bad dtype, EW_ENONFINITE if any value is NaN/Inf, EW_ENOMEM if scratch cannot grow —
 * in every error case the stream is exactly as before. n == 0 is a no-op. Every batch is centred
 * in f64 and its Gram formed by dsyrk whatever its dtype (f32/f16/bf16 values exactly), then
 * merged into the f64 state. */
int ew_stream_ingest(ew_stream_t *s, const void *data, ew_dtype_t dtype, size_t n, size_t d);
/* ew_stream_ingest with one label per row (labels[0, n), e.g. the class of each example), kept
 * with the window's rows for the grouped and mutual-information metrics. A stream's first batch
 * decides whether it is labelled: a labelled batch to a stream that holds unlabelled rows, or
 * without a window, and an unlabelled batch to a labelled stream, are EW_EBADPARAM (nothing
 * changes). The other codes as ew_stream_ingest. */
int ew_stream_ingest_labeled(ew_stream_t *s, const void *data, ew_dtype_t dtype, size_t n,
                             size_t d, const uint32_t *labels);

/* The same ingest in two halves, so that the expensive half can run in parallel. A prepared batch
 * holds the converted rows and their batch statistics (the syrk) — ew_batch_prepare reads only
 * the stream's immutable configuration, so any number of threads may prepare batches for one
 * stream while another thread applies or queries it. ew_stream_apply merges a prepared batch into
 * the state (cheap: O(d²) plus the window and live estimate); batches must be applied one at a
 * time, and are applied in the order the caller chooses. ew_stream_ingest == prepare + apply.
 * ew_batch_prepare: 0 and *out (owned by the caller, freed with ew_batch_free), or EW_EDIM,
 * EW_EDTYPE, EW_ENONFINITE, EW_ETOOLARGE, EW_EBADPARAM (n == 0), EW_ENOMEM; nothing changes.
 * ew_stream_apply: 0, EW_EBADPARAM (batch prepared for a differently configured stream) or
 * EW_ENOMEM (state unchanged); the batch is not consumed. A prepared batch holds d² floats. */
typedef struct ew_batch ew_batch_t;
int ew_batch_prepare(const ew_stream_t *s, const void *data, ew_dtype_t dtype, size_t n, size_t d,
                     ew_batch_t **out);
int ew_stream_apply(ew_stream_t *s, ew_batch_t *b);
void ew_batch_free(ew_batch_t *b);
/* Gives a prepared row batch one label per row (copied; n must be its rows: else, or for a tokens
 * or stats batch, EW_EBADPARAM). ew_stream_apply then checks them as ew_stream_ingest_labeled
 * does. 0, EW_EBADPARAM or EW_ENOMEM. */
int ew_batch_set_labels(ew_batch_t *b, const uint32_t *labels, size_t n);
/* Whether the stream's rows carry labels: 1 yes, 0 no, 2 not decided yet (no rows), −1 it keeps
 * no window (labels would have nowhere to go). */
int ew_stream_labelled(const ew_stream_t *s);
size_t ew_batch_rows(const ew_batch_t *b);
/* What ew_batch_prepare would answer for these rows, short of EW_ENOMEM — EW_EDIM, EW_EDTYPE,
 * EW_ENONFINITE, EW_ERANGE (f64), EW_ETOOLARGE, EW_EBADPARAM (n == 0) or 0 — without converting
 * or allocating anything: one read-only pass over the values. For a caller that holds rows before
 * preparing them (the daemon's step staging) and must refuse a bad batch when it arrives. Reads
 * only the stream's immutable configuration (any thread). */
int ew_batch_check(const ew_stream_t *s, const void *data, ew_dtype_t dtype, size_t n, size_t d);

/* ---- tokens streams (kind tokens: per-token scalars in named columns) ----
 * One batch of one step's tokens, as a caller holds it: n tokens, one array of n values per
 * column of the stream, in the stream's column order (ew_config_t.columns); an optional mask (n
 * bytes, nonzero = counted: only counted tokens reach any metric) and optional sequence lengths
 * (nseq u32 little-endian, in order, summing to n: flash-attn's cu_seqlens as lengths; sequences
 * never span batches). `step` names the step the tokens belong to: batches of one step form the
 * step view, and the window keeps the newest keep_steps (≥ 1; 0 means 1) steps, fewer when
 * keep_bytes bounds it. Pointers need not be aligned. */
typedef struct {
  size_t n;
  const void *col[EW_COLUMNS_MAX];
  ew_dtype_t dtype[EW_COLUMNS_MAX];
  const void *mask;    /* n bytes, or NULL: every token counted */
  const void *lengths; /* nseq u32, or NULL: no sequences (seq_* metrics then refuse) */
  size_t nseq;
  uint64_t step;
  uint32_t keep_steps;
  uint64_t keep_bytes; /* the window's tokens (or cells) in at most this many bytes once this
                          batch is in: older steps leave first, the newest always stays (0: no
                          bound but keep_steps) */
} ew_tokens_t;
/* The packed form of a tokens batch: one self-describing buffer (a header, the columns as given,
 * the mask, the lengths; docs/STATE.md "Packed tokens"), so that an embedder can hold, stage and
 * save a batch as bytes (the daemon stages packed batches as it stages rows). The size of b's
 * packed form for ncols columns, and writing it into out (that many bytes, any alignment). The
 * contents are not checked here (ew_tokens_check does). */
size_t ew_tokens_packed_size(const ew_tokens_t *b, size_t ncols);
void ew_tokens_pack(const ew_tokens_t *b, size_t ncols, void *out);
/* What ew_tokens_prepare would answer for the packed batch p[0, len), short of EW_ENOMEM, without
 * allocating: EW_EBADPARAM when s is not a tokens stream, EW_EBADREQ for a packing that is not
 * one (bad magic, length, column count other than the stream's) or lengths that do not sum to
 * n, EW_EDTYPE, EW_ENONFINITE for a NaN or infinity in a counted token (one in a masked-out token
 * is accepted and never read), EW_ETOOLARGE past 2^40 tokens, or 0 — with a sentence naming the
 * column or the field in msg[0, cap) (msg may be NULL). Reads only s's configuration. */
int ew_tokens_check(const ew_stream_t *s, const void *p, size_t len, char *msg, size_t cap);
/* Prepares the packed batch p[0, len) for s: checks it and takes its sums in one pass — into *out
 * (ew_batch_free; ew_stream_apply folds it in, converting its counted tokens into the window:
 * EW_ENOMEM there leaves the stream unchanged). The batch reads a copy of p. The codes of
 * ew_tokens_check, or EW_ENOMEM; nothing changes. Any thread, as ew_batch_prepare. */
int ew_tokens_prepare(const ew_stream_t *s, const void *p, size_t len, ew_batch_t **out,
                      char *msg, size_t cap);
/* The same without the copy: p (from malloc) becomes the batch's on 0 (freed by ew_batch_free),
 * and stays the caller's, unchanged, on an error. */
int ew_tokens_prepare_owned(const ew_stream_t *s, void *p, size_t len, ew_batch_t **out,
                            char *msg, size_t cap);
/* ew_tokens_pack + ew_tokens_prepare_owned in one pass over b's values (each block copied, then
 * checked and summed while it is in the cache): the codes of ew_tokens_prepare. */
int ew_tokens_pack_prepare(const ew_stream_t *s, const ew_tokens_t *b, ew_batch_t **out,
                           char *msg, size_t cap);
/* ew_tokens_pack_prepare + ew_stream_apply on the unpacked batch b: all or nothing. n == 0 is a
 * no-op. */
int ew_stream_ingest_tokens(ew_stream_t *s, const ew_tokens_t *b, char *msg, size_t cap);
/* Puts the window's tokens the `all` view's quantile sketches do not hold yet into them, sorted —
 * the sort the newest step's exact quantiles read too. Ingest leaves this for later so that it
 * never sorts; a step leaving the window, a merge and any read of `all` settle first anyway. Call
 * it off the ingest path (the daemon does after each evaluation). 0 or EW_ENOMEM (what the
 * stream describes does not change either way); a no-op for other kinds. */
int ew_stream_settle(ew_stream_t *s);
/* Bytes the window's tokens hold now (tokens streams; 0 otherwise): what grows with the steps
 * the window keeps, which an embedder counts against its budget. */
size_t ew_stream_window_bytes(const ew_stream_t *s);

/* ---- paired streams (kind paired: rows x, y that come in pairs; Dissecting CLIP's blocks) ----
 * A paired stream takes rows of dx + dy values, x's row then y's (ew_stream_ingest and the batch
 * functions, d = dx + dy), or the two sides as arrays: */
/* The dtype paired rows are packed in: xt when both sides share it, else f64 (both widened
 * exactly). */
ew_dtype_t ew_pairs_dtype(ew_dtype_t xt, ew_dtype_t yt);
/* n rows of x (n×dx, dtype xt) and of y (n×dy, yt), row i of x paired with row i of y, into
 * rows (n·(dx + dy) values of ew_pairs_dtype(xt, yt), the caller's) as n rows of x's values then
 * y's. 0, EW_EBADPARAM (not a paired stream), EW_EDTYPE, or EW_ENONFINITE (a NaN or infinity
 * met while widening two dtypes; one dtype is copied unchecked: ingest checks it). Reads only
 * s's configuration (any thread). */
int ew_pairs_pack(const ew_stream_t *s, const void *x, ew_dtype_t xt, const void *y,
                  ew_dtype_t yt, size_t n, void *rows);
/* ew_pairs_pack + ew_stream_ingest: all or nothing, with ew_stream_ingest's codes (EW_ENOMEM
 * also for the packed copy). n == 0 is a no-op. */
int ew_stream_ingest_pairs(ew_stream_t *s, const void *x, ew_dtype_t xt, const void *y,
                           ew_dtype_t yt, size_t n);
/* "Nullify the prompt" (Dissecting CLIP): out (n×dy f64, row-major) = y − x·A* for n rows of x
 * (n×dx) and y (n×dy), A* = (C_xx + εI)⁺ C_xy from every pair the stream holds (ε = 1e-12, pinv's
 * cut-off; evaluated through C_xx's eigenvectors, never forming the pseudo-inverse). A* is kept
 * with the stream until it changes, so calls in a row cost one solve. Linear features only.
 * 0; EW_EBADPARAM with a sentence in msg[0, cap) (not a paired stream, features rff);
 * EW_EDEGENERATE (no pairs yet); EW_EDTYPE, EW_ENONFINITE, EW_ETOOLARGE, EW_ENOMEM or
 * EW_ELAPACK. The stream's answers do not change (only its cache). */
int ew_stream_nullify(ew_stream_t *s, const void *x, ew_dtype_t xt, const void *y, ew_dtype_t yt,
                      size_t n, double *out, char *msg, size_t cap);

/* Forgets every row (moments, window, live estimate, cached spectra); keeps the configuration. */
void ew_stream_reset(ew_stream_t *s);

/* Merges `src` into `dst` (Chan et al.; exact up to rounding and associative): afterwards dst
 * describes the union of both row sets in every view — ew_stream_merge_ex with spans NULL, whose
 * rule says when windows combine and when the merge is refused (EW_EBADPARAM). Returns EW_EDIM if
 * dimensions differ, EW_EBADPARAM if normalisation or decay differ or one keeps its moments
 * exactly and the other is a Frequent Directions sketch (ew_config_sketched), EW_ERANGE if the
 * union would describe more than 2^53 rows, and EW_ESTATE if src is a sketch whose eigensolvers
 * once failed (it certifies nothing); dst is then unchanged. `src` is unchanged. */
int ew_stream_merge(ew_stream_t *dst, const ew_stream_t *src);

/* A run of rows of one of two windows, for ew_stream_merge_ex: `rows` rows from the `first`-th
 * oldest row that window holds; from 0 is the destination's window, 1 the source's. */
typedef struct {
  int from;
  uint64_t first, rows;
} ew_window_span_t;
/* Merges src into dst, every view: the all-rows accumulator as ew_stream_merge does, and the
 * window too, so that dst answers as one stream fed both row sets would. The window afterwards
 * holds `spans` (n of them), oldest first — the caller's plan when it knows the order the union
 * has (the daemon lays out training steps by step number) — or, with spans NULL, the rule below:
 *   - dst keeps no window: nothing to combine (src's window has no view here).
 *   - either side holds no rows: the other's window (its newest rows that fit).
 *   - both hold rows: each window must hold every row of its side and the two must fit in dst's
 *     window together; the union's window is then dst's rows followed by src's.
 * Otherwise (dst has a window and src none, the rows do not fit, or a span lies outside its
 * window or the spans together overflow dst's window) nothing changes and EW_EBADPARAM is
 * returned with a sentence in msg[0, cap) saying what cannot be combined — a merge never counts
 * rows it drops. The other codes, and the live estimate (dst's carries on), as ew_stream_merge.
 * msg may be NULL. */
int ew_stream_merge_ex(ew_stream_t *dst, const ew_stream_t *src, const ew_window_span_t *spans,
                       size_t n, char *msg, size_t cap);

/* ---- saved state (format: docs/STATE.md) ----
 * A stream as bytes and back: configuration, counters, every accumulator, the window's rows, the
 * live estimate. The bytes go to a writer / come from a reader the caller supplies (a file, a
 * socket, a buffer); the library opens no file. A loaded stream is the saved one bit for bit: it
 * answers every metric exactly as the saved stream did, and saving it again gives the same bytes.
 * ew_write_fn: write n bytes, return 0 on success. ew_read_fn: read exactly n bytes into p, return
 * 0 on success and nonzero when fewer are available. */
typedef int (*ew_write_fn)(void *ctx, const void *p, size_t n);
typedef int (*ew_read_fn)(void *ctx, void *p, size_t n);
/* Writes the stream's state. Returns 0, or EW_EIO when the writer failed (what it wrote is then
 * incomplete). The stream is not changed (it may be read by other threads meanwhile only if no
 * thread changes it). */
int ew_stream_save(const ew_stream_t *s, ew_write_fn fn, void *ctx);
/* The number of bytes ew_stream_save would write now. */
size_t ew_stream_saved_bytes(const ew_stream_t *s);
/* Reads a saved state into a new stream (*out, freed with ew_stream_free). Returns 0, or
 * EW_ESTATE with a sentence in msg[0, cap) — truncated, checksum mismatch, bad magic, unknown
 * format version, a section that does not match the saved configuration or appears twice, a
 * number no ingest produces (a NaN or out-of-range mean, weight, co-moment or certificate, more
 * than 2^53 rows; docs/STATE.md) — or EW_ENOMEM; on error
 * *out is NULL and nothing is left allocated. The checksum is verified before the stream is
 * handed over. Sections of later minor additions that this version does not know are skipped. */
int ew_stream_load(ew_stream_t **out, ew_read_fn fn, void *ctx, char *msg, size_t cap);
/* An embedder's own section of the saved state (the daemon keeps its training block in one):
 * carried verbatim under its tag, inside the checksum, so one file or one exported value holds
 * the stream and what its embedder knows about it. A tag is four bytes, first byte lowest
 * (EW_TAG('t','R','U','N')); an embedder's tag starts with a lowercase ASCII letter, the
 * library's own tags with an uppercase one, so the two never collide. */
typedef struct {
  uint32_t tag;
  const void *data;
  size_t len;
} ew_section_t;
#define EW_TAG(a, b, c, d)                                                                        \
  ((uint32_t)(unsigned char)(a) | (uint32_t)(unsigned char)(b) << 8 |                              \
   (uint32_t)(unsigned char)(c) << 16 | (uint32_t)(unsigned char)(d) << 24)
/* As ew_stream_save, followed (before the end marker) by the n sections of extra, in order.
 * Returns EW_EBADPARAM, writing nothing, when a tag does not start with a lowercase letter or
 * appears twice (n == 0: exactly ew_stream_save). */
int ew_stream_save_ex(const ew_stream_t *s, const ew_section_t *extra, size_t n, ew_write_fn fn,
                      void *ctx);
/* The number of bytes ew_stream_save_ex(s, extra, n, ...) would write now. */
size_t ew_stream_saved_bytes_ex(const ew_stream_t *s, const ew_section_t *extra, size_t n);
/* Called by ew_stream_load_ex once per embedder section, in file order, after the checksum has
 * been verified and the stream built (data is valid during the call only). Returns 0 to accept;
 * nonzero refuses the whole state: the load then fails with EW_ESTATE and the sentence the
 * callback wrote into msg[0, cap) (it may leave it empty), and nothing is created. */
typedef int (*ew_section_fn)(void *ctx, uint32_t tag, const void *data, size_t len, char *msg,
                             size_t cap);
/* As ew_stream_load, handing every embedder section to on_section (NULL: skipped, as
 * ew_stream_load does). An embedder section over EW_SECTION_MAX bytes is EW_ESTATE. */
int ew_stream_load_ex(ew_stream_t **out, ew_read_fn fn, void *ctx, ew_section_fn on_section,
                      void *sctx, char *msg, size_t cap);
#define EW_SECTION_MAX ((size_t)1 << 30)
/* A new stream (*out, freed with ew_stream_free) holding s's state: it answers every metric as s
 * does now, and later changes to either do not reach the other. The copy goes through the saved
 * form (ew_stream_save, then ew_stream_load), so it costs about one pass over the state and holds
 * the saved bytes while it runs. s is only read (see ew_stream_save). Returns 0, EW_ENOMEM, or
 * EW_EINTERNAL if the saved form did not read back (*out is then NULL). */
int ew_stream_clone(const ew_stream_t *s, ew_stream_t **out);

/* The configuration a saved state begins with, read from its first bytes without building a
 * stream or verifying the checksum (ew_stream_load does both): lets a caller check limits and
 * compatibility before committing memory. Returns 0, or EW_ESTATE with a sentence in msg. */
int ew_state_config(const void *buf, size_t len, ew_config_t *cfg, char *msg, size_t cap);
/* CRC-32C (Castagnoli) of p[0, n) continuing from crc (0 to start): the state format's checksum,
 * for callers that frame states in files of their own. ew_crc32c(0, "123456789", 9) ==
 * 0xe3069283. */
uint32_t ew_crc32c(uint32_t crc, const void *p, size_t n);

/* Rows ingested since creation or the last reset (not decayed). */
uint64_t ew_stream_count(const ew_stream_t *s);
/* Rows currently held in the window (0 when the stream has no window). */
uint64_t ew_stream_window_count(const ew_stream_t *s);
/* Bytes of memory the stream costs: the heap it holds now (accumulators, window, live estimate,
 * caches) plus ew_stream_workspace_peak(s). */
size_t ew_stream_memory(const ew_stream_t *s);
/* The most workspace one operation on this stream (an ingest, a query, a matrix copy) has held
 * at once. Workspace is borrowed from the calling thread for the length of the operation and given
 * back (see ew_thread_scratch_release); this is what running the stream's operations needs on top
 * of its state. */
size_t ew_stream_workspace_peak(const ew_stream_t *s);

/* The admission model: what a stream of a given configuration may hold, and the most one job on
 * it may allocate on top, so that a caller can refuse a stream before it exists instead of
 * discovering its cost afterwards.
 *  - state: the bound of ew_stream_memory() over the stream's life (accumulators, window ring
 *    and its moments, live estimate, spectrum caches, warm top-k vectors);
 *  - workspace: the peak a single job on the calling thread may allocate and free again — the
 *    larger of the heaviest query (top-k with vectors: a d×d snapshot, d×d eigenvectors and
 *    dsyevd's 2d² workspace; on a sketched stream the sketch's m = 2ℓ+1 rows, their m×m Gram and
 *    its solve, m vectors and the bracket's spectra; window metrics: the window's rows in f64 and
 *    their Gram) and one batch of at most max_batch_bytes bytes of input (converted rows, a
 *    centred copy, the d×d batch Gram in f64 — a sketched stream needs none).
 * Fills *out and returns 0, or EW_EBADPARAM for a configuration ew_config_check refuses. */
typedef struct {
  size_t state;
  size_t workspace;
} ew_memory_model_t;
int ew_config_memory(const ew_config_t *cfg, size_t max_batch_bytes, ew_memory_model_t *out);

/* Sources a metric may be computed from. */
typedef enum {
  EW_SOURCE_DEFAULT = -1, /* the metric's own default (EW_SOURCE_ALL for sketch metrics) */
  EW_SOURCE_ALL = 0,      /* every row ingested (or the decayed state when decay is on) */
  EW_SOURCE_WINDOW = 1,   /* the last W rows */
  EW_SOURCE_WINDOW_CN = 2, /* the window, centred over the window then each row L2-normalised
                              (Diff-eRank / MNN / UNComp preprocessing); matrix ZᵀZ/N */
  EW_SOURCE_STEP = 3,      /* tokens streams: the newest step's tokens (the window is then the
                              newest window_steps steps, all every token since creation) */
  EW_SOURCE_COUNT          /* the number of sources (lists indexed by source check against it) */
} ew_source_t;

/* Parses "all" | "window" | "window_cn" | "step" (len bytes). Returns 0 or EW_EBADPARAM. */
int ew_source_parse(const char *name, size_t len, ew_source_t *out);
const char *ew_source_name(ew_source_t src);

/* Copies out the state of a source: *weight = number of rows (or decayed weight), mean[d], and
 * the full symmetric d×d matrix A (row-major = column-major since symmetric) where A is the
 * covariance C = M2/weight when center != 0, else the second moment S = C + μμᵀ. Any output
 * pointer may be NULL. For EW_SOURCE_WINDOW_CN, A = ZᵀZ/N and mean is the window mean before
 * normalisation. On a sketched stream (dim > exact_max_dim) source all gives the sketch's matrix
 * A_sk (BᵀB/W, + μμᵀ when uncentred), which lies below the exact one within its certificate
 * (0 ≼ A − A_sk ≼ δ·I; δ = 2 × topk's error); weight and mean are exact. A tokens, stats or
 * paired stream keeps no such matrix: EW_EBADPARAM. Returns EW_ENOWINDOW
 * when the source needs a window the stream does not keep, EW_EDEGENERATE when the source holds
 * no rows, EW_ENOMEM on allocation failure. */
int ew_stream_matrix(ew_stream_t *s, ew_source_t src, int center, double *weight, double *mean,
                     double *A);

/* Copies the live top eigenvector estimate(s) (random-order block power behind the randomising
 * buffer, lib/live/rop.c)
 * into out[k*d] (row i = vector i, unit norm, sign chosen so the largest-magnitude entry is
 * positive). Returns the number of vectors written (<= cap_k), 0 if the stream keeps none or has
 * seen no rows yet. */
size_t ew_stream_live_vectors(const ew_stream_t *s, double *out, size_t cap_k);

/* Workspace: batches and queries borrow memory from a workspace that belongs to the calling thread
 * and is shared by every stream used on it (so a stream's own memory stays near 8d²); inside the
 * library it is handed down explicitly, every allocation distinct. It is freed at thread exit;
 * ew_thread_scratch_release() frees it now (it regrows on demand), and ew_thread_scratch_bytes()
 * says how much the calling thread holds. */
void ew_thread_scratch_release(void);
size_t ew_thread_scratch_bytes(void);

/* ---- queries --------------------------------------------------------------------------------- */
/* The type of a metric parameter (ew_param_info_t.type) and of a value given for one
 * (ew_param_t.type; an enum's value is given as a STRING naming it). */
typedef enum {
  EW_PARAM_NUMBER = 0, /* a double: integer flag and closed range in the table */
  EW_PARAM_BOOL = 1,   /* false or true */
  EW_PARAM_STRING = 2, /* text: 1..max_len bytes of the table's charset */
  EW_PARAM_ENUM = 3    /* one of the table's names */
} ew_param_type_t;

/* A parameter given to a query. ABI note (issue 24): `type` and `str` were added after `value`,
 * and EW_PARAM_NUMBER is 0, so an initializer written for the old two-field struct ({key, value})
 * still means what it meant; code that builds arrays of ew_param_t through an FFI must use the
 * new size. How a given type meets the table's (ew_param_check): a NUMBER parameter takes a
 * NUMBER, a BOOL (as 0 or 1) or the STRING "inf" (as INFINITY); a BOOL parameter takes a BOOL;
 * STRING and ENUM parameters take a STRING. Anything else is EW_EBADPARAM. */
typedef struct {
  const char *key;      /* NUL-terminated parameter name, e.g. "alpha" */
  double value;         /* NUMBER: the number (INFINITY stands for "inf"); BOOL: 0 or 1 */
  ew_param_type_t type; /* what was given: NUMBER, BOOL or STRING */
  const char *str;      /* STRING: the NUL-terminated text (borrowed for the call) */
} ew_param_t;

/* How spectrum-wide metrics (entropy, entropy_normalized, renyi, erank, vendi, nuclear_norm) are
 * computed. EXACT: every eigenvalue (dsyevd). SLQ: the quick estimate — the top pairs by block
 * Lanczos deflated exactly, stochastic Lanczos quadrature on the rest — with an error bar
 * (ew_result_t.error). AUTO: a cached exact spectrum within max_lag when there is one; else SLQ
 * when d >= EW_QUICK_AUTO_DIM and the exact route would be a d×d solve, kept only when its error
 * bar on Σ g(λ) is within 1% of it (else the exact answer, after the quick one's cost); else
 * EXACT. Other metrics are always computed exactly and ignore it. */
typedef enum {
  EW_METHOD_AUTO = 0,
  EW_METHOD_SLQ = 1,
  EW_METHOD_EXACT = 2,
  EW_METHOD_COUNT /* the number of methods */
} ew_method_t;
/* Measured on the reference machine (tests/bench/bench_spectral.py, 2 cores): quick and exact
 * take the same time at d = 2048 (0.30 vs 0.33 s); at 3072 quick takes 0.40× (0.59 vs 1.5 s), at
 * 8192 0.10× (all with 24 Lanczos steps per probe); at 4096 with today's 16 steps 0.20–0.27×
 * (0.63–0.72 s against 2.3–3.2 s). AUTO stays exact where equal time buys an exact answer. */
#define EW_QUICK_AUTO_DIM 3072
/* Parses "auto" | "slq" | "exact" (len bytes). Returns 0 or EW_EBADPARAM. */
int ew_method_parse(const char *name, size_t len, ew_method_t *out);
const char *ew_method_name(ew_method_t m);

typedef struct {
  const char *metric;       /* NUL-terminated metric name */
  const ew_param_t *params; /* nparams parameters, may be NULL when nparams == 0 */
  size_t nparams;
  int center;               /* -1 = the metric's default, 0 = uncentred S, 1 = centred C */
  ew_source_t source;       /* EW_SOURCE_DEFAULT or a source */
  uint64_t max_lag;         /* rows a cached spectrum may lag behind the state; 0 = exact now */
  uint64_t window_rows;     /* window sources: read only the last this many rows (0 = all the
                               window holds; more than it holds is all of it) */
  ew_method_t method;       /* exact or quick for spectrum-wide metrics (default AUTO) */
} ew_query_t;

typedef enum { EW_VALUE_SCALAR = 0, EW_VALUE_LIST = 1 } ew_value_kind_t;

typedef struct {
  ew_value_kind_t kind;
  double scalar;       /* EW_VALUE_SCALAR */
  double *list;        /* EW_VALUE_LIST: len values, owned by the result */
  size_t len;
  double *vectors;     /* topk with vectors=1: len×dim row-major unit vectors, owned */
  size_t dim;
  int has_error;       /* 1 when `error` bounds the value (estimates, top-k residuals) */
  double error;        /* SLQ estimates: a 99% error bar (sampling + quadrature + deflation);
                          top-of-spectrum metrics: the bound the Lanczos residuals give */
  uint64_t as_of;      /* the row count the answer describes */
  size_t clamped;      /* negative eigenvalues clamped to 0 */
  int code;            /* 0 or the EW_E* code the query returned */
  char message[200];   /* on error: a sentence a person can act on */
  int has_bracket;     /* 1 when the value is certified only within [lo, hi] (spectrum-wide
                          metrics of a sketched stream, d > exact_max_dim): scalar is the
                          midpoint and error the half-width */
  double lo, hi;
  uint64_t sample_rows; /* kernel metrics: the rows of the uniform sample the answer was computed
                           on when the window held more than max_rows (0: every row) */
  uint32_t *groups;     /* group_erank: the labels its list follows, ascending (len of them),
                           owned by the result; else NULL */
} ew_result_t;

/* Computes one metric. Always fills `out` (which the caller later passes to ew_result_clear):
 * on success returns 0; on failure returns the negative code, also stored in out->code, with a
 * sentence in out->message — EW_EUNKMETRIC, EW_EBADPARAM (unknown/out-of-range parameter, or a
 * source/centring the metric does not accept), EW_ENOWINDOW, EW_EDEGENERATE (no rows, n <= 1
 * when centred, zero trace for trace-normalised metrics), EW_ELAPACK, EW_ENOMEM.
 * The stream's rows are never changed by a query; its spectrum cache may be. */
int ew_stream_query(ew_stream_t *s, const ew_query_t *q, ew_result_t *out);
/* Frees what a result owns and zeroes it. Safe on a zeroed or already-cleared result. */
void ew_result_clear(ew_result_t *r);

/* A snapshot: what a set of queries reads from a stream, copied so that they can be answered
 * later (ew_snapshot_query), on any thread, while the stream goes on changing. Per source the
 * queries read, it holds the view's moments (or, for a sketched stream, its sketch) when a
 * metric reads the matrix, and the rows when a metric or its route reads rows (window_cn, a
 * tail of fewer rows than d, metrics of the rows such as l2_std): O(d²) floats or the rows asked
 * for, never the stream's whole state, nothing serialised. Window queries must all read the same
 * window_rows. Moments the window keeps on that tail (ew_stream_window_tail, or its own
 * maintenance) are copied as they are; for another tail its rows are copied (n×d f32) and the
 * snapshot's first query builds their moments, on its own thread. s is changed only as a query
 * would change it (the AUTO window mode's record of the ask). Returns 0, EW_ENOMEM,
 * or EW_EBADPARAM when window queries ask different window_rows (*out is then NULL). Queries
 * naming an unknown metric, source or parameter are not an error here: they refuse when asked. */
typedef struct ew_snapshot ew_snapshot_t;
int ew_stream_snapshot(ew_stream_t *s, const ew_query_t *qs, size_t nq, ew_snapshot_t **out);
/* Answers q as ew_stream_query answered it on the stream when the snapshot was taken (the same
 * value, route and error bound; as_of is the stream's count then). EW_EBADPARAM, with a
 * sentence in out->message, for a query the snapshot was not taken for (another source or
 * window_rows) and for metrics that read the live estimate. One thread at a time per snapshot. */
int ew_snapshot_query(ew_snapshot_t *snap, const ew_query_t *q, ew_result_t *out);
/* Heap bytes the snapshot holds (its copies, and the caches its queries filled). */
size_t ew_snapshot_bytes(const ew_snapshot_t *snap);
void ew_snapshot_free(ew_snapshot_t *snap);
/* Keeps the window's moments on its last `rows` rows (the recent view of a caller that reads a
 * tail of the window, such as the rows of its last few training steps), so that queries and
 * snapshots of the window with window_rows == rows read them without a pass over the rows.
 * Moving from the tail the previous call kept costs one un-merge of the rows that left it and
 * one merge of the rows that joined it, while the window still holds them (call it before a
 * batch that would push the leaving rows out of the ring, and again after), else one pass over
 * the tail; the moments are rebuilt from the rows on the window's schedule or when their
 * rounding bound grows past 8× a fresh pass's. From the first call on, batches only write the
 * ring: the window's own per-batch maintenance (window_mode) is off for the stream's life, and a
 * query of another tail or of the whole window builds its moments from the rows. rows above the
 * rows held means all of them. No-op for a window of fewer rows than d (it keeps rows only).
 * Returns 0, EW_ENOWINDOW for a stream without a window, or EW_ENOMEM (the moments keep their
 * rows, or are rebuilt when next read). */
int ew_stream_window_tail(ew_stream_t *s, uint64_t rows);
/* 1 when the window's moments describe exactly its last `rows` rows (all of them when rows
 * exceeds what it holds): queries of that tail then read them without a pass over the rows. */
int ew_stream_window_kept(const ew_stream_t *s, uint64_t rows);
/* Gives s's window the moments a snapshot of s holds for its window tail (copied, or built by
 * its queries from the rows), when the window still holds those rows, keeps nothing newer, and
 * s was not reset or merged since: a later ew_stream_window_tail then moves from them with an
 * un-merge and a merge instead of a pass over the rows. O(d²). Returns 1 when taken, else 0. */
int ew_stream_window_adopt(ew_stream_t *s, const ew_snapshot_t *snap);

#include "eigenwatch_metrics.h" /* the metric table */

#ifdef __cplusplus
}
#endif
#endif /* EIGENWATCH_H */
