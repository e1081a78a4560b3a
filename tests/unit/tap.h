/* tap.h — a tiny TAP producer for the C unit tests (meson runs them with protocol: 'tap').
 * CHECK(cond, fmt, ...) records one assertion of the current case; a case passes when all its
 * checks do. Each test program lists its cases in main() with TAP_RUN(fn). */
#ifndef EW_TAP_H
#define EW_TAP_H
#include <stdio.h>
#include <stdlib.h>

static int tap__n, tap__failed, tap__case_failed;

#define CHECK(cond, ...)                                                                          \
  do {                                                                                            \
    if (!(cond)) {                                                                                \
      tap__case_failed = 1;                                                                       \
      printf("#   %s:%d: check failed: %s: ", __FILE__, __LINE__, #cond);                         \
      printf(__VA_ARGS__);                                                                        \
      printf("\n");                                                                               \
    }                                                                                             \
  } while (0)

#define TAP_RUN(fn)                                                                               \
  do {                                                                                            \
    tap__case_failed = 0;                                                                         \
    fn();                                                                                         \
    tap__n++;                                                                                     \
    if (tap__case_failed)                                                                         \
      tap__failed++;                                                                              \
    printf("%s %d - %s\n", tap__case_failed ? "not ok" : "ok", tap__n, #fn);                      \
    fflush(stdout);                                                                               \
  } while (0)

#define TAP_DONE()                                                                                \
  do {                                                                                            \
    printf("1..%d\n", tap__n);                                                                    \
    return tap__failed ? 1 : 0;                                                                   \
  } while (0)

static inline double tap_relerr(double got, double want) {
  double d = got - want;
  if (d < 0)
    d = -d;
  double w = want < 0 ? -want : want;
  return w > 0 ? d / w : d;
}
#endif
