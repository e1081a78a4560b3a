/* alerts_priv.h — what alerts.c (rules and their states), alerts_save.c (their saved form) and
 * subs.c (subscriptions and notifications) share. Owner: the loop thread. */
#ifndef EWD_ALERTS_PRIV_H
#define EWD_ALERTS_PRIV_H

#include "run/run.h"

/* The `when` of a rule: the order of EWP_ENUM_when. */
enum { EWD__W_BELOW, EWD__W_ABOVE, EWD__W_DROP, EWD__W_BASELINE, EWD__W_STALE, EWD__W_NONFINITE };

typedef struct {
  char name[EWP_RULE_NAME_MAX + 1];
  char series[EWP_SERIES_MAX + 1]; /* the series it watches ("" for stale, non_finite) */
  int when;
  double value;
  uint32_t steps, baseline_steps;
  bool has_after;        /* a warm-up: points at steps below after_step are not checked */
  uint64_t after_step;
  /* state (saved with the rule) */
  bool firing;
  uint64_t fired_step;
  double fired_time;     /* Unix seconds */
  bool has_last;
  double last_value;
  double *ring;          /* drop: the last `steps` values (owned); the next goes at `at` */
  uint32_t nring, at;
  double base_sum;       /* below_baseline: the sum of its first base_n values */
  uint32_t base_n;
} ewd__rule_t;

struct ewd_alerts {
  ewd__rule_t *rules;
  size_t n;
};

/* Frees n rules (their rings) and the array. NULL is allowed. */
void ewd__rules_free(ewd__rule_t *r, size_t n);
/* Sends the alert notification of rule r of st to the subscribers that match st (subs.c). */
void ewd__subs_alert(ewd_server_t *srv, const ewd_stream_t *st, const ewd__rule_t *r,
                     uint64_t step, bool has_step, double value, const char *message);
/* Sends the metrics notification of point pt of st (its values hv[0, n), by series name) to the
 * subscribers that match st and want one of its series (subs.c). */
void ewd__subs_metrics(ewd_server_t *srv, const ewd_stream_t *st, const ewd_point_t *pt,
                       const ewd_hvalue_t *hv, size_t n);

#endif
