/* daemon.c — methods about the daemon itself: ping, stats (from the self-stat table), metrics
 * (the library's metric table) and auth. */
#include "cmd/cmd.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void ewd_cmd_ping(ewd_call_t *call) {
  ewp_kv_t kv[] = {{"version", ewp_vstr(EW_VERSION_STRING)},
                   {"protocol", ewp_vu64(EW_PROTOCOL_VERSION)},
                   {"pong", ewp_vbool(true)}};
  ewp_value_t v = ewp_vmap(kv, 3);
  ewd_reply(call, &v);
}

void ewd_cmd_stats(ewd_call_t *call) {
  ewd_server_t *srv = call->srv;
  ewd_stats_refresh(srv);
  ewp_kv_t kv[EWD_STAT_COUNT + 3];
  size_t n = 0;
  kv[n++] = (ewp_kv_t){"version", ewp_vstr(EW_VERSION_STRING)};
  kv[n++] = (ewp_kv_t){"uptime_s", ewp_vf64(ewd_now() - srv->started)};
  for (int i = 0; i < EWD_STAT_COUNT; i++)
    kv[n++] = (ewp_kv_t){ewd_stat_table[i].name, ewp_vu64(srv->stat[i])};
  /* by wire name: two codes may share one (INTERNAL), and a map key appears once */
  ewp_kv_t ekv[EW__ERR_END - EW__ERR_BASE];
  uint64_t counts[EW__ERR_END - EW__ERR_BASE];
  size_t ne = 0;
  for (int code = EW__ERR_BASE + 1; code < EW__ERR_END; code++) {
    size_t k = 0;
    while (k < ne && strcmp(ekv[k].key, ew_err_name(code)) != 0)
      k++;
    if (k == ne)
      ekv[ne] = (ewp_kv_t){ew_err_name(code), {0}}, counts[ne++] = 0;
    counts[k] += srv->errors[code - EW__ERR_BASE];
  }
  for (size_t k = 0; k < ne; k++)
    ekv[k].val = counts[k] ? ewp_vu64(counts[k]) : (ewp_value_t){0};
  kv[n++] = (ewp_kv_t){"errors", ewp_vmap(ekv, ne)};
  ewp_value_t v = ewp_vmap(kv, n);
  ewd_reply(call, &v);
}

/* One parameter's entry: a number keeps the six keys it always had (name, default, min, max,
 * integer, doc); a bool, string or enum parameter says its `type` and what it takes. `vals` holds
 * an enum's names (as many as it has). */
static ewp_value_t param_value(const ew_param_info_t *pi, ewp_kv_t k[10], ewp_value_t *vals) {
  static const char *const charsets[] = {"name", "text"}; /* by ew_charset_t */
  _Static_assert(EW_CHARSET_NAME == 0 && EW_CHARSET_TEXT == 1, "charsets[] follows ew_charset_t");
  bool num = pi->type == EW_PARAM_NUMBER, str = pi->type == EW_PARAM_STRING;
  bool en = pi->type == EW_PARAM_ENUM;
  size_t nv = 0;
  for (; en && pi->names[nv]; nv++)
    vals[nv] = ewp_vstr(pi->names[nv]);
  ewp_value_t def = num && isnan(pi->default_value) ? ewp_vnil() /* required: no default */
                    : num ? ewp_vf64(pi->default_value)
                    : pi->type == EW_PARAM_BOOL ? ewp_vbool(pi->default_value != 0)
                    : en ? ewp_vstr(pi->names[(size_t)pi->default_value])
                    : pi->default_str ? ewp_vstr(pi->default_str) : ewp_vnil();
  ewp_value_t absent = {0};
  k[0] = (ewp_kv_t){"name", ewp_vstr(pi->name)};
  k[1] = (ewp_kv_t){"type", num ? absent : ewp_vstr(ew_param_type_name(pi->type))};
  k[2] = (ewp_kv_t){"default", def};
  k[3] = (ewp_kv_t){"min", num ? ewp_vf64(pi->min) : absent};
  k[4] = (ewp_kv_t){"max", num ? ewp_vf64(pi->max) : absent};
  k[5] = (ewp_kv_t){"integer", num ? ewp_vbool(pi->integer) : absent};
  k[6] = (ewp_kv_t){"max_len", str ? ewp_vu64(pi->max_len) : absent};
  k[7] = (ewp_kv_t){"charset", str ? ewp_vstr(charsets[pi->charset]) : absent};
  k[8] = (ewp_kv_t){"values", en ? ewp_varray(vals, nv) : absent};
  k[9] = (ewp_kv_t){"doc", ewp_vstr(pi->doc)};
  return ewp_vmap(k, 10);
}

/* The metric table: every string generated from the row's typed columns (eigenwatch.h);
 * `streams` names the kind of stream a metric applies to. */
#define EWD__KNAME(value, name) name,
void ewd_cmd_metrics(ewd_call_t *call) {
  static const char *const kinds[] = {EW_ENUM_stream_kind(EWD__KNAME)};
  size_t nm = ew_metric_count(), nnames = 0;
  for (size_t i = 0; i < nm; i++)
    for (size_t p = 0; p < ew_metric_info(i)->nparams; p++)
      for (const char *const *n = ew_metric_info(i)->params[p].names; n && *n; n++)
        nnames++;
  ewp_value_t *items = malloc(nm * sizeof *items);
  ewp_kv_t *mkv = malloc(nm * 8 * sizeof *mkv);
  ewp_value_t *plists = malloc(nm * EW_METRIC_MAX_PARAMS * sizeof *plists);
  ewp_kv_t *pkv = malloc(nm * EW_METRIC_MAX_PARAMS * 10 * sizeof *pkv);
  ewp_value_t *vals = malloc((nnames ? nnames : 1) * sizeof *vals);
  char(*text)[2][160] = malloc(nm * sizeof *text);
  if (!items || !mkv || !plists || !pkv || !vals || !text) {
    ewd_fail(call, EW_ENOMEM, "out of memory");
    goto out;
  }
  ewp_value_t *v = vals;
  for (size_t i = 0; i < nm; i++) {
    const ew_metric_info_t *m = ew_metric_info(i);
    ewp_value_t *pl = plists + i * EW_METRIC_MAX_PARAMS;
    for (size_t p = 0; p < m->nparams; p++) {
      pl[p] = param_value(&m->params[p], pkv + (i * EW_METRIC_MAX_PARAMS + p) * 10, v);
      for (const char *const *n = m->params[p].names; n && *n; n++)
        v++;
    }
    ewp_kv_t *k = mkv + i * 8;
    k[0] = (ewp_kv_t){"name", ewp_vstr(m->name)};
    k[1] = (ewp_kv_t){"kind", ewp_vstr(m->kind == EW_VALUE_LIST ? "list" : "scalar")};
    k[2] = (ewp_kv_t){"sources",
                      ewp_vstr(ew_metric_sources_str(m, text[i][0], sizeof text[i][0]))};
    k[3] = (ewp_kv_t){"cost", ewp_vstr(ew_metric_cost_str(m, text[i][1], sizeof text[i][1]))};
    k[4] = (ewp_kv_t){"doc", ewp_vstr(m->doc)};
    k[5] = (ewp_kv_t){"params", ewp_varray(pl, m->nparams)};
    k[6] = (ewp_kv_t){"sketch", ewp_vstr(ew_sketch_answer_name(m->sketch))};
    unsigned kind = (unsigned)__builtin_ctz(m->kinds); /* EW_METRIC_KIND_*: 1 << the kind */
    k[7] = (ewp_kv_t){"streams", ewp_vstr(kind < sizeof kinds / sizeof kinds[0] ? kinds[kind]
                                                                               : "matrix")};
    items[i] = ewp_vmap(k, 8);
  }
  ewp_kv_t top[] = {{"metrics", ewp_varray(items, nm)}};
  ewp_value_t res = ewp_vmap(top, 1);
  ewd_reply(call, &res);
out:
  free(items);
  free(mkv);
  free(plists);
  free(pkv);
  free(vals);
  free(text);
}

/* Compares in time that depends only on the lengths, never on where the bytes differ. */
static bool token_equal(const char *a, size_t an, const char *b, size_t bn) {
  volatile unsigned char diff = (unsigned char)(an != bn);
  for (size_t i = 0; i < bn; i++)
    diff |= (unsigned char)((an ? (unsigned char)a[i % an] : 0u) ^ (unsigned char)b[i]);
  return an > 0 && diff == 0;
}

void ewd_cmd_auth(ewd_call_t *call) {
  ewd_server_t *srv = call->srv;
  ewd_conn_t *c = call->conn;
  const ewp_str_t *tok = &call->req->u.auth.token;
  if (!srv->token) {
    ewp_kv_t kv[] = {{"authenticated", ewp_vbool(true)}, {"required", ewp_vbool(false)}};
    ewp_value_t v = ewp_vmap(kv, 2);
    ewd_reply(call, &v);
    return;
  }
  if (!token_equal(tok->p, tok->n, srv->token, srv->token_len)) {
    srv->stat[EWD_STAT_auth_failures]++;
    ewd_log(EWD_LOG_WARN, "auth failed, closing connection", "conn=%llu",
            (unsigned long long)srv->conn_hooks->id(c));
    ewd_fail(call, EW_EAUTH, "wrong token; the connection will be closed");
    srv->conn_hooks->hang_up(c); /* close once the reply is out */
    return;
  }
  srv->conn_hooks->authed(c);
  ewp_kv_t kv[] = {{"authenticated", ewp_vbool(true)},
                   {"required", ewp_vbool(srv->conn_hooks->tcp(c))}};
  ewp_value_t v = ewp_vmap(kv, 2);
  ewd_reply(call, &v);
}
