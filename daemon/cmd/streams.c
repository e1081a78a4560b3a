/* streams.c — create, list, info, reset, drop: the registry as clients see it. A stream created
 * by an ingest that has not yet succeeded is provisional and invisible here. */
#include "cmd/cmd.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Request → configuration, one statement per row of the library's EW_CONFIG_MAP: a field given
 * on the wire replaces its default, under its old name too (when the new one is absent). An
 * integer that does not fit size_t saturates (ew_config_check then refuses it); an enumeration's
 * index on the wire is its value (both come from EW_ENUM_<member>). */
#if SIZE_MAX < UINT64_MAX
#define SET_COUNT(v) ((v) > SIZE_MAX ? SIZE_MAX : (size_t)(v))
#else
#define SET_COUNT(v) ((size_t)(v))
#endif
#define SET_U64(v) (v)
#define SET_ENUM(v) (v)
#define SET_REAL_OFF(v) (v)
#define SET_OLD(name, r, cfg, member, wire, type)                                                  \
  if (EWP_HAS(r, EWP_CREATE_##name) && !EWP_HAS(r, EWP_CREATE_##wire))                            \
    cfg->member = SET_##type(r->name);
#define SET_FIELD(member, wire, old, type, ...)                                                    \
  if (EWP_HAS(r, EWP_CREATE_##wire))                                                              \
    cfg->member = SET_##type(r->wire);                                                            \
  EW_IF_OLD(old, SET_OLD, r, cfg, member, wire, type)

static void config_from(const ewp_create_req_t *r, ew_config_t *cfg) {
  ew_config_default(cfg, (size_t)r->dim);
  bool recent = (EWP_HAS(r, EWP_CREATE_recent) && r->recent) ||
                (EWP_HAS(r, EWP_CREATE_window_steps) && r->window_steps > 0);
  if (recent)
    cfg->window = ewd_recent_window(cfg->dim); /* at any d: the recent view needs its rows */
  EW_CONFIG_MAP(SET_FIELD)
}

/* A field given under both its names must say the same: 0, or -1 with the sentence in msg. */
#define FMT_COUNT "%llu"
#define FMT_U64 "%llu"
#define FMT_ENUM "%llu"
#define FMT_REAL_OFF "%g"
#define ARG_COUNT(v) (unsigned long long)(v)
#define ARG_U64(v) (unsigned long long)(v)
#define ARG_ENUM(v) (unsigned long long)(v)
#define ARG_REAL_OFF(v) (double)(v)
#define CLASH_OLD(name, r, msg, cap, wire, type)                                                   \
  if (EWP_HAS(r, EWP_CREATE_##name) && EWP_HAS(r, EWP_CREATE_##wire) && r->name != r->wire) {     \
    snprintf(msg, cap, "'" #wire "' and its old name '" #name "' are both given and differ ("    \
             FMT_##type " vs " FMT_##type "); give one", ARG_##type(r->wire), ARG_##type(r->name)); \
    return -1;                                                                                    \
  }
#define CLASH(member, wire, old, type, ...) EW_IF_OLD(old, CLASH_OLD, r, msg, cap, wire, type)

static int old_names_agree(const ewp_create_req_t *r, char *msg, size_t cap) {
  EW_CONFIG_MAP(CLASH)
  (void)r, (void)msg, (void)cap;
  return 0;
}

/* The wire name under which create gave configuration field f (its name, or its old one), or
 * NULL when it was not given. */
static const char *given(const ewp_create_req_t *r, const ew_config_field_t *f) {
  size_t nf;
  const ewp_field_info_t *fs = ewp_method_fields(EWP_METHOD_CREATE, &nf);
  for (size_t k = 0; k < nf; k++)
    if (EWP_HAS(r, k) && (!strcmp(fs[k].name, f->name) ||
                          (f->old_name && !strcmp(fs[k].name, f->old_name))))
      return fs[k].name;
  return NULL;
}

/* kind tokens: cfg's columns from create's `columns` (or the default); kind stats: its shape;
 * a matrix stream takes `dim` and neither. 0, or -1 with the sentence in msg. */
#define EWD__KIND_NAME(value, name) name,
static int kind_fields(const ewp_create_req_t *r, ew_config_t *cfg, char *msg, size_t cap) {
  bool cols = EWP_HAS(r, EWP_CREATE_columns), shape = EWP_HAS(r, EWP_CREATE_shape);
  static const char *const kinds[] = {EW_ENUM_stream_kind(EWD__KIND_NAME)};
  if ((cols && cfg->stream_kind != EW_STREAM_TOKENS) ||
      (shape && cfg->stream_kind != EW_STREAM_STATS))
    return snprintf(msg, cap, "'%s' belongs to kind \"%s\" (this create says kind \"%s\"%s)",
                    cols ? "columns" : "shape", cols ? "tokens" : "stats",
                    kinds[cfg->stream_kind],
                    cfg->stream_kind == EW_STREAM_MATRIX ? ", the default" : ""), -1;
  if (EWP_HAS(r, EWP_CREATE_reduce) && cfg->stream_kind != EW_STREAM_STATS)
    return snprintf(msg, cap, "'reduce' belongs to kind \"stats\" (this create says kind \"%s\")",
                    kinds[cfg->stream_kind]), -1;
  /* a paired stream's own fields: its dims, and the table's fields of the paired kind alone */
  const char *paired_field = EWP_HAS(r, EWP_CREATE_dims) ? "dims" : NULL;
  for (size_t i = 0; !paired_field && i < ew_config_field_count(); i++) {
    const ew_config_field_t *f = ew_config_field(i);
    if (f->kinds == EW_KIND_BIT(PAIRED) && given(r, f))
      paired_field = f->name;
  }
  if (paired_field && cfg->stream_kind != EW_STREAM_PAIRED)
    return snprintf(msg, cap, "'%s' belongs to kind \"paired\" (this create says kind \"%s\")",
                    paired_field, kinds[cfg->stream_kind]), -1;
  if (cfg->stream_kind == EW_STREAM_PAIRED) {
    if (!EWP_HAS(r, EWP_CREATE_dims) || r->dims.n != 2)
      return snprintf(msg, cap, "a paired stream needs its 'dims' ([dx, dy]: the widths of x "
                      "and y)"), -1;
    if (ew_config_dims(cfg, r->dims.v[0], r->dims.v[1], msg, cap))
      return -1;
    if (EWP_HAS(r, EWP_CREATE_dim) && r->dim != cfg->dim)
      return snprintf(msg, cap, "a paired stream's dim is dx + dy: omit 'dim'"), -1;
    if ((EWP_HAS(r, EWP_CREATE_recent) && r->recent) ||
        (EWP_HAS(r, EWP_CREATE_window_steps) && r->window_steps))
      return snprintf(msg, cap, "a paired stream keeps sums of every pair, no window: 'recent' "
                      "and 'window_steps' do not apply"), -1;
    /* a configuration field of the matrix kinds only (window, decay, the live estimate, the
     * sketch) given to a paired stream would be kept and never used: refused */
    unsigned kept = ew_config_kinds(cfg);
    for (size_t i = 0; i < ew_config_field_count(); i++) {
      const ew_config_field_t *f = ew_config_field(i);
      const char *name = f->kinds && !(f->kinds & kept) ? given(r, f) : NULL;
      if (name)
        return snprintf(msg, cap, "'%s' does not apply to kind \"paired\" (it keeps no "
                        "window, decay, live estimate or sketch)", name), -1;
    }
    return 0;
  }
  if (cfg->stream_kind == EW_STREAM_STATS) {
    if (!shape)
      return snprintf(msg, cap, "a stats stream needs its 'shape' ([L] or [L, H])"), -1;
    uint64_t dims[2] = {r->shape.v[0], r->shape.n > 1 ? r->shape.v[1] : 1};
    if (ew_config_shape(cfg, dims, r->shape.n, msg, cap))
      return -1;
    if (EWP_HAS(r, EWP_CREATE_dim) && r->dim != cfg->dim)
      return snprintf(msg, cap, "a stats stream's dim is the cells of its shape: omit 'dim'"), -1;
    return 0;
  }
  if (cfg->stream_kind == EW_STREAM_MATRIX) {
    if (!EWP_HAS(r, EWP_CREATE_dim)) /* required of matrix streams (EW_CF_MATRIX_ONLY_GIVEN) */
      return snprintf(msg, cap, "%s", ew_config_field(0)->error), -1;
    return 0;
  }
  if (EWP_HAS(r, EWP_CREATE_dim) && (!cols || r->dim != r->columns.n))
    return snprintf(msg, cap, "a tokens stream's dim is its number of columns: omit 'dim'"), -1;
  return ewd_config_columns(cfg, cols ? &r->columns : NULL, msg, cap);
}

void ewd_cmd_create(ewd_call_t *call) {
  const ewp_create_req_t *r = &call->req->u.create;
  ew_config_t cfg;
  char msg[256];
  config_from(r, &cfg);
  if (old_names_agree(r, msg, sizeof msg) || kind_fields(r, &cfg, msg, sizeof msg)) {
    ewd_fail(call, EW_EBADPARAM, "%s", msg);
    return;
  }
  if (ew_config_check(&cfg, msg, sizeof msg)) {
    ewd_fail(call, EW_EBADPARAM, "%s", msg);
    return;
  }
  ewd_key_t key = EWD_KEY(r);
  ewd_stream_t *st = ewd_registry_find(&call->srv->reg, &key);
  bool created = false;
  uint32_t world = EWP_HAS(r, EWP_CREATE_world) ? (uint32_t)r->world : 1;
  double timeout = EWP_HAS(r, EWP_CREATE_step_timeout) ? r->step_timeout
                                                        : EWD_STEP_TIMEOUT_DEFAULT;
  uint32_t wsteps = EWP_HAS(r, EWP_CREATE_window_steps) ? (uint32_t)r->window_steps : 0;
  bool recent = (EWP_HAS(r, EWP_CREATE_recent) && r->recent) || wsteps > 0;
  if (cfg.stream_kind != EW_STREAM_MATRIX)
    recent = false; /* a tokens stream's window is its last window_steps steps (ingest says) */
  if (recent && cfg.window == 0) {
    ewd_fail(call, EW_EBADPARAM, "a recent stream (recent, window_steps) reads its window: it "
             "needs window > 0");
    return;
  }
  const ewp_evals_t *evals = EWP_HAS(r, EWP_CREATE_eval) ? &r->eval : NULL;
  ewd_stream_t asked = {0}; /* the eval list, checked before anything changes */
  asked.cfg = cfg;          /* (what the library refuses on this configuration is refused here) */
  asked.recent = recent;
  int erc = evals ? ewd_eval_set(&asked, evals, msg, sizeof msg) : 0;
  if (!erc && EWP_HAS(r, EWP_CREATE_rules)) /* rules name metrics of the eval list asked for */
    erc = ewd_alerts_set(&asked, &r->rules, msg, sizeof msg);
  if (erc) {
    ewd_eval_free(asked.eval);
    ewd_alerts_free(asked.alerts);
    ewd_fail(call, erc, "%s", msg);
    return;
  }
  if (st) {
    ewd_eval_free(asked.eval);
    if (!ew_config_equal(&st->cfg, &cfg) || st->world != world || st->step_timeout != timeout ||
        st->recent != recent || st->window_steps != wsteps || !ewd_eval_same(st, evals)) {
      char kind[64]; /* how it keeps every row: its kind of role ALL (EW_KIND_MAP) */
      ew_config_summary(&st->cfg, kind, sizeof kind);
      ewd_fail(call, EW_EEXISTS,
               "stream '%.*s' exists with a different configuration (dim %zu, %s, window %zu, "
               "normalize %s, world %u, step_timeout %g); drop it first or use the same "
               "configuration", (int)r->stream.n, r->stream.p, st->cfg.dim, kind,
               st->cfg.window, st->cfg.normalize == EW_NORMALIZE_L2 ? "l2" : "none", st->world,
               st->step_timeout);
      ewd_alerts_free(asked.alerts);
      return;
    }
    if (asked.alerts) { /* rules given again replace the stream's (their states start over) */
      ewd_alerts_free(st->alerts);
      st->alerts = asked.alerts;
      ewd_expo_stale(st);
      st->changes++; /* the rules are saved with the stream: the next snapshot writes them */
    }
    created = st->provisional; /* the client could not see it until now */
    st->provisional = false;
  } else {
    int rc = ewd_registry_create(&call->srv->reg, &call->srv->cfg, &key, &cfg,
                                 &st, msg, sizeof msg);
    if (rc) {
      ewd_eval_free(asked.eval);
      ewd_alerts_free(asked.alerts);
    }
    if (rc) {
      ewd_fail(call, rc, "%s", msg);
      return;
    }
    if (ewd_recent_steps(st, wsteps) != 0) {
      ewd_eval_free(asked.eval);
      ewd_alerts_free(asked.alerts);
      ewd_stream_drop(call->srv, st);
      ewd_fail(call, EW_ENOMEM, "out of memory");
      return;
    }
    st->eval = asked.eval;
    st->alerts = asked.alerts;
    ewd_expo_stale(st);
    created = true;
    st->world = world;
    st->step_timeout = timeout;
    st->recent = recent;
    ewd_log(EWD_LOG_INFO, "stream created", "stream=\"%s\" dim=%zu window=%zu", st->name,
            cfg.dim, cfg.window);
  }
  ewd_config_kv_t ckv;
  ewp_kv_t kv[] = {{"stream", ewp_vstr(st->name)},
                   {"created", ewp_vbool(created)},
                   {"config", ewd_config_value(st, &ckv)}};
  ewp_value_t v = ewp_vmap(kv, 3);
  ewd_reply(call, &v);
}

/* A step number, or absent. */
static ewp_value_t opt_step(bool has, uint64_t s) { return has ? ewp_vu64(s) : (ewp_value_t){0}; }

/* The steps map of info (kv holds STEPS_KV entries). */
#define STEPS_KV 8
static ewp_value_t steps_value(const ewd_stream_t *st, ewp_kv_t *kv) {
  size_t bytes;
  uint64_t late, partial;
  size_t pending = ewd_steps_pending(st, &bytes, &late, &partial);
  kv[0] = (ewp_kv_t){"first_step", opt_step(st->has_first_step, st->first_step)};
  kv[1] = (ewp_kv_t){"last_step", opt_step(st->has_last_step, st->last_step)};
  kv[2] = (ewp_kv_t){"pending_steps", ewp_vu64(pending)};
  kv[3] = (ewp_kv_t){"staged_bytes", ewp_vu64(bytes)};
  kv[4] = (ewp_kv_t){"late_batches", ewp_vu64(late)};
  kv[5] = (ewp_kv_t){"partial_steps", ewp_vu64(partial)};
  kv[6] = (ewp_kv_t){"producers", ewp_vu64(st->nproducers)};
  kv[7] = (ewp_kv_t){"ended", st->ended ? ewp_vbool(true) : (ewp_value_t){0}};
  return ewp_vmap(kv, STEPS_KV);
}

/* The summary of a stream as list and info show it; kv holds SUMMARY_KV entries, ckv
 * EWD_CONFIG_KV, skv STEPS_KV (info only). */
#define SUMMARY_KV 11
static ewp_value_t summary(const ewd_server_t *srv, ewd_stream_t *st, bool with_config,
                           ewp_kv_t *kv, ewd_config_kv_t *ckv, ewp_kv_t *skv, void **arena) {
  kv[0] = (ewp_kv_t){"stream", ewp_vstr(st->name)};
  kv[1] = (ewp_kv_t){"run", ewp_vstr(st->run)};
  kv[2] = (ewp_kv_t){"dim", ewp_vu64(st->cfg.dim)};
  kv[3] = (ewp_kv_t){"count", ewp_vu64(st->count)};
  kv[4] = (ewp_kv_t){"memory_bytes", ewp_vu64(st->memory)}; /* the library's state */
  kv[5] = (ewp_kv_t){"last_ingest", ewp_vtime(st->last_ingest)};
  kv[6] = (ewp_kv_t){"config", with_config ? ewd_config_value(st, ckv) : (ewp_value_t){0}};
  kv[7] = (ewp_kv_t){"queued_jobs", with_config ? ewp_vu64(st->queued_jobs) : (ewp_value_t){0}};
  kv[8] = (ewp_kv_t){"steps", with_config ? steps_value(st, skv) : (ewp_value_t){0}};
  kv[9] = (ewp_kv_t){"eval", with_config ? ewd_eval_value(st, arena) : (ewp_value_t){0}};
  /* a sketched stream's solves are of its m = 2ℓ+1 rows' Gram: m²·d, not d³ */
  size_t m = ew_config_solve_dim(&st->cfg);
  double est = ew_config_sketched(&st->cfg)
                   ? ewd_solve_estimate(srv, m) * (double)st->cfg.dim / (double)m
                   : ewd_solve_estimate(srv, st->cfg.dim);
  kv[10] = (ewp_kv_t){"solve_estimate_s", with_config ? ewp_vf64(est) : (ewp_value_t){0}};
  return ewp_vmap(kv, SUMMARY_KV);
}

void ewd_cmd_list(ewd_call_t *call) {
  ewd_registry_t *reg = &call->srv->reg;
  const ewp_list_req_t *r = &call->req->u.list;
  bool filter = EWP_HAS(r, EWP_LIST_run);
  ewp_kv_t *kv = malloc((reg->n + 1) * SUMMARY_KV * sizeof *kv);
  ewp_value_t *items = malloc((reg->n + 1) * sizeof *items);
  if (!kv || !items) {
    free(kv);
    free(items);
    ewd_fail(call, EW_ENOMEM, "out of memory listing %zu streams", reg->n);
    return;
  }
  size_t n = 0;
  for (size_t i = 0; i < reg->n; i++) {
    ewd_stream_t *st = reg->items[i];
    if (st->provisional || (filter && (strlen(st->run) != r->run.n ||
                                       memcmp(st->run, r->run.p, r->run.n) != 0)))
      continue;
    items[n] = summary(call->srv, st, false, kv + SUMMARY_KV * n, NULL, NULL, NULL);
    n++;
  }
  ewp_kv_t top[] = {{"streams", ewp_varray(items, n)}};
  ewp_value_t v = ewp_vmap(top, 1);
  ewd_reply(call, &v);
  free(kv);
  free(items);
}

void ewd_cmd_info(ewd_call_t *call) {
  ewd_stream_t *st = ewd_cmd_stream(call, EWD_KEY(&call->req->u.info));
  if (!st)
    return;
  ewp_kv_t kv[SUMMARY_KV], skv[STEPS_KV];
  ewd_config_kv_t ckv;
  void *arena = NULL;
  ewp_value_t v = summary(call->srv, st, true, kv, &ckv, skv, &arena);
  ewd_reply(call, &v);
  ewd_eval_arena_free(arena);
}

static void reset_done(ewd_job_t *j) {
  ewd_stream_t *st = j->st;
  ewd_job_mirrors(j);
  st->last_ingest = 0;
  ewd_cache_clear(st);
  ewp_kv_t kv[] = {{"stream", ewp_vstr(st->name)}, {"count", ewp_vu64(st->count)}};
  ewp_value_t v = ewp_vmap(kv, 2);
  ewd_job_reply(j, &v);
  ewd_job_finish(j);
}

void ewd_cmd_reset(ewd_call_t *call) {
  ewd_stream_t *st = ewd_cmd_stream(call, EWD_KEY(&call->req->u.reset));
  if (!st)
    return;
  ewd_job_t *j = ewd_job_new(call->srv, call, st, EWD_JOB_RESET, reset_done);
  if (!j) {
    ewd_fail(call, EW_ENOMEM, "out of memory");
    return;
  }
  ewd_steps_discard(call->srv, st); /* staged rows are rows too; the ranks start over */
  st->has_first_step = st->has_last_step = false;
  ewd_job_submit(call->srv, j, false);
}

static void free_done(ewd_job_t *j) {
  ewd_server_freed(j->srv, j->st->model.state);
  ewd_job_finish(j);
}

/* Drops a registered stream: frees its state after its queued jobs, on a math thread. */
void ewd_stream_drop(ewd_server_t *srv, ewd_stream_t *st) {
  ewd_steps_discard(srv, st);
  if (!st->provisional)
    ewd_history_forget(srv, st);
  st->dropped = true;
  ewd_registry_remove(&srv->reg, st);
  ewd_persist_forget(srv, st);
  ewd_cache_clear(st);
  ewd_job_t *j = ewd_job_new(srv, NULL, st, EWD_JOB_FREE, free_done);
  if (j)
    ewd_pool_submit(srv->pool, j);
  ewd_stream_unref(st); /* the registry's reference */
}

/* drop {run} without a stream: every stream of the run, and its history with them. */
static void drop_run(ewd_call_t *call) {
  const ewp_drop_req_t *r = &call->req->u.drop;
  ewd_registry_t *reg = &call->srv->reg;
  char run[EWD_NAME_MAX + 1];
  snprintf(run, sizeof run, "%.*s", (int)r->run.n, r->run.p);
  ewd_stream_t **v = malloc((reg->n + 1) * sizeof *v);
  if (!v) {
    ewd_fail(call, EW_ENOMEM, "out of memory");
    return;
  }
  size_t n = 0;
  for (size_t i = 0; i < reg->n; i++)
    if (!reg->items[i]->provisional && strcmp(reg->items[i]->run, run) == 0)
      v[n++] = reg->items[i];
  if (!n) {
    free(v);
    ewd_fail(call, EW_ENOSTREAM, "run '%s' has no streams ('runs' lists the runs)", run);
    return;
  }
  ewd_log(EWD_LOG_INFO, "run dropped", "run=\"%s\" streams=%zu", run, n);
  ewp_kv_t kv[] = {{"run", ewp_vstr(run)}, {"dropped", ewp_vbool(true)},
                   {"streams", ewp_vu64(n)}};
  ewp_value_t val = ewp_vmap(kv, 3);
  ewd_reply(call, &val);
  for (size_t i = 0; i < n; i++) /* the reply is packed: the names may go */
    ewd_stream_drop(call->srv, v[i]);
  free(v);
}

void ewd_cmd_drop(ewd_call_t *call) {
  if (!EWP_HAS(&call->req->u.drop, EWP_DROP_stream)) {
    drop_run(call);
    return;
  }
  ewd_stream_t *st = ewd_cmd_stream(call, EWD_KEY(&call->req->u.drop));
  if (!st)
    return;
  ewd_log(EWD_LOG_INFO, "stream dropped", "stream=\"%s\" count=%llu", st->name,
          (unsigned long long)st->count);
  ewp_kv_t kv[] = {{"stream", ewp_vstr(st->name)}, {"dropped", ewp_vbool(true)}};
  ewp_value_t v = ewp_vmap(kv, 2);
  ewd_reply(call, &v);
  ewd_stream_drop(call->srv, st);
}

/* ---- runs ---- */

static int by_run_then_name(const void *a, const void *b) {
  const ewd_stream_t *x = *(ewd_stream_t *const *)a, *y = *(ewd_stream_t *const *)b;
  int c = strcmp(x->run, y->run);
  return c ? c : strcmp(x->name, y->name);
}

/* `runs` → {"runs": [{"run", "streams": [names, sorted], "first_step", "last_step",
 * "last_activity"}, ...]}, runs sorted; the steps are the first and latest completed over the
 * run's streams (absent when none has completed a step). */
void ewd_cmd_runs(ewd_call_t *call) {
  ewd_registry_t *reg = &call->srv->reg;
  size_t n = 0, m = reg->n + 1;
  ewd_stream_t **v = malloc(m * sizeof *v);
  ewp_value_t *names = malloc(m * sizeof *names), *runs = malloc(m * sizeof *runs);
  ewp_kv_t *kv = malloc(5 * m * sizeof *kv);
  if (!v || !names || !runs || !kv) {
    free(v), free(names), free(runs), free(kv);
    ewd_fail(call, EW_ENOMEM, "out of memory listing the runs of %zu streams", reg->n);
    return;
  }
  for (size_t i = 0; i < reg->n; i++)
    if (!reg->items[i]->provisional)
      v[n++] = reg->items[i];
  qsort(v, n, sizeof *v, by_run_then_name);
  size_t nr = 0;
  for (size_t i = 0; i < n;) {
    size_t j = i;
    double last = 0;
    bool has_first = false, has_last = false;
    uint64_t first_step = 0, last_step = 0;
    for (; j < n && strcmp(v[j]->run, v[i]->run) == 0; j++) {
      const ewd_stream_t *s = v[j];
      names[j] = ewp_vstr(s->name);
      last = s->last_ingest > last ? s->last_ingest : last;
      if (s->has_first_step && (!has_first || s->first_step < first_step))
        first_step = s->first_step, has_first = true;
      if (s->has_last_step && (!has_last || s->last_step > last_step))
        last_step = s->last_step, has_last = true;
    }
    ewp_kv_t *k = kv + 5 * nr;
    k[0] = (ewp_kv_t){"run", ewp_vstr(v[i]->run)};
    k[1] = (ewp_kv_t){"streams", ewp_varray(names + i, j - i)};
    k[2] = (ewp_kv_t){"first_step", opt_step(has_first, first_step)};
    k[3] = (ewp_kv_t){"last_step", opt_step(has_last, last_step)};
    k[4] = (ewp_kv_t){"last_activity", ewp_vtime(last)};
    runs[nr++] = ewp_vmap(k, 5);
    i = j;
  }
  ewp_kv_t top[] = {{"runs", ewp_varray(runs, nr)}};
  ewp_value_t out = ewp_vmap(top, 1);
  ewd_reply(call, &out);
  free(v), free(names), free(runs), free(kv);
}

/* ---- flush ---- */

/* `flush {stream, run}` → {"stream", "completed": steps}: every pending step completes now
 * (partial where ranks are missing) and goes to the stream's queue, so a query sent after the
 * answer sees it. With `end` and `rank`, one rank's run is over: nothing is forced (the steps
 * complete as the ranks end them), and the stream is marked ended. */
void ewd_cmd_flush(ewd_call_t *call) {
  const ewp_flush_req_t *r = &call->req->u.flush;
  bool one_rank = EWP_HAS(r, EWP_FLUSH_rank);
  if (one_rank && !(EWP_HAS(r, EWP_FLUSH_end) && r->end)) {
    ewd_fail(call, EW_EBADPARAM, "'rank' goes with 'end': true (one rank's run is over)");
    return;
  }
  ewd_stream_t *st = ewd_cmd_stream(call, EWD_KEY(r));
  if (!st)
    return;
  if (one_rank && r->rank >= st->world) {
    ewd_fail(call, EW_EBADPARAM, "rank %llu is not below the stream's world %u",
             (unsigned long long)r->rank, st->world);
    return;
  }
  size_t n = one_rank ? 0 : ewd_steps_flush(call->srv, st, "flush");
  if (EWP_HAS(r, EWP_FLUSH_end) && r->end && !st->ended) {
    st->ended = true;
    ewd_expo_stale(st);
    st->changes++; /* saved with the stream */
    ewd_log(EWD_LOG_INFO, "stream ended", "run=\"%s\" stream=\"%s\" count=%llu", st->run,
            st->name, (unsigned long long)st->count);
  }
  ewp_kv_t kv[] = {{"stream", ewp_vstr(st->name)}, {"completed", ewp_vu64(n)},
                   {"ended", st->ended ? ewp_vbool(true) : (ewp_value_t){0}}};
  ewp_value_t v = ewp_vmap(kv, 3);
  ewd_reply(call, &v);
}
