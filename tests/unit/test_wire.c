/* test_wire.c — the typed wire (proto/ewp.h): every recorded request decodes to its method;
 * replies encode to the recorded bytes; each refusal class answers its code with a sentence that
 * names the culprit (repeated keys, unknown fields, types, ranges, cross-field rules, stream
 * names, the envelope); peer bytes are escaped and cut at character boundaries; metric parameters
 * keep their wire type; proto's codes, sources and methods are the library's.
 *
 * usage: test_wire VECTORS.tsv */
#include "ewp.h"
#include "tap.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *vectors_path;

/* ---- building messages ---- */

typedef struct {
  msgpack_sbuffer sb;
  msgpack_packer pk;
} msg_t;

static void m_init(msg_t *m) {
  msgpack_sbuffer_init(&m->sb);
  msgpack_packer_init(&m->pk, &m->sb, msgpack_sbuffer_write);
}

static void m_str(msg_t *m, const char *s) {
  msgpack_pack_str(&m->pk, strlen(s));
  msgpack_pack_str_body(&m->pk, s, strlen(s));
}

/* [0, 7, method, {...}]: the caller packs `npairs` key/value pairs next. */
static void m_request(msg_t *m, const char *method, uint32_t npairs) {
  m_init(m);
  msgpack_pack_array(&m->pk, 4);
  msgpack_pack_uint32(&m->pk, 0);
  msgpack_pack_uint32(&m->pk, 7);
  m_str(m, method);
  msgpack_pack_map(&m->pk, npairs);
}

/* Decodes m; returns ewp_decode's value and leaves the request freed. */
static int decode(msg_t *m, ewp_error_t *err) {
  ewp_request_t req;
  int rc = ewp_decode((const uint8_t *)m->sb.data, m->sb.size, &req, err);
  if (rc == 0)
    ewp_request_free(&req);
  msgpack_sbuffer_destroy(&m->sb);
  return rc;
}

#define REFUSED(m, want_code, needle)                                                             \
  do {                                                                                            \
    ewp_error_t e_;                                                                               \
    int rc_ = decode(m, &e_);                                                                     \
    CHECK(rc_ == -1 && e_.code == (want_code) && strstr(e_.message, needle) != NULL,              \
          "rc %d code %s message \"%s\", want %s with \"%s\"", rc_, ewp_code_name(e_.code),      \
          e_.message, ewp_code_name(want_code), needle);                                          \
    CHECK(ewp_utf8_valid(e_.message, strlen(e_.message)), "message is not UTF-8");               \
  } while (0)

static size_t unhex(const char *h, size_t n, uint8_t *out) {
  size_t k = 0;
  for (size_t i = 0; i + 1 < n; i += 2) {
    unsigned v;
    sscanf(h + i, "%2x", &v);
    out[k++] = (uint8_t)v;
  }
  return k;
}

/* ---- cases ---- */

static void every_recorded_request_decodes_to_its_method(void) {
  FILE *f = fopen(vectors_path, "r");
  CHECK(f != NULL, "cannot open %s", vectors_path);
  if (!f)
    return;
  char *line = NULL;
  size_t cap = 0;
  int count = 0;
  uint8_t *buf = malloc(1 << 20);
  while (getline(&line, &cap, f) > 0) {
    if (line[0] == '#')
      continue;
    char *name = strtok(line, "\t"), *hex = strtok(NULL, "\t");
    if (!name || !hex)
      continue;
    size_t n = unhex(hex, strlen(hex), buf);
    ewp_request_t req;
    ewp_error_t err;
    int rc = ewp_decode(buf, n, &req, &err);
    count++;
    if (strncmp(name, "framing", 7) == 0) {
      CHECK(rc == -2, "%s: rc %d (not msgpack: a framing error)", name, rc);
    } else if (!strcmp(name, "unknown_method")) {
      CHECK(rc == -1 && err.code == EWP_EUNKMETHOD && err.counted, "%s: rc %d", name, rc);
    } else if (!strcmp(name, "bad_request_params")) {
      CHECK(rc == -1 && err.code == EWP_EBADREQ, "%s: rc %d", name, rc);
    } else if (!strcmp(name, "bad_run")) {
      CHECK(rc == -1 && err.code == EWP_EBADREQ && strstr(err.message, "run name '../x'"),
            "%s: rc %d %s", name, rc, err.message);
    } else if (!strcmp(name, "bad_dtype")) {
      CHECK(rc == -1 && err.code == EWP_EDTYPE, "%s: rc %d %s", name, rc, err.message);
    } else if (rc == 0) {
      const char *mname = ewp_method_info(req.method)->name;
      CHECK(strncmp(name, mname, strlen(mname)) == 0 || strstr(name, "stream") ||
                strstr(name, "mismatch") || strstr(name, "finite") || strstr(name, "metric") ||
                strstr(name, "param") || !strcmp(name, "degenerate"),
            "%s decoded as %s", name, mname);
      ewp_request_free(&req);
    } else {
      CHECK(0, "%s: refused: %s", name, err.message);
    }
  }
  CHECK(count >= 20, "only %d vectors", count);
  free(buf);
  free(line);
  fclose(f);
}

/* The ping reply, encoded from a value tree, is the recorded response byte for byte. */
static void ping_reply_encodes_to_the_recorded_bytes(void) {
  ewp_kv_t kv[] = {{"version", ewp_vstr("0.1.0")},
                   {"protocol", ewp_vu64(1)},
                   {"pong", ewp_vbool(true)},
                   {"absent", {.t = EWP_V_ABSENT}}};
  ewp_value_t v = ewp_vmap(kv, 4);
  msgpack_sbuffer sb;
  msgpack_sbuffer_init(&sb);
  ewp_encode_result(&sb, 1, &v);
  uint8_t want[256];
  const char *hex = "940101c083a776657273696f6ea5302e312e30a870726f746f636f6c01a4706f6e67c3";
  size_t n = unhex(hex, strlen(hex), want);
  CHECK(sb.size == n && memcmp(sb.data, want, n) == 0, "encoded %zu bytes, recorded %zu", sb.size,
        n);
  msgpack_sbuffer_destroy(&sb);
}

static void a_repeated_key_is_refused_by_name(void) {
  msg_t m;
  m_request(&m, "query", 3);
  m_str(&m, "stream"), m_str(&m, "s");
  m_str(&m, "metrics"), m_str(&m, "renyi");
  m_str(&m, "stream"), m_str(&m, "t");
  REFUSED(&m, EWP_EBADREQ, "duplicate key 'stream'");
  /* inside the metric parameters (the crash of the first wave) */
  m_request(&m, "query", 3);
  m_str(&m, "stream"), m_str(&m, "s");
  m_str(&m, "metrics"), m_str(&m, "renyi");
  m_str(&m, "params");
  msgpack_pack_map(&m.pk, 3);
  for (int i = 0; i < 3; i++)
    m_str(&m, "alpha"), msgpack_pack_double(&m.pk, 2.0);
  REFUSED(&m, EWP_EBADREQ, "alpha");
  /* a metric named twice */
  m_request(&m, "query", 2);
  m_str(&m, "stream"), m_str(&m, "s");
  m_str(&m, "metrics");
  msgpack_pack_array(&m.pk, 3);
  m_str(&m, "topk"), m_str(&m, "entropy"), m_str(&m, "topk");
  REFUSED(&m, EWP_EBADREQ, "topk");
}

static void unknown_fields_and_wrong_types_answer_the_tables_sentence(void) {
  msg_t m;
  m_request(&m, "create", 3);
  m_str(&m, "stream"), m_str(&m, "s");
  m_str(&m, "dim"), msgpack_pack_uint32(&m.pk, 4);
  m_str(&m, "windw"), msgpack_pack_uint32(&m.pk, 8);
  REFUSED(&m, EWP_EBADREQ, "create does not take 'windw' (it takes: stream run dim normalize");
  m_request(&m, "create", 2);
  m_str(&m, "stream"), m_str(&m, "s");
  m_str(&m, "dim"), m_str(&m, "four");
  REFUSED(&m, EWP_EBADPARAM, "'dim' must be an integer between 1 and 65536");
  m_request(&m, "create", 2);
  m_str(&m, "stream"), m_str(&m, "s");
  m_str(&m, "dim"), msgpack_pack_uint32(&m.pk, 65537);
  REFUSED(&m, EWP_EBADPARAM, "between 1 and 65536");
  m_request(&m, "create", 1);
  m_str(&m, "dim"), msgpack_pack_uint32(&m.pk, 4);
  REFUSED(&m, EWP_EBADREQ, "'stream' (a string) is required");
  m_request(&m, "create", 3);
  m_str(&m, "stream"), m_str(&m, "s");
  m_str(&m, "dim"), msgpack_pack_uint32(&m.pk, 4);
  m_str(&m, "window_mode"), m_str(&m, "eagerly");
  REFUSED(&m, EWP_EBADPARAM, "'window_mode' must be \"auto\", \"eager\" or \"lazy\"");
  /* an integral float is an integer; the decoded struct says which fields were present */
  m_request(&m, "create", 3);
  m_str(&m, "stream"), m_str(&m, "s");
  m_str(&m, "dim"), msgpack_pack_double(&m.pk, 4.0);
  m_str(&m, "decay"), msgpack_pack_nil(&m.pk);
  ewp_request_t req;
  ewp_error_t err;
  int rc = ewp_decode((const uint8_t *)m.sb.data, m.sb.size, &req, &err);
  CHECK(rc == 0 && req.method == EWP_METHOD_CREATE && req.u.create.dim == 4 &&
            EWP_HAS(&req.u.create, EWP_CREATE_dim) && !EWP_HAS(&req.u.create, EWP_CREATE_decay) &&
            !EWP_HAS(&req.u.create, EWP_CREATE_window) && req.msgid == 7,
        "rc %d %s", rc, err.message);
  if (rc == 0)
    ewp_request_free(&req);
  msgpack_sbuffer_destroy(&m.sb);
}

static void ingest_cross_field_rules(void) {
  msg_t m;
  float x[8] = {0};
  /* data and rows */
  m_request(&m, "ingest", 5);
  m_str(&m, "stream"), m_str(&m, "s");
  m_str(&m, "data"), msgpack_pack_bin(&m.pk, sizeof x), msgpack_pack_bin_body(&m.pk, x, sizeof x);
  m_str(&m, "dtype"), m_str(&m, "f32");
  m_str(&m, "shape"), msgpack_pack_array(&m.pk, 2), msgpack_pack_uint32(&m.pk, 2),
      msgpack_pack_uint32(&m.pk, 4);
  m_str(&m, "rows"), msgpack_pack_array(&m.pk, 0);
  REFUSED(&m, EWP_EBADREQ, "not both");
  /* data without dtype */
  m_request(&m, "ingest", 3);
  m_str(&m, "stream"), m_str(&m, "s");
  m_str(&m, "data"), msgpack_pack_bin(&m.pk, sizeof x), msgpack_pack_bin_body(&m.pk, x, sizeof x);
  m_str(&m, "shape"), msgpack_pack_array(&m.pk, 2), msgpack_pack_uint32(&m.pk, 2),
      msgpack_pack_uint32(&m.pk, 4);
  REFUSED(&m, EWP_EDTYPE, "'dtype' (f32, f64, f16 or bf16) is required");
  /* a length that does not match */
  m_request(&m, "ingest", 4);
  m_str(&m, "stream"), m_str(&m, "s");
  m_str(&m, "data"), msgpack_pack_bin(&m.pk, sizeof x), msgpack_pack_bin_body(&m.pk, x, sizeof x);
  m_str(&m, "dtype"), m_str(&m, "float64");
  m_str(&m, "shape"), msgpack_pack_array(&m.pk, 2), msgpack_pack_uint32(&m.pk, 2),
      msgpack_pack_uint32(&m.pk, 4);
  REFUSED(&m, EWP_EBADREQ, "'data' has 32 bytes but shape [2, 4] of f64 needs 64");
  /* a shape whose product overflows 64 bits says so (not "needs 0") */
  m_request(&m, "ingest", 4);
  m_str(&m, "stream"), m_str(&m, "s");
  m_str(&m, "data"), msgpack_pack_bin(&m.pk, sizeof x), msgpack_pack_bin_body(&m.pk, x, sizeof x);
  m_str(&m, "dtype"), m_str(&m, "f64");
  m_str(&m, "shape"), msgpack_pack_array(&m.pk, 2), msgpack_pack_uint64(&m.pk, UINT64_MAX / 8),
      msgpack_pack_uint32(&m.pk, 65536);
  REFUSED(&m, EWP_EBADREQ, "needs more than 2^64");
  /* ragged rows */
  m_request(&m, "ingest", 2);
  m_str(&m, "stream"), m_str(&m, "s");
  m_str(&m, "rows"), msgpack_pack_array(&m.pk, 2);
  msgpack_pack_array(&m.pk, 2), msgpack_pack_double(&m.pk, 1), msgpack_pack_double(&m.pk, 2);
  msgpack_pack_array(&m.pk, 1), msgpack_pack_double(&m.pk, 1);
  ewp_error_t e;
  int rc = decode(&m, &e);
  CHECK(rc == -1 && e.code == EWP_EBADREQ, "ragged rows: rc %d %s", rc, e.message);
}

static void stream_names_that_could_escape_a_directory_are_refused(void) {
  const char *bad[] = {"..", ".", "/", "a/", "/a", "a//b", "a/./b", "a/../b", "../../etc/passwd",
                       "", "a b", "é"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    msg_t m;
    m_request(&m, "info", 1);
    m_str(&m, "stream"), m_str(&m, bad[i]);
    ewp_error_t e;
    int rc = decode(&m, &e);
    CHECK(rc == -1 && e.code == EWP_EBADREQ, "name \"%s\" accepted (rc %d)", bad[i], rc);
  }
  char long_name[202];
  memset(long_name, 'x', sizeof long_name - 1);
  long_name[201] = 0;
  const char *good[] = {"run1/layer.3:attn-out_x", "a..b", "x/.hidden", long_name + 1};
  for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
    msg_t m;
    m_request(&m, "info", 1);
    m_str(&m, "stream"), m_str(&m, good[i]);
    ewp_error_t e;
    int rc = decode(&m, &e);
    CHECK(rc == 0, "name \"%.40s\" (%zu bytes) refused: %s", good[i], strlen(good[i]), e.message);
  }
  msg_t m;
  m_request(&m, "info", 1);
  m_str(&m, "stream"), m_str(&m, long_name); /* 201 bytes */
  ewp_error_t e;
  CHECK(decode(&m, &e) == -1 && e.code == EWP_EBADREQ, "a 201-byte name was accepted");
}

static void the_envelope(void) {
  msg_t m;
  /* a notification: kind, no msgid */
  m_init(&m);
  msgpack_pack_array(&m.pk, 3);
  msgpack_pack_uint32(&m.pk, 2);
  m_str(&m, "ping");
  msgpack_pack_array(&m.pk, 0);
  ewp_request_t req;
  ewp_error_t err;
  int rc = ewp_decode((const uint8_t *)m.sb.data, m.sb.size, &req, &err);
  CHECK(rc == 0 && req.kind == EWP_KIND_NOTIFY && req.method == EWP_METHOD_PING, "rc %d", rc);
  if (rc == 0)
    ewp_request_free(&req);
  msgpack_sbuffer_destroy(&m.sb);
  /* msgid beyond 32 bits */
  m_init(&m);
  msgpack_pack_array(&m.pk, 4);
  msgpack_pack_uint32(&m.pk, 0);
  msgpack_pack_uint64(&m.pk, (uint64_t)1 << 32);
  m_str(&m, "ping");
  msgpack_pack_array(&m.pk, 0);
  REFUSED(&m, EWP_EBADREQ, "msgid must be an unsigned 32-bit integer");
  /* params as [{...}] and as a bare map both work; anything else does not */
  m_init(&m);
  msgpack_pack_array(&m.pk, 4);
  msgpack_pack_uint32(&m.pk, 0);
  msgpack_pack_uint32(&m.pk, 3);
  m_str(&m, "info");
  msgpack_pack_array(&m.pk, 1);
  msgpack_pack_map(&m.pk, 1);
  m_str(&m, "stream"), m_str(&m, "s");
  CHECK(decode(&m, &err) == 0, "[{stream}] refused: %s", err.message);
  m_init(&m);
  msgpack_pack_array(&m.pk, 4);
  msgpack_pack_uint32(&m.pk, 0);
  msgpack_pack_uint32(&m.pk, 3);
  m_str(&m, "info");
  m_str(&m, "s");
  REFUSED(&m, EWP_EBADREQ, "params must be [] or [{...}]");
  /* not msgpack at all: -2, a framing error */
  uint8_t c1 = 0xc1;
  rc = ewp_decode(&c1, 1, &req, &err);
  CHECK(rc == -2 && err.code == EWP_EBADREQ, "0xc1: rc %d", rc);
}

static void an_unknown_method_is_echoed_escaped(void) {
  msg_t m;
  m_init(&m);
  msgpack_pack_array(&m.pk, 4);
  msgpack_pack_uint32(&m.pk, 0);
  msgpack_pack_uint32(&m.pk, 9);
  msgpack_pack_str(&m.pk, 4);
  msgpack_pack_str_body(&m.pk, "\xff\xfe\"x", 4);
  msgpack_pack_array(&m.pk, 0);
  REFUSED(&m, EWP_EUNKMETHOD, "no method '\\xff\\xfe\\\"x' (methods: ping create");
}

/* ---- an allocation failure while decoding (issue 23 item 12) ----
 * This executable's malloc interposes on every library's (msgpack-c's zone included); armed, it
 * fails every request, as a daemon at its memory limit would see. The message is whole and
 * well-formed, so the answer is NO_MEMORY with its msgid (rc -1: answered, the client kept), not
 * "not valid msgpack" (rc -2: a framing error, which closes the connection). */
#if defined(__SANITIZE_ADDRESS__) /* ASan owns malloc: its free would refuse glibc's blocks */
static int malloc_fails;
#define MALLOC_INJECTED 0
#else
#define MALLOC_INJECTED 1
extern void *__libc_malloc(size_t n);
static int malloc_fails;
__attribute__((visibility("default"))) void *malloc(size_t n) {
  return malloc_fails ? NULL : __libc_malloc(n);
}
#endif

static void an_allocation_failure_is_out_of_memory_not_bad_msgpack(void) {
  if (!MALLOC_INJECTED) {
    printf("# skipped under ASan (malloc cannot be replaced)\n");
    return;
  }
  uint32_t ids[] = {7, 200, 70000};
  for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++) {
    msg_t m;
    m_init(&m);
    msgpack_pack_array(&m.pk, 4);
    msgpack_pack_uint32(&m.pk, 0);
    msgpack_pack_uint32(&m.pk, ids[i]);
    m_str(&m, "ingest");
    msgpack_pack_map(&m.pk, 1);
    m_str(&m, "stream");
    m_str(&m, "x");
    ewp_error_t e;
    ewp_request_t req;
    malloc_fails = 1;
    int rc = ewp_decode((const uint8_t *)m.sb.data, m.sb.size, &req, &e);
    malloc_fails = 0;
    CHECK(rc == -1 && e.code == EWP_ENOMEM && e.msgid == ids[i] && !e.notify &&
              strstr(e.message, "memory") && !strstr(e.message, "msgpack"),
          "msgid %u: rc %d code %s msgid %u message \"%s\"", ids[i], rc, ewp_code_name(e.code),
          e.msgid, e.message);
    if (rc == 0)
      ewp_request_free(&req);
    msgpack_sbuffer_destroy(&m.sb);
  }
}

/* A query whose params map is {alpha: 2.5, vectors: true, kernel: "cosine", k: "inf"}: each value
 * keeps the type it was sent with (the metric table decides later what each name takes). */
static void metric_parameters_keep_their_wire_type(void) {
  msg_t m;
  m_request(&m, "query", 3);
  m_str(&m, "stream"), m_str(&m, "s");
  m_str(&m, "metrics"), m_str(&m, "topk");
  m_str(&m, "params");
  msgpack_pack_map(&m.pk, 4);
  m_str(&m, "alpha"), msgpack_pack_double(&m.pk, 2.5);
  m_str(&m, "vectors"), msgpack_pack_true(&m.pk);
  m_str(&m, "kernel"), m_str(&m, "cosine");
  m_str(&m, "k"), m_str(&m, "inf");
  ewp_request_t req;
  ewp_error_t err;
  int rc = ewp_decode((const uint8_t *)m.sb.data, m.sb.size, &req, &err);
  CHECK(rc == 0, "decode: %s", err.message);
  if (rc == 0) {
    const ewp_params_t *ps = &req.u.query.params;
    CHECK(ps->n == 4, "%zu params", ps->n);
    CHECK(ps->v[0].type == EWP_PV_NUM && ps->v[0].value == 2.5 && ps->v[0].key_n == 5 &&
              !memcmp(ps->v[0].key, "alpha", 5), "alpha");
    CHECK(ps->v[1].type == EWP_PV_BOOL && ps->v[1].value == 1, "vectors");
    CHECK(ps->v[2].type == EWP_PV_STR && ps->v[2].str_n == 6 && !memcmp(ps->v[2].str, "cosine", 6),
          "kernel");
    CHECK(ps->v[3].type == EWP_PV_STR && ps->v[3].str_n == 3, "\"inf\" stays a string");
    ewp_request_free(&req);
  }
  msgpack_sbuffer_destroy(&m.sb);
  /* nil, a map, a string over EWP_PARAM_STR_MAX, a name over EWP_PARAM_KEY_MAX: refused */
  char big[EWP_PARAM_STR_MAX + 2];
  memset(big, 'a', sizeof big - 1);
  big[sizeof big - 1] = 0;
  for (int c = 0; c < 4; c++) {
    m_request(&m, "query", 3);
    m_str(&m, "stream"), m_str(&m, "s");
    m_str(&m, "metrics"), m_str(&m, "renyi");
    m_str(&m, "params");
    msgpack_pack_map(&m.pk, 1);
    m_str(&m, c == 3 ? big : "alpha");
    if (c == 0)
      msgpack_pack_nil(&m.pk);
    else if (c == 1)
      msgpack_pack_map(&m.pk, 0);
    else
      m_str(&m, big);
    if (c < 2)
      REFUSED(&m, EWP_EBADPARAM, "parameter 'alpha' must be a number, a bool or a string");
    else if (c == 2)
      REFUSED(&m, EWP_EBADPARAM, "a UTF-8 string of at most 256 bytes");
    else
      REFUSED(&m, EWP_EBADPARAM, "a parameter name is at most 200 bytes (got 257)");
  }
}

/* The wire's source and method ENUMs are the library's names in the library's order (the daemon
 * takes the decoded index as the library's value; query.c asserts the counts). */
static void wire_sources_and_methods_are_the_librarys(void) {
  const char *src[] = {EWP_ENUM_source}, *mth[] = {EWP_ENUM_method};
  CHECK(sizeof src / sizeof src[0] == EW_SOURCE_COUNT, "sources");
  for (int i = 0; i < EW_SOURCE_COUNT; i++) {
    ew_source_t s;
    CHECK(ew_source_parse(src[i], strlen(src[i]), &s) == 0 && (int)s == i &&
              !strcmp(ew_source_name(s), src[i]), "source %s", src[i]);
  }
  CHECK(sizeof mth / sizeof mth[0] == EW_METHOD_COUNT, "methods");
  for (int i = 0; i < EW_METHOD_COUNT; i++) {
    ew_method_t m;
    CHECK(ew_method_parse(mth[i], strlen(mth[i]), &m) == 0 && (int)m == i, "method %s", mth[i]);
  }
}

/* proto's codes carry the library's wire names (one table: EW_ERRNO_MAP). */
static void proto_codes_are_the_librarys(void) {
  CHECK(!strcmp(ewp_code_name(EWP_EBADPARAM), "BAD_PARAM") &&
            !strcmp(ewp_code_name(EWP_EUNKMETHOD), "UNKNOWN_METHOD") &&
            !strcmp(ewp_code_name(EWP_ENOMEM), "NO_MEMORY") && !strcmp(ewp_code_name(EWP_OK), "OK") &&
            !strcmp(ewp_code_name((ewp_code_t)99), "INTERNAL"),
        "names");
}

static void escape_cuts_at_character_boundaries(void) {
  char out[16];
  /* controls and invalid bytes become \xNN; quotes and backslashes are escaped */
  ewp_escape(out, sizeof out, "a\n\"\\", 4);
  CHECK(!strcmp(out, "a\\x0a\\\"\\\\"), "got %s", out);
  /* 5 two-byte characters in a 10-byte room: cut before a character, then "..." */
  const char *e5 = "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9";
  char small[10];
  ewp_escape(small, sizeof small, e5, strlen(e5));
  CHECK(ewp_utf8_valid(small, strlen(small)) && strlen(small) < sizeof small &&
            strstr(small, "...") == small + strlen(small) - 3,
        "got \"%s\"", small);
  /* fits exactly: nothing added */
  ewp_escape(out, sizeof out, e5, strlen(e5));
  CHECK(!strcmp(out, e5), "got \"%s\"", out);
  /* a truncated sequence at the end is escaped, not copied */
  ewp_escape(out, sizeof out, "ab\xe2\x82", 4);
  CHECK(!strcmp(out, "ab\\xe2\\x82"), "got \"%s\"", out);
  CHECK(ewp_utf8_valid("\xe2\x82\xac", 3) && !ewp_utf8_valid("\xe2\x82", 2) &&
            !ewp_utf8_valid("\xc0\xaf", 2) && !ewp_utf8_valid("\xed\xa0\x80", 3),
        "UTF-8 validity: euro sign, truncation, overlong, surrogate");
}

int main(int argc, char **argv) {
  vectors_path = argc > 1 ? argv[1] : "proto/vectors/v1.tsv";
  TAP_RUN(every_recorded_request_decodes_to_its_method);
  TAP_RUN(ping_reply_encodes_to_the_recorded_bytes);
  TAP_RUN(a_repeated_key_is_refused_by_name);
  TAP_RUN(unknown_fields_and_wrong_types_answer_the_tables_sentence);
  TAP_RUN(ingest_cross_field_rules);
  TAP_RUN(stream_names_that_could_escape_a_directory_are_refused);
  TAP_RUN(the_envelope);
  TAP_RUN(an_unknown_method_is_echoed_escaped);
  TAP_RUN(escape_cuts_at_character_boundaries);
  TAP_RUN(metric_parameters_keep_their_wire_type);
  TAP_RUN(proto_codes_are_the_librarys);
  TAP_RUN(wire_sources_and_methods_are_the_librarys);
  TAP_RUN(an_allocation_failure_is_out_of_memory_not_bad_msgpack);
  TAP_DONE();
}
