/* bench_tokens_bare.c — the C loops bench_tokens.py measures beside a tokens stream, loaded with
 * ctypes and run on the benchmark's own numpy arrays:
 *  - the bare loop of DESIGN §6's tokens target: memcpy of a column's f32 bytes, then their sum
 *    (f64 accumulators, eight independent lanes so the compiler may vectorise without
 *    reassociating) — the machine's limit for touching those bytes twice;
 *  - two parts of the library's ingest timed alone through its internals (the static archive, as
 *    the unit tests reach them), to say where an ingest's time goes: the quantile sketch's add
 *    (acc/tokens_sketch.c, k = 4096 as acc/tokens_acc.c's QS_K) and the batch's exact sums and
 *    co-moments (ew__tall_of).
 * Times are seconds from CLOCK_MONOTONIC. */
#include "acc/tokens.h"

#include <string.h>
#include <time.h>

#define EXPORT __attribute__((visibility("default")))

EXPORT double ewb_copy_sum(const float *src, float *dst, size_t n);
EXPORT double ewb_sketch_add_s(const double *x, size_t n, size_t k);
EXPORT double ewb_sums_s(const double *const *x, size_t ncols, size_t n);

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* memcpy(dst, src, 4n), then Σ dst in f64; the sum is returned so it cannot be optimised away. */
EXPORT double ewb_copy_sum(const float *src, float *dst, size_t n) {
  memcpy(dst, src, n * sizeof *src);
  double acc[8] = {0};
  size_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int j = 0; j < 8; j++)
      acc[j] += dst[i + j];
  for (; i < n; i++)
    acc[0] += dst[i];
  return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
}

/* Seconds to add x[0, n) to a fresh quantile sketch of k values per level (what one column of a
 * batch costs ew__acc_tokens_apply's sketch; a stream's sketch already holds earlier tokens, so
 * this is its cost to within the carries the fuller levels add). */
EXPORT double ewb_sketch_add_s(const double *x, size_t n, size_t k) {
  ew__qsketch_t q;
  ew__qs_init(&q, k);
  double t0 = now();
  int rc = ew__qs_reserve(&q, n);
  if (rc == 0)
    rc = ew__qs_add(&q, x, n);
  double t = now() - t0;
  ew__qs_free(&q);
  return rc ? -1.0 : t;
}

/* Seconds for the exact sums of a batch of ncols columns of n tokens (no lengths). */
EXPORT double ewb_sums_s(const double *const *x, size_t ncols, size_t n) {
  ew__tall_t s;
  double t0 = now();
  ew__tall_of(&s, x, ncols, n, NULL, 0, false);
  double t = now() - t0;
  return s.sum[0].n == n ? t : -1.0;
}
