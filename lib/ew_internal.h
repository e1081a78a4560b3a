/* ew_internal.h — what the library's files share with each other and with no one else: the
 * rooms' headers, included in layer order, and the stream itself (struct ew_stream and what
 * config.c and stream.c offer the other rooms). The files of core/, acc/, linalg/ and live/
 * include their room's header; the rest of lib/ (view/ through view_priv.h, state/ and metrics/
 * through theirs) and the unit tests include this one.
 *
 * The rooms, lowest first, by header; a header includes only its own room's and lower ones'
 * (core ← acc, linalg ← live, view ← stream, config, state ← metrics):
 *   core/core.h        the macros every file uses (EW_EXPORT, EW_UNUSED) and:
 *     error.c convert.c  leaf utilities (error names; row conversion, the f32 check)
 *     rng.c              xoshiro256** seeded through splitmix64
 *     ws.c               workspaces: stacked, never-aliased memory an operation borrows
 *     bytes.c            the byte writer/reader of saved states and their CRC-32C (a leaf: state/
 *                        and the kinds call it, it calls neither), and what a loaded number may be
 *   acc/moments.h
 *     moments.c          (weight, mean, M2) with the batched Chan merge and un-merge, batch
 *                        statistics, checks, the saved form
 *   acc/acc.h          the accumulator interface (prepare, apply, merge, scale, view, bytes, save,
 *                      load), and what the stream asks of a window beyond it; includes moments.h
 *     dense.c            the dense and decay kinds (moments behind the interface)
 *     window.c           the window kind: a FIFO ring of the last W rows (f32) with its own exact
 *                        moments, or rows only when W < d
 *     fd.c               the fd kind: a Frequent Directions sketch (d > exact_max_dim)
 *     frozen.c           a read-only copy of one kind's view (a snapshot's, snapshot.c)
 *   acc/tokens.h
 *     tokens_reduce.c    per-token scalars (RL policy entropy, log π, advantages) reduced exactly
 *                        over the union of ranks: mergeable sums and co-moments, numpy's linear
 *                        quantile by selection, Clip-Cov's band and KL-Cov's top, verl's
 *                        per-sequence means, ARES's window share (a leaf: the tokens kind's math)
 *   linalg/linalg.h
 *     eig.c              LAPACK: all eigenvalues (dsyevd), all eigenpairs (a leaf)
 *     krylov.c           block Lanczos with thick restarts through an operator (uses eig.c)
 *     slq.c              stochastic Lanczos quadrature (SLQ) for tr g(A) through an operator, off
 *                        the top pairs (uses krylov.c's projection)
 *     topk.c             top-k of a dense matrix: block Lanczos, or a full solve when cheaper (the
 *                        policy; uses eig.c and krylov.c)
 *   view/view.h        what view/ offers above it (view/view_priv.h: what its files share)
 *     view.c             what metrics read: a source as a matrix (trace, ‖·‖_F², diagonal, A·x,
 *                        rows); opening and closing a view
 *     spectrum.c         every eigenvalue of a view with its error bound, and the stream's
 *                        spectrum cache
 *     solve.c            operators, Lanczos top-k, the quick (SLQ) estimate
 *     sketch.c           sketched views: the sketch's spectrum, intervals, brackets
 *   live/live.h        includes view/view.h (cert.c reads a view)
 *     rop.c              the live top-k estimate (random-order block power)
 *     cert.c             live_topk's certificate: the live vectors against the top eigenpairs of
 *                        a view (a few block Lanczos steps)
 *     oja.c              the fixed-rate Oja estimate streams kept before rop.c (no stream uses
 *                        it; kept for tests/unit/test_live.c's comparison)
 *   ew_internal.h      (this header) the stream: struct ew_stream and its caches' types, and
 *     config.c           the kind and configuration tables at work: defaults, checks, equality,
 *                        which kinds a configuration keeps, building them
 *     snapshot.c         what a set of queries reads of a stream, copied (frozen kinds), and
 *                        the window taking back the moments a snapshot built
 *     stream.c           one stream: config → kinds (config.c), merge, reset, the admission
 *                        model; stream_ingest.c its all-or-nothing ingest
 *   state/state_priv.h
 *     save.c, load.c     a whole stream as versioned, checksummed bytes and back
 *   metrics/metrics_priv.h
 *     table.c            the metric table: one row per metric, naming its function
 *     entropy.c          entropy (plain, normalised, truncated), Rényi, Vendi, erank
 *     rank.c             RankMe, participation ratio, stable rank, condition number, anisotropy,
 *                        spectral gap
 *     spectrum.c         top-k, live top-k, the spectrum, trace, nuclear norm
 *     rows.c             the rows' columns: Matrix Nuclear-Norm, l2_std
 *     query.c            the query dispatcher (metrics read views only)
 *     route.c            how a metric reaches its eigenvalues: exact, quick, top
 *     info.c             the table's typed columns as text, and ew_param_check
 *
 * What may call what: a file calls its own room and the rooms below it. core/ calls nothing of
 * the library; acc/ and linalg/ call only core/; live/ and view/ also call each other (cert.c
 * reads a view; view.c hands out the live estimate); config.c, stream.c, stream_ingest.c and
 * state/ call each other; metrics/ reads a stream only through views (besides live_topk's
 * certificate, SLQ's evaluation, workspaces and public functions). One reach goes up: view/ is
 * the inside of the stream it views, so it reads struct ew_stream's fields and calls the stream's
 * accessors (ew__stream_acc, ew__stream_all_in_window, ew__stream_window_asked,
 * ew__stream_ws_used) and ew_stream_window_count; view/view_priv.h includes this header for them,
 * while view/view.h, what view/ offers the rooms above, includes none of it.
 * Nothing here is exported from the shared library (visibility is hidden by default).
 */
#ifndef EW_INTERNAL_H
#define EW_INTERNAL_H

#include "core/core.h"
#include "acc/acc.h"
#include "linalg/linalg.h"
#include "view/view.h"
#include "live/live.h"

/* ---- stream.c ---- */
#define EW__NSRC 4   /* sources (EW_SOURCE_COUNT) */
#define EW__NCACHE 3 /* the matrix sources, each with a spectrum cache */
#define EW__WARM_MAX 64          /* warm top-k vectors a stream keeps */
enum { EW__ROLE_ALL = 0, EW__ROLE_WINDOW = 1, EW__NROLES = 2 };

/* The spectrum of a sketched stream's matrix (view/sketch.c): its nonzero eigenvalues, one slot per
 * centring. theta holds up to 2ℓ+1 values, allocated on first use. */
typedef struct {
  double *theta;
  size_t m;
  uint64_t as_of, epoch;
  bool valid;
} ew__skspec_t;
/* Bytes both slots hold at most, for a sketch of m = 2ℓ+1 directions (ew_config_solve_dim). */
#define ew__skspec_bound(m) (2 * (size_t)(m) * sizeof(double))

typedef struct {
  double *eig;       /* d values, descending, clamped at 0 */
  size_t clamped;
  double floor;      /* eigenvalues at or below it were set to 0 (view/spectrum.c): the
                        accumulated rounding noise / W plus the eigensolver's round-off */
  uint64_t as_of;    /* stream count when computed */
  uint64_t epoch;    /* stream reset epoch when computed */
  uint64_t tail;     /* window rows it describes (0 = the whole window) */
  bool valid;
} ew__spec_cache_t;
/* Eigenvalues within EW__EIG_ROUNDOFF · n · 2⁻⁵³ · λ₁ of zero are the eigensolver's round-off on an
 * order-n matrix (view/spectrum.c). 4: ten times the largest measured, 0.38 n u λ₁ (dsyevd on
 * x xᵀ of f32 and f64 rows x, d = 8 to 1024, five draws each). */
#define EW__EIG_ROUNDOFF 4.0

/* The kernel metrics' last spectrum (view/kspec.c): the eigenvalues of one kernel matrix of the
 * window's rows — `kind` 0 the diffusion matrix of dse, 1 + ew__kernel_t the kernel matrix of
 * vendi_kernel — under σ and max_rows, for the stream as it was at as_of/epoch/tail, computed on
 * sample_rows of a sample (0: every row). Another t or q reads it again without a solve. */
typedef struct {
  double *w;
  size_t n, cap, max_rows;
  int kind;
  double sigma;
  uint64_t as_of, epoch, tail, sample_rows;
  bool valid;
} ew__kspec_t;

/* A paired stream's Schur spectra and A* (view/paired.c): the eigenvalues of S and Δ (fy each)
 * and (C_xx + εI)⁺ C_xy (fx×fy, linear features, when nullify asked for it), each for the
 * stream as it was at its as_of/epoch. */
typedef struct {
  double *s_eig, *d_eig, *astar;
  uint64_t as_of, epoch, astar_as_of, astar_epoch;
  bool valid, astar_valid;
} ew__pspec_t;

struct ew_stream {
  ew_config_t cfg;
  size_t d;
  uint64_t count;     /* rows ingested since creation/reset */
  uint64_t epoch;     /* bumped by reset and merge: invalidates caches */
  bool window_rounded; /* an f64 batch was rounded to f32 on its way into the window */
  ew__acc_t *acc[EW__NROLES]; /* ALL: dense or decay; WINDOW: the window kind, or NULL */
  uint64_t win_query_at; /* stream count at the last query that used the window's moments */
  bool win_queried;
  bool win_tail_kept; /* ew_stream_window_tail keeps the moments: batches only write the ring */
  bool has_live;
  ew__rop_t live;     /* the live top-k estimate (live/rop.c) */
  ew__spec_cache_t cache[EW__NCACHE][2];
  ew__quick_t *quick; /* the last quick (SLQ) estimate, view/solve.c; allocated on first use */
  ew__skspec_t skspec[2]; /* sketched streams: the sketch's spectrum by centring (view/sketch.c) */
  ew__kspec_t kspec;  /* the kernel metrics' last spectrum (view/kspec.c) */
  ew__pspec_t pspec;  /* a paired stream's Schur spectra and A* (view/paired.c) */
  double *topk_warm;  /* warm start for top-k vectors: topk_warm_k × d */
  size_t topk_warm_k;
  size_t ws_peak;     /* the most workspace one operation on this stream has held */
  uint64_t tail;      /* the open view's window tail (view/view.c; 0 = the whole window) */
  /* a snapshot's stream (snapshot.c): its kinds are frozen copies, and what the view asks of
   * the window beyond them is what the source stream answered when copied */
  bool frozen;
  uint64_t frozen_window_count;
  bool frozen_all_in_window;
};

/* A prepared batch of tokens (tokens_ingest.c) as a ew_batch_t that owns `own` and the packed
 * bytes `data` (malloc'd) its tokens are read from (stream_ingest.c); NULL when out of memory (own
 * and data are then the caller's to free). */
ew_batch_t *ew__batch_tokens(ew__ws_t *own, ew__tbatch_t *tb, size_t ncols, void *data);
/* The same for a stats batch of `cells` cells. */
ew_batch_t *ew__batch_cells(ew__ws_t *own, ew__cbatch_t *cb, size_t cells);

/* ---- config.c ---- */
/* Builds every kind s->cfg keeps into s (accumulators, the live estimate): 0 or EW_ENOMEM (what
 * was built stays for ew_stream_free). */
int ew__kinds_attach(ew_stream_t *s);
/* The most bytes the states of the kinds cfg keeps hold (the admission model). */
size_t ew__kinds_state_bound(const ew_config_t *cfg);
/* 1 when streams of these configurations merge (their EW_CF_MERGE fields and their kind of role
 * ALL are equal), else 0. */
int ew__config_mergeable(const ew_config_t *a, const ew_config_t *b);

/* The accumulator behind a source (all → ALL; window, window_cn → WINDOW), or NULL. */
ew__acc_t *ew__stream_acc(const ew_stream_t *s, ew_source_t src);
/* True when the window holds every row the ALL accumulator describes, exactly (no decay, no f64
 * rounding, nothing expired): the window's rows may then answer for all. */
bool ew__stream_all_in_window(const ew_stream_t *s);
/* Records that the window's moments were asked for (the AUTO window mode maintains them eagerly
 * while they are). */
void ew__stream_window_asked(ew_stream_t *s);
/* Records the workspace an operation on s held at its peak. */
void ew__stream_ws_used(ew_stream_t *s, size_t peak);

#endif /* EW_INTERNAL_H */
