/* fd.c — the Frequent Directions kind: what a stream keeps of every row when d is above the
 * configuration's exact_max_dim, behind the accumulator interface (acc.h).
 *
 * The state is exact where O(d) suffices — rows n, weight W, mean μ, diag(M2) (so tr C and every
 * diagonal metric stay exact) — and M2 itself is replaced by a sketch B of at most 2ℓ rows with
 * the Frequent Directions certificate (Liberty, KDD 2013; Ghashami, Liberty, Phillips & Woodruff,
 * SIAM J. Comput. 45(5), 2016):
 *
 *     0 ≼ M2 − BᵀB ≼ Δ·I.
 *
 * Rows enter centred on their batch's mean, and each batch adds one more row, the Chan
 * correction √(W·W_b/(W+W_b))·(μ_b − μ), so that the rows ever inserted satisfy AᵀA = M2 exactly
 * (the same identity as the dense kind's merge): no mean direction spends a slot and nothing is
 * subtracted at query time. When B is full, shrink(): the eigenpairs of the 2ℓ×2ℓ Gram BBᵀ give
 * B's singular directions; with δ the (ℓ+1)-th largest eigenvalue, row i becomes
 * √(λ_i − δ)·v_iᵀ for i < ℓ and the rest zero, and Δ grows by δ (plus a bound on the Gram's
 * rounding, 2ℓ·u·λ₁, so the certificate survives rounding). Decay multiplies B by √γ and Δ by γ;
 * merge inserts the other sketch's rows and its correction row and adds the Δs; both keep the
 * certificate. The shrink's scratch belongs to the accumulator, so apply and merge cannot fail.
 *
 * Cost: O(ℓd) per row amortised (a d×2ℓ syrk and an ℓ×2ℓ×d gemm per ℓ rows), 2ℓd doubles of
 * state. */
#include "acc.h"

#include <cblas.h>
#include <float.h>
#include <lapacke.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define TAG_FDSK ((uint32_t)'F' | (uint32_t)'D' << 8 | (uint32_t)'S' << 16 | (uint32_t)'K' << 24)
#define EW__FD_CB 512 /* columns per block of the in-place shrink */

typedef struct {
  ew__acc_t base;
  size_t d, ell, cap; /* cap = 2ℓ rows */
  double gamma;       /* per-row forgetting factor; 1 without decay */
  uint64_t n;
  double w;
  double *mean, *dm2; /* d each: μ and diag(M2), exact */
  double *B;          /* cap×d row-major; rows [0, nb) in use */
  size_t nb;
  double delta;       /* Δ in M2's units */
  uint64_t shrinks;
  bool broken;        /* both eigensolvers failed in a shrink: the sketch answers nothing */
  /* the shrink's own scratch */
  double *G, *ev, *Ut, *T, *work;
  lapack_int *iwork;
  size_t lwork, liwork;
  ew__sketch_t view;
} fd_t;

#define FD(a) ((fd_t *)(a))
#define CFD(a) ((const fd_t *)(a))

static size_t fd_lwork(size_t cap) { return 1 + 6 * cap + 2 * cap * cap; }
static size_t fd_liwork(size_t cap) { return 3 + 5 * cap; }

static size_t fd_heap(size_t d, size_t ell) {
  size_t cap = 2 * ell;
  return (2 * d + cap * d + cap * cap + cap + ell * cap + ell * EW__FD_CB + fd_lwork(cap)) *
             sizeof(double) +
         fd_liwork(cap) * sizeof(lapack_int);
}

static void fd_free(ew__acc_t *a) {
  fd_t *k = FD(a);
  if (!k)
    return;
  free(k->mean);
  free(k->dm2);
  free(k->B);
  free(k->G);
  free(k->ev);
  free(k->Ut);
  free(k->T);
  free(k->work);
  free(k->iwork);
  free(k);
}

static void fd_clear(ew__acc_t *a) {
  fd_t *k = FD(a);
  k->n = 0;
  k->w = 0;
  k->nb = 0;
  k->delta = 0;
  k->shrinks = 0;
  k->broken = false;
  memset(k->mean, 0, k->d * sizeof(double));
  memset(k->dm2, 0, k->d * sizeof(double));
}

static size_t fd_bytes(const ew__acc_t *a) { return sizeof(fd_t) + fd_heap(CFD(a)->d, CFD(a)->ell); }

/* B ← the ℓ leading rows of its SVD shrunk by δ = λ_{ℓ+1}(BBᵀ); Δ += δ (+ the rounding bound). */
static void shrink(fd_t *k) {
  size_t d = k->d, m = k->nb, ell = k->ell;
  if (m <= ell)
    return;
  lapack_int n = (lapack_int)m;
  /* G = B Bᵀ: B row-major m×d is column-major d×m, so G = Bcᵀ Bc */
  cblas_dsyrk(CblasColMajor, CblasUpper, CblasTrans, n, (int)d, 1.0, k->B, (int)d, 0.0, k->G, n);
  lapack_int info = LAPACKE_dsyevd_work(LAPACK_COL_MAJOR, 'V', 'U', n, k->G, n, k->ev, k->work,
                                        (lapack_int)k->lwork, k->iwork, (lapack_int)k->liwork);
  if (info != 0) { /* a second, independent algorithm (QR iteration) before giving up */
    cblas_dsyrk(CblasColMajor, CblasUpper, CblasTrans, n, (int)d, 1.0, k->B, (int)d, 0.0, k->G, n);
    info = LAPACKE_dsyev_work(LAPACK_COL_MAJOR, 'V', 'U', n, k->G, n, k->ev, k->work,
                              (lapack_int)k->lwork);
  }
  if (info != 0) {
    k->broken = true;
    k->nb = 0;
    return;
  }
  /* ascending: λ_i (descending, 0-based) is ev[m−1−i], its vector G's column m−1−i */
  double top = k->ev[m - 1] > 0 ? k->ev[m - 1] : 0.0;
  double dl = k->ev[m - 1 - ell] > 0 ? k->ev[m - 1 - ell] : 0.0;
  for (size_t i = 0; i < ell; i++) {
    double lam = k->ev[m - 1 - i], s = lam > dl ? sqrt((lam - dl) / lam) : 0.0;
    const double *u = k->G + (m - 1 - i) * m;
    for (size_t r = 0; r < m; r++)
      k->Ut[i * m + r] = s * u[r];
  }
  /* B[0:ℓ, :] = Ut · B, one block of columns at a time (each block is read whole before it is
   * overwritten, so the product is done in place) */
  for (size_t j0 = 0; j0 < d; j0 += EW__FD_CB) {
    size_t cb = d - j0 < EW__FD_CB ? d - j0 : EW__FD_CB;
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)ell, (int)cb, n, 1.0, k->Ut, n,
                k->B + j0, (int)d, 0.0, k->T, (int)cb);
    for (size_t i = 0; i < ell; i++)
      memcpy(k->B + i * d + j0, k->T + i * cb, cb * sizeof(double));
  }
  k->nb = ell;
  k->delta += dl + 2.0 * (double)m * DBL_EPSILON * top;
  k->shrinks++;
}

/* A free row of B (shrinking first when it is full). */
static double *next_row(fd_t *k) {
  if (k->nb == k->cap)
    shrink(k);
  return k->B + (k->nb++) * k->d;
}

/* Ages the state by g (decay): M2 and the weight scale by g, B by √g. */
static void fd_scale(ew__acc_t *a, double g) {
  fd_t *k = FD(a);
  double sg = sqrt(g);
  for (size_t i = 0; i < k->nb * k->d; i++)
    k->B[i] *= sg;
  for (size_t j = 0; j < k->d; j++)
    k->dm2[j] *= g;
  k->delta *= g;
  k->w *= g;
}

/* The Chan step shared by apply and merge: a part of weight wb, mean mb and diag(M2) dm2b joins
 * (its centred rows are inserted by the caller); inserts the correction row. */
static void join(fd_t *k, uint64_t nb, double wb, const double *mb, const double *dm2b) {
  size_t d = k->d;
  double W = k->w, tot = W + wb;
  if (!(wb > 0))
    return;
  double coef = W * wb / tot, f = wb / tot;
  if (W > 0 && coef > 0) {
    double *row = next_row(k), sc = sqrt(coef);
    for (size_t j = 0; j < d; j++)
      row[j] = sc * (mb[j] - k->mean[j]);
  }
  for (size_t j = 0; j < d; j++) {
    double dj = mb[j] - k->mean[j];
    k->dm2[j] += dm2b[j] + coef * dj * dj;
    k->mean[j] += f * dj;
  }
  k->w = tot;
  k->n += nb;
}

/* The value of row r, column j of the batch as accumulated (L2 scale applied in f64). */
static inline double xval(const ew__in_t *in, size_t r, size_t j) {
  if (in->f64)
    return in->x64[r * in->d + j];
  double x = in->x32[r * in->d + j];
  return in->scale ? x * in->scale[r] : x;
}

/* Decay weights γ^(n−1−r): the newest row weighs 1 (the dense kind's convention). */
static double row_weight(const fd_t *k, size_t n, size_t r) {
  return k->gamma < 1.0 ? pow(k->gamma, (double)(n - 1 - r)) : 1.0;
}

/* The batch's weight, mean and diag(M2), into keep (2d doubles): p->vec, p->w. */
static int fd_prepare(const ew__acc_t *a, const ew__in_t *in, ew__prep_t *p, ew__ws_t *keep,
                      ew__ws_t *tmp) {
  EW_UNUSED(tmp);
  const fd_t *k = CFD(a);
  size_t n = in->n, d = in->d;
  double *v = ew__ws_alloc(keep, 2 * d * sizeof(double));
  if (!v)
    return EW_ENOMEM;
  double *mb = v, *dm = v + d, wb = 0;
  memset(v, 0, 2 * d * sizeof(double));
  for (size_t r = 0; r < n; r++) {
    double wr = row_weight(k, n, r);
    wb += wr;
    for (size_t j = 0; j < d; j++)
      mb[j] += wr * xval(in, r, j);
  }
  for (size_t j = 0; j < d; j++)
    mb[j] /= wb;
  for (size_t r = 0; r < n; r++) {
    double wr = row_weight(k, n, r);
    for (size_t j = 0; j < d; j++) {
      double c = xval(in, r, j) - mb[j];
      dm[j] += wr * c * c;
    }
  }
  p->vec = v;
  p->w = wb;
  p->has_bs = false;
  return 0;
}

static size_t fd_apply_ws(const ew__acc_t *a, const ew__in_t *in) {
  EW_UNUSED(a), EW_UNUSED(in);
  return 0; /* the shrink's scratch is the accumulator's own */
}

static void fd_apply(ew__acc_t *a, const ew__in_t *in, const ew__prep_t *p, ew__ws_t *ws) {
  EW_UNUSED(ws);
  fd_t *k = FD(a);
  size_t n = in->n, d = in->d;
  if (k->gamma < 1.0) /* the state ages by the batch's rows, then the batch joins */
    fd_scale(a, pow(k->gamma, (double)n));
  const double *mb = p->vec;
  for (size_t r = 0; r < n; r++) {
    double *row = next_row(k), sw = sqrt(row_weight(k, n, r));
    for (size_t j = 0; j < d; j++)
      row[j] = sw * (xval(in, r, j) - mb[j]);
  }
  join(k, n, p->w, mb, p->vec + d);
}

static void fd_merge(ew__acc_t *a, const ew__acc_t *o) {
  fd_t *k = FD(a);
  const fd_t *q = CFD(o);
  if (q->w == 0)
    return;
  for (size_t i = 0; i < q->nb; i++)
    memcpy(next_row(k), q->B + i * q->d, k->d * sizeof(double));
  k->delta += q->delta;
  k->broken = k->broken || q->broken;
  join(k, q->n, q->w, q->mean, q->dm2);
}

static int fd_view(ew__acc_t *a, int want, uint64_t tail, ew__src_t *out, ew__ws_t *ws) {
  EW_UNUSED(ws), EW_UNUSED(tail);
  fd_t *k = FD(a);
  memset(out, 0, sizeof *out);
  out->rows = k->n;
  out->weight = k->w;
  out->mean = k->mean;
  if (want & EW__WANT_MOMENTS) {
    k->view = (ew__sketch_t){.d = k->d, .ell = k->ell, .nb = k->nb, .B = k->B,
                             .delta = k->delta, .mean = k->mean, .dm2 = k->dm2, .w = k->w,
                             .shrinks = k->shrinks, .broken = k->broken};
    out->sketch = &k->view;
  }
  return 0;
}

/* u64 ℓ, u64 n, f64 w, f64 Δ, u64 shrinks, u64 broken, u64 nb, μ (d f64), diag M2 (d f64),
 * B's rows in use (nb×d f64) */
static uint64_t fd_len(size_t d, size_t nb) { return 7 * 8 + 2 * d * 8 + (uint64_t)nb * d * 8; }

static uint64_t fd_saved_len(const ew__acc_t *a) { return fd_len(CFD(a)->d, CFD(a)->nb); }

static void fd_save(const ew__acc_t *a, ew__wr_t *w) {
  const fd_t *k = CFD(a);
  ew__put_u64(w, k->ell);
  ew__put_u64(w, k->n);
  ew__put_f64(w, k->w);
  ew__put_f64(w, k->delta);
  ew__put_u64(w, k->shrinks);
  ew__put_u64(w, k->broken);
  ew__put_u64(w, k->nb);
  ew__put(w, k->mean, k->d * sizeof(double));
  ew__put(w, k->dm2, k->d * sizeof(double));
  ew__put(w, k->B, k->nb * k->d * sizeof(double));
}

/* A loaded sketch's numbers (core/core.h, EW__ROWS_MAX): n, W, μ and diag M2 as for moments;
 * Δ and ‖B‖²_F at most tr M2 (every row inserted satisfies AᵀA = M2, a shrink removes at most
 * what was inserted and Δ grows by what it removes), with room for the rounding terms each shrink
 * adds (2ℓ·u·λ₁ ≤ 2ℓ·u·tr M2). */
static void fd_check(const fd_t *k, ew__rd_t *r) {
  if (r->err)
    return;
  size_t d = k->d;
  if (k->n > EW__ROWS_MAX) {
    ew__rd_failf(r, "section FDSK counts %llu rows, more than 2^53 (the most rows a state "
                 "describes)", (unsigned long long)k->n);
    return;
  }
  if (k->w > (double)k->n * (1 + 1e-9)) {
    ew__rd_failf(r, "section FDSK holds a weight of %g for %llu rows: a weight is at most the row "
                 "count", k->w, (unsigned long long)k->n);
    return;
  }
  double lim = (double)FLT_MAX;
  if (ew__check_f64s(r, k->mean, d, lim * 1.0001, "FDSK", "a mean"))
    return;
  double dmax = k->w * 4 * lim * lim * 1.01, tr = 0;
  for (size_t j = 0; j < d; j++) {
    if (!(k->dm2[j] >= 0 && k->dm2[j] <= dmax)) {
      ew__rd_failf(r, "section FDSK holds an M2 diagonal of %g (coordinate %zu) for a weight of "
                   "%g: a co-moment's diagonal of rows ingest accepts is a finite sum of squares, "
                   "at most %.3g", k->dm2[j], j, k->w, dmax);
      return;
    }
    tr += k->dm2[j];
  }
  double room = tr * (1 + 1e-6 + 4.0 * (double)k->cap * DBL_EPSILON * (double)(k->shrinks + 1));
  if (k->delta > room) {
    ew__rd_failf(r, "section FDSK holds a certificate Δ = %g above the trace of M2 (%g): a "
                 "sketch's certificate is at most the weight it removed", k->delta, tr);
    return;
  }
  double fro = 0;
  if (ew__check_f64s(r, k->B, k->nb * d, DBL_MAX, "FDSK", "a sketch row entry"))
    return;
  for (size_t i = 0; i < k->nb * d; i++)
    fro += k->B[i] * k->B[i];
  if (!(fro <= 2 * room))
    ew__rd_failf(r, "section FDSK holds sketch rows of squared norm %g above the trace of M2 "
                 "(%g): BᵀB ≼ M2 bounds them by it", fro, tr);
}

static void fd_load(ew__acc_t *a, ew__rd_t *r, uint64_t len) {
  fd_t *k = FD(a);
  uint64_t ell = ew__get_u64(r);
  if (!r->err && ell != k->ell) {
    ew__rd_fail(r, "section %s was saved with another sketch_rows than the configuration's",
                "FDSK");
    return;
  }
  k->n = ew__get_u64(r);
  k->w = ew__get_f64(r);
  k->delta = ew__get_f64(r);
  k->shrinks = ew__get_u64(r);
  k->broken = ew__get_u64(r) != 0;
  uint64_t nb = ew__get_u64(r);
  if (r->err)
    return;
  if (nb > k->cap || len != fd_len(k->d, (size_t)nb)) {
    ew__rd_fail(r, "section %s has the wrong length for this configuration", "FDSK");
    return;
  }
  if (!(k->w >= 0) || !(k->delta >= 0) || !isfinite(k->w) || !isfinite(k->delta) ||
      (k->n == 0) != (k->w == 0)) {
    ew__rd_fail(r, "section %s holds an impossible weight or certificate", "FDSK");
    return;
  }
  k->nb = (size_t)nb;
  ew__get(r, k->mean, k->d * sizeof(double));
  ew__get(r, k->dm2, k->d * sizeof(double));
  ew__get(r, k->B, k->nb * k->d * sizeof(double));
  fd_check(k, r);
}

static const ew__acc_ops_t fd_ops = {
    .name = "fd", .tag = TAG_FDSK, .free = fd_free, .clear = fd_clear, .bytes = fd_bytes,
    .prepare = fd_prepare, .apply_ws = fd_apply_ws, .apply = fd_apply, .merge = fd_merge,
    .scale = fd_scale, .view = fd_view, .saved_len = fd_saved_len, .save = fd_save,
    .load = fd_load};

ew__acc_t *ew__acc_fd_new(size_t d, size_t ell, double half_life) {
  fd_t *k = calloc(1, sizeof *k);
  if (!k)
    return NULL;
  k->base.ops = &fd_ops;
  k->d = d;
  k->ell = ell;
  k->cap = 2 * ell;
  k->gamma = half_life > 0 ? exp2(-1.0 / half_life) : 1.0;
  k->lwork = fd_lwork(k->cap);
  k->liwork = fd_liwork(k->cap);
  k->mean = calloc(d, sizeof(double));
  k->dm2 = calloc(d, sizeof(double));
  k->B = malloc(k->cap * d * sizeof(double));
  k->G = malloc(k->cap * k->cap * sizeof(double));
  k->ev = malloc(k->cap * sizeof(double));
  k->Ut = malloc(ell * k->cap * sizeof(double));
  k->T = malloc(ell * EW__FD_CB * sizeof(double));
  k->work = malloc(k->lwork * sizeof(double));
  k->iwork = malloc(k->liwork * sizeof(lapack_int));
  if (!k->mean || !k->dm2 || !k->B || !k->G || !k->ev || !k->Ut || !k->T || !k->work ||
      !k->iwork) {
    fd_free(&k->base);
    return NULL;
  }
  return &k->base;
}

size_t ew__acc_fd_ell(const ew_config_t *cfg) { return cfg->sketch_rows; }

size_t ew__acc_fd_bound(size_t d, size_t ell) { return sizeof(fd_t) + fd_heap(d, ell); }

bool ew__acc_is_sketch(const ew__acc_t *a) {
  return a && (a->ops == &fd_ops || ew__acc_frozen_sketch(a));
}

bool ew__acc_fd_broken(const ew__acc_t *a) { return a && a->ops == &fd_ops && CFD(a)->broken; }
