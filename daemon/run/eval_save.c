/* eval_save.c — a stream's eval list as the rest of the daemon sees it: the latest values
 * (/metrics), the `info` map, the series names (for sentences), and the saved form in the
 * snapshot's training block. The schedule and the runs are eval.c. Owner: the loop thread. */
#include "run/run.h"
#include "run/eval_priv.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef ewd__spec_t spec_t;

size_t ewd_eval_latest(const ewd_stream_t *st, ewd_latest_t *out, size_t cap, double *time,
                       double *lag, uint64_t *coalesced) {
  const ewd_eval_t *ev = st->eval;
  size_t k = 0;
  for (size_t i = 0; ev && i < ev->n && k < cap; i++)
    if (ev->specs[i].has_last)
      out[k++] = (ewd_latest_t){ev->specs[i].series, ev->specs[i].last_value,
                                ev->specs[i].last_step, ev->specs[i].last_partial};
  if (time)
    *time = ev ? ev->last_time : 0;
  if (lag)
    *lag = ev ? ev->last_lag : 0;
  if (coalesced)
    *coalesced = ev ? ev->coalesced : 0;
  return k;
}

typedef struct {
  ewp_value_t items[EWP_EVAL_MAX];
  ewp_kv_t kv[EWP_EVAL_MAX][8];
  ewp_kv_t pkv[EWP_EVAL_MAX][EW_METRIC_MAX_PARAMS];
  ewd__spec_t *defaults; /* the default specs the value borrows names from (NULL: st->eval's) */
  ewp_kv_t cost[7];
  ewp_kv_t top[8];
} value_arena_t;

void ewd_eval_arena_free(void *arena) {
  value_arena_t *a = arena;
  if (a)
    free(a->defaults);
  free(a);
}

ewp_value_t ewd_eval_value(const ewd_stream_t *st, void **arena) {
  value_arena_t *a = calloc(1, sizeof *a);
  *arena = a;
  if (!a)
    return ewp_vnil();
  const ewd__spec_t *specs;
  size_t n;
  if (st->eval) {
    specs = st->eval->specs, n = st->eval->n;
  } else {
    char msg[64];
    if (ewd__eval_build(st, NULL, &a->defaults, &n, msg, sizeof msg))
      return ewp_vnil();
    specs = a->defaults; /* kept with the arena: the value borrows their series and keys (a
                            tokens stream's defaults name series after its columns) */
  }
  for (size_t i = 0; i < n && i < EWP_EVAL_MAX; i++) {
    const ewd__spec_t *sp = &specs[i];
    ewp_kv_t *kv = a->kv[i];
    for (size_t p = 0; p < sp->nparams; p++) {
      const ew_param_t *pv = &sp->params[p];
      a->pkv[i][p] = (ewp_kv_t){sp->pkeys[p],
                                pv->type == EW_PARAM_STRING ? ewp_vstr(pv->str)
                                : pv->type == EW_PARAM_BOOL ? ewp_vbool(pv->value != 0)
                                                            : ewp_vf64(pv->value)};
    }
    kv[0] = (ewp_kv_t){"metric", ewp_vstr(sp->info->name)};
    /* `as` only where it differs from the metric's name: without it the map is as before */
    kv[1] = (ewp_kv_t){"as", strcmp(sp->series, sp->info->name) != 0 ? ewp_vstr(sp->series)
                                                                     : (ewp_value_t){0}};
    kv[2] = (ewp_kv_t){"every", sp->every ? ewp_vu64(sp->every) : (ewp_value_t){0}};
    kv[3] = (ewp_kv_t){"every_rows", sp->every_rows ? ewp_vu64(sp->every_rows) : (ewp_value_t){0}};
    kv[4] = (ewp_kv_t){"every_s", sp->every_s > 0 ? ewp_vf64(sp->every_s) : (ewp_value_t){0}};
    kv[5] = (ewp_kv_t){"params", sp->nparams ? ewp_vmap(a->pkv[i], sp->nparams) : (ewp_value_t){0}};
    kv[6] = (ewp_kv_t){"source", sp->source != EW_SOURCE_DEFAULT
                                     ? ewp_vstr(ew_source_name(sp->source))
                                     : (ewp_value_t){0}};
    kv[7] = (ewp_kv_t){"center", sp->center >= 0 ? ewp_vbool(sp->center) : (ewp_value_t){0}};
    a->items[i] = ewp_vmap(kv, 8);
  }
  const ewd_eval_t *ev = st->eval;
  a->top[0] = (ewp_kv_t){"metrics", ewp_varray(a->items, n)};
  a->top[1] = (ewp_kv_t){"given", ewp_vbool(ev && ev->given)};
  a->top[2] = (ewp_kv_t){"evaluations", ewp_vu64(ev ? ev->evaluations : 0)};
  a->top[3] = (ewp_kv_t){"coalesced", ewp_vu64(ev ? ev->coalesced : 0)};
  a->top[4] = (ewp_kv_t){"failures", ewp_vu64(ev ? ev->failures : 0)};
  a->top[5] = (ewp_kv_t){"last_lag_s", ev && ev->evaluations ? ewp_vf64(ev->last_lag)
                                                             : (ewp_value_t){0}};
  a->top[6] = (ewp_kv_t){"busy", ewp_vbool(ev && ev->busy)};
  if (ev && ev->evaluations) { /* the latest evaluation's cost by part */
    a->cost[0] = (ewp_kv_t){"turn_ms", ewp_vf64(ev->cost.fork_ms)};
    a->cost[1] = (ewp_kv_t){"cheap_ms", ewp_vf64(ev->cost.cheap_ms)};
    a->cost[2] = (ewp_kv_t){"snapshot_ms", ewp_vf64(ev->cost.snap_ms)};
    a->cost[3] = (ewp_kv_t){"snapshot_bytes", ewp_vu64(ev->cost.snap_bytes)};
    a->cost[4] = (ewp_kv_t){"solve_ms", ewp_vf64(ev->cost.solve_ms)};
    a->cost[5] = (ewp_kv_t){"write_ms", ewp_vf64(ev->cost.write_ms)};
    a->cost[6] = (ewp_kv_t){"update_ms", ewp_vf64(ev->cost.update_ms)};
  }
  a->top[7] = (ewp_kv_t){"cost", ev && ev->evaluations ? ewp_vmap(a->cost, 7) : (ewp_value_t){0}};
  return ewp_vmap(a->top, 8);
}

size_t ewd_eval_names(const ewd_stream_t *st, char *out, size_t cap) {
  spec_t *defaults = NULL;
  const spec_t *specs = NULL;
  size_t n = 0, len = 0;
  char msg[64];
  if (st->eval)
    specs = st->eval->specs, n = st->eval->n;
  else if (ewd__eval_build(st, NULL, &defaults, &n, msg, sizeof msg) == 0)
    specs = defaults;
  if (cap)
    out[0] = 0;
  for (size_t i = 0; i < n && len + 1 < cap; i++) {
    int w = snprintf(out + len, cap - len, "%s%s", i ? ", " : "", specs[i].series);
    len = w < 0 ? len : len + (size_t)w >= cap ? cap - 1 : len + (size_t)w;
  }
  free(defaults);
  return n;
}


/* The saved form (a self-contained blob; 0 bytes: the defaults).
 *   layout 3: u8 EVAL_LAYOUT3, then layout 2's count and specs, each followed by its place in
 *             the schedule: u8 flags (1 due before, 2 a latest value, 4 that value partial),
 *             u64 the step (or row count) it was last due at, f64 seconds since it was last
 *             due by time (every_s; -1: never), f64 its latest value, u64 that value's step;
 *             after the specs u64 the row count at the last row- or time-driven evaluation and
 *             f64 the latest point's Unix time. So a restart goes on with the schedule where it
 *             was (every N steps keeps its phase; no extra point at the restart) and /metrics
 *             keeps the latest values;
 *   layout 2 (still read; the schedule starts over): u8 EVAL_LAYOUT2, u8 count, then per spec:
 *             u8 series length, series, and the layout-1 spec below;
 *   layout 1 (daemons before series names; still read): u8 count, then per spec: u8 name
 *             length, name, i8 source (-1 = the view's), i8 center, u64 every, u64 every_rows,
 *             f64 every_s, u8 nparams, then per parameter u8 key length, key, f64 value; each
 *             series is named after its metric.
 * A layout-1 blob starts with its count, at most EWP_EVAL_MAX: EVAL_LAYOUT2 is above it. */
#define EVAL_LAYOUT2 0xE2
#define EVAL_LAYOUT3 0xE3
_Static_assert(EWP_EVAL_MAX < EVAL_LAYOUT2, "a layout-1 count never reads as the layout-2 byte");
#define EVAL_PLACE_BYTES (1 + 8 + 8 + 8 + 8)

size_t ewd_eval_save(const ewd_stream_t *st, char *out, size_t cap) {
  const ewd_eval_t *ev = st->eval;
  if (!ev || !ev->given)
    return 0;
  char *q = out;
  size_t need = 2 + 8 + 8;
  for (size_t i = 0; i < ev->n; i++) {
    need += 1 + strlen(ev->specs[i].series) + 1 + strlen(ev->specs[i].info->name) + 2 + 24 + 1 +
            EVAL_PLACE_BYTES;
    for (size_t p = 0; p < ev->specs[i].nparams; p++)
      need += 1 + strlen(ev->specs[i].pkeys[p]) + 8 + 2 + strlen(ev->specs[i].pstrs[p]);
  }
  if (need > cap)
    return 0;
  uint8_t layout = EVAL_LAYOUT3, n = (uint8_t)ev->n;
  double now = ewd_now();
  EWD_PUT(q, layout);
  EWD_PUT(q, n);
  for (size_t i = 0; i < ev->n; i++) {
    const spec_t *sp = &ev->specs[i];
    uint8_t slen = (uint8_t)strlen(sp->series);
    uint8_t len = (uint8_t)strlen(sp->info->name);
    int8_t src = (int8_t)sp->source, center = (int8_t)sp->center;
    EWD_PUT(q, slen);
    memcpy(q, sp->series, slen), q += slen;
    EWD_PUT(q, len);
    memcpy(q, sp->info->name, len), q += len;
    EWD_PUT(q, src);
    EWD_PUT(q, center);
    EWD_PUT(q, sp->every);
    EWD_PUT(q, sp->every_rows);
    EWD_PUT(q, sp->every_s);
    uint8_t np = (uint8_t)sp->nparams;
    EWD_PUT(q, np);
    for (size_t p = 0; p < sp->nparams; p++) {
      uint8_t kl = (uint8_t)strlen(sp->pkeys[p]);
      EWD_PUT(q, kl);
      memcpy(q, sp->pkeys[p], kl), q += kl;
      if (sp->params[p].type == EW_PARAM_STRING) {
        uint16_t sl = (uint16_t)strlen(sp->pstrs[p]);
        EWD_PUT(q, sl);
        memcpy(q, sp->pstrs[p], sl), q += sl;
      } else {
        EWD_PUT(q, sp->params[p].value);
      }
    }
    uint8_t flags = (uint8_t)((sp->has_due ? 1 : 0) | (sp->has_last ? 2 : 0) |
                              (sp->last_partial ? 4 : 0));
    double age = sp->has_due && sp->every_s > 0 ? now - sp->due_time : -1;
    EWD_PUT(q, flags);
    EWD_PUT(q, sp->due_at);
    EWD_PUT(q, age);
    EWD_PUT(q, sp->last_value);
    EWD_PUT(q, sp->last_step);
  }
  EWD_PUT(q, ev->rows_at);
  EWD_PUT(q, ev->last_time);
  return (size_t)(q - out);
}

bool ewd_eval_load(ewd_stream_t *st, const char *b, size_t n) {
  size_t o = 0;
  uint8_t cnt;
  spec_t *v = NULL;
  bool layout3 = n > 0 && (uint8_t)b[0] == EVAL_LAYOUT3;
  bool layout2 = layout3 || (n > 0 && (uint8_t)b[0] == EVAL_LAYOUT2);
  uint64_t rows_at = 0;
  double last_time = 0, now = ewd_now();
  if (layout2)
    o = 1;
  EWD_GET(cnt);
  if (cnt > EWP_EVAL_MAX || !(v = calloc(cnt ? cnt : 1, sizeof *v)))
    goto bad;
  for (size_t i = 0; i < cnt; i++) {
    char name[64], series[EWP_SERIES_MAX + 1] = "";
    uint8_t len, np;
    int8_t src, center;
    if (layout2) {
      EWD_GET(len);
      if (n - o < len || !ewp_series_valid(b + o, len))
        goto bad;
      memcpy(series, b + o, len), o += len;
      series[len] = 0;
    }
    EWD_GET(len);
    if (len == 0 || len >= sizeof name || n - o < len)
      goto bad;
    memcpy(name, b + o, len), o += len;
    name[len] = 0;
    const ew_metric_info_t *info = ew_metric_find(name);
    if (!info)
      goto bad;
    ewd__spec_default(&v[i], info);
    if (layout2)
      memcpy(v[i].series, series, sizeof series);
    for (size_t k = 0; k < i; k++) /* series names are unique, as create made them */
      if (strcmp(v[k].series, v[i].series) == 0)
        goto bad;
    EWD_GET(src);
    EWD_GET(center);
    EWD_GET(v[i].every);
    EWD_GET(v[i].every_rows);
    EWD_GET(v[i].every_s);
    EWD_GET(np);
    if (src < -1 || src >= EW_SOURCE_COUNT || center < -1 || center > 1 ||
        np > EW_METRIC_MAX_PARAMS ||
        (v[i].every == 0) == (v[i].every_rows == 0 && !(v[i].every_s > 0)))
      goto bad;
    v[i].source = (ew_source_t)src, v[i].center = center;
    for (size_t p = 0; p < np; p++) {
      uint8_t kl;
      EWD_GET(kl);
      if (kl == 0 || kl >= sizeof v[i].pkeys[p] || n - o < kl)
        goto bad;
      memcpy(v[i].pkeys[p], b + o, kl), o += kl;
      v[i].pkeys[p][kl] = 0;
      const ew_param_info_t *pi = ew_metric_param(info, v[i].pkeys[p], kl);
      if (!pi)
        goto bad;
      ew_param_t *pv = &v[i].params[p];
      if (pi->type == EW_PARAM_STRING || pi->type == EW_PARAM_ENUM) {
        uint16_t sl;
        EWD_GET(sl);
        if (sl == 0 || sl > EWP_PARAM_STR_MAX || n - o < sl || memchr(b + o, 0, sl))
          goto bad;
        memcpy(v[i].pstrs[p], b + o, sl), o += sl;
        v[i].pstrs[p][sl] = 0;
        pv->type = EW_PARAM_STRING;
      } else {
        EWD_GET(pv->value);
        pv->type = pi->type == EW_PARAM_BOOL ? EW_PARAM_BOOL : EW_PARAM_NUMBER;
      }
      ewd__param_own(&v[i], p);
      double val; /* what was saved was checked when it was given: check it again */
      const char *str;
      if (ew_param_check(info, pi, pv, &val, &str, NULL, 0))
        goto bad;
      pv->value = val; /* as ewd_param_resolve keeps it (an enum: its index) */
      v[i].nparams++;
    }
    if (layout3) {
      uint8_t flags;
      double age;
      EWD_GET(flags);
      EWD_GET(v[i].due_at);
      EWD_GET(age);
      EWD_GET(v[i].last_value);
      EWD_GET(v[i].last_step);
      if (flags > 7 || !(age == -1 || (age >= 0 && age <= 1e12)))
        goto bad;
      v[i].has_due = flags & 1, v[i].has_last = (flags & 2) != 0;
      v[i].last_partial = (flags & 4) != 0;
      v[i].due_time = age >= 0 ? now - age : 0;
    }
  }
  if (layout3) {
    EWD_GET(rows_at);
    EWD_GET(last_time);
    if (!(last_time >= 0 && last_time <= 1e12))
      goto bad;
  }
  if (o != n)
    goto bad;
  ewd_eval_t *ev = ewd__eval_new(v, cnt, true);
  if (!ev)
    goto bad;
  ev->rows_at = rows_at;
  ev->last_time = last_time;
  ewd_eval_free(st->eval);
  st->eval = ev;
  ewd_expo_stale(st);
  return true;
bad:
  free(v);
  return false;
}
