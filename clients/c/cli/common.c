/* common.c — what every command shares: connecting, exit codes, printing answers (JSON, tables),
 * building requests, strict number parsing. */
#include "cli.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int usage_error(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "eigenwatch: ");
  vfprintf(stderr, fmt, ap);
  fprintf(stderr, " (see eigenwatch help)\n");
  va_end(ap);
  return EX_USAGE;
}

int rpc_exit(int rc, ewc_reply_t *r) { return fan_exit(g_peer, rc, r); }

ewc_t *open_conn(int *ex) { return open_conn_at(g_address, ex); }

ewc_t *open_conn_at(const char *address, int *ex) {
  ewc_t *c = NULL;
  char err[512];
  int rc = ewc_connect(address, g_timeout, &c, err, sizeof err);
  if (rc) {
    fprintf(stderr, "eigenwatch: %s\n", err);
    *ex = rc == EWC_EADDR ? EX_USAGE : EX_UNREACHABLE;
    return NULL;
  }
  if (g_run && ewc_set_run(c, g_run) != 0) {
    fprintf(stderr, "eigenwatch: out of memory\n");
    ewc_close(c);
    *ex = EX_UNREACHABLE;
    return NULL;
  }
  return c;
}

/* ---- output ---- */

void json_str(FILE *f, const char *p, size_t n) {
  fputc('"', f);
  for (size_t i = 0; i < n; i++) {
    unsigned char ch = (unsigned char)p[i];
    if (ch == '"' || ch == '\\')
      fprintf(f, "\\%c", ch);
    else if (ch < 0x20)
      fprintf(f, "\\u%04x", ch);
    else
      fputc(ch, f);
  }
  fputc('"', f);
}

/* msgpack → JSON (non-finite floats become null: JSON has no inf/nan) */
void json(FILE *f, const msgpack_object *o) {
  switch (o->type) {
  case MSGPACK_OBJECT_NIL: fputs("null", f); break;
  case MSGPACK_OBJECT_BOOLEAN: fputs(o->via.boolean ? "true" : "false", f); break;
  case MSGPACK_OBJECT_POSITIVE_INTEGER: fprintf(f, "%llu", (unsigned long long)o->via.u64); break;
  case MSGPACK_OBJECT_NEGATIVE_INTEGER: fprintf(f, "%lld", (long long)o->via.i64); break;
  case MSGPACK_OBJECT_FLOAT32:
  case MSGPACK_OBJECT_FLOAT64:
    if (isfinite(o->via.f64))
      fprintf(f, "%.17g", o->via.f64);
    else
      fputs("null", f);
    break;
  case MSGPACK_OBJECT_STR: json_str(f, o->via.str.ptr, o->via.str.size); break;
  case MSGPACK_OBJECT_BIN: json_str(f, o->via.bin.ptr, o->via.bin.size); break;
  case MSGPACK_OBJECT_ARRAY:
    fputc('[', f);
    for (uint32_t i = 0; i < o->via.array.size; i++) {
      if (i)
        fputs(", ", f);
      json(f, &o->via.array.ptr[i]);
    }
    fputc(']', f);
    break;
  case MSGPACK_OBJECT_MAP:
    fputc('{', f);
    for (uint32_t i = 0; i < o->via.map.size; i++) {
      if (i)
        fputs(", ", f);
      json(f, &o->via.map.ptr[i].key);
      fputs(": ", f);
      json(f, &o->via.map.ptr[i].val);
    }
    fputc('}', f);
    break;
  default: fputs("null", f);
  }
}

void scalar(FILE *f, const msgpack_object *o) {
  if (o->type == MSGPACK_OBJECT_FLOAT32 || o->type == MSGPACK_OBJECT_FLOAT64)
    fprintf(f, "%.10g", o->via.f64);
  else if (o->type == MSGPACK_OBJECT_STR)
    fprintf(f, "%.*s", (int)o->via.str.size, o->via.str.ptr);
  else if (o->type == MSGPACK_OBJECT_ARRAY && o->via.array.size > 8) {
    for (uint32_t i = 0; i < 8; i++) {
      scalar(f, &o->via.array.ptr[i]);
      fputc(' ', f);
    }
    fprintf(f, "... (%u values)", o->via.array.size);
  } else if (o->type == MSGPACK_OBJECT_ARRAY) {
    for (uint32_t i = 0; i < o->via.array.size; i++) {
      if (i)
        fputc(' ', f);
      scalar(f, &o->via.array.ptr[i]);
    }
  } else
    json(f, o);
}

/* A map as aligned "key  value" lines (nested maps indented). */
void table(const msgpack_object *m, int indent) {
  if (m->type != MSGPACK_OBJECT_MAP) {
    scalar(stdout, m);
    fputc('\n', stdout);
    return;
  }
  int w = 0;
  for (uint32_t i = 0; i < m->via.map.size; i++)
    if ((int)m->via.map.ptr[i].key.via.str.size > w)
      w = (int)m->via.map.ptr[i].key.via.str.size;
  for (uint32_t i = 0; i < m->via.map.size; i++) {
    const msgpack_object *k = &m->via.map.ptr[i].key, *v = &m->via.map.ptr[i].val;
    printf("%*s%-*.*s  ", indent, "", w, (int)k->via.str.size, k->via.str.ptr);
    if (v->type == MSGPACK_OBJECT_MAP) {
      fputc('\n', stdout);
      table(v, indent + 2);
    } else {
      scalar(stdout, v);
      fputc('\n', stdout);
    }
  }
}

int print_result(ewc_reply_t *r) {
  if (g_json) {
    json(stdout, r->result);
    fputc('\n', stdout);
  } else {
    table(r->result, 0);
  }
  return EX_OK;
}

/* ---- request building ---- */

void p_init(params_t *p) {
  msgpack_sbuffer_init(&p->sb);
  msgpack_packer_init(&p->pk, &p->sb, msgpack_sbuffer_write);
}

void p_str(params_t *p, const char *s) {
  size_t n = strlen(s);
  msgpack_pack_str(&p->pk, n);
  msgpack_pack_str_body(&p->pk, s, n);
}

/* "run": --run's value, when given (the caller counted it in the map). */
void p_run(params_t *p) {
  if (g_run) {
    p_str(p, "run");
    p_str(p, g_run);
  }
}

/* A value from the command line: true/false, an integer, a number, or a string. */
void p_value(params_t *p, const char *v) {
  char *end;
  if (!strcmp(v, "true") || !strcmp(v, "false")) {
    v[0] == 't' ? msgpack_pack_true(&p->pk) : msgpack_pack_false(&p->pk);
    return;
  }
  long long i = strtoll(v, &end, 10);
  if (*v && !*end) {
    msgpack_pack_int64(&p->pk, i);
    return;
  }
  double d = strtod(v, &end);
  if (*v && !*end && strcmp(v, "inf") != 0) {
    msgpack_pack_double(&p->pk, d);
    return;
  }
  p_str(p, v);
}

int table_call(const char *method, const char *stream, msgpack_sbuffer *params,
               void (*print)(const msgpack_object *result)) {
  if (!stream && g_naddrs > 1)
    return fan_table(method, params, print);
  int ex = 0;
  ewc_t *c = stream ? open_stream_conn(NULL, stream, &ex) : open_conn(&ex);
  if (!c)
    return ex;
  ewc_reply_t r;
  int rc = ewc_call(c, method, params, &r);
  if (rc)
    ex = rpc_exit(rc, &r);
  else if (g_json)
    ex = print_result(&r);
  else
    print(r.result);
  ewc_reply_free(&r);
  ewc_close(c);
  return ex;
}

int str_of(const msgpack_object *m, const char *key, const char **p) {
  const msgpack_object *o = ewc_get(m, key);
  if (o && o->type == MSGPACK_OBJECT_STR) {
    *p = o->via.str.ptr;
    return (int)o->via.str.size;
  }
  *p = "-";
  return 1;
}

/* A call naming `stream` (on its daemon) or nothing (on every daemon), in --run's run. */
int simple_call(const char *method, const char *stream) {
  if (!stream && g_naddrs > 1)
    return fan_table(method, NULL, NULL);
  int ex = 0;
  ewc_t *c = stream ? open_stream_conn(NULL, stream, &ex) : open_conn(&ex);
  if (!c)
    return ex;
  params_t p;
  p_init(&p);
  if (stream) {
    msgpack_pack_map(&p.pk, 1 + (g_run != NULL));
    p_str(&p, "stream");
    p_str(&p, stream);
    p_run(&p);
  }
  ewc_reply_t r;
  int rc = ewc_call(c, method, stream ? &p.sb : NULL, &r);
  ex = rc ? rpc_exit(rc, &r) : print_result(&r);
  ewc_reply_free(&r);
  msgpack_sbuffer_destroy(&p.sb);
  ewc_close(c);
  return ex;
}


/* ---- numbers ---- */

int parse_u64(const char *opt, const char *word, uint64_t lo, uint64_t hi, uint64_t *out) {
  char *end;
  errno = 0;
  unsigned long long v = word && *word && *word != '-' && *word != '+' ? strtoull(word, &end, 10)
                                                                       : 0;
  if (!word || !*word || *word == '-' || *word == '+' || *end || errno || v < lo || v > hi)
    return usage_error("%s wants a whole number in [%llu, %llu], got '%s'", opt,
                       (unsigned long long)lo, (unsigned long long)hi, word ? word : "");
  *out = v;
  return 0;
}

int parse_double(const char *opt, const char *word, double lo, double hi, double *out) {
  char *end;
  errno = 0;
  double v = word && *word ? strtod(word, &end) : NAN;
  if (!word || !*word || *end || errno || !isfinite(v) || v < lo || v > hi)
    return usage_error("%s wants a number in [%g, %g], got '%s'", opt, lo, hi, word ? word : "");
  *out = v;
  return 0;
}
