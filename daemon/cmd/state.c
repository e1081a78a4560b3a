/* state.c — a stream's state as a value on the wire and on disk: `snapshot` (every changed
 * stream written to the state dir now; answered once durable), `export` (one stream's saved state
 * as bin, copied on the stream's math turn) and `merge` (an exported state folded into a stream,
 * which is created with the state's configuration if absent). The format is the library's
 * (docs/STATE.md); its checksum is verified on a math thread before anything changes. */
#include "cmd/cmd.h"
#include "store/persist.h"

#include <stdlib.h>
#include <string.h>

/* ---- snapshot ---- */

typedef struct {
  ewd_server_t *srv;
  ewd_conn_t *conn;
  ewd_job_t *hold; /* stands for the request in the connection's ordering until answered */
  uint32_t msgid;
  bool notify;
} snap_wait_t;

static void snapshot_done(void *arg, const ewd_round_t *r) {
  snap_wait_t *w = arg;
  if (r->failed) {
    ewd_refuse(w->srv, w->conn, w->msgid, w->notify, EW_EIO,
               "%zu of %zu snapshots were not written (logged); the first: %s", r->failed,
               r->failed + r->written, r->first_error);
  } else {
    ewp_kv_t kv[] = {{"streams", ewp_vu64(r->written)},
                     {"bytes", ewp_vu64(r->bytes)},
                     {"seconds", ewp_vf64(r->seconds)}};
    ewp_value_t v = ewp_vmap(kv, 3);
    ewd_answer(w->srv, w->conn, w->msgid, w->notify, &v);
  }
  w->srv->conn_hooks->done(w->conn, false);
  free(w->hold);
  free(w);
}

void ewd_cmd_snapshot(ewd_call_t *call) {
  if (!call->srv->persist) {
    ewd_fail(call, EW_EIO, "this server keeps no snapshots");
    return;
  }
  snap_wait_t *w = calloc(1, sizeof *w);
  ewd_job_t *hold = calloc(1, sizeof *hold);
  if (!w || !hold) {
    free(w);
    free(hold);
    ewd_fail(call, EW_ENOMEM, "out of memory");
    return;
  }
  *w = (snap_wait_t){call->srv, call->conn, hold, call->req->msgid,
                     call->req->kind == EWP_KIND_NOTIFY};
  call->srv->conn_hooks->hold(call->conn, hold, false);
  ewd_persist_round(call->srv, snapshot_done, w);
}

/* ---- export ---- */

static void export_done(ewd_job_t *j) {
  ewd_job_mirrors(j);
  if (j->rc) {
    ewd_job_fail(j, j->rc, j->message);
  } else if (!j->skipped) {
    ewp_kv_t kv[] = {{"stream", ewp_vstr(j->st->name)},
                     {"count", ewp_vu64(j->count_after)},
                     {"state", ewp_vbin(j->out, j->out_len)}};
    ewp_value_t v = ewp_vmap(kv, 3);
    ewd_job_reply(j, &v);
  }
  ewd_server_freed(j->srv, j->out_len);
  ewd_job_finish(j);
}

void ewd_cmd_export(ewd_call_t *call) {
  ewd_stream_t *st = ewd_cmd_stream(call, EWD_KEY(&call->req->u.export));
  if (!st)
    return;
  ewd_job_t *j = ewd_job_new(call->srv, call, st, EWD_JOB_SAVE, export_done);
  if (j)
    j->work = ewd_run_save;
  if (j && ewd_train_attach(st, j) != 0) {
    free(j);
    j = NULL;
  }
  if (!j) {
    ewd_fail(call, EW_ENOMEM, "out of memory");
    return;
  }
  ewd_job_submit(call->srv, j, false);
}

/* ---- merge ---- */

static const char *normalize_name(ew_normalize_t n) { return n == EW_NORMALIZE_L2 ? "l2" : "none"; }

/* What the merged state's training block brings (loop thread). Into a stream the merge created:
 * all of it (world, steps, producers' seqs, the recent view and its steps, the eval list, the
 * rules). Into an existing stream: each producer's last applied seq (the higher of the two, so a
 * batch either side applied is a duplicate now), the first and last completed steps, and the
 * rules when the stream has none; its own world, recent view and eval list stay. */
static void adopt_train(ewd_server_t *srv, ewd_stream_t *st, ewd_stream_t *t, bool created) {
  if (!t->has_train)
    return;
  if (created) {
    if (t->steps && st->steps) { /* steps sent to the new stream while the merge waited */
      ewd_log(EWD_LOG_INFO, "a merge-created stream's own pending steps complete before the "
              "state's staged steps are adopted", "stream=\"%s\"", st->name);
      ewd_steps_flush(srv, st, "merge");
      ewd_steps_discard(srv, st);
    }
    ewd_train_move(st, t);
    ewd_steps_adopt(srv, st);
    ewd_steps_relieve(srv);
    return;
  }
  for (size_t i = 0; i < t->nproducers; i++) {
    const ewd_producer_t *p = &t->producers[i];
    int k = ewd_producer_slot(st, p->name, strlen(p->name));
    if (k < 0) {
      ewd_log(EWD_LOG_WARN, "a merged producer's seq is not kept: the stream's producer table "
              "is full", "stream=\"%s\" producer=\"%s\"", st->name, p->name);
      continue;
    }
    ewd_producer_t *q = &st->producers[k];
    if (!q->has_applied || q->applied_seq < p->applied_seq)
      q->applied_seq = p->applied_seq, q->has_applied = true;
    if (!q->has_seq || q->seq < q->applied_seq)
      q->seq = q->applied_seq, q->has_seq = true;
  }
  if (t->has_first_step && (!st->has_first_step || t->first_step < st->first_step))
    st->has_first_step = true, st->first_step = t->first_step;
  if (t->has_last_step && (!st->has_last_step || t->last_step > st->last_step))
    st->has_last_step = true, st->last_step = t->last_step;
  if (t->alerts && !st->alerts) {
    st->alerts = t->alerts, t->alerts = NULL;
    ewd_expo_stale(st);
  }
}

/* A merge by steps: the merged ring replaces the stream's, followed by the steps the stream
 * completed while the merge waited in its queue (their rows come after it). */
static void adopt_ring(ewd_stream_t *st, ewd_job_t *j) {
  uint32_t S = st->window_steps;
  if (!S || S != j->window_steps)
    return;
  uint64_t newest = j->nring ? j->ring[j->nring - 1].step : 0;
  ewd_step_rows_t *v = calloc(2 * (size_t)S, sizeof *v);
  if (!v)
    return; /* the old ring stays: the recent view reads the rows its counts name */
  uint32_t n = 0;
  for (uint32_t i = 0; i < j->nring; i++)
    v[n++] = j->ring[i];
  for (uint32_t i = 0; i < st->nstep_rows; i++) {
    ewd_step_rows_t e = st->step_rows[(st->step_rows_at + S - st->nstep_rows + i) % S];
    if (!j->nring || e.step > newest)
      v[n++] = e;
  }
  uint32_t keep = n < S ? n : S;
  for (uint32_t i = 0; i < keep; i++)
    st->step_rows[i] = v[n - keep + i];
  st->nstep_rows = keep;
  st->step_rows_at = keep % S;
  free(v);
}

static void merge_done(ewd_job_t *j) {
  ewd_server_t *srv = j->srv;
  ewd_stream_t *st = j->st;
  ewd_job_mirrors(j);
  if (j->rc) {
    ewd_job_fail(j, j->rc, j->message);
    if (st->provisional && st->queued_jobs == 1 && st->count == 0 &&
        ewd_registry_find(&srv->reg, &EWD_KEY_ST(st)) == st) {
      ewd_log(EWD_LOG_INFO, "stream not created: the state merged into it was refused",
              "stream=\"%s\" code=%s", st->name, ew_err_name(j->rc));
      ewd_stream_drop(srv, st);
    }
  } else {
    bool created = st->provisional;
    st->provisional = false;
    if (j->train_st)
      adopt_train(srv, st, j->train_st, created);
    if (!created && j->merge_by_steps)
      adopt_ring(st, j);
    ewd_cache_clear(st);
    ewd_log(EWD_LOG_INFO, "state merged", "stream=\"%s\" rows=%llu count=%llu created=%s",
            st->name, (unsigned long long)j->merged_rows, (unsigned long long)st->count,
            created ? "true" : "false");
    ewp_kv_t kv[] = {{"stream", ewp_vstr(st->name)},
                     {"merged", ewp_vu64(j->merged_rows)},
                     {"count", ewp_vu64(st->count)},
                     {"created", ewp_vbool(created)}};
    ewp_value_t v = ewp_vmap(kv, 4);
    ewd_job_reply(j, &v);
  }
  ewd_job_finish(j);
}

void ewd_cmd_merge(ewd_call_t *call) {
  ewd_server_t *srv = call->srv;
  const ewp_merge_req_t *r = &call->req->u.merge;
  ew_config_t cfg;
  char msg[256];
  if (ew_state_config(r->state.p, r->state.n, &cfg, msg, sizeof msg) != 0) {
    ewd_fail(call, EW_ESTATE, "'state' is not an exported eigenwatch state: %s", msg);
    return;
  }
  ewd_key_t key = EWD_KEY(r);
  ewd_stream_t *st = ewd_registry_find(&srv->reg, &key);
  if (st && st->cfg.dim != cfg.dim) {
    ewd_fail(call, EW_EDIM, "stream '%s' has dim %zu; the state has %zu", st->name, st->cfg.dim,
             cfg.dim);
    return;
  }
  if (st && ew_config_sketched(&st->cfg) != ew_config_sketched(&cfg)) {
    ewd_fail(call, EW_EBADPARAM, "stream '%s' cannot take this state: %s", st->name,
             ewd_merge_kind_mismatch(&st->cfg, &cfg));
    return;
  }
  if (st && (st->cfg.normalize != cfg.normalize ||
             st->cfg.decay_half_life != cfg.decay_half_life)) {
    ewd_fail(call, EW_EBADPARAM, "stream '%s' (normalize %s, decay %g) cannot take a state of "
             "normalize %s, decay %g: their rows do not describe the same quantity", st->name,
             normalize_name(st->cfg.normalize), st->cfg.decay_half_life,
             normalize_name(cfg.normalize), cfg.decay_half_life);
    return;
  }
  char *buf = malloc(r->state.n);
  if (!buf) {
    ewd_fail(call, EW_ENOMEM, "out of memory for a %zu-byte state", r->state.n);
    return;
  }
  memcpy(buf, r->state.p, r->state.n);
  if (!st) {
    int rc = ewd_registry_create(&srv->reg, &srv->cfg, &key, &cfg, &st, msg,
                                 sizeof msg);
    if (rc) {
      free(buf);
      ewd_fail(call, rc, "%s", msg);
      return;
    }
    st->provisional = true;
  }
  /* by steps: the stream's ring as the queue will have it when the merge runs (oldest first) */
  ewd_step_rows_t *ring = st->window_steps ? calloc(st->window_steps, sizeof *ring) : NULL;
  ewd_job_t *j = (!st->window_steps || ring) ? ewd_job_new(srv, call, st, EWD_JOB_MERGE,
                                                           merge_done)
                                             : NULL;
  if (!j) {
    free(buf);
    free(ring);
    ewd_fail(call, EW_ENOMEM, "out of memory");
    return;
  }
  j->work = ewd_run_merge;
  j->data = buf;
  j->bytes = r->state.n;
  j->merge_replace = st->provisional;
  /* the matrix recent view's rows by step (merge_plan.c); a tokens or stats stream's window
   * combines its steps itself */
  j->merge_by_steps = st->window_steps > 0 && st->cfg.stream_kind == EW_STREAM_MATRIX;
  j->ring = ring;
  j->window_steps = st->window_steps;
  for (uint32_t i = 0; i < st->nstep_rows; i++)
    j->ring[j->nring++] = st->step_rows[(st->step_rows_at + st->window_steps - st->nstep_rows + i) %
                                        st->window_steps];
  st->queued_bytes += j->bytes; /* and the connection's, as the job holds it (conn_hooks) */
  ewd_job_submit(srv, j, false);
}
