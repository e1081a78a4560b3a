/* watch_draw.c — what `eigenwatch watch` shows (watch.c): the terminal view (each stream's
 * series as its latest value, a sparkline placed by step and its ranges; STALE marks; the firing
 * alerts), and --json's stale lines. */
#include "watch_priv.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

void watch_json_head(const watch_t *w, const wstream_t *s) {
  printf("{\"run\": ");
  json_str(stdout, w->run, strlen(w->run));
  printf(", \"stream\": ");
  json_str(stdout, s->name, strlen(s->name));
}

#define SPARK_BARS "▁▂▃▄▅▆▇█"

/* The last points of se placed by step over `width` columns, with their value and step ranges. */
static void draw_series(const watch_t *w, const char *metric, const series_t *se) {
  double lo = INFINITY, hi = -INFINITY;
  for (int i = 0; i < se->n; i++)
    if (isfinite(se->pts[i].v))
      lo = fmin(lo, se->pts[i].v), hi = fmax(hi, se->pts[i].v);
  double cell[WMAX];
  int has[WMAX] = {0};
  uint64_t x0 = se->n ? se->pts[0].x : 0, x1 = se->n ? se->pts[se->n - 1].x : 0;
  for (int i = 0; i < se->n; i++) {
    int col = x1 > x0 ? (int)((double)(se->pts[i].x - x0) / (double)(x1 - x0) *
                              (w->width - 1) + 0.5)
                      : w->width - 1;
    cell[col] = se->pts[i].v;
    has[col] = 1;
  }
  printf("  %-20s %13.6g  ", metric, se->n ? se->pts[se->n - 1].v : NAN);
  for (int col = 0; col < w->width; col++) {
    if (!has[col]) {
      fputc(' ', stdout);
      continue;
    }
    int b = (!isfinite(cell[col]) || hi <= lo) ? 3 : (int)((cell[col] - lo) / (hi - lo) * 7 + .5);
    b = b < 0 ? 0 : b > 7 ? 7 : b;
    fwrite(SPARK_BARS + 3 * b, 1, 3, stdout);
  }
  if (!se->n)
    printf("  (no point yet%s%s)\n", se->why[0] ? ": " : "", se->why);
  else
    printf("  [%.4g .. %.4g]  %s %llu..%llu%s\n", lo, hi, se->rows_axis ? "rows" : "steps",
           (unsigned long long)x0, (unsigned long long)x1, se->polled ? " (polled)" : "");
}

static double stale_after(const watch_t *w, const wstream_t *s) {
  if (w->stale > 0)
    return w->stale;
  double gaps[WMAX], g = 0; /* 5 × the median gap between recent points, at least 30 s */
  int n = 0;
  const series_t *se = &s->s[0];
  for (int i = 1; i < se->n; i++)
    gaps[n++] = se->pts[i].t - se->pts[i - 1].t;
  for (int i = 0; i < n; i++) /* a small insertion sort */
    for (int j = i; j > 0 && gaps[j] < gaps[j - 1]; j--)
      g = gaps[j], gaps[j] = gaps[j - 1], gaps[j - 1] = g;
  g = n ? 5 * gaps[n / 2] : 0;
  return g > 30 ? g : 30;
}

void watch_draw(watch_t *w, int tty) {
  if (tty)
    fputs("\033[H\033[2J", stdout);
  printf("eigenwatch watch — run %s — every %.3gs%s\n", w->run, w->interval,
         tty ? " (Ctrl-C to stop)" : "");
  if (w->status[0])
    printf("%s\n", w->status);
  double now = watch_now();
  for (int i = 0; i < w->nst; i++) {
    wstream_t *s = &w->st[i];
    printf("%s", s->name);
    if (!s->live)
      printf("  (gone)");
    if (s->last_t > 0 && s->step_axis)
      printf("  step %llu", (unsigned long long)s->step);
    if (s->last_t > 0 && s->ranks)
      printf("  rows %llu  ranks %llu%s  lag %.2fs", (unsigned long long)s->rows,
             (unsigned long long)s->ranks, s->partial ? " (partial)" : "", s->lag);
    if (s->last_t > 0 && now - s->last_t > stale_after(w, s))
      printf("  STALE: no new point for %.0fs", now - s->last_t);
    printf("\n");
    for (int k = 0; k < w->nmetrics; k++)
      draw_series(w, w->metrics[k], &s->s[k]);
  }
  if (w->more)
    printf("(%d more matching streams not shown)\n", w->more);
  fputs(w->alerts, stdout);
  fflush(stdout);
}

/* --json: a line when a stream turns stale. */
void watch_json_stale(watch_t *w) {
  double now = watch_now();
  for (int i = 0; i < w->nst; i++) {
    wstream_t *s = &w->st[i];
    if (s->last_t > 0 && !s->stale_said && now - s->last_t > stale_after(w, s)) {
      watch_json_head(w, s);
      printf(", \"stale\": true, \"age_s\": %.3f}\n", now - s->last_t);
      s->stale_said = 1;
    }
  }
  fflush(stdout);
}
