/* view/kinds.c — what the metrics of tokens and stats streams read: the stream's tokens view
 * (acc/tokens_acc.c) or cells view (acc/stats_acc.c) of a source, opened on a workspace, and the
 * workspace they held recorded as the stream's, as a matrix view's close does. */
#include "view_priv.h"

int ew__view_kind_open(ew_stream_t *s, ew_source_t src, ew__tview_t *tv, ew__cview_t *cv,
                       ew__ws_t *ws) {
  ew__acc_t *a = ew__stream_acc(s, EW_SOURCE_ALL);
  if (ew__acc_is_stats(a))
    return ew__acc_stats_view(a, src, cv, ws);
  if (ew__acc_is_tokens(a))
    return ew__acc_tokens_view(a, src, tv, ws);
  if (ew__acc_is_paired(a)) /* its metrics ask view/paired.c for what they read */
    return src == EW_SOURCE_ALL ? 0 : EW_EBADPARAM;
  return EW_EBADPARAM;
}

int ew__view_kind_column(ew__tview_t *tv, size_t c, ew__ws_t *ws, const double **out) {
  return ew__acc_tokens_column(tv, c, ws, out);
}

int ew__view_kind_quantile(ew__tview_t *tv, size_t c, double level, ew__ws_t *ws, double *out) {
  return ew__acc_tokens_quantile(tv, c, level, ws, out);
}

void ew__view_kind_close(ew_stream_t *s, size_t peak) { ew__stream_ws_used(s, peak); }
