/* steps.c — training steps (proto/PROTOCOL.md, "Steps and ranks"): rows that carry a `step` wait here until their step is
 * complete, then go to the math threads in an order that does not depend on arrival.
 *
 * Per stream: each rank's progress (the latest step it sent, and the step it is known to be done
 * through: the step before its latest, or a step it ended with end_step), the pending steps in
 * ascending order, each holding its batches in arrival order, and the late batches. A step is
 * complete when every rank of `world` is done through it; the lowest pending step completes
 * first, so steps are applied in order. step_timeout after a pending step's first batch, it and
 * every pending step below it complete anyway: partial, the ranks not done through it recorded.
 * `flush` and staging past its bound (max_staged_bytes, or what max_memory leaves) also complete
 * steps early, oldest first. A stop completes none: the staging is saved with the stream
 * (steps_save.c, the tSTG section) and a restart waits on.
 *
 * A completed step's batches become ordinary ingest jobs on the stream's queue — ranks in order,
 * each rank's batches in the order sent, then the late batches in arrival order — so the state
 * at a step is the same whatever order the batches came in. The step's record (ewd_point_t) then
 * goes to eval.c, which evaluates what is due on the state the queue now leads to. Rows are counted in reg.staged_bytes from staging until their job has
 * applied them; reg.pending_bytes counts the part not yet completed (what the bound forces).
 * Batches were checked on a math thread before they got here (EWD_JOB_CHECK): a completed step
 * does not fail on bad values.
 *
 * The pending steps are indexed, so that a batch costs O(log P) however many steps wait (one rank
 * of a world-2 stream may send 40,000 steps the other never ends): a hash table by step finds a
 * batch's step, a min-heap by step gives the lowest (the next to complete), and a list in
 * creation order (first batch's time ascending) gives the timed-out ones from its old end. A
 * staged batch counts what it costs, not only its payload: its entry and allocations, and for the
 * first batch of a step the step's record and index slots (entry_cost), so that max_staged_bytes
 * bounds memory for one-float batches too. */
#include "run/run.h"
#include "run/steps_priv.h"

#include <stdlib.h>
#include <string.h>

#define TICK_MS 100

static void on_tick(uv_timer_t *t);

/* What a staged batch of `payload` bytes costs (counted against max_staged_bytes, and in
 * reg.staged_bytes until applied): its rows' allocation and its entry as glibc sizes chunks (8
 * bytes of header, 16-byte multiples, 32 at least), the ingest job it becomes when its step
 * completes, and, for the first batch of a new step, the step's record and its index slots (a
 * heap slot and up to four table slots). A one-float batch costs ~700 bytes, not 4. */
static size_t chunk(size_t n) { return n + 8 + 15 < 32 ? 32 : (n + 8 + 15) & ~(size_t)15; }
size_t steps_entry_cost(size_t payload, bool new_step) {
  return chunk(payload) + chunk(sizeof(staged_t)) + chunk(sizeof(ewd_job_t)) +
         (new_step ? chunk(sizeof(pstep_t)) + 5 * sizeof(pstep_t *) : 0);
}

static void staged_free(staged_t *b) {
  while (b) {
    staged_t *n = b->next;
    free(b->data);
    free(b->labels);
    free(b);
    b = n;
  }
}

void ewd_steps_free(ewd_steps_t *sp) {
  if (!sp)
    return;
  for (size_t i = 0; i < sp->nheap; i++) {
    staged_free(sp->heap[i]->head);
    free(sp->heap[i]);
  }
  free(sp->heap);
  free(sp->slots);
  staged_free(sp->late_head);
  free(sp->ranks);
  free(sp);
}

/* ---- the list of streams with staged rows, and the timer that scans it ---- */

static void list_add(ewd_server_t *srv, ewd_stream_t *st) {
  if (st->steps->listed)
    return;
  if (srv->nstaging == srv->capstaging) {
    size_t nc = srv->capstaging ? 2 * srv->capstaging : 16;
    ewd_stream_t **v = realloc(srv->staging, nc * sizeof *v);
    if (!v)
      return; /* not listed: its steps still complete by ranks and flush; not by time */
    srv->staging = v;
    srv->capstaging = nc;
  }
  srv->staging[srv->nstaging++] = st;
  st->steps->listed = true;
  if (!uv_is_active((uv_handle_t *)&srv->step_timer))
    uv_timer_start(&srv->step_timer, on_tick, TICK_MS, TICK_MS);
}

static void list_remove(ewd_server_t *srv, ewd_stream_t *st) {
  if (!st->steps || !st->steps->listed)
    return;
  for (size_t i = 0; i < srv->nstaging; i++)
    if (srv->staging[i] == st) {
      srv->staging[i] = srv->staging[--srv->nstaging];
      break;
    }
  st->steps->listed = false;
}

/* ---- applying a completed step ---- */

static void apply_done(ewd_job_t *j) {
  ewd_server_t *srv = j->srv;
  ewd_stream_t *st = j->st;
  ewd_job_mirrors(j);
  srv->reg.staged_bytes -= j->bytes;
  if (j->rc) { /* the rows were checked when they came: only memory fails here */
    srv->stat[EWD_STAT_step_apply_failures]++;
    ewd_count_error(srv, j->rc);
    ewd_log(EWD_LOG_WARN, "a staged batch could not be applied", "run=\"%s\" stream=\"%s\" "
            "step=%llu rows=%zu code=%s", st->run, st->name, (unsigned long long)j->step, j->n,
            ew_err_name(j->rc));
  } else {
    srv->stat[EWD_STAT_rows] += j->n;
    st->last_ingest = ewd_wall_now();
  }
  ewd_job_finish(j);
}

int steps_by_rank_then_arrival(const void *a, const void *b) {
  const staged_t *x = *(staged_t *const *)a, *y = *(staged_t *const *)b;
  if (x->rank != y->rank)
    return x->rank < y->rank ? -1 : 1;
  return x->ord < y->ord ? -1 : x->ord > y->ord;
}

/* Queues the batches of `list` (already in apply order, n of them) as ingest jobs. Takes
 * ownership of the batches. */
static void submit(ewd_server_t *srv, ewd_stream_t *st, staged_t **list, size_t n,
                   uint64_t step) {
  for (size_t i = 0; i < n; i++) {
    staged_t *b = list[i];
    ewd_steps_t *sp = st->steps;
    sp->bytes -= b->bytes;
    srv->reg.pending_bytes -= b->bytes;
    if (b->producer >= 0) {
      ewd_producer_t *p = &st->producers[b->producer];
      if (!p->has_applied || b->seq > p->applied_seq)
        p->applied_seq = b->seq, p->has_applied = true;
    }
    ewd_job_t *j = ewd_job_make(srv, st, EWD_JOB_INGEST, apply_done);
    if (!j) { /* out of memory for a 300-byte job: the rows cannot be kept either */
      srv->reg.staged_bytes -= b->bytes;
      srv->stat[EWD_STAT_step_apply_failures]++;
      ewd_log(EWD_LOG_ERROR, "out of memory queueing a staged batch: its rows are lost",
              "run=\"%s\" stream=\"%s\" step=%llu rows=%zu", st->run, st->name,
              (unsigned long long)step, b->n);
      free(b->data);
      free(b->labels);
      free(b);
      continue;
    }
    j->data = b->data;
    j->labels = b->labels;
    j->dtype = b->dtype;
    j->n = b->n;
    j->d = b->d;
    j->plen = b->plen;
    j->bytes = b->bytes;
    j->staged_apply = true;
    j->has_step = true;
    j->step = step;
    st->queued_bytes += b->bytes;
    free(b);
    ewd_job_submit(srv, j, false);
  }
}

/* Completes the lowest pending step of st: its batches by rank, then every late batch. `why`:
 * ranks, timeout, flush, merge or staging (the log says it). */
static void complete_head(ewd_server_t *srv, ewd_stream_t *st, const char *why) {
  ewd_steps_t *sp = st->steps;
  pstep_t *p = steps_pop_lowest(sp);
  size_t n = 0;
  for (staged_t *b = p->head; b; b = b->next)
    n++;
  for (staged_t *b = sp->late_head; b; b = b->next)
    n++;
  staged_t **v = malloc((n ? n : 1) * sizeof *v);
  ewd_point_t *pt = calloc(1, sizeof *pt);
  if (!v || !pt) { /* keep the order we have: arrival within the step, then the late batches */
    free(v);
    free(pt);
    pt = NULL;
    v = NULL;
  }
  size_t k = 0, own = 0;
  uint64_t rows = 0;
  uint32_t ranks = 0;
  staged_t *chain = p->head;
  if (v) {
    for (staged_t *b = p->head; b; b = b->next)
      v[k++] = b;
    own = k;
    qsort(v, own, sizeof *v, steps_by_rank_then_arrival);
    for (staged_t *b = sp->late_head; b; b = b->next)
      v[k++] = b;
    for (size_t i = 0; i < own; i++) {
      rows += v[i]->n;
      ranks += i == 0 || v[i]->rank != v[i - 1]->rank;
    }
  }
  /* missing: ranks that sent no rows for the step and had not moved past it */
  uint32_t missing = 0;
  char list[96] = "";
  size_t lo = 0, at = 0;
  for (uint32_t r = 0; r < sp->world; r++) {
    while (v && at < own && v[at]->rank < r)
      at++;
    bool sent = v ? at < own && v[at]->rank == r : true;
    if (sent || (sp->ranks[r].has_done && sp->ranks[r].done >= p->step))
      continue;
    if (pt && missing < sizeof pt->missing / sizeof pt->missing[0])
      pt->missing[missing] = r;
    if (missing < 8 && lo < sizeof list)
      lo += (size_t)snprintf(list + lo, sizeof list - lo, "%s%u", missing ? "," : "", r);
    missing++;
  }
  if (pt) {
    pt->step = p->step;
    pt->completed = ewd_now();
    pt->time = ewd_wall_now();
    pt->rows = rows;
    pt->ranks = ranks;
    pt->nmissing = missing;
    pt->late = (uint32_t)(k - own);
  }
  if (missing) {
    sp->partial_steps++;
    srv->stat[EWD_STAT_steps_partial]++;
    ewd_log(EWD_LOG_INFO, "step completed partial", "run=\"%s\" stream=\"%s\" step=%llu "
            "missing_ranks=%u missing=\"%s%s\" why=%s", st->run, st->name,
            (unsigned long long)p->step, missing, list, missing > 8 ? ",..." : "",
            why);
  }
  srv->stat[EWD_STAT_steps_completed]++;
  uint64_t all_rows = 0;
  for (size_t i = 0; v && i < k; i++)
    all_rows += v[i]->n;
  ewd_recent_follow(srv, st, true);
  ewd_recent_note(st, p->step, all_rows);
  if (pt) /* the point's rows: the step's own and the late ones applied with it */
    pt->rows = all_rows;
  if (!st->has_first_step)
    st->first_step = p->step, st->has_first_step = true;
  st->last_step = p->step, st->has_last_step = true;
  if (v) {
    submit(srv, st, v, k, p->step);
  } else { /* no memory for the sort: apply one by one in the order held */
    for (staged_t *b = chain, *nx; b; b = nx) {
      nx = b->next;
      submit(srv, st, &b, 1, p->step);
    }
    for (staged_t *b = sp->late_head, *nx; b; b = nx) {
      nx = b->next;
      submit(srv, st, &b, 1, p->step);
    }
  }
  sp->late_head = sp->late_tail = NULL;
  ewd_recent_follow(srv, st, false);
  if (pt) /* the state at this step is what the queue holds now: evaluate what is due */
    ewd_eval_step(srv, st, pt);
  free(pt);
  free(v);
  free(p);
}

/* Late batches with no pending step to join, applied on their own (flush, timeout). */
static void complete_late(ewd_server_t *srv, ewd_stream_t *st) {
  ewd_steps_t *sp = st->steps;
  if (st->nstep_rows) /* they join the latest completed step's rows in the recent view */
    for (staged_t *b = sp->late_head; b; b = b->next)
      st->step_rows[(st->step_rows_at + st->window_steps - 1) % st->window_steps].rows += b->n;
  for (staged_t *b = sp->late_head, *nx; b; b = nx) {
    nx = b->next;
    submit(srv, st, &b, 1, st->last_step);
  }
  sp->late_head = sp->late_tail = NULL;
  ewd_recent_follow(srv, st, false);
}

static void settle(ewd_server_t *srv, ewd_stream_t *st) {
  if (st->steps && !st->steps->nheap && !st->steps->late_head)
    list_remove(srv, st);
}

/* True when every rank is done through `step`. */
static bool all_done(const ewd_steps_t *sp, uint64_t step) {
  for (uint32_t r = 0; r < sp->world; r++)
    if (!sp->ranks[r].has_done || sp->ranks[r].done < step)
      return false;
  return true;
}

/* ---- arrivals ---- */

static ewd_steps_t *steps_of(ewd_stream_t *st) {
  if (st->steps)
    return st->steps;
  ewd_steps_t *sp = calloc(1, sizeof *sp);
  if (!sp || !(sp->ranks = calloc(st->world, sizeof *sp->ranks))) {
    free(sp);
    return NULL;
  }
  sp->world = st->world;
  return st->steps = sp;
}

int ewd_steps_ensure(ewd_stream_t *st) { return steps_of(st) ? 0 : -1; }

ewd_staging_t ewd_steps_add(ewd_server_t *srv, ewd_stream_t *st, ewd_job_t *job) {
  ewd_steps_t *sp = st->steps; /* made by the handler (ewd_steps_ensure) */
  rank_t *rk = &sp->ranks[job->rank];
  uint64_t s = job->step;
  bool late = (rk->has_latest && s < rk->latest) || (st->has_last_step && s <= st->last_step);
  staged_t *b = NULL;
  pstep_t *p = NULL;
  bool new_step = false;
  if (job->data) { /* allocate first: on failure nothing has changed */
    if (!late && !(p = steps_find_step(sp, s))) {
      new_step = true;
      p = steps_reserve_step(sp) == 0 ? calloc(1, sizeof *p) : NULL;
    }
    b = calloc(1, sizeof *b);
    if (!b || (!late && !p)) {
      free(b);
      if (new_step)
        free(p);
      return EWD_STAGE_NOMEM;
    }
  }
  st->changes++; /* the staging is saved with the stream (steps_save.c) */
  if (!rk->has_latest || s >= rk->latest) {
    rk->latest = s, rk->has_latest = true;
    uint64_t through = job->end_step ? s : s - 1;
    if ((job->end_step || s > 0) && (!rk->has_done || through > rk->done))
      rk->done = through, rk->has_done = true;
  }
  if (b) {
    *b = (staged_t){.ord = sp->ord++, .rank = job->rank, .producer = job->producer,
                    .seq = job->seq, .data = job->data, .dtype = job->dtype, .n = job->n,
                    .d = job->d, .plen = job->plen, .labels = job->labels,
                    .bytes = steps_entry_cost(job->bytes + (job->labels ? job->n * 4 : 0),
                                              new_step)};
    job->data = NULL;
    job->labels = NULL;
    sp->bytes += b->bytes;
    srv->reg.staged_bytes += b->bytes;
    srv->reg.pending_bytes += b->bytes;
    if (late) {
      if (!sp->late_head)
        sp->late_first = ewd_now();
      *(sp->late_head ? &sp->late_tail->next : &sp->late_head) = b;
      sp->late_tail = b;
    } else {
      if (new_step) {
        p->step = s;
        p->first = ewd_now();
        steps_insert_step(sp, p);
      }
      *(p->head ? &p->tail->next : &p->head) = b;
      p->tail = b;
    }
    list_add(srv, st);
  }
  if (late) {
    sp->late_batches++;
    srv->stat[EWD_STAT_late_batches]++;
  }
  while (sp->nheap && all_done(sp, steps_lowest(sp)->step))
    complete_head(srv, st, "ranks");
  settle(srv, st);
  ewd_steps_relieve(srv);
  return late ? EWD_LATE : EWD_STAGED;
}

/* ---- completing early ---- */

size_t ewd_steps_flush(ewd_server_t *srv, ewd_stream_t *st, const char *why) {
  ewd_steps_t *sp = st->steps;
  size_t n = 0;
  if (!sp)
    return 0;
  for (; sp->nheap; n++)
    complete_head(srv, st, why);
  if (sp->late_head)
    complete_late(srv, st);
  if (n)
    ewd_log(EWD_LOG_DEBUG, "steps flushed", "run=\"%s\" stream=\"%s\" steps=%zu why=%s", st->run,
            st->name, n, why);
  settle(srv, st);
  return n;
}

void ewd_steps_discard(ewd_server_t *srv, ewd_stream_t *st) {
  ewd_steps_t *sp = st->steps;
  if (!sp)
    return;
  list_remove(srv, st);
  srv->reg.staged_bytes -= sp->bytes;
  srv->reg.pending_bytes -= sp->bytes;
  ewd_steps_free(sp);
  st->steps = NULL;
}

void ewd_steps_adopt(ewd_server_t *srv, ewd_stream_t *st) {
  ewd_steps_t *sp = st->steps;
  if (!sp)
    return;
  srv->reg.staged_bytes += sp->bytes;
  srv->reg.pending_bytes += sp->bytes;
  if (sp->nheap || sp->late_head)
    list_add(srv, st);
}

void ewd_steps_relieve(ewd_server_t *srv) {
  size_t base = ewd_registry_admitted(&srv->reg, &srv->cfg) - srv->reg.staged_bytes;
  size_t room = srv->cfg.max_memory > base ? srv->cfg.max_memory - base : 0;
  size_t limit = srv->cfg.max_staged_bytes < room ? srv->cfg.max_staged_bytes : room;
  while (srv->reg.pending_bytes > limit) {
    ewd_stream_t *oldest = NULL;
    for (size_t i = 0; i < srv->nstaging; i++) {
      ewd_steps_t *sp = srv->staging[i]->steps;
      if (sp->nheap && (!oldest || steps_lowest(sp)->first < steps_lowest(oldest->steps)->first))
        oldest = srv->staging[i];
    }
    if (!oldest) { /* only late batches wait: over the bound they go now, on their own */
      for (size_t i = srv->nstaging; i-- > 0;) {
        ewd_stream_t *st = srv->staging[i];
        if (st->steps->late_head) {
          complete_late(srv, st);
          settle(srv, st);
        }
      }
      return;
    }
    srv->stat[EWD_STAT_steps_forced]++;
    ewd_log(EWD_LOG_WARN, "staging full: completing the oldest pending step", "run=\"%s\" "
            "stream=\"%s\" step=%llu pending_bytes=%zu limit=%zu", oldest->run, oldest->name,
            (unsigned long long)steps_lowest(oldest->steps)->step, srv->reg.pending_bytes, limit);
    complete_head(srv, oldest, "staging");
    settle(srv, oldest);
  }
}

static void on_tick(uv_timer_t *t) {
  ewd_server_t *srv = t->data;
  double now = ewd_now();
  for (size_t i = 0; i < srv->nstaging;) {
    ewd_stream_t *st = srv->staging[i];
    ewd_steps_t *sp = st->steps;
    pstep_t *due = NULL; /* the highest timed-out pending step: among the oldest created */
    for (pstep_t *p = sp->oldest; p && now - p->first >= st->step_timeout; p = p->newer)
      if (!due || p->step > due->step)
        due = p;
    if (due) {
      uint64_t upto = due->step;
      while (sp->nheap && steps_lowest(sp)->step <= upto)
        complete_head(srv, st, "timeout");
    }
    if (!sp->nheap && sp->late_head && now - sp->late_first >= st->step_timeout)
      complete_late(srv, st);
    settle(srv, st);
    if (i < srv->nstaging && srv->staging[i] == st)
      i++;
  }
  if (!srv->nstaging)
    uv_timer_stop(t);
}

void ewd_run_init(ewd_server_t *srv) {
  ewd_steps_start(srv);
  ewd_stats_gauge(srv, ewd_subs_gauges);
}

void ewd_steps_start(ewd_server_t *srv) {
  uv_timer_init(srv->loop, &srv->step_timer);
  srv->step_timer.data = srv;
}

void ewd_steps_stop(ewd_server_t *srv) {
  uv_timer_stop(&srv->step_timer);
  uv_close((uv_handle_t *)&srv->step_timer, NULL);
  free(srv->staging);
  srv->staging = NULL;
  srv->nstaging = srv->capstaging = 0;
}

size_t ewd_steps_pending(const ewd_stream_t *st, size_t *bytes, uint64_t *late_batches,
                         uint64_t *partial_steps) {
  const ewd_steps_t *sp = st->steps;
  *bytes = sp ? sp->bytes : 0;
  *late_batches = sp ? sp->late_batches : 0;
  *partial_steps = sp ? sp->partial_steps : 0;
  return sp ? sp->nheap : 0;
}
