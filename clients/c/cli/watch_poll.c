/* watch_poll.c — `eigenwatch watch` against the daemon, one cycle (watch.c): the run's streams
 * listed and matched against the words, each stream's schedule (info), its new evaluated points
 * (history, from the step after the last one held) and the metrics it does not evaluate (query,
 * against the row count), then the firing alerts. --json prints each new point as it is read.
 * With several daemons the list and the alerts are every daemon's, merged (fan_merged), and a
 * stream's own calls go to its daemon (ewc_place). */
#include "watch_priv.h"

#include <fnmatch.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

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
        watch_json_head(w, s);
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
  double t = watch_now();
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
      watch_json_head(w, s);
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

/* Lists the run's streams, adds the newly matched ones, marks the gone ones. The answer is read
 * in *r (a refusal stays there for the caller). */
static int refresh_streams(watch_t *w, ewc_reply_t *r) {
  params_t p;
  p_init(&p);
  msgpack_pack_map(&p.pk, 1);
  p_str(&p, "run");
  p_str(&p, w->run);
  int rc = fan_merged(w->conns, w->nconns, "list", &p.sb, r, &w->failed);
  msgpack_sbuffer_destroy(&p.sb);
  if (rc)
    return rc;
  for (int i = 0; i < w->nst; i++)
    w->st[i].live = 0;
  w->more = 0;
  const msgpack_object *ls = ewc_get(r->result, "streams");
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
      w->st[j].owner = w->nconns > 1 ? ewc_place(w->run, name, g_addrs, g_naddrs) : 0;
      w->nst++;
    }
    w->st[j].live = 1;
  }
  ewc_reply_free(r);
  return 0;
}

/* The firing alerts of the matched streams, as lines in w->alerts; --json prints changes. The
 * answer is read in *r (a refusal stays there for the caller). */
static int read_alerts(watch_t *w, ewc_reply_t *r) {
  params_t p;
  p_init(&p);
  msgpack_pack_map(&p.pk, 1);
  p_str(&p, "run");
  p_str(&p, w->run);
  int rc = fan_merged(w->conns, w->nconns, "alerts", &p.sb, r, &w->failed);
  msgpack_sbuffer_destroy(&p.sb);
  if (rc)
    return rc;
  char buf[sizeof w->alerts] = "";
  size_t len = 0;
  const msgpack_object *a = ewc_get(r->result, "alerts");
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
  ewc_reply_free(r);
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

/* One cycle against the daemons; returns 0, or the failed call's code (r holds an RPC error). */
int watch_cycle(watch_t *w, ewc_reply_t *err) {
  int rc = refresh_streams(w, err);
  for (int i = 0; !rc && i < w->nst; i++) {
    wstream_t *s = &w->st[i];
    ewc_t *c = w->conns[s->owner];
    if (!s->live)
      continue;
    w->failed = s->owner;
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
    rc = read_alerts(w, err);
  return rc;
}
