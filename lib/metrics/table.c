/* metrics/table.c — the metric table.
 *
 * Every metric is one row of `metric_table` below: its name, value kind, accepted sources and
 * defaults, parameters (with defaults and ranges), cost class, one-line doc, and the function that
 * computes it (entropy.c, rank.c, spectrum.c, rows.c). The dispatcher (query.c), the `metrics`
 * listing and docs/METRICS.md are all driven by this one table; adding a metric is adding a row
 * and its function.
 *
 * Conventions shared by every row (docs/METRICS.md, "Conventions"): eigenvalues λ are those of the chosen matrix A
 * (C = M2/W when centred, S = C + μμᵀ when not, ZᵀZ/N for window_cn), clamped at 0 with the
 * number clamped reported; p = λ / Σλ; natural log; 0·ln 0 = 0. States that cannot define a
 * metric (no rows; fewer than 2 rows for a centred matrix; zero trace for metrics normalised by
 * the trace) answer EW_EDEGENERATE with a sentence, never 0 or NaN. */
#include "metrics_priv.h"

#include <math.h>
#include <string.h>

#define SRC_ALL EW_SOURCE_BIT(EW_SOURCE_ALL)
#define SRC_WIN EW_SOURCE_BIT(EW_SOURCE_WINDOW)
#define SRC_CN EW_SOURCE_BIT(EW_SOURCE_WINDOW_CN)
#define SRC_EVERY (SRC_ALL | SRC_WIN | SRC_CN)

#define PNUM(nm, def, lo, hi, intg, d)                                                            \
  {.name = nm, .type = EW_PARAM_NUMBER, .default_value = def, .min = lo, .max = hi,                \
   .integer = intg, .doc = d}

static const ew_param_info_t P_ALPHA[] = {
    PNUM("alpha", 2.0, 0.0, INFINITY, 0, "Renyi order; 1 = von Neumann, inf = min-entropy")};
static const ew_param_info_t P_Q[] = {
    PNUM("q", 1.0, 0.0, INFINITY, 0, "order of the Vendi score; inf = 1/p_max")};
static const ew_param_info_t P_EPS[] = {
    PNUM("eps", 1e-7, 0.0, 1.0, 0, "added to each normalised singular value (RankMe's epsilon)")};
static const ew_param_info_t P_RCOND[] = {
    PNUM("rcond", 1e-12, 0.0, 1.0, 0, "eigenvalues at or below rcond*lambda_max are ignored")};
static const ew_param_info_t P_TOPK[] = {
    PNUM("k", 8.0, 1.0, 65536.0, 1, "how many eigenvalues"),
    PNUM("vectors", 0.0, 0.0, 1.0, 1, "1 = also return unit eigenvectors")};
static const ew_param_info_t P_LIVE[] = {
    PNUM("k", 64.0, 1.0, 64.0, 1, "how many live vectors (at most the stream's live_k)"),
    PNUM("vectors", 0.0, 0.0, 1.0, 1, "1 = also return the unit vectors")};
static const ew_param_info_t P_TRUNC[] = {
    PNUM("k", 32.0, 1.0, 65536.0, 1, "number of leading eigenvalues summed")};

#define PCOL(nm, def, d)                                                                          \
  {.name = nm, .type = EW_PARAM_STRING, .default_str = def, .max_len = EW_COLUMN_NAME_MAX,         \
   .charset = EW_CHARSET_NAME, .doc = d}
#define P_COLUMN PCOL("column", NULL, "the column (default: the stream's first)")
#define P_MAX_ROWS                                                                                \
  PNUM("max_rows", 4096.0, 2.0, 16384.0, 1, "above it, a uniform sample of this many window rows " \
       "(drawn with the stream's seed); at most 16384: a 2 GiB kernel matrix")
static const char *const KERNEL_NAMES[] = {"gaussian", "laplacian", "cosine", NULL};
static const ew_param_info_t K_DSE[] = {
    PNUM("sigma", 10.0, 0.0, INFINITY, 0, "the Gaussian kernel's bandwidth (dse-dsmi's default)"),
    PNUM("t", 1.0, 0.0, INFINITY, 0, "the diffusion time: eigenvalues to the power t"),
    P_MAX_ROWS};
static const char *const DSMI_MODES[] = {"matched", "full", NULL};
static const ew_param_info_t K_DSMI[] = {
    PNUM("sigma", 10.0, 0.0, INFINITY, 0, "the Gaussian kernel's bandwidth (dse-dsmi's default)"),
    PNUM("t", 1.0, 0.0, INFINITY, 0, "the diffusion time: eigenvalues to the power t"),
    {.name = "mode", .type = EW_PARAM_ENUM, .default_value = 0, .names = DSMI_MODES,
     .doc = "matched: each label against same-size subsets of every row (the reference's); full: "
            "DSE(all) minus the labels' weighted DSEs"},
    PNUM("reps", 5.0, 1.0, 64.0, 1, "baseline subsets drawn per label when more than 64 exist"),
    P_MAX_ROWS};
static const ew_param_info_t K_RKE[] = {
    PNUM("sigma", NAN, 0.0, INFINITY, 0, "the Gaussian kernel's bandwidth (required)"), P_MAX_ROWS};
static const ew_param_info_t K_VENDI[] = {
    {.name = "kernel", .type = EW_PARAM_ENUM, .default_value = 0, .names = KERNEL_NAMES,
     .doc = "gaussian exp(-|x-y|^2/(2 sigma^2)), laplacian exp(-|x-y|_1/sigma), cosine"},
    PNUM("sigma", NAN, 0.0, INFINITY, 0, "the bandwidth (required for gaussian and laplacian)"),
    PNUM("q", 1.0, 0.0, INFINITY, 0, "order of the Vendi score; inf = 1/p_max"), P_MAX_ROWS};
#define P_X PCOL("x", "logp", "the first column")
#define P_Y PCOL("y", "advantage", "the second column")
static const ew_param_info_t T_COL[] = {P_COLUMN};
static const ew_param_info_t T_QUANT[] = {
    P_COLUMN, PNUM("level", 0.5, 0.0, 1.0, 0, "the quantile's level in [0, 1]")};
static const ew_param_info_t T_ABOVE[] = {
    P_COLUMN, PNUM("threshold", 1.5, -INFINITY, INFINITY, 0,
                   "tokens strictly above it count (1.5 nats: ARES's high-entropy count)")};
static const ew_param_info_t T_HIST[] = {
    P_COLUMN, PNUM("bins", 64.0, 1.0, 4096.0, 1, "number of equal bins"),
    PNUM("lo", 0.0, -1e300, 1e300, 0, "the first bin's low edge (values below it count there)"),
    PNUM("hi", 8.0, -1e300, 1e300, 0, "the last bin's high edge (values at or above count there)")};
static const ew_param_info_t T_PAIR[] = {P_X, P_Y};
static const ew_param_info_t T_BAND[] = {
    P_X, P_Y, PNUM("lb", 1.0, -INFINITY, INFINITY, 0, "the band's low end (exclusive)"),
    PNUM("ub", 5.0, -INFINITY, INFINITY, 0, "the band's high end (exclusive)")};
static const ew_param_info_t T_TOP[] = {
    P_X, P_Y, PNUM("ratio", 2e-4, 0.0, 1.0, 0, "k = max(1, floor(ratio N)): a fraction")};
static const ew_param_info_t T_WIN[] = {
    P_COLUMN, PNUM("w", 8.0, 1.0, 65536.0, 1, "tokens in a window"),
    PNUM("threshold", 1.5, -INFINITY, INFINITY, 0, "windows whose mean is above it count")};

#define NP(arr) (sizeof(arr) / sizeof(arr[0]))
/* ROW(name, value kind, sources, default source, default center, needs, cost note, sketch answer,
 *     merges exactly, method applies, params, function, doc). Every row applies to matrix
 * streams (the only kind today). */
#define ROW(nm, vk, srcs, dsrc, dctr, nd, note, sk, mrg, mth, pa, fnp, docs)                      \
  {{.name = nm, .kind = EW_VALUE_##vk, .kinds = EW_METRIC_KIND_MATRIX, .sources = srcs,           \
    .def_source = dsrc, .def_center = dctr, .needs = nd, .cost_note = note,                       \
    .sketch = EW_SK_##sk, .merges_exact = mrg, .method = mth, .params = pa, .nparams = NP_##pa,    \
    .doc = docs},                                                                                 \
   fnp}
#define NP_NULL 0
#define NP_P_ALPHA NP(P_ALPHA)
#define NP_P_Q NP(P_Q)
#define NP_P_EPS NP(P_EPS)
#define NP_P_RCOND NP(P_RCOND)
#define NP_P_TOPK NP(P_TOPK)
#define NP_P_LIVE NP(P_LIVE)
#define NP_P_TRUNC NP(P_TRUNC)
#define NP_T_COL NP(T_COL)
#define NP_T_QUANT NP(T_QUANT)
#define NP_T_ABOVE NP(T_ABOVE)
#define NP_T_HIST NP(T_HIST)
#define NP_T_PAIR NP(T_PAIR)
#define NP_T_BAND NP(T_BAND)
#define NP_T_TOP NP(T_TOP)
#define NP_T_WIN NP(T_WIN)
#define NP_K_DSE NP(K_DSE)
#define NP_K_RKE NP(K_RKE)
#define NP_K_DSMI NP(K_DSMI)
#define NP_K_VENDI NP(K_VENDI)
/* TROW(name, value kind, sources, merges exactly, params, function, doc): a tokens metric. Its
 * default source is the newest step; "merges exactly" says whether its answer on source all is
 * that of the union after a merge (sums, co-moments; the sketch within its stated error). */
#define SRC_STEP EW_SOURCE_BIT(EW_SOURCE_STEP)
#define SRC_TSTEPS (SRC_STEP | SRC_WIN)
#define SRC_TALL (SRC_STEP | SRC_WIN | SRC_ALL)
/* CROW(name, value kind, function, doc): a stats metric, from any of its views (newest step by
 * default); every one merges exactly (the reductions combine by the rule). */
#define CROW(nm, vk, fnp, docs)                                                                   \
  {{.name = nm, .kind = EW_VALUE_##vk, .kinds = EW_METRIC_KIND_STATS, .sources = SRC_TALL,         \
    .def_source = EW_SOURCE_STEP, .def_center = 0, .needs = EW_NEED_CELLS, .sketch = EW_SK_EXACT,  \
    .merges_exact = 1, .method = 0, .params = NULL, .nparams = 0, .doc = docs},                   \
   fnp}
#define TROW(nm, vk, srcs, mrg, pa, fnp, docs)                                                    \
  {{.name = nm, .kind = EW_VALUE_##vk, .kinds = EW_METRIC_KIND_TOKENS, .sources = srcs,           \
    .def_source = EW_SOURCE_STEP, .def_center = 0, .needs = EW_NEED_TOKENS,                       \
    .sketch = EW_SK_EXACT, .merges_exact = mrg, .method = 0, .params = pa, .nparams = NP_##pa,    \
    .doc = docs},                                                                                 \
   fnp}
/* PROW(name, function, doc): a paired metric, of every pair (source all); it merges exactly (the
 * blocks add). */
#define PROW(nm, fnp, docs)                                                                       \
  {{.name = nm, .kind = EW_VALUE_SCALAR, .kinds = EW_METRIC_KIND_PAIRED, .sources = SRC_ALL,       \
    .def_source = EW_SOURCE_ALL, .def_center = 0, .needs = EW_NEED_PAIRED, .sketch = EW_SK_EXACT,  \
    .merges_exact = 1, .method = 0, .params = NULL, .nparams = 0, .doc = docs},                   \
   fnp}
#define ALL EW_SOURCE_ALL
#define EIG EW_NEED_EIGENVALUES
#define TOP EW_NEED_TOP

static const metric_row_t metric_table[] = {
    ROW("entropy", SCALAR, SRC_EVERY, ALL, 1, EIG, NULL, BRACKET, 1, 1, NULL, ew__m_entropy,
        "von Neumann entropy -sum p ln p of p = lambda/sum lambda"),
    ROW("entropy_normalized", SCALAR, SRC_EVERY, ALL, 1, EIG, NULL, BRACKET, 1, 1, NULL,
        ew__m_entropy_normalized, "entropy / ln d, in [0, 1]"),
    ROW("renyi", SCALAR, SRC_EVERY, ALL, 1, EIG, "alpha=2: O(d^2)", BRACKET, 1, 1, P_ALPHA,
        ew__m_renyi,
        "Renyi entropy ln(sum p^alpha)/(1-alpha); alpha=1 entropy, alpha=inf -ln p_max"),
    ROW("vendi", SCALAR, SRC_EVERY, ALL, 1, EIG, "q=2: O(d^2)", BRACKET, 1, 1, P_Q, ew__m_vendi,
        "Vendi score exp(renyi_q); with normalize=l2 and center=false equals score_dual(X, q)"),
    ROW("erank", SCALAR, SRC_EVERY, ALL, 1, EIG, NULL, BRACKET, 1, 1, NULL, ew__m_erank,
        "Roy-Vetterli effective rank exp(entropy)"),
    ROW("rankme", SCALAR, SRC_ALL | SRC_WIN, ALL, 0, EIG, NULL, REFUSED, 1, 0, P_EPS, ew__m_rankme,
        "RankMe exp(-sum r ln r), r = sigma/sum sigma + eps over min(n,d) singular values of the "
        "uncentred rows"),
    ROW("participation_ratio", SCALAR, SRC_EVERY, ALL, 1, EW_NEED_MATRIX, NULL, BRACKET, 1, 0, NULL,
        ew__m_participation_ratio, "(tr A)^2 / tr(A^2), no eigensolve"),
    ROW("stable_rank", SCALAR, SRC_EVERY, ALL, 1, TOP, NULL, INTERVAL, 1, 0, NULL,
        ew__m_stable_rank, "tr A / lambda_max"),
    ROW("condition_number", SCALAR, SRC_EVERY, ALL, 1, EIG, NULL, REFUSED, 1, 0, P_RCOND,
        ew__m_condition_number, "lambda_max / lambda_min over eigenvalues above rcond*lambda_max"),
    ROW("anisotropy", SCALAR, SRC_EVERY, ALL, 1, TOP, NULL, INTERVAL, 1, 0, NULL, ew__m_anisotropy,
        "lambda_max / tr A"),
    ROW("spectral_gap", SCALAR, SRC_EVERY, ALL, 1, TOP, NULL, INTERVAL, 1, 0, NULL,
        ew__m_spectral_gap, "lambda_1 / lambda_2"),
    ROW("topk", LIST, SRC_EVERY, ALL, 1, TOP, "block Lanczos above d=512", INTERVAL, 1, 0, P_TOPK,
        ew__m_topk, "the k largest eigenvalues, descending (optionally with unit eigenvectors)"),
    {{.name = "live_topk", .kind = EW_VALUE_LIST, .kinds = EW_METRIC_KIND_MATRIX,
      .sources = SRC_ALL | SRC_WIN, .def_source = ALL, .def_center = 1,
      .needs = EW_NEED_LIVE | TOP,
      .cost_own = "5 block Lanczos steps of max(8, k+4) columns (the certificate)",
      .sketch = EW_SK_CERTIFICATE, .merges_exact = 0, .method = 0, .params = P_LIVE,
      .nparams = NP(P_LIVE),
      .doc = "the live estimate's top directions (random-order block power): v'Av per vector, "
             "error = max_i max(||Av_i - th_i v_i||, |lambda_i - th_i| bracket) / th_i against "
             "the source"},
     ew__m_live_topk},
    ROW("spectrum", LIST, SRC_EVERY, ALL, 1, EIG, NULL, REFUSED, 1, 0, NULL, ew__m_spectrum,
        "all d eigenvalues, descending"),
    ROW("trace", SCALAR, SRC_EVERY, ALL, 1, EW_NEED_DIAG, NULL, EXACT, 1, 0, NULL, ew__m_trace,
        "tr A (total variance when centred)"),
    ROW("nuclear_norm", SCALAR, SRC_EVERY, ALL, 1, EIG, NULL, BRACKET, 1, 1, NULL,
        ew__m_nuclear_norm,
        "sum of singular values of the (preprocessed, centred if center) rows divided by n"),
    ROW("mnn", SCALAR, SRC_EVERY, ALL, 1, EW_NEED_DIAG, NULL, EXACT, 1, 0, NULL, ew__m_mnn,
        "Matrix Nuclear-Norm L1,2 approximation: top min(n,d) column norms summed, over n"),
    ROW("entropy_truncated", SCALAR, SRC_EVERY, ALL, 1, EIG, NULL, REFUSED, 1, 0, P_TRUNC,
        ew__m_entropy_truncated, "UNComp truncated entropy -sum_{i<=k} p_i ln p_i / ln d"),
    ROW("diff_erank", SCALAR, SRC_CN, EW_SOURCE_WINDOW_CN, 0, EW_NEED_ROWS | EIG, NULL, EXACT, 0,
        0, NULL, ew__m_erank,
        "Diff-eRank's erank: window rows centred, L2-normalised, exp(entropy of Z'Z/N)"),
    ROW("mnn_exact", SCALAR, SRC_CN, EW_SOURCE_WINDOW_CN, 0, EW_NEED_ROWS, NULL, EXACT, 0, 0, NULL,
        ew__m_mnn, "Matrix Nuclear-Norm / N with Diff-eRank preprocessing, exact on the window"),
    ROW("l2_std", SCALAR, SRC_WIN, EW_SOURCE_WINDOW, 0, EW_NEED_ROWS, NULL, EXACT, 0, 0, NULL,
        ew__m_l2_std,
        "mean over dimensions of the std (ddof=1) of L2-normalised window rows; 0 = collapsed"),
    ROW("dse", SCALAR, SRC_WIN, EW_SOURCE_WINDOW, 0, EW_NEED_ROWS, "an n x n eigensolve, n rows",
        EXACT, 0, 0, K_DSE, ew__m_dse,
        "diffusion spectral entropy in bits: -sum p log2 p, p = |eig(D^-1/2 G D^-1/2)|^t normalised "
        "(+ 2.2e-16), G the Gaussian kernel of the window rows"),
    ROW("dsmi", SCALAR, SRC_WIN, EW_SOURCE_WINDOW, 0, EW_NEED_ROWS,
        "an eigensolve per label and per baseline subset", EXACT, 0, 0, K_DSMI, ew__m_dsmi,
        "diffusion spectral mutual information in bits between the window rows and their labels"),
    ROW("rke", SCALAR, SRC_WIN, EW_SOURCE_WINDOW, 0, EW_NEED_ROWS, "O(n^2 d), no eigensolve",
        EXACT, 0, 0, K_RKE, ew__m_rke,
        "RKE mode count 1 / mean_ij k(x_i, x_j)^2, k Gaussian of bandwidth sigma"),
    ROW("vendi_kernel", SCALAR, SRC_WIN, EW_SOURCE_WINDOW, 0, EW_NEED_ROWS,
        "an n x n eigensolve, n rows", EXACT, 0, 0, K_VENDI, ew__m_vendi_kernel,
        "Vendi score exp(H_q(eig(K/n))) of the window rows under a kernel (vendi_score.score_K)"),
    ROW("group_erank", LIST, SRC_WIN, EW_SOURCE_WINDOW, 0, EW_NEED_ROWS,
        "per label an eigensolve of order min(rows, d)", EXACT, 0, 0, NULL, ew__m_group_erank,
        "per label, ascending (group_erank_labels): erank of the centred covariance of its rows"),
    ROW("group_separation", SCALAR, SRC_WIN, EW_SOURCE_WINDOW, 0, EW_NEED_ROWS, NULL, EXACT, 0, 0,
        NULL, ew__m_group_separation,
        "between- over within-label scatter: sum_i n_i |mu_i - mu|^2 / sum_rows |x - mu_label|^2"),
    ROW("centroid_cosine", SCALAR, SRC_WIN, EW_SOURCE_WINDOW, 0, EW_NEED_ROWS, NULL, EXACT, 0, 0,
        NULL, ew__m_centroid_cosine,
        "mean over label pairs i < j of cos(mu_i, mu_j), mu the labels' uncentred means"),
    TROW("token_mean", SCALAR, SRC_TALL, 1, T_COL, ew__m_token_mean,
         "sum x / N over the counted tokens of every rank (verl token-mean; TRL's global mean)"),
    TROW("token_std", SCALAR, SRC_TALL, 1, T_COL, ew__m_token_std,
         "population std (divided by N) of the counted tokens"),
    TROW("token_min", SCALAR, SRC_TALL, 1, T_COL, ew__m_token_min, "the smallest counted token"),
    TROW("token_max", SCALAR, SRC_TALL, 1, T_COL, ew__m_token_max, "the largest counted token"),
    TROW("token_count", SCALAR, SRC_TALL, 1, T_COL, ew__m_token_count, "N, the counted tokens"),
    TROW("seq_mean", SCALAR, SRC_TALL, 1, T_COL, ew__m_seq_mean,
         "mean over sequences with a counted token of (sum_t x)/n_t (verl seq-mean-token-mean); "
         "needs lengths"),
    TROW("seq_sum_mean", SCALAR, SRC_TALL, 1, T_COL, ew__m_seq_sum_mean,
         "mean over sequences with a counted token of sum_t x (verl seq-mean-token-sum); needs "
         "lengths"),
    TROW("quantile", SCALAR, SRC_TALL, 1, T_QUANT, ew__m_quantile,
         "numpy's default (linear) quantile at level of the counted tokens; source all: from a "
         "mergeable sketch, its rank error (a share of N) as the error"),
    TROW("frac_above", SCALAR, SRC_TSTEPS, 0, T_ABOVE, ew__m_frac_above,
         "share of counted tokens with x > threshold"),
    TROW("histogram", LIST, SRC_TSTEPS, 0, T_HIST, ew__m_histogram,
         "counts of the counted tokens in bins equal bins on [lo, hi); below lo in the first, at "
         "or above hi in the last"),
    TROW("cov", SCALAR, SRC_TALL, 1, T_PAIR, ew__m_cov,
         "sum (x - mean x)(y - mean y) / N between columns x and y (Cov(log pi, A))"),
    TROW("corr", SCALAR, SRC_TALL, 1, T_PAIR, ew__m_corr, "Pearson's r between columns x and y"),
    TROW("cov_band_frac", SCALAR, SRC_TSTEPS, 0, T_BAND, ew__m_cov_band_frac,
         "share of tokens with lb < (x - mean x)(y - mean y) < ub (Clip-Cov's candidates)"),
    TROW("cov_top", SCALAR, SRC_TSTEPS, 0, T_TOP, ew__m_cov_top,
         "the k-th largest (x - mean x)(y - mean y), k = max(1, floor(ratio N)) (KL-Cov's "
         "threshold)"),
    TROW("window_frac_above", SCALAR, SRC_TSTEPS, 0, T_WIN, ew__m_window_frac_above,
         "share of positions with w tokens ahead inside their sequence whose window mean exceeds "
         "threshold (ARES's high window entropy); needs lengths"),
    CROW("cells", LIST, ew__m_cells,
         "every cell's value (row-major over the shape), reduced over ranks and batches by the "
         "stream's rule"),
    CROW("cell_mean", SCALAR, ew__m_cell_mean, "the count-weighted mean of the cells' values"),
    CROW("cell_max", SCALAR, ew__m_cell_max, "the largest cell value"),
    CROW("cell_min", SCALAR, ew__m_cell_min, "the smallest cell value"),
    CROW("by_row", LIST, ew__m_by_row,
         "per row of the shape (layer), its cells reduced by the stream's rule (mean: "
         "count-weighted)"),
    PROW("sce", ew__m_sce,
         "Schur complement entropy exp(-sum l ln(l/s)) of S = Cyy - Cxy^T (Cxx + 1e-12 I)^+ Cxy, "
         "l its eigenvalues clamped at 1e-10, s = sum l: the y side's diversity x does not "
         "explain (Dissecting CLIP's vendi_complement, its s-weighting kept)"),
    PROW("sce_text", ew__m_sce_text,
         "the same entropy of Cxy^T (Cxx + 1e-12 I)^+ Cxy: the y variance x explains (Dissecting "
         "CLIP's vendi_complement_difference)"),
};

#define N_METRICS (sizeof metric_table / sizeof metric_table[0])

EW_EXPORT size_t ew_metric_count(void) { return N_METRICS; }

EW_EXPORT const ew_metric_info_t *ew_metric_info(size_t i) {
  return i < N_METRICS ? &metric_table[i].info : NULL;
}

const metric_row_t *ew__m_find_row(const char *name) {
  if (!name)
    return NULL;
  for (size_t i = 0; i < N_METRICS; i++)
    if (strcmp(metric_table[i].info.name, name) == 0)
      return &metric_table[i];
  return NULL;
}

EW_EXPORT const ew_metric_info_t *ew_metric_find(const char *name) {
  const metric_row_t *r = ew__m_find_row(name);
  return r ? &r->info : NULL;
}
