/* eval_priv.h — what eval_list.c (the specs), eval.c (the schedule and the runs) and eval_save.c
 * (info, the latest values, the saved form) share: a stream's scheduled evaluations. Owner: the
 * loop thread. */
#ifndef EWD_EVAL_PRIV_H
#define EWD_EVAL_PRIV_H

#include "run/run.h"

typedef struct {
  const ew_metric_info_t *info;
  char series[EWP_SERIES_MAX + 1]; /* the series name: `as`, default the metric's name */
  ew_param_t params[EW_METRIC_MAX_PARAMS]; /* resolved (ewd_param_resolve): key and a string
                                             value point into pkeys and pstrs */
  char pkeys[EW_METRIC_MAX_PARAMS][32];
  char pstrs[EW_METRIC_MAX_PARAMS][EWP_PARAM_STR_MAX + 1];
  size_t nparams;
  ew_source_t source;   /* EW_SOURCE_DEFAULT: the recent view, as `query` resolves it */
  int center;           /* -1: the metric's own */
  uint64_t every;       /* steps; 0 when every_rows or every_s drive it */
  uint64_t every_rows;
  double every_s;
  bool has_due;         /* due_at: the step (or row count) it was last due at */
  uint64_t due_at;
  double due_time;      /* every_s: monotonic time it was last due */
  bool warned;          /* a failure was logged */
  bool has_last;        /* the latest evaluated value (scalar metrics) */
  bool last_partial;
  double last_value;
  uint64_t last_step;
} ewd__spec_t;

struct ewd_eval {
  ewd__spec_t *specs;
  size_t n;
  bool given;           /* from create's `eval` (saved in the snapshot); else the defaults */
  bool busy;            /* a FORK or EVAL job is in flight */
  bool has_pending;     /* a due evaluation waits for it */
  ewd_point_t pending;
  uint64_t pending_mask;
  uint64_t evaluations, coalesced, failures, inline_evals;
  double last_lag;
  double last_time;     /* Unix seconds of the latest point (0: none yet) */
  struct {              /* the latest evaluation's cost by part (info's eval.cost) */
    double update_ms;   /* the recent view's moments moved to this step (recent.c's TAILs) */
    double fork_ms;     /* on the stream's turn: the two below and the bookkeeping */
    double cheap_ms;    /* the metrics that need no eigensolve */
    double snap_ms;     /* the snapshot of what the others read */
    double solve_ms;    /* their solve, on a snapshot (0: none) */
    double write_ms;    /* cache, history, alerts, subscriptions (on the loop) */
    size_t snap_bytes;
  } cost;
  uint64_t rows_at;     /* stream count at the last row- or time-driven evaluation */
};

/* The specs `evals` asks for (NULL: the defaults) for stream st (NULL: no stream yet) into a new
 * array (*out, n entries; free() it). Returns 0 or an EW_E* code with a sentence (eval_list.c). */
int ewd__eval_build(const ewd_stream_t *st, const ewp_evals_t *evals, ewd__spec_t **out,
                    size_t *n, char *msg, size_t cap);
/* A spec with the defaults for `info` (every step, the recent view, the metric's centring, the
 * series named as the metric). */
void ewd__spec_default(ewd__spec_t *sp, const ew_metric_info_t *info);
/* A new evaluation state owning `specs` (n of them), or NULL (memory: specs stay the caller's). */
ewd_eval_t *ewd__eval_new(ewd__spec_t *specs, size_t n, bool given);

/* st's evaluation state, the defaults made when first needed (NULL: out of memory). */
ewd_eval_t *ewd__eval_of(ewd_stream_t *st);

/* Points a spec's parameter k at the spec's own storage (after a copy or a move of the spec). */
void ewd__param_own(ewd__spec_t *sp, size_t k);

#endif
