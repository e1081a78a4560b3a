/* test_view.c — what metrics read (lib/view/): for every source (all rows, window, window_cn),
 * centred and not, each view function agrees with the matrix ew_stream_matrix builds: A·eⱼ is
 * column j, trace = Σ diag = Σ eigenvalues, ‖A‖_F² from the moments = Σ A_ij² = Σ λ², top-k
 * eigenpairs are the spectrum's largest within their residual, and the raw rows are the window's.
 * Tolerances are relative to ‖A‖ and stated at each check. */
#include "ew_internal.h"
#include "tap.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define D 24

static ew_stream_t *filled(void) {
  ew_config_t c;
  ew_config_default(&c, D);
  c.window = 40;
  ew_stream_t *s = NULL;
  CHECK(ew_stream_create(&c, &s) == 0, "create");
  float x[70 * D];
  unsigned r = 7;
  for (size_t i = 0; i < 70 * D; i++) { /* rows with an offset and unequal spreads */
    r = r * 1103515245u + 12345u;
    x[i] = (float)((r >> 8) % 2001) / 1000.0f * (float)(1 + i % D) / 4.0f + 3.0f;
  }
  CHECK(ew_stream_ingest(s, x, EW_F32, 30, D) == 0, "ingest 1");
  CHECK(ew_stream_ingest(s, x + 30 * D, EW_F32, 40, D) == 0, "ingest 2 (the window wraps)");
  return s;
}

static void every_source_agrees_with_its_matrix(void) {
  ew_stream_t *s = filled();
  ew__ws_t *ws = ew__ws_new();
  double *A = malloc(D * D * sizeof(double));
  for (int src = EW_SOURCE_ALL; src <= EW_SOURCE_WINDOW_CN; src++)
    for (int center = 0; center <= 1; center++) {
      if (src == EW_SOURCE_WINDOW_CN && center)
        continue; /* window_cn has its own centring */
      const char *what = ew_source_name((ew_source_t)src);
      CHECK(ew_stream_matrix(s, (ew_source_t)src, center, NULL, NULL, A) == 0, "matrix %s", what);
      double norm = 0, fro = 0, tr = 0;
      for (size_t i = 0; i < D * D; i++) {
        norm = fmax(norm, fabs(A[i]));
        fro += A[i] * A[i];
      }
      for (size_t j = 0; j < D; j++)
        tr += A[j + j * D];
      ew__view_t v;
      CHECK(ew__view_open(&v, s, (ew_source_t)src, center, 0, 0, ws) == 0, "open %s", what);
      CHECK(v.rows == (src == EW_SOURCE_ALL ? 70u : 40u), "%s: %llu rows", what,
            (unsigned long long)v.rows);
      double x[D], y[D], diag[D], vt, vtr, vfro;
      for (size_t j = 0; j < D; j++) { /* A·e_j is column j (1e-12 of max |A|) */
        memset(x, 0, sizeof x);
        x[j] = 1;
        CHECK(ew__view_matvec(&v, x, y) == 0, "matvec");
        for (size_t i = 0; i < D; i++)
          CHECK(fabs(y[i] - A[i + j * D]) <= 1e-12 * norm, "%s c=%d: (A e_%zu)_%zu %g vs %g",
                what, center, j, i, y[i], A[i + j * D]);
      }
      CHECK(ew__view_diag(&v, diag) == 0 && ew__view_trace(&v, &vt) == 0 &&
                ew__view_trace_fro2(&v, &vtr, &vfro) == 0, "diag, trace, fro2");
      double sd = 0;
      for (size_t j = 0; j < D; j++)
        sd += diag[j];
      CHECK(fabs(sd - tr) <= 1e-12 * tr && fabs(vt - tr) <= 1e-12 * tr &&
                fabs(vtr - tr) <= 1e-12 * tr, "%s c=%d: trace %g, diag sum %g, view %g/%g", what,
            center, tr, sd, vt, vtr);
      CHECK(fabs(vfro - fro) <= 1e-11 * fro, "%s c=%d: fro2 %.17g vs %.17g", what, center, vfro,
            fro);
      const double *eig;
      size_t clamped;
      double err = -1, se = 0, se2 = 0;
      CHECK(ew__view_spectrum(&v, &eig, &clamped, &err) == 0 && err >= 0, "spectrum");
      for (size_t i = 0; i < D; i++) {
        se += eig[i];
        se2 += eig[i] * eig[i];
        CHECK(i == 0 || eig[i] <= eig[i - 1], "descending");
      }
      CHECK(fabs(se - tr) <= 1e-10 * tr + D * err && fabs(se2 - fro) <= 1e-10 * fro,
            "%s c=%d: sum eig %g vs trace %g; sum eig^2 %g vs fro2 %g", what, center, se, tr, se2,
            fro);
      double theta[3], U[3 * D], resid = -1;
      CHECK(ew__view_topk(&v, 3, theta, U, &resid) == 0 && resid >= 0, "topk");
      for (size_t i = 0; i < 3; i++)
        CHECK(fabs(theta[i] - eig[i]) <= resid + 1e-10 * eig[0], "%s c=%d: theta_%zu %g vs %g "
              "(resid %g)", what, center, i, theta[i], eig[i], resid);
      const float *rows;
      size_t n;
      int rc = ew__view_rows(&v, &rows, &n);
      if (src == EW_SOURCE_ALL)
        CHECK(rc == EW_ENOWINDOW, "all rows are not kept: rc %d", rc);
      else
        CHECK(rc == 0 && n == 40, "%s: %zu window rows", what, n);
    }
  free(A);
  ew__ws_free(ws);
  ew_stream_free(s);
}

static void no_window_no_window_view(void) {
  ew_config_t c;
  ew_config_default(&c, 4);
  c.window = 0;
  ew_stream_t *s = NULL;
  CHECK(ew_stream_create(&c, &s) == 0, "create");
  ew__view_t v;
  ew__ws_t *ws = ew__ws_new();
  CHECK(ew__view_open(&v, s, EW_SOURCE_WINDOW, 1, 0, 0, ws) == EW_ENOWINDOW, "window of none");
  CHECK(ew__view_open(&v, s, EW_SOURCE_WINDOW_CN, 0, 0, 0, ws) == EW_ENOWINDOW, "window_cn of none");
  CHECK(ew__view_open(&v, s, EW_SOURCE_ALL, 1, 0, 0, ws) == 0 && v.rows == 0, "all of nothing");
  ew__ws_free(ws);
  ew_stream_free(s);
}

/* The Lanczos operator (ew__view_op) applied to the identity is the matrix, for every source and
 * centring and for a window of fewer rows than d (read from its rows); after more rows arrive
 * (which clears the moments' mirrored lower triangle) it is the new matrix (1e-12 of max |A|). */
static void the_operator_is_the_matrix(void) {
  ew__ws_t *ws = ew__ws_new();
  double *A = malloc(D * D * sizeof(double)), *X = calloc(D * D, sizeof(double));
  double *Y = malloc(D * D * sizeof(double));
  for (size_t j = 0; j < D; j++)
    X[j + j * D] = 1;
  for (int narrow = 0; narrow <= 1; narrow++) {
    ew_stream_t *s = filled();
    if (narrow) { /* the same rows through a window of 16 < D rows: rows only */
      ew_stream_free(s);
      ew_config_t c;
      ew_config_default(&c, D);
      c.window = 16;
      CHECK(ew_stream_create(&c, &s) == 0, "create");
    }
    for (int round = 0; round < 2; round++) {
      float x[20 * D];
      for (size_t i = 0; i < 20 * D; i++)
        x[i] = (float)((i * 7919u) % 1013u) / 500.0f * (float)(1 + (i + (size_t)round) % D);
      CHECK(ew_stream_ingest(s, x, EW_F32, 20, D) == 0, "ingest");
      for (int src = EW_SOURCE_ALL; src <= EW_SOURCE_WINDOW_CN; src++)
        for (int center = 0; center <= 1; center++) {
          if (src == EW_SOURCE_WINDOW_CN && center)
            continue;
          CHECK(ew_stream_matrix(s, (ew_source_t)src, center, NULL, NULL, A) == 0, "matrix");
          double norm = 0;
          for (size_t i = 0; i < D * D; i++)
            norm = fmax(norm, fabs(A[i]));
          ew__view_t v;
          ew__op_t op;
          CHECK(ew__view_open(&v, s, (ew_source_t)src, center, 0, 0, ws) == 0 &&
                    ew__view_op(&v, &op) == 0,
                "open and operator");
          op.apply(op.ctx, X, Y, D);
          double worst = 0;
          for (size_t i = 0; i < D * D; i++)
            worst = fmax(worst, fabs(Y[i] - A[i]));
          CHECK(worst <= 1e-12 * norm, "%s%s c=%d round %d: A I off by %g of %g",
                narrow ? "narrow window, " : "", ew_source_name((ew_source_t)src), center, round,
                worst, norm);
          ew__view_close(&v);
        }
    }
    ew_stream_free(s);
  }
  free(A);
  free(X);
  free(Y);
  ew__ws_free(ws);
}

int main(void) {
  TAP_RUN(every_source_agrees_with_its_matrix);
  TAP_RUN(the_operator_is_the_matrix);
  TAP_RUN(no_window_no_window_view);
  TAP_DONE();
}
