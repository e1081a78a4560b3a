/* metrics/info.c — what the metric table's typed columns say, as text and as checks: the human
 * strings of a row (its sources, its cost, its answer on a sketch), generated from the columns so
 * that no column is prose, and the one validator of a parameter value against its row
 * (ew_param_check), which the library's dispatcher and the daemon's argument checking share.
 * The table itself is table.c's. */
#include "../ew_internal.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* ---- names ---- */

static const char *const need_names[] = {
#define EW__XX(s, name) name,
    EW_NEEDS_MAP(EW__XX)
#undef EW__XX
};
_Static_assert(sizeof need_names / sizeof need_names[0] == EW__NEED_COUNT,
               "one name per need bit");
_Static_assert(EW__NEED_COUNT <= 32, "needs fit an unsigned bit set");

static const char *const sketch_names[] = {
#define EW__XX(s, name) name,
    EW_SKETCH_ANSWER_MAP(EW__XX)
#undef EW__XX
};
_Static_assert(sizeof sketch_names / sizeof sketch_names[0] == EW__SK_COUNT,
               "one name per sketch answer");

_Static_assert(EW__NSRC == EW_SOURCE_COUNT, "the library's source count is the public one");
_Static_assert(EW__NSRC <= 32, "sources fit an unsigned bit set");

static const char *const type_names[] = {"number", "bool", "string", "enum"};
_Static_assert(EW_PARAM_ENUM + 1 == sizeof type_names / sizeof type_names[0],
               "one name per parameter type");

EW_EXPORT const char *ew_sketch_answer_name(ew_sketch_answer_t a) {
  return (unsigned)a < EW__SK_COUNT ? sketch_names[a] : NULL;
}

EW_EXPORT const char *ew_need_name(unsigned bit) {
  for (unsigned i = 0; i < EW__NEED_COUNT; i++)
    if (bit == 1u << i)
      return need_names[i];
  return NULL;
}

EW_EXPORT const char *ew_param_type_name(ew_param_type_t t) {
  return (unsigned)t <= EW_PARAM_ENUM ? type_names[t] : NULL;
}

/* ---- a row's strings ---- */

/* Appends to buf[0, cap) at *len (always terminated; a full buffer keeps what fits). */
static void append(char *buf, size_t cap, size_t *len, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void append(char *buf, size_t cap, size_t *len, const char *fmt, ...) {
  if (*len + 1 >= cap)
    return;
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(buf + *len, cap - *len, fmt, ap);
  va_end(ap);
  if (n > 0)
    *len = *len + (size_t)n < cap ? *len + (size_t)n : cap - 1;
}

EW_EXPORT char *ew_metric_sources_str(const ew_metric_info_t *m, char *buf, size_t cap) {
  size_t len = 0;
  if (cap)
    buf[0] = 0;
  for (int s = 0; s < EW__NSRC; s++)
    if (m->sources & EW_SOURCE_BIT(s))
      append(buf, cap, &len, "%s%s", len ? ", " : "", ew_source_name((ew_source_t)s));
  return buf;
}

EW_EXPORT char *ew_metric_cost_str(const ew_metric_info_t *m, char *buf, size_t cap) {
  size_t len = 0;
  if (cap)
    buf[0] = 0;
  if (m->cost_own) {
    append(buf, cap, &len, "%s", m->cost_own);
    return buf;
  }
  for (unsigned i = 0; i < EW__NEED_COUNT; i++)
    if (m->needs & (1u << i))
      append(buf, cap, &len, "%s%s", len ? " + " : "", need_names[i]);
  if (m->cost_note)
    append(buf, cap, &len, " (%s)", m->cost_note);
  return buf;
}

/* ---- parameters ---- */

EW_EXPORT const ew_param_info_t *ew_metric_param(const ew_metric_info_t *m, const char *name,
                                                 size_t len) {
  for (size_t i = 0; m && name && i < m->nparams; i++)
    if (strlen(m->params[i].name) == len && memcmp(m->params[i].name, name, len) == 0)
      return &m->params[i];
  return NULL;
}

static bool in_charset(ew_charset_t cs, const char *s, size_t n) {
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    bool ok = cs == EW_CHARSET_NAME ? (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_'
                                    : c >= 0x20 && c != 0x7f;
    if (!ok)
      return false;
  }
  return true;
}

/* "a string of 1 to 64 bytes of [a-z0-9_]", "one of \"gaussian\", \"cosine\"", ...: what pi
 * expects, as the refusals say it. */
static void expected(const ew_param_info_t *pi, char *buf, size_t cap) {
  size_t len = 0;
  buf[0] = 0;
  switch (pi->type) {
  case EW_PARAM_NUMBER:
    append(buf, cap, &len, "%s in [%g, %g]", pi->integer ? "an integer" : "a number", pi->min,
           pi->max);
    break;
  case EW_PARAM_BOOL:
    append(buf, cap, &len, "a bool (true or false)");
    break;
  case EW_PARAM_STRING:
    append(buf, cap, &len, "a string of 1 to %zu bytes of %s", pi->max_len,
           pi->charset == EW_CHARSET_NAME ? "[a-z0-9_]" : "text without control characters");
    break;
  case EW_PARAM_ENUM:
    append(buf, cap, &len, "one of");
    for (size_t i = 0; pi->names && pi->names[i]; i++)
      append(buf, cap, &len, "%s \"%s\"", i ? "," : "", pi->names[i]);
    break;
  }
}

static int refuse(const ew_metric_info_t *m, const ew_param_info_t *pi, char *msg, size_t cap,
                  const char *fmt, ...) __attribute__((format(printf, 5, 6)));
static int refuse(const ew_metric_info_t *m, const ew_param_info_t *pi, char *msg, size_t cap,
                  const char *fmt, ...) {
  char want[256], got[96];
  expected(pi, want, sizeof want);
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(got, sizeof got, fmt, ap);
  va_end(ap);
  if (msg && cap)
    snprintf(msg, cap, "parameter '%s' of '%s' must be %s%s; got %s", pi->name, m->name, want,
             pi->type == EW_PARAM_NUMBER && isinf(pi->max) ? " (or \"inf\")" : "", got);
  return EW_EBADPARAM;
}

EW_EXPORT int ew_param_check(const ew_metric_info_t *m, const ew_param_info_t *pi,
                             const ew_param_t *p, double *value, const char **str, char *msg,
                             size_t cap) {
  const char *given = ew_param_type_name(p->type);
  if (!given || (p->type == EW_PARAM_ENUM) || (p->type == EW_PARAM_STRING && !p->str))
    return refuse(m, pi, msg, cap, "a value of no known type");
  *str = NULL;
  switch (pi->type) {
  case EW_PARAM_NUMBER: {
    double v = p->value;
    if (p->type == EW_PARAM_STRING) {
      if (strcmp(p->str, "inf") != 0)
        return refuse(m, pi, msg, cap, "a string");
      v = INFINITY;
    }
    /* (the range refusal keeps the sentence it has always had: the vectors pin it) */
    if (isnan(v) || v < pi->min || v > pi->max || (pi->integer && v != floor(v))) {
      if (msg && cap)
        snprintf(msg, cap, "parameter '%s' of '%s' must be %s in [%g, %g]; got %g", pi->name,
                 m->name, pi->integer ? "an integer" : "a number", pi->min, pi->max, v);
      return EW_EBADPARAM;
    }
    *value = v;
    return 0;
  }
  case EW_PARAM_BOOL:
    if (p->type != EW_PARAM_BOOL)
      return refuse(m, pi, msg, cap, "a %s", given);
    *value = p->value != 0 ? 1.0 : 0.0;
    return 0;
  case EW_PARAM_STRING: {
    if (p->type != EW_PARAM_STRING)
      return refuse(m, pi, msg, cap, "a %s", given);
    size_t n = strlen(p->str);
    if (n < 1 || n > pi->max_len)
      return refuse(m, pi, msg, cap, "%zu bytes", n);
    if (!in_charset(pi->charset, p->str, n))
      return refuse(m, pi, msg, cap, "a byte outside that set");
    *value = 0;
    *str = p->str;
    return 0;
  }
  case EW_PARAM_ENUM:
    if (p->type != EW_PARAM_STRING)
      return refuse(m, pi, msg, cap, "a %s", given);
    for (size_t i = 0; pi->names && pi->names[i]; i++)
      if (strcmp(pi->names[i], p->str) == 0) {
        *value = (double)i;
        *str = pi->names[i];
        return 0;
      }
    if (strlen(p->str) <= 32 && in_charset(EW_CHARSET_NAME, p->str, strlen(p->str)))
      return refuse(m, pi, msg, cap, "'%s'", p->str);
    return refuse(m, pi, msg, cap, "another string");
  }
  return refuse(m, pi, msg, cap, "a value for a parameter of no known type");
}
