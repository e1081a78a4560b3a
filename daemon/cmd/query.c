/* query.c — metrics of a stream. Names and parameters are resolved against the library's metric
 * table here (a parameter no requested metric takes is refused); the solve runs on a math thread.
 * A query with max_lag is answered from the loop-side cache when every metric is there and recent
 * enough, so dashboards never wait behind a busy stream. */
#include "cmd/cmd.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The wire's `source` and `method` are ENUM fields whose index is the library's value: the wire
 * lists the library's names in its order (test_wire checks the names; these the counts). */
_Static_assert(sizeof((const char *[]){EWP_ENUM_source}) / sizeof(const char *) == EW_SOURCE_COUNT,
               "one wire source per ew_source_t");
_Static_assert(sizeof((const char *[]){EWP_ENUM_method}) / sizeof(const char *) == EW_METHOD_COUNT,
               "one wire method per ew_method_t");


static ewp_value_t value_of(const ew_result_t *res) {
  return res->kind == EW_VALUE_SCALAR ? ewp_vf64(res->scalar) : ewp_vf64s(res->list, res->len);
}

/* Packs the reply; kv names like "topk_error" are built in `names` (6 per metric: the value,
 * _error, _vectors, _bracket, _rows, _labels). */
static void reply_query(ewd_server_t *srv, ewd_conn_t *conn, uint32_t msgid, bool notify,
                        ewd_stream_t *st, const ewd_qmetric_t *ms, size_t nm,
                        const ew_result_t *const *res, double elapsed_ms, bool cached) {
  ewp_kv_t *mkv = malloc(6 * nm * sizeof *mkv);
  char(*names)[5][80] = malloc(nm * sizeof *names);
  size_t ngroups = 0;
  for (size_t i = 0; i < nm; i++)
    ngroups += res[i]->groups ? res[i]->len : 0;
  ewp_value_t *gv = malloc((ngroups ? ngroups : 1) * sizeof *gv);
  double(*br)[2] = malloc(nm * sizeof *br);
  if (!mkv || !names || !br || !gv) {
    free(mkv);
    free(names);
    free(br);
    free(gv);
    ewd_refuse(srv, conn, msgid, notify, EW_ENOMEM, "out of memory packing the answer");
    return;
  }
  uint64_t as_of = UINT64_MAX;
  size_t at = 0; /* the next free slot of gv */
  for (size_t i = 0; i < nm; i++) {
    if (res[i]->as_of < as_of)
      as_of = res[i]->as_of;
    snprintf(names[i][0], sizeof names[i][0], "%s_error", ms[i].name);
    snprintf(names[i][1], sizeof names[i][1], "%s_vectors", ms[i].name);
    snprintf(names[i][2], sizeof names[i][2], "%s_bracket", ms[i].name);
    snprintf(names[i][3], sizeof names[i][3], "%s_rows", ms[i].name);
    snprintf(names[i][4], sizeof names[i][4], "%s_labels", ms[i].name);
    br[i][0] = res[i]->lo;
    br[i][1] = res[i]->hi;
    mkv[6 * i] = (ewp_kv_t){ms[i].name, value_of(res[i])};
    mkv[6 * i + 1] = (ewp_kv_t){names[i][0], res[i]->has_error ? ewp_vf64(res[i]->error)
                                                               : (ewp_value_t){0}};
    mkv[6 * i + 2] = (ewp_kv_t){names[i][1], res[i]->vectors
                                                 ? ewp_vf64rows(res[i]->vectors, res[i]->len,
                                                                res[i]->dim)
                                                 : (ewp_value_t){0}};
    mkv[6 * i + 3] = (ewp_kv_t){names[i][2], res[i]->has_bracket ? ewp_vf64s(br[i], 2)
                                                                 : (ewp_value_t){0}};
    mkv[6 * i + 4] = (ewp_kv_t){names[i][3], res[i]->sample_rows ? ewp_vu64(res[i]->sample_rows)
                                                                 : (ewp_value_t){0}};
    ewp_value_t *g = gv + at;
    for (size_t k = 0; res[i]->groups && k < res[i]->len; k++)
      gv[at++] = ewp_vu64(res[i]->groups[k]);
    mkv[6 * i + 5] = (ewp_kv_t){names[i][4], res[i]->groups ? ewp_varray(g, res[i]->len)
                                                            : (ewp_value_t){0}};
  }
  ewp_kv_t kv[] = {{"stream", ewp_vstr(st->name)},     {"count", ewp_vu64(st->count)},
                   {"dim", ewp_vu64(st->cfg.dim)},     {"as_of", ewp_vu64(as_of)},
                   {"elapsed_ms", ewp_vf64(elapsed_ms)}, {"cached", ewp_vbool(cached)},
                   {"metrics", ewp_vmap(mkv, 6 * nm)}};
  ewp_value_t v = ewp_vmap(kv, 7);
  ewd_answer(srv, conn, msgid, notify, &v);
  free(mkv);
  free(names);
  free(br);
  free(gv);
}

void ewd_solve_observed(ewd_server_t *srv, size_t d, double seconds) {
  if (d < 1024) /* small solves are dominated by overheads, not d³ */
    return;
  double r = seconds / ((double)d * (double)d * (double)d);
  srv->solve_rate = srv->solve_rate * 0.99 > r ? srv->solve_rate * 0.99 : r;
}

double ewd_solve_estimate(const ewd_server_t *srv, size_t d) {
  double rate = srv->solve_rate > EWD_SOLVE_RATE_PRIOR ? srv->solve_rate : EWD_SOLVE_RATE_PRIOR;
  return rate * (double)d * (double)d * (double)d;
}

static void query_done(ewd_job_t *j) {
  ewd_stream_t *st = j->st;
  ewd_job_mirrors(j);
  if (!j->skipped && j->rc == 0)
    ewd_solve_observed(j->srv, st->cfg.dim, j->elapsed_ms / 1e3);
  if (j->skipped) {
    /* nobody is there to answer */
  } else if (j->rc) {
    ewd_job_fail(j, j->rc, j->message);
  } else {
    const ew_result_t **res = malloc(j->nmetrics * sizeof *res);
    for (size_t i = 0; res && i < j->nmetrics; i++) {
      res[i] = &j->results[i];
      if (!j->results[i].vectors) /* the cache holds values only */
        ewd_cache_put(st, j->metrics[i].key, &j->results[i]);
    }
    if (!res)
      ewd_job_fail(j, EW_ENOMEM, "out of memory packing the answer");
    else if (j->conn)
      reply_query(j->srv, j->conn, j->msgid, j->notify, st, j->metrics, j->nmetrics, res,
                  j->elapsed_ms, false);
    free(res);
  }
  ewd_job_finish(j);
}

/* Gives m parameter `pi` with the wire's value wp, checked: 0, or -1 with BAD_PARAM (or
 * NO_MEMORY) answered. */
static int add_param(ewd_call_t *call, ewd_qmetric_t *m, const ew_metric_info_t *info,
                     const ew_param_info_t *pi, const ewp_param_t *wp) {
  char txt[EWP_PARAM_STR_MAX + 1], msg[200];
  ew_param_t p;
  if (ewd_param_resolve(info, pi, wp, &p, txt, msg, sizeof msg)) {
    ewd_fail(call, EW_EBADPARAM, "%.40s: %.150s", info->name, msg);
    return -1;
  }
  if (ewd_qmetric_param(m, &p)) {
    ewd_fail(call, EW_ENOMEM, "out of memory");
    return -1;
  }
  return 0;
}

/* Resolves names and parameters into ms[0, nm): each metric's source (asked for; else the window
 * on a recent stream when the metric takes it; else the metric's own default) and, on a stream
 * with window_steps, the window rows of its last steps. Returns 0, or answers the error and
 * returns -1. */
static int resolve(ewd_call_t *call, const ewp_query_req_t *r, const ewd_stream_t *st,
                   ewd_qmetric_t *ms, int center, ew_source_t source, ew_method_t method) {
  bool used[EWP_PARAMS_MAX] = {false};
  char esc[96];
  for (size_t i = 0; i < r->metrics.n; i++) {
    const ewp_str_t *nm = &r->metrics.v[i];
    const ew_metric_info_t *info = NULL;
    char name[64];
    if (nm->n < sizeof name) {
      memcpy(name, nm->p, nm->n);
      name[nm->n] = 0;
      if (strlen(name) == nm->n)
        info = ew_metric_find(name);
    }
    if (!info) {
      ewd_fail(call, EW_EUNKMETRIC, "no metric named '%s' (the 'metrics' method lists them)",
               ewp_escape(esc, 64, nm->p, nm->n));
      return -1;
    }
    if (!(ms[i].name = strdup(info->name))) {
      ewd_fail(call, EW_ENOMEM, "out of memory");
      return -1;
    }
    for (size_t k = 0; k < r->params.n; k++) {
      const ewp_param_t *p = &r->params.v[k];
      const ew_param_info_t *pi = ew_metric_param(info, p->key, p->key_n);
      if (!pi || ms[i].nparams >= EW_METRIC_MAX_PARAMS)
        continue;
      if (add_param(call, &ms[i], info, pi, p))
        return -1;
      used[k] = true;
    }
    ms[i].source = source != EW_SOURCE_DEFAULT ? source
                   : st->recent && ewd_takes_window(info) ? EW_SOURCE_WINDOW : EW_SOURCE_DEFAULT;
    ms[i].window_rows = ms[i].source != EW_SOURCE_ALL ? ewd_recent_rows(st) : 0;
    ms[i].center = center;
    ms[i].method = method;
    /* a metric the method does not apply to answers the same whatever it says */
    ms[i].key = ewd_cache_key(ms[i].name, center, ms[i].source, ms[i].window_rows,
                              info->method ? method : EW_METHOD_AUTO, ms[i].params,
                              ms[i].nparams);
    if (!ms[i].key) {
      ewd_fail(call, EW_ENOMEM, "out of memory");
      return -1;
    }
  }
  for (size_t k = 0; k < r->params.n; k++)
    if (!used[k]) {
      ewd_fail(call, EW_EBADPARAM, "no requested metric takes parameter '%s'",
               ewp_escape(esc, 64, r->params.v[k].key, r->params.v[k].key_n));
      return -1;
    }
  return 0;
}

void ewd_cmd_query(ewd_call_t *call) {
  const ewp_query_req_t *r = &call->req->u.query;
  ewd_stream_t *st = ewd_cmd_stream(call, EWD_KEY(r));
  if (!st)
    return;
  int center = EWP_HAS(r, EWP_QUERY_center) ? (r->center ? 1 : 0) : -1;
  ew_source_t source = EWP_HAS(r, EWP_QUERY_source) ? (ew_source_t)r->source : EW_SOURCE_DEFAULT;
  bool fresh = EWP_HAS(r, EWP_QUERY_fresh) && r->fresh;
  bool have_lag = EWP_HAS(r, EWP_QUERY_max_lag);
  size_t nm = r->metrics.n;
  ewd_qmetric_t *ms = calloc(nm, sizeof *ms);
  if (!ms) {
    ewd_fail(call, EW_ENOMEM, "out of memory");
    return;
  }
  ew_method_t method = EWP_HAS(r, EWP_QUERY_method) ? (ew_method_t)r->method : EW_METHOD_AUTO;
  if (resolve(call, r, st, ms, center, source, method)) {
    ewd_qmetrics_free(ms, nm);
    return;
  }
  if (!fresh && have_lag) { /* every metric cached and recent enough: answer now */
    const ew_result_t *res[EWP_NAMES_MAX];
    bool all = true;
    for (size_t i = 0; i < nm && all; i++) {
      res[i] = ewd_cache_get(st, ms[i].key);
      all = res[i] && st->count - res[i]->as_of <= r->max_lag;
    }
    if (all) {
      double t0 = ewd_now();
      reply_query(call->srv, call->conn, call->req->msgid, call->req->kind == EWP_KIND_NOTIFY, st,
                  ms, nm, res, 1e3 * (ewd_now() - t0), true);
      ewd_qmetrics_free(ms, nm);
      return;
    }
  }
  ewd_job_t *j = ewd_job_new(call->srv, call, st, EWD_JOB_QUERY, query_done);
  if (!j) {
    ewd_qmetrics_free(ms, nm);
    ewd_fail(call, EW_ENOMEM, "out of memory");
    return;
  }
  j->metrics = ms;
  j->nmetrics = nm;
  j->center = center;
  ewd_job_submit(call->srv, j, false);
}
