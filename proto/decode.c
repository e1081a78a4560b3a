/* decode.c — framed bytes to a typed request (see ewp.h for the order of checks).
 *
 * msgpack-c builds the object tree (its zone is bounded by the skim's element limit, which ran
 * first); this file walks it once against the method's field table and fills the method's struct.
 * Nothing the peer declared sizes an allocation here except `rows`, whose n·d doubles the skim
 * already bounded by max_elements. Every refusal names the field (escaped) and says what it
 * takes. */
#include "ewp.h"

#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- tables ---- */

static const ewp_method_info_t methods[EWP_METHOD_COUNT] = {
#define EWP__XX(id, name, flags, doc) {name, flags, doc},
    EWP_METHOD_MAP(EWP__XX)
#undef EWP__XX
};

const ewp_method_info_t *ewp_method_info(ewp_method_t m) {
  return (unsigned)m < EWP_METHOD_COUNT ? &methods[m] : NULL;
}

/* ENUM fields find their strings by member name (ewp__enum_<member>); other fields get NULL. The
 * configuration's ENUM fields take theirs from the library's EW_ENUM_<member> lists. */
static const char *const ewp__enum_source[] = {EWP_ENUM_source, NULL};
static const char *const ewp__enum_method[] = {EWP_ENUM_method, NULL};
static const char *const ewp__enum_dtype[] = {EWP_ENUM_dtype, NULL};
static const char *const ewp__enum_agg[] = {EWP_ENUM_agg, NULL};
static const char *const ewp__enum_when[] = {EWP_ENUM_when, NULL};
#define EWP__ENUM_NAME(value, name) name,
#define EWP__CONF_ENUM_COUNT(member, wire)
#define EWP__CONF_ENUM_U64(member, wire)
#define EWP__CONF_ENUM_REAL_OFF(member, wire)
#define EWP__CONF_ENUM_ENUM(member, wire)                                                         \
  static const char *const ewp__enum_##wire[] = {EW_ENUM_##member(EWP__ENUM_NAME) NULL};
#define EWP__CONF_ENUM(member, wire, old, type, ...) EWP__CONF_ENUM_##type(member, wire)
EW_CONFIG_MAP(EWP__CONF_ENUM)
#define EWP__VALUES(member, type) EWP__VALUES_##type(member)
#define EWP__VALUES_ENUM(member) ewp__enum_##member
#define EWP__VALUES_NAME(member) NULL
#define EWP__VALUES_STR(member) NULL
#define EWP__VALUES_UINT(member) NULL
#define EWP__VALUES_NUM(member) NULL
#define EWP__VALUES_BOOL(member) NULL
#define EWP__VALUES_BIN(member) NULL
#define EWP__VALUES_SHAPE(member) NULL
#define EWP__VALUES_ROWS(member) NULL
#define EWP__VALUES_NAMES(member) NULL
#define EWP__VALUES_PARAMS(member) NULL
#define EWP__VALUES_EVALS(member) NULL
#define EWP__VALUES_RULES(member) NULL

#define EWP__ROW_CREATE(member, type, flags, wt, def, code, err, doc)                             \
  {#member, EWP_T_##type, flags, wt, def, code, err, doc, offsetof(ewp_create_req_t, member),       \
   EWP__VALUES(member, type)},
#define EWP__ROW_INGEST(member, type, flags, wt, def, code, err, doc)                             \
  {#member, EWP_T_##type, flags, wt, def, code, err, doc, offsetof(ewp_ingest_req_t, member),      \
   EWP__VALUES(member, type)},
#define EWP__ROW_QUERY(member, type, flags, wt, def, code, err, doc)                              \
  {#member, EWP_T_##type, flags, wt, def, code, err, doc, offsetof(ewp_query_req_t, member),       \
   EWP__VALUES(member, type)},
#define EWP__ROW_INFO(member, type, flags, wt, def, code, err, doc)                               \
  {#member, EWP_T_##type, flags, wt, def, code, err, doc, offsetof(ewp_info_req_t, member),        \
   EWP__VALUES(member, type)},
#define EWP__ROW_AUTH(member, type, flags, wt, def, code, err, doc)                               \
  {#member, EWP_T_##type, flags, wt, def, code, err, doc, offsetof(ewp_auth_req_t, member),        \
   EWP__VALUES(member, type)},

static const ewp_field_info_t f_create[] = {EWP_FIELDS_CREATE(EWP__ROW_CREATE)};
static const ewp_field_info_t f_ingest[] = {EWP_FIELDS_INGEST(EWP__ROW_INGEST)};
static const ewp_field_info_t f_query[] = {EWP_FIELDS_QUERY(EWP__ROW_QUERY)};
static const ewp_field_info_t f_stream[] = {EWP_FIELDS_INFO(EWP__ROW_INFO)};
static const ewp_field_info_t f_auth[] = {EWP_FIELDS_AUTH(EWP__ROW_AUTH)};
#define EWP__ROW_MERGE(member, type, flags, wt, def, code, err, doc)                              \
  {#member, EWP_T_##type, flags, wt, def, code, err, doc, offsetof(ewp_merge_req_t, member),       \
   EWP__VALUES(member, type)},
static const ewp_field_info_t f_merge[] = {EWP_FIELDS_MERGE(EWP__ROW_MERGE)};
#define EWP__ROW_LIST(member, type, flags, wt, def, code, err, doc)                               \
  {#member, EWP_T_##type, flags, wt, def, code, err, doc, offsetof(ewp_list_req_t, member),        \
   EWP__VALUES(member, type)},
static const ewp_field_info_t f_list[] = {EWP_FIELDS_LIST(EWP__ROW_LIST)};
#define EWP__ROW_HISTORY(member, type, flags, wt, def, code, err, doc)                            \
  {#member, EWP_T_##type, flags, wt, def, code, err, doc, offsetof(ewp_history_req_t, member),     \
   EWP__VALUES(member, type)},
static const ewp_field_info_t f_history[] = {EWP_FIELDS_HISTORY(EWP__ROW_HISTORY)};
#define EWP__ROW_EVAL(member, type, flags, wt, def, code, err, doc)                               \
  {#member, EWP_T_##type, flags, wt, def, code, err, doc, offsetof(ewp_eval_t, member),            \
   EWP__VALUES(member, type)},
static const ewp_field_info_t f_eval[] = {EWP_FIELDS_EVAL(EWP__ROW_EVAL)};

const ewp_field_info_t *ewp_eval_fields(size_t *n) {
  *n = sizeof f_eval / sizeof f_eval[0];
  return f_eval;
}

#define EWP__ROW_RULE(member, type, flags, wt, def, code, err, doc)                               \
  {#member, EWP_T_##type, flags, wt, def, code, err, doc, offsetof(ewp_rule_t, member),            \
   EWP__VALUES(member, type)},
static const ewp_field_info_t f_rule[] = {EWP_FIELDS_RULE(EWP__ROW_RULE)};

const ewp_field_info_t *ewp_rule_fields(size_t *n) {
  *n = sizeof f_rule / sizeof f_rule[0];
  return f_rule;
}

#define EWP__ROW_SUBSCRIBE(member, type, flags, wt, def, code, err, doc)                          \
  {#member, EWP_T_##type, flags, wt, def, code, err, doc, offsetof(ewp_subscribe_req_t, member),   \
   EWP__VALUES(member, type)},
static const ewp_field_info_t f_subscribe[] = {EWP_FIELDS_SUBSCRIBE(EWP__ROW_SUBSCRIBE)};
#define EWP__ROW_UNSUBSCRIBE(member, type, flags, wt, def, code, err, doc)                        \
  {#member, EWP_T_##type, flags, wt, def, code, err, doc,                                         \
   offsetof(ewp_unsubscribe_req_t, member), EWP__VALUES(member, type)},
static const ewp_field_info_t f_unsubscribe[] = {EWP_FIELDS_UNSUBSCRIBE(EWP__ROW_UNSUBSCRIBE)};
#define EWP__ROW_ALERT_SET(member, type, flags, wt, def, code, err, doc)                          \
  {#member, EWP_T_##type, flags, wt, def, code, err, doc, offsetof(ewp_alert_set_req_t, member),   \
   EWP__VALUES(member, type)},
static const ewp_field_info_t f_alert_set[] = {EWP_FIELDS_ALERT_SET(EWP__ROW_ALERT_SET)};
#define EWP__ROW_ALERTS(member, type, flags, wt, def, code, err, doc)                             \
  {#member, EWP_T_##type, flags, wt, def, code, err, doc, offsetof(ewp_alerts_req_t, member),      \
   EWP__VALUES(member, type)},
static const ewp_field_info_t f_alerts[] = {EWP_FIELDS_ALERTS(EWP__ROW_ALERTS)};

/* info, reset and drop share one layout (a stream name) */
_Static_assert(offsetof(ewp_info_req_t, stream) == offsetof(ewp_reset_req_t, stream) &&
                       offsetof(ewp_info_req_t, stream) == offsetof(ewp_drop_req_t, stream) &&
                   offsetof(ewp_info_req_t, stream) == offsetof(ewp_export_req_t, stream) &&
                   offsetof(ewp_info_req_t, stream) == offsetof(ewp_flush_req_t, stream) &&
                   sizeof(ewp_info_req_t) == sizeof(ewp_flush_req_t),
               "stream-only requests share a layout");
_Static_assert(sizeof(f_create) / sizeof f_create[0] <= 32, "has is 32 bits");
_Static_assert(sizeof(f_ingest) / sizeof f_ingest[0] <= 32, "has is 32 bits");

const ewp_field_info_t *ewp_method_fields(ewp_method_t m, size_t *n) {
#define EWP__N(a) (sizeof(a) / sizeof(a)[0])
  switch (m) {
  case EWP_METHOD_CREATE: *n = EWP__N(f_create); return f_create;
  case EWP_METHOD_INGEST: *n = EWP__N(f_ingest); return f_ingest;
  case EWP_METHOD_QUERY: *n = EWP__N(f_query); return f_query;
  case EWP_METHOD_INFO:
  case EWP_METHOD_RESET:
  case EWP_METHOD_DROP:
  case EWP_METHOD_EXPORT:
  case EWP_METHOD_FLUSH: *n = EWP__N(f_stream); return f_stream;
  case EWP_METHOD_MERGE: *n = EWP__N(f_merge); return f_merge;
  case EWP_METHOD_LIST: *n = EWP__N(f_list); return f_list;
  case EWP_METHOD_HISTORY: *n = EWP__N(f_history); return f_history;
  case EWP_METHOD_SUBSCRIBE: *n = EWP__N(f_subscribe); return f_subscribe;
  case EWP_METHOD_UNSUBSCRIBE: *n = EWP__N(f_unsubscribe); return f_unsubscribe;
  case EWP_METHOD_ALERT_SET: *n = EWP__N(f_alert_set); return f_alert_set;
  case EWP_METHOD_ALERTS: *n = EWP__N(f_alerts); return f_alerts;
  case EWP_METHOD_AUTH: *n = EWP__N(f_auth); return f_auth;
  default: *n = 0; return NULL;
  }
#undef EWP__N
}

/* The library's wire names by code, from its table (EW_ERRNO_MAP); no function of it is called. */
static const char *const lib_wire_names[EW__ERR_END - EW__ERR_BASE] = {
#define EWP__XX(s, wire, msg) [EW_E##s - EW__ERR_BASE] = wire,
    EW_ERRNO_MAP(EWP__XX)
#undef EWP__XX
};

const char *ewp_code_name(ewp_code_t code) {
  switch (code) {
  case EWP_OK: return "OK";
#define EWP__XX(s)                                                                                \
  case EWP_E##s:                                                                                  \
    return lib_wire_names[EW_E##s - EW__ERR_BASE];
    EWP_CODE_MAP(EWP__XX)
#undef EWP__XX
  case EWP__CODE_END: break;
  }
  return "INTERNAL";
}

static const size_t dtype_sizes[] = {4, 8, 2, 2};
static const char *const dtype_names[] = {"f32", "f64", "f16", "bf16"};

size_t ewp_dtype_size(int dtype) { return dtype >= 0 && dtype < 4 ? dtype_sizes[dtype] : 0; }
const char *ewp_dtype_name(int dtype) { return dtype >= 0 && dtype < 4 ? dtype_names[dtype] : "?"; }

/* ---- helpers ---- */

static int fail(ewp_error_t *err, ewp_code_t code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int fail(ewp_error_t *err, ewp_code_t code, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err->message, sizeof err->message, fmt, ap);
  va_end(ap);
  err->code = code;
  return -1;
}

static bool obj_bytes(const msgpack_object *o, const char **p, size_t *n) {
  return ew_obj_bytes(o, p, n);
}

/* A str must be UTF-8; a bin key or value is taken as bytes (Python bytes keys send bin). */
static bool obj_text(const msgpack_object *o, const char **p, size_t *n) {
  if (!obj_bytes(o, p, n))
    return false;
  return o->type == MSGPACK_OBJECT_BIN || ewp_utf8_valid(*p, *n);
}

static bool name_charset(const char *p, size_t n) {
  if (n < 1 || n > EWP_NAME_MAX)
    return false;
  for (size_t i = 0; i < n; i++) {
    char c = p[i];
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
          c == '.' || c == ':' || c == '/' || c == '-'))
      return false;
  }
  return true;
}

/* Names become file names (snapshots): no part between slashes may be empty, "." or "..". */
static bool name_parts_ok(const char *p, size_t n) {
  size_t start = 0;
  for (size_t i = 0; i <= n; i++) {
    if (i < n && p[i] != '/')
      continue;
    size_t len = i - start;
    if (len == 0 || (len == 1 && p[start] == '.') ||
        (len == 2 && p[start] == '.' && p[start + 1] == '.'))
      return false;
    start = i + 1;
  }
  return true;
}

bool ewp_name_valid(const char *p, size_t n) { return name_charset(p, n) && name_parts_ok(p, n); }

bool ewp_series_valid(const char *p, size_t n) {
  if (n < 1 || n > EWP_SERIES_MAX || !(p[0] >= 'a' && p[0] <= 'z'))
    return false;
  for (size_t i = 1; i < n; i++)
    if (!((p[i] >= 'a' && p[i] <= 'z') || (p[i] >= '0' && p[i] <= '9') || p[i] == '_'))
      return false;
  return true;
}

static int enum_index(const char *const *values, const char *p, size_t n) {
  for (int i = 0; values[i]; i++) {
    const char *v = values[i];
    while (*v) { /* aliases separated by '|' */
      const char *e = strchr(v, '|');
      size_t l = e ? (size_t)(e - v) : strlen(v);
      if (l == n && memcmp(v, p, n) == 0)
        return i;
      v += l + (e ? 1 : 0);
    }
  }
  return -1;
}

static bool obj_number(const msgpack_object *o, double *out) { return ew_obj_number(o, out); }

/* ---- one field ---- */

static int field_error(ewp_error_t *err, const ewp_field_info_t *f) {
  return fail(err, f->code, "%s", f->error);
}

static int decode_rows(const msgpack_object *o, const ewp_field_info_t *f, ewp_rows_t *out,
                       ewp_request_t *req, ewp_error_t *err) {
  if (o->type != MSGPACK_OBJECT_ARRAY)
    return field_error(err, f);
  size_t n = o->via.array.size, d = 0;
  for (size_t i = 0; i < n; i++) {
    const msgpack_object *row = &o->via.array.ptr[i];
    if (row->type != MSGPACK_OBJECT_ARRAY)
      return fail(err, EWP_EBADREQ, "row %zu is not an array of numbers", i);
    if (i == 0)
      d = row->via.array.size;
    if (row->via.array.size != d)
      return fail(err, EWP_EBADREQ, "row %zu has %u values; row 0 has %zu (rows must share one "
                  "length)", i, row->via.array.size, d);
  }
  if (n > 0 && (d == 0 || d > EWP_MAX_DIM))
    return fail(err, EWP_EBADREQ, "rows need 1 to %d values each", EWP_MAX_DIM);
  out->n = n;
  out->d = d;
  out->x = NULL;
  if (n == 0)
    return 0;
  /* n·d elements passed the skim's element limit, so this is bounded by max_elements × 8 */
  double *x = malloc(n * d * sizeof *x);
  if (!x)
    return fail(err, EWP_ENOMEM, "out of memory for %zu rows of %zu values", n, d);
  for (size_t i = 0; i < n; i++) {
    const msgpack_object *row = &o->via.array.ptr[i];
    for (size_t j = 0; j < d; j++)
      if (!obj_number(&row->via.array.ptr[j], &x[i * d + j])) {
        free(x);
        return fail(err, EWP_EBADREQ, "rows[%zu][%zu] is not a number", i, j);
      }
  }
  out->x = x;
  req->rows_ = x;
  return 0;
}

static int decode_names(const msgpack_object *o, const ewp_field_info_t *f, ewp_names_t *out,
                        ewp_error_t *err) {
  const msgpack_object *list = o;
  size_t n;
  if (o->type == MSGPACK_OBJECT_STR || o->type == MSGPACK_OBJECT_BIN) {
    n = 1;
  } else if (o->type == MSGPACK_OBJECT_ARRAY && o->via.array.size >= 1 &&
             o->via.array.size <= EWP_NAMES_MAX) {
    n = o->via.array.size;
    list = o->via.array.ptr;
  } else {
    return field_error(err, f);
  }
  out->n = n;
  for (size_t i = 0; i < n; i++) {
    if (!obj_bytes(&list[i], &out->v[i].p, &out->v[i].n))
      return fail(err, EWP_EBADREQ, "%s[%zu] is not a string", f->name, i);
    for (size_t k = 0; k < i; k++)
      if (out->v[k].n == out->v[i].n && memcmp(out->v[k].p, out->v[i].p, out->v[i].n) == 0) {
        char esc[96];
        return fail(err, EWP_EBADREQ, "'%s' names '%s' twice (ask for each once)", f->name,
                    ewp_escape(esc, sizeof esc, out->v[i].p, out->v[i].n));
      }
  }
  return 0;
}

static int decode_params(const msgpack_object *o, const ewp_field_info_t *f, ewp_params_t *out,
                         ewp_error_t *err) {
  if (o->type != MSGPACK_OBJECT_MAP)
    return field_error(err, f);
  if (o->via.map.size > EWP_PARAMS_MAX)
    return fail(err, EWP_EBADPARAM, "too many parameters");
  out->n = o->via.map.size;
  char esc[96];
  for (size_t i = 0; i < out->n; i++) {
    const msgpack_object *k = &o->via.map.ptr[i].key, *v = &o->via.map.ptr[i].val;
    ewp_param_t *p = &out->v[i];
    const char *kp;
    size_t kn;
    if (!obj_bytes(k, &kp, &kn))
      return fail(err, EWP_EBADREQ, "'%s' keys must be strings", f->name);
    if (kn > EWP_PARAM_KEY_MAX)
      return fail(err, EWP_EBADPARAM, "a parameter name is at most %d bytes (got %zu)",
                  EWP_PARAM_KEY_MAX, kn);
    p->key = kp;
    p->key_n = (uint16_t)kn;
    for (size_t j = 0; j < i; j++)
      if (out->v[j].key_n == p->key_n && memcmp(out->v[j].key, p->key, p->key_n) == 0)
        return fail(err, EWP_EBADREQ, "duplicate key '%s' in '%s'",
                    ewp_escape(esc, sizeof esc, p->key, p->key_n), f->name);
    if (v->type == MSGPACK_OBJECT_BOOLEAN) {
      p->type = EWP_PV_BOOL;
      p->value = v->via.boolean ? 1 : 0;
    } else if (v->type == MSGPACK_OBJECT_STR) {
      size_t sn;
      p->type = EWP_PV_STR;
      if (!obj_text(v, &p->str, &sn) || sn > EWP_PARAM_STR_MAX)
        return fail(err, EWP_EBADPARAM, "parameter '%s' must be a number, a bool or a UTF-8 "
                    "string of at most %d bytes", ewp_escape(esc, sizeof esc, p->key, p->key_n),
                    EWP_PARAM_STR_MAX);
      p->str_n = (uint32_t)sn;
    } else if (obj_number(v, &p->value)) {
      p->type = EWP_PV_NUM;
    } else {
      return fail(err, EWP_EBADPARAM, "parameter '%s' must be a number, a bool or a string",
                  ewp_escape(esc, sizeof esc, p->key, p->key_n));
    }
  }
  return 0;
}

static int decode_map(const msgpack_object *map, const ewp_field_info_t *fs, size_t nf,
                      void *dst, const char *what, ewp_request_t *req, ewp_error_t *err);

static int check_eval(ewp_eval_t *e, ewp_error_t *err) {
  int ways = EWP_HAS(e, EWP_EVAL_every) + EWP_HAS(e, EWP_EVAL_every_rows) +
             EWP_HAS(e, EWP_EVAL_every_s);
  if (ways > 1)
    return fail(err, EWP_EBADPARAM, "give one of 'every' (steps), 'every_rows' or 'every_s'");
  if (EWP_HAS(e, EWP_EVAL_as) && !ewp_series_valid(e->as.p, e->as.n)) {
    char esc[96];
    return fail(err, EWP_EBADPARAM, "'as' must be a series name: 1 to %d bytes of a-z, 0-9 and "
                "_, starting with a letter (got '%s', %zu bytes)", EWP_SERIES_MAX,
                ewp_escape(esc, 64, e->as.p, e->as.n), e->as.n);
  }
  if (EWP_HAS(e, EWP_EVAL_every) && e->every < 1)
    return fail(err, EWP_EBADPARAM, "'every' must be a number of steps >= 1");
  if (EWP_HAS(e, EWP_EVAL_every_rows) && e->every_rows < 1)
    return fail(err, EWP_EBADPARAM, "'every_rows' must be a number of rows >= 1");
  if (EWP_HAS(e, EWP_EVAL_every_s) && !(e->every_s >= 0.1 && e->every_s <= 1e9))
    return fail(err, EWP_EBADPARAM, "'every_s' must be a number of seconds >= 0.1 (at most 1e9)");
  return 0;
}

static int check_rule(ewp_rule_t *r, ewp_error_t *err) {
  enum { BELOW, ABOVE, DROP, BASELINE, STALE, NONFINITE };
  if (r->name.n < 1 || r->name.n > EWP_RULE_NAME_MAX)
    return fail(err, EWP_EBADPARAM, "'name' must be a string of 1 to %d bytes", EWP_RULE_NAME_MAX);
  bool needs_metric = r->when != STALE && r->when != NONFINITE;
  if (needs_metric != EWP_HAS(r, EWP_RULE_metric))
    return fail(err, EWP_EBADPARAM, needs_metric ? "a '%s' rule needs 'metric'"
                : "a '%s' rule takes no 'metric' (it watches the stream)", ewp__enum_when[r->when]);
  if (r->when != NONFINITE && !EWP_HAS(r, EWP_RULE_value))
    return fail(err, EWP_EBADPARAM, "a '%s' rule needs 'value'", ewp__enum_when[r->when]);
  if (r->when != NONFINITE && !isfinite(r->value))
    return fail(err, EWP_EBADPARAM, "'value' must be a finite number");
  if (r->when == DROP && !(r->value > 0 && r->value < 1))
    return fail(err, EWP_EBADPARAM, "a 'drop' rule's 'value' is a fraction between 0 and 1 "
                "(0.3: fell by more than 30%% below its recent maximum)");
  if ((r->when == BASELINE || r->when == STALE) && !(r->value > 0))
    return fail(err, EWP_EBADPARAM, "a '%s' rule's 'value' must be > 0", ewp__enum_when[r->when]);
  if (EWP_HAS(r, EWP_RULE_steps) && (r->steps < 1 || r->steps > 65536))
    return fail(err, EWP_EBADPARAM, "'steps' must be a number of points between 1 and 65536");
  if (EWP_HAS(r, EWP_RULE_baseline_steps) && (r->baseline_steps < 1 || r->baseline_steps > 65536))
    return fail(err, EWP_EBADPARAM, "'baseline_steps' must be a number of points between 1 and "
                "65536");
  return 0;
}

/* An array of maps decoded against a sub-table (EVALS, RULES) into items of `size` bytes. */
static int decode_objs(const msgpack_object *o, const ewp_field_info_t *f, void *items,
                       size_t *count, size_t max, size_t size, const ewp_field_info_t *fs,
                       size_t nf, int (*check)(void *item, ewp_error_t *err), const char *shape,
                       ewp_request_t *req, ewp_error_t *err) {
  if (o->type != MSGPACK_OBJECT_ARRAY || o->via.array.size > max)
    return field_error(err, f);
  *count = o->via.array.size;
  for (size_t i = 0; i < *count; i++) {
    const msgpack_object *e = &o->via.array.ptr[i];
    void *item = (char *)items + i * size;
    char what[32];
    snprintf(what, sizeof what, "%s[%zu]", f->name, i);
    memset(item, 0, size);
    if (e->type != MSGPACK_OBJECT_MAP)
      return fail(err, EWP_EBADPARAM, "%s must be a map %s", what, shape);
    if (decode_map(e, fs, nf, item, what, req, err) || check(item, err)) {
      char inner[sizeof err->message];
      snprintf(inner, sizeof inner, "%s", err->message);
      if (strncmp(inner, what, strlen(what)) != 0)
        snprintf(err->message, sizeof err->message, "%s: %.400s", what, inner);
      return -1;
    }
  }
  return 0;
}

static int check_eval_v(void *e, ewp_error_t *err) { return check_eval(e, err); }
static int check_rule_v(void *r, ewp_error_t *err) { return check_rule(r, err); }

static int decode_field(const msgpack_object *o, const ewp_field_info_t *f, void *dst,
                        ewp_request_t *req, ewp_error_t *err) {
  const char *p;
  size_t n;
  char esc[96];
  switch (f->type) {
  case EWP_T_NAME: {
    ewp_str_t *s = dst;
    if (!obj_bytes(o, &p, &n))
      return field_error(err, f);
    if (!name_charset(p, n))
      return fail(err, EWP_EBADREQ,
                  "%s names are 1-200 bytes of A-Z a-z 0-9 _ . : / - (got %zu bytes)", f->name, n);
    if (!name_parts_ok(p, n))
      return fail(err, EWP_EBADREQ, "%s name '%s' has an empty, '.' or '..' part between "
                  "slashes, or starts or ends with '/' (names become file names)", f->name,
                  ewp_escape(esc, sizeof esc, p, n));
    s->p = p, s->n = n;
    return 0;
  }
  case EWP_T_STR: {
    ewp_str_t *s = dst;
    if (!obj_text(o, &p, &n) || n > EWP_STR_MAX)
      return field_error(err, f);
    s->p = p, s->n = n;
    return 0;
  }
  case EWP_T_UINT:
    return ew_obj_uint(o, dst) ? 0 : field_error(err, f);
  case EWP_T_NUM:
    return obj_number(o, dst) ? 0 : field_error(err, f);
  case EWP_T_BOOL:
    if (o->type != MSGPACK_OBJECT_BOOLEAN)
      return field_error(err, f);
    *(bool *)dst = o->via.boolean;
    return 0;
  case EWP_T_BIN: {
    ewp_bytes_t *b = dst;
    if (o->type != MSGPACK_OBJECT_BIN)
      return field_error(err, f);
    b->p = (const uint8_t *)o->via.bin.ptr, b->n = o->via.bin.size;
    return 0;
  }
  case EWP_T_ENUM: {
    int idx = obj_bytes(o, &p, &n) ? enum_index(f->values, p, n) : -1;
    if (idx < 0) {
      if (f->code == EWP_EDTYPE && obj_bytes(o, &p, &n)) /* name the dtype it did not know */
        return fail(err, EWP_EDTYPE, "dtype '%s' is not supported (use f32, f64, f16 or bf16)",
                    ewp_escape(esc, 64, p, n));
      return field_error(err, f);
    }
    *(int *)dst = idx;
    return 0;
  }
  case EWP_T_SHAPE: {
    ewp_shape_t *s = dst;
    if (o->type != MSGPACK_OBJECT_ARRAY || o->via.array.size != 2 ||
        !ew_obj_uint(&o->via.array.ptr[0], &s->n) || !ew_obj_uint(&o->via.array.ptr[1], &s->d))
      return field_error(err, f);
    return 0;
  }
  case EWP_T_ROWS:
    return decode_rows(o, f, dst, req, err);
  case EWP_T_NAMES:
    return decode_names(o, f, dst, err);
  case EWP_T_PARAMS:
    return decode_params(o, f, dst, err);
  case EWP_T_EVALS: {
    ewp_evals_t *v = dst;
    return decode_objs(o, f, v->v, &v->n, EWP_EVAL_MAX, sizeof v->v[0], f_eval,
                       sizeof f_eval / sizeof f_eval[0], check_eval_v,
                       "{metric, as, every, params, source, center}", req, err);
  }
  case EWP_T_RULES: {
    ewp_rules_t *v = dst;
    if (decode_objs(o, f, v->v, &v->n, EWP_RULES_MAX, sizeof v->v[0], f_rule,
                    sizeof f_rule / sizeof f_rule[0], check_rule_v,
                    "{name, metric, when, value, steps, baseline_steps}", req, err))
      return -1;
    for (size_t i = 0; i < v->n; i++)
      for (size_t k = 0; k < i; k++)
        if (v->v[k].name.n == v->v[i].name.n &&
            memcmp(v->v[k].name.p, v->v[i].name.p, v->v[i].name.n) == 0) {
          return fail(err, EWP_EBADPARAM, "two rules are named '%s' (names are unique in a "
                      "stream)", ewp_escape(esc, 64, v->v[i].name.p, v->v[i].name.n));
        }
    return 0;
  }
  }
  return fail(err, EWP_EBADREQ, "field '%s' has an unknown type", f->name);
}

/* ---- cross-field rules ---- */

static int check_create(ewp_create_req_t *r, ewp_error_t *err) {
  if (r->dim < 1 || r->dim > EWP_MAX_DIM)
    return fail(err, EWP_EBADPARAM, "'dim' must be an integer between 1 and %d", EWP_MAX_DIM);
  if (EWP_HAS(r, EWP_CREATE_world) && (r->world < 1 || r->world > EWP_WORLD_MAX))
    return fail(err, EWP_EBADPARAM, "'world' must be an integer between 1 and %d", EWP_WORLD_MAX);
  if (EWP_HAS(r, EWP_CREATE_window_steps) && r->window_steps > EWP_WORLD_MAX)
    return fail(err, EWP_EBADPARAM, "'window_steps' must be a number of steps between 0 and %d",
                EWP_WORLD_MAX);
  if (EWP_HAS(r, EWP_CREATE_step_timeout) && !(r->step_timeout > 0 && r->step_timeout <= 1e9))
    return fail(err, EWP_EBADPARAM, "'step_timeout' must be a number of seconds > 0 (and at most "
                "1e9)");
  return 0;
}

static int check_history(ewp_history_req_t *r, ewp_error_t *err) {
  if (EWP_HAS(r, EWP_HISTORY_stream) && EWP_HAS(r, EWP_HISTORY_streams))
    return fail(err, EWP_EBADREQ, "give 'stream' or 'streams', not both");
  for (size_t i = 0; EWP_HAS(r, EWP_HISTORY_streams) && i < r->streams.n; i++)
    if (!ewp_name_valid(r->streams.v[i].p, r->streams.v[i].n)) {
      char esc[96];
      return fail(err, EWP_EBADREQ, "streams[%zu] '%s' is not a stream name", i,
                  ewp_escape(esc, sizeof esc, r->streams.v[i].p, r->streams.v[i].n));
    }
  if (EWP_HAS(r, EWP_HISTORY_max_points) &&
      (r->max_points < 1 || r->max_points > EWP_HISTORY_POINTS_MAX))
    return fail(err, EWP_EBADREQ, "'max_points' must be an integer between 1 and %d",
                EWP_HISTORY_POINTS_MAX);
  if (EWP_HAS(r, EWP_HISTORY_from_step) && EWP_HAS(r, EWP_HISTORY_to_step) &&
      r->from_step > r->to_step)
    return fail(err, EWP_EBADREQ, "'from_step' %llu is after 'to_step' %llu",
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
  return ok ? 0 : fail(err, EWP_EBADREQ, "'stream' must be a stream name or a glob with '*' (1-200 "
                       "bytes of A-Z a-z 0-9 _ . : / - *)");
}

static int check_ingest(ewp_ingest_req_t *r, ewp_error_t *err) {
  bool data = EWP_HAS(r, EWP_INGEST_data), rows = EWP_HAS(r, EWP_INGEST_rows);
  bool step = EWP_HAS(r, EWP_INGEST_step), marker = step && EWP_HAS(r, EWP_INGEST_end_step) &&
                                                    r->end_step;
  static const struct { int bit; const char *name; } needs_step[] = {
      {EWP_INGEST_rank, "rank"}, {EWP_INGEST_world, "world"}, {EWP_INGEST_end_step, "end_step"}};
  for (size_t i = 0; i < sizeof needs_step / sizeof needs_step[0]; i++)
    if (EWP_HAS(r, needs_step[i].bit) && !step)
      return fail(err, EWP_EBADREQ, "'%s' needs 'step' (the training step the rows belong to)",
                  needs_step[i].name);
  if (step && r->step > (uint64_t)INT64_MAX)
    return fail(err, EWP_EBADREQ, "'step' must be an integer below 2^63 (got %llu)",
                (unsigned long long)r->step);
  if (EWP_HAS(r, EWP_INGEST_world) && (r->world < 1 || r->world > EWP_WORLD_MAX))
    return fail(err, EWP_EBADREQ, "'world' must be an integer between 1 and %d", EWP_WORLD_MAX);
  if (EWP_HAS(r, EWP_INGEST_world) && EWP_HAS(r, EWP_INGEST_rank) && r->rank >= r->world)
    return fail(err, EWP_EBADREQ, "'rank' %llu is not below 'world' %llu",
                (unsigned long long)r->rank, (unsigned long long)r->world);
  if (EWP_HAS(r, EWP_INGEST_producer) && r->producer.n > EWP_PRODUCER_MAX)
    return fail(err, EWP_EBADREQ, "'producer' must be a string of at most %d bytes (it has %zu)",
                EWP_PRODUCER_MAX, r->producer.n);
  if (EWP_HAS(r, EWP_INGEST_producer) != EWP_HAS(r, EWP_INGEST_seq))
    return fail(err, EWP_EBADREQ, "'producer' and 'seq' go together (one names the sender, the "
                "other numbers its batches)");
  if (data && rows)
    return fail(err, EWP_EBADREQ, "send either 'data' (with dtype and shape) or 'rows', not both");
  if (!data && !rows && !marker)
    return fail(err, EWP_EBADREQ, "ingest needs 'data' (bin) with 'dtype' and 'shape', or 'rows' "
                "(or 'step' with 'end_step': true to end a step without rows)");
  if (!data)
    return 0;
  if (!EWP_HAS(r, EWP_INGEST_dtype))
    return fail(err, EWP_EDTYPE, "'dtype' (f32, f64, f16 or bf16) is required with 'data'");
  if (!EWP_HAS(r, EWP_INGEST_shape))
    return fail(err, EWP_EBADREQ, "'shape' must be [n, d] (two integers)");
  uint64_t a = r->shape.n, b = r->shape.d, esz = ewp_dtype_size(r->dtype);
  if (b == 0 || b > EWP_MAX_DIM)
    return fail(err, EWP_EBADREQ, "shape [n, d] needs 1 <= d <= %d (got d = %llu)",
                EWP_MAX_DIM, (unsigned long long)b);
  if (a > UINT64_MAX / b / esz)
    return fail(err, EWP_EBADREQ, "'data' has %zu bytes but shape [%llu, %llu] of %s needs more "
                "than 2^64", r->data.n, (unsigned long long)a, (unsigned long long)b,
                ewp_dtype_name(r->dtype));
  if (a * b * esz != r->data.n)
    return fail(err, EWP_EBADREQ, "'data' has %zu bytes but shape [%llu, %llu] of %s needs %llu",
                r->data.n, (unsigned long long)a, (unsigned long long)b, ewp_dtype_name(r->dtype),
                (unsigned long long)(a * b * esz));
  return 0;
}

/* ---- the message ---- */

static const char envelope_shape[] = "a message is [0, msgid, method, params] or [2, method, params]";

static void method_list(char *dst, size_t cap) {
  size_t o = 0;
  dst[0] = 0;
  for (int i = 0; i < EWP_METHOD_COUNT && o < cap; i++)
    o += (size_t)snprintf(dst + o, cap - o, "%s%s", i ? " " : "", methods[i].name);
}

static void takes_list(const ewp_field_info_t *fs, size_t n, char *dst, size_t cap) {
  size_t o = 0;
  snprintf(dst, cap, "nothing");
  for (size_t i = 0; i < n && o < cap; i++)
    o += (size_t)snprintf(dst + o, cap - o, "%s%s", i ? " " : "", fs[i].name);
}

static void *method_struct(ewp_request_t *req) { return &req->u; }

/* Decodes `map` (NULL: empty) against fields fs[0, nf) into dst, a struct that starts with
 * `has`; `what` names it in refusals (a method, or "eval[2]"). */
static int decode_map(const msgpack_object *map, const ewp_field_info_t *fs, size_t nf,
                      void *dst, const char *what, ewp_request_t *req, ewp_error_t *err) {
  const msgpack_object *slot[32] = {0};
  char esc[96], takes[256];
  if (map) {
    for (uint32_t i = 0; i < map->via.map.size; i++) {
      const char *p;
      size_t n;
      if (!obj_bytes(&map->via.map.ptr[i].key, &p, &n))
        return fail(err, EWP_EBADREQ, "%s keys must be strings",
                  fs == f_eval || fs == f_rule ? what : "params");
    }
    for (uint32_t i = 0; i < map->via.map.size; i++) {
      const msgpack_object *k = &map->via.map.ptr[i].key;
      const char *p;
      size_t n;
      obj_bytes(k, &p, &n);
      size_t f = 0;
      while (f < nf && !(strlen(fs[f].name) == n && memcmp(fs[f].name, p, n) == 0))
        f++;
      if (f == nf) {
        takes_list(fs, nf, takes, sizeof takes);
        return fail(err, EWP_EBADREQ, "%s does not take '%s' (it takes: %s)", what,
                    ewp_escape(esc, sizeof esc, p, n), takes);
      }
      if (slot[f])
        return fail(err, EWP_EBADREQ, "duplicate key '%s' in %s", fs[f].name,
                    fs == f_eval || fs == f_rule ? what : "params");
      slot[f] = &map->via.map.ptr[i].val;
    }
  }
  uint32_t *has = dst; /* every struct decoded here starts with `has` */
  for (size_t f = 0; f < nf; f++) {
    const msgpack_object *v = slot[f];
    if (v && v->type == MSGPACK_OBJECT_NIL && (fs[f].flags & EWP_F_NIL))
      v = NULL;
    if (!v) {
      if (fs[f].flags & EWP_F_REQ)
        return field_error(err, &fs[f]);
      continue;
    }
    if (decode_field(v, &fs[f], (char *)dst + fs[f].offset, req, err))
      return -1;
    *has |= 1u << f;
  }
  return 0;
}

static int decode_params_map(const msgpack_object *params, ewp_request_t *req, ewp_error_t *err) {
  size_t nf;
  const ewp_field_info_t *fs = ewp_method_fields(req->method, &nf);
  if (decode_map(params, fs, nf, method_struct(req), methods[req->method].name, req, err))
    return -1;
  switch (req->method) {
  case EWP_METHOD_CREATE: return check_create(&req->u.create, err);
  case EWP_METHOD_INGEST: return check_ingest(&req->u.ingest, err);
  case EWP_METHOD_HISTORY: return check_history(&req->u.history, err);
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
    return fail(err, EWP_ENOMEM, "out of memory decoding a %zu-byte message; nothing was done",
                len);
  }
  if (ur != MSGPACK_UNPACK_SUCCESS || off != len) {
    ewp_request_free(req);
    return fail(err, EWP_EBADREQ, "message is not valid msgpack"), -2;
  }
  const msgpack_object *msg = &req->upk_.data;
  int rc = -1;
  if (msg->type != MSGPACK_OBJECT_ARRAY || msg->via.array.size < 3) {
    fail(err, EWP_EBADREQ, envelope_shape);
    goto out;
  }
  const msgpack_object *a = msg->via.array.ptr;
  uint64_t type;
  if (!ew_obj_uint(&a[0], &type) || (type != 0 && type != 2) ||
      (type == 0 && msg->via.array.size != 4) || (type == 2 && msg->via.array.size != 3)) {
    uint64_t id = 0;
    if (msg->via.array.size == 4 && ew_obj_uint(&a[1], &id) && id <= UINT32_MAX)
      err->msgid = (uint32_t)id;
    fail(err, EWP_EBADREQ, envelope_shape);
    goto out;
  }
  bool notify = type == 2;
  err->notify = notify;
  req->kind = notify ? EWP_KIND_NOTIFY : EWP_KIND_REQUEST;
  const msgpack_object *mobj = notify ? &a[1] : &a[2];
  const msgpack_object *pobj = notify ? &a[2] : &a[3];
  uint64_t id = 0;
  if (!notify && (!ew_obj_uint(&a[1], &id) || id > UINT32_MAX)) {
    fail(err, EWP_EBADREQ, "msgid must be an unsigned 32-bit integer");
    goto out;
  }
  req->msgid = err->msgid = (uint32_t)id;
  err->counted = true;
  const char *mp;
  size_t mn;
  if (!obj_bytes(mobj, &mp, &mn) || mn > EWP_METHOD_NAME_MAX) {
    fail(err, EWP_EBADREQ, "method must be a string");
    goto out;
  }
  int m = 0;
  while (m < EWP_METHOD_COUNT && !(strlen(methods[m].name) == mn && !memcmp(methods[m].name, mp, mn)))
    m++;
  if (m == EWP_METHOD_COUNT) {
    char esc[96], list[256];
    method_list(list, sizeof list);
    fail(err, EWP_EUNKMETHOD, "no method '%s' (methods: %s)", ewp_escape(esc, sizeof esc, mp, mn),
         list);
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
    fail(err, EWP_EBADREQ, "params must be [] or [{...}] (an array holding one map)");
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
  msgpack_unpacked_destroy(&req->upk_);
  msgpack_unpacked_init(&req->upk_);
}
