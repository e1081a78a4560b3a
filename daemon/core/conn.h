/* conn.h — a connection as the rooms below net/ know it: an opaque ewd_conn_t (core/ewd.h; the
 * struct is net/net.h's) and the hooks through which they reach it. net/ fills the hooks in at
 * start (ewd_net_init sets srv->conn_hooks; net/hooks.c), so that no room below it includes or
 * calls net/. Every hook runs on the loop thread. */
#ifndef EWD_CONN_H
#define EWD_CONN_H

#include "core/ewd.h"

typedef struct ewd_conn_hooks {
  /* The job lifecycle (jobs.c; cmd/'s replies that wait without a job hold with a stand-in):
   * hold c while the job is queued (pipelined: an ingest counted in flight; the job's bytes
   * count against c's high water), let go of the job's bytes as it finishes (returns whether it
   * was pipelined), and release the hold after the job is freed (which lets c handle its next
   * messages). */
  void (*hold)(ewd_conn_t *c, ewd_job_t *job, bool pipelined);
  bool (*leaving)(ewd_conn_t *c, const ewd_job_t *job);
  void (*done)(ewd_conn_t *c, bool pipelined);
  /* The connections' gauges into srv->stat: connections, recv_held_bytes (stats.c). */
  void (*gauges)(ewd_server_t *srv);
  /* Subscriptions (run/subs.c): a reference that keeps c's memory valid after it closes (ref,
   * unref: the last frees it), whether c is closing (its subscriptions are then removed), and
   * a notification [2, method, [v]] written to c (nothing when closing; c is closed instead
   * when the memory its unsent output holds is past conn_out_cap). */
  void (*ref)(ewd_conn_t *c);
  void (*unref)(ewd_conn_t *c);
  bool (*closing)(const ewd_conn_t *c);
  void (*notify)(ewd_conn_t *c, const char *method, const ewp_value_t *v);
  /* Answers (cmd/): a result or a refusal of request msgid, in c's protocol (msgpack-RPC's
   * response, or HTTP's JSON and status). Nothing is sent for a notification, nor when c is NULL
   * or closing; a refusal is counted by code and logged at debug level all the same. The value
   * and the message are borrowed. */
  void (*result)(ewd_conn_t *c, uint32_t msgid, bool notify, const ewp_value_t *result);
  void (*error)(ewd_server_t *srv, ewd_conn_t *c, uint32_t msgid, bool notify, int code,
                const char *message);
  /* What a handler reads of its connection: its id (for log lines), whether it came over TCP
   * (where a token makes `auth` required), whether its answers travel as JSON (history builds
   * JSON-shaped arrays), and its peer-gone flag (a job's `gone`, read by math threads). */
  uint64_t (*id)(const ewd_conn_t *c);
  bool (*tcp)(const ewd_conn_t *c);
  bool (*json)(const ewd_conn_t *c);
  const atomic_bool *(*gone)(ewd_conn_t *c);
  /* What `auth` changes: c may run every method from now on (authed), or c reads nothing more
   * and closes once its replies are out, its peer counted as gone (hang_up). */
  void (*authed)(ewd_conn_t *c);
  void (*hang_up)(ewd_conn_t *c);
} ewd_conn_hooks_t;

#endif
