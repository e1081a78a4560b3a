/* params.c — what a query and a scheduled evaluation share of a metric request: the wire's
 * parameter resolved against the metric table, a request's own copy of it, and the result
 * cache's key. Pure helpers (no connection, no stream): cmd/query.c and run/eval.c call them. */
#include "core/ewd.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

char *ewd_cache_key(const char *metric, int center, ew_source_t src, uint64_t tail,
                    ew_method_t method, const ew_param_t *ps, size_t np) {
  /* at most a 63-byte name, ~60 bytes of options and EW_METRIC_MAX_PARAMS parameters of a key
   * under 32 bytes and a value of 24 or a string of EWP_PARAM_STR_MAX bytes: it always fits */
  char buf[128 + EW_METRIC_MAX_PARAMS * (48 + EWP_PARAM_STR_MAX)];
  int n = snprintf(buf, sizeof buf, "%s|c=%d|s=%d|t=%llu|m=%d", metric, center, (int)src,
                   (unsigned long long)tail, (int)method);
  for (size_t i = 0; i < np && n > 0 && (size_t)n < sizeof buf; i++) {
    if (ps[i].type == EW_PARAM_STRING) /* length-prefixed: no text can imitate a separator */
      n += snprintf(buf + n, sizeof buf - (size_t)n, "|%s=s%zu:%s", ps[i].key, strlen(ps[i].str),
                    ps[i].str);
    else
      n += snprintf(buf + n, sizeof buf - (size_t)n, "|%s=%.17g", ps[i].key, ps[i].value);
  }
  if (n < 0 || (size_t)n >= sizeof buf)
    return NULL;
  return strdup(buf);
}

/* True when the metric can be computed from the window (its sources include it). */
bool ewd_takes_window(const ew_metric_info_t *info) {
  return (info->sources & EW_SOURCE_BIT(EW_SOURCE_WINDOW)) != 0;
}

int ewd_param_resolve(const ew_metric_info_t *info, const ew_param_info_t *pi,
                      const ewp_param_t *wp, ew_param_t *out, char txt[EWP_PARAM_STR_MAX + 1],
                      char *msg, size_t cap) {
  ew_param_t given = {.key = pi->name, .value = wp->type == EWP_PV_STR ? 0 : wp->value,
                      .type = wp->type == EWP_PV_STR    ? EW_PARAM_STRING
                              : wp->type == EWP_PV_BOOL ? EW_PARAM_BOOL
                                                        : EW_PARAM_NUMBER};
  if (wp->type == EWP_PV_STR) {
    if (wp->str_n > EWP_PARAM_STR_MAX || memchr(wp->str, 0, wp->str_n)) {
      snprintf(msg, cap, "parameter '%s' of '%s' must be text without NUL bytes", pi->name,
               info->name);
      return EW_EBADPARAM;
    }
    memcpy(txt, wp->str, wp->str_n);
    txt[wp->str_n] = 0;
    given.str = txt;
  }
  double v;
  const char *str;
  int rc = ew_param_check(info, pi, &given, &v, &str, msg, cap);
  if (rc)
    return rc;
  /* resolved: a number ("inf" included) or a bool as its value, a string or enum as its text */
  *out = (ew_param_t){.key = pi->name, .value = v,
                      .type = pi->type == EW_PARAM_BOOL ? EW_PARAM_BOOL
                              : str                     ? EW_PARAM_STRING
                                                        : EW_PARAM_NUMBER,
                      .str = str ? txt : NULL};
  if (str && str != txt) /* an enum: its name from the table */
    snprintf(txt, EWP_PARAM_STR_MAX + 1, "%s", str);
  return 0;
}

int ewd_qmetric_param(ewd_qmetric_t *m, const ew_param_t *p) {
  size_t kl = strlen(p->key) + 1, sl = p->type == EW_PARAM_STRING ? strlen(p->str) + 1 : 0;
  char *own = m->nparams < EW_METRIC_MAX_PARAMS ? malloc(kl + sl) : NULL;
  if (!own)
    return EW_ENOMEM;
  memcpy(own, p->key, kl);
  if (sl)
    memcpy(own + kl, p->str, sl);
  m->pkeys[m->nparams] = own;
  m->params[m->nparams] = *p;
  m->params[m->nparams].key = own;
  m->params[m->nparams].str = sl ? own + kl : NULL;
  m->nparams++;
  return 0;
}
