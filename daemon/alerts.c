/* alerts.c — alert rules and subscriptions (proto/PROTOCOL.md, "Alerts and subscriptions").
 *
 * Rules belong to a stream (create's or alert_set's `rules`). Metric rules are checked against
 * each evaluated point, in step order, on the loop: `below`/`above` a threshold, `drop` (the value
 * fell by more than the fraction `value` below the maximum of the last `steps` points, this one
 * included), `below_baseline` (below `value` × the mean of the first `baseline_steps` points
 * since the rule was set; quiet until those exist). Stream rules: `stale` (no batch accepted for
 * `value` seconds, checked four times a second) and `non_finite` (a batch was refused for a NaN
 * or an infinity; resolved by the next accepted batch). A rule that changes state is logged and
 * sent to the subscribers as [2, "alert", [{run, stream, rule, state, step, value, message}]].
 *
 * Subscriptions belong to a connection (each holds a reference to it; those of closed
 * connections are removed before and after each round of notifications): after each evaluation the subscribers whose run, stream
 * glob and metrics match get [2, "metrics", [{run, stream, step, time, rows, ranks, partial,
 * metrics}]]. A subscriber whose unsent output passes conn_out_cap — counted as the memory that
 * holds it (net/conn.c) — is disconnected (a notification is never dropped silently, and memory
 * never grows for a reader that stopped). */
#include "ewd.h"
#include "cmd/cmd.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { W_BELOW, W_ABOVE, W_DROP, W_BASELINE, W_STALE, W_NONFINITE };
static const char *const when_names[] = {EWP_ENUM_when};

typedef struct {
  char name[EWP_RULE_NAME_MAX + 1];
  const ew_metric_info_t *metric; /* NULL for stale, non_finite */
  int when;
  double value;
  uint32_t steps, baseline_steps;
  /* state */
  bool firing;
  uint64_t fired_step;
  double fired_time;     /* Unix seconds */
  bool has_last;
  double last_value;
  double *ring;          /* drop: the last `steps` values */
  uint32_t nring, at;
  double base_sum;       /* below_baseline */
  uint32_t base_n;
} rule_t;

struct ewd_alerts {
  rule_t *rules;
  size_t n;
};

#define SUBS_MAX 4096
#define SUBS_PER_CONN 64

typedef struct {
  uint64_t id;
  ewd_conn_t *conn;
  bool has_run, has_glob;
  char run[EWD_NAME_MAX + 1];
  char glob[EWD_NAME_MAX + 1];
  char (*metrics)[64];
  size_t nmetrics;
} sub_t;

struct ewd_subs {
  sub_t *v;
  size_t n, cap;
  uint64_t next_id;
};

/* ---- rules ---- */

static void rules_free(rule_t *r, size_t n) {
  for (size_t i = 0; r && i < n; i++)
    free(r[i].ring);
  free(r);
}

void ewd_alerts_free(ewd_alerts_t *a) {
  if (!a)
    return;
  rules_free(a->rules, a->n);
  free(a);
}

int ewd_alerts_set(ewd_stream_t *st, const ewp_rules_t *rules, char *msg, size_t cap) {
  rule_t *v = calloc(rules->n ? rules->n : 1, sizeof *v);
  ewd_alerts_t *a = calloc(1, sizeof *a);
  if (!v || !a) {
    free(v);
    free(a);
    snprintf(msg, cap, "out of memory");
    return EW_ENOMEM;
  }
  for (size_t i = 0; i < rules->n; i++) {
    const ewp_rule_t *r = &rules->v[i];
    rule_t *d = &v[i];
    memcpy(d->name, r->name.p, r->name.n);
    d->when = r->when;
    d->value = r->value;
    d->steps = EWP_HAS(r, EWP_RULE_steps) ? (uint32_t)r->steps : 10;
    d->baseline_steps = EWP_HAS(r, EWP_RULE_baseline_steps) ? (uint32_t)r->baseline_steps : 10;
    if (EWP_HAS(r, EWP_RULE_metric)) {
      char name[64], esc[96];
      if (r->metric.n < sizeof name) {
        memcpy(name, r->metric.p, r->metric.n);
        name[r->metric.n] = 0;
        d->metric = strlen(name) == r->metric.n ? ew_metric_find(name) : NULL;
      }
      if (!d->metric || !ewd_eval_has(st, d->metric->name)) {
        int code = d->metric ? EW_EBADPARAM : EW_EUNKMETRIC;
        snprintf(msg, cap, "rules[%zu]: '%s' is not a metric the stream evaluates (its eval list "
                 "names them; info shows it)", i, ewp_escape(esc, 64, r->metric.p, r->metric.n));
        rules_free(v, rules->n);
        free(a);
        return code;
      }
    }
    if (d->when == W_DROP && !(d->ring = calloc(d->steps, sizeof *d->ring))) {
      rules_free(v, rules->n);
      free(a);
      snprintf(msg, cap, "out of memory");
      return EW_ENOMEM;
    }
  }
  a->rules = v;
  a->n = rules->n;
  ewd_alerts_free(st->alerts);
  st->alerts = a;
  return 0;
}

/* ---- notifications ---- */

static ewd_subs_t *subs_of(ewd_server_t *srv) {
  if (!srv->subs)
    srv->subs = calloc(1, sizeof *srv->subs);
  return srv->subs;
}

static void sub_free(sub_t *sub) {
  free(sub->metrics);
  ewd_conn_unref(sub->conn);
}

/* Removes the subscriptions of closed connections. */
static void purge(ewd_server_t *srv) {
  ewd_subs_t *s = srv->subs;
  for (size_t i = 0; s && i < s->n;) {
    if (s->v[i].conn->closing) {
      sub_free(&s->v[i]);
      s->v[i] = s->v[--s->n];
    } else {
      i++;
    }
  }
}

/* `*` matches any run of characters (none included), every other byte itself. Iterative, with
 * one backtrack point (the last `*` seen): when a later byte fails, that star takes one more byte
 * and the rest is tried again. O(|g| x |s|) at worst, never exponential: the recursive version
 * backtracked through every split of the name among the stars (40 stars and a letter the name
 * lacks kept the loop busy for ever). Earlier stars never need to take more: the part after the
 * last star is matched leftmost, which is as good as any later match. */
static bool glob_match(const char *g, const char *s) {
  const char *star = NULL, *retry = NULL;
  while (*s) {
    if (*g == '*') {
      while (*g == '*')
        g++;
      star = g;
      retry = s;
    } else if (*g && *g == *s) {
      g++;
      s++;
    } else if (star) {
      g = star;
      s = ++retry;
    } else {
      return false;
    }
  }
  while (*g == '*')
    g++;
  return *g == 0;
}

static bool sub_matches(const sub_t *sub, const ewd_stream_t *st) {
  return (!sub->has_run || strcmp(sub->run, st->run) == 0) &&
         (!sub->has_glob || glob_match(sub->glob, st->name));
}

/* Sends [2, method, [v]] to the subscriber; past conn_out_cap it is disconnected instead. */
static void notify(ewd_server_t *srv, ewd_conn_t *c, const char *method, const ewp_value_t *v) {
  if (c->closing)
    return;
  if (c->out_mem > srv->cfg.conn_out_cap) {
    srv->stat[EWD_STAT_subscribers_dropped]++;
    ewd_log(EWD_LOG_WARN, "subscriber disconnected: it does not read its notifications",
            "conn=%llu unsent_bytes=%zu held_bytes=%zu conn_out_cap=%llu",
            (unsigned long long)c->id, c->out_pending, c->out_mem,
            (unsigned long long)srv->cfg.conn_out_cap);
    ewd_conn_close(c, "subscriber over conn_out_cap");
    return;
  }
  msgpack_sbuffer sb;
  msgpack_sbuffer_init(&sb);
  msgpack_packer pk;
  msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
  msgpack_pack_array(&pk, 3);
  msgpack_pack_uint8(&pk, 2);
  msgpack_pack_str(&pk, strlen(method));
  msgpack_pack_str_body(&pk, method, strlen(method));
  msgpack_pack_array(&pk, 1);
  ewp_pack_value(&pk, v);
  srv->stat[EWD_STAT_notifications_sent]++;
  char *data = sb.data;
  size_t len = sb.size;
  sb.data = NULL;
  ewd_conn_send(c, data, len);
}

static void send_alert(ewd_server_t *srv, const ewd_stream_t *st, const rule_t *r, uint64_t step,
                       bool has_step, double value, const char *message) {
  ewd_log(r->firing ? EWD_LOG_WARN : EWD_LOG_INFO, r->firing ? "alert firing" : "alert resolved",
          "run=\"%s\" stream=\"%s\" rule=\"%s\" step=%llu value=%.6g detail=\"%s\"", st->run,
          st->name, r->name, (unsigned long long)step, value, message);
  srv->stat[r->firing ? EWD_STAT_alerts_fired : EWD_STAT_alerts_resolved]++;
  purge(srv);
  ewd_subs_t *subs = srv->subs;
  for (size_t i = 0; subs && i < subs->n; i++) {
    if (!sub_matches(&subs->v[i], st))
      continue;
    ewp_kv_t kv[] = {{"run", ewp_vstr(st->run)},
                     {"stream", ewp_vstr(st->name)},
                     {"rule", ewp_vstr(r->name)},
                     {"state", ewp_vstr(r->firing ? "firing" : "resolved")},
                     {"step", has_step ? ewp_vu64(step) : ewp_vnil()},
                     {"value", ewp_vf64(value)},
                     {"message", ewp_vstr(message)}};
    ewp_value_t v = ewp_vmap(kv, 7);
    notify(srv, subs->v[i].conn, "alert", &v);
  }
  purge(srv);
}

/* Checks one metric rule against a new value. Returns true when its state changed (msg says
 * why). */
static bool check_metric(rule_t *r, double v, char *msg, size_t cap) {
  bool fire = false;
  double ref = 0;
  switch (r->when) {
  case W_BELOW:
    fire = v < r->value;
    snprintf(msg, cap, "%s %.6g %s %.6g", r->metric->name, v, fire ? "is below" : "is at or above",
             r->value);
    break;
  case W_ABOVE:
    fire = v > r->value;
    snprintf(msg, cap, "%s %.6g %s %.6g", r->metric->name, v, fire ? "is above" : "is at or below",
             r->value);
    break;
  case W_DROP:
    r->ring[r->at] = v;
    r->at = (r->at + 1) % r->steps;
    if (r->nring < r->steps)
      r->nring++;
    ref = -INFINITY;
    for (uint32_t i = 0; i < r->nring; i++)
      ref = fmax(ref, r->ring[i]);
    fire = ref > 0 && v < (1 - r->value) * ref;
    snprintf(msg, cap, "%s %.6g is %.1f%% below its maximum %.6g over the last %u points "
             "(threshold %.1f%%)", r->metric->name, v, ref > 0 ? 100 * (1 - v / ref) : 0.0, ref,
             r->nring, 100 * r->value);
    break;
  case W_BASELINE:
    if (r->base_n < r->baseline_steps) {
      r->base_sum += v;
      r->base_n++;
      return false;
    }
    ref = r->base_sum / r->base_n;
    fire = v < r->value * ref;
    snprintf(msg, cap, "%s %.6g is %s %.3g × its baseline %.6g (the mean of its first %u points)",
             r->metric->name, v, fire ? "below" : "at or above", r->value, ref, r->base_n);
    break;
  default:
    return false;
  }
  r->has_last = true;
  r->last_value = v;
  if (fire == r->firing)
    return false;
  r->firing = fire;
  return true;
}

void ewd_alerts_point(ewd_server_t *srv, ewd_stream_t *st, const ewd_point_t *pt,
                      const ewd_hvalue_t *hv, size_t n) {
  ewd_alerts_t *a = st->alerts;
  for (size_t i = 0; a && i < a->n; i++) {
    rule_t *r = &a->rules[i];
    for (size_t k = 0; r->metric && k < n; k++) {
      if (strcmp(hv[k].metric, r->metric->name) != 0 || hv[k].res->kind != EW_VALUE_SCALAR)
        continue;
      char msg[300];
      double v = hv[k].res->scalar;
      if (!check_metric(r, v, msg, sizeof msg))
        continue;
      if (r->firing)
        r->fired_step = pt->step, r->fired_time = pt->time;
      send_alert(srv, st, r, pt->step, true, v, msg);
    }
  }
  purge(srv);
  ewd_subs_t *subs = srv->subs;
  for (size_t i = 0; subs && i < subs->n; i++) {
    sub_t *sub = &subs->v[i];
    if (!sub_matches(sub, st))
      continue;
    ewp_kv_t mkv[EWP_EVAL_MAX];
    size_t nm = 0;
    for (size_t k = 0; k < n && nm < EWP_EVAL_MAX; k++) {
      bool want = sub->nmetrics == 0;
      for (size_t q = 0; !want && q < sub->nmetrics; q++)
        want = strcmp(sub->metrics[q], hv[k].metric) == 0;
      if (want)
        mkv[nm++] = (ewp_kv_t){hv[k].metric, hv[k].res->kind == EW_VALUE_SCALAR
                                                 ? ewp_vf64(hv[k].res->scalar)
                                                 : ewp_vf64s(hv[k].res->list, hv[k].res->len)};
    }
    if (!nm)
      continue;
    ewp_kv_t kv[] = {{"run", ewp_vstr(st->run)},          {"stream", ewp_vstr(st->name)},
                     {"step", ewp_vu64(pt->step)},         {"time", ewp_vf64(pt->time)},
                     {"rows", ewp_vu64(pt->rows)},         {"ranks", ewp_vu64(pt->ranks)},
                     {"partial", ewp_vbool(pt->nmissing)}, {"metrics", ewp_vmap(mkv, nm)}};
    ewp_value_t v = ewp_vmap(kv, 8);
    notify(srv, sub->conn, "metrics", &v);
  }
  purge(srv);
}

/* A stream rule of kind `when` turns on or off. */
static void stream_rule(ewd_server_t *srv, ewd_stream_t *st, int when, bool fire, double value,
                        const char *msg) {
  ewd_alerts_t *a = st->alerts;
  for (size_t i = 0; a && i < a->n; i++) {
    rule_t *r = &a->rules[i];
    if (r->when != when || r->firing == fire)
      continue;
    r->firing = fire;
    r->has_last = true;
    r->last_value = value;
    if (fire)
      r->fired_step = st->last_step, r->fired_time = ewd_wall_now();
    send_alert(srv, st, r, st->last_step, st->has_last_step, value, msg);
  }
}

void ewd_alerts_batch(ewd_server_t *srv, ewd_stream_t *st, int rc) {
  if (!st->alerts)
    return;
  if (rc == EW_ENONFINITE)
    stream_rule(srv, st, W_NONFINITE, true, 1, "a batch was refused: it held a NaN or an "
                "infinity");
  else if (rc == 0)
    stream_rule(srv, st, W_NONFINITE, false, 0, "a batch was accepted after the refused one");
}

void ewd_alerts_tick(ewd_server_t *srv) {
  double now = ewd_wall_now();
  for (size_t s = 0; s < srv->reg.n; s++) {
    ewd_stream_t *st = srv->reg.items[s];
    ewd_alerts_t *a = st->alerts;
    for (size_t i = 0; a && i < a->n; i++) {
      rule_t *r = &a->rules[i];
      if (r->when != W_STALE || st->last_ingest <= 0)
        continue;
      double idle = now - st->last_ingest;
      bool fire = idle > r->value;
      if (fire == r->firing)
        continue;
      char msg[160];
      snprintf(msg, sizeof msg, fire ? "no batch for %.1f s (the rule allows %.6g s)"
                                     : "a batch came after %.1f s (the rule allows %.6g s)",
               idle, r->value);
      stream_rule(srv, st, W_STALE, fire, idle, msg);
    }
  }
}

/* ---- what `alerts` and the snapshot see ---- */

size_t ewd_alerts_count(const ewd_stream_t *st) { return st->alerts ? st->alerts->n : 0; }

void ewd_alert_state(const ewd_stream_t *st, size_t i, const char **rule, const char **metric,
                     const char **when, bool *firing) {
  const rule_t *r = &st->alerts->rules[i];
  *rule = r->name;
  *metric = r->metric ? r->metric->name : "";
  *when = when_names[r->when];
  *firing = r->firing;
}

ewp_value_t ewd_alert_value(const ewd_stream_t *st, size_t i, ewp_kv_t *kv) {
  const rule_t *r = &st->alerts->rules[i];
  kv[0] = (ewp_kv_t){"run", ewp_vstr(st->run)};
  kv[1] = (ewp_kv_t){"stream", ewp_vstr(st->name)};
  kv[2] = (ewp_kv_t){"rule", ewp_vstr(r->name)};
  kv[3] = (ewp_kv_t){"metric", r->metric ? ewp_vstr(r->metric->name) : (ewp_value_t){0}};
  kv[4] = (ewp_kv_t){"when", ewp_vstr(when_names[r->when])};
  kv[5] = (ewp_kv_t){"value", r->when != W_NONFINITE ? ewp_vf64(r->value) : (ewp_value_t){0}};
  kv[6] = (ewp_kv_t){"state", ewp_vstr(r->firing ? "firing" : "ok")};
  kv[7] = (ewp_kv_t){"step", r->firing ? ewp_vu64(r->fired_step) : (ewp_value_t){0}};
  kv[8] = (ewp_kv_t){"since", r->firing ? ewp_vtime(r->fired_time) : (ewp_value_t){0}};
  kv[9] = (ewp_kv_t){"last_value", r->has_last ? ewp_vf64(r->last_value) : (ewp_value_t){0}};
  return ewp_vmap(kv, EWD_ALERT_KV);
}

#define PUT(q, v) (memcpy((q), &(v), sizeof(v)), (q) += sizeof(v))

/* Per rule: u8 name length, name, u8 when, u8 metric name length (0: none), metric name,
 * f64 value, u32 steps, u32 baseline_steps. States start over after a restart. */
size_t ewd_alerts_save(const ewd_stream_t *st, char *out, size_t cap) {
  const ewd_alerts_t *a = st->alerts;
  if (!a || !a->n)
    return 0;
  size_t need = 1;
  for (size_t i = 0; i < a->n; i++)
    need += 3 + strlen(a->rules[i].name) + 16 +
            (a->rules[i].metric ? strlen(a->rules[i].metric->name) : 0);
  if (need > cap)
    return 0;
  char *q = out;
  uint8_t n = (uint8_t)a->n;
  PUT(q, n);
  for (size_t i = 0; i < a->n; i++) {
    const rule_t *r = &a->rules[i];
    uint8_t len = (uint8_t)strlen(r->name), when = (uint8_t)r->when;
    uint8_t mlen = r->metric ? (uint8_t)strlen(r->metric->name) : 0;
    PUT(q, len);
    memcpy(q, r->name, len), q += len;
    PUT(q, when);
    PUT(q, mlen);
    if (mlen)
      memcpy(q, r->metric->name, mlen), q += mlen;
    PUT(q, r->value);
    PUT(q, r->steps);
    PUT(q, r->baseline_steps);
  }
  return (size_t)(q - out);
}

bool ewd_alerts_load(ewd_stream_t *st, const char *b, size_t n) {
  size_t o = 0;
  uint8_t cnt;
  if (n < 1)
    return false;
  memcpy(&cnt, b, 1), o = 1;
  if (cnt > EWP_RULES_MAX)
    return false;
  rule_t *v = calloc(cnt ? cnt : 1, sizeof *v);
  if (!v)
    return false;
  for (size_t i = 0; i < cnt; i++) {
    rule_t *r = &v[i];
    uint8_t len, when, mlen;
    if (n - o < 1 || (len = (uint8_t)b[o]) == 0 || len > EWP_RULE_NAME_MAX || n - o - 1 < len)
      goto bad;
    memcpy(r->name, b + o + 1, len), o += 1 + len;
    if (n - o < 2 || (when = (uint8_t)b[o]) > W_NONFINITE)
      goto bad;
    mlen = (uint8_t)b[o + 1], o += 2;
    char name[64];
    if (mlen >= sizeof name || n - o < mlen + 16u)
      goto bad;
    memcpy(name, b + o, mlen), o += mlen;
    name[mlen] = 0;
    r->when = when;
    r->metric = mlen ? ew_metric_find(name) : NULL;
    if ((mlen && !r->metric) || (!mlen && when != W_STALE && when != W_NONFINITE))
      goto bad;
    memcpy(&r->value, b + o, 8), o += 8;
    memcpy(&r->steps, b + o, 4), o += 4;
    memcpy(&r->baseline_steps, b + o, 4), o += 4;
    if (r->steps < 1 || r->steps > 65536 || r->baseline_steps < 1 || r->baseline_steps > 65536)
      goto bad;
    if (when == W_DROP && !(r->ring = calloc(r->steps, sizeof *r->ring)))
      goto bad;
  }
  if (o != n)
    goto bad;
  ewd_alerts_t *a = calloc(1, sizeof *a);
  if (!a)
    goto bad;
  a->rules = v, a->n = cnt;
  ewd_alerts_free(st->alerts);
  st->alerts = a;
  return true;
bad:
  rules_free(v, cnt);
  return false;
}

/* ---- subscriptions ---- */

int ewd_subs_add(ewd_server_t *srv, ewd_conn_t *c, const ewp_subscribe_req_t *r, uint64_t *id,
                 char *msg, size_t cap) {
  ewd_subs_t *s = subs_of(srv);
  if (!s) {
    snprintf(msg, cap, "out of memory");
    return EW_ENOMEM;
  }
  purge(srv);
  size_t mine = 0;
  for (size_t i = 0; i < s->n; i++)
    mine += s->v[i].conn == c;
  if (s->n >= SUBS_MAX || mine >= SUBS_PER_CONN) {
    snprintf(msg, cap, "too many subscriptions (%d per connection, %d in all)", SUBS_PER_CONN,
             SUBS_MAX);
    return EW_ELIMIT;
  }
  if (s->n == s->cap) {
    size_t nc = s->cap ? 2 * s->cap : 8;
    sub_t *v = realloc(s->v, nc * sizeof *v);
    if (!v) {
      snprintf(msg, cap, "out of memory");
      return EW_ENOMEM;
    }
    s->v = v, s->cap = nc;
  }
  sub_t *sub = &s->v[s->n];
  memset(sub, 0, sizeof *sub);
  if (EWP_HAS(r, EWP_SUBSCRIBE_metrics)) {
    if (!(sub->metrics = calloc(r->metrics.n, sizeof *sub->metrics))) {
      snprintf(msg, cap, "out of memory");
      return EW_ENOMEM;
    }
    for (size_t i = 0; i < r->metrics.n; i++)
      snprintf(sub->metrics[i], sizeof sub->metrics[i], "%.*s", (int)r->metrics.v[i].n,
               r->metrics.v[i].p);
    sub->nmetrics = r->metrics.n;
  }
  if ((sub->has_run = EWP_HAS(r, EWP_RUN_BIT)))
    memcpy(sub->run, r->run.p, r->run.n);
  if ((sub->has_glob = EWP_HAS(r, EWP_SUBSCRIBE_stream)))
    memcpy(sub->glob, r->stream.p, r->stream.n);
  sub->id = ++s->next_id;
  sub->conn = c;
  ewd_conn_ref(c);
  s->n++;
  *id = sub->id;
  return 0;
}

bool ewd_subs_remove(ewd_server_t *srv, ewd_conn_t *c, uint64_t id) {
  ewd_subs_t *s = srv->subs;
  for (size_t i = 0; s && i < s->n; i++)
    if (s->v[i].id == id && s->v[i].conn == c) {
      sub_free(&s->v[i]);
      s->v[i] = s->v[--s->n];
      return true;
    }
  return false;
}

size_t ewd_subs_count(ewd_server_t *srv) {
  purge(srv);
  return srv->subs ? srv->subs->n : 0;
}

void ewd_subs_free(ewd_server_t *srv) {
  ewd_subs_t *s = srv->subs;
  if (!s)
    return;
  for (size_t i = 0; i < s->n; i++)
    sub_free(&s->v[i]);
  free(s->v);
  free(s);
  srv->subs = NULL;
}
