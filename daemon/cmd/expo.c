/* expo.c — GET /metrics: the Prometheus text exposition format 0.0.4 (proto/PROTOCOL.md, HTTP).
 *
 * Generated, never hand-listed: one family per row of the self-stat table (counters end in
 * `_total`; a stat kept in milliseconds is exposed in seconds, `_ms` → `_seconds`), errors by
 * wire code, and per stream one family per row of EWD_STREAM_FAMILY_MAP below (name, type, help,
 * the reader of a stream's samples, and when its lines are made): its latest evaluated values,
 * steps, update time, evaluation lag and coalescing, rows, its alert rules' states, its
 * producers' drops, whether it ended and its refused batches. Label values are escaped as the
 * format requires (backslash, double quote, newline). Series count (proto/PROTOCOL.md): 2 +
 * |self-stats| + |error codes| + per stream at most 8 + 2 × (scalar series it evaluates) + (alert
 * rules) + (codes its batches were refused with); no series per head, per vector entry or per
 * eigenvalue.
 *
 * A scrape formats no stream's lines but those that changed. Each stream keeps its lines (the
 * block `struct ewd_expo`, st->expo, freed with the stream): its escaped labels
 * {run="…",stream="…" and, for each KEPT family, its sample lines, rendered at a scrape only when
 * st->expo_version moved past the version they were rendered at. ewd_expo_stale bumps it where
 * what they show changes: an evaluation finishing and a due one coalesced (run/eval.c), an eval
 * list set or loaded (eval_list.c, eval_save.c), rules set or loaded and a rule changing state
 * (alerts.c, alerts_save.c), `ended` set or cleared (flush, an accepted batch, a restore), and a
 * stream's training fields replaced (create's rules, merge, restore: streams.c, state.c,
 * train.c). The scrape then writes, per family, its header once and each stream's chunk of it
 * (a memcpy). The LIVE families (last ingest time, rows, producers' drops, refused batches)
 * change with every batch or refusal: they are read at the scrape, one short line each from the
 * kept labels and one number (bumping at every ingest would rebuild the block at every scrape of
 * a stream that is being fed, and would add bumps to each place a batch is counted, for the same
 * bytes); the block keeps last_ingest's text beside its value, since its %.17g is most of what
 * those lines cost, and integers are written without printf. The bytes are those a walk of every
 * stream per family would write; streams come in registry order, as before.
 *
 * Memory: per stream a block of 112 + |labels| + Σ its kept lines bytes, each line about
 * 40 + |labels| + its own labels and value (≈ 1 KB for a stream with 2 metrics and a rule and
 * short names; at most 100 lines: EWP_EVAL_MAX values and steps, EWP_RULES_MAX rules and 4 single
 * ones, each under 1.2 KB with 200-byte names that all need escaping, so under 120 KB). It is
 * counted in memory_bytes (st->expo_bytes). A stream never scraped has none. */
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

/* Room for n more bytes (and a NUL) in b; false when out of memory. */
static bool reserve(buf_t *b, size_t n) {
  if (b->oom)
    return false;
  if (b->p && b->cap - b->len > n)
    return true;
  size_t nc = b->cap ? 2 * b->cap : 65536;
  while (nc <= b->len + n)
    nc *= 2;
  char *np = realloc(b->p, nc);
  if (!np) {
    b->oom = true;
    return false;
  }
  b->p = np, b->cap = nc;
  return true;
}

static void putn(buf_t *b, const void *p, size_t n) {
  if (reserve(b, n))
    memcpy(b->p + b->len, p, n), b->len += n;
}

/* Appends b's own bytes [at, at + n) (before b->len): the source is read after any realloc. */
static void put_own(buf_t *b, size_t at, size_t n) {
  if (reserve(b, n))
    memcpy(b->p + b->len, b->p + at, n), b->len += n;
}

/* A label value: \ → \\, " → \", newline → \n. */
static void label(buf_t *b, const char *s) {
  for (const char *run = s;; s++) {
    if (*s && *s != '\\' && *s != '"' && *s != '\n')
      continue;
    putn(b, run, (size_t)(s - run));
    if (!*s)
      return;
    putn(b, *s == '\\' ? "\\\\" : *s == '"' ? "\\\"" : "\\n", 2);
    run = s + 1;
  }
}

#define VALUE_TEXT_MAX 32 /* " %.17g\n" of any double: at most 1 + 24 + 1 bytes */

/* " u\n" (neg: " -u\n") into out, without printf; its length. */
static size_t int_text(char out[VALUE_TEXT_MAX], uint64_t u, bool neg) {
  char t[VALUE_TEXT_MAX], *q = t + sizeof t;
  *--q = '\n';
  do
    *--q = (char)('0' + u % 10);
  while (u /= 10);
  if (neg)
    *--q = '-';
  *--q = ' ';
  size_t n = (size_t)(t + sizeof t - q);
  memcpy(out, q, n);
  return n;
}

/* A sample value's text (" v\n") into out; its length. Prometheus spells the non-finite ones NaN,
 * +Inf, -Inf. An integer of magnitude under 2^53 (steps, counts, 0 and 1) is written without
 * printf: %.17g writes such a number's digits alone (it is exact, and under 1e17), -0 aside. */
static size_t value_text(char out[VALUE_TEXT_MAX], double v) {
  if (v > -0x1p53 && v < 0x1p53 && v == (double)(int64_t)v && !(v == 0 && signbit(v)))
    return int_text(out, (uint64_t)(v < 0 ? -v : v), v < 0);
  if (isnan(v))
    return (size_t)snprintf(out, VALUE_TEXT_MAX, " NaN\n");
  if (isinf(v))
    return (size_t)snprintf(out, VALUE_TEXT_MAX, v > 0 ? " +Inf\n" : " -Inf\n");
  return (size_t)snprintf(out, VALUE_TEXT_MAX, " %.17g\n", v);
}

static void value(buf_t *b, double v) {
  char t[VALUE_TEXT_MAX];
  putn(b, t, value_text(t, v));
}

/* A count, written as an integer. */
static void value_u64(buf_t *b, uint64_t u) {
  char t[VALUE_TEXT_MAX];
  putn(b, t, int_text(t, u, false));
}

static void family(buf_t *b, const char *name, const char *type, const char *help) {
  put(b, "# HELP eigenwatch_%s %s\n# TYPE eigenwatch_%s %s\n", name, help, name, type);
}

/* A stream's labels as every one of its lines begins them: {run="…",stream="… (escaped, open). */
static void stream_labels(buf_t *b, const ewd_stream_t *st) {
  putn(b, "{run=\"", 6);
  label(b, st->run);
  putn(b, "\",stream=\"", 10);
  label(b, st->name);
  putn(b, "\"", 1);
}

/* ---- per-stream families ----
 * One row per family: XX(name, type, help, reader, made). A reader gives a stream's samples of
 * the family one at a time (sample i; false when there is none), each with up to three labels
 * after run and stream and its value; the writer below prints them. `made`: KEPT, rendered into
 * the stream's block when what it shows changed (ewd_expo_stale), or LIVE, read at each scrape
 * (values that move with every batch). A family is one row plus its reader. */
#define EWD_STREAM_FAMILY_MAP(XX)                                                                 \
  XX(value, gauge, "the latest evaluated value of a scheduled scalar metric", r_value, KEPT)      \
  XX(step, gauge, "the step that value was evaluated at (a step-less stream: its rows)", r_step,  \
     KEPT)                                                                                        \
  XX(last_update_timestamp_seconds, gauge, "Unix time of the stream's latest evaluation",        \
     r_last_update, KEPT)                                                                         \
  XX(last_ingest_timestamp_seconds, gauge, "Unix time of the stream's last accepted batch",      \
     r_last_ingest, LIVE)                                                                         \
  XX(stream_rows, gauge, "rows the stream holds (all rows since it began or was reset)", r_rows, \
     LIVE)                                                                                        \
  XX(stream_eval_lag_seconds, gauge, "step completion to value, of the latest evaluation",       \
     r_eval_lag, KEPT)                                                                            \
  XX(stream_eval_coalesced_total, counter,                                                        \
     "due evaluations coalesced away (evaluation behind)", r_coalesced, KEPT)                    \
  XX(alert_firing, gauge, "1 while an alert rule fires, else 0", r_alert, KEPT)                   \
  XX(sender_dropped_rows_total, counter,                                                          \
     "rows the stream's producers discarded before sending (as they report; by producer sum)",   \
     r_dropped_rows, LIVE)                                                                        \
  XX(sender_dropped_batches_total, counter,                                                       \
     "batches the stream's producers discarded before sending (as they report)",                 \
     r_dropped_batches, LIVE)                                                                     \
  XX(stream_ended, gauge, "1 when the stream's run said it is over (flush end), else 0: a stall " \
     "rule can tell a finished run from a stalled one", r_ended, KEPT)                            \
  XX(stream_refused_total, counter, "batches refused for the stream, by wire code (errors_total " \
     "counts them too, without the stream)", r_refused, LIVE)

enum { KEPT, LIVE };
#define EWD__ONE(nm, ty, hp, rd, mk) +1
enum { NFAM = 0 EWD_STREAM_FAMILY_MAP(EWD__ONE) };
#undef EWD__ONE

/* What the readers see of one stream (its latest evaluation read once; a LIVE family's reader
 * reads st alone). */
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
  int made;
} stream_families[] = {
#define EWD__XX(nm, ty, hp, rd, mk) {#nm, #ty, hp, rd, mk},
    EWD_STREAM_FAMILY_MAP(EWD__XX)
#undef EWD__XX
};

/* A stream's lines, one block (st->expo; the layout is this file's alone, core frees it). */
struct ewd_expo {
  uint64_t version;      /* st->expo_version it was rendered at */
  uint32_t labels;       /* text[0, labels): the stream's labels, {run="…",stream="… */
  uint32_t at[NFAM + 1]; /* a KEPT family f's lines: text[at[f], at[f + 1]) (LIVE: empty) */
  /* last_ingest's sample value as text, beside the value it was written from (ningest 0: none
   * yet): a LIVE value that only a batch moves, whose %.17g is most of a LIVE line's cost */
  uint32_t ningest;
  double ingest;
  char ingest_text[VALUE_TEXT_MAX];
  char text[];
};

/* The value of e's stream's last_ingest sample, formatted again only when it moved. */
static void ingest_value(buf_t *b, struct ewd_expo *e, double v) {
  if (!e->ningest || memcmp(&e->ingest, &v, sizeof v) != 0) {
    e->ingest = v;
    e->ningest = (uint32_t)value_text(e->ingest_text, v);
  }
  putn(b, e->ingest_text, e->ningest);
}

/* Family f's samples of the stream in cx, each line from the stream's labels lab[0, nlab) (NULL:
 * b's own first nlab bytes, a block being rendered), then its own labels and value; e: the
 * stream's block at a scrape (its LIVE lines), else NULL. */
static void stream_family(buf_t *b, size_t f, const fctx_t *cx, const char *lab, size_t nlab,
                          struct ewd_expo *e) {
  const char *name = stream_families[f].name;
  size_t nn = strlen(name);
  for (size_t k = 0;; k++) {
    sample_t sm = {{0}};
    if (!stream_families[f].read(cx, k, &sm))
      break;
    putn(b, "eigenwatch_", 11);
    putn(b, name, nn);
    if (lab)
      putn(b, lab, nlab);
    else
      put_own(b, 0, nlab);
    for (int l = 0; l < 3 && sm.label[l]; l++) {
      putn(b, ",", 1);
      putn(b, sm.label[l], strlen(sm.label[l]));
      putn(b, "=\"", 2);
      label(b, sm.lvalue[l]);
      putn(b, "\"", 1);
    }
    putn(b, "}", 1);
    if (sm.is_u64)
      value_u64(b, sm.u);
    else if (e && stream_families[f].read == r_last_ingest)
      ingest_value(b, e, sm.v);
    else
      value(b, sm.v);
  }
}

/* Renders st's block again into tmp (scratch) then st->expo. Returns false when out of memory
 * (st keeps its old block). */
static bool render(ewd_stream_t *st, buf_t *tmp, fctx_t *cx) {
  tmp->len = 0;
  stream_labels(tmp, st);
  size_t nlab = tmp->len;
  uint32_t at[NFAM + 1];
  cx->st = st;
  cx->n = ewd_eval_latest(st, cx->lv, EWP_EVAL_MAX, &cx->t, &cx->lag, &cx->coalesced);
  for (size_t f = 0; f < NFAM; f++) {
    at[f] = (uint32_t)tmp->len;
    if (stream_families[f].made == KEPT)
      stream_family(tmp, f, cx, NULL, nlab, NULL);
  }
  at[NFAM] = (uint32_t)tmp->len;
  struct ewd_expo *e = tmp->oom ? NULL : malloc(sizeof *e + tmp->len);
  if (!e)
    return false;
  e->version = st->expo_version;
  e->labels = (uint32_t)nlab;
  e->ningest = 0;
  memcpy(e->at, at, sizeof at);
  memcpy(e->text, tmp->p, tmp->len);
  free(st->expo);
  st->expo = e;
  st->expo_bytes = sizeof *e + tmp->len;
  return true;
}

/* Every stream's samples of every family, family by family (the format wants a family's samples
 * together): a KEPT family's lines copied from each stream's block (rendered first where stale),
 * a LIVE one's read now. */
static void stream_families_put(buf_t *b, ewd_server_t *srv) {
  fctx_t *cx = malloc(sizeof *cx);
  buf_t tmp = {0};
  size_t need = 0;
  for (size_t i = 0; i < srv->reg.n && cx; i++) {
    ewd_stream_t *st = srv->reg.items[i];
    if (st->dropped)
      continue;
    if ((!st->expo || st->expo->version != st->expo_version) && !render(st, &tmp, cx)) {
      free(cx);
      cx = NULL;
      break;
    }
    need += st->expo->at[NFAM] + 256; /* + its LIVE lines, most of the time */
  }
  free(tmp.p);
  if (!cx || !reserve(b, need)) {
    free(cx);
    b->oom = true;
    return;
  }
  memset(cx, 0, sizeof *cx);
  for (size_t f = 0; f < NFAM; f++) {
    family(b, stream_families[f].name, stream_families[f].type, stream_families[f].help);
    for (size_t i = 0; i < srv->reg.n && !b->oom; i++) {
      const ewd_stream_t *st = srv->reg.items[i];
      if (st->dropped)
        continue;
      struct ewd_expo *e = st->expo;
      if (stream_families[f].made == KEPT) {
        putn(b, e->text + e->at[f], e->at[f + 1] - e->at[f]);
      } else {
        cx->st = st;
        stream_family(b, f, cx, e->text, e->labels, e);
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
