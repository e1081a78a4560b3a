/* test_state.c — saved state (lib/state/): save → load is bit-identical for every stream shape
 * (window eager and lazy, live estimate, decay, l2, f32 and f64 batches, warm top-k vectors,
 * the Frequent Directions sketch with and without decay):
 * saving the loaded stream gives the same bytes, every metric answers exactly (==) as before,
 * and both streams stay identical under further ingest. Every corruption — empty, truncated at
 * any length, one flipped byte anywhere, wrong magic, wrong version — is EW_ESTATE with a
 * sentence and creates nothing; so is a state whose checksum is right but whose numbers no ingest
 * produces (absurd_numbers_are_refused). */
#include "eigenwatch.h"
#include "tap.h"
#include "membuf.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static buf_t save(const ew_stream_t *s) {
  buf_t b = {0};
  int rc = ew_stream_save(s, buf_write, &b);
  CHECK(rc == 0, "save rc %d", rc);
  CHECK(b.len == ew_stream_saved_bytes(s), "saved %zu bytes, predicted %zu", b.len,
        ew_stream_saved_bytes(s));
  return b;
}

static ew_stream_t *load(const unsigned char *p, size_t n, int *rc, char *msg, size_t cap) {
  buf_t b = {(unsigned char *)p, n, n, 0};
  ew_stream_t *s = NULL;
  *rc = ew_stream_load(&s, buf_read, &b, msg, cap);
  return s;
}

static void rows(float *x, size_t n, size_t d, uint64_t seed) {
  for (size_t i = 0; i < n * d; i++) {
    seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
    x[i] = (float)((double)(seed >> 11) * 0x1p-53 - 0.5) * (float)(1 + i % d) + 2.0f;
  }
}

/* Rows of rank 2 (plus an offset): the noise floor decides which eigenvalues are zero. */
static int collapsed;

static void ingest(ew_stream_t *s, size_t d, size_t n, uint64_t seed, int f64) {
  float *x = malloc(n * d * sizeof(float));
  rows(x, n, d, seed);
  if (collapsed)
    for (size_t r = 0; r < n; r++) {
      float a0 = x[r * d], a1 = x[r * d + 1];
      for (size_t j = 0; j < d; j++)
        x[r * d + j] = a0 * (float)(j % 3) - a1 * (float)(j % 5) + 1.0f;
    }
  int rc;
  if (f64) {
    double *y = malloc(n * d * sizeof(double));
    for (size_t i = 0; i < n * d; i++)
      y[i] = x[i] * 1.0000001;
    rc = ew_stream_ingest(s, y, EW_F64, n, d);
    free(y);
  } else {
    rc = ew_stream_ingest(s, x, EW_F32, n, d);
  }
  CHECK(rc == 0, "ingest rc %d", rc);
  free(x);
}

static int query(ew_stream_t *s, const char *metric, ew_source_t src, const char *key, double v,
                 ew_result_t *r) {
  ew_param_t p = {key, v};
  ew_query_t q = {.metric = metric, .params = key ? &p : NULL, .nparams = key ? 1 : 0,
                  .center = -1, .source = src, .max_lag = 0};
  return ew_stream_query(s, &q, r);
}

/* Every answer of a and b is bit for bit the same. */
static void same_answers(ew_stream_t *a, ew_stream_t *b, int window, const char *what) {
  static const char *scalars[] = {"entropy", "erank", "renyi", "participation_ratio", "rankme",
                                  "condition_number", "trace", "stable_rank"};
  for (size_t i = 0; i < sizeof scalars / sizeof scalars[0]; i++)
    for (int src = 0; src <= (window ? 1 : 0); src++) {
      ew_result_t ra, rb;
      int ca = query(a, scalars[i], (ew_source_t)src, NULL, 0, &ra);
      int cb = query(b, scalars[i], (ew_source_t)src, NULL, 0, &rb);
      CHECK(ca == cb && (ca != 0 || memcmp(&ra.scalar, &rb.scalar, sizeof ra.scalar) == 0),
            "%s: %s (source %d): %d %.17g vs %d %.17g", what, scalars[i], src, ca, ra.scalar, cb,
            rb.scalar);
      ew_result_clear(&ra);
      ew_result_clear(&rb);
    }
  ew_result_t ra, rb;
  int ca = query(a, "topk", EW_SOURCE_ALL, "vectors", 1, &ra);
  int cb = query(b, "topk", EW_SOURCE_ALL, "vectors", 1, &rb);
  CHECK(ca == 0 && cb == 0 && ra.len == rb.len &&
            memcmp(ra.list, rb.list, ra.len * sizeof(double)) == 0 &&
            memcmp(ra.vectors, rb.vectors, ra.len * ra.dim * sizeof(double)) == 0,
        "%s: topk with vectors differ", what);
  ew_result_clear(&ra);
  ew_result_clear(&rb);
  double va[3 * 64], vb[3 * 64];
  size_t ka = ew_stream_live_vectors(a, va, 3), kb = ew_stream_live_vectors(b, vb, 3);
  CHECK(ka == kb && memcmp(va, vb, ka * ew_stream_config(a)->dim * sizeof(double)) == 0,
        "%s: live vectors differ", what);
}

static void round_trip_is_bit_identical(void) {
  struct {
    const char *what;
    size_t d, window;
    ew_window_mode_t mode;
    double decay;
    size_t live_k;
    ew_normalize_t norm;
  } cases[] = {
      {"default shape, eager window", 24, 64, EW_WINDOW_EAGER, 0, 2, EW_NORMALIZE_NONE},
      {"lazy window", 24, 64, EW_WINDOW_LAZY, 0, 1, EW_NORMALIZE_NONE},
      {"no window, no live estimate", 17, 0, EW_WINDOW_AUTO, 0, 0, EW_NORMALIZE_NONE},
      {"decay and l2", 20, 32, EW_WINDOW_AUTO, 300, 1, EW_NORMALIZE_L2},
      {"empty", 8, 16, EW_WINDOW_AUTO, 0, 1, EW_NORMALIZE_NONE},
      {"collapsed rows (rank 2)", 24, 0, EW_WINDOW_AUTO, 0, 1, EW_NORMALIZE_NONE},
      {"sketch (Frequent Directions, many shrinks)", 24, 64, EW_WINDOW_EAGER, 0, 2,
       EW_NORMALIZE_NONE},
      {"sketch with decay and l2", 20, 0, EW_WINDOW_AUTO, 300, 1, EW_NORMALIZE_L2},
  };
  for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
    ew_config_t cfg;
    ew_config_default(&cfg, cases[c].d);
    cfg.window = cases[c].window;
    cfg.window_mode = cases[c].mode;
    cfg.decay_half_life = cases[c].decay;
    cfg.live_k = cases[c].live_k;
    cfg.normalize = cases[c].norm;
    if (strncmp(cases[c].what, "sketch", 6) == 0) { /* d above exact_max_dim: the fd kind */
      cfg.exact_max_dim = 8;
      cfg.sketch_rows = 4;
    }
    size_t d = cases[c].d;
    collapsed = strncmp(cases[c].what, "collapsed", 9) == 0;
    ew_stream_t *a;
    CHECK(ew_stream_create(&cfg, &a) == 0, "create");
    if (strcmp(cases[c].what, "empty") != 0) {
      for (int i = 0; i < 9; i++) /* uneven batches, both paths, the ring wraps */
        ingest(a, d, 7 + 13 * (size_t)i, 100 + (uint64_t)i, i % 3 == 2);
      same_answers(a, a, cases[c].window > 0, "warm-up"); /* fills caches and warm vectors */
    }
    buf_t b1 = save(a);
    int rc;
    char msg[200];
    ew_stream_t *b = load(b1.p, b1.len, &rc, msg, sizeof msg);
    CHECK(rc == 0 && b, "%s: load rc %d: %s", cases[c].what, rc, msg);
    if (!b) {
      ew_stream_free(a);
      free(b1.p);
      continue;
    }
    buf_t b2 = save(b);
    CHECK(b1.len == b2.len && memcmp(b1.p, b2.p, b1.len) == 0, "%s: saving the loaded stream "
          "gives other bytes (%zu vs %zu)", cases[c].what, b1.len, b2.len);
    CHECK(ew_stream_count(a) == ew_stream_count(b) &&
              ew_stream_window_count(a) == ew_stream_window_count(b),
          "%s: counts differ", cases[c].what);
    if (ew_stream_count(a) > 2)
      same_answers(a, b, cases[c].window > 0, cases[c].what);
    /* and they stay the same stream */
    ingest(a, d, 50, 999, 0);
    ingest(b, d, 50, 999, 0);
    buf_t b3 = save(a), b4 = save(b);
    CHECK(b3.len == b4.len && memcmp(b3.p, b4.p, b3.len) == 0, "%s: diverged after ingest",
          cases[c].what);
    same_answers(a, b, cases[c].window > 0, cases[c].what);
    if (collapsed) {
      ew_result_t r;
      CHECK(query(b, "spectrum", EW_SOURCE_ALL, NULL, 0, &r) == 0 && r.clamped == d - 2 &&
                r.list[1] > 0 && r.list[2] == 0,
            "collapsed rows: the loaded stream lost its noise floor (%zu clamped)", r.clamped);
      ew_result_clear(&r);
      CHECK(query(b, "condition_number", EW_SOURCE_ALL, NULL, 0, &r) == 0 && r.scalar < 1e3,
            "collapsed rows: condition number %g after load", r.scalar);
      ew_result_clear(&r);
    }
    collapsed = 0;
    /* a clone is the same stream, and independent of its original */
    ew_stream_t *cl = NULL;
    CHECK(ew_stream_clone(a, &cl) == 0 && cl, "%s: clone", cases[c].what);
    if (cl) {
      buf_t b5 = save(a), b6 = save(cl);
      CHECK(b5.len == b6.len && memcmp(b5.p, b6.p, b5.len) == 0, "%s: the clone saves other "
            "bytes", cases[c].what);
      if (ew_stream_count(a) > 2)
        same_answers(a, cl, cases[c].window > 0, cases[c].what);
      ingest(cl, d, 30, 4242, 0);
      buf_t b7 = save(a);
      CHECK(b7.len == b5.len && memcmp(b7.p, b5.p, b5.len) == 0 &&
                ew_stream_count(cl) == ew_stream_count(a) + 30,
            "%s: ingest into the clone reached the original", cases[c].what);
      free(b5.p);
      free(b6.p);
      free(b7.p);
      ew_stream_free(cl);
    }
    free(b1.p);
    free(b2.p);
    free(b3.p);
    free(b4.p);
    ew_stream_free(a);
    ew_stream_free(b);
  }
}

static void refused(const unsigned char *p, size_t n, const char *what, const char *needle) {
  int rc;
  char msg[200] = "";
  ew_stream_t *s = load(p, n, &rc, msg, sizeof msg);
  CHECK(rc == EW_ESTATE && s == NULL && msg[0] && (!needle || strstr(msg, needle)),
        "%s: rc %d, stream %p, message \"%s\"", what, rc, (void *)s, msg);
  ew_stream_free(s);
}

static void every_corruption_is_refused(void) {
  ew_config_t cfg;
  ew_config_default(&cfg, 12);
  cfg.window = 32;
  ew_stream_t *a;
  CHECK(ew_stream_create(&cfg, &a) == 0, "create");
  for (int i = 0; i < 4; i++)
    ingest(a, 12, 20, 7 + (uint64_t)i, 0);
  buf_t b = save(a);
  char what[64];
  refused(b.p, 0, "empty", "truncated");
  for (size_t n = 1; n < b.len; n += 1 + n / 8) {
    snprintf(what, sizeof what, "truncated to %zu of %zu bytes", n, b.len);
    refused(b.p, n, what, NULL);
  }
  unsigned char *c = malloc(b.len);
  for (size_t i = 0; i < b.len; i += 1 + i / 6) {
    memcpy(c, b.p, b.len);
    c[i] ^= 0x10;
    snprintf(what, sizeof what, "byte %zu of %zu flipped", i, b.len);
    refused(c, b.len, what, NULL);
  }
  memcpy(c, b.p, b.len);
  c[0] = 'X';
  refused(c, b.len, "wrong magic", "magic");
  memcpy(c, b.p, b.len);
  c[8] = 5; /* version 5 */
  refused(c, b.len, "wrong version", "version 5");
  memcpy(c, b.p, b.len);
  c[8] = 1; /* version 1 has a 64-byte CONF: this one's 80 bytes do not fit it */
  refused(c, b.len, "version 1 with version 2's configuration", "CONF");
  free(c);
  free(b.p);
  ew_stream_free(a);
}

static int full_disk(void *ctx, const void *p, size_t n) {
  (void)p;
  size_t *room = ctx;
  if (n > *room)
    return -1;
  *room -= n;
  return 0;
}

static void a_failing_writer_is_reported(void) {
  ew_config_t cfg;
  ew_config_default(&cfg, 4);
  ew_stream_t *a;
  CHECK(ew_stream_create(&cfg, &a) == 0, "create");
  ingest(a, 4, 10, 1, 0);
  size_t room = 100;
  int rc = ew_stream_save(a, full_disk, &room);
  CHECK(rc == EW_EIO, "a writer that fails after 100 bytes: rc %d", rc);
  CHECK(ew_stream_count(a) == 10, "the stream changed");
  ew_stream_free(a);
}

/* The checksum is the standard CRC-32C (its published check value), the same split at any point;
 * the configuration is read from a state's first bytes and refused on the same defects. */
static void checksum_and_config_peek(void) {
  CHECK(ew_crc32c(0, "123456789", 9) == 0xe3069283u, "crc32c check value: %08x",
        ew_crc32c(0, "123456789", 9));
  unsigned char big[1000];
  for (size_t i = 0; i < sizeof big; i++)
    big[i] = (unsigned char)(i * 131 + 7);
  uint32_t whole = ew_crc32c(0, big, sizeof big);
  for (size_t off = 0; off < 9; off++) /* against a bitwise reference, at every alignment */
    for (size_t len = 0; len < sizeof big - off; len += 1 + len / 3) {
      uint32_t c = 0xffffffffu;
      for (size_t i = 0; i < len; i++) {
        c ^= big[off + i];
        for (int k = 0; k < 8; k++)
          c = (c & 1) ? 0x82f63b78u ^ (c >> 1) : c >> 1;
      }
      CHECK(ew_crc32c(0, big + off, len) == ~c, "crc32c of %zu bytes at offset %zu", len, off);
    }
  for (size_t cut = 0; cut <= sizeof big; cut += 37)
    CHECK(ew_crc32c(ew_crc32c(0, big, cut), big + cut, sizeof big - cut) == whole,
          "crc32c split at %zu", cut);
  ew_config_t cfg, got;
  ew_config_default(&cfg, 24);
  cfg.normalize = EW_NORMALIZE_L2;
  cfg.decay_half_life = 500;
  ew_stream_t *a = NULL;
  CHECK(ew_stream_create(&cfg, &a) == 0, "create");
  ingest(a, 24, 100, 5, 0);
  buf_t b = save(a);
  char msg[200];
  CHECK(ew_state_config(b.p, b.len, &got, msg, sizeof msg) == 0 && ew_config_equal(&got, &cfg),
        "peeked configuration differs: %s", msg);
  CHECK(ew_state_config(b.p, 60, &got, msg, sizeof msg) == EW_ESTATE && strstr(msg, "truncated"),
        "a cut state's configuration: %s", msg);
  b.p[0] ^= 1;
  CHECK(ew_state_config(b.p, b.len, &got, msg, sizeof msg) == EW_ESTATE && strstr(msg, "magic"),
        "bad magic: %s", msg);
  b.p[0] ^= 1;
  b.p[8] = 9;
  CHECK(ew_state_config(b.p, b.len, &got, msg, sizeof msg) == EW_ESTATE && strstr(msg, "version"),
        "version 9: %s", msg);
  free(b.p);
  ew_stream_free(a);
}

/* ---- numbers no ingest can produce (issue 23 item 9) ----
 * A state whose checksum is right but whose numbers are impossible — a NaN or 1e200 mean, a
 * negative or NaN weight, an infinite or negative M2 diagonal, M2 = 1e300, a count of 2^64-1, an
 * FD certificate of 1e300, a NaN in the window's rows or the live estimate — is EW_ESTATE with a
 * sentence naming what is wrong, and nothing is created. The checksum is recomputed after each
 * patch, so only the validation can refuse it. */

#define TAG4(s) ((uint32_t)(s)[0] | (uint32_t)(s)[1] << 8 | (uint32_t)(s)[2] << 16 | (uint32_t)(s)[3] << 24)

/* Offset of the payload of section `tag` in a saved state (0 when absent). */
static size_t section_at(const buf_t *b, const char *tag) {
  size_t off = 16;
  while (off + 12 <= b->len) {
    uint32_t t;
    uint64_t len;
    memcpy(&t, b->p + off, 4);
    memcpy(&len, b->p + off + 4, 8);
    if (t == TAG4(tag))
      return off + 12;
    if (t == TAG4("END\0"))
      break;
    off += 12 + len;
  }
  return 0;
}

/* A copy of b with 8 bytes at `off` replaced and the checksum recomputed. */
static unsigned char *patched(const buf_t *b, size_t off, const void *v, size_t n) {
  unsigned char *c = malloc(b->len);
  memcpy(c, b->p, b->len);
  memcpy(c + off, v, n);
  uint32_t crc = ew_crc32c(0, c, b->len - 4);
  memcpy(c + b->len - 4, &crc, 4);
  return c;
}

static void refused_f64(const buf_t *b, size_t off, double v, const char *what, const char *needle) {
  unsigned char *c = patched(b, off, &v, 8);
  refused(c, b->len, what, needle);
  free(c);
}

static void refused_u64(const buf_t *b, size_t off, uint64_t v, const char *what, const char *needle) {
  unsigned char *c = patched(b, off, &v, 8);
  refused(c, b->len, what, needle);
  free(c);
}

static void absurd_numbers_are_refused(void) {
  const size_t d = 6;
  ew_config_t cfg;
  ew_config_default(&cfg, d);
  cfg.window = 16;
  ew_stream_t *a;
  CHECK(ew_stream_create(&cfg, &a) == 0, "create");
  for (int i = 0; i < 4; i++)
    ingest(a, d, 20, 31 + (uint64_t)i, 0);
  ew_result_t r;
  CHECK(query(a, "topk", EW_SOURCE_ALL, "vectors", 1, &r) == 0, "topk"); /* a WARM section */
  ew_result_clear(&r);
  buf_t b = save(a);
  size_t mall = section_at(&b, "MALL"), strm = section_at(&b, "STRM"),
         wind = section_at(&b, "WIND"), lrop = section_at(&b, "LROP"),
         warm = section_at(&b, "WARM");
  CHECK(mall && strm && wind && lrop && warm, "sections MALL %zu STRM %zu WIND %zu LROP %zu WARM %zu",
        mall, strm, wind, lrop, warm);
  int rc;
  char msg[200];
  ew_stream_t *ok = load(b.p, b.len, &rc, msg, sizeof msg);
  CHECK(rc == 0 && ok, "the unpatched state loads: %s", msg);
  ew_stream_free(ok);
  size_t mean = mall + 24, m2 = mall + 24 + 8 * d; /* upper triangle by columns */
  refused_f64(&b, mean + 16, NAN, "a NaN mean", "mean");
  refused_f64(&b, mean + 16, 1e200, "a mean of 1e200", "mean");
  refused_f64(&b, mall + 8, -1, "a negative weight", "weight");
  refused_f64(&b, mall + 8, NAN, "a NaN weight", "weight");
  refused_f64(&b, mall + 16, NAN, "a NaN noise bound", "noise");
  refused_f64(&b, m2, INFINITY, "an infinite M2 diagonal", "M2");
  refused_f64(&b, m2, -1, "a negative M2 diagonal", "M2");
  refused_f64(&b, m2 + 8 * 2, 1e300, "M2 diagonal = 1e300", "M2");
  refused_f64(&b, m2 + 8 * 1, 1e300, "M2 off the diagonal = 1e300", "M2");
  refused_f64(&b, m2 + 8 * 1, NAN, "M2 off the diagonal NaN", "M2");
  refused_u64(&b, mall, UINT64_MAX, "MALL rows = 2^64-1", "rows");
  refused_u64(&b, strm, UINT64_MAX, "STRM count = 2^64-1", "rows");
  /* WIND: count, synced, since_rebuild, noise2, rows_only, rows (count·d f32), MOMENTS */
  uint64_t wcount;
  memcpy(&wcount, b.p + wind, 8);
  float fnan = NAN;
  unsigned char *c = patched(&b, wind + 40 + 4 * 3, &fnan, 4);
  refused(c, b.len, "a NaN in the window's rows", "window");
  free(c);
  refused_f64(&b, wind + 40 + 4 * wcount * d + 24 + 8, 1e200, "a window mean of 1e200", "mean");
  refused_f64(&b, wind + 24, NAN, "a NaN window noise", "noise");
  /* LROP: fill, fill·d f32, then V */
  uint64_t fill;
  memcpy(&fill, b.p + lrop, 8);
  refused_f64(&b, lrop + 8 + 4 * fill * d, NAN, "a NaN live vector", "live");
  refused_f64(&b, warm + 8, INFINITY, "an infinite warm vector", "WARM");
  free(b.p);
  ew_stream_free(a);

  /* the sketch: Δ of 1e300; broken = 1 loads (the stream was saved so) but is no merge source */
  ew_config_default(&cfg, 12);
  cfg.exact_max_dim = 8;
  cfg.sketch_rows = 4;
  cfg.live_k = 0;
  CHECK(ew_stream_create(&cfg, &a) == 0, "create sketched");
  for (int i = 0; i < 4; i++)
    ingest(a, 12, 20, 41 + (uint64_t)i, 0);
  b = save(a);
  size_t fd = section_at(&b, "FDSK");
  CHECK(fd != 0, "FDSK section");
  /* u64 ℓ, u64 n, f64 W, f64 Δ, u64 shrinks, u64 broken, u64 nb, mean, diag M2, B */
  refused_f64(&b, fd + 24, 1e300, "an FD certificate of 1e300", "certificate");
  refused_f64(&b, fd + 56 + 8 * 3, NAN, "a NaN sketch mean", "mean");
  refused_f64(&b, fd + 56 + 8 * 12 + 8 * 2, -1, "a negative sketch diagonal", "M2");
  refused_f64(&b, fd + 56 + 8 * 24, 1e300, "a sketch row of 1e300", "sketch");
  refused_u64(&b, fd + 8, UINT64_MAX, "FDSK rows = 2^64-1", "rows");
  unsigned char *brk = patched(&b, fd + 40, &(uint64_t){1}, 8);
  ew_stream_t *broken = load(brk, b.len, &rc, msg, sizeof msg);
  CHECK(rc == 0 && broken, "a broken sketch still loads (it was saved so): %d %s", rc, msg);
  ew_stream_t *dst = NULL;
  CHECK(ew_stream_create(&cfg, &dst) == 0, "create");
  ingest(dst, 12, 20, 5, 0);
  rc = broken ? ew_stream_merge(dst, broken) : -1;
  CHECK(rc == EW_ESTATE && ew_stream_count(dst) == 20,
        "merging a broken sketch: rc %d, count %llu (want EW_ESTATE, 20)", rc,
        (unsigned long long)ew_stream_count(dst));
  ew_stream_free(broken);
  free(brk);

  /* counts near 2^53: loads, but a merge that would pass 2^53 rows is refused, nothing changed */
  ew_stream_t *big = NULL;
  {
    uint64_t n53 = (uint64_t)1 << 53;
    unsigned char *p1 = patched(&b, section_at(&b, "STRM"), &n53, 8);
    buf_t b1 = {p1, b.len, b.len, 0};
    unsigned char *p2 = patched(&b1, fd + 8, &n53, 8);
    big = load(p2, b.len, &rc, msg, sizeof msg);
    CHECK(rc == 0 && big, "a state of 2^53 rows loads: %d %s", rc, msg);
    free(p1);
    free(p2);
  }
  rc = big ? ew_stream_merge(dst, big) : -1;
  CHECK(rc == EW_ERANGE && ew_stream_count(dst) == 20,
        "a merge past 2^53 rows: rc %d, count %llu (want EW_ERANGE, 20)", rc,
        (unsigned long long)ew_stream_count(dst));
  ew_stream_free(big);
  ew_stream_free(dst);
  free(b.p);
  ew_stream_free(a);
}

/* STATE.md: "A section that appears twice is refused" — STRM, LROP, WARM (and LIVE with LROP)
 * too, not only the accumulators' (issue 23 item 12). The copy goes just before END and the
 * checksum is recomputed. */
static void repeated_sections_are_refused(void) {
  const size_t d = 5;
  ew_config_t cfg;
  ew_config_default(&cfg, d);
  cfg.window = 8;
  ew_stream_t *a;
  CHECK(ew_stream_create(&cfg, &a) == 0, "create");
  ingest(a, d, 30, 77, 0);
  ew_result_t r;
  CHECK(query(a, "topk", EW_SOURCE_ALL, "vectors", 1, &r) == 0, "topk");
  ew_result_clear(&r);
  buf_t b = save(a);
  const char *tags[] = {"STRM", "LROP", "WARM", "MALL", "WIND"};
  for (size_t t = 0; t < sizeof tags / sizeof tags[0]; t++) {
    size_t at = section_at(&b, tags[t]), end = section_at(&b, "END\0");
    CHECK(at && end, "%s and END present", tags[t]);
    if (!at || !end)
      continue;
    uint64_t len;
    memcpy(&len, b.p + at - 8, 8);
    size_t sec = 12 + (size_t)len, head = end - 12;
    unsigned char *c = malloc(b.len + sec);
    memcpy(c, b.p, head);
    memcpy(c + head, b.p + at - 12, sec);
    memcpy(c + head + sec, b.p + head, b.len - head);
    uint32_t crc = ew_crc32c(0, c, b.len + sec - 4);
    memcpy(c + b.len + sec - 4, &crc, 4);
    char what[64];
    snprintf(what, sizeof what, "section %s twice", tags[t]);
    refused(c, b.len + sec, what, "twice");
    free(c);
  }
  free(b.p);
  ew_stream_free(a);
}


/* ---- embedder sections (ew_stream_save_ex / ew_stream_load_ex) ---- */

typedef struct {
  int calls;
  uint32_t tags[4];
  size_t lens[4];
  unsigned char first[4];
  int refuse_at; /* 1-based call to refuse, 0: none */
} seen_t;

static int on_section(void *ctx, uint32_t tag, const void *data, size_t len, char *msg,
                      size_t cap) {
  seen_t *s = ctx;
  if (s->calls < 4) {
    s->tags[s->calls] = tag;
    s->lens[s->calls] = len;
    s->first[s->calls] = len ? *(const unsigned char *)data : 0;
  }
  s->calls++;
  if (s->calls == s->refuse_at) {
    snprintf(msg, cap, "section %d refused by the test", s->calls);
    return 1;
  }
  return 0;
}

static void embedder_sections_travel_with_the_state(void) {
  ew_config_t cfg;
  ew_config_default(&cfg, 6);
  ew_stream_t *a;
  CHECK(ew_stream_create(&cfg, &a) == 0, "create");
  ingest(a, 6, 40, 7, 0);
  unsigned char one[3] = {0x11, 0x22, 0x33}, *big = malloc(3000);
  memset(big, 0x5a, 3000);
  ew_section_t ex[2] = {{EW_TAG('t', 'R', 'U', 'N'), one, 3}, {EW_TAG('z', 'z', 'z', '1'), big, 3000}};
  buf_t b = {0};
  CHECK(ew_stream_save_ex(a, ex, 2, buf_write, &b) == 0, "save_ex");
  CHECK(b.len == ew_stream_saved_bytes_ex(a, ex, 2) &&
            b.len == ew_stream_saved_bytes(a) + 12 + 3 + 12 + 3000,
        "saved %zu bytes, predicted %zu", b.len, ew_stream_saved_bytes_ex(a, ex, 2));
  /* the embedder's sections come back, after the checksum, in file order */
  seen_t seen = {0};
  buf_t r = {b.p, b.len, b.len, 0};
  ew_stream_t *s = NULL;
  char msg[160];
  int rc = ew_stream_load_ex(&s, buf_read, &r, on_section, &seen, msg, sizeof msg);
  CHECK(rc == 0 && s && seen.calls == 2 && seen.tags[0] == ex[0].tag && seen.lens[0] == 3 &&
            seen.first[0] == 0x11 && seen.tags[1] == ex[1].tag && seen.lens[1] == 3000 &&
            seen.first[1] == 0x5a,
        "load_ex rc %d calls %d: %s", rc, seen.calls, msg);
  /* the stream is the saved one: saving it plainly gives the plain bytes */
  buf_t p1 = save(a), p2 = s ? save(s) : (buf_t){0};
  CHECK(p1.len == p2.len && memcmp(p1.p, p2.p, p1.len) == 0, "the stream under the sections");
  ew_stream_free(s);
  /* a plain load skips them */
  int rc2;
  s = load(b.p, b.len, &rc2, msg, sizeof msg);
  CHECK(rc2 == 0 && s, "plain load of a state with embedder sections: %d %s", rc2, msg);
  ew_stream_free(s);
  /* a refusal refuses the whole state, with the embedder's sentence */
  seen = (seen_t){.refuse_at = 2};
  r.off = 0;
  s = NULL;
  rc = ew_stream_load_ex(&s, buf_read, &r, on_section, &seen, msg, sizeof msg);
  CHECK(rc == EW_ESTATE && !s && strstr(msg, "section 2 refused"), "refusal: %d %s", rc, msg);
  /* a corrupt embedder byte fails the checksum before any callback */
  b.p[b.len - 4 - 12 - 100] ^= 1;
  seen = (seen_t){0};
  r.off = 0;
  rc = ew_stream_load_ex(&s, buf_read, &r, on_section, &seen, msg, sizeof msg);
  CHECK(rc == EW_ESTATE && !s && seen.calls == 0 && strstr(msg, "checksum"),
        "a flipped embedder byte: %d, %d calls, %s", rc, seen.calls, msg);
  /* tags the library owns, or twice the same, are refused and nothing is written */
  ew_section_t upper = {EW_TAG('T', 'R', 'U', 'N'), one, 3}, twice[2] = {ex[0], ex[0]};
  buf_t w = {0};
  CHECK(ew_stream_save_ex(a, &upper, 1, buf_write, &w) == EW_EBADPARAM && w.len == 0,
        "an uppercase tag");
  CHECK(ew_stream_save_ex(a, twice, 2, buf_write, &w) == EW_EBADPARAM && w.len == 0,
        "a tag twice");
  free(p1.p), free(p2.p), free(b.p), free(big);
  ew_stream_free(a);
}

int main(void) {
  TAP_RUN(checksum_and_config_peek);
  TAP_RUN(round_trip_is_bit_identical);
  TAP_RUN(every_corruption_is_refused);
  TAP_RUN(a_failing_writer_is_reported);
  TAP_RUN(absurd_numbers_are_refused);
  TAP_RUN(repeated_sections_are_refused);
  TAP_RUN(embedder_sections_travel_with_the_state);
  TAP_DONE();
}
