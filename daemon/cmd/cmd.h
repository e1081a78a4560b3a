/* cmd.h — the handlers, by job (streams.c, ingest.c, query.c, state.c, daemon.c), and what they
 * share (dispatch.c): the method table's handlers, replies, stream lookup, and jobs. A handler
 * gets a decoded, checked request (proto/), answers at once from loop-side state or hands its
 * stream a job and answers when the job completes. A rejected request changes nothing. */
#ifndef EWD_CMD_H
#define EWD_CMD_H

#include "net/net.h"

/* One call: the server, the connection it came on, and its decoded request (borrowed: valid
 * only during the handler; copy what a job keeps). */
typedef struct {
  ewd_server_t *srv;
  ewd_conn_t *conn;
  const ewp_request_t *req;
} ewd_call_t;

/* Runs the handler of call->req->method. */
void ewd_cmd_dispatch(ewd_call_t *call);

/* ---- handlers ---- */
void ewd_cmd_ping(ewd_call_t *call);
void ewd_cmd_create(ewd_call_t *call);
void ewd_cmd_ingest(ewd_call_t *call);
void ewd_cmd_query(ewd_call_t *call);
void ewd_cmd_list(ewd_call_t *call);
void ewd_cmd_info(ewd_call_t *call);
void ewd_cmd_reset(ewd_call_t *call);
void ewd_cmd_drop(ewd_call_t *call);
void ewd_cmd_stats(ewd_call_t *call);
void ewd_cmd_metrics(ewd_call_t *call);
void ewd_cmd_auth(ewd_call_t *call);
void ewd_cmd_snapshot(ewd_call_t *call);
void ewd_cmd_export(ewd_call_t *call);
void ewd_cmd_merge(ewd_call_t *call);
void ewd_cmd_runs(ewd_call_t *call);
void ewd_cmd_flush(ewd_call_t *call);

void ewd_cmd_history(ewd_call_t *call);
void ewd_cmd_subscribe(ewd_call_t *call);
void ewd_cmd_unsubscribe(ewd_call_t *call);
void ewd_cmd_alert_set(ewd_call_t *call);
void ewd_cmd_alerts(ewd_call_t *call);

/* ---- shared (query.c) ---- */
/* The result cache's key of a metric: "metric|c=center|s=source|t=tail|param=value..." (a
 * query and a scheduled evaluation of the same thing share it). Malloc'ed; NULL: no memory. */
char *ewd_cache_key(const char *metric, int center, ew_source_t src, uint64_t tail,
                    ew_method_t method, const ew_param_t *ps, size_t np);
/* True when the metric can be computed from the window (EW_SOURCE_WINDOW is among its sources). */
bool ewd_takes_window(const ew_metric_info_t *info);
/* A metric parameter as the wire sent it (wp), checked against its row pi of metric info
 * (ew_param_check) and resolved into *out: a number ("inf" included) or a bool as its value, a
 * string or an enum as its text, copied into txt (the caller's, EWP_PARAM_STR_MAX + 1 bytes;
 * out->str points there). out->key is pi->name (static). Returns 0, or EW_EBADPARAM with a
 * sentence in msg[0, cap) naming the parameter, the metric and the type or range it takes. */
int ewd_param_resolve(const ew_metric_info_t *info, const ew_param_info_t *pi,
                      const ewp_param_t *wp, ew_param_t *out, char txt[EWP_PARAM_STR_MAX + 1],
                      char *msg, size_t cap);
/* Appends a copy of the resolved parameter p to m (m->pkeys[k] owns its key and string value,
 * freed by ewd_qmetrics_free). Returns 0, or EW_ENOMEM (also when m has EW_METRIC_MAX_PARAMS). */
int ewd_qmetric_param(ewd_qmetric_t *m, const ew_param_t *p);

/* ---- shared (dispatch.c) ---- */
void ewd_reply(ewd_call_t *call, const ewp_value_t *result);
void ewd_fail(ewd_call_t *call, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* The visible stream named `name`, or NULL after answering NO_SUCH_STREAM. */
ewd_stream_t *ewd_cmd_stream(ewd_call_t *call, ewd_key_t key);
/* A job for `st` answering `call` (or nobody when call is NULL): core's ewd_job_make with the
 * request's connection, msgid and kind. */
ewd_job_t *ewd_job_new(ewd_server_t *srv, ewd_call_t *call, ewd_stream_t *st, ewd_job_kind_t kind,
                       void (*done)(ewd_job_t *));
/* Replies for a job (no-op when nobody waits). */
void ewd_job_reply(ewd_job_t *job, const ewp_value_t *result);
void ewd_job_fail(ewd_job_t *job, int code, const char *message);
/* Removes a stream from the registry and frees its state after its queued jobs (streams.c). */
void ewd_stream_drop(ewd_server_t *srv, ewd_stream_t *st);
/* The CONFIG map of a stream: every field of the library's configuration (EW_CONFIG_MAP; a
 * renamed one under both names), world, step_timeout, recent, window_steps and sketch (kv must
 * hold EWD_CONFIG_KV entries). */
#define EWD_CONFIG_OWN_KEYS 5
#define EWD_CONFIG_KV (EW_CONFIG_COUNT + EW_CONFIG_OLD_COUNT + EWD_CONFIG_OWN_KEYS)
ewp_value_t ewd_config_value(const ewd_stream_t *st, ewp_kv_t *kv);

#endif
