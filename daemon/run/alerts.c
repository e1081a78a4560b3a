/* alerts.c — alert rules and their states (proto/PROTOCOL.md, "Alerts and subscriptions").
 *
 * Rules belong to a stream (create's or alert_set's `rules`). Metric rules watch one series of
 * the stream's eval list (by its `as` name, default its metric's) and are checked against each
 * evaluated point, in step order, on the loop: `below`/`above` a threshold, `drop` (the value
 * fell by more than the fraction `value` below the maximum of the last `steps` points, this one
 * included), `below_baseline` (below `value` × the mean of the first `baseline_steps` points
 * since the rule was set; quiet until those exist). Stream rules: `stale` (no batch accepted for
 * `value` seconds, checked four times a second) and `non_finite` (a batch was refused for a NaN
 * or an infinity; resolved by the next accepted batch). A rule that changes state is logged,
 * counted and sent to the subscribers (subs.c) as [2, "alert", [{run, stream, rule, state, step,
 * value, message}]].
 *
 * The states are saved with the rules (alerts_save.c): a rule firing at a stop is firing after
 * the restart, with the same step and time, and is neither counted nor sent again. */
#include "run/run.h"
#include "run/alerts_priv.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef ewd__rule_t rule_t;
static const char *const when_names[] = {EWP_ENUM_when};

void ewd__rules_free(rule_t *r, size_t n) {
  for (size_t i = 0; r && i < n; i++)
    free(r[i].ring);
  free(r);
}

void ewd_alerts_free(ewd_alerts_t *a) {
  if (!a)
    return;
  ewd__rules_free(a->rules, a->n);
  free(a);
}

/* Checks rule i's `metric` against st's series. Returns 0, or a code with a sentence. */
static int rule_series(const ewd_stream_t *st, const ewp_rule_t *r, size_t i, rule_t *d,
                       char *msg, size_t cap) {
  char esc[96], names[400];
  if (ewp_series_valid(r->metric.p, r->metric.n)) {
    memcpy(d->series, r->metric.p, r->metric.n);
    d->series[r->metric.n] = 0;
    if (ewd_eval_has(st, d->series))
      return 0;
  }
  /* a metric of the table that the stream does not evaluate under that name: BAD_PARAM (as
   * before series names); a name that is neither: UNKNOWN_METRIC */
  bool metric = r->metric.n == strlen(d->series) && ew_metric_find(d->series) != NULL;
  ewd_eval_names(st, names, sizeof names);
  snprintf(msg, cap, "rules[%zu]: '%s' is not a metric the stream evaluates: a rule watches one "
           "of its series (%s), each named by its eval entry's 'as', else its metric's name", i,
           ewp_escape(esc, 64, r->metric.p, r->metric.n), names[0] ? names : "none");
  return metric ? EW_EBADPARAM : EW_EUNKMETRIC;
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
  uint64_t ring = 0;
  for (size_t i = 0; i < rules->n; i++) {
    const ewp_rule_t *r = &rules->v[i];
    rule_t *d = &v[i];
    memcpy(d->name, r->name.p, r->name.n);
    d->when = r->when;
    d->value = r->value;
    d->steps = EWP_HAS(r, EWP_RULE_steps) ? (uint32_t)r->steps : 10;
    d->baseline_steps = EWP_HAS(r, EWP_RULE_baseline_steps) ? (uint32_t)r->baseline_steps : 10;
    d->has_after = EWP_HAS(r, EWP_RULE_after_step);
    d->after_step = d->has_after ? r->after_step : 0;
    int rc = EWP_HAS(r, EWP_RULE_metric) ? rule_series(st, r, i, d, msg, cap) : 0;
    if (!rc && d->when == EWD__W_DROP && (ring += d->steps) > EWD_ALERTS_RING_MAX) {
      snprintf(msg, cap, "rules: the drop rules keep %llu recent values in all (the sum of their "
               "'steps'), over %d: their values are saved with the stream",
               (unsigned long long)ring, EWD_ALERTS_RING_MAX);
      rc = EW_EBADPARAM;
    }
    if (!rc && d->when == EWD__W_DROP && !(d->ring = calloc(d->steps, sizeof *d->ring))) {
      snprintf(msg, cap, "out of memory");
      rc = EW_ENOMEM;
    }
    if (rc) {
      ewd__rules_free(v, rules->n);
      free(a);
      return rc;
    }
  }
  a->rules = v;
  a->n = rules->n;
  ewd_alerts_free(st->alerts);
  st->alerts = a;
  ewd_expo_stale(st);
  return 0;
}

/* Logs, counts and notifies a rule's change of state. */
static void send_alert(ewd_server_t *srv, const ewd_stream_t *st, const rule_t *r, uint64_t step,
                       bool has_step, double value, const char *message) {
  ewd_log(r->firing ? EWD_LOG_WARN : EWD_LOG_INFO, r->firing ? "alert firing" : "alert resolved",
          "run=\"%s\" stream=\"%s\" rule=\"%s\" step=%llu value=%.6g detail=\"%s\"", st->run,
          st->name, r->name, (unsigned long long)step, value, message);
  srv->stat[r->firing ? EWD_STAT_alerts_fired : EWD_STAT_alerts_resolved]++;
  /* the notification's message names where and when, as the log line does (an event keeps it) */
  char full[1024];
  if (has_step)
    snprintf(full, sizeof full, "run %s, stream %s, step %llu: %s", st->run, st->name,
             (unsigned long long)step, message);
  else
    snprintf(full, sizeof full, "run %s, stream %s: %s", st->run, st->name, message);
  ewd__subs_alert(srv, st, r, step, has_step, value, full);
  ewd_alert_event_t e = {.time = ewd_wall_now(), .firing = r->firing, .has_step = has_step,
                         .step = step, .value = value};
  snprintf(e.run, sizeof e.run, "%s", st->run);
  snprintf(e.stream, sizeof e.stream, "%s", st->name);
  snprintf(e.rule, sizeof e.rule, "%s", r->name);
  size_t len = strnlen(full, sizeof e.message - 1); /* names where and when, as sent */
  memcpy(e.message, full, len);
  e.message[len] = 0;
  ewd_alert_event(srv, &e, true);
}

/* Checks one metric rule against a new value. Returns true when its state changed (msg says
 * why). */
static bool check_metric(rule_t *r, double v, char *msg, size_t cap) {
  bool fire = false;
  double ref = 0;
  switch (r->when) {
  case EWD__W_BELOW:
    fire = v < r->value;
    snprintf(msg, cap, "%s %.6g %s %.6g", r->series, v, fire ? "is below" : "is at or above",
             r->value);
    break;
  case EWD__W_ABOVE:
    fire = v > r->value;
    snprintf(msg, cap, "%s %.6g %s %.6g", r->series, v, fire ? "is above" : "is at or below",
             r->value);
    break;
  case EWD__W_DROP:
    r->ring[r->at] = v;
    r->at = (r->at + 1) % r->steps;
    if (r->nring < r->steps)
      r->nring++;
    ref = -INFINITY;
    for (uint32_t i = 0; i < r->nring; i++)
      ref = fmax(ref, r->ring[i]);
    fire = ref > 0 && v < (1 - r->value) * ref;
    snprintf(msg, cap, "%s %.6g is %.1f%% below its maximum %.6g over the last %u points "
             "(threshold %.1f%%)", r->series, v, ref > 0 ? 100 * (1 - v / ref) : 0.0, ref,
             r->nring, 100 * r->value);
    break;
  case EWD__W_BASELINE:
    if (r->base_n < r->baseline_steps) {
      r->base_sum += v;
      r->base_n++;
      return false;
    }
    ref = r->base_sum / r->base_n;
    fire = v < r->value * ref;
    snprintf(msg, cap, "%s %.6g is %s %.3g × its baseline %.6g (the mean of its first %u points)",
             r->series, v, fire ? "below" : "at or above", r->value, ref, r->base_n);
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
  bool moved = false;
  for (size_t i = 0; a && i < a->n; i++) {
    rule_t *r = &a->rules[i];
    if (r->has_after && pt->step < r->after_step)
      continue; /* the warm-up: early training's compression is not a collapse */
    for (size_t k = 0; r->series[0] && k < n; k++) {
      if (strcmp(hv[k].metric, r->series) != 0 || hv[k].res->kind != EW_VALUE_SCALAR)
        continue;
      char msg[300];
      double v = hv[k].res->scalar;
      moved = true;
      if (!check_metric(r, v, msg, sizeof msg))
        continue;
      ewd_expo_stale(st);
      if (r->firing)
        r->fired_step = pt->step, r->fired_time = pt->time;
      send_alert(srv, st, r, pt->step, true, v, msg);
    }
  }
  if (moved) /* the states are saved with the stream: the next snapshot round takes them */
    st->changes++;
  ewd__subs_metrics(srv, st, pt, hv, n);
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
    ewd_expo_stale(st);
    r->has_last = true;
    r->last_value = value;
    if (fire)
      r->fired_step = st->last_step, r->fired_time = ewd_wall_now();
    st->changes++;
    send_alert(srv, st, r, st->last_step, st->has_last_step, value, msg);
  }
}

void ewd_alerts_batch(ewd_server_t *srv, ewd_stream_t *st, int rc) {
  if (!st->alerts)
    return;
  if (rc == EW_ENONFINITE)
    stream_rule(srv, st, EWD__W_NONFINITE, true, 1, "a batch was refused: it held a NaN or an "
                "infinity");
  else if (rc == 0)
    stream_rule(srv, st, EWD__W_NONFINITE, false, 0, "a batch was accepted after the refused one");
}

void ewd_alerts_tick(ewd_server_t *srv) {
  double now = ewd_wall_now();
  for (size_t s = 0; s < srv->reg.n; s++) {
    ewd_stream_t *st = srv->reg.items[s];
    ewd_alerts_t *a = st->alerts;
    for (size_t i = 0; a && i < a->n; i++) {
      rule_t *r = &a->rules[i];
      if (r->when != EWD__W_STALE || st->last_ingest <= 0)
        continue;
      double idle = now - st->last_ingest;
      bool fire = idle > r->value;
      if (fire == r->firing)
        continue;
      char msg[160];
      snprintf(msg, sizeof msg, fire ? "no batch for %.1f s (the rule allows %.6g s)"
                                     : "a batch came after %.1f s (the rule allows %.6g s)",
               idle, r->value);
      stream_rule(srv, st, EWD__W_STALE, fire, idle, msg);
    }
  }
}

/* ---- what `alerts` and /metrics see ---- */

size_t ewd_alerts_count(const ewd_stream_t *st) { return st->alerts ? st->alerts->n : 0; }

void ewd_alert_state(const ewd_stream_t *st, size_t i, const char **rule, const char **metric,
                     const char **when, bool *firing) {
  const rule_t *r = &st->alerts->rules[i];
  *rule = r->name;
  *metric = r->series;
  *when = when_names[r->when];
  *firing = r->firing;
}

ewp_value_t ewd_alert_value(const ewd_stream_t *st, size_t i, ewp_kv_t *kv) {
  const rule_t *r = &st->alerts->rules[i];
  kv[0] = (ewp_kv_t){"run", ewp_vstr(st->run)};
  kv[1] = (ewp_kv_t){"stream", ewp_vstr(st->name)};
  kv[2] = (ewp_kv_t){"rule", ewp_vstr(r->name)};
  kv[3] = (ewp_kv_t){"metric", r->series[0] ? ewp_vstr(r->series) : (ewp_value_t){0}};
  kv[4] = (ewp_kv_t){"when", ewp_vstr(when_names[r->when])};
  kv[5] = (ewp_kv_t){"value", r->when != EWD__W_NONFINITE ? ewp_vf64(r->value)
                                                          : (ewp_value_t){0}};
  kv[6] = (ewp_kv_t){"state", ewp_vstr(r->firing ? "firing" : "ok")};
  kv[7] = (ewp_kv_t){"step", r->firing ? ewp_vu64(r->fired_step) : (ewp_value_t){0}};
  kv[8] = (ewp_kv_t){"since", r->firing ? ewp_vtime(r->fired_time) : (ewp_value_t){0}};
  kv[9] = (ewp_kv_t){"last_value", r->has_last ? ewp_vf64(r->last_value) : (ewp_value_t){0}};
  kv[10] = (ewp_kv_t){"after_step", r->has_after ? ewp_vu64(r->after_step) : (ewp_value_t){0}};
  return ewp_vmap(kv, EWD_ALERT_KV);
}
