/* fuzz_decoder.c — libFuzzer target for the wire decoder: arbitrary bytes go through the skim
 * (all at once and in two pieces), and every message it accepts through msgpack-c and the
 * request helpers the daemon uses on the envelope and params. Built and run by run_fuzz.sh. */
#include "ew_proto.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static void walk_request(const msgpack_object *m) {
  if (m->type != MSGPACK_OBJECT_ARRAY || m->via.array.size < 3)
    return;
  const msgpack_object *a = m->via.array.ptr;
  uint64_t u;
  double x;
  const char *p;
  size_t n;
  (void)ew_obj_uint(&a[0], &u);
  (void)ew_obj_bytes(&a[m->via.array.size == 4 ? 2 : 1], &p, &n);
  const msgpack_object *params = &a[m->via.array.size - 1];
  if (params->type == MSGPACK_OBJECT_ARRAY && params->via.array.size == 1)
    params = &params->via.array.ptr[0];
  static const char *keys[] = {"stream", "data", "dtype", "shape", "rows", "metrics", "params"};
  for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
    const msgpack_object *o = ew_map_get(params, keys[i]);
    if (o) {
      (void)ew_obj_number(o, &x);
      (void)ew_obj_uint(o, &u);
      (void)ew_obj_bytes(o, &p, &n);
      (void)ew_obj_streq(o, "f32");
    }
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  ew_skim_limits_t lim;
  ew_skim_limits_default(&lim);
  lim.max_bytes = 1 << 16;
  lim.max_elements = 1 << 14;
  size_t off = 0;
  while (off < size) {
    ew_skim_t sk;
    ew_skim_reset(&sk);
    size_t mlen = 0, split = (size - off) / 2;
    ew_skim_status_t st = ew_skim(&sk, data + off, split, &lim, &mlen);
    if (st == EW_SKIM_NEED_MORE)
      st = ew_skim(&sk, data + off, size - off, &lim, &mlen);
    if (st != EW_SKIM_DONE)
      return 0;
    if (mlen == 0 || mlen > size - off)
      abort(); /* the skim must never claim bytes it was not given */
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    size_t used = 0;
    if (msgpack_unpack_next(&u, (const char *)data + off, mlen, &used) == MSGPACK_UNPACK_SUCCESS)
      walk_request(&u.data);
    msgpack_unpacked_destroy(&u);
    off += mlen;
  }
  return 0;
}
