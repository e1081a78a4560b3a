/* cmd.h — the handlers, by job (streams.c, ingest.c, query.c, state.c, daemon.c), and what they
 * share (dispatch.c): the method table's handlers, replies, stream lookup, and jobs. A handler
 * gets a decoded, checked request (proto/), answers at once from loop-side state or hands its
 * stream a job and answers when the job completes. A rejected request changes nothing. The
 * request's connection is net/'s: a handler answers and reads it through srv->conn_hooks
 * (core/conn.h). */
#ifndef EWD_CMD_H
#define EWD_CMD_H

#include "core/conn.h"
#include "run/run.h"
#include "store/history.h"
#include "store/persist.h"

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
void ewd_cmd_nullify(ewd_call_t *call);


/* ---- shared (dispatch.c) ---- */
/* Answers the call with a result (borrowed), or refuses it with code and a sentence (at most
 * 511 bytes kept); nothing is sent for a notification or a closing connection. */
void ewd_reply(ewd_call_t *call, const ewp_value_t *result);
void ewd_fail(ewd_call_t *call, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* The same for a request answered later (its call gone: a job's, a read's, a round's), by its
 * connection (NULL: nobody waits), msgid and notify flag, through srv->conn_hooks. A refusal is
 * counted by code even when nothing is sent. */
void ewd_answer(ewd_server_t *srv, ewd_conn_t *c, uint32_t msgid, bool notify,
                const ewp_value_t *result);
void ewd_refuse(ewd_server_t *srv, ewd_conn_t *c, uint32_t msgid, bool notify, int code,
                const char *fmt, ...) __attribute__((format(printf, 6, 7)));
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
 * renamed one under both names), world, step_timeout, recent, window_steps and sketch, and a
 * tokens stream's columns or a stats stream's shape; its entries live in *buf (valid while buf
 * is). */
#define EWD_CONFIG_OWN_KEYS 5
#define EWD_CONFIG_KV (EW_CONFIG_COUNT + EW_CONFIG_OLD_COUNT + EWD_CONFIG_OWN_KEYS + 1)
typedef struct {
  ewp_kv_t kv[EWD_CONFIG_KV];
  ewp_value_t cols[EW_COLUMNS_MAX];
} ewd_config_kv_t;
ewp_value_t ewd_config_value(const ewd_stream_t *st, ewd_config_kv_t *buf);
/* cfg's columns (kind tokens) from create's or an ingest's names (NULL: the default, one column
 * "entropy"). 0, or -1 with the sentence in msg. */
int ewd_config_columns(ew_config_t *cfg, const ewp_names_t *names, char *msg, size_t cap);
/* cfg's columns as "entropy, logp, advantage" in buf[0, cap); returns buf. */
const char *ewd_columns_list(const ew_config_t *cfg, char *buf, size_t cap);

/* ---- expo.c (owner: the loop) ---- */
/* GET /metrics: the Prometheus text exposition (0.0.4) of the self-stats, errors by code, and
 * each stream's latest values, steps, update times, lag, coalescing, rows and alert states.
 * Returns a malloc'ed body (*len bytes), or NULL when out of memory. */
char *ewd_expo_metrics(struct ewd_server *srv, size_t *len);

#endif
