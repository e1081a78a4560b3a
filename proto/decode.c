/* decode.c — framed bytes to a typed request (see ewp.h for the order of checks).
 *
 * msgpack-c builds the object tree (its zone is bounded by the skim's element limit, which ran
 * first); this file walks it once against the method's field table and fills the method's struct.
 * Nothing the peer declared sizes an allocation here except `rows`, whose n·d doubles the skim
 * already bounded by max_elements. Every refusal names the field (escaped) and says what it
 * takes. */
#include "decode_priv.h"

#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- cross-field rules ---- */

static int check_create(ewp_create_req_t *r, ewp_error_t *err) {
  if (EWP_HAS(r, EWP_CREATE_dim) && (r->dim < 1 || r->dim > EWP_MAX_DIM))
    return ewp__fail(err, EWP_EBADPARAM, "'dim' must be an integer between 1 and %d", EWP_MAX_DIM);
  /* a matrix stream's create without dim is refused by the handler (with this sentence): a
   * tokens stream's dim is its number of columns */
  if (EWP_HAS(r, EWP_CREATE_world) && (r->world < 1 || r->world > EWP_WORLD_MAX))
    return ewp__fail(err, EWP_EBADPARAM, "'world' must be an integer between 1 and %d",
                     EWP_WORLD_MAX);
  if (EWP_HAS(r, EWP_CREATE_window_steps) && r->window_steps > EWP_WORLD_MAX)
    return ewp__fail(err, EWP_EBADPARAM,
                     "'window_steps' must be a number of steps between 0 and %d", EWP_WORLD_MAX);
  if (EWP_HAS(r, EWP_CREATE_step_timeout) && !(r->step_timeout > 0 && r->step_timeout <= 1e9))
    return ewp__fail(err, EWP_EBADPARAM,
                     "'step_timeout' must be a number of seconds > 0 (and at most "
                     "1e9)");
  return 0;
}

static int check_drop(ewp_drop_req_t *r, ewp_error_t *err) {
  if (!EWP_HAS(r, EWP_DROP_stream) && !EWP_HAS(r, EWP_DROP_run))
    return ewp__fail(err, EWP_EBADREQ, "'stream' (a string) is required, or 'run' alone to drop "
                     "every stream of that run");
  return 0;
}

static int check_history(ewp_history_req_t *r, ewp_error_t *err) {
  if (EWP_HAS(r, EWP_HISTORY_stream) && EWP_HAS(r, EWP_HISTORY_streams))
    return ewp__fail(err, EWP_EBADREQ, "give 'stream' or 'streams', not both");
  for (size_t i = 0; EWP_HAS(r, EWP_HISTORY_streams) && i < r->streams.n; i++)
    if (!ewp_name_valid(r->streams.v[i].p, r->streams.v[i].n)) {
      char esc[96];
      return ewp__fail(err, EWP_EBADREQ, "streams[%zu] '%s' is not a stream name", i,
                  ewp_escape(esc, sizeof esc, r->streams.v[i].p, r->streams.v[i].n));
    }
  if (EWP_HAS(r, EWP_HISTORY_max_points) &&
      (r->max_points < 1 || r->max_points > EWP_HISTORY_POINTS_MAX))
    return ewp__fail(err, EWP_EBADREQ, "'max_points' must be an integer between 1 and %d",
                EWP_HISTORY_POINTS_MAX);
  if (EWP_HAS(r, EWP_HISTORY_from_step) && EWP_HAS(r, EWP_HISTORY_to_step) &&
      r->from_step > r->to_step)
    return ewp__fail(err, EWP_EBADREQ, "'from_step' %llu is after 'to_step' %llu",
                (unsigned long long)r->from_step, (unsigned long long)r->to_step);
  return 0;
}

static int check_subscribe(ewp_subscribe_req_t *r, ewp_error_t *err) {
  if (!EWP_HAS(r, EWP_SUBSCRIBE_stream))
    return 0;
  bool ok = r->stream.n >= 1 && r->stream.n <= EWP_NAME_MAX;
  for (size_t i = 0; ok && i < r->stream.n; i++) {
    char c = r->stream.p[i];
    ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
         c == '_' || c == '.' || c == ':' || c == '/' || c == '-' || c == '*';
  }
  return ok ? 0
            : ewp__fail(err, EWP_EBADREQ,
                        "'stream' must be a stream name or a glob with '*' (1-200 "
                        "bytes of A-Z a-z 0-9 _ . : / - *)");
}

/* A tokens batch: every column holds the same whole number of values, the mask one byte per
 * token, the lengths whole u32s. (Which columns the stream has is the daemon's to check.) */
static int check_columns(const ewp_ingest_req_t *r, ewp_error_t *err) {
  char esc[96];
  uint64_t n = 0;
  for (size_t i = 0; i < r->columns.n; i++) {
    const ewp_column_t *c = &r->columns.v[i];
    size_t esz = ewp_dtype_size(c->dtype);
    ewp_escape(esc, 64, c->name.p, c->name.n);
    if (c->data.n % esz)
      return ewp__fail(err, EWP_EBADREQ, "column '%s' holds %zu bytes, not a whole number of %zu-"
                       "byte values", esc, c->data.n, esz);
    if (i > 0 && c->data.n / esz != n)
      return ewp__fail(err, EWP_EBADREQ, "column '%s' has %zu tokens; column '%.*s' has %llu "
                       "(every column has one value per token)", esc, c->data.n / esz,
                       (int)r->columns.v[0].name.n, r->columns.v[0].name.p,
                       (unsigned long long)n);
    n = c->data.n / esz;
  }
  if (EWP_HAS(r, EWP_INGEST_mask) && r->mask.n != n)
    return ewp__fail(err, EWP_EBADREQ, "'mask' has %zu bytes for %llu tokens (one per token)",
                     r->mask.n, (unsigned long long)n);
  if (EWP_HAS(r, EWP_INGEST_lengths) && r->lengths.n % 4)
    return ewp__fail(err, EWP_EBADREQ, "'lengths' holds %zu bytes, not whole u32s", r->lengths.n);
  return 0;
}

/* A stats batch: values and counts hold whole values, as many of each. */
static int check_values(const ewp_ingest_req_t *r, ewp_error_t *err) {
  size_t ev = ewp_dtype_size(r->values.dtype);
  if (r->values.data.n % ev || r->values.data.n == 0)
    return ewp__fail(err, EWP_EBADREQ, "'values' holds %zu bytes, not a whole number of %zu-byte "
                     "values", r->values.data.n, ev);
  if (EWP_HAS(r, EWP_INGEST_counts) &&
      r->counts.data.n != r->values.data.n / ev * ewp_dtype_size(r->counts.dtype))
    return ewp__fail(err, EWP_EBADREQ, "'counts' must hold one value per cell, as 'values' does "
                     "(%zu)", r->values.data.n / ev);
  return 0;
}

/* A paired batch or nullify's x and y: as many rows each. */
static int check_pair(const ewp_array_t *x, const ewp_array_t *y, ewp_error_t *err) {
  if (x->n != y->n)
    return ewp__fail(err, EWP_EBADREQ, "'x' has %llu rows and 'y' %llu: row i of x pairs with "
                     "row i of y", (unsigned long long)x->n, (unsigned long long)y->n);
  return 0;
}

static int check_ingest(ewp_ingest_req_t *r, ewp_error_t *err) {
  bool data = EWP_HAS(r, EWP_INGEST_data), rows = EWP_HAS(r, EWP_INGEST_rows);
  bool step = EWP_HAS(r, EWP_INGEST_step), marker = step && EWP_HAS(r, EWP_INGEST_end_step) &&
                                                    r->end_step;
  static const struct { int bit; const char *name; } needs_step[] = {
      {EWP_INGEST_rank, "rank"}, {EWP_INGEST_world, "world"}, {EWP_INGEST_end_step, "end_step"}};
  for (size_t i = 0; i < sizeof needs_step / sizeof needs_step[0]; i++)
    if (EWP_HAS(r, needs_step[i].bit) && !step)
      return ewp__fail(err, EWP_EBADREQ, "'%s' needs 'step' (the training step the rows belong to)",
                  needs_step[i].name);
  if (step && r->step > (uint64_t)INT64_MAX)
    return ewp__fail(err, EWP_EBADREQ, "'step' must be an integer below 2^63 (got %llu)",
                (unsigned long long)r->step);
  if (EWP_HAS(r, EWP_INGEST_world) && (r->world < 1 || r->world > EWP_WORLD_MAX))
    return ewp__fail(err, EWP_EBADREQ, "'world' must be an integer between 1 and %d",
                     EWP_WORLD_MAX);
  if (EWP_HAS(r, EWP_INGEST_world) && EWP_HAS(r, EWP_INGEST_rank) && r->rank >= r->world)
    return ewp__fail(err, EWP_EBADREQ, "'rank' %llu is not below 'world' %llu",
                (unsigned long long)r->rank, (unsigned long long)r->world);
  if (EWP_HAS(r, EWP_INGEST_producer) && r->producer.n > EWP_PRODUCER_MAX)
    return ewp__fail(err, EWP_EBADREQ,
                     "'producer' must be a string of at most %d bytes (it has %zu)",
                     EWP_PRODUCER_MAX, r->producer.n);
  if (EWP_HAS(r, EWP_INGEST_producer) != EWP_HAS(r, EWP_INGEST_seq))
    return ewp__fail(err, EWP_EBADREQ,
                     "'producer' and 'seq' go together (one names the sender, the "
                     "other numbers its batches)");
  bool cols = EWP_HAS(r, EWP_INGEST_columns), vals = EWP_HAS(r, EWP_INGEST_values);
  bool px = EWP_HAS(r, EWP_INGEST_x), py = EWP_HAS(r, EWP_INGEST_y);
  if (px || py) { /* a paired batch: x and y alone, with as many rows */
    if (px != py)
      return ewp__fail(err, EWP_EBADREQ, "'x' and 'y' go together (row i of x pairs with row i "
                       "of y)");
    if (cols || vals || data || rows || EWP_HAS(r, EWP_INGEST_dtype) ||
        EWP_HAS(r, EWP_INGEST_shape) || EWP_HAS(r, EWP_INGEST_labels) ||
        EWP_HAS(r, EWP_INGEST_mask) || EWP_HAS(r, EWP_INGEST_lengths))
      return ewp__fail(err, EWP_EBADREQ, "a paired batch is 'x' and 'y' alone (no 'data', "
                       "'rows', 'columns', 'values' or 'labels')");
    return check_pair(&r->x, &r->y, err);
  }
  if (vals && (cols || data || rows || EWP_HAS(r, EWP_INGEST_dtype) ||
               EWP_HAS(r, EWP_INGEST_shape)))
    return ewp__fail(err, EWP_EBADREQ, "send either 'values' (a stats batch), 'columns' (a "
                     "tokens batch) or rows, not two of them");
  if (EWP_HAS(r, EWP_INGEST_counts) && !vals)
    return ewp__fail(err, EWP_EBADREQ, "'counts' go with 'values' (a stats batch)");
  if (vals)
    return check_values(r, err);
  if (data && rows)
    return ewp__fail(err, EWP_EBADREQ,
                     "send either 'data' (with dtype and shape) or 'rows', not both");
  if (cols && (data || rows || EWP_HAS(r, EWP_INGEST_dtype) || EWP_HAS(r, EWP_INGEST_shape)))
    return ewp__fail(err, EWP_EBADREQ, "send either 'columns' (a tokens batch) or rows ('data' "
                     "with dtype and shape, or 'rows'), not both");
  if (!cols && (EWP_HAS(r, EWP_INGEST_mask) || EWP_HAS(r, EWP_INGEST_lengths)))
    return ewp__fail(err, EWP_EBADREQ, "'mask' and 'lengths' go with 'columns' (a tokens batch)");
  if (EWP_HAS(r, EWP_INGEST_labels)) { /* one u32 per row */
    uint64_t n = data && EWP_HAS(r, EWP_INGEST_shape) ? r->shape.n : rows ? r->rows.n : 0;
    if (cols || (!data && !rows))
      return ewp__fail(err, EWP_EBADREQ, "'labels' go with rows ('data' or 'rows'), one per row");
    if (r->labels.n != n * 4)
      return ewp__fail(err, EWP_EBADREQ, "'labels' has %zu bytes for %llu rows (one u32 per row)",
                       r->labels.n, (unsigned long long)n);
  }
  if (cols)
    return check_columns(r, err);
  if (!data && !rows && !marker)
    return ewp__fail(err, EWP_EBADREQ,
                     "ingest needs 'data' (bin) with 'dtype' and 'shape', or 'rows' "
                     "(or 'step' with 'end_step': true to end a step without rows)");
  if (!data)
    return 0;
  if (!EWP_HAS(r, EWP_INGEST_dtype))
    return ewp__fail(err, EWP_EDTYPE, "'dtype' (f32, f64, f16 or bf16) is required with 'data'");
  if (!EWP_HAS(r, EWP_INGEST_shape))
    return ewp__fail(err, EWP_EBADREQ, "'shape' must be [n, d] (two integers)");
  uint64_t a = r->shape.n, b = r->shape.d, esz = ewp_dtype_size(r->dtype);
  if (b == 0 || b > EWP_MAX_DIM)
    return ewp__fail(err, EWP_EBADREQ, "shape [n, d] needs 1 <= d <= %d (got d = %llu)",
                EWP_MAX_DIM, (unsigned long long)b);
  if (a > UINT64_MAX / b / esz)
    return ewp__fail(err, EWP_EBADREQ,
                     "'data' has %zu bytes but shape [%llu, %llu] of %s needs more "
                     "than 2^64",
                     r->data.n, (unsigned long long)a, (unsigned long long)b,
                     ewp_dtype_name(r->dtype));
  if (a * b * esz != r->data.n)
    return ewp__fail(err, EWP_EBADREQ,
                     "'data' has %zu bytes but shape [%llu, %llu] of %s needs %llu", r->data.n,
                     (unsigned long long)a, (unsigned long long)b, ewp_dtype_name(r->dtype),
                     (unsigned long long)(a * b * esz));
  return 0;
}

/* ---- the message ---- */

static const char envelope_shape[] =
    "a message is [0, msgid, method, params] or [2, method, params]";

static void method_list(char *dst, size_t cap) {
  size_t o = 0;
  dst[0] = 0;
  for (int i = 0; i < EWP_METHOD_COUNT && o < cap; i++)
    o += (size_t)snprintf(dst + o, cap - o, "%s%s", i ? " " : "",
                          ewp_method_info((ewp_method_t)i)->name);
}

static void *method_struct(ewp_request_t *req) { return &req->u; }

static int decode_params_map(const msgpack_object *params, ewp_request_t *req, ewp_error_t *err) {
  size_t nf;
  const ewp_field_info_t *fs = ewp_method_fields(req->method, &nf);
  if (ewp__decode_map(params, fs, nf, method_struct(req), ewp_method_info(req->method)->name, req,
                      err))
    return -1;
  switch (req->method) {
  case EWP_METHOD_CREATE: return check_create(&req->u.create, err);
  case EWP_METHOD_INGEST: return check_ingest(&req->u.ingest, err);
  case EWP_METHOD_NULLIFY: return check_pair(&req->u.nullify.x, &req->u.nullify.y, err);
  case EWP_METHOD_HISTORY: return check_history(&req->u.history, err);
  case EWP_METHOD_DROP: return check_drop(&req->u.drop, err);
  case EWP_METHOD_SUBSCRIBE: return check_subscribe(&req->u.subscribe, err);
  default: return 0;
  }
}

/* The envelope's kind and msgid read from the bytes themselves (for an answer when the tree
 * could not be built): [0, msgid, …] as a fixarray of 4 with a uint msgid, [2, …] a notification.
 * Leaves msgid 0 when the bytes say otherwise. */
static void envelope_id(const uint8_t *b, size_t n, ewp_error_t *err) {
  if (n >= 2 && b[0] == 0x93 && b[1] == 0x02) {
    err->notify = true;
    err->counted = true;
    return;
  }
  if (n < 3 || b[0] != 0x94 || b[1] != 0x00)
    return;
  uint64_t id = 0;
  if (b[2] <= 0x7f)
    id = b[2];
  else if (b[2] == 0xcc && n >= 4)
    id = b[3];
  else if (b[2] == 0xcd && n >= 5)
    id = (uint64_t)b[3] << 8 | b[4];
  else if (b[2] == 0xce && n >= 7)
    id = (uint64_t)b[3] << 24 | (uint64_t)b[4] << 16 | (uint64_t)b[5] << 8 | b[6];
  else
    return;
  err->msgid = (uint32_t)id;
  err->counted = true;
}

int ewp_decode(const uint8_t *buf, size_t len, ewp_request_t *req, ewp_error_t *err) {
  memset(req, 0, sizeof *req);
  memset(err, 0, sizeof *err);
  err->method = EWP_METHOD_COUNT;
  msgpack_unpacked_init(&req->upk_);
  size_t off = 0;
  msgpack_unpack_return ur = msgpack_unpack_next(&req->upk_, (const char *)buf, len, &off);
  if (ur == MSGPACK_UNPACK_NOMEM_ERROR) {
    /* the message was framed whole (the skim passed it): an answer, not a framing error */
    ewp_request_free(req);
    envelope_id(buf, len, err);
    return ewp__fail(err, EWP_ENOMEM, "out of memory decoding a %zu-byte message; nothing was done",
                len);
  }
  if (ur != MSGPACK_UNPACK_SUCCESS || off != len) {
    ewp_request_free(req);
    return ewp__fail(err, EWP_EBADREQ, "message is not valid msgpack"), -2;
  }
  const msgpack_object *msg = &req->upk_.data;
  int rc = -1;
  if (msg->type != MSGPACK_OBJECT_ARRAY || msg->via.array.size < 3) {
    ewp__fail(err, EWP_EBADREQ, envelope_shape);
    goto out;
  }
  const msgpack_object *a = msg->via.array.ptr;
  uint64_t type;
  if (!ew_obj_uint(&a[0], &type) || (type != 0 && type != 2) ||
      (type == 0 && msg->via.array.size != 4) || (type == 2 && msg->via.array.size != 3)) {
    uint64_t id = 0;
    if (msg->via.array.size == 4 && ew_obj_uint(&a[1], &id) && id <= UINT32_MAX)
      err->msgid = (uint32_t)id;
    ewp__fail(err, EWP_EBADREQ, envelope_shape);
    goto out;
  }
  bool notify = type == 2;
  err->notify = notify;
  req->kind = notify ? EWP_KIND_NOTIFY : EWP_KIND_REQUEST;
  const msgpack_object *mobj = notify ? &a[1] : &a[2];
  const msgpack_object *pobj = notify ? &a[2] : &a[3];
  uint64_t id = 0;
  if (!notify && (!ew_obj_uint(&a[1], &id) || id > UINT32_MAX)) {
    ewp__fail(err, EWP_EBADREQ, "msgid must be an unsigned 32-bit integer");
    goto out;
  }
  req->msgid = err->msgid = (uint32_t)id;
  err->counted = true;
  const char *mp;
  size_t mn;
  if (!ew_obj_bytes(mobj, &mp, &mn) || mn > EWP_METHOD_NAME_MAX) {
    ewp__fail(err, EWP_EBADREQ, "method must be a string");
    goto out;
  }
  int m = 0;
  while (m < EWP_METHOD_COUNT && !(strlen(ewp_method_info((ewp_method_t)m)->name) == mn &&
                                   !memcmp(ewp_method_info((ewp_method_t)m)->name, mp, mn)))
    m++;
  if (m == EWP_METHOD_COUNT) {
    char esc[96], list[256];
    method_list(list, sizeof list);
    ewp__fail(err, EWP_EUNKMETHOD, "no method '%s' (methods: %s)",
              ewp_escape(esc, sizeof esc, mp, mn), list);
    goto out;
  }
  req->method = err->method = (ewp_method_t)m;
  const msgpack_object *params;
  if (pobj->type == MSGPACK_OBJECT_ARRAY && pobj->via.array.size == 0) {
    params = NULL;
  } else if (pobj->type == MSGPACK_OBJECT_ARRAY && pobj->via.array.size == 1 &&
             pobj->via.array.ptr[0].type == MSGPACK_OBJECT_MAP) {
    params = &pobj->via.array.ptr[0];
  } else if (pobj->type == MSGPACK_OBJECT_MAP) {
    params = pobj;
  } else {
    ewp__fail(err, EWP_EBADREQ, "params must be [] or [{...}] (an array holding one map)");
    goto out;
  }
  if (decode_params_map(params, req, err))
    goto out;
  return 0;
out:
  ewp_request_free(req);
  return rc;
}

void ewp_request_free(ewp_request_t *req) {
  free(req->rows_);
  req->rows_ = NULL;
  free(req->u32s_);
  req->u32s_ = NULL;
  msgpack_unpacked_destroy(&req->upk_);
  msgpack_unpacked_init(&req->upk_);
}
