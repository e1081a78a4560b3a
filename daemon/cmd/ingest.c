/* ingest.c — rows into a stream. The payload is copied out of the receive buffer into an aligned
 * buffer the job owns; conversion, the finiteness check and the batch Gram run on a math thread
 * (prepare), the merge in the stream's order (apply). An ingest into an unknown stream creates
 * it with defaults and d from the payload, but provisionally: invisible to every other method
 * until a batch has been accepted, and removed again if the batch that created it is refused —
 * a rejected batch changes nothing, not even the list of streams.
 *
 * A batch with `step` is checked on a math thread in the stream's order (EWD_JOB_CHECK) and then
 * staged until its step completes (steps.c); its acknowledgement says `step` and `late`. A batch
 * with `producer` and `seq` whose seq is not above the producer's last is acknowledged
 * `duplicate: true` and changes nothing; a refused batch gives its seq back. */
#include "cmd/cmd.h"

#include <stdlib.h>
#include <string.h>

static const ew_dtype_t dtypes[] = {EW_F32, EW_F64, EW_F16, EW_BF16};

/* Gives a refused batch's seq back to its producer (unless a later one came meanwhile). */
static void seq_rollback(ewd_job_t *j) {
  if (j->producer < 0)
    return;
  ewd_producer_t *p = &j->st->producers[j->producer];
  if (p->has_seq && p->seq == j->seq) {
    p->seq = j->seq_before, p->has_seq = j->had_seq_before;
    if (!j->has_step)
      p->applied_seq = j->applied_before, p->has_applied = j->had_applied_before;
  }
}

static void refuse(ewd_job_t *j, int rc, const char *message) {
  ewd_server_t *srv = j->srv;
  ewd_stream_t *st = j->st;
  ewd_job_fail(j, rc, message);
  ewd_stream_refused(st, rc);
  seq_rollback(j);
  ewd_alerts_batch(srv, st, rc);
  if (st->provisional && st->queued_jobs == 1 && st->count == 0 &&
      ewd_registry_find(&srv->reg, &EWD_KEY_ST(st)) == st) {
    ewd_log(EWD_LOG_INFO, "stream not created: its first batch was refused",
            "stream=\"%s\" code=%s", st->name, ew_err_name(rc));
    ewd_stream_drop(srv, st);
  }
}

static void accepted(ewd_job_t *j) {
  ewd_stream_t *st = j->st;
  ewd_alerts_batch(j->srv, st, 0);
  if (st->ended && j->n) { /* rows accepted again: the run goes on */
    st->ended = false;
    ewd_expo_stale(st);
    st->changes++;
  }
  if (st->provisional) {
    st->provisional = false;
    ewd_log(EWD_LOG_INFO, "stream created by ingest", "run=\"%s\" stream=\"%s\" dim=%zu",
            st->run, st->name, st->cfg.dim);
  }
}

static void ingest_done(ewd_job_t *j) {
  ewd_server_t *srv = j->srv;
  ewd_stream_t *st = j->st;
  ewd_job_mirrors(j);
  if (j->rc) {
    refuse(j, j->rc, j->message);
  } else {
    accepted(j);
    st->last_ingest = ewd_wall_now();
    srv->stat[EWD_STAT_rows] += j->n;
    ewp_kv_t kv[] = {{"stream", ewp_vstr(st->name)},
                     {"accepted", ewp_vu64(j->n)},
                     {"count", ewp_vu64(st->count)}};
    ewp_value_t v = ewp_vmap(kv, 3);
    ewd_job_reply(j, &v);
    ewd_eval_rows(srv, st);
  }
  ewd_job_finish(j);
}

/* A step-carrying batch, checked: staged (or late) in steps.c. */
static void check_done(ewd_job_t *j) {
  ewd_stream_t *st = j->st;
  ewd_job_mirrors(j);
  if (!j->rc && j->n == 0 && st->provisional) { /* the batch that was creating it was refused */
    snprintf(j->message, sizeof j->message, "no such stream '%.100s' (the batch that would have "
             "created it was refused)", st->name);
    j->rc = EW_ENOSTREAM;
  }
  ewd_staging_t how = EWD_STAGE_NOMEM;
  if (!j->rc && (how = ewd_steps_add(j->srv, st, j)) == EWD_STAGE_NOMEM)
    snprintf(j->message, sizeof j->message, "out of memory staging a batch of %zu rows", j->n),
        j->rc = EW_ENOMEM;
  if (j->rc) {
    refuse(j, j->rc, j->message);
  } else {
    accepted(j);
    if (j->n)
      st->last_ingest = ewd_wall_now();
    ewp_kv_t kv[] = {{"stream", ewp_vstr(st->name)},
                     {"accepted", ewp_vu64(j->n)},
                     {"count", ewp_vu64(st->count)},
                     {"step", ewp_vu64(j->step)},
                     {"late", ewp_vbool(how == EWD_LATE)}};
    ewp_value_t v = ewp_vmap(kv, 5);
    ewd_job_reply(j, &v);
  }
  ewd_job_finish(j);
}

/* Answers without a job: nothing to apply (n == 0), or a duplicate. */
static void answer_now(ewd_call_t *call, ewd_stream_t *st, bool duplicate) {
  const ewp_ingest_req_t *r = &call->req->u.ingest;
  bool visible = st && !st->provisional;
  ewp_kv_t kv[] = {{"stream", ewp_vstrn(r->stream.p, r->stream.n)},
                   {"accepted", ewp_vu64(0)},
                   {"count", ewp_vu64(visible ? st->count : 0)},
                   {"duplicate", duplicate ? ewp_vbool(true) : (ewp_value_t){0}}};
  ewp_value_t v = ewp_vmap(kv, 4);
  ewd_reply(call, &v);
}

/* The step fields against the stream (when it exists): world and rank. */
static bool steps_ok(ewd_call_t *call, const ewp_ingest_req_t *r, ewd_stream_t *st) {
  uint64_t world = st ? st->world : EWP_HAS(r, EWP_INGEST_world) ? r->world : 1;
  if (st && EWP_HAS(r, EWP_INGEST_world) && r->world != st->world) {
    ewd_stream_refused(st, EW_EBADPARAM);
    ewd_fail(call, EW_EBADPARAM, "stream '%s' has world %u; this batch says %llu (world is set "
             "when the stream is created)", st->name, st->world, (unsigned long long)r->world);
    return false;
  }
  if (EWP_HAS(r, EWP_INGEST_rank) && r->rank >= world) {
    if (st)
      ewd_stream_refused(st, EW_EBADPARAM);
    ewd_fail(call, EW_EBADPARAM, "rank %llu is not below the stream's world %llu",
             (unsigned long long)r->rank, (unsigned long long)world);
    return false;
  }
  return true;
}

/* Keeps a producer's reported drop totals (running totals: a resent older message never lowers
 * them). */
static void note_drops(ewd_producer_t *p, const ewp_ingest_req_t *r) {
  if (EWP_HAS(r, EWP_INGEST_dropped_rows) && r->dropped_rows > p->dropped_rows)
    p->dropped_rows = r->dropped_rows;
  if (EWP_HAS(r, EWP_INGEST_dropped_batches) && r->dropped_batches > p->dropped_batches)
    p->dropped_batches = r->dropped_batches;
}

/* What st's window of steps may hold once a batch is in (ew_tokens_t.keep_bytes): windows count
 * against max_staged_bytes with the staging, so the bound less what is staged and what the other
 * windows hold (at least 1: the newest step always stays). */
static uint64_t window_budget(const ewd_server_t *srv, const ewd_stream_t *st) {
  const ewd_registry_t *reg = &srv->reg;
  size_t mine = st ? st->window_bytes : 0, used = reg->window_bytes - mine + reg->pending_bytes;
  size_t max = srv->cfg.max_staged_bytes;
  return used < max ? max - used : 1;
}

/* A tokens batch (`columns`) against its stream's columns (st NULL: a stream this ingest
 * creates, *cfg then its configuration, its columns in the map's order): *b the batch in the
 * stream's column order, pointing into the request. Returns 0, or -1 with the refusal answered. */
static int tokens_batch(ewd_call_t *call, const ewp_ingest_req_t *r, const ewd_stream_t *st,
                        ew_config_t *cfg, ew_tokens_t *out) {
  char msg[256], esc[96];
  if (!EWP_HAS(r, EWP_INGEST_step)) {
    ewd_fail(call, EW_EBADREQ, "a tokens batch needs 'step' (the training step its tokens belong "
             "to)");
    return -1;
  }
  if (st && st->cfg.stream_kind != EW_STREAM_TOKENS) {
    ewd_stream_refused((ewd_stream_t *)st, EW_EBADPARAM);
    ewd_fail(call, EW_EBADPARAM, "stream '%s' takes %s, not 'columns'", st->name,
             st->cfg.stream_kind == EW_STREAM_MATRIX ? "rows (kind matrix)"
                                                      : "'values' (kind stats)");
    return -1;
  }
  if (st) {
    *cfg = st->cfg;
  } else {
    ewp_names_t names = {.n = r->columns.n};
    for (size_t i = 0; i < r->columns.n; i++)
      names.v[i] = r->columns.v[i].name;
    ew_config_default(cfg, r->columns.n);
    if (ewd_config_columns(cfg, &names, msg, sizeof msg)) {
      ewd_fail(call, EW_EBADPARAM, "%s", msg);
      return -1;
    }
  }
  ew_tokens_t b = {.step = r->step, .keep_steps = st && st->window_steps ? st->window_steps : 1,
                   .keep_bytes = window_budget(call->srv, st)};
  int at[EW_COLUMNS_MAX];
  for (size_t c = 0; c < cfg->columns.n; c++)
    at[c] = -1;
  for (size_t i = 0; i < r->columns.n; i++) {
    const ewp_column_t *col = &r->columns.v[i];
    int c = ew_config_column(cfg, col->name.p, col->name.n);
    if (c < 0) {
      ewd_fail(call, EW_EBADPARAM, "'%s' is not a column of stream '%.*s' (it was created with "
               "columns %s)", ewp_escape(esc, 64, col->name.p, col->name.n), (int)r->stream.n,
               r->stream.p,
               ewd_columns_list(cfg, msg, sizeof msg));
      return -1;
    }
    at[c] = (int)i;
  }
  for (size_t c = 0; c < cfg->columns.n; c++) {
    if (at[c] < 0) {
      ewd_fail(call, EW_EBADREQ, "column '%s' is missing: every batch carries each of the "
               "stream's columns (%s)", cfg->columns.name[c],
               ewd_columns_list(cfg, msg, sizeof msg));
      return -1;
    }
    const ewp_column_t *col = &r->columns.v[at[c]];
    b.col[c] = col->data.p;
    b.dtype[c] = dtypes[col->dtype];
    b.n = col->data.n / ew_dtype_size(b.dtype[c]);
  }
  if (EWP_HAS(r, EWP_INGEST_mask))
    b.mask = r->mask.p;
  if (EWP_HAS(r, EWP_INGEST_lengths))
    b.lengths = r->lengths.p, b.nseq = r->lengths.n / 4;
  *out = b;
  return 0;
}

/* A stats batch (`values`, `counts`) against its stream, which must exist (its shape comes from
 * create): *b its values (and counts) as a packed batch's columns 0 (and 1) over the cells.
 * Returns 0, or -1 with the refusal answered. */
static int stats_batch(ewd_call_t *call, const ewp_ingest_req_t *r, const ewd_stream_t *st,
                       ew_tokens_t *b, size_t *ncols) {
  if (!EWP_HAS(r, EWP_INGEST_step)) {
    ewd_fail(call, EW_EBADREQ, "a stats batch needs 'step' (the training step it belongs to)");
    return -1;
  }
  if (!st || st->cfg.stream_kind != EW_STREAM_STATS) {
    if (st)
      ewd_stream_refused((ewd_stream_t *)st, EW_EBADPARAM);
    ewd_fail(call, st ? EW_EBADPARAM : EW_ENOSTREAM,
             st ? "stream '%.*s' is not a stats stream: 'values' go to one" : "no stats stream "
             "'%.*s': create it with kind \"stats\" and its shape first",
             (int)r->stream.n, r->stream.p);
    return -1;
  }
  *b = (ew_tokens_t){.step = r->step, .keep_steps = st->window_steps ? st->window_steps : 1,
                     .keep_bytes = window_budget(call->srv, st)};
  b->col[0] = r->values.data.p;
  b->dtype[0] = dtypes[r->values.dtype];
  b->n = r->values.data.n / ew_dtype_size(b->dtype[0]);
  if (EWP_HAS(r, EWP_INGEST_counts))
    b->col[1] = r->counts.data.p, b->dtype[1] = dtypes[r->counts.dtype];
  *ncols = EWP_HAS(r, EWP_INGEST_counts) ? 2 : 1;
  if (b->n != st->cfg.dim) {
    ewd_stream_refused((ewd_stream_t *)st, EW_EBADREQ);
    ewd_fail(call, EW_EBADREQ, "'values' holds %zu cells; stream '%s' has %zu (shape %ux%u)",
             b->n, st->name, st->cfg.dim, st->cfg.shape[0], st->cfg.shape[1]);
    return -1;
  }
  return 0;
}

/* A paired batch (`x`, `y`) against its stream, which must exist and be paired (its dims come
 * from create). Returns 0, or -1 with the refusal answered. */
static int pairs_batch(ewd_call_t *call, const ewp_ingest_req_t *r, ewd_stream_t *st) {
  if (!st || st->provisional || st->cfg.stream_kind != EW_STREAM_PAIRED) {
    if (st)
      ewd_stream_refused(st, EW_EBADPARAM);
    ewd_fail(call, st ? EW_EBADPARAM : EW_ENOSTREAM,
             st ? "stream '%.*s' is not a paired stream: 'x' and 'y' go to one"
                : "no paired stream '%.*s': create it with kind \"paired\" and its dims first",
             (int)r->stream.n, r->stream.p);
    return -1;
  }
  if (r->x.d != st->cfg.shape[0] || r->y.d != st->cfg.shape[1]) {
    ewd_stream_refused(st, EW_EDIM);
    ewd_fail(call, EW_EDIM, "stream '%s' pairs rows of dims [%u, %u]; this batch's x has %llu "
             "values a row and y %llu", st->name, st->cfg.shape[0], st->cfg.shape[1],
             (unsigned long long)r->x.d, (unsigned long long)r->y.d);
    return -1;
  }
  return 0;
}

void ewd_cmd_ingest(ewd_call_t *call) {
  ewd_server_t *srv = call->srv;
  const ewp_ingest_req_t *r = &call->req->u.ingest;
  bool bin = EWP_HAS(r, EWP_INGEST_data), rows = EWP_HAS(r, EWP_INGEST_rows);
  bool tokens = EWP_HAS(r, EWP_INGEST_columns) || EWP_HAS(r, EWP_INGEST_values);
  bool pairs = EWP_HAS(r, EWP_INGEST_x); /* with y (the decoder checked) */
  bool stepped = EWP_HAS(r, EWP_INGEST_step);
  bool end = stepped && EWP_HAS(r, EWP_INGEST_end_step) && r->end_step;
  size_t n = bin ? (size_t)r->shape.n : rows ? r->rows.n : 0;
  size_t d = bin ? (size_t)r->shape.d : rows ? r->rows.d : 0;
  ew_dtype_t dtype = bin ? dtypes[r->dtype] : EW_F64;
  size_t bytes = bin ? r->data.n : n * d * sizeof(double), plen = 0;
  ewd_key_t key = EWD_KEY(r);
  ewd_stream_t *st = ewd_registry_find(&srv->reg, &key);
  ew_config_t tcfg; /* a tokens batch: its stream's configuration, the batch, its packed size */
  ew_tokens_t tb;
  size_t ncols = 0; /* the packed batch's columns */
  if (EWP_HAS(r, EWP_INGEST_values)) {
    if (stats_batch(call, r, st, &tb, &ncols))
      return;
    tcfg = st->cfg;
    n = tb.n, d = st->cfg.dim;
    bytes = plen = ew_tokens_packed_size(&tb, ncols);
  } else if (tokens) {
    if (tokens_batch(call, r, st, &tcfg, &tb))
      return;
    n = tb.n, d = ncols = tcfg.columns.n;
    bytes = plen = ew_tokens_packed_size(&tb, ncols);
  } else if (pairs) {
    if (pairs_batch(call, r, st))
      return;
    n = (size_t)r->x.n, d = st->cfg.dim;
    dtype = ew_pairs_dtype(dtypes[r->x.dtype], dtypes[r->y.dtype]);
    bytes = n * d * ew_dtype_size(dtype);
  } else if (st && n > 0 && st->cfg.stream_kind != EW_STREAM_MATRIX) {
    static const char *const what[][2] = {[EW_STREAM_TOKENS] = {"tokens", "columns"},
                                          [EW_STREAM_STATS] = {"stats", "values"},
                                          [EW_STREAM_PAIRED] = {"paired", "x' and 'y"}};
    ewd_stream_refused(st, EW_EBADPARAM);
    ewd_fail(call, EW_EBADPARAM, "stream '%s' is a %s stream: send its '%s', not rows", st->name,
             what[st->cfg.stream_kind][0], what[st->cfg.stream_kind][1]);
    return;
  }
  if (st && n > 0 && d != st->cfg.dim) {
    ewd_stream_refused(st, EW_EDIM);
    ewd_fail(call, EW_EDIM, "stream '%s' has dim %zu; these rows have %zu values", st->name,
             st->cfg.dim, d);
    return;
  }
  if (stepped && !steps_ok(call, r, st))
    return;
  if (n == 0 && !end) { /* nothing to do, but an answer all the same; no stream is created */
    answer_now(call, st, false);
    return;
  }
  if (n == 0 && !st) { /* an end-of-step marker creates nothing */
    ewd_cmd_stream(call, key);
    return;
  }
  /* a marker behind the batch that is creating its stream (provisional) waits in the stream's
   * order: it takes effect once that batch is accepted, and is refused if the batch was
   * (check_done), as messages on one connection take effect in the order they were sent */
  if ((EWP_HAS(r, EWP_INGEST_dropped_rows) || EWP_HAS(r, EWP_INGEST_dropped_batches)) &&
      !EWP_HAS(r, EWP_INGEST_producer)) {
    ewd_fail(call, EW_EBADREQ, "'dropped_rows' and 'dropped_batches' need 'producer' (they are "
             "a producer's running totals)");
    return;
  }
  int slot = -1;
  if (EWP_HAS(r, EWP_INGEST_producer) && st) {
    if ((slot = ewd_producer_slot(st, r->producer.p, r->producer.n)) < 0) {
      ewd_fail(call, EW_ELIMIT, "stream '%s' already remembers %d producers (the most it keeps "
               "seqs for)", st->name, EWD_PRODUCERS_MAX);
      return;
    }
    note_drops(&st->producers[slot], r);
    const ewd_producer_t *p = &st->producers[slot];
    if (p->has_seq && r->seq <= p->seq) {
      srv->stat[EWD_STAT_duplicate_batches]++;
      answer_now(call, st, true);
      return;
    }
  }
  void *buf = NULL;
  if (n && posix_memalign(&buf, 64, bytes) != 0) {
    ewd_fail(call, EW_ENOMEM, "out of memory for a batch of %zu x %zu", n, d);
    return;
  }
  if (n && tokens) {
    ew_tokens_pack(&tb, ncols, buf);
  } else if (n && pairs) { /* x's row then y's, n times (two dtypes: both widened to f64) */
    int prc = ew_pairs_pack(st->s, r->x.data.p, dtypes[r->x.dtype], r->y.data.p,
                            dtypes[r->y.dtype], n, buf);
    if (prc) {
      free(buf);
      ewd_stream_refused(st, prc);
      ewd_fail(call, prc, "%s", ew_strerror(prc));
      return;
    }
  }
  else if (n)
    memcpy(buf, bin ? (const void *)r->data.p : (const void *)r->rows.x, bytes);
  if (!st) {
    ew_config_t cfg;
    char msg[256];
    ew_config_default(&cfg, d);
    if (tokens)
      cfg = tcfg;
    else if (stepped) /* a training stream: the recent view, at any d */
      cfg.window = ewd_recent_window(cfg.dim);
    int rc = ewd_registry_create(&srv->reg, &srv->cfg, &key, &cfg, &st, msg,
                                 sizeof msg);
    if (rc) {
      free(buf);
      ewd_fail(call, rc, "%s", msg);
      return;
    }
    st->provisional = true;
    st->recent = stepped && !tokens;
    if (stepped && EWP_HAS(r, EWP_INGEST_world))
      st->world = (uint32_t)r->world;
    if (EWP_HAS(r, EWP_INGEST_producer))
      slot = ewd_producer_slot(st, r->producer.p, r->producer.n); /* -1 only without memory */
  }
  ewd_job_t *j = ewd_job_new(srv, call, st, stepped ? EWD_JOB_CHECK : EWD_JOB_INGEST,
                             stepped ? check_done : ingest_done);
  if (!j || (stepped && ewd_steps_ensure(st) != 0) ||
      (EWP_HAS(r, EWP_INGEST_producer) && slot < 0)) {
    free(buf);
    free(j);
    ewd_fail(call, EW_ENOMEM, "out of memory");
    if (st->provisional && st->queued_jobs == 0)
      ewd_stream_drop(srv, st);
    return;
  }
  if (EWP_HAS(r, EWP_INGEST_labels) && n) { /* one u32 per row (the decoder checked) */
    if (!(j->labels = malloc(n * sizeof *j->labels))) {
      free(buf);
      free(j);
      ewd_fail(call, EW_ENOMEM, "out of memory");
      if (st->provisional && st->queued_jobs == 0)
        ewd_stream_drop(srv, st);
      return;
    }
    memcpy(j->labels, r->labels.p, n * sizeof *j->labels);
  }
  j->data = buf;
  j->dtype = dtype;
  j->n = n;
  j->d = d;
  j->bytes = bytes;
  j->plen = plen;
  j->has_step = stepped;
  j->step = stepped ? r->step : 0;
  j->rank = EWP_HAS(r, EWP_INGEST_rank) ? (uint32_t)r->rank : 0;
  j->end_step = end;
  j->producer = slot;
  if (slot >= 0) {
    ewd_producer_t *p = &st->producers[slot];
    note_drops(p, r);
    j->seq = r->seq;
    j->seq_before = p->seq, j->had_seq_before = p->has_seq;
    j->applied_before = p->applied_seq, j->had_applied_before = p->has_applied;
    p->seq = r->seq, p->has_seq = true;
    if (!stepped) /* the rows reach the state in queue order: a snapshot after this has them */
      p->applied_seq = r->seq, p->has_applied = true;
  }
  st->queued_bytes += bytes; /* and the connection's, as the job holds it (conn_hooks) */
  bool pipelined = call->req->kind == EWP_KIND_NOTIFY;
  ewd_job_submit(srv, j, pipelined);
}
