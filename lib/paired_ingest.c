/* paired_ingest.c — what a paired stream (acc/paired.c) offers beyond rows: ingest of x and y as
 * two arrays, and nullify, which removes from y what the stream's pairs say x explains
 * (Dissecting CLIP's "nullify the prompt": y − x·A*, A* = (C_xx + εI)⁺ C_xy). */
#include "ew_internal.h"

#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* x's row then y's row, n times, into out (each element esz bytes). */
static void interleave(const void *x, size_t dx, const void *y, size_t dy, size_t n, size_t esz,
                       unsigned char *out) {
  const unsigned char *px = x, *py = y;
  for (size_t i = 0; i < n; i++) {
    memcpy(out, px + i * dx * esz, dx * esz);
    memcpy(out + dx * esz, py + i * dy * esz, dy * esz);
    out += (dx + dy) * esz;
  }
}

EW_EXPORT ew_dtype_t ew_pairs_dtype(ew_dtype_t xt, ew_dtype_t yt) {
  return xt == yt ? xt : EW_F64;
}

EW_EXPORT int ew_pairs_pack(const ew_stream_t *s, const void *x, ew_dtype_t xt, const void *y,
                            ew_dtype_t yt, size_t n, void *rows) {
  const ew_config_t *c = &s->cfg;
  if (c->stream_kind != EW_STREAM_PAIRED)
    return EW_EBADPARAM;
  if (!ew_dtype_size(xt) || !ew_dtype_size(yt))
    return EW_EDTYPE;
  size_t dx = c->shape[0], dy = c->shape[1];
  if (xt == yt) {
    interleave(x, dx, y, dy, n, ew_dtype_size(xt), rows);
    return 0;
  }
  /* two dtypes: both widened to f64, exactly, row by row */
  const unsigned char *px = x, *py = y;
  double *out = rows;
  for (size_t i = 0; i < n; i++, out += dx + dy) {
    int rc = ew_convert_f64(px + i * dx * ew_dtype_size(xt), xt, dx, out);
    if (rc == 0)
      rc = ew_convert_f64(py + i * dy * ew_dtype_size(yt), yt, dy, out + dx);
    if (rc)
      return rc;
  }
  return 0;
}

EW_EXPORT int ew_stream_ingest_pairs(ew_stream_t *s, const void *x, ew_dtype_t xt, const void *y,
                                     ew_dtype_t yt, size_t n) {
  if (n == 0 && s->cfg.stream_kind == EW_STREAM_PAIRED)
    return 0;
  if (s->cfg.stream_kind != EW_STREAM_PAIRED)
    return EW_EBADPARAM;
  if (!ew_dtype_size(xt) || !ew_dtype_size(yt))
    return EW_EDTYPE;
  if (n > ((size_t)1 << 40) / s->d)
    return EW_ETOOLARGE;
  ew_dtype_t dt = ew_pairs_dtype(xt, yt);
  void *rows = malloc(n * s->d * ew_dtype_size(dt));
  if (!rows)
    return EW_ENOMEM;
  int rc = ew_pairs_pack(s, x, xt, y, yt, n, rows);
  if (rc == 0)
    rc = ew_stream_ingest(s, rows, dt, n, s->d);
  free(rows);
  return rc;
}

EW_EXPORT int ew_stream_nullify(ew_stream_t *s, const void *x, ew_dtype_t xt, const void *y,
                                ew_dtype_t yt, size_t n, double *out, char *msg, size_t cap) {
  if (msg && cap)
    msg[0] = 0;
  const ew_config_t *c = &s->cfg;
  if (c->stream_kind != EW_STREAM_PAIRED)
    return ew__fail_msg(msg, cap, "nullify needs a paired stream (kind \"paired\")");
  if (c->features != EW_FEATURES_LINEAR)
    return ew__fail_msg(msg, cap, "nullify needs features \"linear\": with \"rff\" A* maps "
                        "features, not rows, and no row has a preimage to return");
  if (!ew_dtype_size(xt) || !ew_dtype_size(yt))
    return EW_EDTYPE;
  size_t dx = c->shape[0], dy = c->shape[1];
  if (n == 0)
    return 0;
  if (n > ((size_t)1 << 40) / (dx + dy))
    return EW_ETOOLARGE;
  ew__ws_t *ws = ew__ws_thread();
  if (!ws)
    return EW_ENOMEM;
  ew__ws_mark_t mk = ew__ws_begin(ws);
  double *bx = ew__ws_alloc(ws, n * dx * sizeof(double));
  int rc = !bx ? EW_ENOMEM : ew_convert_f64(x, xt, n * dx, bx);
  if (rc == 0)
    rc = ew_convert_f64(y, yt, n * dy, out);
  const double *astar = NULL;
  size_t ax, ay;
  if (rc == EW_ENONFINITE && msg && cap)
    snprintf(msg, cap, "x or y holds a NaN or infinite value: nothing to correct");
  if (rc == 0 && (rc = ew__view_paired_astar(s, ws, &astar, &ax, &ay)) == EW_EDEGENERATE &&
      msg && cap)
    snprintf(msg, cap, "the stream has no pairs yet: A* is not defined");
  if (rc == 0) /* out = y − x·A* */
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)n, (int)dy, (int)dx, -1.0, bx,
                (int)dx, astar, (int)dy, 1.0, out, (int)dy);
  ew__stream_ws_used(s, ew__ws_end(ws, mk));
  return rc;
}
