/* dispatch.c — the method table's handlers, and what handlers share: replies, stream lookup,
 * and the life of a job (new → submit → done on the loop → finish). */
#include "cmd/cmd.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef void (*handler_fn)(ewd_call_t *call);

static const handler_fn handlers[EWP_METHOD_COUNT] = {
    [EWP_METHOD_PING] = ewd_cmd_ping,       [EWP_METHOD_CREATE] = ewd_cmd_create,
    [EWP_METHOD_INGEST] = ewd_cmd_ingest,   [EWP_METHOD_QUERY] = ewd_cmd_query,
    [EWP_METHOD_LIST] = ewd_cmd_list,       [EWP_METHOD_INFO] = ewd_cmd_info,
    [EWP_METHOD_RESET] = ewd_cmd_reset,     [EWP_METHOD_DROP] = ewd_cmd_drop,
    [EWP_METHOD_STATS] = ewd_cmd_stats,     [EWP_METHOD_METRICS] = ewd_cmd_metrics,
    [EWP_METHOD_AUTH] = ewd_cmd_auth,       [EWP_METHOD_SNAPSHOT] = ewd_cmd_snapshot,
    [EWP_METHOD_EXPORT] = ewd_cmd_export,   [EWP_METHOD_MERGE] = ewd_cmd_merge,
    [EWP_METHOD_RUNS] = ewd_cmd_runs,       [EWP_METHOD_FLUSH] = ewd_cmd_flush,
    [EWP_METHOD_HISTORY] = ewd_cmd_history, [EWP_METHOD_SUBSCRIBE] = ewd_cmd_subscribe,
    [EWP_METHOD_UNSUBSCRIBE] = ewd_cmd_unsubscribe, [EWP_METHOD_ALERT_SET] = ewd_cmd_alert_set,
    [EWP_METHOD_ALERTS] = ewd_cmd_alerts,   [EWP_METHOD_NULLIFY] = ewd_cmd_nullify,
};

void ewd_cmd_dispatch(ewd_call_t *call) {
  handler_fn h = handlers[call->req->method];
  if (!h) {
    ewd_fail(call, EW_EINTERNAL, "method '%s' has no handler",
             ewp_method_info(call->req->method)->name);
    return;
  }
  h(call);
}

void ewd_answer(ewd_server_t *srv, ewd_conn_t *c, uint32_t msgid, bool notify,
                const ewp_value_t *result) {
  srv->conn_hooks->result(c, msgid, notify, result);
}

void ewd_refuse(ewd_server_t *srv, ewd_conn_t *c, uint32_t msgid, bool notify, int code,
                const char *fmt, ...) {
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  srv->conn_hooks->error(srv, c, msgid, notify, code, msg);
}

void ewd_reply(ewd_call_t *call, const ewp_value_t *result) {
  ewd_answer(call->srv, call->conn, call->req->msgid, call->req->kind == EWP_KIND_NOTIFY, result);
}

void ewd_fail(ewd_call_t *call, int code, const char *fmt, ...) {
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  call->srv->conn_hooks->error(call->srv, call->conn, call->req->msgid,
                               call->req->kind == EWP_KIND_NOTIFY, code, msg);
}

ewd_stream_t *ewd_cmd_stream(ewd_call_t *call, ewd_key_t key) {
  ewd_stream_t *st = ewd_registry_visible(&call->srv->reg, &key);
  bool other_run = key.rn != strlen(EWP_DEFAULT_RUN) || memcmp(key.run, EWP_DEFAULT_RUN, key.rn);
  if (!st && !other_run)
    ewd_fail(call, EW_ENOSTREAM, "no stream named '%.*s' (ingest creates streams; 'list' shows "
             "them)", (int)key.n, key.name); /* names are checked ASCII: safe to echo */
  else if (!st)
    ewd_fail(call, EW_ENOSTREAM, "no stream named '%.*s' in run '%.*s' (ingest creates streams; "
             "'list' shows them)", (int)key.n, key.name, (int)key.rn, key.run);
  return st;
}

ewd_job_t *ewd_job_new(ewd_server_t *srv, ewd_call_t *call, ewd_stream_t *st, ewd_job_kind_t kind,
                       void (*done)(ewd_job_t *)) {
  ewd_job_t *j = ewd_job_make(srv, st, kind, done);
  if (j && call && call->conn) {
    j->conn = call->conn;
    j->gone = srv->conn_hooks->gone(call->conn);
  }
  if (j && call) {
    j->msgid = call->req->msgid;
    j->notify = call->req->kind == EWP_KIND_NOTIFY;
  }
  return j;
}

void ewd_job_reply(ewd_job_t *job, const ewp_value_t *result) {
  if (job->conn && !job->skipped)
    ewd_answer(job->srv, job->conn, job->msgid, job->notify, result);
}

void ewd_job_fail(ewd_job_t *job, int code, const char *message) {
  ewd_refuse(job->srv, job->conn, job->msgid, job->notify, code, "%s", message);
}

/* One configuration field's value as info shows it: by its type (EW_CONFIG_MAP's TYPE column). */
static ewp_value_t field_value(const ew_config_t *c, size_t i) {
  const ew_config_field_t *f = ew_config_field(i);
  switch (f->type) {
  case EW_CT_COUNT:
  case EW_CT_U64:
    return ewp_vu64(ew_config_get_u64(c, i));
  case EW_CT_ENUM:
    return ewp_vstr(f->values[ew_config_get_u64(c, i)]);
  case EW_CT_REAL_OFF:
    return ewp_vf64(ew_config_get_f64(c, i));
  }
  return ewp_vnil();
}

ewp_value_t ewd_config_value(const ewd_stream_t *st, ewd_config_kv_t *buf) {
  ewp_kv_t *kv = buf->kv;
  const ew_config_t *c = &st->cfg;
  size_t n = 0, nf = ew_config_field_count();
  /* the library's fields of state format 1, a renamed one under its old name (keys are never
   * renamed: the order replies have always had) */
  for (size_t i = 0; i < nf; i++) {
    const ew_config_field_t *f = ew_config_field(i);
    if (f->since <= 1)
      kv[n++] = (ewp_kv_t){f->old_name ? f->old_name : f->name, field_value(c, i)};
  }
  /* the daemon's own keys: these four here, sketch at the end (EWD_CONFIG_OWN_KEYS in all) */
  const ewp_kv_t own[] = {{"world", ewp_vu64(st->world)},
                          {"step_timeout", ewp_vf64(st->step_timeout)},
                          {"recent", ewp_vbool(st->recent)},
                          {"window_steps", ewp_vu64(st->window_steps)}};
  _Static_assert(sizeof own / sizeof own[0] + 1 == EWD_CONFIG_OWN_KEYS,
                 "EWD_CONFIG_KV counts every key the daemon adds");
  for (size_t i = 0; i < sizeof own / sizeof own[0]; i++)
    kv[n++] = own[i];
  /* then the new names of renamed fields and the later fields (and their old names, if any) */
  for (size_t i = 0; i < nf; i++) {
    const ew_config_field_t *f = ew_config_field(i);
    /* the fields of the tokens and stats kinds (state format 3) only on streams of those kinds,
     * where they apply: a matrix stream's CONFIG is what it has always been */
    if (f->since >= 3 && (c->stream_kind == EW_STREAM_MATRIX || !(f->kinds & ew_config_kinds(c))))
      continue;
    if (f->since > 1 || f->old_name)
      kv[n++] = (ewp_kv_t){f->name, field_value(c, i)};
    if (f->since > 1 && f->old_name)
      kv[n++] = (ewp_kv_t){f->old_name, field_value(c, i)};
  }
  kv[n++] = (ewp_kv_t){"sketch", ewp_vbool(ew_config_sketched(c))};
  if (c->stream_kind == EW_STREAM_TOKENS) { /* a list: not a row of the library's table */
    for (uint32_t i = 0; i < c->columns.n; i++)
      buf->cols[i] = ewp_vstr(c->columns.name[i]);
    kv[n++] = (ewp_kv_t){"columns", ewp_varray(buf->cols, c->columns.n)};
  }
  if (c->stream_kind == EW_STREAM_STATS) { /* its shape, as create gave it */
    for (uint32_t i = 0; i < c->shape_rank; i++)
      buf->cols[i] = ewp_vu64(c->shape[i]);
    kv[n++] = (ewp_kv_t){"shape", ewp_varray(buf->cols, c->shape_rank)};
  }
  if (c->stream_kind == EW_STREAM_PAIRED) { /* its dims [dx, dy], as create gave them */
    for (uint32_t i = 0; i < 2; i++)
      buf->cols[i] = ewp_vu64(c->shape[i]);
    kv[n++] = (ewp_kv_t){"dims", ewp_varray(buf->cols, 2)};
  }
  return ewp_vmap(kv, n); /* every field and old name once, own keys, columns */
}

const char *ewd_columns_list(const ew_config_t *cfg, char *buf, size_t cap) {
  size_t o = 0;
  buf[0] = 0;
  for (uint32_t i = 0; i < cfg->columns.n && o < cap; i++)
    o += (size_t)snprintf(buf + o, cap - o, "%s%s", i ? ", " : "", cfg->columns.name[i]);
  return buf;
}

int ewd_config_columns(ew_config_t *cfg, const ewp_names_t *names, char *msg, size_t cap) {
  char buf[EW_COLUMNS_MAX][EW_COLUMN_NAME_MAX + 1];
  const char *v[EW_COLUMNS_MAX];
  size_t n = names ? names->n : 1;
  if (!names)
    v[0] = "entropy";
  if (n > EW_COLUMNS_MAX)
    return snprintf(msg, cap, "'columns' must name 1 to %d columns (got %zu)", EW_COLUMNS_MAX, n),
           -1;
  for (size_t i = 0; names && i < n; i++) {
    bool ok = names->v[i].n >= 1 && names->v[i].n <= EW_COLUMN_NAME_MAX;
    for (size_t k = 0; ok && k < names->v[i].n; k++) { /* the sentence escapes what is not */
      unsigned char ch = (unsigned char)names->v[i].p[k];
      ok = (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '_';
    }
    if (!ok) {
      char esc[96];
      return snprintf(msg, cap, "column name '%s' must be 1 to %d bytes of [a-z0-9_]",
                      ewp_escape(esc, 64, names->v[i].p, names->v[i].n), EW_COLUMN_NAME_MAX), -1;
    }
    memcpy(buf[i], names->v[i].p, names->v[i].n);
    buf[i][names->v[i].n] = 0;
    v[i] = buf[i];
  }
  return ew_config_columns(cfg, v, n, msg, cap) ? -1 : 0;
}
