/* api.c — the JSON API on the HTTP listener (proto/PROTOCOL.md, "The JSON API"): `GET /api/v1/METHOD?FIELD=VALUE&…`
 * runs the msgpack-RPC method METHOD — one of those that only answer (EWP_M_ANSWER: ping, query,
 * list, info, stats, metrics, runs, history, alerts) — through the same decoder, checks and
 * handlers as the RPC port, and answers its result as JSON.
 *
 * The query string becomes the method's params map, each value typed by the method's field
 * table (proto/ewp.h): UINT fields take a decimal integer, NUM a number, BOOL true/false/1/0,
 * NAMES a comma-separated list, the rest a string. A value that does not parse as its type is
 * passed on as a string, so the decoder refuses it with the field's own code and sentence, as
 * it would on the RPC port. Fields that need msgpack structure (rows, params, evals, rules,
 * bin) cannot be given here (400).
 *
 * Results are written as JSON as they are walked, with jansson encoding every string and number
 * (a history answer of 500,000 points never becomes a tree of millions of nodes): finite floats
 * with 17 significant digits (they read back bit for bit), non-finite ones as the strings
 * "inf", "-inf", "nan" (JSON has no such numbers); strings that are not UTF-8 with U+FFFD for
 * each invalid byte (put_str), never null. Errors answer
 * {"error": {"code": WIRE_CODE, "message": sentence}} with an HTTP status by code. */
#include "net/net.h"
#include "cmd/cmd.h"
#include "core/errors_table.h"

#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define API_PREFIX "/api/v1/"
#define API_MAX_FIELDS 32

/* ---- output ---- */

typedef struct {
  char *p;
  size_t n, cap;
  bool oom;
  json_t *str, *num, *integer; /* reused leaves: jansson encodes, nothing is allocated per leaf */
} jout_t;

static void put(jout_t *o, const char *s, size_t n) {
  if (o->oom)
    return;
  if (o->n + n > o->cap) {
    size_t cap = o->cap ? o->cap : 4096;
    while (cap < o->n + n)
      cap *= 2;
    char *p = realloc(o->p, cap);
    if (!p) {
      o->oom = true;
      return;
    }
    o->p = p;
    o->cap = cap;
  }
  memcpy(o->p + o->n, s, n);
  o->n += n;
}

static void put_json(jout_t *o, const json_t *leaf) {
  char buf[512];
  size_t n = json_dumpb(leaf, buf, sizeof buf, JSON_ENCODE_ANY | JSON_COMPACT);
  if (n <= sizeof buf) {
    put(o, buf, n);
    return;
  }
  char *big = malloc(n); /* a long string: encode into a buffer of its size */
  if (!big) {
    o->oom = true;
    return;
  }
  put(o, big, json_dumpb(leaf, big, n, JSON_ENCODE_ANY | JSON_COMPACT));
  free(big);
}

/* Length of the well-formed UTF-8 sequence at s[0, n) (RFC 3629: no overlongs, surrogates or
 * code points above U+10FFFF), or 0 when s does not begin with one. */
static size_t utf8_seq(const unsigned char *s, size_t n) {
  unsigned c = s[0];
  size_t len = c < 0x80 ? 1 : c >= 0xc2 && c <= 0xdf ? 2 : c >= 0xe0 && c <= 0xef ? 3
             : c >= 0xf0 && c <= 0xf4 ? 4 : 0;
  if (!len || len > n)
    return 0;
  for (size_t i = 1; i < len; i++)
    if ((s[i] & 0xc0) != 0x80)
      return 0;
  if ((c == 0xe0 && s[1] < 0xa0) || (c == 0xed && s[1] > 0x9f) || (c == 0xf0 && s[1] < 0x90) ||
      (c == 0xf4 && s[1] > 0x8f))
    return 0;
  return len;
}

/* A string that is not UTF-8 (a message quoting a client's bytes, or cut by a fixed buffer
 * inside a character) is written with each invalid byte replaced by U+FFFD, so that an answer's
 * strings are always JSON strings, never null. */
static void put_str(jout_t *o, const char *s, size_t n) {
  if (json_string_setn(o->str, s, n) != 0) {
    const unsigned char *u = (const unsigned char *)s;
    char *fixed = malloc(3 * n + 1);
    if (!fixed) {
      o->oom = true;
      return;
    }
    size_t m = 0;
    for (size_t i = 0; i < n;) {
      size_t k = utf8_seq(u + i, n - i);
      if (k) {
        memcpy(fixed + m, u + i, k);
        m += k;
        i += k;
      } else {
        memcpy(fixed + m, "\xef\xbf\xbd", 3);
        m += 3;
        i++;
      }
    }
    int rc = json_string_setn(o->str, fixed, m);
    free(fixed);
    if (rc != 0) {
      o->oom = true;
      return;
    }
  }
  put_json(o, o->str);
}

static void put_f64(jout_t *o, double f) {
  if (isnan(f)) {
    put(o, "\"nan\"", 5);
  } else if (isinf(f)) {
    put(o, f > 0 ? "\"inf\"" : "\"-inf\"", f > 0 ? 5 : 6);
  } else {
    json_real_set(o->num, f);
    put_json(o, o->num);
  }
}

static void put_u64(jout_t *o, uint64_t u) {
  if (u > (uint64_t)INT64_MAX) { /* beyond json_int_t: as a float, like JSON readers would */
    put_f64(o, (double)u);
    return;
  }
  json_integer_set(o->integer, (json_int_t)u);
  put_json(o, o->integer);
}

static void put_value(jout_t *o, const ewp_value_t *v) {
  switch (v->t) {
  case EWP_V_ABSENT:
  case EWP_V_NIL: put(o, "null", 4); break;
  case EWP_V_BOOL: put(o, v->v.b ? "true" : "false", v->v.b ? 4 : 5); break;
  case EWP_V_U64: put_u64(o, v->v.u); break;
  case EWP_V_F64: put_f64(o, v->v.f); break;
  case EWP_V_STR: put_str(o, v->v.s.p, v->v.s.n); break;
  case EWP_V_BIN: o->oom = true; break; /* no answer-only method returns bytes; never sent */
  case EWP_V_F64S:
    put(o, "[", 1);
    for (size_t i = 0; i < v->v.fs.n; i++) {
      if (i)
        put(o, ",", 1);
      put_f64(o, v->v.fs.p[i]);
    }
    put(o, "]", 1);
    break;
  case EWP_V_F64ROWS:
    put(o, "[", 1);
    for (size_t r = 0; r < v->v.fs.n; r++) {
      put(o, r ? ",[" : "[", r ? 2 : 1);
      for (size_t j = 0; j < v->v.fs.cols; j++) {
        if (j)
          put(o, ",", 1);
        put_f64(o, v->v.fs.p[r * v->v.fs.cols + j]);
      }
      put(o, "]", 1);
    }
    put(o, "]", 1);
    break;
  case EWP_V_MAP: {
    put(o, "{", 1);
    bool first = true;
    for (size_t i = 0; i < v->v.map.n; i++) {
      const ewp_kv_t *kv = &v->v.map.kv[i];
      if (kv->val.t == EWP_V_ABSENT)
        continue;
      if (!first)
        put(o, ",", 1);
      first = false;
      put_str(o, kv->key, strlen(kv->key));
      put(o, ":", 1);
      put_value(o, &kv->val);
    }
    put(o, "}", 1);
    break;
  }
  case EWP_V_ARRAY:
    put(o, "[", 1);
    for (size_t i = 0; i < v->v.arr.n; i++) {
      if (i)
        put(o, ",", 1);
      put_value(o, &v->v.arr.v[i]);
    }
    put(o, "]", 1);
    break;
  }
}

static bool jout_init(jout_t *o) {
  *o = (jout_t){0};
  o->str = json_string("");
  o->num = json_real(0);
  o->integer = json_integer(0);
  return o->str && o->num && o->integer;
}

static void jout_done(jout_t *o) {
  json_decref(o->str);
  json_decref(o->num);
  json_decref(o->integer);
}

static void answer(ewd_conn_t *c, int status, jout_t *o) {
  put(o, "\n", 1);
  if (o->oom) {
    free(o->p);
    ewd_http_respond(c, 500, "text/plain; charset=utf-8", NULL, 0, NULL);
    return;
  }
  ewd_http_respond(c, status, "application/json", o->p, o->n, NULL);
}

void ewd_api_result(ewd_conn_t *c, const ewp_value_t *result) {
  jout_t o;
  if (!jout_init(&o))
    o.oom = true;
  else
    put_value(&o, result);
  answer(c, 200, &o);
  jout_done(&o);
}

/* The HTTP status of a refusal: the error table's (errors_table.h). */
static int status_of(int code) {
  const ewd_error_info_t *e = ewd_error_info(code);
  return e ? e->http : 500;
}

void ewd_api_error(ewd_conn_t *c, int code, const char *message) {
  jout_t o;
  if (!jout_init(&o)) {
    o.oom = true;
  } else {
    ewp_kv_t err[] = {{"code", ewp_vstr(ew_err_name(code))}, {"message", ewp_vstr(message)}};
    ewp_kv_t top[] = {{"error", ewp_vmap(err, 2)}};
    ewp_value_t v = ewp_vmap(top, 1);
    put_value(&o, &v);
  }
  answer(c, status_of(code), &o);
  jout_done(&o);
}

/* ---- requests ---- */

static int hexval(char ch) {
  if (ch >= '0' && ch <= '9')
    return ch - '0';
  if (ch >= 'a' && ch <= 'f')
    return ch - 'a' + 10;
  if (ch >= 'A' && ch <= 'F')
    return ch - 'A' + 10;
  return -1;
}

/* Decodes application/x-www-form-urlencoded text (%XX and '+') in place; returns the new length,
 * or -1 for a broken escape. */
static long form_decode(char *s, size_t n) {
  size_t w = 0;
  for (size_t i = 0; i < n; i++) {
    if (s[i] == '+') {
      s[w++] = ' ';
    } else if (s[i] == '%') {
      int hi = i + 1 < n ? hexval(s[i + 1]) : -1;
      int lo = i + 2 < n ? hexval(s[i + 2]) : -1;
      if (hi < 0 || lo < 0)
        return -1;
      s[w++] = (char)(hi * 16 + lo);
      i += 2;
    } else {
      s[w++] = s[i];
    }
  }
  return (long)w;
}

static void pack_typed(msgpack_packer *pk, const ewp_field_info_t *f, const char *v, size_t n) {
  char tmp[64];
  switch (f->type) {
  case EWP_T_UINT:
    if (n > 0 && n < sizeof tmp && strspn(v, "0123456789") >= n) {
      memcpy(tmp, v, n);
      tmp[n] = 0;
      char *end;
      unsigned long long u = strtoull(tmp, &end, 10);
      if (*end == 0 && !(u == ULLONG_MAX)) {
        msgpack_pack_uint64(pk, u);
        return;
      }
    }
    break;
  case EWP_T_NUM:
    if (n > 0 && n < sizeof tmp) {
      memcpy(tmp, v, n);
      tmp[n] = 0;
      char *end;
      double d = strtod(tmp, &end);
      if (*end == 0) {
        msgpack_pack_double(pk, d);
        return;
      }
    }
    break;
  case EWP_T_BOOL:
    if ((n == 4 && !memcmp(v, "true", 4)) || (n == 1 && v[0] == '1')) {
      msgpack_pack_true(pk);
      return;
    }
    if ((n == 5 && !memcmp(v, "false", 5)) || (n == 1 && v[0] == '0')) {
      msgpack_pack_false(pk);
      return;
    }
    break;
  case EWP_T_NAMES: {
    size_t parts = 1;
    for (size_t i = 0; i < n; i++)
      parts += v[i] == ',';
    if (parts == 1)
      break;
    msgpack_pack_array(pk, parts);
    const char *p = v, *end = v + n;
    while (p <= end) {
      const char *comma = memchr(p, ',', (size_t)(end - p));
      size_t len = comma ? (size_t)(comma - p) : (size_t)(end - p);
      msgpack_pack_str(pk, len);
      msgpack_pack_str_body(pk, p, len);
      p += len + 1;
    }
    return;
  }
  default: break;
  }
  msgpack_pack_str(pk, n); /* as text: the decoder judges it by the field's rule */
  msgpack_pack_str_body(pk, v, n);
}

static bool http_typable(ewp_type_t t) {
  return t == EWP_T_NAME || t == EWP_T_STR || t == EWP_T_UINT || t == EWP_T_NUM ||
         t == EWP_T_BOOL || t == EWP_T_ENUM || t == EWP_T_NAMES;
}

bool ewd_api_is_path(const char *path) { return !strncmp(path, API_PREFIX, strlen(API_PREFIX)); }

void ewd_api_serve(ewd_conn_t *c, const char *path, const char *query) {
  ewd_server_t *srv = c->srv;
  const char *name = path + strlen(API_PREFIX);
  int method = -1;
  for (int m = 0; m < EWP_METHOD_COUNT; m++)
    if (!strcmp(ewp_method_info((ewp_method_t)m)->name, name))
      method = m;
  bool typable = method >= 0; /* a method needing a field a query string cannot carry (bin
                                 rows: nullify's x and y) is not served either */
  size_t nf0 = 0;
  const ewp_field_info_t *f0 = typable ? ewp_method_fields((ewp_method_t)method, &nf0) : NULL;
  for (size_t i = 0; i < nf0; i++)
    if ((f0[i].flags & EWP_F_REQ) && !http_typable(f0[i].type))
      typable = false;
  if (!typable || !(ewp_method_info((ewp_method_t)method)->flags & EWP_M_ANSWER)) {
    char msg[256];
    snprintf(msg, sizeof msg, "%s: not a method the JSON API serves (ping, query, list, info, "
             "stats, metrics, runs, history, alerts)", path);
    ewd_count_error(srv, EW_EUNKMETHOD);
    ewd_api_error(c, EW_EUNKMETHOD, msg);
    return;
  }
  size_t nfields = 0;
  const ewp_field_info_t *fields = ewp_method_fields((ewp_method_t)method, &nfields);

  /* split the query into decoded (key, value) pairs, in place */
  char q[2048 + 1];
  snprintf(q, sizeof q, "%s", query ? query : "");
  struct { const char *k, *v; size_t kn, vn; const ewp_field_info_t *f; } kv[API_MAX_FIELDS];
  size_t nkv = 0;
  for (char *save = NULL, *tok = strtok_r(q, "&", &save); tok; tok = strtok_r(NULL, "&", &save)) {
    char *eq = strchr(tok, '=');
    char *v = eq ? eq + 1 : tok + strlen(tok);
    if (eq)
      *eq = 0;
    long kn = form_decode(tok, strlen(tok)), vn = form_decode(v, strlen(v));
    if (kn < 0 || vn < 0) {
      ewd_count_error(srv, EW_EBADREQ);
      ewd_api_error(c, EW_EBADREQ, "the query string has a broken %-escape");
      return;
    }
    if (nkv == API_MAX_FIELDS) {
      ewd_count_error(srv, EW_EBADREQ);
      ewd_api_error(c, EW_EBADREQ, "more than 32 query parameters");
      return;
    }
    const ewp_field_info_t *f = NULL;
    for (size_t i = 0; i < nfields; i++)
      if (strlen(fields[i].name) == (size_t)kn && !memcmp(fields[i].name, tok, (size_t)kn))
        f = &fields[i];
    if (f && !http_typable(f->type)) {
      char msg[160];
      snprintf(msg, sizeof msg, "'%s' cannot be given in a URL; use the msgpack-RPC port",
               f->name);
      ewd_count_error(srv, EW_EBADREQ);
      ewd_api_error(c, EW_EBADREQ, msg);
      return;
    }
    kv[nkv++] = (typeof(kv[0])){tok, v, (size_t)kn, (size_t)vn, f};
  }

  /* [0, msgid, method, {params}], decoded and dispatched as on the RPC port */
  msgpack_sbuffer sb;
  msgpack_sbuffer_init(&sb);
  msgpack_packer pk;
  msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
  msgpack_pack_array(&pk, 4);
  msgpack_pack_uint32(&pk, 0);
  msgpack_pack_uint32(&pk, 1);
  ew_pack_str(&pk, name);
  msgpack_pack_map(&pk, nkv);
  for (size_t i = 0; i < nkv; i++) {
    msgpack_pack_str(&pk, kv[i].kn);
    msgpack_pack_str_body(&pk, kv[i].k, kv[i].kn);
    if (kv[i].f) {
      pack_typed(&pk, kv[i].f, kv[i].v, kv[i].vn);
    } else { /* unknown field: the decoder names it */
      msgpack_pack_str(&pk, kv[i].vn);
      msgpack_pack_str_body(&pk, kv[i].v, kv[i].vn);
    }
  }
  if (!sb.data) {
    ewd_api_error(c, EW_ENOMEM, "out of memory");
    return;
  }
  ewp_request_t req;
  ewp_error_t err;
  srv->stat[EWD_STAT_requests]++;
  if (ewp_decode((const uint8_t *)sb.data, sb.size, &req, &err) != 0) {
    int code = ewd_rpc_code(err.code);
    ewd_count_error(srv, code);
    ewd_api_error(c, code, err.message);
  } else {
    ewd_call_t call = {.srv = srv, .conn = c, .req = &req};
    ewd_cmd_dispatch(&call);
    ewp_request_free(&req);
  }
  msgpack_sbuffer_destroy(&sb);
}
