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

void ewd_cmd_alerts(ewd_call_t *call) {
  const ewp_alerts_req_t *r = &call->req->u.alerts;
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
  ewp_kv_t top[] = {{"alerts", ewp_varray(items, k)}};
  ewp_value_t v = ewp_vmap(top, 1);
  ewd_reply(call, &v);
  free(kv);
  free(items);
}
