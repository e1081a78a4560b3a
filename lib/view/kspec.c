/* view/kspec.c — the kernel metrics' spectrum cache: the eigenvalues of the last kernel matrix a
 * kernel metric solved (metrics/kernel.c), kept with the stream, so that asking again — another
 * diffusion time t, another Vendi order q, a dashboard's repeated query — costs no eigensolve
 * while the stream has not changed (its row count, reset epoch and the view's window tail). One
 * slot: the newest solve replaces it. */
#include "view_priv.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

int ew__view_kspec_get(ew__view_t *v, int kind, double sigma, size_t max_rows, const double **w,
                       size_t *n, uint64_t *sample_rows) {
  const ew_stream_t *s = v->s;
  const ew__kspec_t *k = &s->kspec;
  if (!k->valid || k->kind != kind || !(k->sigma == sigma || (isnan(k->sigma) && isnan(sigma))) ||
      k->max_rows != max_rows || k->as_of != s->count || k->epoch != s->epoch ||
      k->tail != s->tail)
    return -1;
  *w = k->w;
  *n = k->n;
  *sample_rows = k->sample_rows;
  return 0;
}

void ew__view_kspec_put(ew__view_t *v, int kind, double sigma, size_t max_rows, const double *w,
                        size_t n, uint64_t sample_rows) {
  ew_stream_t *s = v->s;
  ew__kspec_t *k = &s->kspec;
  k->valid = false;
  if (n > k->cap) {
    double *p = realloc(k->w, n * sizeof *p);
    if (!p)
      return; /* nothing kept: the next query solves again */
    k->w = p;
    k->cap = n;
  }
  memcpy(k->w, w, n * sizeof *w);
  *k = (ew__kspec_t){.w = k->w, .n = n, .cap = k->cap, .max_rows = max_rows, .kind = kind,
                     .sigma = sigma, .as_of = s->count, .epoch = s->epoch, .tail = s->tail,
                     .sample_rows = sample_rows, .valid = true};
}
