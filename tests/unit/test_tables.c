/* test_tables.c — the two generated tables: error codes (names, sentences) and the metric table
 * (names unique, docs present, parameters sane, lookup by name). */
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
                          "entropy_truncated", "diff_erank", "mnn_exact", "l2_std", "live_topk"};
  size_t n = ew_metric_count();
  CHECK(n == sizeof design / sizeof design[0], "table has %zu rows", n);
  for (size_t i = 0; i < sizeof design / sizeof design[0]; i++) {
    const ew_metric_info_t *m = ew_metric_find(design[i]);
    CHECK(m != NULL, "metric %s missing", design[i]);
  }
  for (size_t i = 0; i < n; i++) {
    const ew_metric_info_t *m = ew_metric_info(i);
    CHECK(m->doc && strlen(m->doc) > 10, "%s doc", m->name);
    CHECK(m->sources && *m->sources && m->cost && *m->cost, "%s sources/cost", m->name);
    CHECK(ew_metric_find(m->name) == m, "%s lookup", m->name);
    for (size_t j = i + 1; j < n; j++)
      CHECK(strcmp(m->name, ew_metric_info(j)->name) != 0, "duplicate %s", m->name);
    CHECK(m->nparams <= EW_METRIC_MAX_PARAMS, "%s params", m->name);
    for (size_t p = 0; p < m->nparams; p++) {
      const ew_param_info_t *pi = &m->params[p];
      CHECK(pi->min <= pi->default_value && pi->default_value <= pi->max, "%s.%s default",
            m->name, pi->name);
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

int main(void) {
  TAP_RUN(every_error_code_has_a_wire_name_and_a_sentence);
  TAP_RUN(design_error_codes_are_all_present);
  TAP_RUN(metric_table_rows_are_complete_and_unique);
  TAP_DONE();
}
