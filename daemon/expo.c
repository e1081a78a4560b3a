/* expo.c — GET /metrics: the Prometheus text exposition format 0.0.4 (proto/PROTOCOL.md, HTTP).
 *
 * Generated, never hand-listed: one family per row of the self-stat table (counters end in
 * `_total`; a stat kept in milliseconds is exposed in seconds, `_ms` → `_seconds`), errors by wire code, and per stream its latest evaluated values, steps, update time,
 * evaluation lag and coalescing, rows, and its alert rules' states. Label values are escaped as
 * the format requires (backslash, double quote, newline). Series count: 3 + |self-stats| +
 * |error codes| + per stream 5 + 2 × (scalar metrics it evaluates) + (alert rules); no series
 * per head, per vector entry or per eigenvalue. */
#include "ewd.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
  char *p;
  size_t len, cap;
  bool oom;
} buf_t;

static void put(buf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(buf_t *b, const char *fmt, ...) {
  if (b->oom)
    return;
  for (;;) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(b->p ? b->p + b->len : NULL, b->p ? b->cap - b->len : 0, fmt, ap);
    va_end(ap);
    if (n < 0) {
      b->oom = true;
      return;
    }
    if (b->p && (size_t)n < b->cap - b->len) {
      b->len += (size_t)n;
      return;
    }
    size_t nc = b->cap ? 2 * b->cap : 65536;
    while (nc < b->len + (size_t)n + 1)
      nc *= 2;
    char *np = realloc(b->p, nc);
    if (!np) {
      b->oom = true;
      return;
    }
    b->p = np, b->cap = nc;
  }
}

/* A label value: \ → \\, " → \", newline → \n. */
static void label(buf_t *b, const char *s) {
  for (; *s && !b->oom; s++) {
    if (*s == '\\')
      put(b, "\\\\");
    else if (*s == '"')
      put(b, "\\\"");
    else if (*s == '\n')
      put(b, "\\n");
    else
      put(b, "%c", *s);
  }
}

/* A sample value: Prometheus spells the non-finite ones NaN, +Inf, -Inf. */
static void value(buf_t *b, double v) {
  if (isnan(v))
    put(b, " NaN\n");
  else if (isinf(v))
    put(b, v > 0 ? " +Inf\n" : " -Inf\n");
  else
    put(b, " %.17g\n", v);
}

static void family(buf_t *b, const char *name, const char *type, const char *help) {
  put(b, "# HELP eigenwatch_%s %s\n# TYPE eigenwatch_%s %s\n", name, help, name, type);
}

static void stream_labels(buf_t *b, const char *name, const ewd_stream_t *st) {
  put(b, "eigenwatch_%s{run=\"", name);
  label(b, st->run);
  put(b, "\",stream=\"");
  label(b, st->name);
  put(b, "\"");
}

char *ewd_expo_metrics(ewd_server_t *srv, size_t *len) {
  buf_t b = {0};
  ewd_stats_refresh(srv);
  family(&b, "build_info", "gauge", "the daemon's version and protocol (always 1)");
  put(&b, "eigenwatch_build_info{version=\"%s\",protocol=\"%d\"} 1\n", EW_VERSION_STRING,
      EW_PROTOCOL_VERSION);
  family(&b, "uptime_seconds", "gauge", "seconds since the daemon started");
  put(&b, "eigenwatch_uptime_seconds");
  value(&b, ewd_now() - srv->started);
  for (int i = 0; i < EWD_STAT_COUNT; i++) {
    const ewd_stat_info_t *s = &ewd_stat_table[i];
    char name[96];
    size_t n = strlen(s->name);
    bool total = n > 6 && !strcmp(s->name + n - 6, "_total");
    bool ms = n > 3 && !strcmp(s->name + n - 3, "_ms"); /* base units: seconds */
    if (ms)
      snprintf(name, sizeof name, "%.*s_seconds", (int)(n - 3), s->name);
    else
      snprintf(name, sizeof name, "%s%s", s->name, s->counter && !total ? "_total" : "");
    family(&b, name, s->counter ? "counter" : "gauge", s->help);
    put(&b, "eigenwatch_%s", name);
    value(&b, ms ? (double)srv->stat[i] / 1e3 : (double)srv->stat[i]);
  }
  family(&b, "errors_total", "counter", "error replies and refused notifications, by wire code");
  for (int code = EW__ERR_BASE + 1; code < EW__ERR_END; code++) {
    const char *nm = ew_err_name(code);
    bool seen = false; /* two codes may share a wire name (INTERNAL): one series, summed */
    for (int c2 = EW__ERR_BASE + 1; c2 < code && !seen; c2++)
      seen = !strcmp(ew_err_name(c2), nm);
    if (seen)
      continue;
    uint64_t n = 0;
    for (int c2 = code; c2 < EW__ERR_END; c2++)
      if (!strcmp(ew_err_name(c2), nm))
        n += srv->errors[c2 - EW__ERR_BASE];
    put(&b, "eigenwatch_errors_total{code=\"%s\"} %llu\n", nm, (unsigned long long)n);
  }
  /* per stream */
  static const struct {
    const char *name, *type, *help;
  } fam[] = {
      {"value", "gauge", "the latest evaluated value of a scheduled scalar metric"},
      {"step", "gauge", "the step that value was evaluated at (a step-less stream: its rows)"},
      {"last_update_timestamp_seconds", "gauge", "Unix time of the stream's latest evaluation"},
      {"last_ingest_timestamp_seconds", "gauge", "Unix time of the stream's last accepted batch"},
      {"stream_rows", "gauge", "rows the stream holds (all rows since it began or was reset)"},
      {"stream_eval_lag_seconds", "gauge", "step completion to value, of the latest evaluation"},
      {"stream_eval_coalesced_total", "counter", "due evaluations coalesced away (evaluation behind)"},
      {"alert_firing", "gauge", "1 while an alert rule fires, else 0"},
      {"sender_dropped_rows_total", "counter",
       "rows the stream's producers discarded before sending (as they report; by producer sum)"},
      {"sender_dropped_batches_total", "counter",
       "batches the stream's producers discarded before sending (as they report)"},
  };
  ewd_latest_t lv[EWP_EVAL_MAX];
  for (size_t f = 0; f < sizeof fam / sizeof fam[0]; f++) {
    family(&b, fam[f].name, fam[f].type, fam[f].help);
    for (size_t i = 0; i < srv->reg.n && !b.oom; i++) {
      const ewd_stream_t *st = srv->reg.items[i];
      if (st->dropped)
        continue;
      double t, lag;
      uint64_t coalesced;
      size_t n = ewd_eval_latest(st, lv, EWP_EVAL_MAX, &t, &lag, &coalesced);
      if (f <= 1) {
        for (size_t k = 0; k < n; k++) {
          stream_labels(&b, fam[f].name, st);
          put(&b, ",metric=\"%s\"}", lv[k].metric);
          value(&b, f == 0 ? lv[k].value : (double)lv[k].step);
        }
      } else if (f == 7) {
        for (size_t k = 0; k < ewd_alerts_count(st); k++) {
          const char *rule, *metric, *when;
          bool firing;
          ewd_alert_state(st, k, &rule, &metric, &when, &firing);
          stream_labels(&b, fam[f].name, st);
          put(&b, ",rule=\"");
          label(&b, rule);
          put(&b, "\",metric=\"%s\",when=\"%s\"} %d\n", metric, when, firing ? 1 : 0);
        }
      } else if (f >= 8) {
        if (st->nproducers == 0)
          continue; /* nobody sends with a producer id: nothing is reported */
        uint64_t sum = 0;
        for (size_t k = 0; k < st->nproducers; k++)
          sum += f == 8 ? st->producers[k].dropped_rows : st->producers[k].dropped_batches;
        stream_labels(&b, fam[f].name, st);
        put(&b, "} %llu\n", (unsigned long long)sum);
      } else {
        double v = f == 2 ? t : f == 3 ? st->last_ingest : f == 4 ? (double)st->count
                 : f == 5 ? lag : (double)coalesced;
        if ((f == 2 || f == 5) && t == 0)
          continue; /* not evaluated yet */
        if (f == 3 && st->last_ingest == 0)
          continue;
        stream_labels(&b, fam[f].name, st);
        put(&b, "}");
        value(&b, v);
      }
    }
  }
  if (b.oom) {
    free(b.p);
    return NULL;
  }
  *len = b.len;
  return b.p;
}
