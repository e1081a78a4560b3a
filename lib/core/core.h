/* core/core.h — the core room's part of what the library's files share: the macros every file
 * uses, the random generator (rng.c), workspaces (ws.c), the byte writer/reader of saved states
 * and the bounds a loaded state's numbers must keep (bytes.c), and the check of f32 values
 * (convert.c). The lowest room: it includes only the public header (error codes, the writer and
 * reader callbacks) and calls nothing of the library.
 * Nothing here is exported from the shared library (visibility is hidden by default). */
#ifndef EW_CORE_H
#define EW_CORE_H

#include "../eigenwatch.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define EW_EXPORT __attribute__((visibility("default")))
#define EW_UNUSED(x) ((void)(x))

/* ---- rng.c: xoshiro256** seeded through splitmix64 ---- */
typedef struct {
  uint64_t s[4];
} ew__rng_t;
void ew__rng_seed(ew__rng_t *r, uint64_t seed);
uint64_t ew__rng_next(ew__rng_t *r);
/* uniform in [0, n) for n >= 1 (Lemire's multiply-shift, bias < 2^-32 for n < 2^32) */
uint64_t ew__rng_below(ew__rng_t *r, uint64_t n);
/* standard normal (Box–Muller) */
double ew__rng_normal(ew__rng_t *r);

/* ---- core/ws.c: workspaces ----
 * A stack of 64-byte-aligned allocations in chunks that never move. Every allocation is distinct
 * from every other live one; ew__ws_release(mark) gives back everything allocated after the mark.
 * Functions that need temporary memory take an ew__ws_t * and give back what they took before
 * returning, unless their contract says the result lives in the workspace. */
typedef struct ew__ws ew__ws_t;
typedef struct {
  size_t cur, off, used, peak;
} ew__ws_mark_t;
ew__ws_t *ew__ws_new(void);
void ew__ws_free(ew__ws_t *ws);
/* The bytes one allocation of `bytes` takes (what reservations add up). */
size_t ew__ws_size(size_t bytes);
/* At least `bytes` bytes, 64-byte aligned, contents unspecified; NULL when out of memory. */
void *ew__ws_alloc(ew__ws_t *ws, size_t bytes);
/* Makes the next allocations totalling at most `bytes` (each counted with ew__ws_size) succeed
 * without allocating. Returns 0 or EW_ENOMEM. */
int ew__ws_reserve(ew__ws_t *ws, size_t bytes);
ew__ws_mark_t ew__ws_mark(const ew__ws_t *ws);
void ew__ws_release(ew__ws_t *ws, ew__ws_mark_t m);
/* An operation's bracket: begin marks and starts measuring; end gives everything back and returns
 * the most bytes the operation held at once. Brackets nest. */
ew__ws_mark_t ew__ws_begin(ew__ws_t *ws);
size_t ew__ws_end(ew__ws_t *ws, ew__ws_mark_t m);
/* Bytes of chunks held; frees them all when nothing is live. */
size_t ew__ws_held(const ew__ws_t *ws);
void ew__ws_trim(ew__ws_t *ws);
/* The calling thread's workspace, which the public entry points hand down (NULL: out of memory).
 * Freed at thread exit; ew_thread_scratch_release() trims it. */
ew__ws_t *ew__ws_thread(void);

/* ---- core/bytes.c: the byte stream a saved state is read from / written to (a leaf) ----
 * Writers count and checksum every byte; readers checksum and record the first error (the
 * functions are no-ops after it), so a kind's save/load is a straight sequence of puts/gets. */
typedef struct ew__wr {
  ew_write_fn fn; /* NULL: only counting */
  void *ctx;
  uint32_t crc;
  size_t bytes;
  int err;
} ew__wr_t;
typedef struct ew__rd {
  ew_read_fn fn;
  void *ctx;
  uint32_t crc;
  int err;
  char *msg;
  size_t cap;
} ew__rd_t;
void ew__put(ew__wr_t *w, const void *p, size_t n);
void ew__put_u64(ew__wr_t *w, uint64_t v);
void ew__put_f64(ew__wr_t *w, double v);
int ew__get(ew__rd_t *r, void *p, size_t n);
uint64_t ew__get_u64(ew__rd_t *r);
double ew__get_f64(ew__rd_t *r);
/* Records EW_ESTATE with the sentence fmt (one %s: what) unless an error is already recorded. */
int ew__rd_fail(ew__rd_t *r, const char *fmt, const char *what);
/* The same with a printf format of any arguments. */
int ew__rd_failf(ew__rd_t *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Builds the checksum's tables once (thread-safe); every save and load calls it first. */
void ew__bytes_init(void);

/* What a loaded state's numbers may be (core/bytes.c, acc/moments.c): nothing ingest or merge can
 * produce lies outside these bounds, so a state outside them was not made by eigenwatch (or was
 * altered after its checksum was computed), and loading it would leave a stream answering
 * nonsense. Rows are at most FLT_MAX in magnitude (f64 batches beyond it are refused, f32 cannot
 * exceed it), so a mean is at most FLT_MAX and a centred co-moment's diagonal at most
 * W·(2·FLT_MAX)²; weights count rows exactly only up to 2^53, the most rows a state may describe. */
#define EW__ROWS_MAX ((uint64_t)1 << 53)
/* Records EW_ESTATE ("section SEC holds WHAT ...") unless each of the n doubles at x is finite and
 * at most lim in magnitude. Returns 0 or the error. */
int ew__check_f64s(ew__rd_t *r, const double *x, size_t n, double lim, const char *sec,
                   const char *what);

/* Writes the sentence fmt into msg[0, cap) (when msg and cap) and returns EW_EBADPARAM: the
 * refusals that carry a sentence (core/error.c). */
int ew__fail_msg(char *msg, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* EW_ENONFINITE when any of count f32 values (any alignment) is NaN or ±Inf, else 0
 * (core/convert.c). */
int ew__check_f32(const void *src, size_t count);

#endif /* EW_CORE_H */
