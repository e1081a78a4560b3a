/* test_cclient.c ADDRESS VECTORS — the C client: against a real daemon at ADDRESS (every typed
 * helper, errors with their wire codes, notification ordering, timeouts and bad addresses), and
 * offline over a socketpair against proto/vectors/v1.tsv (request bytes equal the recorded
 * ones; recorded replies decode). */
#include "ewclient.h"
#include "tap.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static const char *addr, *vectors;

static void bad_addresses_and_absent_daemons_fail_cleanly(void) {
  ewc_t *c = NULL;
  char err[256];
  CHECK(ewc_connect("nope:1", 1000, &c, err, sizeof err) == EWC_EADDR && strstr(err, "address"),
        "%s", err);
  CHECK(ewc_connect("tcp:127.0.0.1", 1000, &c, err, sizeof err) == EWC_EADDR, "%s", err);
  CHECK(ewc_connect("unix:/nonexistent/eigenwatch.sock", 1000, &c, err, sizeof err) ==
            EWC_ECONNECT && strstr(err, "cannot connect"), "%s", err);
  CHECK(c == NULL, "no connection object on failure");
  CHECK(strlen(ewc_strerror(EWC_ETIMEOUT)) > 5, "strerror");
}

static void typed_helpers_against_the_daemon(void) {
  ewc_t *c;
  char err[256];
  if (ewc_connect(addr, 10000, &c, err, sizeof err)) {
    CHECK(0, "connect: %s", err);
    return;
  }
  ewc_reply_t r;
  CHECK(ewc_call(c, "ping", NULL, &r) == 0, "ping");
  const msgpack_object *v = ewc_get(r.result, "version");
  CHECK(v && v->type == MSGPACK_OBJECT_STR, "version string");
  ewc_reply_free(&r);
  /* four dtypes of the same 2 x 3 values */
  float f32[6] = {1, 2, 3, 4, 6, 8};
  double f64[6] = {1, 2, 3, 4, 6, 8};
  uint16_t f16[6] = {0x3c00, 0x4000, 0x4200, 0x4400, 0x4600, 0x4800};  /* 1 2 3 4 6 8 */
  uint16_t bf16[6] = {0x3f80, 0x4000, 0x4040, 0x4080, 0x40c0, 0x4100}; /* 1 2 3 4 6 8 */
  const void *data[4] = {f32, f64, f16, bf16};
  const char *dt[4] = {"f32", "f64", "f16", "bf16"};
  uint64_t count = 0;
  for (int k = 0; k < 4; k++) {
    CHECK(ewc_ingest(c, "c.client", data[k], dt[k], 2, 3, false, &count, NULL) == 0, "%s", dt[k]);
    CHECK(count == 2 * (uint64_t)(k + 1), "%s count %llu", dt[k], (unsigned long long)count);
  }
  const char *ms[2] = {"trace", "spectrum"};
  CHECK(ewc_query(c, "c.client", ms, 2, NULL, -1, NULL, true, -1, &r) == 0, "query");
  uint64_t as_of = 0;
  double tr = 0;
  const msgpack_object *m = ewc_get(r.result, "metrics");
  CHECK(ewc_get_u64(r.result, "as_of", &as_of) && as_of == 8, "as_of");
  /* the 8 rows are 4 copies each of (1,2,3) and (4,6,8): per-column variance 2.25, 4, 6.25 */
  CHECK(m && ewc_get_double(m, "trace", &tr) && tr > 12.4999999 && tr < 12.5000001, "trace %g", tr);
  ewc_reply_free(&r);
  /* errors carry the wire code */
  CHECK(ewc_ingest(c, "c.client", f32, "f32", 2, 2, false, NULL, &r) == EWC_ERPC &&
            strcmp(r.code, "DIM_MISMATCH") == 0 && r.message[0], "dim mismatch: %s", r.code);
  ewc_reply_free(&r);
  CHECK(ewc_ingest(c, "c.client", f32, "i8", 2, 3, false, NULL, NULL) == EWC_EARG, "dtype");
  const char *bad[1] = {"nope"};
  CHECK(ewc_query(c, "c.client", bad, 1, NULL, -1, NULL, false, -1, &r) == EWC_ERPC &&
            strcmp(r.code, "UNKNOWN_METRIC") == 0, "unknown metric: %s", r.code);
  ewc_reply_free(&r);
  /* notifications, then a request on the same connection, see the rows */
  for (int i = 0; i < 10; i++)
    CHECK(ewc_ingest(c, "c.client", f32, "f32", 2, 3, true, NULL, NULL) == 0, "notify");
  msgpack_sbuffer sb;
  msgpack_sbuffer_init(&sb);
  msgpack_packer pk;
  msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
  msgpack_pack_map(&pk, 1);
  msgpack_pack_str(&pk, 6);
  msgpack_pack_str_body(&pk, "stream", 6);
  msgpack_pack_str(&pk, 8);
  msgpack_pack_str_body(&pk, "c.client", 8);
  CHECK(ewc_call(c, "info", &sb, &r) == 0 && ewc_get_u64(r.result, "count", &count) &&
            count == 28, "count after notifications %llu", (unsigned long long)count);
  ewc_reply_free(&r);
  msgpack_sbuffer_destroy(&sb);
  ewc_close(c);
}

static void timeout_when_nobody_answers(void) {
  int sv[2];
  socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
  ewc_t *c;
  ewc_from_fd(sv[0], 200, &c);
  ewc_reply_t r;
  CHECK(ewc_call(c, "ping", NULL, &r) == EWC_ETIMEOUT, "timeout");
  ewc_reply_free(&r);
  close(sv[1]);
  CHECK(ewc_call(c, "ping", NULL, &r) == EWC_EIO, "peer closed");
  ewc_reply_free(&r);
  ewc_close(c);
}

static size_t unhex(const char *h, uint8_t *out) {
  size_t k = 0, n = strlen(h);
  for (size_t i = 0; i + 1 < n; i += 2) {
    unsigned v;
    sscanf(h + i, "%2x", &v);
    out[k++] = (uint8_t)v;
  }
  return k;
}

static void requests_and_replies_match_the_vectors(void) {
  FILE *f = fopen(vectors, "r");
  CHECK(f != NULL, "vectors");
  if (!f)
    return;
  char *line = NULL;
  size_t cap = 0;
  uint8_t *req = malloc(1 << 20), *resp = malloc(1 << 20);
  int checked = 0;
  while (getline(&line, &cap, f) > 0) {
    if (line[0] == '#')
      continue;
    char *name = strtok(line, "\t"), *rq = strtok(NULL, "\t"), *rs = strtok(NULL, "\t\n");
    if (!name || !rq || !rs || !strncmp(name, "framing", 7) || rs[0] == '\t')
      continue;
    size_t nreq = unhex(rq, req), nresp = unhex(rs, resp);
    /* decode the recorded request to get method, msgid and params */
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    size_t off = 0;
    msgpack_unpack_next(&u, (const char *)req, nreq, &off);
    const msgpack_object *a = u.data.via.array.ptr;
    if (u.data.via.array.size != 4) {
      msgpack_unpacked_destroy(&u);
      continue;
    }
    char method[64];
    snprintf(method, sizeof method, "%.*s", (int)a[2].via.str.size, a[2].via.str.ptr);
    msgpack_sbuffer params;
    msgpack_sbuffer_init(&params);
    if (a[3].via.array.size == 1) {
      msgpack_packer pk;
      msgpack_packer_init(&pk, &params, msgpack_sbuffer_write);
      msgpack_pack_object(&pk, a[3].via.array.ptr[0]);
    }
    int sv[2];
    socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
    (void)!write(sv[1], resp, nresp); /* the recorded reply waits in the socket */
    ewc_t *c;
    ewc_from_fd(sv[0], 2000, &c);
    ewc_set_msgid(c, (uint32_t)a[1].via.u64 - 1); /* line the msgids up */
    ewc_reply_t r;
    int rc = ewc_call(c, method, a[3].via.array.size == 1 ? &params : NULL, &r);
    uint8_t sent[1 << 16];
    ssize_t ns = read(sv[1], sent, sizeof sent);
    CHECK(ns == (ssize_t)nreq && memcmp(sent, req, nreq) == 0, "%s: request bytes differ", name);
    CHECK(rc == 0 || (rc == EWC_ERPC && r.code[0] && r.message[0]), "%s: reply rc %d", name, rc);
    ewc_reply_free(&r);
    ewc_close(c);
    close(sv[1]);
    msgpack_sbuffer_destroy(&params);
    msgpack_unpacked_destroy(&u);
    checked++;
  }
  CHECK(checked >= 20, "checked %d vectors", checked);
  free(line);
  free(req);
  free(resp);
  fclose(f);
}

/* Placement (rendezvous) equals proto/vectors/placement.tsv, which the Python and JS clients
 * check too: every hash and every owner; and the address list of "a,b,c". */
static void placement_matches_the_vectors(void) {
  char path[4096];
  const char *slash = strrchr(vectors, '/');
  snprintf(path, sizeof path, "%.*splacement.tsv", slash ? (int)(slash - vectors + 1) : 0, vectors);
  FILE *f = fopen(path, "r");
  CHECK(f != NULL, "open %s", path);
  if (!f)
    return;
  char line[2048];
  int hashes = 0, places = 0;
  while (fgets(line, sizeof line, f)) {
    if (line[0] == '#')
      continue;
    line[strcspn(line, "\n")] = 0;
    char *kind = strtok(line, "\t"), *run = strtok(NULL, "\t"), *stream = strtok(NULL, "\t"),
         *list = strtok(NULL, "\t"), *want = strtok(NULL, "\t");
    if (!kind || !want)
      continue;
    if (!strcmp(kind, "hash")) {
      char got[17];
      snprintf(got, sizeof got, "%016llx", (unsigned long long)ewc_score(run, stream, list));
      CHECK(!strcmp(got, want), "hash %s %s %s: %s, want %s", run, stream, list, got, want);
      hashes++;
    } else if (!strcmp(kind, "place")) {
      char buf[1024];
      const char *as[16];
      size_t n = ewc_addresses(list, buf, sizeof buf, as, 16);
      size_t i = ewc_place(run, stream, as, n);
      CHECK(n >= 1 && i < n && !strcmp(as[i], want), "place %s %s over %s: %s, want %s", run,
            stream, list, i < n ? as[i] : "(none)", want);
      places++;
    }
  }
  fclose(f);
  CHECK(hashes >= 50 && places >= 100, "%d hashes, %d placements checked", hashes, places);
  /* the run NULL is the default run; an empty list places nothing */
  const char *two[] = {"tcp:a:1", "tcp:b:1"};
  CHECK(ewc_place(NULL, "s", two, 2) == ewc_place("default", "s", two, 2), "NULL run");
  CHECK(ewc_place("r", "s", two, 0) == 0, "no address");
  CHECK(ewc_fnv1a64("a", 1) == 0xaf63dc4c8601ec8cULL && ewc_fnv1a64("", 0) == 0xcbf29ce484222325ULL,
        "FNV-1a-64 of \"a\" and of nothing (the published values)");
  char buf[64];
  const char *as[4];
  size_t n = ewc_addresses(" tcp:a:1, ,tcp:b:2,tcp:a:1 ", buf, sizeof buf, as, 4);
  CHECK(n == 2 && !strcmp(as[0], "tcp:a:1") && !strcmp(as[1], "tcp:b:2"), "addresses: %zu", n);
  CHECK(ewc_addresses("tcp:aaaaaaaa:1,tcp:b:2", buf, 16, as, 4) == 1 &&
            ewc_addresses("tcp:aaaaaaaa:1", buf, 12, as, 4) == 0, "a buffer too small");
}

int main(int argc, char **argv) {
  addr = argc > 1 ? argv[1] : NULL;
  vectors = argc > 2 ? argv[2] : "proto/vectors/v1.tsv";
  TAP_RUN(bad_addresses_and_absent_daemons_fail_cleanly);
  if (addr)
    TAP_RUN(typed_helpers_against_the_daemon);
  TAP_RUN(timeout_when_nobody_answers);
  TAP_RUN(requests_and_replies_match_the_vectors);
  TAP_RUN(placement_matches_the_vectors);
  TAP_DONE();
}
