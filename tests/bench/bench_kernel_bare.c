/* bench_kernel_bare.c — the machine's own limit for a kernel metric's eigensolve, loaded by
 * bench_kernel.py with ctypes: LAPACKE_dsyevd with jobz 'N' (eigenvalues only, what dse and
 * vendi_kernel ask of LAPACK) on an n×n symmetric matrix, timed in C. Times are seconds from
 * CLOCK_MONOTONIC. */
#include <lapacke.h>
#include <time.h>

#define EXPORT __attribute__((visibility("default")))

EXPORT double ewb_dsyevd_s(double *A, int n, double *w);

/* Seconds for the eigenvalues of A (n×n row-major, destroyed) into w; -1 if LAPACK failed. */
EXPORT double ewb_dsyevd_s(double *A, int n, double *w) {
  struct timespec a, b;
  clock_gettime(CLOCK_MONOTONIC, &a);
  int info = LAPACKE_dsyevd(LAPACK_ROW_MAJOR, 'N', 'U', n, A, n, w);
  clock_gettime(CLOCK_MONOTONIC, &b);
  return info ? -1.0 : (double)(b.tv_sec - a.tv_sec) + 1e-9 * (double)(b.tv_nsec - a.tv_nsec);
}
