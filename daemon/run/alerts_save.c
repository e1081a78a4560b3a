/* alerts_save.c — a stream's alert rules in the snapshot's training block, each with its state,
 * so that a restart continues every rule exactly where it was: a rule firing before a stop is
 * firing after it (same step, same `since`, not counted or sent again; /metrics' alert_firing
 * stays 1), a drop rule still has its recent values and a below_baseline rule its baseline.
 *
 * Layout 3 (written when a rule has a warm-up, `after_step`): layout 2 with the flags' bit 4
 * meaning "a warm-up" and a u64 after_step after each rule's last_value.
 * Layout 2 (written otherwise), all numbers little-endian:
 *   u8 ALERTS_LAYOUT2, u8 count, then per rule:
 *     u8 name length, name, u8 when, u8 series length (0: a stream rule), series,
 *     f64 value, u32 steps, u32 baseline_steps,
 *     u8 flags (1 = firing, 2 = has a last value), u64 fired_step, f64 fired_time (Unix s),
 *     f64 last_value,
 *     drop: u32 n, then its last n values, oldest first (n <= steps);
 *     below_baseline: u32 base_n, f64 base_sum.
 * Layout 1 (daemons before it; still read, the states then start over): u8 count, then per rule
 *   u8 name length, name, u8 when, u8 metric name length (0: none), metric name, f64 value,
 *   u32 steps, u32 baseline_steps. Its first byte is its count, at most EWP_RULES_MAX, so it is
 *   never ALERTS_LAYOUT2.
 *
 * The states belong to the loop thread; save runs there (persist.c builds the snapshot header on
 * the loop when it queues the stream's copy). A state that moves after that marks the stream
 * changed (alerts.c), so the next round saves it again; at a stop the last round starts once
 * every evaluation has finished, so it holds the final states. */
#include "run/run.h"
#include "run/alerts_priv.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef ewd__rule_t rule_t;

#define ALERTS_LAYOUT2 0xA2
#define ALERTS_LAYOUT3 0xA3
_Static_assert(EWP_RULES_MAX < ALERTS_LAYOUT2, "a layout-1 count never reads as the layout byte");
_Static_assert(EWD_ALERTS_SAVED_MAX >= EWD_ALERTS_RING_MAX * 8 +
                   EWP_RULES_MAX * (2 + EWP_RULE_NAME_MAX + 2 + EWP_SERIES_MAX + 16 + 25 + 8 + 12),
               "a stream's rules save within EWD_ALERTS_SAVED_MAX");


size_t ewd_alerts_save(const ewd_stream_t *st, char *out, size_t cap) {
  const ewd_alerts_t *a = st->alerts;
  if (!a || !a->n)
    return 0;
  size_t need = 2;
  bool warmup = false;
  for (size_t i = 0; i < a->n; i++) {
    const rule_t *r = &a->rules[i];
    warmup |= r->has_after;
    need += 3 + strlen(r->name) + strlen(r->series) + 16 + 25 + 8;
    need += r->when == EWD__W_DROP ? 4 + 8 * (size_t)r->nring
            : r->when == EWD__W_BASELINE ? 12 : 0;
  }
  if (need > cap)
    return 0;
  char *q = out;
  uint8_t layout = warmup ? ALERTS_LAYOUT3 : ALERTS_LAYOUT2, n = (uint8_t)a->n;
  EWD_PUT(q, layout);
  EWD_PUT(q, n);
  for (size_t i = 0; i < a->n; i++) {
    const rule_t *r = &a->rules[i];
    uint8_t len = (uint8_t)strlen(r->name), when = (uint8_t)r->when;
    uint8_t slen = (uint8_t)strlen(r->series);
    uint8_t flags = (uint8_t)((r->firing ? 1 : 0) | (r->has_last ? 2 : 0) |
                              (r->has_after ? 4 : 0));
    EWD_PUT(q, len);
    memcpy(q, r->name, len), q += len;
    EWD_PUT(q, when);
    EWD_PUT(q, slen);
    memcpy(q, r->series, slen), q += slen;
    EWD_PUT(q, r->value);
    EWD_PUT(q, r->steps);
    EWD_PUT(q, r->baseline_steps);
    EWD_PUT(q, flags);
    EWD_PUT(q, r->fired_step);
    EWD_PUT(q, r->fired_time);
    EWD_PUT(q, r->last_value);
    if (warmup)
      EWD_PUT(q, r->after_step);
    if (r->when == EWD__W_DROP) {
      EWD_PUT(q, r->nring);
      for (uint32_t k = 0; k < r->nring; k++) /* oldest first */
        EWD_PUT(q, r->ring[(r->at + r->steps - r->nring + k) % r->steps]);
    } else if (r->when == EWD__W_BASELINE) {
      EWD_PUT(q, r->base_n);
      EWD_PUT(q, r->base_sum);
    }
  }
  return (size_t)(q - out);
}

bool ewd_alerts_load(ewd_stream_t *st, const char *b, size_t n) {
  size_t o = 0;
  uint8_t cnt = 0;
  rule_t *v = NULL;
  bool layout3 = n > 0 && (uint8_t)b[0] == ALERTS_LAYOUT3;
  bool layout2 = layout3 || (n > 0 && (uint8_t)b[0] == ALERTS_LAYOUT2);
  if (layout2)
    o = 1;
  EWD_GET(cnt);
  if (cnt > EWP_RULES_MAX || !(v = calloc(cnt ? cnt : 1, sizeof *v)))
    goto bad;
  uint64_t ring = 0;
  for (size_t i = 0; i < cnt; i++) {
    rule_t *r = &v[i];
    uint8_t len, when, slen;
    EWD_GET(len);
    if (len == 0 || len > EWP_RULE_NAME_MAX || n - o < len)
      goto bad;
    memcpy(r->name, b + o, len), o += len;
    for (size_t k = 0; k < i; k++)
      if (strcmp(v[k].name, r->name) == 0)
        goto bad;
    EWD_GET(when);
    EWD_GET(slen);
    if (when > EWD__W_NONFINITE || slen > EWP_SERIES_MAX || n - o < slen ||
        (slen && !ewp_series_valid(b + o, slen)))
      goto bad;
    memcpy(r->series, b + o, slen), o += slen;
    bool stream_rule = when == EWD__W_STALE || when == EWD__W_NONFINITE;
    if ((slen == 0) != stream_rule || (slen && !layout2 && !ew_metric_find(r->series)))
      goto bad;
    r->when = when;
    EWD_GET(r->value);
    EWD_GET(r->steps);
    EWD_GET(r->baseline_steps);
    if (r->steps < 1 || r->steps > 65536 || r->baseline_steps < 1 || r->baseline_steps > 65536)
      goto bad;
    if (when == EWD__W_DROP && (!(r->ring = calloc(r->steps, sizeof *r->ring)) ||
                                (ring += r->steps) > EWD_ALERTS_RING_MAX))
      goto bad;
    if (!layout2)
      continue;
    uint8_t flags;
    EWD_GET(flags);
    EWD_GET(r->fired_step);
    EWD_GET(r->fired_time);
    EWD_GET(r->last_value);
    if (layout3)
      EWD_GET(r->after_step);
    if (flags > (layout3 ? 7 : 3) || (!(flags & 4) && r->after_step))
      goto bad;
    r->firing = flags & 1;
    r->has_last = (flags & 2) != 0;
    r->has_after = (flags & 4) != 0;
    if (when == EWD__W_DROP) {
      EWD_GET(r->nring);
      if (r->nring > r->steps || (n - o) / 8 < r->nring)
        goto bad;
      memcpy(r->ring, b + o, (size_t)r->nring * 8), o += (size_t)r->nring * 8;
      r->at = r->nring % r->steps;
    } else if (when == EWD__W_BASELINE) {
      EWD_GET(r->base_n);
      EWD_GET(r->base_sum);
      if (r->base_n > r->baseline_steps)
        goto bad;
    }
  }
  if (o != n)
    goto bad;
  ewd_alerts_t *a = calloc(1, sizeof *a);
  if (!a)
    goto bad;
  a->rules = v, a->n = cnt;
  ewd_alerts_free(st->alerts);
  st->alerts = a;
  ewd_expo_stale(st);
  return true;
bad:
  ewd__rules_free(v, cnt);
  return false;
}
