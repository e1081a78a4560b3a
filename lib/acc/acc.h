/* acc.h — the accumulator interface: what a stream keeps of its rows, behind one set of
 * operations, so that the stream (stream.c), the saved state (state/) and what metrics read
 * (view/) never branch on a kind's fields.
 *
 * Kinds: dense moments (every row, exact), decay (dense moments that forget with a half-life in
 * rows), window (the last W rows in a ring with their own exact moments), fd (a Frequent
 * Directions sketch of M2 with exact n, W, μ and diag M2, for d above exact_max_dim; it may
 * decay). A stream holds one accumulator per role: EW__ROLE_ALL (dense, decay or fd) and, when
 * configured, EW__ROLE_WINDOW.
 *
 * The life of a batch: the stream converts and preprocesses the rows into an ew__in_t; each
 * accumulator's prepare reads it and leaves what its apply will fold in (a batch's statistics,
 * the expensive part) in an ew__prep_t without touching any state; the stream then reserves the
 * workspace every apply will need (apply_ws), after which no apply can fail. */
#ifndef EW_ACC_H
#define EW_ACC_H

#include "moments.h"
#include "tokens.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct ew__acc ew__acc_t;

/* One batch as the accumulators see it (stream_ingest.c fills it). */
typedef struct {
  size_t n, d;
  bool f64;
  const double *x64;   /* f64 batches: the rows, already L2-normalised when configured */
  const float *x32;    /* f32 batches: the rows as converted (not normalised) */
  const double *scale; /* f32 batches with L2: inverse row norms applied in f64 before centring */
  const float *rows32; /* the preprocessed rows in f32 (what a window keeps); set before apply */
  const ew__bstats_t *plain32; /* statistics of exactly rows32, unweighted, when an accumulator
                                  computed them in its prepare (a window may reuse them), or NULL */
  bool maintain;       /* window: keep its moments current with this batch (ew_window_mode_t) */
  const uint32_t *labels; /* n labels, one per row, or NULL (a labelled window keeps them) */
} ew__in_t;

/* What prepare leaves for apply. */
typedef struct {
  bool has_bs;
  ew__bstats_t bs;
  double *vec; /* fd: the batch's mean then diag of its M2 (2d doubles, in keep); paired: the
                  batch's blocks, or its rows' features (feat_rows) */
  double w;    /* fd: the batch's weight */
  size_t feat_rows; /* paired: vec holds these rows' φ(x) (feat_rows×fx) then φ(y)
                       (feat_rows×fy), which apply folds in; 0: vec holds the blocks */
} ew__prep_t;

/* What an fd accumulator offers a view: 0 ≼ M2 − BᵀB ≼ delta·I, with M2 = W·C the co-moment of
 * every row ingested (decayed when configured); n, W, μ and diag(M2) are exact. */
typedef struct {
  size_t d, ell;
  size_t nb;          /* rows of B in use (at most 2ℓ) */
  const double *B;    /* nb×d row-major */
  double delta;       /* Δ, in M2's units (divide by w for C's) */
  const double *mean; /* d */
  const double *dm2;  /* d: diag(M2) */
  double w;
  uint64_t shrinks;
  bool broken;        /* a shrink's eigensolvers failed: nothing can be certified */
} ew__sketch_t;

/* What a source offers to view/: its size, and its moments and/or its rows. */
enum { EW__WANT_MOMENTS = 1, EW__WANT_ROWS = 2, EW__WANT_FULL = 4 /* with MOMENTS: their lower
                                                                       triangle mirrored too */ };
typedef struct {
  uint64_t rows;              /* rows described (never decayed) */
  double weight;              /* their total weight (== rows without decay) */
  const ew__moments_t *mom;   /* with EW__WANT_MOMENTS: the exact moments (NULL if the kind has none) */
  const ew__sketch_t *sketch; /* with EW__WANT_MOMENTS, the fd kind: its sketch (mom is NULL) */
  const double *mean;         /* the exact mean, for kinds that keep one without moments (fd) */
  const float *seg[2];        /* with EW__WANT_ROWS, kinds that keep rows: the rows in arrival order */
  size_t nseg[2];             /* as two contiguous row-major segments (nseg[1] may be 0) */
  const uint32_t *lab[2];     /* and their labels in the same two runs, or NULL (none kept) */
  bool keeps_rows;
} ew__src_t;

typedef struct {
  const char *name;
  uint32_t tag; /* the section the kind is saved in (state/) */
  void (*free)(ew__acc_t *a);
  /* Forgets every row; keeps the configuration. */
  void (*clear)(ew__acc_t *a);
  /* Heap bytes held (the state, not workspace). */
  size_t (*bytes)(const ew__acc_t *a);
  /* Reads the batch and changes nothing: leaves in *p what apply folds in. Results that must
   * outlive the call come from `keep`, temporaries from `tmp` (given back before returning).
   * Returns 0 or EW_ENOMEM. */
  int (*prepare)(const ew__acc_t *a, const ew__in_t *in, ew__prep_t *p, ew__ws_t *keep,
                 ew__ws_t *tmp);
  /* Workspace bytes (counted with ew__ws_size per allocation) apply needs for this batch. */
  size_t (*apply_ws)(const ew__acc_t *a, const ew__in_t *in);
  /* Folds the batch in. Cannot fail once apply_ws bytes were reserved in ws. */
  void (*apply)(ew__acc_t *a, const ew__in_t *in, const ew__prep_t *p, ew__ws_t *ws);
  /* a ← a ⊕ o for an accumulator of the same kind and dimension (associative, exact up to
   * rounding); NULL for kinds whose state has no union (a window describes an arrival order). */
  void (*merge)(ew__acc_t *a, const ew__acc_t *o);
  /* Every weight times g in (0, 1] (forgetting); NULL for kinds that do not forget. */
  void (*scale)(ew__acc_t *a, double g);
  /* Fills *out with what `want` (EW__WANT_*) asks for; may bring lazily kept moments up to date
   * (workspace from ws). tail > 0 asks for only the last `tail` rows (kinds that keep rows; the
   * moments of that part are built in ws and live as long as the caller's use of ws). Returns 0
   * or EW_ENOMEM. */
  int (*view)(ew__acc_t *a, int want, uint64_t tail, ew__src_t *out, ew__ws_t *ws);
  /* The saved form: its length, writing it, and reading it back into a cleared accumulator of
   * the same configuration (len is the section's length; errors are reported through r). */
  uint64_t (*saved_len)(const ew__acc_t *a);
  void (*save)(const ew__acc_t *a, ew__wr_t *w);
  void (*load)(ew__acc_t *a, ew__rd_t *r, uint64_t len);
} ew__acc_ops_t;

/* Every kind's struct begins with this. */
struct ew__acc {
  const ew__acc_ops_t *ops;
};

/* Constructors: NULL when out of memory. half_life in rows (> 0; for fd, 0 = no decay). */
ew__acc_t *ew__acc_dense_new(size_t d);
ew__acc_t *ew__acc_decay_new(size_t d, double half_life);
ew__acc_t *ew__acc_window_new(size_t d, size_t cap);
ew__acc_t *ew__acc_fd_new(size_t d, size_t ell, double half_life);

/* The rows ℓ the fd kind keeps after each shrink for a configuration: the one field of
 * EW_CONFIG_MAP that applies to the fd kind alone (config.c builds the kind with it). */
size_t ew__acc_fd_ell(const ew_config_t *cfg);

/* Bounds for the admission model (the largest bytes() over the kind's life). */
size_t ew__acc_dense_bound(size_t d);
size_t ew__acc_window_bound(size_t d, size_t cap);
size_t ew__acc_fd_bound(size_t d, size_t ell);
/* True for the fd kind (its view is a sketch, not moments). */
bool ew__acc_is_sketch(const ew__acc_t *a);
/* True for an fd accumulator whose shrink's eigensolvers once failed (it certifies nothing). */
bool ew__acc_fd_broken(const ew__acc_t *a);

/* ---- acc/frozen.c: a read-only copy of one accumulator's view (snapshot.c) ----
 * What src's view offered for `want` (EW__WANT_MOMENTS and/or EW__WANT_ROWS) and `tail` (window
 * kinds), copied: its moments or sketch, and its rows when asked and kept. The copy answers
 * views of exactly those rows (tail 0, or the same tail) with what it holds, and EW_EBADPARAM
 * for anything else. NULL with *rc = EW_ENOMEM (or src's view's code) on failure. */
ew__acc_t *ew__acc_frozen_new(ew__acc_t *src, size_t d, int want, uint64_t tail, ew__ws_t *ws,
                              int *rc);
/* True for a frozen copy of a sketch. */
bool ew__acc_frozen_sketch(const ew__acc_t *a);

/* ---- acc/window.c: what the stream asks of a window beyond the interface ---- */
/* The window's capacity and rows held. */
size_t ew__window_cap(const ew__acc_t *a);
size_t ew__window_count(const ew__acc_t *a);
/* Lays a's window out anew from spans of a's and o's held rows (from 0: a, 1: o), oldest first,
 * and rebuilds its moments; with `labels` the rows' labels with them (a row from a window that
 * keeps none gets 0 — the caller refuses mixing labelled rows with others), else a keeps none
 * afterwards. Spans already checked against both windows and a's capacity. Returns 0 or
 * EW_ENOMEM (a unchanged). */
int ew__window_combine(ew__acc_t *a, const ew__acc_t *o, const ew_window_span_t *spans, size_t n,
                       bool labels, ew__ws_t *ws);
/* Keeps the window's moments on its last n held rows (all of them when n exceeds what it holds):
 * from the range the last call (or the window's own maintenance) left, one un-merge of the rows
 * that left and one merge of the rows that joined, when the ring still holds them, else one pass
 * over the tail; the noise rule of a push applies. A view of exactly those rows then reads these
 * moments. No-op for a window of rows only. Returns 0 or EW_ENOMEM (the moments then are stale,
 * rebuilt when read). */
int ew__window_tail(ew__acc_t *a, uint64_t n, ew__ws_t *ws);
/* Rows ever pushed since the last clear (the ring holds the last count of them). */
uint64_t ew__window_total(const ew__acc_t *a);
/* Takes m, the moments of rows [lo, hi) (absolute, as ew__window_total counts), as the window's
 * own when the ring still holds those rows and the window keeps nothing newer: a tail moved from
 * them later costs an un-merge and a merge instead of a pass. True when taken. */
bool ew__window_adopt(ew__acc_t *a, const ew__moments_t *m, uint64_t lo, uint64_t hi);
/* The moments a frozen copy holds (given, or built from its rows), or NULL. */
const ew__moments_t *ew__acc_frozen_moments(const ew__acc_t *a);
/* True when the window's moments describe exactly its last n rows (all of them when n exceeds
 * what it holds): a view of them reads the moments without a pass over the rows. */
bool ew__window_kept(const ew__acc_t *a, uint64_t n);
/* True for a window of fewer rows than dimensions (cap < d): it keeps rows only, and its view
 * offers no moments (view/ answers from the rows). */
bool ew__window_rows_only(const ew__acc_t *a);
/* True when the window keeps its rows' labels (ew__in_t.labels; a stream's first labelled batch
 * decides, ew_stream_apply). */
bool ew__window_labelled(const ew__acc_t *a);
/* Makes the window keep labels from now on (its label ring allocated). 0 or EW_ENOMEM. */
int ew__window_label_ready(ew__acc_t *a);

/* ---- acc/tokens_acc.c: the tokens kind (a tokens stream's one accumulator, role ALL) ----
 * It keeps the counted tokens of its newest `keep` steps (one segment per step) and the exact
 * sums and quantile sketches of every token since creation (acc/tokens.h). Its interface slots
 * are free, clear, bytes, merge and the saved form; a batch and a view are its own: */

/* A prepared batch of one step's tokens, read where they were sent (the packed buffer of `bytes`
 * the batch owns): per column `sent` values of its dtype, the mask (1 = counted; NULL: every
 * token), the sequences' lengths as sent (u32 little-endian, unaligned); n of the tokens are
 * counted, every one finite and below 2^128 in magnitude, and summed (prepare). Applying it moves
 * the buffer into the step. */
typedef struct {
  size_t n;                        /* counted tokens */
  size_t sent;                     /* tokens sent, counted or not */
  const void *col[EW_COLUMNS_MAX]; /* per column: sent values of dtype[c] */
  ew_dtype_t dtype[EW_COLUMNS_MAX];
  const unsigned char *mask;       /* sent flags, or NULL */
  const void *lengths;             /* has_len: nseq u32, tokens sent per sequence */
  size_t nseq;
  bool has_len;
  uint64_t step;                   /* the step its tokens belong to */
  uint32_t keep;                   /* the window keeps this many newest steps (0: 1) */
  uint64_t keep_bytes;             /* and its tokens in at most this many bytes (0: no bound);
                                      the newest step always stays */
  size_t bytes;                    /* the packed buffer's */
  ew__tall_t sums;                 /* of its counted tokens (seqs and sequence sums: has_len) */
} ew__tbatch_t;

/* What a tokens metric reads. Source step or window: the counted tokens of the newest step or of
 * every step the window keeps, n per column (x[c], contiguous f64, once ew__acc_tokens_column has
 * gathered it), and their sequences (len, nseq;
 * nolen tokens came without lengths); all: the sketches (qs; x NULL). tall: the view's
 * mergeable sums either way (own holds a step or window's). acc and src: what ew__acc_tokens_sorted
 * reads. */
typedef struct {
  size_t ncols;
  uint64_t n;
  const double *x[EW_COLUMNS_MAX];  /* NULL until ew__acc_tokens_column gathers the column */
  const uint32_t *len;
  size_t nseq;
  uint64_t nolen;
  const ew__tall_t *all;  /* source all: the stream's sums (== tall) */
  const ew__tall_t *tall;
  ew__tall_t own;
  const ew__qsketch_t *qs; /* ncols sketches */
  uint64_t steps, first_step, last_step;
  ew__acc_t *acc;
  ew_source_t src;
  size_t first;            /* the view's oldest step (its index in the window) */
} ew__tview_t;

ew__acc_t *ew__acc_tokens_new(size_t ncols);
bool ew__acc_is_tokens(const ew__acc_t *a);
/* The bound of its bytes() for the admission model, besides the window's tokens (which grow
 * with the steps: the embedder counts them, ew__acc_tokens_window_bytes). */
size_t ew__acc_tokens_bound(size_t ncols);
size_t ew__acc_tokens_window_bytes(const ew__acc_t *a);
/* Folds b in: into the newest step's segment when b->step is its step, else a new one (the oldest
 * leaving past `keep`), and into the sums. The packed buffer *data (b's tokens) moves into the
 * step (*data NULL). 0, or EW_ENOMEM with nothing changed (*data still the caller's). */
int ew__acc_tokens_apply(ew__acc_t *a, const ew__tbatch_t *b, void **data);
/* Fills *v for src (EW_SOURCE_STEP, EW_SOURCE_WINDOW or EW_SOURCE_ALL); a window of several steps
 * is laid end to end in ws. 0 or EW_ENOMEM. */
int ew__acc_tokens_view(ew__acc_t *a, ew_source_t src, ew__tview_t *v, ew__ws_t *ws);
/* Reserves what merging o into a needs, so that the interface's merge cannot fail: a's window
 * settled, o's tokens its sketches do not hold yet sorted into a sketch the merge adds. 0 or
 * EW_ENOMEM (a unchanged in what it describes). The merge must follow. */
int ew__acc_tokens_merge_ready(ew__acc_t *a, const ew__acc_t *o);
/* Puts every token of the window the sketches do not hold yet into them, sorted (the newest
 * step's sorted columns kept for its quantiles). 0 or EW_ENOMEM (what is in stays; nothing the
 * stream describes changes either way). Reading the `all` view settles first. */
int ew__acc_tokens_settle(ew__acc_t *a, ew__ws_t *ws);
/* Column c of the step or window view v as f64 (gathered into ws once, from the steps' batches;
 * one f64 batch without a mask is read in place). 0 or EW_ENOMEM. */
int ew__acc_tokens_column(ew__tview_t *v, size_t c, ew__ws_t *ws, const double **out);
/* numpy's `linear` quantile at level of column c of the step or window view v, from the column
 * sorted: the newest step's kept copy (built now if it is not there and the byte bound leaves
 * room), else a sorted copy in ws. 0 or EW_ENOMEM. */
int ew__acc_tokens_quantile(ew__tview_t *v, size_t c, double level, ew__ws_t *ws, double *out);

/* ---- acc/stats_acc.c: the stats kind (a stats stream's one accumulator, role ALL) ----
 * Cells reduced over ranks and batches by the stream's rule (ew_reduce_t): the newest `keep`
 * steps one segment each, and all of them. */

/* A prepared batch: its cells' values and counts (x, k: cells each, counts > 0). */
typedef struct {
  const double *x, *k;
  uint64_t step;
  uint32_t keep;
  uint64_t keep_bytes; /* as ew__tbatch_t's */
} ew__cbatch_t;

/* What a cells metric reads: per cell, the reduction v (mean: Σ count·value) and Σ count c; the
 * value of cell i is v[i]/c[i] for mean, else v[i]. steps 0: nothing yet. */
typedef struct {
  size_t cells;
  ew_reduce_t rule;
  const double *v, *c;
  uint64_t steps, last_step;
} ew__cview_t;

ew__acc_t *ew__acc_stats_new(size_t cells, ew_reduce_t rule);
bool ew__acc_is_stats(const ew__acc_t *a);
size_t ew__acc_stats_bound(size_t cells);
size_t ew__acc_stats_window_bytes(const ew__acc_t *a);
/* Folds b in (its step's segment, new when b->step is not the newest's; all). 0 or EW_ENOMEM
 * with nothing changed. */
int ew__acc_stats_apply(ew__acc_t *a, const ew__cbatch_t *b);
/* *v for src (step, window, all); a window of several steps combined in ws. 0 or EW_ENOMEM. */
int ew__acc_stats_view(ew__acc_t *a, ew_source_t src, ew__cview_t *v, ew__ws_t *ws);
/* Reserves what merging o into a needs (segments for o's steps), so that merge cannot fail. */
int ew__acc_stats_merge_ready(ew__acc_t *a, const ew__acc_t *o);

/* ---- acc/paired.c: the paired kind (a paired stream's one accumulator, role ALL) ----
 * n pairs of rows (x, y) as the uncentred f64 blocks of their features φ (the rows, or random
 * Fourier features of one seeded Ω); a batch is n rows of dx + dy values, x's then y's. */

/* What the paired metrics read: the blocks as sums (divide by n for C), the symmetric ones in
 * their upper triangle only (row-major; the lower holds 0). */
typedef struct {
  uint64_t n;
  size_t dx, dy, m, fx, fy; /* m: rff_dim, 0 for linear features; fx, fy: feature dimensions */
  const double *omega;      /* dx×m (rff) */
  const double *sxx, *sxy, *syy; /* fx×fx, fx×fy, fy×fy */
} ew__pview_t;

ew__acc_t *ew__acc_paired_new(const ew_config_t *c);
bool ew__acc_is_paired(const ew__acc_t *a);
/* The state's bytes for configuration c (the admission model), and the workspace a prepare of n
 * rows takes (its blocks and a chunk's rows and features). */
size_t ew__acc_paired_bound(const ew_config_t *c);
size_t ew__acc_paired_prepare_bytes(const ew_config_t *c, size_t n);
void ew__acc_paired_view(const ew__acc_t *a, ew__pview_t *v);
/* True when a and b map rows to the same features (dims, m and Ω bit for bit). */
bool ew__acc_paired_same_features(const ew__acc_t *a, const ew__acc_t *b);

#endif /* EW_ACC_H */
