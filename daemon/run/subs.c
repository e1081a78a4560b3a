/* subs.c — subscriptions and their notifications (proto/PROTOCOL.md, "Alerts and
 * subscriptions").
 *
 * Subscriptions belong to a connection (each holds a reference to it; those of closed
 * connections are removed before and after each round of notifications): after each evaluation
 * the subscribers whose run, stream glob and series match get [2, "metrics", [{run, stream,
 * step, time, rows, ranks, partial, metrics}]], `metrics` mapping each series name to its value
 * and, for an estimate, "{series}_error" and "{series}_bracket" beside it (as `query` answers).
 * Alert changes (alerts.c) go out as [2, "alert", [{run, stream, rule, state, step, value,
 * message}]]. A subscriber whose unsent output passes conn_out_cap — counted as the memory that
 * holds it (net/conn.c) — is disconnected (a notification is never dropped silently, and memory
 * never grows for a reader that stopped). The connections are net/'s, reached through
 * srv->conn_hooks (core/conn.h): ref, unref, closing, and notify, which frames and sends a
 * notification or disconnects the subscriber (net/rpc.c). */
#include "core/conn.h"
#include "run/alerts_priv.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SUBS_MAX 4096
#define SUBS_PER_CONN 64

typedef struct {
  uint64_t id;
  ewd_conn_t *conn;
  bool has_run, has_glob;
  char run[EWD_NAME_MAX + 1];
  char glob[EWD_NAME_MAX + 1];
  char (*metrics)[EWP_SERIES_MAX + 1]; /* series names (none: every series) */
  size_t nmetrics;
} sub_t;

struct ewd_subs {
  sub_t *v;
  size_t n, cap;
  uint64_t next_id;
};

static ewd_subs_t *subs_of(ewd_server_t *srv) {
  if (!srv->subs)
    srv->subs = calloc(1, sizeof *srv->subs);
  return srv->subs;
}

static void sub_free(ewd_server_t *srv, sub_t *sub) {
  free(sub->metrics);
  srv->conn_hooks->unref(sub->conn);
}

/* Removes the subscriptions of closed connections. */
static void purge(ewd_server_t *srv) {
  ewd_subs_t *s = srv->subs;
  for (size_t i = 0; s && i < s->n;) {
    if (srv->conn_hooks->closing(s->v[i].conn)) {
      sub_free(srv, &s->v[i]);
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

void ewd__subs_alert(ewd_server_t *srv, const ewd_stream_t *st, const ewd__rule_t *r,
                     uint64_t step, bool has_step, double value, const char *message) {
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
    srv->conn_hooks->notify(subs->v[i].conn, "alert", &v);
  }
  purge(srv);
}

/* The keys beside a series' value: "{series}_error", "{series}_bracket". */
typedef char extra_names_t[2][EWP_SERIES_MAX + 10];

void ewd__subs_metrics(ewd_server_t *srv, const ewd_stream_t *st, const ewd_point_t *pt,
                       const ewd_hvalue_t *hv, size_t n) {
  purge(srv);
  ewd_subs_t *subs = srv->subs;
  if (!subs || !subs->n)
    return;
  if (n > EWP_EVAL_MAX)
    n = EWP_EVAL_MAX;
  extra_names_t names[EWP_EVAL_MAX];
  double br[EWP_EVAL_MAX][2];
  for (size_t k = 0; k < n; k++) {
    snprintf(names[k][0], sizeof names[k][0], "%s_error", hv[k].metric);
    snprintf(names[k][1], sizeof names[k][1], "%s_bracket", hv[k].metric);
    br[k][0] = hv[k].res->lo, br[k][1] = hv[k].res->hi;
  }
  for (size_t i = 0; i < subs->n; i++) {
    sub_t *sub = &subs->v[i];
    if (!sub_matches(sub, st))
      continue;
    ewp_kv_t mkv[3 * EWP_EVAL_MAX];
    size_t nm = 0, nseries = 0;
    for (size_t k = 0; k < n; k++) {
      bool want = sub->nmetrics == 0;
      for (size_t q = 0; !want && q < sub->nmetrics; q++)
        want = strcmp(sub->metrics[q], hv[k].metric) == 0;
      if (!want)
        continue;
      const ew_result_t *res = hv[k].res;
      nseries++;
      mkv[nm++] = (ewp_kv_t){hv[k].metric, res->kind == EW_VALUE_SCALAR
                                               ? ewp_vf64(res->scalar)
                                               : ewp_vf64s(res->list, res->len)};
      if (res->has_error) /* an estimate: its error bar (and certified bracket) beside it */
        mkv[nm++] = (ewp_kv_t){names[k][0], ewp_vf64(res->error)};
      if (res->has_bracket)
        mkv[nm++] = (ewp_kv_t){names[k][1], ewp_vf64s(br[k], 2)};
    }
    if (!nseries)
      continue;
    ewp_kv_t kv[] = {{"run", ewp_vstr(st->run)},          {"stream", ewp_vstr(st->name)},
                     {"step", ewp_vu64(pt->step)},         {"time", ewp_vf64(pt->time)},
                     {"rows", ewp_vu64(pt->rows)},         {"ranks", ewp_vu64(pt->ranks)},
                     {"partial", ewp_vbool(pt->nmissing)}, {"skipped", ewp_vu64(pt->skipped)},
                     {"metrics", ewp_vmap(mkv, nm)}};
    ewp_value_t v = ewp_vmap(kv, 9);
    srv->conn_hooks->notify(sub->conn, "metrics", &v);
  }
  purge(srv);
}

/* True when `name` is a metric of the table or a series of a visible stream that `sub` (run and
 * glob filled in) matches. */
static bool series_known(ewd_server_t *srv, const sub_t *sub, const char *name) {
  if (ew_metric_find(name))
    return true;
  for (size_t i = 0; i < srv->reg.n; i++) {
    const ewd_stream_t *st = srv->reg.items[i];
    if (!st->provisional && sub_matches(sub, st) && ewd_eval_has(st, name))
      return true;
  }
  return false;
}

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
  if ((sub->has_run = EWP_HAS(r, EWP_RUN_BIT)))
    memcpy(sub->run, r->run.p, r->run.n);
  if ((sub->has_glob = EWP_HAS(r, EWP_SUBSCRIBE_stream)))
    memcpy(sub->glob, r->stream.p, r->stream.n);
  if (EWP_HAS(r, EWP_SUBSCRIBE_metrics)) {
    if (!(sub->metrics = calloc(r->metrics.n, sizeof *sub->metrics))) {
      snprintf(msg, cap, "out of memory");
      return EW_ENOMEM;
    }
    for (size_t i = 0; i < r->metrics.n; i++) {
      const ewp_str_t *m = &r->metrics.v[i];
      char esc[96];
      if (!ewp_series_valid(m->p, m->n) ||
          (memcpy(sub->metrics[i], m->p, m->n), !series_known(srv, sub, sub->metrics[i]))) {
        snprintf(msg, cap, "no metric named '%s', nor a series of a stream this subscription "
                 "matches (the 'metrics' method lists the metrics; info's eval lists a stream's "
                 "series: subscribe to an 'as' name once its stream exists)",
                 ewp_escape(esc, 64, m->p, m->n));
        free(sub->metrics);
        return EW_EUNKMETRIC;
      }
    }
    sub->nmetrics = r->metrics.n;
  }
  sub->id = ++s->next_id;
  sub->conn = c;
  srv->conn_hooks->ref(c);
  s->n++;
  *id = sub->id;
  return 0;
}

bool ewd_subs_remove(ewd_server_t *srv, ewd_conn_t *c, uint64_t id) {
  ewd_subs_t *s = srv->subs;
  for (size_t i = 0; s && i < s->n; i++)
    if (s->v[i].id == id && s->v[i].conn == c) {
      sub_free(srv, &s->v[i]);
      s->v[i] = s->v[--s->n];
      return true;
    }
  return false;
}

size_t ewd_subs_count(ewd_server_t *srv) {
  purge(srv);
  return srv->subs ? srv->subs->n : 0;
}

void ewd_subs_gauges(ewd_server_t *srv) { srv->stat[EWD_STAT_subscriptions] = ewd_subs_count(srv); }

void ewd_subs_free(ewd_server_t *srv) {
  ewd_subs_t *s = srv->subs;
  if (!s)
    return;
  for (size_t i = 0; i < s->n; i++)
    sub_free(srv, &s->v[i]);
  free(s->v);
  free(s);
  srv->subs = NULL;
}
