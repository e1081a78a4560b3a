/* watch.c — `eigenwatch watch`: the live view of one run's streams by step.
 *
 * Every --interval seconds it lists the run's streams, matches them against the words given
 * (exact names or `*` globs), and reads each matched stream's new evaluated points from the
 * daemon's history (from the step after the last one it has, so nothing is missed or shown
 * twice, across reconnects too). A metric the stream does not evaluate is polled with `query`
 * and drawn against the stream's row count instead. Each (stream, metric) line shows the latest
 * value, a sparkline placed by step, its value range and its step range; a stream without a new
 * point for --stale seconds is marked STALE; firing alerts are listed. With --json it prints one
 * line per (stream, step) instead. It waits for the daemon and for the streams to appear, and
 * reconnects when the daemon goes away. */
#include "cli.h"

#include <fnmatch.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#define WMAX 200      /* widest sparkline */
#define MAXPAT 64     /* stream words */
#define MAXMET 16     /* metrics */
#define MAXSTREAMS 64 /* streams shown */

typedef struct {
  uint64_t x; /* step (or rows, for a polled or step-less series) */
  double v, t;
} pt_t;

typedef struct {
  int polled;   /* not evaluated by the stream: query each interval, x = rows */
  int rows_axis; /* x counts rows (step-less schedule or polled) */
  int has_last;
  uint64_t last;
  pt_t pts[WMAX];
  int n;
  char why[128]; /* the daemon's refusal of the last poll, if any */
} series_t;

typedef struct {
  char name[256];
  int live;     /* in the latest list */
  int ready;    /* info read on this connection */
  uint64_t step, rows, ranks; /* of the newest point */
  int step_axis, partial, stale_said;
  double lag, last_t; /* of the newest point; last_t = Unix seconds (0: none yet) */
  series_t s[MAXMET];
} wstream_t;

typedef struct {
  const char *words[MAXPAT], *metrics[MAXMET];
  int nwords, nmetrics, classified, width;
  double interval, stale;
  uint64_t count;
  const char *run;
  wstream_t *st;
  int nst, more;
  char alerts[4096]; /* firing alerts of matched streams, one per line */
  char status[512];  /* why nothing is shown (waiting, unreachable) */
} watch_t;

static double now_unix(void) {
  struct timespec t;
  clock_gettime(CLOCK_REALTIME, &t);
  return (double)t.tv_sec + t.tv_nsec * 1e-9;
}

static void sleep_s(double s) {
  struct timespec ts = {(time_t)s, (long)((s - floor(s)) * 1e9)};
  nanosleep(&ts, NULL);
}

static int is_rpc(int rc, ewc_reply_t *r, const char *code) {
  return rc == EWC_ERPC && !strcmp(r->code, code);
}

static void push(series_t *s, uint64_t x, double v, double t) {
  if (s->n == WMAX) {
    memmove(s->pts, s->pts + 1, (WMAX - 1) * sizeof *s->pts);
    s->n--;
  }
  s->pts[s->n++] = (pt_t){x, v, t};
  s->last = x;
  s->has_last = 1;
}

static double first_number(const msgpack_object *o) {
  if (o->type == MSGPACK_OBJECT_ARRAY)
    return o->via.array.size ? first_number(&o->via.array.ptr[0]) : NAN;
  if (o->type == MSGPACK_OBJECT_FLOAT32 || o->type == MSGPACK_OBJECT_FLOAT64)
    return o->via.f64;
  if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER)
    return (double)o->via.u64;
  return NAN;
}

/* The metric words: every positional word that names a metric in the daemon's table is a metric,
 * the others are stream names or globs. Returns 0, a transport error (EWC_E*, < 0: try again), or
 * an exit code (> 0) after printing why. */
static int classify(watch_t *w, ewc_t *c, char **pos, int npos) {
  ewc_reply_t r;
  int rc = ewc_call(c, "metrics", NULL, &r);
  if (rc) {
    int ex = rc == EWC_ERPC ? rpc_exit(rc, &r) : rc;
    ewc_reply_free(&r);
    return ex;
  }
  const msgpack_object *ms = ewc_get(r.result, "metrics");
  int bad = -1;
  for (int i = 0; i < npos + w->nmetrics && bad < 0; i++) {
    const char *word = i < npos ? pos[i] : w->metrics[i - npos];
    int found = 0;
    for (uint32_t j = 0; ms && j < ms->via.array.size && !found; j++) {
      const msgpack_object *n = ewc_get(&ms->via.array.ptr[j], "name");
      found = n && n->via.str.size == strlen(word) && !memcmp(n->via.str.ptr, word, strlen(word));
    }
    if (i >= npos && !found)
      bad = i - npos;
    else if (i < npos && found && w->nmetrics < MAXMET)
      w->metrics[w->nmetrics++] = word;
    else if (i < npos && !found && w->nwords < MAXPAT)
      w->words[w->nwords++] = word;
  }
  ewc_reply_free(&r);
  if (bad >= 0) {
    fprintf(stderr, "eigenwatch: no metric named '%s' (eigenwatch metrics lists them)\n",
            w->metrics[bad]);
    return EX_DAEMON;
  }
  if (!w->nwords)
    return usage_error("watch needs a STREAM or a glob (a word naming a metric is a metric; "
                       "--stream NAME for a stream named like one)");
  if (!w->nmetrics) {
    static const char *dflt[] = {"entropy", "erank", "participation_ratio", "anisotropy"};
    for (int i = 0; i < 4; i++)
      w->metrics[w->nmetrics++] = dflt[i];
  }
  w->classified = 1;
  return 0;
}

static void pack_target(params_t *p, const watch_t *w, const char *stream, int extra) {
  msgpack_pack_map(&p->pk, (size_t)(2 + extra));
  p_str(p, "run");
  p_str(p, w->run);
  p_str(p, "stream");
  p_str(p, stream);
}

/* Reads a stream's schedule: which metrics it evaluates, and on which axis. */
static int stream_info(const watch_t *w, ewc_t *c, wstream_t *s, ewc_reply_t *r) {
  params_t p;
  p_init(&p);
  pack_target(&p, w, s->name, 0);
  int rc = ewc_call(c, "info", &p.sb, r);
  msgpack_sbuffer_destroy(&p.sb);
  if (rc)
    return rc;
  const msgpack_object *ev = ewc_get(ewc_get(r->result, "eval"), "metrics");
  /* Rows applied without a completed step: the stream ingests without steps, and what it
   * evaluates every N steps never comes. No rows and no step yet: ask again next time. */
  uint64_t count = 0, last = 0;
  ewc_get_u64(r->result, "count", &count);
  int stepped = ewc_get_u64(ewc_get(r->result, "steps"), "last_step", &last);
  for (int k = 0; k < w->nmetrics; k++) {
    series_t *se = &s->s[k];
    se->polled = 1;
    se->rows_axis = 1;
    for (uint32_t i = 0; ev && ev->type == MSGPACK_OBJECT_ARRAY && i < ev->via.array.size; i++) {
      const msgpack_object *e = &ev->via.array.ptr[i], *m = ewc_get(e, "metric");
      if (m && m->via.str.size == strlen(w->metrics[k]) &&
          !memcmp(m->via.str.ptr, w->metrics[k], m->via.str.size)) {
        int every = ewc_get(e, "every") != NULL;
        se->polled = every && !stepped && count > 0;
        se->rows_axis = !every || se->polled;
      }
    }
  }
  s->ready = stepped || count > 0;
  return 0;
}

static void json_point_head(const watch_t *w, const wstream_t *s) {
  printf("{\"run\": ");
  json_str(stdout, w->run, strlen(w->run));
  printf(", \"stream\": ");
  json_str(stdout, s->name, strlen(s->name));
}

/* New evaluated points of s since each series' last step (the first time: the whole history in
 * at most `width` buckets). */
static int read_points(watch_t *w, ewc_t *c, wstream_t *s) {
  uint64_t from = UINT64_MAX;
  int n = 0, first = 0;
  for (int k = 0; k < w->nmetrics; k++)
    if (!s->s[k].polled) {
      n++;
      uint64_t f = s->s[k].has_last ? s->s[k].last + 1 : 0;
      first |= !s->s[k].has_last;
      from = f < from ? f : from;
    }
  if (!n)
    return 0;
  params_t p;
  p_init(&p);
  pack_target(&p, w, s->name, 3);
  p_str(&p, "metrics");
  msgpack_pack_array(&p.pk, (size_t)n);
  for (int k = 0; k < w->nmetrics; k++)
    if (!s->s[k].polled)
      p_str(&p, w->metrics[k]);
  p_str(&p, "from_step");
  msgpack_pack_uint64(&p.pk, from);
  p_str(&p, "max_points");
  msgpack_pack_uint64(&p.pk, first ? (uint64_t)w->width : 100000);
  ewc_reply_t r;
  int rc = ewc_call(c, "history", &p.sb, &r);
  msgpack_sbuffer_destroy(&p.sb);
  if (rc) {
    ewc_reply_free(&r);
    return rc;
  }
  const msgpack_object *ser = ewc_get(r.result, "series");
  /* Steps in order over all series, so --json prints one line per step. */
  uint32_t at[MAXMET] = {0};
  const msgpack_object *sv[MAXMET] = {0};
  for (uint32_t i = 0; ser && ser->type == MSGPACK_OBJECT_ARRAY && i < ser->via.array.size; i++) {
    const msgpack_object *e = &ser->via.array.ptr[i], *m = ewc_get(e, "metric");
    for (int k = 0; k < w->nmetrics && m; k++)
      if (m->via.str.size == strlen(w->metrics[k]) &&
          !memcmp(m->via.str.ptr, w->metrics[k], m->via.str.size))
        sv[k] = e;
  }
  for (;;) {
    uint64_t step = UINT64_MAX;
    for (int k = 0; k < w->nmetrics; k++) {
      const msgpack_object *st = sv[k] ? ewc_get(sv[k], "step") : NULL;
      if (st && at[k] < st->via.array.size && st->via.array.ptr[at[k]].via.u64 < step)
        step = st->via.array.ptr[at[k]].via.u64;
    }
    if (step == UINT64_MAX)
      break;
    int head = 0;
    for (int k = 0; k < w->nmetrics; k++) {
      const msgpack_object *st = sv[k] ? ewc_get(sv[k], "step") : NULL;
      if (!st || at[k] >= st->via.array.size || st->via.array.ptr[at[k]].via.u64 != step)
        continue;
      uint32_t i = at[k]++;
      const msgpack_object *val = &ewc_get(sv[k], "value")->via.array.ptr[i];
      double t = ewc_get(sv[k], "time")->via.array.ptr[i].via.f64;
      if (s->s[k].has_last && step <= s->s[k].last)
        continue; /* already shown */
      push(&s->s[k], step, first_number(val), t);
      s->last_t = t > s->last_t ? t : s->last_t;
      s->stale_said = 0;
      const msgpack_object *ro = ewc_get(sv[k], "rows"), *ra = ewc_get(sv[k], "ranks"),
                           *pa = ewc_get(sv[k], "partial"), *lg = ewc_get(sv[k], "lag_s");
      s->step = step;
      s->step_axis = !s->s[k].rows_axis;
      s->rows = ro ? ro->via.array.ptr[i].via.u64 : 0;
      s->ranks = ra ? ra->via.array.ptr[i].via.u64 : 0;
      s->partial = pa && pa->via.array.ptr[i].via.boolean;
      s->lag = lg ? lg->via.array.ptr[i].via.f64 : NAN;
      if (!g_json)
        continue;
      if (!head) {
        json_point_head(w, s);
        printf(", \"%s\": %llu, \"time\": %.6f, \"rows\": %llu, \"ranks\": %llu, "
               "\"partial\": %s, \"lag_s\": %.6f, \"metrics\": {",
               s->s[k].rows_axis ? "rows" : "step", (unsigned long long)step, t,
               (unsigned long long)s->rows, (unsigned long long)s->ranks,
               s->partial ? "true" : "false", s->lag);
        head = 1;
      } else {
        printf(", ");
      }
      json_str(stdout, w->metrics[k], strlen(w->metrics[k]));
      printf(": ");
      json(stdout, val);
    }
    if (head)
      printf("}}\n");
  }
  ewc_reply_free(&r);
  return 0;
}

/* The metrics s does not evaluate: one query, drawn against the row count. */
static int poll_query(watch_t *w, ewc_t *c, wstream_t *s) {
  const char *ms[MAXMET];
  int idx[MAXMET], n = 0;
  for (int k = 0; k < w->nmetrics; k++)
    if (s->s[k].polled)
      idx[n] = k, ms[n++] = w->metrics[k];
  if (!n)
    return 0;
  ewc_reply_t r;
  if (ewc_set_run(c, w->run))
    return EWC_ENOMEM;
  int rc = ewc_query(c, s->name, ms, (size_t)n, NULL, -1, NULL, false, -1, &r);
  for (int j = 0; j < n; j++)
    snprintf(s->s[idx[j]].why, sizeof s->s[idx[j]].why, "%.30s%s%.90s",
             rc == EWC_ERPC ? r.code : "", rc == EWC_ERPC ? ": " : "",
             rc == EWC_ERPC ? r.message : "");
  if (rc) {
    ewc_reply_free(&r);
    return rc;
  }
  uint64_t count = 0;
  ewc_get_u64(r.result, "count", &count);
  const msgpack_object *m = ewc_get(r.result, "metrics");
  double t = now_unix();
  int head = 0;
  for (int j = 0; j < n; j++) {
    series_t *se = &s->s[idx[j]];
    const msgpack_object *v = ewc_get(m, ms[j]);
    if (!v || (se->has_last && se->last == count))
      continue;
    push(se, count, first_number(v), t);
    s->last_t = t;
    s->stale_said = 0;
    if (!g_json)
      continue;
    if (!head) {
      json_point_head(w, s);
      printf(", \"rows\": %llu, \"time\": %.6f, \"polled\": true, \"metrics\": {",
             (unsigned long long)count, t);
      head = 1;
    } else {
      printf(", ");
    }
    json_str(stdout, ms[j], strlen(ms[j]));
    printf(": ");
    json(stdout, v);
  }
  if (head)
    printf("}}\n");
  ewc_reply_free(&r);
  return 0;
}

static int matches(const watch_t *w, const char *name) {
  for (int i = 0; i < w->nwords; i++)
    if (!fnmatch(w->words[i], name, 0))
      return 1;
  return 0;
}

/* Lists the run's streams, adds the newly matched ones, marks the gone ones. */
static int refresh_streams(watch_t *w, ewc_t *c) {
  params_t p;
  p_init(&p);
  msgpack_pack_map(&p.pk, 1);
  p_str(&p, "run");
  p_str(&p, w->run);
  ewc_reply_t r;
  int rc = ewc_call(c, "list", &p.sb, &r);
  msgpack_sbuffer_destroy(&p.sb);
  if (rc) {
    ewc_reply_free(&r);
    return rc;
  }
  for (int i = 0; i < w->nst; i++)
    w->st[i].live = 0;
  w->more = 0;
  const msgpack_object *ls = ewc_get(r.result, "streams");
  for (uint32_t i = 0; ls && ls->type == MSGPACK_OBJECT_ARRAY && i < ls->via.array.size; i++) {
    const msgpack_object *n = ewc_get(&ls->via.array.ptr[i], "stream");
    char name[256];
    if (!n || n->via.str.size >= sizeof name)
      continue;
    memcpy(name, n->via.str.ptr, n->via.str.size);
    name[n->via.str.size] = 0;
    if (!matches(w, name))
      continue;
    int j = 0;
    while (j < w->nst && strcmp(w->st[j].name, name) != 0)
      j++;
    if (j == w->nst) {
      if (w->nst == MAXSTREAMS) {
        w->more++;
        continue;
      }
      memset(&w->st[j], 0, sizeof w->st[j]);
      snprintf(w->st[j].name, sizeof w->st[j].name, "%s", name);
      w->nst++;
    }
    w->st[j].live = 1;
  }
  ewc_reply_free(&r);
  return 0;
}

/* The firing alerts of the matched streams, as lines in w->alerts; --json prints changes. */
static int read_alerts(watch_t *w, ewc_t *c) {
  params_t p;
  p_init(&p);
  msgpack_pack_map(&p.pk, 1);
  p_str(&p, "run");
  p_str(&p, w->run);
  ewc_reply_t r;
  int rc = ewc_call(c, "alerts", &p.sb, &r);
  msgpack_sbuffer_destroy(&p.sb);
  if (rc) {
    ewc_reply_free(&r);
    return rc;
  }
  char buf[sizeof w->alerts] = "";
  size_t len = 0;
  const msgpack_object *a = ewc_get(r.result, "alerts");
  for (uint32_t i = 0; a && a->type == MSGPACK_OBJECT_ARRAY && i < a->via.array.size; i++) {
    const msgpack_object *e = &a->via.array.ptr[i], *st = ewc_get(e, "stream"),
                         *state = ewc_get(e, "state"), *rule = ewc_get(e, "rule"),
                         *met = ewc_get(e, "metric"), *when = ewc_get(e, "when");
    if (!st || !state || !rule || !met || !when || state->via.str.size != 6 ||
        memcmp(state->via.str.ptr, "firing", 6) != 0)
      continue;
    char name[256];
    snprintf(name, sizeof name, "%.*s", (int)st->via.str.size, st->via.str.ptr);
    if (!matches(w, name))
      continue;
    uint64_t step = 0;
    double last = NAN;
    ewc_get_u64(e, "step", &step);
    ewc_get_double(e, "last_value", &last);
    int k = snprintf(buf + len, sizeof buf - len,
                     "ALERT %s: rule %.*s (%.*s %.*s) firing since step %llu, last value %.6g\n",
                     name, (int)rule->via.str.size, rule->via.str.ptr, (int)met->via.str.size,
                     met->via.str.ptr, (int)when->via.str.size, when->via.str.ptr,
                     (unsigned long long)step, last);
    if (k > 0 && (size_t)k < sizeof buf - len)
      len += (size_t)k;
  }
  ewc_reply_free(&r);
  if (g_json && strcmp(buf, w->alerts) != 0) { /* each firing line once, while it fires */
    for (char *ln = buf; *ln;) {
      char *end = strchr(ln, '\n');
      size_t n = (size_t)(end - ln);
      int seen = 0;
      for (char *o = w->alerts; *o && !seen;) {
        char *oe = strchr(o, '\n');
        seen = (size_t)(oe - o) == n && !memcmp(o, ln, n);
        o = oe + 1;
      }
      if (!seen) {
        printf("{\"run\": ");
        json_str(stdout, w->run, strlen(w->run));
        printf(", \"alert\": ");
        json_str(stdout, ln, n);
        printf("}\n");
      }
      ln = end + 1;
    }
  }
  memcpy(w->alerts, buf, sizeof buf);
  return 0;
}

/* One cycle against the daemon; returns 0, or the failed call's code (r holds an RPC error). */
static int cycle(watch_t *w, ewc_t *c, ewc_reply_t *err) {
  int rc = refresh_streams(w, c);
  for (int i = 0; !rc && i < w->nst; i++) {
    wstream_t *s = &w->st[i];
    if (!s->live)
      continue;
    if (!s->ready) {
      rc = stream_info(w, c, s, err);
      ewc_reply_free(err);
      if (rc == EWC_ERPC && is_rpc(rc, err, "NO_SUCH_STREAM")) {
        s->live = 0, rc = 0;
        continue;
      }
      if (rc)
        return rc;
    }
    rc = read_points(w, c, s);
    if (!rc)
      rc = poll_query(w, c, s);
    if (rc == EWC_ERPC) /* dropped meanwhile, or no value yet: not the watcher's error */
      rc = 0;
  }
  if (!rc)
    rc = read_alerts(w, c);
  return rc;
}

#define SPARK_BARS "▁▂▃▄▅▆▇█"

/* The last points of se placed by step over `width` columns, with their value and step ranges. */
static void draw_series(const watch_t *w, const char *metric, const series_t *se) {
  double lo = INFINITY, hi = -INFINITY;
  for (int i = 0; i < se->n; i++)
    if (isfinite(se->pts[i].v))
      lo = fmin(lo, se->pts[i].v), hi = fmax(hi, se->pts[i].v);
  double cell[WMAX];
  int has[WMAX] = {0};
  uint64_t x0 = se->n ? se->pts[0].x : 0, x1 = se->n ? se->pts[se->n - 1].x : 0;
  for (int i = 0; i < se->n; i++) {
    int col = x1 > x0 ? (int)((double)(se->pts[i].x - x0) / (double)(x1 - x0) *
                              (w->width - 1) + 0.5)
                      : w->width - 1;
    cell[col] = se->pts[i].v;
    has[col] = 1;
  }
  printf("  %-20s %13.6g  ", metric, se->n ? se->pts[se->n - 1].v : NAN);
  for (int col = 0; col < w->width; col++) {
    if (!has[col]) {
      fputc(' ', stdout);
      continue;
    }
    int b = (!isfinite(cell[col]) || hi <= lo) ? 3 : (int)((cell[col] - lo) / (hi - lo) * 7 + .5);
    b = b < 0 ? 0 : b > 7 ? 7 : b;
    fwrite(SPARK_BARS + 3 * b, 1, 3, stdout);
  }
  if (!se->n)
    printf("  (no point yet%s%s)\n", se->why[0] ? ": " : "", se->why);
  else
    printf("  [%.4g .. %.4g]  %s %llu..%llu%s\n", lo, hi, se->rows_axis ? "rows" : "steps",
           (unsigned long long)x0, (unsigned long long)x1, se->polled ? " (polled)" : "");
}

static double stale_after(const watch_t *w, const wstream_t *s) {
  if (w->stale > 0)
    return w->stale;
  double gaps[WMAX], g = 0; /* 5 × the median gap between recent points, at least 30 s */
  int n = 0;
  const series_t *se = &s->s[0];
  for (int i = 1; i < se->n; i++)
    gaps[n++] = se->pts[i].t - se->pts[i - 1].t;
  for (int i = 0; i < n; i++) /* a small insertion sort */
    for (int j = i; j > 0 && gaps[j] < gaps[j - 1]; j--)
      g = gaps[j], gaps[j] = gaps[j - 1], gaps[j - 1] = g;
  g = n ? 5 * gaps[n / 2] : 0;
  return g > 30 ? g : 30;
}

static void draw(watch_t *w, int tty) {
  if (tty)
    fputs("\033[H\033[2J", stdout);
  printf("eigenwatch watch — run %s — every %.3gs%s\n", w->run, w->interval,
         tty ? " (Ctrl-C to stop)" : "");
  if (w->status[0])
    printf("%s\n", w->status);
  double now = now_unix();
  for (int i = 0; i < w->nst; i++) {
    wstream_t *s = &w->st[i];
    printf("%s", s->name);
    if (!s->live)
      printf("  (gone)");
    if (s->last_t > 0 && s->step_axis)
      printf("  step %llu", (unsigned long long)s->step);
    if (s->last_t > 0 && s->ranks)
      printf("  rows %llu  ranks %llu%s  lag %.2fs", (unsigned long long)s->rows,
             (unsigned long long)s->ranks, s->partial ? " (partial)" : "", s->lag);
    if (s->last_t > 0 && now - s->last_t > stale_after(w, s))
      printf("  STALE: no new point for %.0fs", now - s->last_t);
    printf("\n");
    for (int k = 0; k < w->nmetrics; k++)
      draw_series(w, w->metrics[k], &s->s[k]);
  }
  if (w->more)
    printf("(%d more matching streams not shown)\n", w->more);
  fputs(w->alerts, stdout);
  fflush(stdout);
}

/* --json: a line when a stream turns stale. */
static void json_stale(watch_t *w) {
  double now = now_unix();
  for (int i = 0; i < w->nst; i++) {
    wstream_t *s = &w->st[i];
    if (s->last_t > 0 && !s->stale_said && now - s->last_t > stale_after(w, s)) {
      json_point_head(w, s);
      printf(", \"stale\": true, \"age_s\": %.3f}\n", now - s->last_t);
      s->stale_said = 1;
    }
  }
  fflush(stdout);
}

int c_watch(int argc, char **argv) {
  watch_t w = {.interval = 1.0, .width = 0, .run = g_run ? g_run : "default"};
  char *pos[MAXPAT];
  int npos = 0, has_count = 0;
  uint64_t width = 0;
  for (int i = 0; i < argc; i++) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (!strcmp(a, "--interval") && v) {
      if (parse_double("--interval", argv[++i], 0.01, 86400, &w.interval))
        return EX_USAGE;
    } else if (!strcmp(a, "--count") && v) {
      if (parse_u64("--count", argv[++i], 1, UINT32_MAX, &w.count))
        return EX_USAGE;
      has_count = 1;
    } else if (!strcmp(a, "--stale") && v) {
      if (parse_double("--stale", argv[++i], 0.01, 1e9, &w.stale))
        return EX_USAGE;
    } else if (!strcmp(a, "--width") && v) {
      if (parse_u64("--width", argv[++i], 8, WMAX, &width))
        return EX_USAGE;
    } else if (!strcmp(a, "--metric") && v) {
      if (w.nmetrics == MAXMET)
        return usage_error("watch takes at most %d metrics", MAXMET);
      w.metrics[w.nmetrics++] = argv[++i];
    } else if (!strcmp(a, "--stream") && v) {
      if (w.nwords == MAXPAT)
        return usage_error("watch takes at most %d streams or globs", MAXPAT);
      w.words[w.nwords++] = argv[++i];
    } else if (!strncmp(a, "--", 2)) {
      return usage_error("watch: unknown or incomplete option '%s'", a);
    } else if (npos < MAXPAT) {
      pos[npos++] = argv[i];
    } else {
      return usage_error("watch takes at most %d words", MAXPAT);
    }
  }
  if (!npos && !w.nwords)
    return usage_error("watch needs a STREAM or a glob");
  int tty = isatty(1);
  struct winsize ws;
  if (!width && tty && ioctl(1, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0)
    width = ws.ws_col > 90 ? ws.ws_col - 80 : 10;
  w.width = (int)(width ? width : 40);
  if (!(w.st = calloc(MAXSTREAMS, sizeof *w.st)))
    return fprintf(stderr, "eigenwatch: out of memory\n"), EX_UNREACHABLE;
  ewc_t *c = NULL;
  int ex = EX_OK, ok = 0;
  char addr[4200];
  const char *shown = g_address ? g_address : ewc_default_address(addr, sizeof addr);
  for (uint64_t it = 0; !has_count || it < w.count; it++) {
    char err[512];
    int rc = c ? 0 : ewc_connect(g_address, g_timeout, &c, err, sizeof err);
    if (rc == EWC_EADDR) {
      fprintf(stderr, "eigenwatch: %s\n", err);
      ex = EX_USAGE;
      break;
    }
    ewc_reply_t r;
    memset(&r, 0, sizeof r);
    if (!rc && !w.classified) {
      rc = classify(&w, c, pos, npos);
      if (rc > 0) { /* a usage or metric error: no point in waiting */
        ex = rc;
        break;
      }
    }
    if (!rc)
      rc = cycle(&w, c, &r);
    if (rc == EWC_ERPC) { /* the daemon refused the watch itself (a bad run name, ...) */
      ex = rpc_exit(rc, &r);
      ewc_reply_free(&r);
      break;
    }
    ewc_reply_free(&r);
    ok = rc == 0;
    if (rc) {
      snprintf(w.status, sizeof w.status, "waiting for the daemon at %.200s (%.200s); retrying",
               shown, rc == EWC_ECONNECT ? err : ewc_strerror(rc));
      if (c)
        ewc_close(c);
      c = NULL;
      for (int i = 0; i < w.nst; i++)
        w.st[i].ready = 0; /* the daemon may have restarted: read each schedule again */
    } else {
      int live = 0;
      for (int i = 0; i < w.nst; i++)
        live += w.st[i].live;
      if (!live)
        snprintf(w.status, sizeof w.status, "waiting for a stream matching %s%s in run %s",
                 w.words[0], w.nwords > 1 ? " (or the others)" : "", w.run);
      else
        w.status[0] = 0;
    }
    if (g_json) {
      if (w.status[0])
        fprintf(stderr, "eigenwatch: %s\n", w.status);
      json_stale(&w);
    } else {
      draw(&w, tty);
    }
    if (!has_count || it + 1 < w.count)
      sleep_s(w.interval);
  }
  if (c)
    ewc_close(c);
  free(w.st);
  if (ex == EX_OK && !ok)
    ex = EX_UNREACHABLE;
  return ex;
}
