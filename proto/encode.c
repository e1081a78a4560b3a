/* encode.c — replies from typed value trees. A map's size is the number of its entries whose
 * value is present, counted here as it is packed, so no handler counts keys by hand. Integers go
 * out in msgpack's smallest form and floats as float64, as version 1 always sent them. */
#include "ewp.h"

#include <string.h>

ewp_value_t ewp_vnil(void) { return (ewp_value_t){.t = EWP_V_NIL}; }
ewp_value_t ewp_vbool(bool b) { return (ewp_value_t){.t = EWP_V_BOOL, .v.b = b}; }
ewp_value_t ewp_vu64(uint64_t u) { return (ewp_value_t){.t = EWP_V_U64, .v.u = u}; }
ewp_value_t ewp_vf64(double f) { return (ewp_value_t){.t = EWP_V_F64, .v.f = f}; }
ewp_value_t ewp_vstr(const char *s) { return ewp_vstrn(s, strlen(s)); }
ewp_value_t ewp_vstrn(const char *s, size_t n) {
  return (ewp_value_t){.t = EWP_V_STR, .v.s = {s, n}};
}
ewp_value_t ewp_vbin(const void *p, size_t n) {
  return (ewp_value_t){.t = EWP_V_BIN, .v.s = {p, n}};
}
ewp_value_t ewp_vf64s(const double *p, size_t n) {
  return (ewp_value_t){.t = EWP_V_F64S, .v.fs = {p, n, 1}};
}
ewp_value_t ewp_vf64rows(const double *p, size_t rows, size_t cols) {
  return (ewp_value_t){.t = EWP_V_F64ROWS, .v.fs = {p, rows, cols}};
}
ewp_value_t ewp_vmap(const ewp_kv_t *kv, size_t n) {
  return (ewp_value_t){.t = EWP_V_MAP, .v.map = {kv, n}};
}
ewp_value_t ewp_varray(const ewp_value_t *v, size_t n) {
  return (ewp_value_t){.t = EWP_V_ARRAY, .v.arr = {v, n}};
}
ewp_value_t ewp_vtime(double t) { return t > 0 ? ewp_vf64(t) : ewp_vnil(); }

static void pack_str(msgpack_packer *pk, const char *s, size_t n) {
  msgpack_pack_str(pk, n);
  msgpack_pack_str_body(pk, s, n);
}

void ewp_pack_value(msgpack_packer *pk, const ewp_value_t *v) {
  switch (v->t) {
  case EWP_V_ABSENT: /* only meaningful inside a map; packed alone it is nil */
  case EWP_V_NIL:
    msgpack_pack_nil(pk);
    return;
  case EWP_V_BOOL:
    if (v->v.b)
      msgpack_pack_true(pk);
    else
      msgpack_pack_false(pk);
    return;
  case EWP_V_U64:
    msgpack_pack_uint64(pk, v->v.u);
    return;
  case EWP_V_F64:
    msgpack_pack_double(pk, v->v.f);
    return;
  case EWP_V_STR:
    pack_str(pk, v->v.s.p, v->v.s.n);
    return;
  case EWP_V_BIN:
    msgpack_pack_bin(pk, v->v.s.n);
    msgpack_pack_bin_body(pk, v->v.s.p, v->v.s.n);
    return;
  case EWP_V_F64S:
    msgpack_pack_array(pk, v->v.fs.n);
    for (size_t i = 0; i < v->v.fs.n; i++)
      msgpack_pack_double(pk, v->v.fs.p[i]);
    return;
  case EWP_V_F64ROWS:
    msgpack_pack_array(pk, v->v.fs.n);
    for (size_t i = 0; i < v->v.fs.n; i++) {
      msgpack_pack_array(pk, v->v.fs.cols);
      for (size_t j = 0; j < v->v.fs.cols; j++)
        msgpack_pack_double(pk, v->v.fs.p[i * v->v.fs.cols + j]);
    }
    return;
  case EWP_V_MAP: {
    size_t present = 0;
    for (size_t i = 0; i < v->v.map.n; i++)
      present += v->v.map.kv[i].val.t != EWP_V_ABSENT;
    msgpack_pack_map(pk, present);
    for (size_t i = 0; i < v->v.map.n; i++) {
      const ewp_kv_t *kv = &v->v.map.kv[i];
      if (kv->val.t == EWP_V_ABSENT)
        continue;
      pack_str(pk, kv->key, strlen(kv->key));
      ewp_pack_value(pk, &kv->val);
    }
    return;
  }
  case EWP_V_ARRAY:
    msgpack_pack_array(pk, v->v.arr.n);
    for (size_t i = 0; i < v->v.arr.n; i++)
      ewp_pack_value(pk, &v->v.arr.v[i]);
    return;
  }
}

void ewp_encode_result(msgpack_sbuffer *sb, uint32_t msgid, const ewp_value_t *result) {
  msgpack_packer pk;
  msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
  msgpack_pack_array(&pk, 4);
  msgpack_pack_int(&pk, 1);
  msgpack_pack_uint64(&pk, msgid);
  msgpack_pack_nil(&pk);
  ewp_pack_value(&pk, result);
}

void ewp_encode_error(msgpack_sbuffer *sb, uint32_t msgid, const char *code, const char *message) {
  msgpack_packer pk;
  msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
  msgpack_pack_array(&pk, 4);
  msgpack_pack_int(&pk, 1);
  msgpack_pack_uint64(&pk, msgid);
  ewp_kv_t kv[] = {{"code", ewp_vstr(code)}, {"message", ewp_vstr(message)}};
  ewp_value_t err = ewp_vmap(kv, 2);
  ewp_pack_value(&pk, &err);
  msgpack_pack_nil(&pk);
}
