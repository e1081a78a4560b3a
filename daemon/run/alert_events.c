/* alert_events.c — the ring of the last alert events (fired, resolved), oldest first: what the
 * `alerts` method's `events` and the page show, kept across restarts by the history (which hands
 * them back at start). Owner: the loop thread. */
#include "run/run.h"

#include <stdlib.h>

struct ewd_events {
  ewd_alert_event_t *v; /* EWD_ALERT_EVENTS_MAX slots */
  size_t n, at;         /* held, and where the next goes */
};

void ewd_alert_event(ewd_server_t *srv, const ewd_alert_event_t *e, bool keep) {
  ewd_events_t *ev = srv->events;
  if (!ev && (ev = calloc(1, sizeof *ev)) &&
      !(ev->v = calloc(EWD_ALERT_EVENTS_MAX, sizeof *ev->v))) {
    free(ev);
    ev = NULL;
  }
  srv->events = ev;
  if (ev) {
    ev->v[ev->at] = *e;
    ev->at = (ev->at + 1) % EWD_ALERT_EVENTS_MAX;
    if (ev->n < EWD_ALERT_EVENTS_MAX)
      ev->n++;
  }
  if (keep && srv->keep_event)
    srv->keep_event(srv, e);
}

size_t ewd_alert_events_count(const ewd_server_t *srv) {
  return srv->events ? srv->events->n : 0;
}

const ewd_alert_event_t *ewd_alert_event_at(const ewd_server_t *srv, size_t i) {
  const ewd_events_t *ev = srv->events;
  if (!ev || i >= ev->n)
    return NULL;
  return &ev->v[(ev->at + EWD_ALERT_EVENTS_MAX - ev->n + i) % EWD_ALERT_EVENTS_MAX];
}

void ewd_alert_events_free(ewd_server_t *srv) {
  if (srv->events)
    free(srv->events->v);
  free(srv->events);
  srv->events = NULL;
}
