/* metrics/metrics_priv.h — what the files of metrics/ share and nothing else sees: a metric's
 * context, the table's row (table.c) and its lookup, the pieces every metric uses and the routes
 * to its eigenvalues (route.c: exactly, by the quick estimate, by the top of the spectrum), and
 * the metric functions the rows name (entropy.c, rank.c, spectrum.c, rows.c). */
#ifndef EW_METRICS_PRIV_H
#define EW_METRICS_PRIV_H

#include "../ew_internal.h"

/* A metric sees its source only through the view (view/): never a stream's or an accumulator's
 * fields. */
typedef struct {
  ew__view_t v;
  ew_source_t src;   /* resolved source and centring (the view is opened with them) */
  int center;
  uint64_t rows;     /* == v.rows, v.weight, v.d: copied for brevity */
  double weight;
  size_t d;
  const double *eig; /* descending, clamped; NULL until needed */
  ew_method_t method; /* the query's method for spectrum-wide metrics */
  double p[EW_METRIC_MAX_PARAMS];       /* resolved parameters (NUMBER, BOOL 0/1, ENUM index) */
  const char *s[EW_METRIC_MAX_PARAMS]; /* STRING parameters (borrowed from the query or the
                                          table), else NULL */
  ew_result_t *out;
  /* tokens streams (tokens.c) */
  ew__tview_t tv;         /* the view of cx->src */
  ew__cview_t cv;         /* stats streams (cells.c): the view of cx->src */
  const ew_config_t *cfg; /* the stream's configuration (its columns) */
  ew__ws_t *ws;           /* workspace for copies (selections reorder what they read) */
  const char *row_name;
  ew_stream_t *stream;    /* tokens, stats and paired streams: what their views are opened on */
} mctx_t;

/* g evaluated at p = λ/T. */
typedef struct {
  int kind; /* 0: p ln p; 1: p^a; 2: sqrt(λ) (not normalised) */
  double T, a;
} gfun_t;

/* ---- what every metric uses, and the routes to its eigenvalues (route.c) ---- */

/* Records a failure in cx->out (code and a sentence from fmt) and returns code. */
int ew__m_fail(mctx_t *cx, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* A view's failure as the metric's answer (a sentence per code). */
int ew__m_view_fail(mctx_t *cx, int rc);
/* Reads the whole spectrum into cx->eig once (a failure answered into cx->out). */
int ew__m_need_eig(mctx_t *cx);
/* Σ w[i] over the d values. */
double ew__m_eig_sum(const double *w, size_t d);
/* tr A and ‖A‖_F² (from cx->eig when set, else the view: O(d²), no eigensolve). */
int ew__m_trace_fro(mctx_t *cx, double *tr, double *fro2);
/* DEGENERATE with a sentence unless tr > 0. */
int ew__m_check_trace(mctx_t *cx, double tr);
/* −Σ p ln p over the first `upto` eigenvalues, p = λ/tr. */
double ew__m_entropy_of(const double *w, size_t d, double tr, size_t upto);
/* A scalar answer (DEGENERATE when not finite). */
int ew__m_scalar(mctx_t *cx, double v);
/* The spectrum and its trace (zero trace: DEGENERATE). */
int ew__m_eig_trace(mctx_t *cx, double *tr);
/* Whether a spectrum-wide metric takes the quick estimate (the query's method; see ew_method_t). */
bool ew__m_want_quick(mctx_t *cx);
/* Σ g(λ) by the quick estimate with its error bar. Returns 0, a negative code (the answer set),
 * or 1: the method is AUTO and the bar exceeds EW__QUICK_AUTO_REL·|Σ g|, so the caller answers
 * exactly instead. */
int ew__m_quick_sum(mctx_t *cx, const ew__quick_t *q, const gfun_t *g, double *sum, double *err);
/* The view's quick estimate (zero trace: DEGENERATE). */
int ew__m_need_quick(mctx_t *cx, const ew__quick_t **q);
/* Sets the answer's error bar to e. */
void ew__m_set_error(mctx_t *cx, double e);
/* von Neumann entropy, exact or quick (the bar then in cx->out); *tr the trace when exact. */
int ew__m_spectral_entropy(mctx_t *cx, double *h, double *tr);
/* The top k eigenvalues (from the spectrum when at hand, else block Lanczos or the sketch's
 * intervals: *resid their bound, else 0). */
int ew__m_need_top(mctx_t *cx, size_t k, double *theta, double *resid);
/* λ₁ and tr A (zero trace: DEGENERATE), *r the bound on λ₁ (0 when exact). */
int ew__m_top1_trace(mctx_t *cx, double *l1, double *tr, double *r);
/* Rényi entropy of order a (1: von Neumann; inf: min-entropy; 2 from ‖A‖_F²). */
int ew__m_renyi_of(mctx_t *cx, double a, double *out);

/* ---- the table (table.c) ---- */

typedef int (*metric_fn)(mctx_t *cx);

typedef struct {
  ew_metric_info_t info; /* the typed columns (eigenwatch.h) */
  metric_fn fn;
} metric_row_t;

/* The row of the metric named `name`; NULL when there is none (or name is NULL). */
const metric_row_t *ew__m_find_row(const char *name);

/* ---- the metrics: each a row's function ----
 * Each computes its row's value (the row's doc says what) from the view in cx into cx->out, with
 * cx->p and cx->s resolved, and returns 0 or the code it answered with (cx->out's message set). */

/* entropy.c */
/* −Σ p ln p, exactly or by the quick estimate (its bar then set). */
int ew__m_entropy(mctx_t *cx);
/* The entropy over ln d (DEGENERATE for d = 1); a quick estimate's bar scaled alike. */
int ew__m_entropy_normalized(mctx_t *cx);
/* Rényi entropy of order p[0] (alpha). */
int ew__m_renyi(mctx_t *cx);
/* The Vendi score: exp of the Rényi entropy of order p[0] (q). */
int ew__m_vendi(mctx_t *cx);
/* The effective rank exp(entropy) (also diff_erank's, on window_cn). */
int ew__m_erank(mctx_t *cx);
/* −Σ_{i≤k} p_i ln p_i / ln d over the top k = p[0] eigenvalues (DEGENERATE for d = 1). */
int ew__m_entropy_truncated(mctx_t *cx);

/* rank.c */
/* RankMe: exp(−Σ r ln r), r = σ/Σσ + eps (p[0]) over the top min(n, d) singular values. */
int ew__m_rankme(mctx_t *cx);
/* (tr A)² / ‖A‖_F², no eigensolve. */
int ew__m_participation_ratio(mctx_t *cx);
/* tr A / λ₁; the top route's bound on λ₁ carried into the error. */
int ew__m_stable_rank(mctx_t *cx);
/* λ_max / λ_min over the eigenvalues above rcond (p[0]) · λ_max. */
int ew__m_condition_number(mctx_t *cx);
/* λ₁ / tr A; the top route's bound on λ₁ carried into the error. */
int ew__m_anisotropy(mctx_t *cx);
/* λ₁ / λ₂ (DEGENERATE when d = 1 or λ₂ is zero within its bound). */
int ew__m_spectral_gap(mctx_t *cx);

/* tokens.c: the metrics of tokens streams (docs/METRICS.md, "Token streams"); p[] and s[] as
 * their rows' parameters say */
int ew__m_token_mean(mctx_t *cx);
int ew__m_token_std(mctx_t *cx);
int ew__m_token_min(mctx_t *cx);
int ew__m_token_max(mctx_t *cx);
int ew__m_token_count(mctx_t *cx);
int ew__m_seq_mean(mctx_t *cx);
int ew__m_seq_sum_mean(mctx_t *cx);
int ew__m_quantile(mctx_t *cx);
int ew__m_frac_above(mctx_t *cx);
int ew__m_histogram(mctx_t *cx);
int ew__m_cov(mctx_t *cx);
int ew__m_corr(mctx_t *cx);
int ew__m_cov_band_frac(mctx_t *cx);
int ew__m_cov_top(mctx_t *cx);
int ew__m_window_frac_above(mctx_t *cx);

/* cells.c: the metrics of stats streams (docs/METRICS.md, "Stats streams") */
int ew__m_cells(mctx_t *cx);
int ew__m_cell_mean(mctx_t *cx);
int ew__m_cell_max(mctx_t *cx);
int ew__m_cell_min(mctx_t *cx);
int ew__m_by_row(mctx_t *cx);

/* spectrum.c */
/* The top k = p[0] eigenvalues (at most d; on a sketch at most its 2ℓ + 1 directions), with
 * their unit eigenvectors when p[1]. */
int ew__m_topk(mctx_t *cx);
/* The live estimate's top p[0] vectors: their Rayleigh quotients, the certificate as the error,
 * the vectors themselves when p[1]; as_of is the rows the estimate describes. */
int ew__m_live_topk(mctx_t *cx);
/* All d eigenvalues, descending. */
int ew__m_spectrum(mctx_t *cx);
/* tr A. */
int ew__m_trace(mctx_t *cx);
/* Σ σ(X) / W = Σ √λ / √W, exactly or by the quick estimate (its bar then set). */
int ew__m_nuclear_norm(mctx_t *cx);

/* rows.c */
/* The top min(n, d) column norms of the rows summed, over W (from diag A; also mnn_exact's). */
int ew__m_mnn(mctx_t *cx);
/* The mean over dimensions of the std (ddof = 1) of the L2-normalised window rows. */
int ew__m_l2_std(mctx_t *cx);
/* kernel.c: kernel metrics of the window's rows */
int ew__m_dse(mctx_t *cx);
int ew__m_rke(mctx_t *cx);
int ew__m_vendi_kernel(mctx_t *cx);
int ew__m_dsmi(mctx_t *cx);
/* groups.c: grouped metrics of a labelled window */
int ew__m_group_erank(mctx_t *cx);
int ew__m_group_separation(mctx_t *cx);
int ew__m_centroid_cosine(mctx_t *cx);
/* paired.c: a paired stream's Schur complement entropies */
int ew__m_sce(mctx_t *cx);
int ew__m_sce_text(mctx_t *cx);

#endif /* EW_METRICS_PRIV_H */
