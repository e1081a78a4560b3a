/* ingest.c — rows into a stream. The payload is copied out of the receive buffer into an aligned
 * buffer the job owns; conversion, the finiteness check and the batch Gram run on a math thread
 * (prepare), the merge in the stream's order (apply). An ingest into an unknown stream creates
 * it with defaults and d from the payload, but provisionally: invisible to every other method
 * until a batch has been accepted, and removed again if the batch that created it is refused —
 * a rejected batch changes nothing, not even the list of streams. */
#include "cmd.h"

#include <stdlib.h>
#include <string.h>

static const ew_dtype_t dtypes[] = {EW_F32, EW_F64, EW_F16, EW_BF16};

static void ingest_done(ewd_job_t *j) {
  ewd_server_t *srv = j->srv;
  ewd_stream_t *st = j->st;
  ewd_job_mirrors(j);
  if (j->rc) {
    ewd_job_fail(j, j->rc, j->message);
    if (st->provisional && st->queued_jobs == 1 && st->count == 0 &&
        ewd_registry_find(&srv->reg, &EWD_KEY_ST(st)) == st) {
      ewd_log(EWD_LOG_INFO, "stream not created: its first batch was refused",
              "stream=\"%s\" code=%s", st->name, ew_err_name(j->rc));
      ewd_stream_drop(srv, st);
    }
  } else {
    if (st->provisional) {
      st->provisional = false;
      ewd_log(EWD_LOG_INFO, "stream created by ingest", "stream=\"%s\" dim=%zu", st->name,
              st->cfg.dim);
    }
    st->last_ingest = ewd_wall_now();
    srv->stat[EWD_STAT_rows] += j->n;
    ewp_kv_t kv[] = {{"stream", ewp_vstr(st->name)},
                     {"accepted", ewp_vu64(j->n)},
                     {"count", ewp_vu64(st->count)}};
    ewp_value_t v = ewp_vmap(kv, 3);
    ewd_job_reply(j, &v);
  }
  ewd_job_finish(j);
}

void ewd_cmd_ingest(ewd_call_t *call) {
  ewd_server_t *srv = call->srv;
  const ewp_ingest_req_t *r = &call->req->u.ingest;
  bool bin = EWP_HAS(r, EWP_INGEST_data);
  size_t n = bin ? (size_t)r->shape.n : r->rows.n;
  size_t d = bin ? (size_t)r->shape.d : r->rows.d;
  ew_dtype_t dtype = bin ? dtypes[r->dtype] : EW_F64;
  size_t bytes = bin ? r->data.n : n * d * sizeof(double);
  ewd_key_t key = EWD_KEY(r);
  ewd_stream_t *st = ewd_registry_find(&srv->reg, &key);
  if (st && n > 0 && d != st->cfg.dim) {
    ewd_fail(call, EW_EDIM, "stream '%s' has dim %zu; these rows have %zu values", st->name,
             st->cfg.dim, d);
    return;
  }
  if (n == 0) { /* nothing to do, but an answer all the same; no stream is created */
    bool visible = st && !st->provisional;
    ewp_kv_t kv[] = {{"stream", ewp_vstrn(r->stream.p, r->stream.n)},
                     {"accepted", ewp_vu64(0)},
                     {"count", ewp_vu64(visible ? st->count : 0)}};
    ewp_value_t v = ewp_vmap(kv, 3);
    ewd_reply(call, &v);
    return;
  }
  void *buf = NULL;
  if (posix_memalign(&buf, 64, bytes) != 0) {
    ewd_fail(call, EW_ENOMEM, "out of memory for a batch of %zu x %zu", n, d);
    return;
  }
  memcpy(buf, bin ? (const void *)r->data.p : (const void *)r->rows.x, bytes);
  if (!st) {
    ew_config_t cfg;
    char msg[256];
    ew_config_default(&cfg, d);
    int rc = ewd_registry_create(&srv->reg, &srv->cfg, &key, &cfg, &st, msg,
                                 sizeof msg);
    if (rc) {
      free(buf);
      ewd_fail(call, rc, "%s", msg);
      return;
    }
    st->provisional = true;
  }
  ewd_job_t *j = ewd_job_new(srv, call, st, EWD_JOB_INGEST, ingest_done);
  if (!j) {
    free(buf);
    ewd_fail(call, EW_ENOMEM, "out of memory");
    return;
  }
  j->data = buf;
  j->dtype = dtype;
  j->n = n;
  j->d = d;
  j->bytes = bytes;
  st->queued_bytes += bytes;
  call->conn->queued_bytes += bytes;
  bool pipelined = call->req->kind == EWP_KIND_NOTIFY;
  ewd_job_submit(srv, j, pipelined);
}
