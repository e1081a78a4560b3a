/* field.c — one field of a request decoded against its row of a field table: names, strings,
 * numbers, enums, shapes, parameter maps, and the eval and rule lists (maps decoded against
 * their own sub-tables; a batch's rows, columns and arrays are field_batch.c's); and a map of
 * fields (ewp__decode_map), which the message decoder (decode.c) calls with a method's table.
 * Every refusal names the field (escaped) and says what it takes. */
#include "decode_priv.h"

#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- helpers ---- */

int ewp__fail(ewp_error_t *err, ewp_code_t code, const char *fmt, ...) {
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

int ewp__enum_index(const char *const *values, const char *p, size_t n) {
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

int ewp__field_error(ewp_error_t *err, const ewp_field_info_t *f) {
  return ewp__fail(err, f->code, "%s", f->error);
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
    return ewp__field_error(err, f);
  }
  out->n = n;
  for (size_t i = 0; i < n; i++) {
    if (!obj_bytes(&list[i], &out->v[i].p, &out->v[i].n))
      return ewp__fail(err, EWP_EBADREQ, "%s[%zu] is not a string", f->name, i);
    for (size_t k = 0; k < i; k++)
      if (out->v[k].n == out->v[i].n && memcmp(out->v[k].p, out->v[i].p, out->v[i].n) == 0) {
        char esc[96];
        return ewp__fail(err, EWP_EBADREQ, "'%s' names '%s' twice (ask for each once)", f->name,
                    ewp_escape(esc, sizeof esc, out->v[i].p, out->v[i].n));
      }
  }
  return 0;
}

/* One {"dtype": str, "data": bin} into c (its name left as it is); what names it in refusals. */
static int decode_params(const msgpack_object *o, const ewp_field_info_t *f, ewp_params_t *out,
                         ewp_error_t *err) {
  if (o->type != MSGPACK_OBJECT_MAP)
    return ewp__field_error(err, f);
  if (o->via.map.size > EWP_PARAMS_MAX)
    return ewp__fail(err, EWP_EBADPARAM, "too many parameters");
  out->n = o->via.map.size;
  char esc[96];
  for (size_t i = 0; i < out->n; i++) {
    const msgpack_object *k = &o->via.map.ptr[i].key, *v = &o->via.map.ptr[i].val;
    ewp_param_t *p = &out->v[i];
    const char *kp;
    size_t kn;
    if (!obj_bytes(k, &kp, &kn))
      return ewp__fail(err, EWP_EBADREQ, "'%s' keys must be strings", f->name);
    if (kn > EWP_PARAM_KEY_MAX)
      return ewp__fail(err, EWP_EBADPARAM, "a parameter name is at most %d bytes (got %zu)",
                  EWP_PARAM_KEY_MAX, kn);
    p->key = kp;
    p->key_n = (uint16_t)kn;
    for (size_t j = 0; j < i; j++)
      if (out->v[j].key_n == p->key_n && memcmp(out->v[j].key, p->key, p->key_n) == 0)
        return ewp__fail(err, EWP_EBADREQ, "duplicate key '%s' in '%s'",
                    ewp_escape(esc, sizeof esc, p->key, p->key_n), f->name);
    if (v->type == MSGPACK_OBJECT_BOOLEAN) {
      p->type = EWP_PV_BOOL;
      p->value = v->via.boolean ? 1 : 0;
    } else if (v->type == MSGPACK_OBJECT_STR) {
      size_t sn;
      p->type = EWP_PV_STR;
      if (!obj_text(v, &p->str, &sn) || sn > EWP_PARAM_STR_MAX)
        return ewp__fail(err, EWP_EBADPARAM, "parameter '%s' must be a number, a bool or a UTF-8 "
                    "string of at most %d bytes", ewp_escape(esc, sizeof esc, p->key, p->key_n),
                    EWP_PARAM_STR_MAX);
      p->str_n = (uint32_t)sn;
    } else if (obj_number(v, &p->value)) {
      p->type = EWP_PV_NUM;
    } else {
      return ewp__fail(err, EWP_EBADPARAM, "parameter '%s' must be a number, a bool or a string",
                  ewp_escape(esc, sizeof esc, p->key, p->key_n));
    }
  }
  return 0;
}


static int check_eval(ewp_eval_t *e, ewp_error_t *err) {
  int ways = EWP_HAS(e, EWP_EVAL_every) + EWP_HAS(e, EWP_EVAL_every_rows) +
             EWP_HAS(e, EWP_EVAL_every_s);
  if (ways > 1)
    return ewp__fail(err, EWP_EBADPARAM, "give one of 'every' (steps), 'every_rows' or 'every_s'");
  if (EWP_HAS(e, EWP_EVAL_as) && !ewp_series_valid(e->as.p, e->as.n)) {
    char esc[96];
    return ewp__fail(err, EWP_EBADPARAM,
                     "'as' must be a series name: 1 to %d bytes of a-z, 0-9 and "
                     "_, starting with a letter (got '%s', %zu bytes)",
                     EWP_SERIES_MAX, ewp_escape(esc, 64, e->as.p, e->as.n), e->as.n);
  }
  if (EWP_HAS(e, EWP_EVAL_every) && e->every < 1)
    return ewp__fail(err, EWP_EBADPARAM, "'every' must be a number of steps >= 1");
  if (EWP_HAS(e, EWP_EVAL_every_rows) && e->every_rows < 1)
    return ewp__fail(err, EWP_EBADPARAM, "'every_rows' must be a number of rows >= 1");
  if (EWP_HAS(e, EWP_EVAL_every_s) && !(e->every_s >= 0.1 && e->every_s <= 1e9))
    return ewp__fail(err, EWP_EBADPARAM,
                     "'every_s' must be a number of seconds >= 0.1 (at most 1e9)");
  return 0;
}

/* A rule's `when` as the wire spells it (its field's ENUM values). */
static const char *when_name(int when) {
  size_t n;
  const ewp_field_info_t *fs = ewp_rule_fields(&n);
  for (size_t i = 0; i < n; i++)
    if (strcmp(fs[i].name, "when") == 0 && fs[i].values)
      return fs[i].values[when];
  return "?";
}

static int check_rule(ewp_rule_t *r, ewp_error_t *err) {
  enum { BELOW, ABOVE, DROP, BASELINE, STALE, NONFINITE };
  if (r->name.n < 1 || r->name.n > EWP_RULE_NAME_MAX)
    return ewp__fail(err, EWP_EBADPARAM, "'name' must be a string of 1 to %d bytes",
                     EWP_RULE_NAME_MAX);
  bool needs_metric = r->when != STALE && r->when != NONFINITE;
  if (needs_metric != EWP_HAS(r, EWP_RULE_metric))
    return ewp__fail(err, EWP_EBADPARAM, needs_metric ? "a '%s' rule needs 'metric'"
                : "a '%s' rule takes no 'metric' (it watches the stream)", when_name(r->when));
  if (r->when != NONFINITE && !EWP_HAS(r, EWP_RULE_value))
    return ewp__fail(err, EWP_EBADPARAM, "a '%s' rule needs 'value'", when_name(r->when));
  if (r->when != NONFINITE && !isfinite(r->value))
    return ewp__fail(err, EWP_EBADPARAM, "'value' must be a finite number");
  if (r->when == DROP && !(r->value > 0 && r->value < 1))
    return ewp__fail(err, EWP_EBADPARAM, "a 'drop' rule's 'value' is a fraction between 0 and 1 "
                "(0.3: fell by more than 30%% below its recent maximum)");
  if ((r->when == BASELINE || r->when == STALE) && !(r->value > 0))
    return ewp__fail(err, EWP_EBADPARAM, "a '%s' rule's 'value' must be > 0", when_name(r->when));
  if (EWP_HAS(r, EWP_RULE_steps) && (r->steps < 1 || r->steps > 65536))
    return ewp__fail(err, EWP_EBADPARAM, "'steps' must be a number of points between 1 and 65536");
  if (EWP_HAS(r, EWP_RULE_baseline_steps) && (r->baseline_steps < 1 || r->baseline_steps > 65536))
    return ewp__fail(err, EWP_EBADPARAM,
                     "'baseline_steps' must be a number of points between 1 and "
                     "65536");
  return 0;
}

/* An array of maps decoded against a sub-table (EVALS, RULES) into items of `size` bytes. */
static int decode_objs(const msgpack_object *o, const ewp_field_info_t *f, void *items,
                       size_t *count, size_t max, size_t size, const ewp_field_info_t *fs,
                       size_t nf, int (*check)(void *item, ewp_error_t *err), const char *shape,
                       ewp_request_t *req, ewp_error_t *err) {
  if (o->type != MSGPACK_OBJECT_ARRAY || o->via.array.size > max)
    return ewp__field_error(err, f);
  *count = o->via.array.size;
  for (size_t i = 0; i < *count; i++) {
    const msgpack_object *e = &o->via.array.ptr[i];
    void *item = (char *)items + i * size;
    char what[32];
    snprintf(what, sizeof what, "%s[%zu]", f->name, i);
    memset(item, 0, size);
    if (e->type != MSGPACK_OBJECT_MAP)
      return ewp__fail(err, EWP_EBADPARAM, "%s must be a map %s", what, shape);
    if (ewp__decode_map(e, fs, nf, item, what, req, err) || check(item, err)) {
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
      return ewp__field_error(err, f);
    if (!name_charset(p, n))
      return ewp__fail(err, EWP_EBADREQ,
                  "%s names are 1-200 bytes of A-Z a-z 0-9 _ . : / - (got %zu bytes)", f->name, n);
    if (!name_parts_ok(p, n))
      return ewp__fail(err, EWP_EBADREQ, "%s name '%s' has an empty, '.' or '..' part between "
                  "slashes, or starts or ends with '/' (names become file names)", f->name,
                  ewp_escape(esc, sizeof esc, p, n));
    s->p = p, s->n = n;
    return 0;
  }
  case EWP_T_STR: {
    ewp_str_t *s = dst;
    if (!obj_text(o, &p, &n) || n > EWP_STR_MAX)
      return ewp__field_error(err, f);
    s->p = p, s->n = n;
    return 0;
  }
  case EWP_T_UINT:
    return ew_obj_uint(o, dst) ? 0 : ewp__field_error(err, f);
  case EWP_T_NUM:
    return obj_number(o, dst) ? 0 : ewp__field_error(err, f);
  case EWP_T_BOOL:
    if (o->type != MSGPACK_OBJECT_BOOLEAN)
      return ewp__field_error(err, f);
    *(bool *)dst = o->via.boolean;
    return 0;
  case EWP_T_BIN: {
    ewp_bytes_t *b = dst;
    if (o->type != MSGPACK_OBJECT_BIN)
      return ewp__field_error(err, f);
    b->p = (const uint8_t *)o->via.bin.ptr, b->n = o->via.bin.size;
    return 0;
  }
  case EWP_T_U32S: {
    ewp_bytes_t *b = dst;
    if (o->type == MSGPACK_OBJECT_BIN) {
      b->p = (const uint8_t *)o->via.bin.ptr, b->n = o->via.bin.size;
      return 0;
    }
    if (o->type != MSGPACK_OBJECT_ARRAY || req->u32s_)
      return ewp__field_error(err, f);
    size_t cnt = o->via.array.size; /* bounded by the skim's element limit */
    uint8_t *buf = malloc(cnt ? 4 * cnt : 1);
    if (!buf)
      return ewp__fail(err, EWP_ENOMEM, "out of memory for %zu values of '%s'", cnt, f->name);
    for (size_t i = 0; i < cnt; i++) {
      uint64_t v;
      if (!ew_obj_uint(&o->via.array.ptr[i], &v) || v > UINT32_MAX) {
        free(buf);
        return ewp__fail(err, f->code, "'%s'[%zu] is not an integer in [0, 2^32)", f->name, i);
      }
      uint32_t w = (uint32_t)v; /* little-endian, as the bin form */
      for (int k = 0; k < 4; k++)
        buf[4 * i + k] = (uint8_t)(w >> (8 * k));
    }
    b->p = buf, b->n = 4 * cnt;
    req->u32s_ = buf;
    return 0;
  }
  case EWP_T_ENUM: {
    int idx = obj_bytes(o, &p, &n) ? ewp__enum_index(f->values, p, n) : -1;
    if (idx < 0) {
      if (f->code == EWP_EDTYPE && obj_bytes(o, &p, &n)) /* name the dtype it did not know */
        return ewp__fail(err, EWP_EDTYPE, "dtype '%s' is not supported (use f32, f64, f16 or bf16)",
                    ewp_escape(esc, 64, p, n));
      return ewp__field_error(err, f);
    }
    *(int *)dst = idx;
    return 0;
  }
  case EWP_T_SHAPE: {
    ewp_shape_t *s = dst;
    if (o->type != MSGPACK_OBJECT_ARRAY || o->via.array.size != 2 ||
        !ew_obj_uint(&o->via.array.ptr[0], &s->n) || !ew_obj_uint(&o->via.array.ptr[1], &s->d))
      return ewp__field_error(err, f);
    return 0;
  }
  case EWP_T_ROWS:
    return ewp__decode_rows(o, f, dst, req, err);
  case EWP_T_NAMES:
    return decode_names(o, f, dst, err);
  case EWP_T_COLUMNS:
    return ewp__decode_columns(o, f, dst, err);
  case EWP_T_TYPED: {
    ewp_column_t *c = dst;
    memset(c, 0, sizeof *c);
    return ewp__decode_typed(o, "", f->name, c, err);
  }
  case EWP_T_ARRAY:
    return ewp__decode_array(o, f->name, dst, err);
  case EWP_T_DIMS: {
    ewp_dims_t *s = dst;
    if (o->type != MSGPACK_OBJECT_ARRAY || o->via.array.size < 1 || o->via.array.size > 2)
      return ewp__field_error(err, f);
    s->n = o->via.array.size;
    for (size_t i = 0; i < s->n; i++)
      if (!ew_obj_uint(&o->via.array.ptr[i], &s->v[i]))
        return ewp__field_error(err, f);
    return 0;
  }
  case EWP_T_PARAMS:
    return decode_params(o, f, dst, err);
  case EWP_T_EVALS: {
    ewp_evals_t *v = dst;
    size_t nf;
    const ewp_field_info_t *fs = ewp_eval_fields(&nf);
    return decode_objs(o, f, v->v, &v->n, EWP_EVAL_MAX, sizeof v->v[0], fs, nf, check_eval_v,
                       "{metric, as, every, params, source, center}", req, err);
  }
  case EWP_T_RULES: {
    ewp_rules_t *v = dst;
    size_t nf;
    const ewp_field_info_t *fs = ewp_rule_fields(&nf);
    if (decode_objs(o, f, v->v, &v->n, EWP_RULES_MAX, sizeof v->v[0], fs, nf, check_rule_v,
                    "{name, metric, when, value, steps, baseline_steps}", req, err))
      return -1;
    for (size_t i = 0; i < v->n; i++)
      for (size_t k = 0; k < i; k++)
        if (v->v[k].name.n == v->v[i].name.n &&
            memcmp(v->v[k].name.p, v->v[i].name.p, v->v[i].name.n) == 0) {
          return ewp__fail(err, EWP_EBADPARAM, "two rules are named '%s' (names are unique in a "
                      "stream)", ewp_escape(esc, 64, v->v[i].name.p, v->v[i].name.n));
        }
    return 0;
  }
  }
  return ewp__fail(err, EWP_EBADREQ, "field '%s' has an unknown type", f->name);
}

/* ---- a map of fields ---- */

/* The names of fields fs[0, n) (for a refusal that says what a map takes). */
static void takes_list(const ewp_field_info_t *fs, size_t n, char *dst, size_t cap) {
  size_t o = 0;
  snprintf(dst, cap, "nothing");
  for (size_t i = 0; i < n && o < cap; i++)
    o += (size_t)snprintf(dst + o, cap - o, "%s%s", i ? " " : "", fs[i].name);
}

int ewp__decode_map(const msgpack_object *map, const ewp_field_info_t *fs, size_t nf,
                    void *dst, const char *what, ewp_request_t *req, ewp_error_t *err) {
  const msgpack_object *slot[32] = {0};
  char esc[96], takes[256];
  size_t ne, nr; /* an eval or rule map is named in refusals; a method's map is "params" */
  const char *where = fs == ewp_eval_fields(&ne) || fs == ewp_rule_fields(&nr) ? what : "params";
  if (map) {
    for (uint32_t i = 0; i < map->via.map.size; i++) {
      const char *p;
      size_t n;
      if (!obj_bytes(&map->via.map.ptr[i].key, &p, &n))
        return ewp__fail(err, EWP_EBADREQ, "%s keys must be strings",
                  where);
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
        return ewp__fail(err, EWP_EBADREQ, "%s does not take '%s' (it takes: %s)", what,
                    ewp_escape(esc, sizeof esc, p, n), takes);
      }
      if (slot[f])
        return ewp__fail(err, EWP_EBADREQ, "duplicate key '%s' in %s", fs[f].name,
                    where);
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
        return ewp__field_error(err, &fs[f]);
      continue;
    }
    if (decode_field(v, &fs[f], (char *)dst + fs[f].offset, req, err))
      return -1;
    *has |= 1u << f;
  }
  return 0;
}
