/* recent.c — the recent view's steps: the ring of the last window_steps completed steps and the
 * rows each put in the window (steps.c notes each step; a query and an evaluation of the recent
 * view read the last S steps' rows; the ring is saved in the tRUN section, store/train.c), and
 * the window's moments kept on exactly those rows, per completed step: a TAIL job before the
 * step's batches un-merges the step that leaves (while the ring still holds its rows), one
 * after them merges the new step (ew_stream_window_tail), so an evaluation reads them as they
 * are instead of building them from the rows. */
#include "run/run.h"
#include "run/eval_priv.h"

#include <stdlib.h>

int ewd_recent_steps(ewd_stream_t *st, uint32_t window_steps) {
  ewd_step_rows_t *ring = window_steps ? calloc(window_steps, sizeof *ring) : NULL;
  if (window_steps && !ring)
    return -1;
  free(st->step_rows);
  st->step_rows = ring;
  st->window_steps = window_steps;
  st->nstep_rows = st->step_rows_at = 0;
  if (window_steps && st->cfg.stream_kind == EW_STREAM_MATRIX)
    st->recent = true; /* a tokens stream's window keeps its steps itself (ingest's keep_steps) */
  return 0;
}

void ewd_recent_note(ewd_stream_t *st, uint64_t step, uint64_t rows) {
  if (!st->window_steps)
    return;
  st->step_rows[st->step_rows_at] = (ewd_step_rows_t){step, rows};
  st->step_rows_at = (st->step_rows_at + 1) % st->window_steps;
  if (st->nstep_rows < st->window_steps)
    st->nstep_rows++;
}

uint64_t ewd_recent_rows(const ewd_stream_t *st) {
  uint64_t n = 0;
  for (uint32_t i = 0; i < st->nstep_rows; i++)
    n += st->step_rows[i].rows;
  return n;
}

static void follow_done(ewd_job_t *j) {
  ewd_job_mirrors(j); /* the moments' workspace peak may have grown */
  if (j->st->eval) /* the step's update: the TAIL before its batches and the one after */
    j->st->eval->cost.update_ms = (j->tail_first ? 0 : j->st->eval->cost.update_ms) + j->elapsed_ms;
  ewd_job_finish(j);
}

void ewd_recent_follow(ewd_server_t *srv, ewd_stream_t *st, bool before) {
  if (!before && st->cfg.stream_kind == EW_STREAM_TOKENS && !st->dropped) {
    /* a tokens stream's step into its quantile sketches, sorted, behind its batches and before
     * its evaluation (which reads the sorted columns): never on ingest's apply */
    ewd_job_t *j = ewd_job_make(srv, st, EWD_JOB_TAIL, follow_done);
    if (j) { /* else: when the step leaves the window */
      j->tail_first = false;
      ewd_job_submit(srv, j, false);
    }
    return;
  }
  if (!st->window_steps || st->dropped || st->cfg.stream_kind != EW_STREAM_MATRIX ||
      !ewd_eval_reads_window(st))
    return;
  uint64_t rows = ewd_recent_rows(st);
  if (before && st->nstep_rows == st->window_steps) /* the oldest step is about to leave */
    rows -= st->step_rows[st->step_rows_at].rows;
  if (rows < st->cfg.dim) /* fewer rows than d: the view reads the rows, never the moments */
    return;
  /* Truly behind (an evaluation runs and a later one waits): the next snapshot is steps away,
   * and one pass over the recent rows then (by the snapshot, on the solving thread) costs less
   * than two passes over a step's rows at every step meanwhile, which would take ingest's time
   * now. They resume from the moments the next snapshot builds, on the solving thread, once
   * the window has taken them (ewd_recent_adopt) — never from a pass on the stream's turn. */
  if (st->tail_stale || (st->eval && st->eval->busy && st->eval->has_pending)) {
    st->tail_stale = true;
    return;
  }
  ewd_job_t *j = ewd_job_make(srv, st, EWD_JOB_TAIL, follow_done);
  if (!j) /* the moments are then built when an evaluation reads them */
    return;
  j->tail_rows = rows;
  j->tail_first = before;
  ewd_job_submit(srv, j, false);
}

static void adopt_done(ewd_job_t *j) {
  j->srv->reg.eval_bytes -= j->snap_bytes;
  if (j->rc == 0)
    j->st->tail_stale = false;
  ewd_job_finish(j);
}

bool ewd_recent_adopt(ewd_server_t *srv, ewd_stream_t *st, ew_snapshot_t **snap, size_t bytes) {
  if (!st->tail_stale || st->dropped || !*snap)
    return false;
  ewd_job_t *j = ewd_job_make(srv, st, EWD_JOB_ADOPT, adopt_done);
  if (!j)
    return false;
  j->snap = *snap, *snap = NULL;
  j->snap_bytes = bytes;
  ewd_job_submit(srv, j, false);
  return true;
}
