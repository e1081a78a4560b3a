/* hooks.c — what net/ does for the rooms below it (core/conn.h): they hold an opaque connection
 * and reach it only through ewd_net_hooks, which ewd_net_init installs as srv->conn_hooks. */
#include "net/net.h"

/* A job now names c: its bytes count against c's high water until it leaves. */
static void job_hold(ewd_conn_t *c, ewd_job_t *j, bool pipelined) {
  c->queued_bytes += j->bytes;
  ewd_rpc_hold(c, j, pipelined);
}

/* A job that names c finishes: its bytes no longer count against c's high water. Returns
 * whether it was a pipelined ingest (not the request c waits on). */
static bool job_leaving(ewd_conn_t *c, const ewd_job_t *j) {
  c->queued_bytes -= j->bytes;
  return c->job != j;
}

static void gauges(ewd_server_t *srv) {
  srv->stat[EWD_STAT_connections] = srv->net ? srv->net->nconns : 0;
  srv->stat[EWD_STAT_recv_held_bytes] = srv->net ? srv->net->recv_held : 0;
}

static bool closing(const ewd_conn_t *c) { return c->closing; }

static void refuse(ewd_server_t *srv, ewd_conn_t *c, uint32_t msgid, bool notify, int code,
                   const char *message) {
  ewd_rpc_error(srv, c, msgid, notify, code, "%s", message);
}

static uint64_t id(const ewd_conn_t *c) { return c->id; }
static bool tcp(const ewd_conn_t *c) { return c->tcp; }
static bool json(const ewd_conn_t *c) { return c->proto->json; }
static const atomic_bool *gone(ewd_conn_t *c) { return &c->gone; }
static void authed(ewd_conn_t *c) { c->authed = true; }

static void hang_up(ewd_conn_t *c) {
  c->eof = true; /* nothing more is read; closes once the reply is out */
  atomic_store(&c->gone, true);
}

const ewd_conn_hooks_t ewd_net_hooks = {
    .hold = job_hold,
    .leaving = job_leaving,
    .done = ewd_rpc_job_done,
    .gauges = gauges,
    .ref = ewd_conn_ref,
    .unref = ewd_conn_unref,
    .closing = closing,
    .notify = ewd_rpc_notify,
    .result = ewd_rpc_result,
    .error = refuse,
    .id = id,
    .tcp = tcp,
    .json = json,
    .gone = gone,
    .authed = authed,
    .hang_up = hang_up,
};
