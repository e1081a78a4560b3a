/* alerts.c — subscribe, unsubscribe, alert_set, alerts: the handlers of alerts.c's rules and
 * subs.c's subscriptions. */
#include "cmd/cmd.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void ewd_cmd_subscribe(ewd_call_t *call) {
  const ewp_subscribe_req_t *r = &call->req->u.subscribe;
  char msg[300];
  /* `metrics` are series names, checked by ewd_subs_add against the matching streams */
  uint64_t id;
  int rc = ewd_subs_add(call->srv, call->conn, r, &id, msg, sizeof msg);
  if (rc) {
    ewd_fail(call, rc, "%s", msg);
    return;
  }
  ewp_kv_t kv[] = {{"subscription", ewp_vu64(id)}};
  ewp_value_t v = ewp_vmap(kv, 1);
  ewd_reply(call, &v);
}

void ewd_cmd_unsubscribe(ewd_call_t *call) {
  uint64_t id = call->req->u.unsubscribe.subscription;
  if (!ewd_subs_remove(call->srv, call->conn, id)) {
    ewd_fail(call, EW_EBADPARAM, "this connection has no subscription %llu",
             (unsigned long long)id);
    return;
  }
  ewp_kv_t kv[] = {{"subscription", ewp_vu64(id)}, {"removed", ewp_vbool(true)}};
  ewp_value_t v = ewp_vmap(kv, 2);
  ewd_reply(call, &v);
}

void ewd_cmd_alert_set(ewd_call_t *call) {
  const ewp_alert_set_req_t *r = &call->req->u.alert_set;
  ewd_stream_t *st = ewd_cmd_stream(call, EWD_KEY(r));
  if (!st)
    return;
  char msg[256];
  int rc = ewd_alerts_set(st, &r->rules, msg, sizeof msg);
  if (rc) {
    ewd_fail(call, rc, "%s", msg);
    return;
  }
  st->changes++; /* the rules are saved with the stream */
  ewp_kv_t kv[] = {{"stream", ewp_vstr(st->name)}, {"rules", ewp_vu64(ewd_alerts_count(st))}};
  ewp_value_t v = ewp_vmap(kv, 2);
  ewd_reply(call, &v);
}

#define EVENT_KV 8
/* One alert event as `alerts` answers it (kv: EVENT_KV entries). */
static ewp_value_t event_value(const ewd_alert_event_t *e, ewp_kv_t *kv) {
  kv[0] = (ewp_kv_t){"time", ewp_vf64(e->time)};
  kv[1] = (ewp_kv_t){"run", ewp_vstr(e->run)};
  kv[2] = (ewp_kv_t){"stream", ewp_vstr(e->stream)};
  kv[3] = (ewp_kv_t){"rule", ewp_vstr(e->rule)};
  kv[4] = (ewp_kv_t){"state", ewp_vstr(e->firing ? "firing" : "resolved")};
  kv[5] = (ewp_kv_t){"step", e->has_step ? ewp_vu64(e->step) : ewp_vnil()};
  kv[6] = (ewp_kv_t){"value", ewp_vf64(e->value)};
  kv[7] = (ewp_kv_t){"message", ewp_vstr(e->message)};
  return ewp_vmap(kv, EVENT_KV);
}

void ewd_cmd_alerts(ewd_call_t *call) {
  const ewp_alerts_req_t *r = &call->req->u.alerts;
  if (EWP_HAS(r, EWP_ALERTS_events) && r->events > EWD_ALERT_EVENTS_MAX) {
    ewd_fail(call, EW_EBADPARAM, "'events' must be a count of events (0–%d): the daemon keeps "
             "the last %d", EWD_ALERT_EVENTS_MAX, EWD_ALERT_EVENTS_MAX);
    return;
  }
  ewd_registry_t *reg = &call->srv->reg;
  ewd_stream_t *one = NULL;
  if (EWP_HAS(r, EWP_ALERTS_stream) && !(one = ewd_cmd_stream(call, EWD_KEY(r))))
    return;
  size_t n = 0;
  for (size_t i = 0; i < reg->n; i++)
    n += ewd_alerts_count(reg->items[i]);
  ewp_kv_t *kv = malloc((n ? n : 1) * EWD_ALERT_KV * sizeof *kv);
  ewp_value_t *items = malloc((n ? n : 1) * sizeof *items);
  if (!kv || !items) {
    free(kv);
    free(items);
    ewd_fail(call, EW_ENOMEM, "out of memory listing %zu alert rules", n);
    return;
  }
  size_t k = 0;
  for (size_t i = 0; i < reg->n; i++) {
    ewd_stream_t *st = reg->items[i];
    if (st->provisional || (one && st != one) ||
        (EWP_HAS(r, EWP_RUN_BIT) && (strlen(st->run) != r->run.n ||
                                     memcmp(st->run, r->run.p, r->run.n) != 0)))
      continue;
    for (size_t a = 0; a < ewd_alerts_count(st); a++, k++)
      items[k] = ewd_alert_value(st, a, kv + EWD_ALERT_KV * k);
  }
  size_t want = EWP_HAS(r, EWP_ALERTS_events) ? (size_t)r->events : 0;
  ewp_value_t *evs = NULL;
  ewp_kv_t *ekv = NULL;
  size_t ne = 0;
  if (want) {
    evs = malloc(want * sizeof *evs);
    ekv = malloc(want * EVENT_KV * sizeof *ekv);
    if (!evs || !ekv) {
      free(kv), free(items), free(evs), free(ekv);
      ewd_fail(call, EW_ENOMEM, "out of memory listing %zu alert events", want);
      return;
    }
    /* the newest `want` that match, then oldest first */
    size_t total = ewd_alert_events_count(call->srv);
    for (size_t i = total; i-- > 0 && ne < want;) {
      const ewd_alert_event_t *e = ewd_alert_event_at(call->srv, i);
      if ((one && (strcmp(e->stream, one->name) || strcmp(e->run, one->run))) ||
          (EWP_HAS(r, EWP_RUN_BIT) && (strlen(e->run) != r->run.n ||
                                       memcmp(e->run, r->run.p, r->run.n) != 0)))
        continue;
      ne++;
      evs[want - ne] = event_value(e, ekv + EVENT_KV * (want - ne));
    }
  }
  ewp_kv_t top[] = {{"alerts", ewp_varray(items, k)},
                    {"events", want ? ewp_varray(evs + want - ne, ne) : (ewp_value_t){0}}};
  ewp_value_t v = ewp_vmap(top, 2);
  ewd_reply(call, &v);
  free(kv);
  free(items);
  free(evs);
  free(ekv);
}
