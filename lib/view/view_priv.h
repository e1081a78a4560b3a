/* view/view_priv.h — what view/view.c, view/spectrum.c, view/solve.c and view/sketch.c share and
 * nothing else sees. */
#ifndef EW_VIEW_PRIV_H
#define EW_VIEW_PRIV_H

#include "../ew_internal.h" /* struct ew_stream and its accessors: view/ reads the stream it views */

/* What the accumulator behind src offers (moments and/or rows, per want); asking a window for its
 * moments records the ask. EW_ENOWINDOW when src needs a window the stream lacks. */
int ew__view_source(ew_stream_t *s, ew_source_t src, int want, ew__src_t *out, ew__ws_t *ws);
/* The mean of a source's rows (its two segments) in f64 when center, else zeros (what the
 * uncentred matrix subtracts), into mu[d]. */
void ew__view_rows_mean(const ew__src_t *sv, size_t d, int center, double *mu);
/* The rows of a source that keeps them, as f64 (N×d) followed by their mean (d doubles), in ws;
 * centred on it when center. */
int ew__view_rows_f64(ew_stream_t *s, ew_source_t src, int center, ew__ws_t *ws, double **Xp,
                      size_t *Np);
/* True when v reads fewer window rows than dimensions (a window of rows only, cap < d, or a
 * window_rows tail below d): its answers come from the rows, exactly, in f64. */
bool ew__view_rows_only(const ew__view_t *v);
/* The window's rows centred over the window then L2-normalised (f64, N×d, in ws), followed by
 * the window mean. */
int ew__view_window_cn(ew_stream_t *s, ew__ws_t *ws, double **Zp, size_t *Np);
/* The source's matrix A (full, d×d), its weight and mean (each may be NULL); the sketch's matrix
 * on a sketched stream. */
int ew__view_matrix(ew_stream_t *s, ew_source_t src, int center, double *weight, double *mean,
                    double *A, ew__ws_t *ws);
/* The moments behind a moment-based source (all, window); EW_EBADPARAM for a kind that keeps
 * none (a sketch, a window of rows only: callers branch on those first). */
int ew__view_moments(ew__view_t *v, const ew__moments_t **m);
/* Top-k of a sketched view (view/sketch.c; the contract of ew__view_topk on a sketch). */
int ew__view_sketch_topk(ew__view_t *v, size_t k, double *theta, double *U, double *resid);

#endif /* EW_VIEW_PRIV_H */
