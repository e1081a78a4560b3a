/* test_codec.c — the skim and the decode helpers: every recorded vector (proto/vectors/v1.tsv)
 * frames exactly, in one read or one byte at a time; hostile headers are refused before any
 * allocation; back-to-back messages split where they should. */
#include "ew_proto.h"
#include "tap.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *vectors_path;

static size_t unhex(const char *h, size_t n, uint8_t *out) {
  size_t k = 0;
  for (size_t i = 0; i + 1 < n; i += 2) {
    unsigned v;
    sscanf(h + i, "%2x", &v);
    out[k++] = (uint8_t)v;
  }
  return k;
}

static ew_skim_status_t skim_all(const uint8_t *b, size_t n, const ew_skim_limits_t *lim,
                                 size_t *mlen) {
  ew_skim_t sk;
  ew_skim_reset(&sk);
  return ew_skim(&sk, b, n, lim, mlen);
}

static void check_message(const char *name, const uint8_t *b, size_t n) {
  ew_skim_limits_t lim;
  ew_skim_limits_default(&lim);
  size_t mlen = 0;
  ew_skim_status_t st = skim_all(b, n, &lim, &mlen);
  CHECK(st == EW_SKIM_DONE && mlen == n, "%s: skim %d len %zu of %zu", name, st, mlen, n);
  /* resumable: one byte at a time gives the same boundary */
  ew_skim_t sk;
  ew_skim_reset(&sk);
  st = EW_SKIM_NEED_MORE;
  for (size_t i = 1; i <= n && st == EW_SKIM_NEED_MORE; i++)
    st = ew_skim(&sk, b, i, &lim, &mlen);
  CHECK(st == EW_SKIM_DONE && mlen == n, "%s: bytewise skim %d len %zu", name, st, mlen);
  msgpack_unpacked u;
  msgpack_unpacked_init(&u);
  size_t off = 0;
  CHECK(msgpack_unpack_next(&u, (const char *)b, n, &off) == MSGPACK_UNPACK_SUCCESS && off == n,
        "%s: msgpack-c decode", name);
  msgpack_unpacked_destroy(&u);
}

static void every_vector_frames_exactly(void) {
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
    char *name = strtok(line, "\t"), *req = strtok(NULL, "\t"), *resp = strtok(NULL, "\t\n");
    if (!name || !req)
      continue;
    size_t n = unhex(req, strlen(req), buf);
    if (strncmp(name, "framing", 7) != 0)
      check_message(name, buf, n);
    if (resp && resp[0] && resp[0] != '\t') {
      n = unhex(resp, strlen(resp), buf);
      check_message(name, buf, n);
    }
    count++;
  }
  CHECK(count >= 20, "only %d vectors", count);
  free(buf);
  free(line);
  fclose(f);
}

static void hostile_headers_are_refused_up_front(void) {
  ew_skim_limits_t lim;
  ew_skim_limits_default(&lim);
  size_t m;
  static const struct {
    const char *name;
    const char *bytes;
    size_t n;
    ew_skim_status_t want;
  } cases[] = {
      {"array32 2^31", "\xdd\x80\x00\x00\x00", 5, EW_SKIM_TOO_LARGE},
      {"bin32 4 GiB", "\x91\xc6\xff\xff\xff\xff", 6, EW_SKIM_TOO_LARGE},
      {"map32 4G pairs", "\xdf\xff\xff\xff\xff", 5, EW_SKIM_TOO_LARGE},
      {"str32 3 GiB", "\xdb\xc0\x00\x00\x00", 5, EW_SKIM_TOO_LARGE},
      {"ext32 2 GiB", "\xc9\x80\x00\x00\x00\x01", 6, EW_SKIM_TOO_LARGE},
      {"0xc1", "\x93\x00\xc1", 3, EW_SKIM_BAD_BYTE},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
    CHECK(skim_all((const uint8_t *)cases[i].bytes, cases[i].n, &lim, &m) == cases[i].want,
          "%s", cases[i].name);
  uint8_t *deep = malloc(100000);
  memset(deep, 0x91, 100000);
  CHECK(skim_all(deep, 100000, &lim, &m) == EW_SKIM_TOO_DEEP, "100k nesting");
  free(deep);
  ew_skim_limits_t small = lim;
  small.max_elements = 10;
  CHECK(skim_all((const uint8_t *)"\xdc\x00\x20", 3, &small, &m) == EW_SKIM_TOO_MANY, "elements");
  small = lim;
  small.max_bytes = 100;
  CHECK(skim_all((const uint8_t *)"\xc5\x00\xff", 3, &small, &m) == EW_SKIM_TOO_LARGE, "bin16 > cap");
  /* an honest prefix under the caps just waits for more bytes */
  CHECK(skim_all((const uint8_t *)"\x94\x00\x01\xa4pi", 6, &lim, &m) == EW_SKIM_NEED_MORE, "prefix");
}

static void back_to_back_messages_split_at_the_boundary(void) {
  const uint8_t two[] = {0x93, 0x02, 0xa1, 'x', 0x90, 0x94, 0x00, 0x01, 0xa1, 'y', 0x90};
  ew_skim_limits_t lim;
  ew_skim_limits_default(&lim);
  size_t m = 0;
  CHECK(skim_all(two, sizeof two, &lim, &m) == EW_SKIM_DONE && m == 5, "first ends at 5 (%zu)", m);
  CHECK(skim_all(two + 5, sizeof two - 5, &lim, &m) == EW_SKIM_DONE && m == 6, "second is 6");
  const uint8_t empty_top[] = {0x90};
  CHECK(skim_all(empty_top, 1, &lim, &m) == EW_SKIM_DONE && m == 1, "empty array");
}

/* ew_skim_need: for every prefix of a message, a lower bound of its length, at least the bytes
 * present, and the end of a bin as soon as the bin's header is present. */
static void skim_need_bounds_the_message(void) {
  msgpack_sbuffer sb;
  msgpack_sbuffer_init(&sb);
  msgpack_packer pk;
  msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
  static char data[100000];
  msgpack_pack_array(&pk, 4);
  msgpack_pack_uint8(&pk, 0);
  msgpack_pack_uint8(&pk, 1);
  ew_pack_str(&pk, "ingest");
  msgpack_pack_array(&pk, 1);
  msgpack_pack_map(&pk, 3);
  ew_pack_str(&pk, "stream");
  ew_pack_str(&pk, "s");
  ew_pack_str(&pk, "data");
  size_t bin_at = sb.size;
  msgpack_pack_bin(&pk, sizeof data);
  msgpack_pack_bin_body(&pk, data, sizeof data);
  size_t bin_end = sb.size;
  ew_pack_str(&pk, "shape");
  msgpack_pack_array(&pk, 2);
  msgpack_pack_uint32(&pk, 25000);
  msgpack_pack_uint8(&pk, 1);
  ew_skim_limits_t lim;
  ew_skim_limits_default(&lim);
  const uint8_t *b = (const uint8_t *)sb.data;
  size_t n = sb.size, bad = 0, early = 0;
  for (size_t i = 0; i < n; i += i < bin_at + 8 || i > bin_end - 8 ? 1 : 997) {
    ew_skim_t sk;
    size_t m = 0;
    ew_skim_reset(&sk);
    if (ew_skim(&sk, b, i, &lim, &m) != EW_SKIM_NEED_MORE) {
      bad++;
      continue;
    }
    size_t need = ew_skim_need(&sk, b, i);
    bad += need > n || need < i || need == 0;
    early += i >= bin_at + 5 && need < bin_end;
  }
  CHECK(bad == 0, "%zu prefixes of %zu bytes with a bound over the length or under the bytes "
        "present", bad, n);
  CHECK(early == 0, "%zu prefixes with the bin's header but a bound before its end", early);
  msgpack_sbuffer_destroy(&sb);
}

static void map_lookup_and_numbers(void) {
  msgpack_sbuffer sb;
  msgpack_sbuffer_init(&sb);
  msgpack_packer pk;
  msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
  msgpack_pack_map(&pk, 3);
  ew_pack_str(&pk, "n");
  msgpack_pack_uint64(&pk, 42);
  msgpack_pack_bin(&pk, 1);
  msgpack_pack_bin_body(&pk, "f", 1);
  msgpack_pack_double(&pk, 3.0);
  ew_pack_str(&pk, "neg");
  msgpack_pack_int(&pk, -2);
  msgpack_unpacked u;
  msgpack_unpacked_init(&u);
  size_t off = 0;
  msgpack_unpack_next(&u, sb.data, sb.size, &off);
  const msgpack_object *o;
  uint64_t v;
  double x;
  CHECK((o = ew_map_get(&u.data, "n")) && ew_obj_uint(o, &v) && v == 42, "uint");
  CHECK((o = ew_map_get(&u.data, "f")) && ew_obj_uint(o, &v) && v == 3, "bin key, integral float");
  CHECK((o = ew_map_get(&u.data, "neg")) && !ew_obj_uint(o, &v) && ew_obj_number(o, &x) && x == -2,
        "negative");
  CHECK(ew_map_get(&u.data, "missing") == NULL, "missing key");
  msgpack_unpacked_destroy(&u);
  msgpack_sbuffer_destroy(&sb);
}

int main(int argc, char **argv) {
  vectors_path = argc > 1 ? argv[1] : "proto/vectors/v1.tsv";
  TAP_RUN(every_vector_frames_exactly);
  TAP_RUN(hostile_headers_are_refused_up_front);
  TAP_RUN(back_to_back_messages_split_at_the_boundary);
  TAP_RUN(skim_need_bounds_the_message);
  TAP_RUN(map_lookup_and_numbers);
  TAP_DONE();
}
