/* test_live.c — the live estimate (live/rop.c, random-order block power with heavy rows) against
 * the fixed-rate Oja estimate it replaced (live/oja.c), on the same rows in the same order, both
 * measured against the exact top eigenvector of the covariance of all rows (LAPACK dsyevd), with
 * the certificate ‖C v − θ v‖/θ (θ = vᵀ C v) that live_topk reports.
 *
 * Scenarios: a spiked model (λ₁/λ₂ = 10) in random order; the same sorted adversarially (rows
 * heavy on the second direction first); a spiked model with λ₁/λ₂ = 1.05; 40 heavy rows (norm 60×
 * the rest) carrying the top direction among 20,000; a top direction that rotates halfway (the
 * second half has 3× the variance, so the top vector of all rows is the new one); Fashion-MNIST
 * (60,000 × 784, Debian's dataset-fashion-mnist) in file order and sorted by class.
 *
 * Bounds asserted (1 − ⟨v, v₁⟩²): the new estimate ≤ 2e-3 on the R = 10 model in both orders,
 * ≤ 1e-2 with heavy rows, ≤ 1e-2 after the rotation, ≤ 1e-2 on Fashion-MNIST in file order and
 * ≤ 0.1 sorted by class; and in every scenario the certificate r = ‖C v − θ v‖/θ bounds the error
 * through Davis–Kahan, sin²∠(v, v₁) ≤ (r θ / (θ − λ₂))² (1 when θ ≤ λ₂), so wherever the estimate
 * is wrong (error > 0.1) the certified bound is ≥ 0.1: a wrong estimate is never vouched for.
 * The residual alone cannot say more than the gap allows: at λ₁/λ₂ = 1.05 every unit vector in
 * the top two directions has r ≤ 0.05. Each scenario prints both estimates' errors.
 *
 * live_topk's certificate (live/cert.c), which adds to that residual the distance of each θ_i to
 * a bracket of λ_i from a few block Lanczos steps: on a covariance with a known spectrum (d = 256,
 * λ₁ = 8.19, λ₂ = 4.78, a power law below 1), the exact eigenvector q₂ (residual 0, the moved
 * direction of issue 23) is certified no better than (λ₁ − θ)/λ₁; q₁ is certified to rounding;
 * a mix of the two is certified to at least its residual and (λ₁ − θ)/θ, and the bound
 * sin² ≤ e θ/(λ₁ − λ₂) covers its 0.3; with k = 2 a wrong second vector is seen through λ₂.
 * And a sweep at d = 1024 of a top hidden ε above an exact eigenvector (certificate_hidden_top_
 * sweep): caught in every seed for ε ≥ 0.02 with a gap under the top, ε ≥ 0.2 without. */
#include "ew_internal.h"
#include "tap.h"

#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#define FMNIST "/usr/share/datasets/fashion-mnist/"

static ew__ws_t *ws(void) {
  static ew__ws_t *w;
  if (!w)
    w = ew__ws_new();
  return w;
}

typedef struct {
  double err_new, err_oja, cert_new, bound; /* bound: (r θ / (θ − λ₂))², Davis–Kahan */
} outcome_t;

/* Feeds rows (n×d f32) in batches of 256 to both estimators with the running mean, then compares
 * with the exact top eigenvector of the covariance of all rows. */
static outcome_t run(const float *X, size_t n, size_t d, uint64_t seed) {
  ew__rop_t rop;
  ew__oja_t oja;
  CHECK(ew__rop_init(&rop, d, 1, 256, seed) == 0, "rop init");
  CHECK(ew__oja_init(&oja, d, 1, 256, seed) == 0, "oja init");
  double *mean = calloc(d, sizeof(double)), *C = calloc(d * d, sizeof(double));
  double *w = malloc(d * sizeof(double)), *a = malloc(d * sizeof(double));
  double *M2 = calloc(d * d, sizeof(double));
  for (size_t r0 = 0; r0 < n; r0 += 256) {
    size_t b = n - r0 < 256 ? n - r0 : 256;
    for (size_t r = r0; r < r0 + b; r++) /* running mean (Welford), as the stream keeps it */
      for (size_t t = 0; t < d; t++)
        mean[t] += ((double)X[r * d + t] - mean[t]) / (double)(r + 1);
    ew__rop_push(&rop, X + r0 * d, b, mean);
    ew__oja_push(&oja, X + r0 * d, b, mean);
  }
  /* the exact covariance of all rows, two-pass */
  for (size_t r = 0; r < n; r++) {
    for (size_t t = 0; t < d; t++)
      a[t] = (double)X[r * d + t] - mean[t];
    cblas_dsyr(CblasColMajor, CblasUpper, (int)d, 1.0 / (double)n, a, 1, M2, (int)d);
  }
  for (size_t j = 0; j < d; j++)
    for (size_t i = 0; i <= j; i++)
      C[i + j * d] = C[j + i * d] = M2[i + j * d];
  double *Z = malloc(d * d * sizeof(double));
  memcpy(Z, C, d * d * sizeof(double));
  CHECK(ew__eigpairs(Z, d, w, ws()) == 0, "eigpairs");
  double *v = malloc(d * sizeof(double)), *Cv = malloc(d * sizeof(double));
  outcome_t o = {1, 1, INFINITY, 1};
  if (ew__rop_vectors(&rop, v, 1) == 1) {
    double dot = cblas_ddot((int)d, v, 1, Z, 1);
    o.err_new = 1 - dot * dot;
    cblas_dsymv(CblasColMajor, CblasUpper, (int)d, 1.0, C, (int)d, v, 1, 0.0, Cv, 1);
    double th = cblas_ddot((int)d, v, 1, Cv, 1);
    cblas_daxpy((int)d, -th, v, 1, Cv, 1);
    o.cert_new = cblas_dnrm2((int)d, Cv, 1) / th;
    double gap = th - w[1]; /* sin∠(v, v₁) ≤ ‖Cv − θv‖ / (θ − λ₂) when θ > λ₂ */
    o.bound = gap > 0 ? fmin(1.0, pow(o.cert_new * th / gap, 2)) : 1.0;
  }
  if (ew__oja_vectors(&oja, v, 1) == 1) {
    double dot = cblas_ddot((int)d, v, 1, Z, 1);
    o.err_oja = 1 - dot * dot;
  }
  printf("#   power steps %llu, heavy rows kept %zu of %llu seen, rows in the sum %llu\n",
         (unsigned long long)rop.blocks, rop.nh,
         (unsigned long long)rop.heavy_seen, (unsigned long long)rop.nsum);
  ew__rop_free(&rop);
  ew__oja_free(&oja);
  free(mean);
  free(C);
  free(M2);
  free(w);
  free(a);
  free(Z);
  free(v);
  free(Cv);
  return o;
}

static void report(const char *name, outcome_t o) {
  printf("# %-38s new 1-<v,v1>^2 = %.2e (certificate %.2e, bound %.2e)   oja %.2e\n", name,
         o.err_new, o.cert_new, o.bound, o.err_oja);
  /* the certificate's bound always covers the error, so a wrong estimate is never certified */
  CHECK(o.err_new <= o.bound * (1 + 1e-9) + 1e-12, "%s: error %.2e above the certified bound %.2e",
        name, o.err_new, o.bound);
  if (o.err_new > 0.1)
    CHECK(o.bound >= 0.1, "%s: wrong (%.2e) but certified to %.2e", name, o.err_new, o.bound);
}

/* rows = G diag(√λ) Qᵀ with Q a product of 3 Householder reflections (Q's column 0 = v₁) */
static float *spiked(size_t n, size_t d, double r, uint64_t seed, double *q0) {
  ew__rng_t g;
  ew__rng_seed(&g, seed);
  double *u = malloc(3 * d * sizeof(double));
  for (size_t i = 0; i < 3 * d; i++)
    u[i] = ew__rng_normal(&g);
  for (int h = 0; h < 3; h++)
    cblas_dscal((int)d, 1.0 / cblas_dnrm2((int)d, u + h * d, 1), u + h * d, 1);
  float *X = malloc(n * d * sizeof(float));
  double *z = malloc(d * sizeof(double));
  for (size_t row = 0; row < n; row++) {
    for (size_t t = 0; t < d; t++)
      z[t] = ew__rng_normal(&g) * (t == 0 ? sqrt(r) : 1.0);
    for (int h = 2; h >= 0; h--) /* z ← H_h z, applied so that Q = H_0 H_1 H_2 */
      cblas_daxpy((int)d, -2 * cblas_ddot((int)d, u + h * d, 1, z, 1), u + h * d, 1, z, 1);
    for (size_t t = 0; t < d; t++)
      X[row * d + t] = (float)z[t];
  }
  if (q0) { /* Q e_0 */
    memset(q0, 0, d * sizeof(double));
    q0[0] = 1;
    for (int h = 2; h >= 0; h--)
      cblas_daxpy((int)d, -2 * cblas_ddot((int)d, u + h * d, 1, q0, 1), u + h * d, 1, q0, 1);
  }
  free(u);
  free(z);
  return X;
}

static void spiked_random_and_adversarial_order(void) {
  size_t d = 256, n = 100000;
  double *q0 = malloc(d * sizeof(double));
  float *X = spiked(n, d, 10.0, 9, q0);
  outcome_t o = run(X, n, d, 11);
  report("spiked R=10, random order", o);
  CHECK(o.err_new <= 2e-3, "random order: %.2e", o.err_new);
  /* adversarial: rows sorted by |projection on another direction| (largest first) */
  double *key = malloc(n * sizeof(double));
  size_t *idx = malloc(n * sizeof(size_t));
  for (size_t r = 0; r < n; r++) {
    key[r] = fabs(X[r * d + 1]);
    idx[r] = r;
  }
  /* simple counting by buckets of the key (no qsort_r): 64 buckets, largest first */
  double mx = 0;
  for (size_t r = 0; r < n; r++)
    mx = fmax(mx, key[r]);
  float *Y = malloc(n * d * sizeof(float));
  size_t out = 0;
  for (int bkt = 63; bkt >= 0; bkt--)
    for (size_t r = 0; r < n; r++)
      if ((int)(key[r] / mx * 63.999) == bkt)
        memcpy(Y + (out++) * d, X + r * d, d * sizeof(float));
  o = run(Y, n, d, 11);
  report("spiked R=10, sorted adversarially", o);
  CHECK(o.err_new <= 2e-3, "sorted order: %.2e", o.err_new);
  free(q0);
  free(X);
  free(Y);
  free(key);
  free(idx);
}

static void small_gap(void) {
  size_t d = 64, n = 100000;
  float *X = spiked(n, d, 1.05, 21, NULL);
  report("spiked R=1.05, random order", run(X, n, d, 12));
  free(X);
}

static void heavy_rows_carry_the_top_direction(void) {
  size_t d = 256, n = 20000;
  float *X = spiked(n, d, 1.0, 31, NULL); /* isotropic light rows */
  ew__rng_t g;
  ew__rng_seed(&g, 32);
  double *dir = malloc(d * sizeof(double));
  for (size_t t = 0; t < d; t++)
    dir[t] = ew__rng_normal(&g);
  cblas_dscal((int)d, 1.0 / cblas_dnrm2((int)d, dir, 1), dir, 1);
  for (size_t h = 0; h < 40; h++) { /* 40 rows spread through the stream, along dir, norm 60√d */
    size_t r = (h * 7919 + 13) % n;
    double s = (h % 2 ? 1 : -1) * 60.0 * sqrt((double)d);
    for (size_t t = 0; t < d; t++)
      X[r * d + t] = (float)(s * dir[t]);
  }
  outcome_t o = run(X, n, d, 13);
  report("40 heavy rows carry the top direction", o);
  CHECK(o.err_new <= 1e-2, "heavy rows: %.2e", o.err_new);
  free(X);
  free(dir);
}

static void direction_rotates_halfway(void) {
  size_t d = 128, n = 60000;
  float *A = spiked(n / 2, d, 10.0, 41, NULL), *B = spiked(n / 2, d, 10.0, 42, NULL);
  float *X = malloc(n * d * sizeof(float));
  memcpy(X, A, n / 2 * d * sizeof(float));
  for (size_t i = 0; i < n / 2 * d; i++) /* the second half: another top direction, 3× the scale */
    X[n / 2 * d + i] = (float)(sqrt(3.0) * B[i]);
  outcome_t o = run(X, n, d, 14);
  report("top direction rotates halfway", o);
  CHECK(o.err_new <= 1e-2, "rotation: %.2e", o.err_new);
  free(A);
  free(B);
  free(X);
}

static int read_gz(const char *path, unsigned char *buf, size_t len, size_t skip) {
  gzFile f = gzopen(path, "rb");
  if (!f)
    return -1;
  unsigned char hdr[16];
  int ok = gzread(f, hdr, (unsigned)skip) == (int)skip;
  size_t got = 0;
  while (ok && got < len) {
    int r = gzread(f, buf + got, (unsigned)(len - got < (1u << 30) ? len - got : (1u << 30)));
    if (r <= 0)
      break;
    got += (size_t)r;
  }
  gzclose(f);
  return ok && got == len ? 0 : -1;
}

static void fashion_mnist_file_order_and_sorted_by_class(void) {
  size_t n = 60000, d = 784;
  unsigned char *img = malloc(n * d), *lab = malloc(n);
  int rc = read_gz(FMNIST "train-images-idx3-ubyte.gz", img, n * d, 16);
  rc |= read_gz(FMNIST "train-labels-idx1-ubyte.gz", lab, n, 8);
  CHECK(rc == 0, "read %s (Debian package dataset-fashion-mnist; scripts/setup.sh installs it)",
        FMNIST);
  if (rc) {
    free(img);
    free(lab);
    return;
  }
  float *X = malloc(n * d * sizeof(float));
  for (size_t i = 0; i < n * d; i++)
    X[i] = (float)img[i] / 255.0f;
  outcome_t o = run(X, n, d, 15);
  report("Fashion-MNIST, file order", o);
  CHECK(o.err_new <= 1e-2, "file order: %.2e", o.err_new);
  float *Y = malloc(n * d * sizeof(float));
  size_t out = 0;
  for (int c = 0; c < 10; c++)
    for (size_t r = 0; r < n; r++)
      if (lab[r] == c)
        memcpy(Y + (out++) * d, X + r * d, d * sizeof(float));
  o = run(Y, n, d, 15);
  report("Fashion-MNIST, sorted by class", o);
  CHECK(o.err_new <= 0.1, "sorted by class: %.2e", o.err_new);
  free(img);
  free(lab);
  free(X);
  free(Y);
}

/* ---- live_topk's certificate (live/cert.c) on a matrix with a known spectrum ---- */

/* A stream whose centred covariance is exactly Q diag(lam) Qᵀ: rows ±√(d λ_j) q_j (2d rows, mean
 * 0), Q a product of 3 Householder reflections; q gets Q's columns (q + j d = q_j). */
static ew_stream_t *known_spectrum(size_t d, const double *lam, uint64_t seed, double *q) {
  ew__rng_t g;
  ew__rng_seed(&g, seed);
  double *u = malloc(3 * d * sizeof(double));
  for (size_t i = 0; i < 3 * d; i++)
    u[i] = ew__rng_normal(&g);
  for (int h = 0; h < 3; h++)
    cblas_dscal((int)d, 1.0 / cblas_dnrm2((int)d, u + h * d, 1), u + h * d, 1);
  memset(q, 0, d * d * sizeof(double));
  for (size_t j = 0; j < d; j++) {
    double *qj = q + j * d;
    qj[j] = 1;
    for (int h = 2; h >= 0; h--)
      cblas_daxpy((int)d, -2 * cblas_ddot((int)d, u + h * d, 1, qj, 1), u + h * d, 1, qj, 1);
  }
  double *X = malloc(2 * d * d * sizeof(double));
  for (size_t j = 0; j < d; j++)
    for (size_t t = 0; t < d; t++) {
      X[(2 * j) * d + t] = sqrt((double)d * lam[j]) * q[j * d + t];
      X[(2 * j + 1) * d + t] = -X[(2 * j) * d + t];
    }
  ew_config_t c;
  ew_config_default(&c, d);
  c.window = 0;
  c.live_k = 0;
  ew_stream_t *s = NULL;
  CHECK(ew_stream_create(&c, &s) == 0, "create");
  CHECK(ew_stream_ingest(s, X, EW_F64, 2 * d, d) == 0, "ingest");
  free(u);
  free(X);
  return s;
}

/* The certificate of the k vectors V (rows) against the stream's covariance. */
static double certify(ew_stream_t *s, const double *V, size_t k, double *theta, ew__live_cert_t *in) {
  ew__view_t v;
  double e = NAN;
  CHECK(ew__view_open(&v, s, EW_SOURCE_ALL, 1, 0, 0, ws()) == 0, "view");
  CHECK(ew__live_certify(&v, V, k, 77, theta, &e, in) == 0, "certify");
  ew__view_close(&v);
  return e;
}

static void certificate_sees_the_top(void) {
  size_t d = 256;
  double *lam = malloc(d * sizeof(double)), *q = malloc(d * d * sizeof(double));
  double *V = malloc(2 * d * sizeof(double)), th[2];
  ew__live_cert_t in;
  /* the moved direction of issue 23: λ₁ = 8.19 on a new direction, the estimate on the old one
   * (θ = 4.78), the rest a power law below 1 */
  lam[0] = 8.19;
  lam[1] = 4.78;
  for (size_t j = 2; j < d; j++)
    lam[j] = 1.0 / sqrt((double)j - 1.0);
  ew_stream_t *s = known_spectrum(d, lam, 51, q);
  memcpy(V, q + d, d * sizeof(double)); /* v = q₂: an exact eigenvector, of the wrong eigenvalue */
  double e = certify(s, V, 1, th, &in);
  double truth = (lam[0] - th[0]) / lam[0];
  printf("# v = q2: theta %.4f, residual part %.2e, top part %.3e, certificate %.3e, true relative "
         "error %.3e, %zu operator columns\n", th[0], in.residual, in.top, e, truth, in.applied);
  CHECK(fabs(th[0] - lam[1]) <= 1e-12 * lam[0], "theta %.15g", th[0]);
  CHECK(in.residual <= 1e-12, "q2 is an eigenvector: residual part %.2e", in.residual);
  CHECK(e >= truth, "v = q2: certificate %.3e below the true error %.3e", e, truth);
  CHECK(e * th[0] - (lam[0] - lam[1]) <= 1e-6 * lam[0],
        "the Lanczos steps find lambda_1 here (to their residual): e theta = %.15g, "
        "lambda_1 - theta = %.15g", e * th[0], lam[0] - lam[1]);
  /* the right vector: certified to rounding (the certificate does not cry wolf) */
  memcpy(V, q, d * sizeof(double));
  e = certify(s, V, 1, th, &in);
  printf("# v = q1: certificate %.2e\n", e);
  CHECK(e <= 1e-12, "v = q1: certificate %.2e", e);
  /* a mix: cos q₁ + sin q₂ with sin² = 0.3; the certificate covers the residual and λ₁ − θ */
  for (size_t t = 0; t < d; t++)
    V[t] = sqrt(0.7) * q[t] + sqrt(0.3) * q[d + t];
  e = certify(s, V, 1, th, &in);
  truth = (lam[0] - th[0]) / th[0];
  printf("# v = cos q1 + sin q2 (sin^2 = 0.3): residual part %.3e, certificate %.3e, "
         "(lambda_1 - theta)/theta %.3e, sin^2 bound e theta/(l1 - l2) = %.3f\n", in.residual, e,
         truth, e * th[0] / (lam[0] - lam[1]));
  CHECK(e >= truth && e >= in.residual, "mix: certificate %.3e, truth %.3e", e, truth);
  CHECK(e * th[0] / (lam[0] - lam[1]) >= 0.3, "the sin^2 bound %.3f misses 0.3",
        e * th[0] / (lam[0] - lam[1]));
  /* k = 2 with the second vector wrong (q₃ where q₂ belongs): seen through λ₂ */
  memcpy(V, q, d * sizeof(double));
  memcpy(V + d, q + 2 * d, d * sizeof(double));
  e = certify(s, V, 2, th, &in);
  truth = (lam[1] - th[1]) / th[1];
  printf("# k = 2, v2 = q3: certificate %.3e, (lambda_2 - theta_2)/theta_2 %.3e\n", e, truth);
  CHECK(e >= truth, "k = 2: certificate %.3e below %.3e", e, truth);
  ew_stream_free(s);
  free(lam);
  free(q);
  free(V);
}

/* A top eigenvalue hidden above an exact eigenvector: v = q₂ (residual 0), λ₁ = λ₂(1 + ε), at
 * d = 1024 with the rest of the spectrum either a power law below λ₂/2 or d eigenvalues filling
 * [0, 0.95 λ₂] evenly (no gap under the top: the worst a few Lanczos steps face). The certificate
 * must be at least the true relative error (λ₁ − θ)/λ₁ in all 10 seeds of the random columns for
 * ε ≥ 0.02 with the gap and for ε ≥ 0.2 without (docs/METRICS.md quotes both). */
static void certificate_hidden_top_sweep(void) {
  size_t d = 1024;
  double *lam = malloc(d * sizeof(double)), *q = malloc(d * d * sizeof(double)), th[1];
  const double eps[] = {0.02, 0.05, 0.1, 0.2, 0.5};
  for (int dense = 0; dense <= 1; dense++)
    for (int e = 0; e < 5; e++) {
      lam[0] = 1.0 + eps[e];
      lam[1] = 1.0;
      for (size_t j = 2; j < d; j++)
        lam[j] = dense ? 0.95 * (1.0 - (double)(j - 2) / (double)d) : 0.5 / sqrt((double)j - 1.0);
      ew_stream_t *s = known_spectrum(d, lam, 100 + (uint64_t)e + 10 * (uint64_t)dense, q);
      int caught = 0;
      double lo = INFINITY, truth = eps[e] / (1.0 + eps[e]);
      for (uint64_t seed = 0; seed < 10; seed++) {
        ew__view_t v;
        double c = NAN;
        CHECK(ew__view_open(&v, s, EW_SOURCE_ALL, 1, 0, 0, ws()) == 0, "view");
        CHECK(ew__live_certify(&v, q + d, 1, 1000 + seed, th, &c, NULL) == 0, "certify");
        ew__view_close(&v);
        caught += c >= truth;
        lo = fmin(lo, c / truth);
      }
      printf("# %s, eps %.2f: caught in %d of 10 seeds (least certificate / true error %.2f)\n",
             dense ? "dense rest in [0, 0.95 l2]" : "power-law rest below l2/2", eps[e], caught, lo);
      if (!dense || eps[e] >= 0.2)
        CHECK(caught == 10, "eps %.2f (%s): caught in %d of 10", eps[e], dense ? "dense" : "gap",
              caught);
      ew_stream_free(s);
    }
  free(lam);
  free(q);
}

int main(void) {
  TAP_RUN(spiked_random_and_adversarial_order);
  TAP_RUN(small_gap);
  TAP_RUN(heavy_rows_carry_the_top_direction);
  TAP_RUN(direction_rotates_halfway);
  TAP_RUN(fashion_mnist_file_order_and_sorted_by_class);
  TAP_RUN(certificate_sees_the_top);
  TAP_RUN(certificate_hidden_top_sweep);
  TAP_DONE();
}
