/* conn.h — a connection as the rooms below net/ know it: an opaque ewd_conn_t (core/ewd.h; the
 * struct is net/net.h's) and the hooks through which they reach it. net/ fills the hooks in at
 * start (ewd_net_init sets srv->conn_hooks; net/hooks.c), so that no room below it includes or
 * calls net/. Every hook runs on the loop thread. */
#ifndef EWD_CONN_H
#define EWD_CONN_H

#include "core/ewd.h"

typedef struct ewd_conn_hooks {
  /* The job lifecycle (jobs.c): hold c while the job is queued (pipelined: an ingest counted in
   * flight), let go of the job's bytes as it finishes (returns whether it was pipelined), and
   * release the hold after the job is freed (which lets c handle its next messages). */
  void (*hold)(ewd_conn_t *c, ewd_job_t *job, bool pipelined);
  bool (*leaving)(ewd_conn_t *c, const ewd_job_t *job);
  void (*done)(ewd_conn_t *c, bool pipelined);
  /* The connections' gauges into srv->stat: connections, recv_held_bytes (stats.c). */
  void (*gauges)(ewd_server_t *srv);
  /* Subscriptions (run/subs.c): a reference that keeps c's memory valid after it closes (ref,
   * unref: the last frees it), whether c is closing (its subscriptions are then removed), and
   * a notification [2, method, [v]] written to c (nothing when closing; c is closed instead
   * when its unsent output is past conn_out_cap). */
  void (*ref)(ewd_conn_t *c);
  void (*unref)(ewd_conn_t *c);
  bool (*closing)(const ewd_conn_t *c);
  void (*notify)(ewd_conn_t *c, const char *method, const ewp_value_t *v);
} ewd_conn_hooks_t;

#endif
