/* rng.c — a small deterministic PRNG (xoshiro256**, seeded through splitmix64) for the shuffle
 * buffer, Oja's start vectors and subspace-iteration start blocks. Not for anything secret. */
#include "core.h"

#include <math.h>

static uint64_t splitmix64(uint64_t *x) {
  uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

void ew__rng_seed(ew__rng_t *r, uint64_t seed) {
  uint64_t x = seed;
  for (int i = 0; i < 4; i++)
    r->s[i] = splitmix64(&x);
}

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t ew__rng_next(ew__rng_t *r) {
  uint64_t *s = r->s;
  uint64_t result = rotl(s[1] * 5, 7) * 9;
  uint64_t t = s[1] << 17;
  s[2] ^= s[0];
  s[3] ^= s[1];
  s[1] ^= s[2];
  s[0] ^= s[3];
  s[2] ^= t;
  s[3] = rotl(s[3], 45);
  return result;
}

uint64_t ew__rng_below(ew__rng_t *r, uint64_t n) {
  if (n <= 1)
    return 0;
  if (n <= UINT32_MAX)
    return ((ew__rng_next(r) >> 32) * n) >> 32;
  return ew__rng_next(r) % n;
}

double ew__rng_normal(ew__rng_t *r) {
  /* Box–Muller on two uniforms in (0, 1]; one value is discarded for simplicity. */
  double u1 = ((double)(ew__rng_next(r) >> 11) + 1.0) * 0x1.0p-53;
  double u2 = (double)(ew__rng_next(r) >> 11) * 0x1.0p-53;
  return sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2);
}
