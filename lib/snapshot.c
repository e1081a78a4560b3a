/* snapshot.c — what a set of queries reads from a stream, copied so that they can be answered
 * later, on any thread, while the stream goes on changing (ew_stream_snapshot). The queries
 * decide the copy through the metric table's columns (its sources and needs): per source the
 * view's moments (or a sketch) when the matrix is read from them, the rows when a metric or the
 * route (fewer rows than d, window_cn) reads rows — O(d²) or the rows asked for, never the
 * stream's whole state and nothing serialised. A window tail whose moments the window does not
 * keep is copied as rows, and its moments are built by the snapshot's first query, on the
 * thread that answers it. The copy lives in a stream of frozen kinds
 * (acc/frozen.c), so every query runs the code it runs on the stream itself. */
#include "ew_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct ew_snapshot {
  ew_stream_t *s;               /* frozen kinds; count, epoch, config as the source's */
  bool had[EW__NROLES];         /* the source stream kept this role */
  uint64_t tail;                /* the window rows copied (window sources) */
  uint64_t win_total;           /* the window's rows ever pushed then: the tail is rows
                                   [win_total − tail, win_total) */
};

static int role_of(ew_source_t src) { return src == EW_SOURCE_ALL ? EW__ROLE_ALL : EW__ROLE_WINDOW; }

/* A query's source, resolved as ew_stream_query resolves it, or -1 (the query will refuse). */
static int source_of(const ew_metric_info_t *info, const ew_query_t *q) {
  ew_source_t src = q->source == EW_SOURCE_DEFAULT ? info->def_source : q->source;
  return src >= 0 && src < EW__NCACHE && (info->sources & EW_SOURCE_BIT(src)) ? (int)src : -1;
}

static uint64_t tail_of(const ew_query_t *q, uint64_t held) {
  return q->window_rows && q->window_rows < held ? q->window_rows : held;
}

EW_EXPORT int ew_stream_snapshot(ew_stream_t *s, const ew_query_t *qs, size_t nq,
                                 ew_snapshot_t **out) {
  *out = NULL;
  if (s->cfg.stream_kind != EW_STREAM_MATRIX)
    return EW_EBADPARAM; /* a tokens stream's metrics are answered on the stream */
  size_t d = s->d;
  uint64_t held = ew_stream_window_count(s), tail = held;
  int want[EW__NROLES] = {0};
  bool has_tail = false, all = false;
  for (size_t i = 0; i < nq; i++) {
    const ew_metric_info_t *info = ew_metric_find(qs[i].metric);
    int src = info ? source_of(info, &qs[i]) : -1;
    if (src < 0)
      continue;
    if (src == EW_SOURCE_ALL) {
      all = true;
      continue;
    }
    uint64_t n = tail_of(&qs[i], held);
    if (has_tail && n != tail)
      return EW_EBADPARAM;
    tail = n, has_tail = true;
    if (src == EW_SOURCE_WINDOW_CN || (info->needs & EW_NEED_ROWS) || n < d)
      want[EW__ROLE_WINDOW] |= EW__WANT_ROWS;
    if (src == EW_SOURCE_WINDOW && n >= d)
      want[EW__ROLE_WINDOW] |= EW__WANT_MOMENTS;
  }
  /* source all of a stream whose window holds every row, fewer than d: its spectrum is read from
   * the window's rows (the dual Gram), so they come too when no window query asks another tail */
  bool all_small = false;
  if (all) {
    want[EW__ROLE_ALL] |= EW__WANT_MOMENTS;
    if (ew__stream_all_in_window(s) && held < d && (!has_tail || tail == held)) {
      all_small = true;
      tail = held;
      want[EW__ROLE_WINDOW] |= EW__WANT_ROWS;
    }
  }
  /* moments the window does not keep on this tail: copy the rows instead (n×d f32, a memcpy)
   * and let the snapshot build the moments where it is solved, off the stream's path */
  if ((want[EW__ROLE_WINDOW] & EW__WANT_MOMENTS) && s->acc[EW__ROLE_WINDOW] &&
      !ew__window_kept(s->acc[EW__ROLE_WINDOW], tail))
    want[EW__ROLE_WINDOW] = (want[EW__ROLE_WINDOW] & ~EW__WANT_MOMENTS) | EW__WANT_ROWS;
  ew_snapshot_t *sn = calloc(1, sizeof *sn);
  ew_stream_t *f = calloc(1, sizeof *f);
  ew__ws_t *ws = ew__ws_thread();
  if (!sn || !f || !ws) {
    free(sn);
    free(f);
    return EW_ENOMEM;
  }
  sn->s = f;
  sn->tail = tail;
  sn->win_total = s->acc[EW__ROLE_WINDOW] ? ew__window_total(s->acc[EW__ROLE_WINDOW]) : 0;
  f->cfg = s->cfg;
  f->d = d;
  f->count = s->count;
  f->epoch = s->epoch;
  f->window_rounded = s->window_rounded;
  f->frozen = true;
  f->frozen_window_count = held;
  f->frozen_all_in_window = all_small;
  int rc = 0;
  ew__ws_mark_t mk = ew__ws_begin(ws);
  for (int r = 0; r < EW__NROLES && rc == 0; r++) {
    sn->had[r] = s->acc[r] != NULL;
    if (want[r] && s->acc[r])
      f->acc[r] = ew__acc_frozen_new(s->acc[r], d, want[r],
                                     r == EW__ROLE_WINDOW ? tail : 0, ws, &rc);
  }
  if (rc == 0 && s->topk_warm && s->topk_warm_k) {
    if ((f->topk_warm = malloc(s->topk_warm_k * d * sizeof(double))) != NULL) {
      memcpy(f->topk_warm, s->topk_warm, s->topk_warm_k * d * sizeof(double));
      f->topk_warm_k = s->topk_warm_k;
    } /* else: a cold start, the same answer */
  }
  if (want[EW__ROLE_WINDOW] & EW__WANT_MOMENTS)
    ew__stream_window_asked(s);
  ew__stream_ws_used(s, ew__ws_end(ws, mk));
  if (rc) {
    ew_snapshot_free(sn);
    return rc;
  }
  *out = sn;
  return 0;
}

static int refuse(ew_result_t *out, const char *fmt, const char *a) {
  memset(out, 0, sizeof *out);
  out->code = EW_EBADPARAM;
  snprintf(out->message, sizeof out->message, fmt, a);
  return EW_EBADPARAM;
}

EW_EXPORT int ew_snapshot_query(ew_snapshot_t *sn, const ew_query_t *q, ew_result_t *out) {
  const ew_metric_info_t *info = ew_metric_find(q->metric);
  int src = info ? source_of(info, q) : -1;
  if (src >= 0) { /* else the query refuses as it does on a stream */
    int r = role_of((ew_source_t)src);
    if (info->needs & EW_NEED_LIVE)
      return refuse(out, "'%s' reads the stream's live estimate, which a snapshot does not hold: "
                    "query the stream", info->name);
    if (sn->had[r] && (!sn->s->acc[r] ||
                       (r == EW__ROLE_WINDOW && tail_of(q, sn->s->frozen_window_count) != sn->tail)))
      return refuse(out, "the snapshot was not taken for this query of '%s' (another source or "
                    "window_rows): take it with the query", info->name);
  }
  return ew_stream_query(sn->s, q, out);
}

EW_EXPORT int ew_stream_window_adopt(ew_stream_t *s, const ew_snapshot_t *sn) {
  ew__acc_t *w = s->acc[EW__ROLE_WINDOW];
  const ew__moments_t *m = sn->s->acc[EW__ROLE_WINDOW]
                               ? ew__acc_frozen_moments(sn->s->acc[EW__ROLE_WINDOW])
                               : NULL;
  if (!w || !m || sn->s->epoch != s->epoch)
    return 0;
  return ew__window_adopt(w, m, sn->win_total - sn->tail, sn->win_total) ? 1 : 0;
}

EW_EXPORT size_t ew_snapshot_bytes(const ew_snapshot_t *sn) {
  if (!sn)
    return 0;
  return sizeof *sn + ew_stream_memory(sn->s);
}

EW_EXPORT void ew_snapshot_free(ew_snapshot_t *sn) {
  if (!sn)
    return;
  ew_stream_free(sn->s);
  free(sn);
}
