/* history.c — the `history` method: the request is checked against the registry here (the
 * streams must exist; metric names must be in the table), read on the history's I/O thread
 * behind every point queued before it (history_read.c), and answered here:
 * {"series": [{run, stream, metric, step, time, value, partial, rows, ranks, lag_s, skipped}]}
 * (each a list, one entry per point; `metric` is the series name), and, for a series of an
 * estimated metric, "error" and "bracket" (one entry per point: the error bar, [lo, hi], or nil
 * where that point has none). */
#include "cmd/cmd.h"
#include "store/history.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Per series, NVAL arrays of ewp values: step, partial, rows, ranks, skipped, the lists, the
 * error bars and the brackets. */
#define NVAL 8
#define NKV 13

static void values_of(const ewd_hseries_t *s, ewp_value_t *at) {
  size_t n = s->n;
  for (size_t i = 0; i < n; i++) {
    at[i] = ewp_vu64(s->step[i]);
    at[n + i] = ewp_vbool(s->partial[i]);
    at[2 * n + i] = ewp_vu64(s->rows[i]);
    at[3 * n + i] = ewp_vu64(s->ranks[i]);
    at[4 * n + i] = ewp_vu64(s->skipped[i]);
    if (s->vec)
      at[5 * n + i] = ewp_vf64s(s->lists[i], s->lens[i]);
    if (s->est) {
      at[6 * n + i] = s->est[i] & 1 ? ewp_vf64(s->err[i]) : ewp_vnil();
      at[7 * n + i] = s->est[i] & 2 ? ewp_vf64s(s->br[i], 2) : ewp_vnil();
    }
  }
}

/* A read's answer (rd->answer), on the loop once the I/O thread has read it: replies (the series
 * or the read's refusal), releases the request's hold on its connection and frees rd. */
static void hread_answer(ewd_hread_t *rd) {
  ewd_conn_t *conn = rd->conn;
  if (rd->rc) {
    ewd_refuse(rd->srv, conn, rd->msgid, rd->notify, rd->rc, "%s", rd->message);
  } else {
    size_t total = 0;
    for (size_t i = 0; i < rd->nseries; i++)
      total += rd->series[i].n;
    ewp_kv_t *kv = malloc((rd->nseries ? rd->nseries : 1) * NKV * sizeof *kv);
    ewp_value_t *items = malloc((rd->nseries ? rd->nseries : 1) * sizeof *items);
    ewp_value_t *vals = malloc((total ? total : 1) * NVAL * sizeof *vals);
    if (!kv || !items || !vals) {
      ewd_refuse(rd->srv, conn, rd->msgid, rd->notify, EW_ENOMEM,
                 "out of memory packing %zu history points", total);
    } else {
      ewp_value_t *at = vals;
      for (size_t i = 0; i < rd->nseries; i++) {
        const ewd_hseries_t *s = &rd->series[i];
        size_t n = s->n;
        values_of(s, at);
        ewp_kv_t *k = kv + NKV * i;
        k[0] = (ewp_kv_t){"run", ewp_vstr(rd->run)};
        k[1] = (ewp_kv_t){"stream", ewp_vstr(s->stream)};
        k[2] = (ewp_kv_t){"metric", ewp_vstr(s->metric)};
        k[3] = (ewp_kv_t){"step", ewp_varray(at, n)};
        k[4] = (ewp_kv_t){"time", ewp_vf64s(s->time, n)};
        k[5] = (ewp_kv_t){"value", s->vec ? ewp_varray(at + 5 * n, n) : ewp_vf64s(s->value, n)};
        k[6] = (ewp_kv_t){"partial", ewp_varray(at + n, n)};
        k[7] = (ewp_kv_t){"rows", ewp_varray(at + 2 * n, n)};
        k[8] = (ewp_kv_t){"ranks", ewp_varray(at + 3 * n, n)};
        k[9] = (ewp_kv_t){"lag_s", ewp_vf64s(s->lag, n)};
        k[10] = (ewp_kv_t){"skipped", ewp_varray(at + 4 * n, n)};
        /* only for a series with estimates: other answers are as before */
        k[11] = (ewp_kv_t){"error", s->has_err ? ewp_varray(at + 6 * n, n) : (ewp_value_t){0}};
        k[12] = (ewp_kv_t){"bracket", s->has_br ? ewp_varray(at + 7 * n, n) : (ewp_value_t){0}};
        items[i] = ewp_vmap(k, NKV);
        at += NVAL * n;
      }
      ewp_kv_t top[] = {{"series", ewp_varray(items, rd->nseries)}};
      ewp_value_t v = ewp_vmap(top, 1);
      ewd_answer(rd->srv, conn, rd->msgid, rd->notify, &v);
    }
    free(kv);
    free(items);
    free(vals);
  }
  rd->srv->conn_hooks->done(conn, false);
  ewd_hread_free(rd);
}

/* True when nm is a metric of the table or a series of a visible stream of `run` (history keeps
 * series by name: an eval entry's `as`, default its metric's). */
static bool series_known(ewd_server_t *srv, ewp_str_t run, const ewp_str_t *nm) {
  char name[EWP_SERIES_MAX + 1];
  if (!ewp_series_valid(nm->p, nm->n))
    return false;
  memcpy(name, nm->p, nm->n);
  name[nm->n] = 0;
  if (ew_metric_find(name))
    return true;
  for (size_t i = 0; i < srv->reg.n; i++) {
    const ewd_stream_t *st = srv->reg.items[i];
    if (!st->provisional && strlen(st->run) == run.n && memcmp(st->run, run.p, run.n) == 0 &&
        ewd_eval_has(st, name))
      return true;
  }
  return false;
}

void ewd_cmd_history(ewd_call_t *call) {
  const ewp_history_req_t *r = &call->req->u.history;
  ewd_server_t *srv = call->srv;
  ewp_str_t run = EWP_HAS(r, EWP_RUN_BIT) ? r->run
                                          : (ewp_str_t){EWP_DEFAULT_RUN, strlen(EWP_DEFAULT_RUN)};
  char esc[96];
  for (size_t i = 0; EWP_HAS(r, EWP_HISTORY_metrics) && i < r->metrics.n; i++)
    if (!series_known(srv, run, &r->metrics.v[i])) {
      ewd_fail(call, EW_EUNKMETRIC, "no metric named '%s', nor a series of the run's streams "
               "(the 'metrics' method lists the metrics; info's eval lists a stream's series)",
               ewp_escape(esc, 64, r->metrics.v[i].p, r->metrics.v[i].n));
      return;
    }
  ewd_hread_t *rd = calloc(1, sizeof *rd);
  if (!rd) {
    ewd_fail(call, EW_ENOMEM, "out of memory");
    return;
  }
  memcpy(rd->run, run.p, run.n);
  /* the streams: named ones must exist; neither field: every visible stream of the run */
  size_t want = EWP_HAS(r, EWP_HISTORY_stream) ? 1
                : EWP_HAS(r, EWP_HISTORY_streams) ? r->streams.n : srv->reg.n;
  rd->streams = calloc(want ? want : 1, sizeof *rd->streams);
  rd->metrics = calloc(EWP_HAS(r, EWP_HISTORY_metrics) ? r->metrics.n : 1, sizeof *rd->metrics);
  if (!rd->streams || !rd->metrics) {
    ewd_hread_free(rd);
    ewd_fail(call, EW_ENOMEM, "out of memory");
    return;
  }
  if (EWP_HAS(r, EWP_HISTORY_stream) || EWP_HAS(r, EWP_HISTORY_streams)) {
    for (size_t i = 0; i < want; i++) {
      ewp_str_t nm = EWP_HAS(r, EWP_HISTORY_stream) ? r->stream : r->streams.v[i];
      if (!ewd_cmd_stream(call, ewd_key_of(nm, r->run, EWP_HAS(r, EWP_RUN_BIT)))) {
        ewd_hread_free(rd);
        return;
      }
      memcpy(rd->streams[rd->nstreams++], nm.p, nm.n);
    }
  } else {
    for (size_t i = 0; i < srv->reg.n; i++) {
      ewd_stream_t *st = srv->reg.items[i];
      if (!st->provisional && strcmp(st->run, rd->run) == 0)
        snprintf(rd->streams[rd->nstreams++], sizeof rd->streams[0], "%s", st->name);
    }
  }
  for (size_t i = 0; EWP_HAS(r, EWP_HISTORY_metrics) && i < r->metrics.n; i++)
    memcpy(rd->metrics[rd->nmetrics++], r->metrics.v[i].p, r->metrics.v[i].n);
  rd->from = EWP_HAS(r, EWP_HISTORY_from_step) ? r->from_step : 0;
  rd->to = EWP_HAS(r, EWP_HISTORY_to_step) ? r->to_step : (uint64_t)INT64_MAX;
  if (rd->from > (uint64_t)INT64_MAX)
    rd->from = (uint64_t)INT64_MAX;
  if (rd->to > (uint64_t)INT64_MAX)
    rd->to = (uint64_t)INT64_MAX;
  rd->max_points = EWP_HAS(r, EWP_HISTORY_max_points) ? (size_t)r->max_points : 2000;
  rd->agg = EWP_HAS(r, EWP_HISTORY_agg) ? (ewd_agg_t)r->agg : EWD_AGG_LAST;
  rd->srv = srv;
  rd->answer = hread_answer;
  rd->json = call->conn && srv->conn_hooks->json(call->conn);
  rd->max_bytes = (size_t)srv->cfg.max_answer_bytes;
  rd->budget = (size_t)srv->cfg.answer_budget;
  rd->conn = call->conn;
  rd->msgid = call->req->msgid;
  rd->notify = call->req->kind == EWP_KIND_NOTIFY;
  if (!(rd->hold = calloc(1, sizeof *rd->hold))) {
    ewd_hread_free(rd);
    ewd_fail(call, EW_ENOMEM, "out of memory");
    return;
  }
  if (!srv->history) {
    ewd_hread_free(rd);
    ewd_fail(call, EW_EIO, "this server keeps no history");
    return;
  }
  srv->conn_hooks->hold(call->conn, rd->hold, false);
  if (ewd_history_read(srv, rd) != 0) {
    ewd_refuse(srv, call->conn, rd->msgid, rd->notify, EW_ENOMEM, "out of memory");
    srv->conn_hooks->done(call->conn, false);
    ewd_hread_free(rd);
  }
}
