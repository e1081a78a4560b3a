/* merge_plan.c — how the windows of two training streams combine when their recent view is by
 * steps (window_steps S): the union's recent view is the rows of its last S completed steps,
 * each step's rows from both sides. Each side's ring names its last completed steps and their
 * row counts; those steps' rows are the newest rows of its window, oldest step first. The plan
 * lays the merged window out step by step (the stream's rows of a step, then the state's) and
 * gives the merged ring. Pure: no stream, no server. */
#include "run/run.h"

#include <stdio.h>

typedef struct {
  const ewd_step_rows_t *r;
  uint32_t n;
  uint64_t first; /* the oldest ring step's first row in the window; negative when evicted */
  int64_t skew;   /* window rows held − ring rows: < 0 when the oldest steps lost rows */
} side_t;

static side_t side(const ewd_step_rows_t *r, uint32_t n, uint64_t held) {
  uint64_t rows = 0;
  for (uint32_t i = 0; i < n; i++)
    rows += r[i].rows;
  return (side_t){r, n, held >= rows ? held - rows : 0, (int64_t)held - (int64_t)rows};
}

/* The span of ring entry i of s in its window (false: some of its rows were pushed out). */
static bool span_of(const side_t *s, uint32_t i, int from, ew_window_span_t *out) {
  int64_t at = s->skew;
  for (uint32_t k = 0; k < i; k++)
    at += (int64_t)s->r[k].rows;
  if (at < 0)
    return false;
  *out = (ew_window_span_t){from, (uint64_t)at, s->r[i].rows};
  return true;
}

int ewd_merge_plan(const ewd_step_rows_t *a, uint32_t na, uint64_t held_a,
                   const ewd_step_rows_t *b, uint32_t nb, uint64_t held_b, uint32_t S,
                   uint64_t cap, ew_window_span_t *spans, size_t *nspans, ewd_step_rows_t *ring,
                   uint32_t *nring, char *msg, size_t mcap) {
  *nspans = 0;
  *nring = 0;
  for (uint32_t i = 0; i < na + nb; i++) {
    const ewd_step_rows_t *e = i < na ? &a[i] : &b[i - na];
    if (e->step == EWD_STEP_UNKNOWN) {
      snprintf(msg, mcap, "the %s ring of completed steps was restored from a snapshot that did "
               "not record step numbers: merge once %u more steps have completed",
               i < na ? "stream's" : "state's", S);
      return EW_EBADPARAM;
    }
  }
  side_t sa = side(a, na, held_a), sb = side(b, nb, held_b);
  /* the union's last S steps: walk both rings from their newest end */
  uint32_t ia = na, ib = nb, take = 0;
  uint64_t last = EWD_STEP_UNKNOWN;
  while (take < S && (ia || ib)) {
    uint64_t x = ia ? a[ia - 1].step : 0, y = ib ? b[ib - 1].step : 0;
    uint64_t step = !ib || (ia && x >= y) ? x : y;
    if (ia && a[ia - 1].step == step)
      ia--;
    if (ib && b[ib - 1].step == step)
      ib--;
    if (step != last)
      take++, last = step;
  }
  /* from the oldest of them up: each step's rows from the stream, then from the state */
  uint64_t total = 0;
  while (ia < na || ib < nb) {
    uint64_t x = ia < na ? a[ia].step : UINT64_MAX, y = ib < nb ? b[ib].step : UINT64_MAX;
    uint64_t step = x < y ? x : y, rows = 0;
    for (int from = 0; from < 2; from++) {
      const side_t *s = from ? &sb : &sa;
      uint32_t *k = from ? &ib : &ia;
      if (*k >= s->n || s->r[*k].step != step)
        continue;
      ew_window_span_t sp;
      if (!span_of(s, *k, from, &sp)) {
        snprintf(msg, mcap, "step %llu's rows are no longer all in the %s window: the union's "
                 "last %u steps are not known from it", (unsigned long long)step,
                 from ? "state's" : "stream's", S);
        return EW_EBADPARAM;
      }
      if (sp.rows)
        spans[(*nspans)++] = sp;
      rows += sp.rows;
      (*k)++;
    }
    ring[(*nring)++] = (ewd_step_rows_t){step, rows};
    total += rows;
  }
  if (total > cap) {
    snprintf(msg, mcap, "the union's last %u steps hold %llu rows, more than the window's %llu",
             S, (unsigned long long)total, (unsigned long long)cap);
    return EW_EBADPARAM;
  }
  return 0;
}
