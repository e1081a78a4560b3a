/* expo.c — GET /metrics: the Prometheus text exposition format 0.0.4 (proto/PROTOCOL.md, HTTP).
 *
 * Generated, never hand-listed: one family per row of the self-stat table (counters end in
 * `_total`; a stat kept in milliseconds is exposed in seconds, `_ms` → `_seconds`), errors by
 * wire code, and per stream one family per row of EWD_STREAM_FAMILY_MAP below (name, type, help,
 * and the reader of a stream's samples): its latest evaluated values, steps, update time,
 * evaluation lag and coalescing, rows, its alert rules' states and its producers' drops. Label
 * values are escaped as the format requires (backslash, double quote, newline). Series count:
 * 3 + |self-stats| + |error codes| + per stream 5 + 2 × (scalar metrics it evaluates) + (alert
 * rules) (+ 2 with producers); no series per head, per vector entry or per eigenvalue. */
#include "cmd/cmd.h"

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

/* ---- per-stream families ----
 * One row per family: XX(name, type, help, reader). A reader gives a stream's samples of the family
 * one at a time (sample i; false when there is none), each with up to two labels after run and
 * stream and its value; the writer below prints them. A family is one row plus its reader. */
#define EWD_STREAM_FAMILY_MAP(XX)                                                                 \
  XX(value, gauge, "the latest evaluated value of a scheduled scalar metric", r_value)            \
  XX(step, gauge, "the step that value was evaluated at (a step-less stream: its rows)", r_step)  \
  XX(last_update_timestamp_seconds, gauge, "Unix time of the stream's latest evaluation",        \
     r_last_update)                                                                               \
  XX(last_ingest_timestamp_seconds, gauge, "Unix time of the stream's last accepted batch",      \
     r_last_ingest)                                                                               \
  XX(stream_rows, gauge, "rows the stream holds (all rows since it began or was reset)", r_rows) \
  XX(stream_eval_lag_seconds, gauge, "step completion to value, of the latest evaluation",       \
     r_eval_lag)                                                                                  \
  XX(stream_eval_coalesced_total, counter,                                                        \
     "due evaluations coalesced away (evaluation behind)", r_coalesced)                          \
  XX(alert_firing, gauge, "1 while an alert rule fires, else 0", r_alert)                         \
  XX(sender_dropped_rows_total, counter,                                                          \
     "rows the stream's producers discarded before sending (as they report; by producer sum)",   \
     r_dropped_rows)                                                                              \
  XX(sender_dropped_batches_total, counter,                                                       \
     "batches the stream's producers discarded before sending (as they report)", r_dropped_batches) \
  XX(stream_ended, gauge, "1 when the stream's run said it is over (flush end), else 0: a stall " \
     "rule can tell a finished run from a stalled one", r_ended)                                  \
  XX(stream_refused_total, counter, "batches refused for the stream, by wire code (errors_total " \
     "counts them too, without the stream)", r_refused)

/* What the readers see of one stream (its latest evaluation read once). */
typedef struct {
  const ewd_stream_t *st;
  ewd_latest_t lv[EWP_EVAL_MAX];
  size_t n;         /* latest values in lv */
  double t, lag;    /* newest point's time (0: none yet) and lag */
  uint64_t coalesced;
} fctx_t;

typedef struct {
  const char *label[3], *lvalue[3]; /* extra labels (NULL-ended), escaped when written */
  double v;                         /* the value, or */
  bool is_u64;                      /* u, a count written as an integer */
  uint64_t u;
} sample_t;

typedef bool (*reader_t)(const fctx_t *cx, size_t i, sample_t *s);

static bool one(size_t i, bool present, double v, sample_t *s) {
  if (i > 0 || !present)
    return false;
  s->v = v;
  return true;
}

static bool r_value(const fctx_t *cx, size_t i, sample_t *s) {
  if (i >= cx->n)
    return false;
  s->label[0] = "metric", s->lvalue[0] = cx->lv[i].metric;
  s->v = cx->lv[i].value;
  return true;
}

static bool r_step(const fctx_t *cx, size_t i, sample_t *s) {
  if (!r_value(cx, i, s))
    return false;
  s->v = (double)cx->lv[i].step;
  return true;
}

static bool r_last_update(const fctx_t *cx, size_t i, sample_t *s) {
  return one(i, cx->t != 0, cx->t, s); /* not evaluated yet: no sample */
}

static bool r_last_ingest(const fctx_t *cx, size_t i, sample_t *s) {
  return one(i, cx->st->last_ingest != 0, cx->st->last_ingest, s);
}

static bool r_rows(const fctx_t *cx, size_t i, sample_t *s) {
  return one(i, true, (double)cx->st->count, s);
}

static bool r_eval_lag(const fctx_t *cx, size_t i, sample_t *s) {
  return one(i, cx->t != 0, cx->lag, s);
}

static bool r_coalesced(const fctx_t *cx, size_t i, sample_t *s) {
  return one(i, true, (double)cx->coalesced, s);
}

static bool r_alert(const fctx_t *cx, size_t i, sample_t *s) {
  if (i >= ewd_alerts_count(cx->st))
    return false;
  const char *rule, *metric, *when;
  bool firing;
  ewd_alert_state(cx->st, i, &rule, &metric, &when, &firing);
  s->label[0] = "rule", s->lvalue[0] = rule;
  s->label[1] = "metric", s->lvalue[1] = metric;
  s->label[2] = "when", s->lvalue[2] = when;
  s->v = firing ? 1 : 0;
  return true;
}

/* The producers' reported drops, summed; nothing when nobody sends with a producer id. */
static bool dropped(const fctx_t *cx, size_t i, sample_t *s, bool rows) {
  const ewd_stream_t *st = cx->st;
  if (i > 0 || st->nproducers == 0)
    return false;
  s->is_u64 = true;
  for (size_t k = 0; k < st->nproducers; k++)
    s->u += rows ? st->producers[k].dropped_rows : st->producers[k].dropped_batches;
  return true;
}

static bool r_dropped_rows(const fctx_t *cx, size_t i, sample_t *s) {
  return dropped(cx, i, s, true);
}

static bool r_dropped_batches(const fctx_t *cx, size_t i, sample_t *s) {
  return dropped(cx, i, s, false);
}

static bool r_ended(const fctx_t *cx, size_t i, sample_t *s) {
  return one(i, true, cx->st->ended ? 1 : 0, s);
}

/* Sample i: the i-th code with a refused batch (codes with none: no sample). */
static bool r_refused(const fctx_t *cx, size_t i, sample_t *s) {
  for (int c = 1; c < EW__ERR_END - EW__ERR_BASE; c++) {
    if (!cx->st->refused[c] || i-- > 0)
      continue;
    s->label[0] = "code", s->lvalue[0] = ew_err_name(EW__ERR_BASE + c);
    s->is_u64 = true;
    s->u = cx->st->refused[c];
    return true;
  }
  return false;
}

static const struct {
  const char *name, *type, *help;
  reader_t read;
} stream_families[] = {
#define EWD__XX(nm, ty, hp, rd) {#nm, #ty, hp, rd},
    EWD_STREAM_FAMILY_MAP(EWD__XX)
#undef EWD__XX
};

/* Every stream's samples of every family, family by family (the format wants a family's samples
 * together). */
static void stream_families_put(buf_t *b, ewd_server_t *srv) {
  fctx_t *cx = malloc(sizeof *cx);
  if (!cx) {
    b->oom = true;
    return;
  }
  for (size_t f = 0; f < sizeof stream_families / sizeof stream_families[0]; f++) {
    family(b, stream_families[f].name, stream_families[f].type, stream_families[f].help);
    for (size_t i = 0; i < srv->reg.n && !b->oom; i++) {
      const ewd_stream_t *st = srv->reg.items[i];
      if (st->dropped)
        continue;
      cx->st = st;
      cx->n = ewd_eval_latest(st, cx->lv, EWP_EVAL_MAX, &cx->t, &cx->lag, &cx->coalesced);
      for (size_t k = 0;; k++) {
        sample_t sm = {{0}};
        if (!stream_families[f].read(cx, k, &sm))
          break;
        stream_labels(b, stream_families[f].name, st);
        for (int l = 0; l < 3 && sm.label[l]; l++) {
          put(b, ",%s=\"", sm.label[l]);
          label(b, sm.lvalue[l]);
          put(b, "\"");
        }
        put(b, "}");
        if (sm.is_u64)
          put(b, " %llu\n", (unsigned long long)sm.u);
        else
          value(b, sm.v);
      }
    }
  }
  free(cx);
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
  stream_families_put(&b, srv);
  if (b.oom) {
    free(b.p);
    return NULL;
  }
  *len = b.len;
  return b.p;
}
