/* codec.c — small helpers over msgpack-c objects for decoding requests and packing replies.
 * Decoding happens only after ew_skim has accepted the message's bytes. Map keys may be str or
 * bin (msgpack-numpy and Python bytes keys send bin). */
#include "ew_proto.h"

#include <math.h>
#include <string.h>

bool ew_obj_bytes(const msgpack_object *o, const char **p, size_t *len) {
  if (o->type == MSGPACK_OBJECT_STR) {
    *p = o->via.str.ptr;
    *len = o->via.str.size;
    return true;
  }
  if (o->type == MSGPACK_OBJECT_BIN) {
    *p = o->via.bin.ptr;
    *len = o->via.bin.size;
    return true;
  }
  return false;
}

bool ew_obj_streq(const msgpack_object *o, const char *s) {
  const char *p;
  size_t n;
  return ew_obj_bytes(o, &p, &n) && strlen(s) == n && memcmp(p, s, n) == 0;
}

const msgpack_object *ew_map_get(const msgpack_object *m, const char *key) {
  if (!m || m->type != MSGPACK_OBJECT_MAP)
    return NULL;
  for (uint32_t i = 0; i < m->via.map.size; i++)
    if (ew_obj_streq(&m->via.map.ptr[i].key, key))
      return &m->via.map.ptr[i].val;
  return NULL;
}

bool ew_obj_number(const msgpack_object *o, double *out) {
  switch (o->type) {
  case MSGPACK_OBJECT_POSITIVE_INTEGER:
    *out = (double)o->via.u64;
    return true;
  case MSGPACK_OBJECT_NEGATIVE_INTEGER:
    *out = (double)o->via.i64;
    return true;
  case MSGPACK_OBJECT_FLOAT32:
  case MSGPACK_OBJECT_FLOAT64:
    *out = o->via.f64;
    return true;
  default:
    return false;
  }
}

bool ew_obj_uint(const msgpack_object *o, uint64_t *out) {
  if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
    *out = o->via.u64;
    return true;
  }
  if ((o->type == MSGPACK_OBJECT_FLOAT32 || o->type == MSGPACK_OBJECT_FLOAT64) &&
      o->via.f64 >= 0 && o->via.f64 < 1.8e19 && o->via.f64 == floor(o->via.f64)) {
    *out = (uint64_t)o->via.f64;
    return true;
  }
  return false;
}

void ew_pack_str(msgpack_packer *pk, const char *s) {
  size_t n = strlen(s);
  msgpack_pack_str(pk, n);
  msgpack_pack_str_body(pk, s, n);
}

void ew_pack_error_response(msgpack_packer *pk, uint64_t msgid, const char *code,
                            const char *message) {
  msgpack_pack_array(pk, 4);
  msgpack_pack_int(pk, 1);
  msgpack_pack_uint64(pk, msgid);
  msgpack_pack_map(pk, 2);
  ew_pack_str(pk, "code");
  ew_pack_str(pk, code);
  ew_pack_str(pk, "message");
  ew_pack_str(pk, message);
  msgpack_pack_nil(pk);
}

void ew_pack_result_header(msgpack_packer *pk, uint64_t msgid) {
  msgpack_pack_array(pk, 4);
  msgpack_pack_int(pk, 1);
  msgpack_pack_uint64(pk, msgid);
  msgpack_pack_nil(pk);
}
