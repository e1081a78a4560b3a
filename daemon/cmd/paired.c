/* paired.c — nullify: rows y less what a paired stream's x explains, y − x·A* with
 * A* = (C_xx + εI)⁺ C_xy from every pair the stream holds (Dissecting CLIP's "nullify the
 * prompt"). The rows are copied out of the request; the library computes on a math thread in the
 * stream's order (it keeps A* until the stream changes, so a run of calls costs one solve), and
 * the answer is `y` as f64 rows: {dtype, shape, data}. */
#include "cmd/cmd.h"

#include <stdlib.h>
#include <string.h>

static const ew_dtype_t dtypes[] = {EW_F32, EW_F64, EW_F16, EW_BF16};

static void nullify_work(ewd_job_t *j, ewd_stream_t *st) {
  size_t dy = st->cfg.shape[1];
  if (!(j->out = malloc(j->n * dy * sizeof(double)))) {
    j->rc = EW_ENOMEM;
    snprintf(j->message, sizeof j->message, "out of memory for %zu corrected rows", j->n);
    return;
  }
  j->out_len = j->n * dy * sizeof(double);
  const char *p = j->data;
  j->rc = ew_stream_nullify(st->s, p, j->dtype, p + j->y_at, j->y_dtype, j->n, (double *)j->out,
                            j->message, sizeof j->message);
  if (j->rc && !j->message[0])
    snprintf(j->message, sizeof j->message, "%s", ew_strerror(j->rc));
}

/* The answer: {stream, count, y: {dtype "f64", shape [n, dy], data}}. */
static void reply_rows(ewd_job_t *j, ewd_call_t *call, const ewd_stream_t *st, size_t n,
                       const void *rows) {
  size_t dy = st->cfg.shape[1];
  ewp_value_t shape[2] = {ewp_vu64(n), ewp_vu64(dy)};
  ewp_kv_t y[] = {{"dtype", ewp_vstr("f64")},
                  {"shape", ewp_varray(shape, 2)},
                  {"data", ewp_vbin(rows, n * dy * sizeof(double))}};
  ewp_kv_t kv[] = {{"stream", ewp_vstr(st->name)},
                   {"count", ewp_vu64(st->count)},
                   {"y", ewp_vmap(y, 3)}};
  ewp_value_t v = ewp_vmap(kv, 3);
  if (j)
    ewd_job_reply(j, &v);
  else
    ewd_reply(call, &v);
}

static void nullify_done(ewd_job_t *j) {
  ewd_job_mirrors(j);
  if (j->skipped)
    ; /* nobody is there to answer */
  else if (j->rc)
    ewd_job_fail(j, j->rc, j->message);
  else
    reply_rows(j, NULL, j->st, j->n, j->out);
  ewd_job_finish(j);
}

void ewd_cmd_nullify(ewd_call_t *call) {
  const ewp_nullify_req_t *r = &call->req->u.nullify;
  ewd_stream_t *st = ewd_cmd_stream(call, EWD_KEY(r));
  if (!st)
    return;
  const ew_config_t *c = &st->cfg;
  if (c->stream_kind != EW_STREAM_PAIRED || c->features != EW_FEATURES_LINEAR) {
    ewd_fail(call, EW_EBADPARAM, c->stream_kind != EW_STREAM_PAIRED
                                     ? "stream '%s' is not a paired stream: nullify reads the "
                                       "blocks of one (kind \"paired\")"
                                     : "stream '%s' keeps random Fourier features: nullify needs "
                                       "features \"linear\" (A* maps rows to rows only there)",
             st->name);
    return;
  }
  if (r->x.d != c->shape[0] || r->y.d != c->shape[1]) {
    ewd_fail(call, EW_EDIM, "stream '%s' pairs rows of dims [%u, %u]; this x has %llu values a "
             "row and y %llu", st->name, c->shape[0], c->shape[1], (unsigned long long)r->x.d,
             (unsigned long long)r->y.d);
    return;
  }
  size_t n = (size_t)r->x.n;
  if (n == 0) {
    reply_rows(NULL, call, st, 0, "");
    return;
  }
  size_t xb = r->x.data.n, bytes = xb + r->y.data.n;
  char *buf = malloc(bytes);
  ewd_job_t *j = buf ? ewd_job_new(call->srv, call, st, EWD_JOB_CALL, nullify_done) : NULL;
  if (!j) {
    free(buf);
    ewd_fail(call, EW_ENOMEM, "out of memory for a nullify of %zu rows", n);
    return;
  }
  memcpy(buf, r->x.data.p, xb);
  memcpy(buf + xb, r->y.data.p, r->y.data.n);
  j->data = buf;
  j->bytes = bytes;
  j->n = n;
  j->d = c->shape[0];
  j->dtype = dtypes[r->x.dtype];
  j->y_at = xb;
  j->y_dtype = dtypes[r->y.dtype];
  j->work = nullify_work;
  st->queued_bytes += bytes; /* as ingest's: the job holds the rows (ewd_job_finish) */
  ewd_job_submit(call->srv, j, false);
}
