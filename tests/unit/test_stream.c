/* test_stream.c — a stream through its public API: configuration checks, ingest refusals that
 * leave the state untouched, every query error (code and message), degenerate states, reset,
 * the spectrum cache and max_lag, and the memory figure against the model in lib/eigenwatch.h (ew_stream_memory). */
#include "eigenwatch.h"
#include "tap.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

static ew_stream_t *make(size_t d, size_t window) {
  ew_config_t c;
  ew_config_default(&c, d);
  c.window = window;
  ew_stream_t *s = NULL;
  int rc = ew_stream_create(&c, &s);
  CHECK(rc == 0 && s, "create d=%zu", d);
  return s;
}

static void fill(ew_stream_t *s, size_t d, size_t n, unsigned seed) {
  float *x = malloc(n * d * sizeof(float));
  srand(seed);
  for (size_t i = 0; i < n * d; i++)
    x[i] = (float)rand() / (float)RAND_MAX - 0.5f + (float)(i % d);
  CHECK(ew_stream_ingest(s, x, EW_F32, n, d) == 0, "fill");
  free(x);
}

/* runs one query; returns its code and leaves the result in *r (caller clears) */
static int q(ew_stream_t *s, const char *metric, int center, ew_source_t src, const char *key,
             double val, ew_result_t *r) {
  ew_param_t p = {key, val};
  ew_query_t qq = {.metric = metric, .params = key ? &p : NULL, .nparams = key ? 1 : 0,
                   .center = center, .source = src, .max_lag = 0};
  return ew_stream_query(s, &qq, r);
}

#define EXPECT_ERR(s, metric, center, src, key, val, want_, needle)                                \
  do {                                                                                            \
    ew_result_t r_;                                                                               \
    int rc_ = q(s, metric, center, src, key, val, &r_);                                           \
    CHECK(rc_ == (want_) && r_.code == (want_), "%s: got %s want %s", metric, ew_err_name(rc_),   \
          ew_err_name(want_));                                                                    \
    CHECK(strstr(r_.message, needle) != NULL, "%s: message '%s' lacks '%s'", metric, r_.message,  \
          needle);                                                                                \
    ew_result_clear(&r_);                                                                         \
  } while (0)

static void config_is_checked_with_a_reason(void) {
  ew_config_t c;
  char msg[128];
  ew_config_default(&c, 0);
  CHECK(ew_config_check(&c, msg, sizeof msg) == EW_EBADPARAM && strstr(msg, "dim"), "dim 0: %s", msg);
  ew_config_default(&c, 10);
  CHECK(c.window == EW_DEFAULT_WINDOW && c.live_k == 1 && c.decay_half_life == 0, "defaults");
  c.decay_half_life = 0.5;
  CHECK(ew_config_check(&c, msg, sizeof msg) == EW_EBADPARAM && strstr(msg, "half-life"), "%s", msg);
  c.decay_half_life = NAN;
  CHECK(ew_config_check(&c, msg, sizeof msg) == EW_EBADPARAM, "NaN half-life");
  ew_config_default(&c, 10);
  c.normalize = (ew_normalize_t)5;
  CHECK(ew_config_check(&c, msg, sizeof msg) == EW_EBADPARAM && strstr(msg, "normalize"), "%s", msg);
  ew_config_default(&c, 4);
  c.live_k = 5;
  CHECK(ew_config_check(&c, msg, sizeof msg) == EW_EBADPARAM && strstr(msg, "topk"), "%s", msg);
  ew_stream_t *s = NULL;
  CHECK(ew_stream_create(&c, &s) == EW_EBADPARAM && s == NULL, "create refuses");
  ew_config_default(&c, 2000);
  CHECK(c.window == 0, "no default window above d=1024");
  ew_config_t a, b;
  ew_config_default(&a, 8);
  ew_config_default(&b, 8);
  CHECK(ew_config_equal(&a, &b), "equal");
  b.window = 5;
  CHECK(!ew_config_equal(&a, &b), "different window");
}

static void ingest_refusals_leave_state_unchanged(void) {
  size_t d = 6;
  ew_stream_t *s = make(d, 32);
  fill(s, d, 40, 1);
  ew_result_t before, after;
  CHECK(q(s, "spectrum", -1, EW_SOURCE_DEFAULT, NULL, 0, &before) == 0, "spectrum");
  float x[12] = {0};
  CHECK(ew_stream_ingest(s, x, EW_F32, 2, d + 1) == EW_EDIM, "dim");
  CHECK(ew_stream_ingest(s, x, (ew_dtype_t)9, 2, d) == EW_EDTYPE, "dtype");
  x[11] = NAN;
  CHECK(ew_stream_ingest(s, x, EW_F32, 2, d) == EW_ENONFINITE, "nan");
  CHECK(ew_stream_ingest(s, x, EW_F32, 0, d) == 0, "n=0 is a no-op");
  CHECK(ew_stream_count(s) == 40 && ew_stream_window_count(s) == 32, "counts");
  CHECK(q(s, "spectrum", -1, EW_SOURCE_DEFAULT, NULL, 0, &after) == 0, "spectrum after");
  CHECK(after.len == before.len && memcmp(after.list, before.list, d * sizeof(double)) == 0,
        "spectrum changed");
  ew_result_clear(&before);
  ew_result_clear(&after);
  ew_stream_free(s);
}

static void query_errors_name_the_problem(void) {
  size_t d = 5;
  ew_stream_t *s = make(d, 16), *nowin = make(d, 0);
  fill(s, d, 30, 2);
  fill(nowin, d, 30, 2);
  EXPECT_ERR(s, "entropyy", -1, EW_SOURCE_DEFAULT, NULL, 0, EW_EUNKMETRIC, "entropyy");
  EXPECT_ERR(s, "renyi", -1, EW_SOURCE_DEFAULT, "beta", 2, EW_EBADPARAM, "alpha");
  EXPECT_ERR(s, "renyi", -1, EW_SOURCE_DEFAULT, "alpha", -1, EW_EBADPARAM, "alpha");
  EXPECT_ERR(s, "renyi", -1, EW_SOURCE_DEFAULT, "alpha", NAN, EW_EBADPARAM, "alpha");
  EXPECT_ERR(s, "topk", -1, EW_SOURCE_DEFAULT, "k", 2.5, EW_EBADPARAM, "integer");
  EXPECT_ERR(s, "topk", -1, EW_SOURCE_DEFAULT, "k", 0, EW_EBADPARAM, "k");
  EXPECT_ERR(s, "entropy", -1, EW_SOURCE_DEFAULT, "k", 3, EW_EBADPARAM, "takes no parameters");
  EXPECT_ERR(s, "rankme", -1, EW_SOURCE_WINDOW_CN, NULL, 0, EW_EBADPARAM, "source");
  EXPECT_ERR(s, "l2_std", -1, EW_SOURCE_ALL, NULL, 0, EW_EBADPARAM, "window");
  EXPECT_ERR(s, "diff_erank", 1, EW_SOURCE_DEFAULT, NULL, 0, EW_EBADPARAM, "center");
  EXPECT_ERR(s, "entropy", -1, (ew_source_t)7, NULL, 0, EW_EBADPARAM, "source");
  EXPECT_ERR(nowin, "entropy", -1, EW_SOURCE_WINDOW, NULL, 0, EW_ENOWINDOW, "window");
  EXPECT_ERR(nowin, "diff_erank", -1, EW_SOURCE_DEFAULT, NULL, 0, EW_ENOWINDOW, "window");
  ew_stream_free(s);
  ew_stream_free(nowin);
}

static void degenerate_states_answer_errors_not_numbers(void) {
  size_t d = 3;
  ew_stream_t *s = make(d, 8);
  ew_result_t r;
  EXPECT_ERR(s, "entropy", -1, EW_SOURCE_DEFAULT, NULL, 0, EW_EDEGENERATE, "no rows");
  float one[3] = {1, 2, 3};
  CHECK(ew_stream_ingest(s, one, EW_F32, 1, d) == 0, "one row");
  EXPECT_ERR(s, "entropy", -1, EW_SOURCE_DEFAULT, NULL, 0, EW_EDEGENERATE, "at least 2 rows");
  CHECK(q(s, "entropy", 0, EW_SOURCE_DEFAULT, NULL, 0, &r) == 0 && r.scalar == 0.0,
        "one row uncentred: rank 1, entropy 0 (%g)", r.scalar);
  ew_result_clear(&r);
  CHECK(ew_stream_ingest(s, one, EW_F32, 1, d) == 0, "same row again");
  EXPECT_ERR(s, "entropy", -1, EW_SOURCE_DEFAULT, NULL, 0, EW_EDEGENERATE, "zero trace");
  EXPECT_ERR(s, "participation_ratio", -1, EW_SOURCE_DEFAULT, NULL, 0, EW_EDEGENERATE, "zero trace");
  EXPECT_ERR(s, "spectral_gap", -1, EW_SOURCE_DEFAULT, NULL, 0, EW_EDEGENERATE, "second eigenvalue");
  CHECK(q(s, "trace", -1, EW_SOURCE_DEFAULT, NULL, 0, &r) == 0 && r.scalar == 0.0, "trace 0 is a fact");
  ew_result_clear(&r);
  ew_stream_reset(s);
  CHECK(ew_stream_count(s) == 0 && ew_stream_window_count(s) == 0, "reset");
  EXPECT_ERR(s, "trace", -1, EW_SOURCE_DEFAULT, NULL, 0, EW_EDEGENERATE, "no rows");
  ew_stream_free(s);

  ew_stream_t *one_d = make(1, 8);
  fill(one_d, 1, 10, 3);
  CHECK(q(one_d, "entropy", -1, EW_SOURCE_DEFAULT, NULL, 0, &r) == 0 && r.scalar == 0.0, "d=1 H=0");
  ew_result_clear(&r);
  EXPECT_ERR(one_d, "entropy_normalized", -1, EW_SOURCE_DEFAULT, NULL, 0, EW_EDEGENERATE, "ln d");
  EXPECT_ERR(one_d, "spectral_gap", -1, EW_SOURCE_DEFAULT, NULL, 0, EW_EDEGENERATE, "d = 1");
  ew_stream_free(one_d);
}

static void cache_answers_within_max_lag_and_says_as_of(void) {
  size_t d = 8;
  ew_stream_t *s = make(d, 0);
  fill(s, d, 100, 4);
  ew_result_t r;
  ew_query_t qq = {.metric = "entropy", .center = -1, .source = EW_SOURCE_DEFAULT, .max_lag = 0};
  CHECK(ew_stream_query(s, &qq, &r) == 0 && r.as_of == 100, "as_of %llu", (unsigned long long)r.as_of);
  double h100 = r.scalar;
  ew_result_clear(&r);
  fill(s, d, 10, 5);
  qq.max_lag = 50;
  CHECK(ew_stream_query(s, &qq, &r) == 0 && r.as_of == 100 && r.scalar == h100, "cached answer");
  ew_result_clear(&r);
  qq.max_lag = 5;
  CHECK(ew_stream_query(s, &qq, &r) == 0 && r.as_of == 110, "lag exceeded: fresh");
  ew_result_clear(&r);
  ew_stream_free(s);
}

static void memory_is_close_to_design_budget(void) {
  size_t d = 1024, W = 4096;
  ew_stream_t *s = make(d, W), *bare = make(d, 0);
  double exact = 8.0 * d * d, with_window = exact + 8.0 * d * d + 4.0 * W * d;
  size_t m = ew_stream_memory(bare), mw = ew_stream_memory(s);
  /* fixed overhead: the live-estimate shuffle buffer (256 rows f32) and a few d-vectors */
  double fixed = 256.0 * 4 * d + 64.0 * d;
  CHECK(m <= 1.10 * exact + fixed && m >= exact, "exact stream %zu B vs 8d^2 = %.0f", m, exact);
  CHECK(mw <= 1.10 * with_window + fixed && mw >= with_window, "window stream %zu B vs %.0f", mw,
        with_window);
  ew_stream_free(s);
  ew_stream_free(bare);
}

static void live_vectors_are_unit_and_appear_after_the_shuffle_buffer(void) {
  size_t d = 4;
  ew_stream_t *s = make(d, 0);
  double v[4];
  CHECK(ew_stream_live_vectors(s, v, 1) == 0, "none before rows");
  fill(s, d, 1000, 6);
  CHECK(ew_stream_live_vectors(s, v, 1) == 1, "one vector");
  double n2 = v[0] * v[0] + v[1] * v[1] + v[2] * v[2] + v[3] * v[3];
  CHECK(fabs(n2 - 1) <= 1e-12, "unit norm %.17g", n2);
  ew_stream_free(s);
}

typedef struct {
  const ew_stream_t *s;
  const float *x;
  size_t n, d;
  ew_batch_t *b;
  int rc;
} prep_arg_t;

static void *prep_thread(void *arg) {
  prep_arg_t *a = arg;
  a->rc = ew_batch_prepare(a->s, a->x, EW_F32, a->n, a->d, &a->b);
  return NULL;
}

static void batches_prepared_on_other_threads_apply_like_ingest(void) {
  size_t d = 12, n = 100;
  ew_config_t c;
  ew_config_default(&c, d);
  c.window = 64;
  c.normalize = EW_NORMALIZE_L2;
  ew_stream_t *a, *b;
  CHECK(ew_stream_create(&c, &a) == 0 && ew_stream_create(&c, &b) == 0, "create");
  float *x = malloc(4 * n * d * sizeof(float));
  for (size_t i = 0; i < 4 * n * d; i++)
    x[i] = (float)((i * 2654435761u) % 1000) / 100.0f + 5.0f;
  prep_arg_t args[4];
  pthread_t th[4];
  for (int k = 0; k < 4; k++) { /* four batches prepared concurrently for one stream */
    args[k] = (prep_arg_t){.s = b, .x = x + (size_t)k * n * d, .n = n, .d = d};
    pthread_create(&th[k], NULL, prep_thread, &args[k]);
  }
  for (int k = 0; k < 4; k++)
    pthread_join(th[k], NULL);
  for (int k = 0; k < 4; k++) {
    CHECK(args[k].rc == 0 && ew_batch_rows(args[k].b) == n, "prepare %d", k);
    CHECK(ew_stream_apply(b, args[k].b) == 0, "apply %d", k);
    ew_batch_free(args[k].b);
    CHECK(ew_stream_ingest(a, x + (size_t)k * n * d, EW_F32, n, d) == 0, "ingest %d", k);
  }
  double *A1 = malloc(d * d * sizeof(double)), *A2 = malloc(d * d * sizeof(double));
  CHECK(ew_stream_matrix(a, EW_SOURCE_ALL, 1, NULL, NULL, A1) == 0 &&
            ew_stream_matrix(b, EW_SOURCE_ALL, 1, NULL, NULL, A2) == 0, "matrices");
  CHECK(memcmp(A1, A2, d * d * sizeof(double)) == 0, "prepare+apply differs from ingest");
  CHECK(ew_stream_matrix(a, EW_SOURCE_WINDOW, 1, NULL, NULL, A1) == 0 &&
            ew_stream_matrix(b, EW_SOURCE_WINDOW, 1, NULL, NULL, A2) == 0 &&
            memcmp(A1, A2, d * d * sizeof(double)) == 0, "windows differ");
  CHECK(ew_stream_count(b) == 4 * n, "count");
  /* refusals: nothing prepared, nothing changed */
  ew_batch_t *bad = (ew_batch_t *)1;
  CHECK(ew_batch_prepare(b, x, EW_F32, 0, d, &bad) == EW_EBADPARAM && bad == NULL, "n = 0");
  CHECK(ew_batch_prepare(b, x, EW_F32, n, d + 1, &bad) == EW_EDIM, "dim");
  x[5] = NAN;
  CHECK(ew_batch_prepare(b, x, EW_F32, n, d, &bad) == EW_ENONFINITE && bad == NULL, "nan");
  x[5] = 1;
  ew_config_t other = c;
  other.normalize = EW_NORMALIZE_NONE;
  ew_stream_t *o;
  CHECK(ew_stream_create(&other, &o) == 0, "other");
  CHECK(ew_batch_prepare(o, x, EW_F32, n, d, &bad) == 0, "prepare for other");
  CHECK(ew_stream_apply(b, bad) == EW_EBADPARAM && ew_stream_count(b) == 4 * n,
        "a batch for a differently configured stream is refused");
  ew_batch_free(bad);
  ew_stream_free(o);
  /* rows of the same width prepared for a stream of another kind, or another paired layout,
   * are refused: they would be read as another accumulator's statistics */
  ew_config_t pm, pl, pr;
  ew_config_default(&pm, 8);
  ew_config_default(&pl, 1);
  ew_config_default(&pr, 1);
  CHECK(ew_config_dims(&pl, 3, 5, NULL, 0) == 0 && ew_config_dims(&pr, 4, 4, NULL, 0) == 0,
        "dims");
  pr.features = EW_FEATURES_RFF, pr.sigma = 1, pr.rff_dim = 8;
  ew_stream_t *sm, *sl, *sr;
  CHECK(ew_stream_create(&pm, &sm) == 0 && ew_stream_create(&pl, &sl) == 0 &&
            ew_stream_create(&pr, &sr) == 0, "matrix, linear and rff streams of d 8");
  ew_stream_t *from[] = {sm, sl, sr};
  for (int i = 0; i < 3; i++)
    for (int k = 0; k < 3; k++) {
      ew_batch_t *bt = NULL;
      CHECK(ew_batch_prepare(from[i], x, EW_F32, 16, 8, &bt) == 0, "prepare %d", i);
      int rc = ew_stream_apply(from[k], bt);
      CHECK(i == k ? rc == 0 : rc == EW_EBADPARAM, "prepared for %d, applied to %d: %d", i, k, rc);
      ew_batch_free(bt);
    }
  CHECK(ew_stream_count(sm) == 16 && ew_stream_count(sl) == 16 && ew_stream_count(sr) == 16,
        "only the stream's own batch counts");
  ew_stream_free(sm);
  ew_stream_free(sl);
  ew_stream_free(sr);
  ew_stream_free(a);
  ew_stream_free(b);
  free(A1);
  free(A2);
  free(x);
}

/* ew_batch_check answers what ew_batch_prepare answers, for every dtype and every refusal. */
static void check_agrees_with_prepare(void) {
  size_t d = 8, n = 4;
  ew_stream_t *s = make(d, 16);
  unsigned char buf[4 * 8 * 8];
  int cases = 0;
  for (int t = 0; t < 4; t++) {
    ew_dtype_t dt = (ew_dtype_t[]){EW_F32, EW_F64, EW_F16, EW_BF16}[t];
    size_t esz = ew_dtype_size(dt);
    for (int k = 0; k < 9; k++) {
      memset(buf, 0, sizeof buf);
      for (size_t i = 0; i < n * d; i++) { /* small ordinary values */
        if (dt == EW_F32) { float v = 0.25f * (float)(i % 7) - 0.5f; memcpy(buf + 4 * i, &v, 4); }
        if (dt == EW_F64) { double v = 0.25 * (double)(i % 7) - 0.5; memcpy(buf + 8 * i, &v, 8); }
        if (dt == EW_F16) { uint16_t v = (uint16_t)(0x3000 + i); memcpy(buf + 2 * i, &v, 2); }
        if (dt == EW_BF16) { uint16_t v = (uint16_t)(0x3e00 + i); memcpy(buf + 2 * i, &v, 2); }
      }
      size_t at = 3 + (size_t)k;
      if (k == 1 || k == 2) { /* NaN, -Inf */
        if (dt == EW_F32) { float v = k == 1 ? NAN : -INFINITY; memcpy(buf + 4 * at, &v, 4); }
        if (dt == EW_F64) { double v = k == 1 ? NAN : -INFINITY; memcpy(buf + 8 * at, &v, 8); }
        if (dt == EW_F16) { uint16_t v = k == 1 ? 0x7e01 : 0xfc00; memcpy(buf + 2 * at, &v, 2); }
        if (dt == EW_BF16) { uint16_t v = k == 1 ? 0x7fc1 : 0xff80; memcpy(buf + 2 * at, &v, 2); }
      } else if (k == 3 && dt == EW_F64) { /* past FLT_MAX */
        double v = 1e39;
        memcpy(buf + 8 * at, &v, 8);
      } else if (k == 4) { /* all zeros: accepted */
        memset(buf, 0, sizeof buf);
      } else if (k == 5 && dt == EW_F64) { /* everything below 2^-100 */
        for (size_t i = 0; i < n * d; i++) { double v = (i % 3) * 1e-31; memcpy(buf + 8 * i, &v, 8); }
      } else if (k == 5 && dt == EW_F16) { /* the largest finite half and a subnormal */
        uint16_t v = 0x7bff, w = 0x0001;
        memcpy(buf + 2 * at, &v, 2), memcpy(buf + 2 * (at + 1), &w, 2);
      }
      size_t nn = k == 6 ? 0 : n, dd = k == 7 ? d + 1 : d;
      ew_dtype_t dtt = k == 8 ? (ew_dtype_t)99 : dt;
      ew_batch_t *b = NULL;
      int want = ew_batch_prepare(s, buf, dtt, nn, dd, &b);
      int got = ew_batch_check(s, buf, dtt, nn, dd);
      ew_batch_free(b);
      CHECK(got == want, "dtype %s case %d: check %s, prepare %s", ew_dtype_name(dt), k,
            ew_err_name(got), ew_err_name(want));
      cases += want != 0;
      (void)esz;
    }
  }
  CHECK(cases >= 4 * 5, "the battery holds refusals of every kind (%d)", cases);
  CHECK(ew_stream_count(s) == 0, "check and prepare change nothing");
  ew_stream_free(s);
}

/* A query's window_rows reads the last rows of the window: the same answers as a stream whose whole
 * window is those rows, for moment metrics, spectra (primal and dual routes) and window_cn; the
 * spectrum cache tells tails apart; the all-rows source ignores it. */
static void window_rows_reads_the_tail(void) {
  size_t d = 12;
  ew_stream_t *a = make(d, 64), *b = make(d, 20), *c = make(d, 9);
  float *x = malloc(100 * d * sizeof(float));
  srand(5);
  for (size_t i = 0; i < 100 * d; i++)
    x[i] = (float)rand() / (float)RAND_MAX - 0.5f + 0.1f * (float)(i % d);
  for (size_t r = 0; r < 100; r += 25)
    CHECK(ew_stream_ingest(a, x + r * d, EW_F32, 25, d) == 0 &&
              ew_stream_ingest(b, x + r * d, EW_F32, 25, d) == 0 &&
              ew_stream_ingest(c, x + r * d, EW_F32, 25, d) == 0, "ingest");
  const char *metrics[] = {"spectrum", "entropy", "trace", "participation_ratio", "anisotropy"};
  for (int k = 0; k < 3; k++) {
    ew_stream_t *ref = k == 1 ? c : b;
    uint64_t tail = k == 1 ? 9 : 20;
    ew_source_t src = k == 2 ? EW_SOURCE_WINDOW_CN : EW_SOURCE_WINDOW;
    for (size_t m = 0; m < sizeof metrics / sizeof *metrics; m++) {
      if (src == EW_SOURCE_WINDOW_CN && m >= 2)
        continue;
      ew_query_t q = {.metric = metrics[m], .center = -1, .source = src, .window_rows = tail};
      ew_query_t r = q;
      r.window_rows = 0;
      ew_result_t ra, rb;
      CHECK(ew_stream_query(a, &q, &ra) == 0 && ew_stream_query(ref, &r, &rb) == 0, "%s",
            metrics[m]);
      double worst = 0, scale = 1e-300;
      size_t n = ra.kind == EW_VALUE_LIST ? ra.len : 1;
      for (size_t i = 0; i < n; i++) {
        double va = ra.kind == EW_VALUE_LIST ? ra.list[i] : ra.scalar;
        double vb = rb.kind == EW_VALUE_LIST ? rb.list[i] : rb.scalar;
        worst = fmax(worst, fabs(va - vb));
        scale = fmax(scale, fabs(vb));
      }
      CHECK(worst <= 1e-9 * scale, "%s tail %llu (%s): differs by %.3g of %.3g", metrics[m],
            (unsigned long long)tail, ew_source_name(src), worst, scale);
      ew_result_clear(&ra);
      ew_result_clear(&rb);
    }
  }
  /* the cache keeps tails apart; more than the window holds is all of it; all ignores it */
  ew_query_t q = {.metric = "trace", .center = 1, .source = EW_SOURCE_WINDOW, .window_rows = 20};
  ew_result_t r1, r2, r3, r4, r5;
  CHECK(ew_stream_query(a, &q, &r1) == 0, "tail");
  q.window_rows = 0;
  CHECK(ew_stream_query(a, &q, &r2) == 0 && r1.scalar != r2.scalar, "whole window differs");
  q.window_rows = 1000;
  CHECK(ew_stream_query(a, &q, &r3) == 0 && r3.scalar == r2.scalar, "past the window = all");
  q.source = EW_SOURCE_ALL;
  CHECK(ew_stream_query(a, &q, &r4) == 0, "all");
  q.window_rows = 0;
  CHECK(ew_stream_query(a, &q, &r5) == 0 && r4.scalar == r5.scalar, "all ignores window_rows");
  free(x);
  ew_stream_free(a);
  ew_stream_free(b);
  ew_stream_free(c);
}

int main(void) {
  TAP_RUN(config_is_checked_with_a_reason);
  TAP_RUN(ingest_refusals_leave_state_unchanged);
  TAP_RUN(query_errors_name_the_problem);
  TAP_RUN(degenerate_states_answer_errors_not_numbers);
  TAP_RUN(cache_answers_within_max_lag_and_says_as_of);
  TAP_RUN(memory_is_close_to_design_budget);
  TAP_RUN(live_vectors_are_unit_and_appear_after_the_shuffle_buffer);
  TAP_RUN(batches_prepared_on_other_threads_apply_like_ingest);
  TAP_RUN(check_agrees_with_prepare);
  TAP_RUN(window_rows_reads_the_tail);
  TAP_DONE();
}
