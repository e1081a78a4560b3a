/* hooks.c — what net/ does for the rooms below it (core/conn.h): they hold an opaque connection
 * and reach it only through ewd_net_hooks, which ewd_net_init installs as srv->conn_hooks. */
#include "net/net.h"

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

const ewd_conn_hooks_t ewd_net_hooks = {
    .hold = ewd_rpc_hold,
    .leaving = job_leaving,
    .done = ewd_rpc_job_done,
    .gauges = gauges,
    .ref = ewd_conn_ref,
    .unref = ewd_conn_unref,
    .closing = closing,
    .notify = ewd_rpc_notify,
};
