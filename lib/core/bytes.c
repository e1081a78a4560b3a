/* bytes.c — the byte stream a saved state is written to and read from: every byte counted and
 * checksummed (CRC-32C) on its way, and the reader's first error kept with its sentence. A leaf:
 * the state (state/) and every accumulator kind (acc/) write and read their sections through it,
 * and it calls none of them. */
#include "core.h"

#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* ---- CRC-32C (Castagnoli), slicing by 8: tables built once ---- */

static uint32_t crc_table[8][256];
static pthread_once_t crc_once = PTHREAD_ONCE_INIT;

#if defined(__x86_64__) && defined(__GNUC__)
static int crc_have_hw; /* SSE4.2 present: set once, in crc_build (pthread_once) */
#endif

static void crc_build(void) {
#if defined(__x86_64__) && defined(__GNUC__)
  crc_have_hw = __builtin_cpu_supports("sse4.2") ? 1 : 0;
#endif
  for (uint32_t i = 0; i < 256; i++) {
    uint32_t c = i;
    for (int k = 0; k < 8; k++)
      c = (c & 1) ? 0x82f63b78u ^ (c >> 1) : c >> 1;
    crc_table[0][i] = c;
  }
  for (uint32_t i = 0; i < 256; i++)
    for (int t = 1; t < 8; t++)
      crc_table[t][i] = (crc_table[t - 1][i] >> 8) ^ crc_table[0][crc_table[t - 1][i] & 0xff];
}

void ew__bytes_init(void) { pthread_once(&crc_once, crc_build); }

static uint32_t crc_sliced(uint32_t crc, const unsigned char *b, size_t n) {
  for (; n >= 8; n -= 8, b += 8) { /* little-endian: the first four bytes fold into crc */
    uint32_t lo, hi;
    memcpy(&lo, b, 4);
    memcpy(&hi, b + 4, 4);
    lo ^= crc;
    crc = crc_table[7][lo & 0xff] ^ crc_table[6][(lo >> 8) & 0xff] ^
          crc_table[5][(lo >> 16) & 0xff] ^ crc_table[4][lo >> 24] ^ crc_table[3][hi & 0xff] ^
          crc_table[2][(hi >> 8) & 0xff] ^ crc_table[1][(hi >> 16) & 0xff] ^ crc_table[0][hi >> 24];
  }
  for (; n; n--, b++)
    crc = crc_table[0][(crc ^ *b) & 0xff] ^ (crc >> 8);
  return crc;
}

#if defined(__x86_64__) && defined(__GNUC__)
/* SSE4.2's crc32 instruction computes the same reflected CRC-32C, 8 bytes at a time (~5× the
 * tables: a d = 4096 state is 71 MB). Chosen at run time; the tables serve other CPUs. */
__attribute__((target("sse4.2"))) static uint32_t crc_hw(uint32_t crc, const unsigned char *b,
                                                          size_t n) {
  uint64_t c = crc;
  for (; n >= 8; n -= 8, b += 8) {
    uint64_t v;
    memcpy(&v, b, 8);
    c = __builtin_ia32_crc32di(c, v);
  }
  crc = (uint32_t)c;
  for (; n; n--, b++)
    crc = __builtin_ia32_crc32qi(crc, *b);
  return crc;
}
#endif

static uint32_t crc_update(uint32_t crc, const void *p, size_t n) {
  const unsigned char *b = p;
#if defined(__x86_64__) && defined(__GNUC__)
  if (crc_have_hw > 0)
    return ~crc_hw(~crc, b, n);
#endif
  return ~crc_sliced(~crc, b, n);
}

EW_EXPORT uint32_t ew_crc32c(uint32_t crc, const void *p, size_t n) {
  ew__bytes_init();
  return crc_update(crc, p, n);
}

/* ---- writing ---- */

void ew__put(ew__wr_t *w, const void *p, size_t n) {
  if (w->err || n == 0)
    return;
  w->bytes += n;
  if (!w->fn) /* only counting (ew_stream_saved_bytes) */
    return;
  w->crc = crc_update(w->crc, p, n);
  if (w->fn(w->ctx, p, n) != 0)
    w->err = EW_EIO;
}

void ew__put_u64(ew__wr_t *w, uint64_t v) { ew__put(w, &v, 8); }
void ew__put_f64(ew__wr_t *w, double v) { ew__put(w, &v, 8); }

/* ---- reading ---- */

int ew__rd_fail(ew__rd_t *r, const char *fmt, const char *what) {
  if (!r->err) {
    r->err = EW_ESTATE;
    if (r->msg && r->cap)
      snprintf(r->msg, r->cap, fmt, what);
  }
  return r->err;
}
int ew__rd_failf(ew__rd_t *r, const char *fmt, ...) {
  if (!r->err) {
    r->err = EW_ESTATE;
    if (r->msg && r->cap) {
      va_list ap;
      va_start(ap, fmt);
      vsnprintf(r->msg, r->cap, fmt, ap);
      va_end(ap);
    }
  }
  return r->err;
}

int ew__check_f64s(ew__rd_t *r, const double *x, size_t n, double lim, const char *sec,
                   const char *what) {
  for (size_t i = 0; i < n && !r->err; i++)
    if (!(fabs(x[i]) <= lim))
      ew__rd_failf(r, "section %s holds %s %g (at %zu), which no ingest produces: they are finite "
                   "and at most %.3g in magnitude", sec, what, x[i], i, lim);
  return r->err;
}

int ew__get(ew__rd_t *r, void *p, size_t n) {
  if (r->err)
    return r->err;
  if (n && r->fn(r->ctx, p, n) != 0)
    return ew__rd_fail(r, "the state ends early (in %s): truncated", "a section");
  r->crc = crc_update(r->crc, p, n);
  return 0;
}
uint64_t ew__get_u64(ew__rd_t *r) {
  uint64_t v = 0;
  ew__get(r, &v, 8);
  return v;
}

double ew__get_f64(ew__rd_t *r) {
  double v = 0;
  ew__get(r, &v, 8);
  return v;
}
