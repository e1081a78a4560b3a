/* test_fd.c — the Frequent Directions kind (lib/acc/fd.c), against the covariance of the same rows
 * computed here in f64 (two passes, weights and L2 applied as the configuration says):
 *  - the certificate 0 ≼ C − C_sk ≼ δ·I holds (eigenvalues of the difference, to 1e-11·tr C),
 *    where δ = 2·topk_error and C_sk = ew_stream_matrix of the sketched stream;
 *  - δ is no looser than the a-priori bound Σ_{i>k} λ_i / (ℓ + 1 − k) at k = ℓ/2;
 *  - n, the mean and tr C are exact (1e-12), and so is every diagonal entry (mnn);
 *  - each reported top-k value v ± e contains the exact eigenvalue;
 *  - a stream of rank below ℓ is held exactly (δ ≤ 1e-10·λ₁);
 * on power-law, flat, spiked, low-rank and large-mean spectra, f32 and f64 batches of uneven
 * sizes, L2 rows and decay; merged sketches keep the certificate for the union, and a sketch
 * and exact moments refuse to merge; at d = 16384 with ℓ = 256 a stream stays under 300 MB
 * (the admission model, the library's own count and, without sanitizers, the process's RSS),
 * with no window and with the 1024-row window of a recent stream (rows only). */
#include "eigenwatch.h"
#include "tap.h"

#include <lapacke.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(__SANITIZE_ADDRESS__)
#define EW_TEST_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define EW_TEST_ASAN 1
#endif
#endif

static uint64_t rs = 1;
static double unif(void) {
  rs = rs * 6364136223846793005ULL + 1442695040888963407ULL;
  return ((double)(rs >> 11) + 0.5) * 0x1p-53;
}
static double gauss(void) { return sqrt(-2.0 * log(unif())) * cos(6.283185307179586 * unif()); }

enum { POWER, FLAT, SPIKED, RANK5, BIGMEAN };
static const char *const spec_names[] = {"power law 1/i", "flat i^-1/2", "3 spikes + noise",
                                         "rank 5", "mean 1e3 x spread"};

/* n rows of dimension d with the given spectrum in a random rotation (Householder products). */
static double *make_rows(int kind, size_t n, size_t d) {
  double *X = malloc(n * d * sizeof(double)), *h = malloc(3 * d * sizeof(double));
  for (size_t r = 0; r < n; r++)
    for (size_t j = 0; j < d; j++) {
      double sd = kind == POWER    ? 1.0 / sqrt((double)(j + 1))
                  : kind == FLAT   ? pow((double)(j + 1), -0.25)
                  : kind == SPIKED ? (j < 3 ? 6.0 - (double)j : 0.3)
                  : kind == RANK5  ? (j < 5 ? 1.0 + (double)j : 0.0)
                                   : 1.0 / sqrt((double)(j + 1));
      X[r * d + j] = sd * gauss();
    }
  for (int t = 0; t < 3; t++) { /* rotate: X ← X (I − 2 h hᵀ) */
    double *v = h + (size_t)t * d, nn = 0;
    for (size_t j = 0; j < d; j++) {
      v[j] = gauss();
      nn += v[j] * v[j];
    }
    for (size_t j = 0; j < d; j++)
      v[j] /= sqrt(nn);
    for (size_t r = 0; r < n; r++) {
      double p = 0;
      for (size_t j = 0; j < d; j++)
        p += X[r * d + j] * v[j];
      for (size_t j = 0; j < d; j++)
        X[r * d + j] -= 2 * p * v[j];
    }
  }
  if (kind == BIGMEAN)
    for (size_t r = 0; r < n; r++)
      for (size_t j = 0; j < d; j++)
        X[r * d + j] += 1e3 * (1.0 + (double)(j % 7));
  free(h);
  return X;
}

/* The weighted covariance of the rows (row r weighs w[r], NULL = 1), after L2 when l2: C (d×d),
 * its mean and total weight. */
static void reference(const double *X, size_t n, size_t d, const double *w, int l2, double *C,
                      double *mu, double *W) {
  double *Y = malloc(n * d * sizeof(double)), tot = 0;
  memcpy(Y, X, n * d * sizeof(double));
  if (l2)
    for (size_t r = 0; r < n; r++) {
      double nn = 0;
      for (size_t j = 0; j < d; j++)
        nn += Y[r * d + j] * Y[r * d + j];
      for (size_t j = 0; j < d; j++)
        Y[r * d + j] /= sqrt(nn);
    }
  memset(mu, 0, d * sizeof(double));
  for (size_t r = 0; r < n; r++) {
    double wr = w ? w[r] : 1.0;
    tot += wr;
    for (size_t j = 0; j < d; j++)
      mu[j] += wr * Y[r * d + j];
  }
  for (size_t j = 0; j < d; j++)
    mu[j] /= tot;
  memset(C, 0, d * d * sizeof(double));
  for (size_t r = 0; r < n; r++) {
    double wr = w ? w[r] : 1.0;
    for (size_t i = 0; i < d; i++) {
      double a = wr * (Y[r * d + i] - mu[i]);
      for (size_t j = 0; j < d; j++)
        C[i * d + j] += a * (Y[r * d + j] - mu[j]);
    }
  }
  for (size_t i = 0; i < d * d; i++)
    C[i] /= tot;
  *W = tot;
  free(Y);
}

static void eigvals_desc(const double *A, size_t d, double *ev) {
  double *T = malloc(d * d * sizeof(double));
  memcpy(T, A, d * d * sizeof(double));
  int info = LAPACKE_dsyevd(LAPACK_COL_MAJOR, 'N', 'U', (lapack_int)d, T, (lapack_int)d, ev);
  CHECK(info == 0, "reference dsyevd info %d", info);
  for (size_t i = 0; i < d / 2; i++) {
    double t = ev[i];
    ev[i] = ev[d - 1 - i];
    ev[d - 1 - i] = t;
  }
  free(T);
}

static int query(ew_stream_t *s, const char *metric, const char *key, double v, ew_result_t *r) {
  ew_param_t p = {key, v};
  ew_query_t q = {.metric = metric, .params = key ? &p : NULL, .nparams = key ? 1 : 0,
                  .center = 1, .source = EW_SOURCE_ALL};
  return ew_stream_query(s, &q, r);
}

/* Feeds rows [a, b) in uneven batches, f32 and f64 alternating (f32 rows are rounded here
 * first, so that the reference sees the same values). */
static void feed(ew_stream_t *s, double *X, size_t a, size_t b, size_t d) {
  size_t sizes[] = {1, 37, 200, 5, 512, 64};
  for (size_t i = 0, r = a; r < b; i++) {
    size_t m = sizes[i % 6] < b - r ? sizes[i % 6] : b - r;
    int rc;
    if (i % 2) {
      float *f = malloc(m * d * sizeof(float));
      for (size_t t = 0; t < m * d; t++)
        X[r * d + t] = f[t] = (float)X[r * d + t];
      rc = ew_stream_ingest(s, f, EW_F32, m, d);
      free(f);
    } else {
      rc = ew_stream_ingest(s, X + r * d, EW_F64, m, d);
    }
    CHECK(rc == 0, "ingest rc %d", rc);
    r += m;
  }
}

/* Checks the certificate and the exact parts of s against the reference of its rows. */
static void check_sketch(ew_stream_t *s, const double *C, const double *mu, double W, size_t d,
                         size_t ell, const char *what) {
  double *A = malloc(d * d * sizeof(double)), *mean = malloc(d * sizeof(double));
  double *ev = malloc(2 * d * sizeof(double)), *lam = ev + d, w = 0;
  CHECK(ew_stream_matrix(s, EW_SOURCE_ALL, 1, &w, mean, A) == 0, "%s: matrix", what);
  double tr = 0, mu_err = 0, mu_scale = 0;
  for (size_t j = 0; j < d; j++) {
    tr += C[j * d + j];
    mu_err = fmax(mu_err, fabs(mean[j] - mu[j]));
    mu_scale = fmax(mu_scale, fabs(mu[j]));
  }
  CHECK(tap_relerr(w, W) < 1e-12, "%s: weight %.17g vs %.17g", what, w, W);
  CHECK(mu_err <= 1e-12 * (mu_scale + sqrt(tr)), "%s: mean off by %g", what, mu_err);
  ew_result_t r;
  CHECK(query(s, "trace", NULL, 0, &r) == 0 && tap_relerr(r.scalar, tr) < 1e-12,
        "%s: trace %.17g vs %.17g", what, r.scalar, tr);
  ew_result_clear(&r);
  /* mnn is the sum of the top column norms: exact diagonal in, exact metric out */
  double *dg = malloc(d * sizeof(double)), mnn = 0;
  for (size_t j = 0; j < d; j++)
    dg[j] = sqrt(W * C[j * d + j]);
  for (size_t j = 0; j < d; j++)
    mnn += dg[j];
  CHECK(query(s, "mnn", NULL, 0, &r) == 0 && tap_relerr(r.scalar, mnn / W) < 1e-12,
        "%s: mnn %.17g vs %.17g", what, r.scalar, mnn / W);
  ew_result_clear(&r);
  free(dg);
  /* the certificate */
  CHECK(query(s, "topk", "k", 8, &r) == 0 && r.has_error, "%s: topk", what);
  double delta = 2 * r.error;
  eigvals_desc(C, d, lam);
  for (size_t i = 0; i < 8 && i < r.len; i++)
    CHECK(fabs(r.list[i] - lam[i]) <= r.error + 1e-11 * tr,
          "%s: lambda_%zu = %.12g outside %.12g +- %.3g", what, i + 1, lam[i], r.list[i], r.error);
  ew_result_clear(&r);
  for (size_t i = 0; i < d * d; i++)
    A[i] = C[i] - A[i];
  eigvals_desc(A, d, ev);
  CHECK(ev[d - 1] >= -1e-11 * tr && ev[0] <= delta + 1e-11 * tr,
        "%s: eigenvalues of C - C_sk in [%.3g, %.3g], certificate [0, %.3g]", what, ev[d - 1],
        ev[0], delta);
  /* and it is no looser than the a-priori bound at k = ℓ/2 */
  size_t k = ell / 2;
  double tail = 0;
  for (size_t i = k; i < d; i++)
    tail += lam[i] > 0 ? lam[i] : 0;
  CHECK(delta <= tail / (double)(ell + 1 - k) * (1 + 1e-9) + 1e-12 * tr,
        "%s: delta %.4g above the a-priori bound %.4g", what, delta, tail / (double)(ell + 1 - k));
  printf("# %-34s delta/trC %.3e  observed max %.3e  a-priori %.3e\n", what, delta / tr,
         ev[0] / tr, tail / (double)(ell + 1 - k) / tr);
  free(A);
  free(mean);
  free(ev);
}

static ew_stream_t *sketched(size_t d, size_t ell, int l2, double half_life) {
  ew_config_t c;
  ew_config_default(&c, d);
  c.window = 0;
  c.exact_max_dim = d / 2;
  c.sketch_rows = ell;
  c.normalize = l2 ? EW_NORMALIZE_L2 : EW_NORMALIZE_NONE;
  c.decay_half_life = half_life;
  ew_stream_t *s = NULL;
  CHECK(ew_stream_create(&c, &s) == 0 && s, "create");
  return s;
}

static void certificate_on_every_spectrum(void) {
  size_t d = 160, n = 2400, ell = 12;
  double *C = malloc(d * d * sizeof(double)), *mu = malloc(d * sizeof(double)), W;
  for (int kind = POWER; kind <= BIGMEAN; kind++) {
    double *X = make_rows(kind, n, d);
    ew_stream_t *s = sketched(d, ell, 0, 0);
    feed(s, X, 0, n, d);
    reference(X, n, d, NULL, 0, C, mu, &W);
    check_sketch(s, C, mu, W, d, ell, spec_names[kind]);
    if (kind == RANK5) { /* rank below ℓ: nothing was dropped */
      ew_result_t r;
      double lam[160];
      eigvals_desc(C, d, lam);
      CHECK(query(s, "topk", "k", 5, &r) == 0 && r.error <= 1e-10 * lam[0],
            "rank 5: delta %g should vanish", r.error);
      for (size_t i = 0; i < 5 && r.list; i++)
        CHECK(tap_relerr(r.list[i], lam[i]) < 1e-9, "rank 5: lambda_%zu %.15g vs %.15g", i + 1,
              r.list[i], lam[i]);
      ew_result_clear(&r);
    }
    ew_stream_free(s);
    free(X);
  }
  free(C);
  free(mu);
}

static void l2_rows_and_decay(void) {
  size_t d = 120, n = 3000, ell = 16;
  double half = 700, g = exp2(-1.0 / half);
  double *C = malloc(d * d * sizeof(double)), *mu = malloc(d * sizeof(double)), W;
  double *w = malloc(n * sizeof(double));
  for (size_t r = 0; r < n; r++)
    w[r] = pow(g, (double)(n - 1 - r));
  double *X = make_rows(POWER, n, d);
  for (size_t r = 0; r < n; r++) /* a mean that drifts: decay must follow it */
    for (size_t j = 0; j < d; j++)
      X[r * d + j] += (double)r / (double)n * (j < 10 ? 3.0 : 0.0);
  ew_stream_t *s = sketched(d, ell, 1, half);
  feed(s, X, 0, n, d);
  reference(X, n, d, w, 1, C, mu, &W);
  check_sketch(s, C, mu, W, d, ell, "L2 rows with decay (half-life 700)");
  ew_stream_free(s);
  free(X);
  free(w);
  free(C);
  free(mu);
}

static void merged_sketches_keep_the_certificate(void) {
  size_t d = 140, n = 2000, ell = 10;
  double *C = malloc(d * d * sizeof(double)), *mu = malloc(d * sizeof(double)), W;
  double *X = make_rows(SPIKED, n, d);
  for (size_t r = 1200; r < n; r++) /* the second shard sits elsewhere: the union's mean moves */
    for (size_t j = 0; j < d; j++)
      X[r * d + j] += j % 2 ? 2.0 : -1.0;
  ew_stream_t *a = sketched(d, ell, 0, 0), *b = sketched(d, ell, 0, 0);
  feed(a, X, 0, 1200, d);
  feed(b, X, 1200, n, d);
  CHECK(ew_stream_merge(a, b) == 0, "merge");
  CHECK(ew_stream_count(a) == n, "merged count %llu", (unsigned long long)ew_stream_count(a));
  reference(X, n, d, NULL, 0, C, mu, &W);
  check_sketch(a, C, mu, W, d, ell, "two shards merged");
  /* a sketch and exact moments have no union */
  ew_config_t c;
  ew_config_default(&c, d);
  ew_stream_t *e = NULL;
  CHECK(ew_stream_create(&c, &e) == 0, "create exact");
  feed(e, X, 0, 10, d);
  CHECK(ew_stream_merge(a, e) == EW_EBADPARAM && ew_stream_merge(e, a) == EW_EBADPARAM,
        "merging a sketch with exact moments must be refused");
  CHECK(ew_stream_count(a) == n && ew_stream_count(e) == 10, "a refused merge changed a count");
  check_sketch(a, C, mu, W, d, ell, "two shards, after the refused merge");
  ew_stream_free(a);
  ew_stream_free(b);
  ew_stream_free(e);
  free(X);
  free(C);
  free(mu);
}

static size_t rss_bytes(void) {
  FILE *f = fopen("/proc/self/statm", "r");
  unsigned long pages = 0, res = 0;
  if (f) {
    if (fscanf(f, "%lu %lu", &pages, &res) != 2)
      res = 0;
    fclose(f);
  }
  return (size_t)res * 4096;
}

/* A stream at d = 16384 with the defaults (no window), or with the window a recent (training)
 * stream gets there (1024 rows: 64 MiB, rows only), stays under 300 MB. */
static void wide_stream_stays_under_300_mb(size_t window) {
  size_t d = 16384, n = 1100, limit = 300u * 1000 * 1000;
  ew_config_t c;
  ew_config_default(&c, d);
  c.window = window;
  ew_memory_model_t mm;
  /* the stream's state (the per-stream bound; the workspace is a math thread's, shared by every
   * stream it serves, and reported beside it) */
  CHECK(ew_config_memory(&c, 100 * d * sizeof(float), &mm) == 0 && mm.state <= limit,
        "admission model at d = 16384: state %zu bytes (workspace %zu)", mm.state, mm.workspace);
  size_t before = rss_bytes();
  ew_stream_t *s = NULL;
  CHECK(ew_config_sketched(&c) && ew_stream_create(&c, &s) == 0, "create d = 16384");
  float *x = malloc(100 * d * sizeof(float));
  for (size_t done = 0; done < n; done += 100) {
    for (size_t i = 0; i < 100 * d; i++)
      x[i] = (float)(gauss() / sqrt(1.0 + (double)(i % d)));
    CHECK(ew_stream_ingest(s, x, EW_F32, 100, d) == 0, "ingest");
  }
  ew_result_t r;
  CHECK(query(s, "entropy", NULL, 0, &r) == 0 && r.has_bracket && r.lo <= r.hi,
        "entropy bracket at d = 16384");
  ew_result_clear(&r);
  if (window) { /* the recent view: exact, from the window's rows (the 1024×1024 Gram) */
    ew_query_t q = {.metric = "entropy", .center = 1, .source = EW_SOURCE_WINDOW};
    CHECK(ew_stream_query(s, &q, &r) == 0 && !r.has_bracket && !r.has_error && r.scalar > 0 &&
              r.scalar <= log(1024.0),
          "window entropy %g (rc %d: %s)", r.scalar, r.code, r.message);
    ew_result_clear(&r);
  }
  free(x);
  size_t mem = ew_stream_memory(s), grew = rss_bytes() - before;
  CHECK(mem <= limit, "ew_stream_memory %zu bytes", mem);
  printf("# d = 16384, l = 256, window %zu: model %zu + %zu, library %zu, RSS grew %zu bytes\n",
         window, mm.state, mm.workspace, mem, grew);
#ifndef EW_TEST_ASAN
  CHECK(grew <= limit, "RSS grew %zu bytes", grew);
#endif
  CHECK(mem <= mm.state + mm.workspace, "the library counts %zu bytes, above the model's %zu",
        mem, mm.state + mm.workspace);
  ew_stream_free(s);
}

static void wide_stream_defaults(void) { wide_stream_stays_under_300_mb(0); }
static void wide_stream_as_a_recent_stream(void) { wide_stream_stays_under_300_mb(1024); }

int main(void) {
  TAP_RUN(certificate_on_every_spectrum);
  TAP_RUN(l2_rows_and_decay);
  TAP_RUN(merged_sketches_keep_the_certificate);
  TAP_RUN(wide_stream_defaults);
  TAP_RUN(wide_stream_as_a_recent_stream);
  TAP_DONE();
}
