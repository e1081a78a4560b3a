/* field_batch.c — the fields that carry a batch: `rows` (arrays of numbers, converted to f64
 * into memory the request owns), a tokens batch's `columns`, a stats batch's typed `values` and
 * `counts`, and a paired batch's `x` and `y` arrays ({dtype, data, shape}). Called by field.c's
 * one-field decoder; every refusal names the field (escaped) and says what it takes. */
#include "decode_priv.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int ewp__decode_rows(const msgpack_object *o, const ewp_field_info_t *f, ewp_rows_t *out,
                       ewp_request_t *req, ewp_error_t *err) {
  if (o->type != MSGPACK_OBJECT_ARRAY)
    return ewp__field_error(err, f);
  size_t n = o->via.array.size, d = 0;
  for (size_t i = 0; i < n; i++) {
    const msgpack_object *row = &o->via.array.ptr[i];
    if (row->type != MSGPACK_OBJECT_ARRAY)
      return ewp__fail(err, EWP_EBADREQ, "row %zu is not an array of numbers", i);
    if (i == 0)
      d = row->via.array.size;
    if (row->via.array.size != d)
      return ewp__fail(err, EWP_EBADREQ,
                       "row %zu has %u values; row 0 has %zu (rows must share one "
                       "length)",
                       i, row->via.array.size, d);
  }
  if (n > 0 && (d == 0 || d > EWP_MAX_DIM))
    return ewp__fail(err, EWP_EBADREQ, "rows need 1 to %d values each", EWP_MAX_DIM);
  out->n = n;
  out->d = d;
  out->x = NULL;
  if (n == 0)
    return 0;
  /* n·d elements passed the skim's element limit, so this is bounded by max_elements × 8 */
  double *x = malloc(n * d * sizeof *x);
  if (!x)
    return ewp__fail(err, EWP_ENOMEM, "out of memory for %zu rows of %zu values", n, d);
  for (size_t i = 0; i < n; i++) {
    const msgpack_object *row = &o->via.array.ptr[i];
    for (size_t j = 0; j < d; j++)
      if (!ew_obj_number(&row->via.array.ptr[j], &x[i * d + j])) {
        free(x);
        return ewp__fail(err, EWP_EBADREQ, "rows[%zu][%zu] is not a number", i, j);
      }
  }
  out->x = x;
  req->rows_ = x;
  return 0;
}

int ewp__decode_typed(const msgpack_object *v, const char *what, const char *esc,
                        ewp_column_t *c, ewp_error_t *err) {
  static const char *const dtypes[] = {EWP_ENUM_dtype, NULL};
  bool has_dtype = false, has_data = false;
  if (v->type != MSGPACK_OBJECT_MAP)
    return ewp__fail(err, EWP_EBADREQ, "%s'%s' must be a map {dtype, data}", what, esc);
  for (uint32_t m = 0; m < v->via.map.size; m++) {
    const msgpack_object *mk = &v->via.map.ptr[m].key, *mv = &v->via.map.ptr[m].val;
    const char *p, *q;
    size_t n, qn;
    if (!ew_obj_bytes(mk, &p, &n))
      return ewp__fail(err, EWP_EBADREQ, "%s'%s' has a key that is not a string", what, esc);
    if (n == 5 && memcmp(p, "dtype", 5) == 0 && !has_dtype) {
      int idx = ew_obj_bytes(mv, &q, &qn) ? ewp__enum_index(dtypes, q, qn) : -1;
      if (idx < 0)
        return ewp__fail(err, EWP_EDTYPE, "%s'%s' has a dtype that is not f32, f64, f16 or "
                         "bf16", what, esc);
      c->dtype = idx, has_dtype = true;
    } else if (n == 4 && memcmp(p, "data", 4) == 0 && !has_data && mv->type == MSGPACK_OBJECT_BIN) {
      c->data.p = (const uint8_t *)mv->via.bin.ptr, c->data.n = mv->via.bin.size;
      has_data = true;
    } else {
      return ewp__fail(err, EWP_EBADREQ, "%s'%s' takes dtype (str) and data (bin) once each, "
                       "nothing else", what, esc);
    }
  }
  if (!has_dtype || !has_data)
    return ewp__fail(err, EWP_EBADREQ, "%s'%s' needs dtype and data", what, esc);
  return 0;
}

/* A paired batch's side: {"dtype": str, "data": bin, "shape": [n, d]}, data n·d values. */
int ewp__decode_array(const msgpack_object *v, const char *name, ewp_array_t *a,
                        ewp_error_t *err) {
  static const char *const dtypes[] = {EWP_ENUM_dtype, NULL};
  bool has_dtype = false, has_data = false, has_shape = false;
  if (v->type != MSGPACK_OBJECT_MAP)
    return ewp__fail(err, EWP_EBADREQ, "'%s' must be a map {dtype, data, shape: [n, d]}", name);
  for (uint32_t m = 0; m < v->via.map.size; m++) {
    const msgpack_object *mk = &v->via.map.ptr[m].key, *mv = &v->via.map.ptr[m].val;
    const char *p, *q;
    size_t n, qn;
    if (!ew_obj_bytes(mk, &p, &n))
      return ewp__fail(err, EWP_EBADREQ, "'%s' has a key that is not a string", name);
    if (n == 5 && memcmp(p, "dtype", 5) == 0 && !has_dtype) {
      int idx = ew_obj_bytes(mv, &q, &qn) ? ewp__enum_index(dtypes, q, qn) : -1;
      if (idx < 0)
        return ewp__fail(err, EWP_EDTYPE, "'%s' has a dtype that is not f32, f64, f16 or bf16",
                         name);
      a->dtype = idx, has_dtype = true;
    } else if (n == 4 && memcmp(p, "data", 4) == 0 && !has_data &&
               mv->type == MSGPACK_OBJECT_BIN) {
      a->data.p = (const uint8_t *)mv->via.bin.ptr, a->data.n = mv->via.bin.size;
      has_data = true;
    } else if (n == 5 && memcmp(p, "shape", 5) == 0 && !has_shape) {
      if (mv->type != MSGPACK_OBJECT_ARRAY || mv->via.array.size != 2 ||
          !ew_obj_uint(&mv->via.array.ptr[0], &a->n) || !ew_obj_uint(&mv->via.array.ptr[1], &a->d))
        return ewp__fail(err, EWP_EBADREQ, "'%s' shape must be [n, d] (two integers)", name);
      has_shape = true;
    } else {
      return ewp__fail(err, EWP_EBADREQ, "'%s' takes dtype (str), data (bin) and shape ([n, d]) "
                       "once each, nothing else", name);
    }
  }
  if (!has_dtype || !has_data || !has_shape)
    return ewp__fail(err, EWP_EBADREQ, "'%s' needs dtype, data and shape", name);
  uint64_t esz = ewp_dtype_size(a->dtype);
  if (a->d == 0 || a->d > EWP_MAX_DIM)
    return ewp__fail(err, EWP_EBADREQ, "'%s' shape [n, d] needs 1 <= d <= %d (got d = %llu)",
                     name, EWP_MAX_DIM, (unsigned long long)a->d);
  if (a->n > UINT64_MAX / a->d / esz)
    return ewp__fail(err, EWP_EBADREQ, "'%s' shape [%llu, %llu] needs more than 2^64 bytes",
                     name, (unsigned long long)a->n, (unsigned long long)a->d);
  if (a->n * a->d * esz != a->data.n)
    return ewp__fail(err, EWP_EBADREQ, "'%s' data has %zu bytes but shape [%llu, %llu] of %s "
                     "needs %llu", name, a->data.n, (unsigned long long)a->n,
                     (unsigned long long)a->d, ewp_dtype_name(a->dtype),
                     (unsigned long long)(a->n * a->d * esz));
  return 0;
}

/* A tokens batch's columns: {name: {"dtype": str, "data": bin}}. */
int ewp__decode_columns(const msgpack_object *o, const ewp_field_info_t *f, ewp_columns_t *out,
                          ewp_error_t *err) {
  char esc[96];
  if (o->type != MSGPACK_OBJECT_MAP || o->via.map.size < 1 ||
      o->via.map.size > EWP_COLUMNS_MAX)
    return ewp__field_error(err, f);
  out->n = o->via.map.size;
  for (size_t i = 0; i < out->n; i++) {
    const msgpack_object *k = &o->via.map.ptr[i].key, *v = &o->via.map.ptr[i].val;
    ewp_column_t *c = &out->v[i];
    if (!ew_obj_bytes(k, &c->name.p, &c->name.n))
      return ewp__field_error(err, f);
    ewp_escape(esc, 64, c->name.p, c->name.n);
    for (size_t j = 0; j < i; j++)
      if (out->v[j].name.n == c->name.n && memcmp(out->v[j].name.p, c->name.p, c->name.n) == 0)
        return ewp__fail(err, EWP_EBADREQ, "'columns' names '%s' twice", esc);
    if (ewp__decode_typed(v, "column ", esc, c, err))
      return -1;
  }
  return 0;
}
