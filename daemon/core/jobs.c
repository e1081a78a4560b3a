/* jobs.c — the job lifecycle (owner: the loop thread): a job is made for a stream, submitted to
 * its queue (the pool runs its math), and finished after its done() has answered. A job that
 * answers a connection holds it meanwhile; what holding means belongs to the connection's room,
 * reached through the server's conn_hooks (core/conn.h; net/ installs them at start), so core
 * calls no room above it. */
#include "core/conn.h"

#include <stdlib.h>

ewd_job_t *ewd_job_make(ewd_server_t *srv, ewd_stream_t *st, ewd_job_kind_t kind,
                        void (*done)(ewd_job_t *)) {
  ewd_job_t *j = calloc(1, sizeof *j);
  if (!j)
    return NULL;
  j->srv = srv;
  j->kind = kind;
  j->st = st;
  j->notify = true; /* nobody waits until a handler says who (cmd's ewd_job_new) */
  j->done = done;
  return j;
}

void ewd_job_submit(ewd_server_t *srv, ewd_job_t *job, bool pipelined) {
  if (job->kind == EWD_JOB_INGEST || job->kind == EWD_JOB_RESET || job->kind == EWD_JOB_MERGE)
    job->st->changes++; /* the next snapshot round writes this stream */
  job->changes_at = job->st->changes;
  if (job->conn)
    srv->conn_hooks->hold(job->conn, job, pipelined);
  ewd_pool_submit(srv->pool, job);
}

void ewd_job_mirrors(ewd_job_t *j) {
  ewd_stream_t *st = j->st;
  if (!st->s || j->skipped)
    return;
  st->count = j->count_after;
  st->memory = j->memory_after;
  ewd_registry_window(&j->srv->reg, st, j->window_after);
}

void ewd_job_finish(ewd_job_t *j) {
  ewd_server_t *srv = j->srv;
  ewd_stream_t *st = j->st;
  struct ewd_conn *c = j->conn;
  bool pipelined = c && srv->conn_hooks->leaving(c, j);
  st->queued_jobs--;
  st->queued_bytes -= j->bytes;
  if (j->skipped)
    srv->stat[EWD_STAT_jobs_skipped]++;
  if (j->kind == EWD_JOB_QUERY && !j->skipped)
    ewd_server_freed(srv, st->model.workspace); /* a solve's workspace went back to the heap */
  ewd_job_free(j);
  ewd_stream_unref(st);
  if (c)
    srv->conn_hooks->done(c, pipelined);
}
