/* eigenwatch_metrics.h — part of eigenwatch.h (include that, not this): the metric table, its
 * typed columns and parameters, and the functions that read it. */
#ifndef EIGENWATCH_METRICS_H
#define EIGENWATCH_METRICS_H

/* ---- the metric table ------------------------------------------------------------------------
 * One row per metric, every column typed: nothing here is prose that code parses. The human
 * strings of the `metrics` method and docs/METRICS.md are generated from the columns
 * (ew_metric_sources_str, ew_metric_cost_str, ew_sketch_answer_name). */

/* What a string parameter may contain (ew_param_info_t.charset). */
typedef enum {
  EW_CHARSET_NAME = 0, /* [a-z0-9_], as metric names: a column, a kernel */
  EW_CHARSET_TEXT = 1  /* any byte but control characters (0x00-0x1f, 0x7f) */
} ew_charset_t;

typedef struct {
  const char *name;
  ew_param_type_t type;
  double default_value; /* NUMBER: INFINITY for "inf"; BOOL: 0 or 1; ENUM: index into names */
  double min, max;      /* NUMBER: accepted closed range */
  int integer;          /* NUMBER: 1 if the value must be an integer */
  const char *doc;
  const char *default_str;  /* STRING: the default text (NULL: the parameter has none, and a
                               metric reads its absence) */
  size_t max_len;           /* STRING: most bytes (at least 1) */
  ew_charset_t charset;     /* STRING */
  const char *const *names; /* ENUM: the accepted names, NULL-terminated */
} ew_param_info_t;

#define EW_METRIC_MAX_PARAMS 6

/* The stream kinds a metric applies to (ew_metric_info_t.kinds, bits): matrix streams (dense,
 * window, decay, sketch) and tokens streams (EW_ENUM_stream_kind, create's `kind`). A metric
 * asked of a stream of another kind is refused (EW_EBADPARAM) by this column. */
#define EW_METRIC_KIND_MATRIX (1u << 0)
#define EW_METRIC_KIND_TOKENS (1u << 1)
#define EW_METRIC_KIND_STATS (1u << 2)
#define EW_METRIC_KIND_PAIRED (1u << 3)

/* What a metric reads from its source, which is also its cost class (ew_metric_info_t.needs,
 * bits, listed in this order). XX(SUFFIX, "human name") */
#define EW_NEEDS_MAP(XX)                                                                          \
  XX(ROWS, "window rows")          /* the window's raw rows */                                   \
  XX(EIGENVALUES, "eigenvalues")   /* every eigenvalue of the d x d matrix: O(d^3) */             \
  XX(TOP, "top of the spectrum")   /* the leading eigenpairs: Lanczos, subspace iteration */     \
  XX(MATRIX, "O(d^2)")             /* the matrix read once (trace, Frobenius norm): no solve */   \
  XX(DIAG, "O(d)")                 /* the trace or the diagonal */                               \
  XX(LIVE, "live estimate")        /* the live top-vector estimate */                            \
  XX(TOKENS, "tokens")             /* a tokens view: its counted tokens (O(N)), or its sums */   \
  XX(CELLS, "cells")               /* a stats view: its cells (O(cells)) */                      \
  XX(PAIRED, "paired blocks")      /* a paired stream's blocks: one fx×fx solve, cached */
enum {
#define EW__XX(s, name) EW__NEED_BIT_##s,
  EW_NEEDS_MAP(EW__XX)
#undef EW__XX
  EW__NEED_COUNT
};
enum {
#define EW__XX(s, name) EW_NEED_##s = 1u << EW__NEED_BIT_##s,
  EW_NEEDS_MAP(EW__XX)
#undef EW__XX
};

/* What a metric answers from a sketched stream (d > exact_max_dim, source all).
 * XX(SUFFIX, "wire name") */
#define EW_SKETCH_ANSWER_MAP(XX)                                                                  \
  XX(EXACT, "exact")             /* its inputs (trace, diagonal) are exact in the sketch too */ \
  XX(BRACKET, "bracket")         /* a certified bracket [lo, hi]: value its midpoint */         \
  XX(INTERVAL, "interval")       /* the top of the spectrum within the certificate */           \
  XX(CERTIFICATE, "certificate") /* live_topk: its certificate, widened by the sketch's */      \
  XX(REFUSED, "refused")         /* needs individual small eigenvalues: BAD_PARAM */
typedef enum {
#define EW__XX(s, name) EW_SK_##s,
  EW_SKETCH_ANSWER_MAP(EW__XX)
#undef EW__XX
  EW__SK_COUNT
} ew_sketch_answer_t;

/* The bit of a source in ew_metric_info_t.sources. */
#define EW_SOURCE_BIT(src) (1u << (unsigned)(src))

typedef struct {
  const char *name;
  ew_value_kind_t kind;      /* scalar or list */
  unsigned kinds;            /* EW_METRIC_KIND_* bits: the stream kinds it applies to */
  unsigned sources;          /* EW_SOURCE_BIT of each accepted source */
  ew_source_t def_source;    /* used when a query says EW_SOURCE_DEFAULT */
  int def_center;            /* used when a query says -1 */
  unsigned needs;            /* EW_NEED_* bits */
  const char *cost_note;     /* NULL, or a remark on the cost ("alpha=2: O(d^2)") */
  const char *cost_own;      /* NULL, or a cost sentence that replaces the needs' names (for a
                                metric whose cost the needs do not say: live_topk) */
  ew_sketch_answer_t sketch; /* on a sketched stream */
  int merges_exact;          /* 1: on the merge of two streams (ew_stream_merge) it answers as on
                                the union of their rows; 0: it reads what a merge does not carry
                                (the window, the live estimate) */
  int method;                /* 1: the query's `method` (ew_method_t) chooses how it is computed;
                                0: it is always exact and the method is ignored */
  const ew_param_info_t *params;
  size_t nparams;
  const char *doc;           /* one line */
} ew_metric_info_t;

/* Number of rows in the metric table, and row i (0 <= i < count; borrowed, static). */
size_t ew_metric_count(void);
const ew_metric_info_t *ew_metric_info(size_t i);
/* Row for `name`, or NULL. */
const ew_metric_info_t *ew_metric_find(const char *name);

/* The human strings of a row, generated from its columns into buf[0, cap) (always terminated;
 * truncated if cap is too small). Each returns buf.
 * ew_metric_sources_str: the accepted sources in ew_source_t order, ", "-separated
 * ("all, window, window_cn"). ew_metric_cost_str: cost_own when set, else the needs' names in
 * EW_NEEDS_MAP order joined by " + ", then " (cost_note)" when there is one. */
char *ew_metric_sources_str(const ew_metric_info_t *m, char *buf, size_t cap);
char *ew_metric_cost_str(const ew_metric_info_t *m, char *buf, size_t cap);
/* The static name of a sketch answer ("bracket", ...) or of a need bit ("eigenvalues", ...);
 * NULL when out of range (for ew_need_name: unless exactly one EW_NEED_* bit is set). */
const char *ew_sketch_answer_name(ew_sketch_answer_t a);
const char *ew_need_name(unsigned need_bit);
/* The static name of a parameter type: "number", "bool", "string", "enum" (NULL out of range). */
const char *ew_param_type_name(ew_param_type_t t);

/* Checks one given value against a parameter of metric m and resolves it: 0 and *value (NUMBER:
 * the number; BOOL: 0/1; ENUM: the index of the name) and *str (STRING: p->str; else NULL); or
 * EW_EBADPARAM with a sentence in msg[0, cap) that names the parameter, the metric and what it
 * expected (its type, range, length, charset or names). The one validator: ew_stream_query and
 * the daemon (before queueing a query or storing an eval entry) both use it. */
int ew_param_check(const ew_metric_info_t *m, const ew_param_info_t *pi, const ew_param_t *p,
                   double *value, const char **str, char *msg, size_t cap);
/* The parameter of m called name[0, len) (not NUL-terminated), or NULL. */
const ew_param_info_t *ew_metric_param(const ew_metric_info_t *m, const char *name, size_t len);

#endif /* EIGENWATCH_METRICS_H */
