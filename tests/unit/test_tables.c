/* test_tables.c — the two generated tables: error codes (names, sentences) and the metric table
 * (names unique, docs present, parameters sane, lookup by name, typed columns and the strings
 * generated from them, the parameter validator on every parameter type). */
#include "eigenwatch.h"
#include "tap.h"

#include <ctype.h>
#include <math.h>
#include <string.h>

static int upper_snake(const char *s) {
  if (!*s)
    return 0;
  for (; *s; s++)
    if (!(isupper((unsigned char)*s) || *s == '_'))
      return 0;
  return 1;
}

static void every_error_code_has_a_wire_name_and_a_sentence(void) {
  int n = 0;
  for (int c = EW__ERR_BASE + 1; c < EW__ERR_END; c++, n++) {
    CHECK(upper_snake(ew_err_name(c)), "code %d name '%s'", c, ew_err_name(c));
    CHECK(strlen(ew_strerror(c)) > 10, "code %d sentence '%s'", c, ew_strerror(c));
    CHECK(strcmp(ew_strerror(c), "unknown error") != 0, "code %d has no sentence", c);
  }
  CHECK(n >= 15, "only %d codes", n);
  CHECK(strcmp(ew_err_name(0), "OK") == 0 && strcmp(ew_strerror(0), "success") == 0, "zero");
  CHECK(strcmp(ew_err_name(12345), "INTERNAL") == 0, "unknown code maps to INTERNAL");
  CHECK(strcmp(ew_strerror(-1), "unknown error") == 0, "unknown code sentence");
}

static void design_error_codes_are_all_present(void) {
  const char *want[] = {"BAD_REQUEST", "UNKNOWN_METHOD", "NO_SUCH_STREAM", "DIM_MISMATCH",
                        "BAD_DTYPE",   "NON_FINITE",     "TOO_LARGE",      "STREAM_EXISTS",
                        "UNKNOWN_METRIC", "LIMIT",       "AUTH",           "INTERNAL"};
  for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
    int found = 0;
    for (int c = EW__ERR_BASE + 1; c < EW__ERR_END; c++)
      found |= strcmp(ew_err_name(c), want[i]) == 0;
    CHECK(found, "wire error code %s missing", want[i]);
  }
}

static void metric_table_rows_are_complete_and_unique(void) {
  const char *design[] = {"entropy", "entropy_normalized", "renyi", "vendi", "erank", "rankme",
                          "participation_ratio", "stable_rank", "condition_number", "anisotropy",
                          "spectral_gap", "topk", "spectrum", "trace", "nuclear_norm", "mnn",
                          "entropy_truncated", "diff_erank", "mnn_exact", "l2_std", "live_topk",
                          /* kernel and grouped metrics of the window's rows (DESIGN §13) */
                          "dse", "dsmi", "rke", "vendi_kernel", "group_erank",
                          "group_separation", "centroid_cosine",
                          /* tokens streams (DESIGN §12) */
                          "token_mean", "token_std", "token_min", "token_max", "token_count",
                          "seq_mean", "seq_sum_mean", "quantile", "frac_above", "histogram", "cov",
                          "corr", "cov_band_frac", "cov_top", "window_frac_above",
                          /* stats streams */
                          "cells", "cell_mean", "cell_max", "cell_min", "by_row",
                          /* paired streams (DESIGN §13) */
                          "sce", "sce_text"};
  size_t n = ew_metric_count();
  CHECK(n == sizeof design / sizeof design[0], "table has %zu rows", n);
  for (size_t i = 0; i < sizeof design / sizeof design[0]; i++) {
    const ew_metric_info_t *m = ew_metric_find(design[i]);
    CHECK(m != NULL, "metric %s missing", design[i]);
  }
  for (size_t i = 0; i < n; i++) {
    const ew_metric_info_t *m = ew_metric_info(i);
    CHECK(m->doc && strlen(m->doc) > 10, "%s doc", m->name);
    char src[64], cost[160];
    CHECK(m->sources && *ew_metric_sources_str(m, src, sizeof src), "%s sources", m->name);
    CHECK(m->sources & EW_SOURCE_BIT(m->def_source), "%s default source accepted", m->name);
    CHECK((m->needs || m->cost_own) && *ew_metric_cost_str(m, cost, sizeof cost), "%s cost",
          m->name);
    CHECK(m->kinds == EW_METRIC_KIND_MATRIX || m->kinds == EW_METRIC_KIND_TOKENS ||
              m->kinds == EW_METRIC_KIND_STATS || m->kinds == EW_METRIC_KIND_PAIRED,
          "%s applies to one kind of stream", m->name);
    CHECK(ew_sketch_answer_name(m->sketch) != NULL, "%s sketch answer", m->name);
    CHECK(m->def_center == 0 || m->def_center == 1, "%s default centring", m->name);
    CHECK(ew_metric_find(m->name) == m, "%s lookup", m->name);
    for (size_t j = i + 1; j < n; j++)
      CHECK(strcmp(m->name, ew_metric_info(j)->name) != 0, "duplicate %s", m->name);
    CHECK(m->nparams <= EW_METRIC_MAX_PARAMS, "%s params", m->name);
    for (size_t p = 0; p < m->nparams; p++) {
      const ew_param_info_t *pi = &m->params[p];
      CHECK((pi->type == EW_PARAM_NUMBER && isnan(pi->default_value)) || /* required */
                (pi->min <= pi->default_value && pi->default_value <= pi->max),
            "%s.%s default", m->name, pi->name);
      CHECK(pi->doc && *pi->doc, "%s.%s doc", m->name, pi->name);
    }
  }
  CHECK(ew_metric_info(n) == NULL && ew_metric_find("nope") == NULL, "out of range");
  const ew_metric_info_t *r = ew_metric_find("renyi");
  CHECK(r->nparams == 1 && strcmp(r->params[0].name, "alpha") == 0 && r->params[0].default_value == 2,
        "renyi alpha default 2");
  CHECK(isinf(r->params[0].max), "alpha accepts inf");
  const ew_metric_info_t *k = ew_metric_find("topk");
  CHECK(k->nparams == 2 && k->params[0].default_value == 8 && k->params[0].integer, "topk k=8");
  CHECK(ew_metric_find("rankme")->params[0].default_value == 1e-7, "rankme eps 1e-7");
  CHECK(ew_metric_find("condition_number")->params[0].default_value == 1e-12, "rcond 1e-12");
  CHECK(ew_metric_find("entropy_truncated")->params[0].default_value == 32, "uncomp k 32");
  CHECK(ew_metric_find("vendi")->params[0].default_value == 1, "vendi q 1");
}

/* The strings the `metrics` method and docs/METRICS.md have always shown, now generated from the
 * typed columns: every row, every string, byte for byte. */
static void generated_strings_are_the_published_ones(void) {
  static const struct {
    const char *name, *sources, *cost, *sketch;
  } want[] = {
      {"entropy", "all, window, window_cn", "eigenvalues", "bracket"},
      {"entropy_normalized", "all, window, window_cn", "eigenvalues", "bracket"},
      {"renyi", "all, window, window_cn", "eigenvalues (alpha=2: O(d^2))", "bracket"},
      {"vendi", "all, window, window_cn", "eigenvalues (q=2: O(d^2))", "bracket"},
      {"erank", "all, window, window_cn", "eigenvalues", "bracket"},
      {"rankme", "all, window", "eigenvalues", "refused"},
      {"participation_ratio", "all, window, window_cn", "O(d^2)", "bracket"},
      {"stable_rank", "all, window, window_cn", "top of the spectrum", "interval"},
      {"condition_number", "all, window, window_cn", "eigenvalues", "refused"},
      {"anisotropy", "all, window, window_cn", "top of the spectrum", "interval"},
      {"spectral_gap", "all, window, window_cn", "top of the spectrum", "interval"},
      {"topk", "all, window, window_cn", "top of the spectrum (block Lanczos above d=512)",
       "interval"},
      {"live_topk", "all, window", "5 block Lanczos steps of max(8, k+4) columns (the certificate)",
       "certificate"},
      {"spectrum", "all, window, window_cn", "eigenvalues", "refused"},
      {"trace", "all, window, window_cn", "O(d)", "exact"},
      {"nuclear_norm", "all, window, window_cn", "eigenvalues", "bracket"},
      {"mnn", "all, window, window_cn", "O(d)", "exact"},
      {"entropy_truncated", "all, window, window_cn", "eigenvalues", "refused"},
      {"diff_erank", "window_cn", "window rows + eigenvalues", "exact"},
      {"mnn_exact", "window_cn", "window rows", "exact"},
      {"l2_std", "window", "window rows", "exact"},
      {"dse", "window", "window rows (an n x n eigensolve, n rows)", "exact"},
      {"dsmi", "window", "window rows (an eigensolve per label and per baseline subset)", "exact"},
      {"rke", "window", "window rows (O(n^2 d), no eigensolve)", "exact"},
      {"vendi_kernel", "window", "window rows (an n x n eigensolve, n rows)", "exact"},
      {"group_erank", "window", "window rows (per label an eigensolve of order min(rows, d))",
       "exact"},
      {"group_separation", "window", "window rows", "exact"},
      {"centroid_cosine", "window", "window rows", "exact"},
      {"token_mean", "all, window, step", "tokens", "exact"},
      {"token_std", "all, window, step", "tokens", "exact"},
      {"token_min", "all, window, step", "tokens", "exact"},
      {"token_max", "all, window, step", "tokens", "exact"},
      {"token_count", "all, window, step", "tokens", "exact"},
      {"seq_mean", "all, window, step", "tokens", "exact"},
      {"seq_sum_mean", "all, window, step", "tokens", "exact"},
      {"quantile", "all, window, step", "tokens", "exact"},
      {"frac_above", "window, step", "tokens", "exact"},
      {"histogram", "window, step", "tokens", "exact"},
      {"cov", "all, window, step", "tokens", "exact"},
      {"corr", "all, window, step", "tokens", "exact"},
      {"cov_band_frac", "window, step", "tokens", "exact"},
      {"cov_top", "window, step", "tokens", "exact"},
      {"window_frac_above", "window, step", "tokens", "exact"},
      {"cells", "all, window, step", "cells", "exact"},
      {"cell_mean", "all, window, step", "cells", "exact"},
      {"cell_max", "all, window, step", "cells", "exact"},
      {"cell_min", "all, window, step", "cells", "exact"},
      {"by_row", "all, window, step", "cells", "exact"},
      {"sce", "all", "paired blocks", "exact"},
      {"sce_text", "all", "paired blocks", "exact"},
  };
  CHECK(ew_metric_count() == sizeof want / sizeof want[0], "%zu rows", ew_metric_count());
  for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
    const ew_metric_info_t *m = ew_metric_find(want[i].name);
    CHECK(m != NULL, "%s", want[i].name);
    if (!m)
      continue;
    char src[64], cost[160];
    CHECK(!strcmp(ew_metric_sources_str(m, src, sizeof src), want[i].sources), "%s sources '%s'",
          m->name, src);
    CHECK(!strcmp(ew_metric_cost_str(m, cost, sizeof cost), want[i].cost), "%s cost '%s'",
          m->name, cost);
    CHECK(!strcmp(ew_sketch_answer_name(m->sketch), want[i].sketch), "%s sketch", m->name);
  }
  /* a short buffer is cut, never overrun, and always terminated */
  char tiny[8];
  CHECK(!strcmp(ew_metric_sources_str(ew_metric_find("entropy"), tiny, sizeof tiny), "all, wi"),
        "cut '%s'", tiny);
  CHECK(ew_need_name(EW_NEED_ROWS | EW_NEED_TOP) == NULL && ew_need_name(0) == NULL,
        "a need name is of one bit");
  CHECK(!strcmp(ew_need_name(EW_NEED_LIVE), "live estimate"), "live");
  CHECK(ew_sketch_answer_name(EW__SK_COUNT) == NULL, "sketch name out of range");
}

/* The columns the daemon decides by: `method` applies to the spectrum-wide metrics that have a
 * quick route; the window-only and live metrics do not survive a merge. */
static void typed_columns_say_what_the_metrics_do(void) {
  const char *method[] = {"entropy", "entropy_normalized", "renyi", "vendi", "erank",
                          "nuclear_norm"};
  size_t with = 0;
  for (size_t i = 0; i < ew_metric_count(); i++)
    with += ew_metric_info(i)->method != 0;
  CHECK(with == sizeof method / sizeof method[0], "%zu metrics take method", with);
  for (size_t i = 0; i < sizeof method / sizeof method[0]; i++)
    CHECK(ew_metric_find(method[i])->method, "%s takes method", method[i]);
  const char *unmerged[] = {"live_topk", "diff_erank", "mnn_exact", "l2_std"};
  for (size_t i = 0; i < sizeof unmerged / sizeof unmerged[0]; i++)
    CHECK(!ew_metric_find(unmerged[i])->merges_exact, "%s does not merge", unmerged[i]);
  CHECK(ew_metric_find("entropy")->merges_exact && ew_metric_find("trace")->merges_exact,
        "all-rows metrics merge");
  CHECK(ew_metric_find("l2_std")->needs == EW_NEED_ROWS, "l2_std reads rows");
  CHECK(ew_metric_find("participation_ratio")->needs == EW_NEED_MATRIX, "pr is O(d^2)");
  CHECK(ew_metric_find("live_topk")->needs & EW_NEED_LIVE, "live_topk reads the live estimate");
}

/* A row no real metric has yet (kernel metrics will take a string `kernel`, token metrics
 * column names): one parameter of each type, through the one validator. */
static const char *const kernels[] = {"gaussian", "laplacian", "cosine", NULL};
static const ew_param_info_t test_params[] = {
    {.name = "column", .type = EW_PARAM_STRING, .doc = "a column", .default_str = "entropy",
     .max_len = 8, .charset = EW_CHARSET_NAME},
    {.name = "kernel", .type = EW_PARAM_ENUM, .default_value = 0, .doc = "k", .names = kernels},
    {.name = "vectors", .type = EW_PARAM_BOOL, .doc = "v"},
    {.name = "sigma", .type = EW_PARAM_NUMBER, .default_value = 1, .min = 0, .max = INFINITY,
     .doc = "s"},
    {.name = "label", .type = EW_PARAM_STRING, .doc = "t", .max_len = 16,
     .charset = EW_CHARSET_TEXT},
};
static const ew_metric_info_t test_row = {.name = "test_kernel", .params = test_params,
                                          .nparams = 5};

/* Runs the validator on one given value; returns its code, the message in msg. */
static int check1(const char *key, ew_param_type_t type, double value, const char *str,
                  double *v, const char **s, char *msg) {
  ew_param_t p = {.key = key, .value = value, .type = type, .str = str};
  const ew_param_info_t *pi = ew_metric_param(&test_row, key, strlen(key));
  *v = -1;
  *s = NULL;
  msg[0] = 0;
  return pi ? ew_param_check(&test_row, pi, &p, v, s, msg, 256) : -1;
}

static void param_check_takes_each_type_and_refuses_the_others(void) {
  double v;
  const char *s;
  char msg[256];
  /* string: text of the charset, 1..max_len bytes */
  CHECK(check1("column", EW_PARAM_STRING, 0, "logp", &v, &s, msg) == 0 && s &&
            !strcmp(s, "logp"), "column 'logp': %s", msg);
  CHECK(check1("column", EW_PARAM_NUMBER, 3, NULL, &v, &s, msg) == EW_EBADPARAM &&
            !strcmp(msg, "parameter 'column' of 'test_kernel' must be a string of 1 to 8 bytes "
                         "of [a-z0-9_]; got a number"),
        "column 3: %s", msg);
  CHECK(check1("column", EW_PARAM_STRING, 0, "advantage", &v, &s, msg) == EW_EBADPARAM &&
            strstr(msg, "; got 9 bytes"), "too long: %s", msg);
  CHECK(check1("column", EW_PARAM_STRING, 0, "", &v, &s, msg) == EW_EBADPARAM &&
            strstr(msg, "; got 0 bytes"), "empty: %s", msg);
  CHECK(check1("column", EW_PARAM_STRING, 0, "Log-p", &v, &s, msg) == EW_EBADPARAM &&
            strstr(msg, "got a byte outside that set"), "charset: %s", msg);
  CHECK(check1("label", EW_PARAM_STRING, 0, "Layer 3 / head", &v, &s, msg) == 0, "text: %s", msg);
  CHECK(check1("label", EW_PARAM_STRING, 0, "a\tb", &v, &s, msg) == EW_EBADPARAM &&
            strstr(msg, "text without control characters"), "control: %s", msg);
  /* enum: one of the names, resolved to its index */
  CHECK(check1("kernel", EW_PARAM_STRING, 0, "cosine", &v, &s, msg) == 0 && v == 2 &&
            !strcmp(s, "cosine"), "kernel cosine: %g %s", v, msg);
  CHECK(check1("kernel", EW_PARAM_STRING, 0, "rbf", &v, &s, msg) == EW_EBADPARAM &&
            !strcmp(msg, "parameter 'kernel' of 'test_kernel' must be one of \"gaussian\", "
                         "\"laplacian\", \"cosine\"; got 'rbf'"),
        "kernel rbf: %s", msg);
  CHECK(check1("kernel", EW_PARAM_STRING, 0, "RBF kernel!", &v, &s, msg) == EW_EBADPARAM &&
            strstr(msg, "; got another string"), "not echoed: %s", msg);
  CHECK(check1("kernel", EW_PARAM_NUMBER, 1, NULL, &v, &s, msg) == EW_EBADPARAM &&
            strstr(msg, "must be one of") && strstr(msg, "; got a number"), "kernel 1: %s", msg);
  /* bool: a bool only */
  CHECK(check1("vectors", EW_PARAM_BOOL, 1, NULL, &v, &s, msg) == 0 && v == 1, "true: %s", msg);
  CHECK(check1("vectors", EW_PARAM_NUMBER, 1, NULL, &v, &s, msg) == EW_EBADPARAM &&
            !strcmp(msg, "parameter 'vectors' of 'test_kernel' must be a bool (true or false); "
                         "got a number"),
        "vectors 1: %s", msg);
  CHECK(check1("vectors", EW_PARAM_STRING, 0, "true", &v, &s, msg) == EW_EBADPARAM &&
            strstr(msg, "got a string"), "vectors 'true': %s", msg);
  /* number: a number, a bool as 0/1, the string "inf"; any other string is refused */
  CHECK(check1("sigma", EW_PARAM_NUMBER, 0.5, NULL, &v, &s, msg) == 0 && v == 0.5, "0.5: %s", msg);
  CHECK(check1("sigma", EW_PARAM_BOOL, 1, NULL, &v, &s, msg) == 0 && v == 1, "true: %s", msg);
  CHECK(check1("sigma", EW_PARAM_STRING, 0, "inf", &v, &s, msg) == 0 && isinf(v), "inf: %s", msg);
  CHECK(check1("sigma", EW_PARAM_STRING, 0, "2", &v, &s, msg) == EW_EBADPARAM &&
            !strcmp(msg, "parameter 'sigma' of 'test_kernel' must be a number in [0, inf] (or "
                         "\"inf\"); got a string"),
        "sigma '2': %s", msg);
  CHECK(check1("sigma", EW_PARAM_NUMBER, -1, NULL, &v, &s, msg) == EW_EBADPARAM &&
            !strcmp(msg, "parameter 'sigma' of 'test_kernel' must be a number in [0, inf]; got -1"),
        "sigma -1: %s", msg);
  CHECK(check1("sigma", EW_PARAM_NUMBER, NAN, NULL, &v, &s, msg) == EW_EBADPARAM, "NaN");
  /* a value of no type the validator knows, and a string without its text */
  CHECK(check1("sigma", (ew_param_type_t)9, 1, NULL, &v, &s, msg) == EW_EBADPARAM, "type 9");
  CHECK(check1("column", EW_PARAM_STRING, 0, NULL, &v, &s, msg) == EW_EBADPARAM, "NULL text");
  CHECK(ew_metric_param(&test_row, "sigmas", 6) == NULL && ew_metric_param(&test_row, "sig", 3)
            == NULL, "names match whole");
  CHECK(!strcmp(ew_param_type_name(EW_PARAM_ENUM), "enum") && !ew_param_type_name(4), "names");
}

/* Through a real query: the old two-field initializer still means a number, and a string given
 * to a number parameter is refused with the parameter, the metric and the type named. */
static void query_checks_parameter_types(void) {
  ew_config_t cfg;
  ew_config_default(&cfg, 3);
  ew_stream_t *st;
  CHECK(ew_stream_create(&cfg, &st) == 0, "create");
  float rows[] = {1, 0, 0, 0, 2, 0, 0, 0, 3, 1, 1, 1};
  CHECK(ew_stream_ingest(st, rows, EW_F32, 4, 3) == 0, "ingest");
  ew_param_t old = {"alpha", 2}; /* the struct as it was: key, value */
  ew_query_t q = {.metric = "renyi", .params = &old, .nparams = 1, .center = -1,
                  .source = EW_SOURCE_DEFAULT};
  ew_result_t r;
  CHECK(ew_stream_query(st, &q, &r) == 0 && r.kind == EW_VALUE_SCALAR, "alpha 2: %s", r.message);
  double want = r.scalar;
  ew_result_clear(&r);
  ew_param_t as_str = {.key = "alpha", .type = EW_PARAM_STRING, .str = "2"};
  q.params = &as_str;
  CHECK(ew_stream_query(st, &q, &r) == EW_EBADPARAM && r.code == EW_EBADPARAM &&
            !strcmp(r.message, "parameter 'alpha' of 'renyi' must be a number in [0, inf] (or "
                               "\"inf\"); got a string"),
        "alpha '2': %s", r.message);
  ew_result_clear(&r);
  ew_param_t inf = {.key = "alpha", .type = EW_PARAM_STRING, .str = "inf"};
  q.params = &inf;
  CHECK(ew_stream_query(st, &q, &r) == 0 && r.scalar < want, "alpha 'inf': %s", r.message);
  ew_result_clear(&r);
  CHECK(ew_stream_count(st) == 4, "the stream is as it was");
  ew_stream_free(st);
}

int main(void) {
  TAP_RUN(every_error_code_has_a_wire_name_and_a_sentence);
  TAP_RUN(design_error_codes_are_all_present);
  TAP_RUN(metric_table_rows_are_complete_and_unique);
  TAP_RUN(generated_strings_are_the_published_ones);
  TAP_RUN(typed_columns_say_what_the_metrics_do);
  TAP_RUN(param_check_takes_each_type_and_refuses_the_others);
  TAP_RUN(query_checks_parameter_types);
  TAP_DONE();
}
