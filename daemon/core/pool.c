/* pool.c — the math threads. Every BLAS/LAPACK call in the daemon runs here, never on the loop.
 *
 * Jobs queue per stream (FIFO: a stream's ingests and queries apply in the order they were
 * submitted, and a stream never runs on two threads at once, so it needs no lock against
 * itself). An ingest has a first half that does not touch the stream — conversion, checks and the
 * batch Gram (ew_batch_prepare, the syrk that dominates) — which any free thread may run, in
 * submission order, while the stream's earlier jobs run elsewhere: one stream's ingest then uses
 * both cores. At most `nthreads` prepared batches exist at once (each holds d² floats); the
 * second half (ew_stream_apply) runs in the stream's FIFO order.
 *
 * OpenBLAS's thread count is process-wide, so a query normally solves on one core. When a query
 * starts while nothing else runs or waits, it runs exclusively with every core (the other threads
 * hold off until it ends): a fresh answer then costs what a bare multi-threaded dsyevd costs.
 * Above EWD_EXCLUSIVE_MAX_DIM a solve takes seconds, and holding everyone off for that long would
 * stall ingest into other streams; such a query takes every core only when no other stream has
 * submitted work for EWD_QUIET_S seconds (nobody to starve: a dashboard asking about one layer
 * of an idle run), and otherwise keeps one core, so ingest into busy streams never waits for it.
 * Streams with work wait in a ready list; each thread takes the stream at its head, runs
 * one job, and puts the stream back at the tail if it has more (round-robin fairness between
 * streams). With two threads, a multi-second eigensolve on one stream leaves the other thread to
 * everyone else. OpenBLAS's thread count is process-wide; each math thread is one BLAS thread by
 * default, so two concurrent calls never fight over OpenBLAS's pool (measured 3× slower).
 * Finished jobs go to a done list and the loop is woken with uv_async_send; the loop runs each
 * job's done() (replies, mirrors, cache) and frees it.
 *
 * Scheduled evaluations' solves (EWD_JOB_EVAL, on a snapshot: they never touch the stream) wait
 * in one FIFO across streams, in the order they came due (one per stream at a time: eval.c), and
 * run only when no stream job or prepare waits. While ingest is quiet they take every thread (or
 * eval_threads of them). While it is busy — an ingest waiting or running, or one submitted
 * within EWD_INGEST_BUSY_S — they take one thread fewer, and only on credit that accrues at
 * EWD_EVAL_SHARE of the threads' time: ingest keeps the rest, and when evaluation cannot keep
 * up its due steps are coalesced (eval.c) instead of slowing ingest.
 *
 * A query only produces an answer: when its connection is gone by the time a thread takes it
 * (job->gone, an atomic flag the loop sets), it is skipped, so abandoned requests cost nothing.
 * After a query the thread gives back its scratch (a d×d snapshot and LAPACK workspace can be
 * hundreds of MiB at large d); ingest keeps its scratch, which is reused batch after batch. */
#include "core/ewd.h"

#include <cblas.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define EWD_EXCLUSIVE_MAX_DIM 2048
#define EWD_QUIET_S 2.0
/* Within this long of a stream job's submission, evaluations leave one thread to the streams: a
 * burst of ingest never finds every thread inside an eigensolve. */
#define EWD_INGEST_BUSY_S 0.1
/* While ingest is busy, evaluation may take this share of the threads' time (ingest keeps the
 * rest: >= 0.8 of its rate, README "Benchmarks"), with this much credit saved up at most. */
#define EWD_EVAL_SHARE 0.15
#define EWD_EVAL_CREDIT_MAX_S 0.25

struct ewd_pool {
  bool exclusive;  /* a job is running alone with all BLAS threads */
  /* the two most recent distinct streams to submit work, and when (for "has any stream other
   * than X been busy lately") */
  const ewd_stream_t *last_st, *prev_st;
  double last_at, prev_at;
  int running;     /* jobs or prepares in progress */
  int cores;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  ewd_stream_t *ready_head, *ready_tail;
  ewd_job_t *prep_head, *prep_tail;
  size_t prepared; /* batches preparing or prepared and not yet applied */
  ewd_job_t *done_head, *done_tail;
  ewd_job_t *eval_head, *eval_tail; /* EWD_JOB_EVAL: no stream order */
  int evaluating;  /* EVAL jobs running */
  int eval_max;    /* at most this many at once (the eval_threads option) */
  int eval_peak;   /* the most that ran at once */
  double stream_at; /* when an ingest job was last submitted (ingest is busy: evaluations leave
                       it a thread, EWD_INGEST_BUSY_S) */
  double credit, credit_at; /* eval_credit */
  size_t stream_jobs; /* ingest jobs (feeds()) queued or running */
  size_t pending;
  bool stop;
  int nthreads;
  pthread_t *threads;
  uv_async_t async;
  int blas;
};

/* Puts a stream on the ready list if its head job can run and it is not already scheduled.
 * Caller holds the mutex. */
static void maybe_schedule(ewd_pool_t *p, ewd_stream_t *st) {
  if (st->scheduled || !st->qhead || st->qhead->state != EWD_JOB_READY)
    return;
  st->scheduled = true;
  st->ready_next = NULL;
  if (p->ready_tail)
    p->ready_tail->ready_next = st;
  else
    p->ready_head = st;
  p->ready_tail = st;
  pthread_cond_signal(&p->cv);
}

/* Hands a finished job to the loop (on_async) and wakes the threads, for whom a prepare or an
 * evaluation slot may have freed. Caller holds the mutex. */
static void post_done(ewd_pool_t *p, ewd_job_t *job) {
  if (p->done_tail)
    p->done_tail->next = job;
  else
    p->done_head = job;
  p->done_tail = job;
  uv_async_send(&p->async);
  pthread_cond_broadcast(&p->cv);
}

static void prepare_job(ewd_job_t *job) {
  if (job->plen) { /* a tokens batch reads its packed bytes when applied: it takes them */
    job->rc = ew_tokens_prepare_owned(job->st->s, job->data, job->plen, &job->batch,
                                      job->message, sizeof job->message);
    if (job->rc == 0)
      job->data = NULL;
  } else {
    job->rc = ew_batch_prepare(job->st->s, job->data, job->dtype, job->n, job->d, &job->batch);
    if (job->rc == 0 && job->labels) /* they ride with the batch (the stream checks them) */
      job->rc = ew_batch_set_labels(job->batch, job->labels, job->n);
  }
  free(job->data);
  job->data = NULL;
}

/* Called with p->mu held: records that st submitted work now. */
static void note_activity(ewd_pool_t *p, const ewd_stream_t *st) {
  double now = ewd_now();
  if (st != p->last_st) {
    p->prev_st = p->last_st;
    p->prev_at = p->last_at;
    p->last_st = st;
  }
  p->last_at = now;
}

/* Called with p->mu held: no stream but st submitted work in the last EWD_QUIET_S seconds. */
static bool others_quiet(const ewd_pool_t *p, const ewd_stream_t *st) {
  double other = st == p->last_st ? p->prev_at : p->last_at;
  const ewd_stream_t *who = st == p->last_st ? p->prev_st : p->last_st;
  return !who || ewd_now() - other >= EWD_QUIET_S;
}

/* True for the jobs that make ingest busy: rows on their way in (an evaluation's own stream jobs,
 * FORK, TAIL and ADOPT, do not: counting them would ration evaluation while nothing is fed). */
static bool feeds(const ewd_job_t *job) {
  return job->kind == EWD_JOB_INGEST || job->kind == EWD_JOB_CHECK;
}

/* True while ingest is busy: an ingest waits or runs, or one was submitted within
 * EWD_INGEST_BUSY_S (the next batch of a burst is on its way). */
static bool ingest_busy(const ewd_pool_t *p, double now) {
  return p->stream_jobs > 0 || now - p->stream_at < EWD_INGEST_BUSY_S;
}

/* The evaluation time ingest owes nothing for (p->mu held): it accrues at EWD_EVAL_SHARE of the
 * threads' time while ingest is busy, up to EWD_EVAL_CREDIT_MAX_S, and a solve that started while
 * ingest was busy spends its duration. */
static double eval_credit(ewd_pool_t *p, double now) {
  p->credit += (now - p->credit_at) * EWD_EVAL_SHARE * p->nthreads;
  if (p->credit > EWD_EVAL_CREDIT_MAX_S)
    p->credit = EWD_EVAL_CREDIT_MAX_S;
  p->credit_at = now;
  return p->credit;
}

/* True when another evaluation may start now (p->mu held): up to eval_max at once while ingest
 * is quiet; while it is busy, one thread fewer, and only on credit, so that evaluation takes at
 * most EWD_EVAL_SHARE of the threads from it. */
static bool eval_may_start(ewd_pool_t *p) {
  double now = ewd_now();
  double credit = eval_credit(p, now);
  if (!ingest_busy(p, now))
    return p->evaluating < p->eval_max;
  int busy_max = p->nthreads > 1 ? p->nthreads - 1 : 1;
  return p->evaluating < (busy_max < p->eval_max ? busy_max : p->eval_max) && credit > 0;
}

static void *thread_main(void *arg) {
  ewd_pool_t *p = arg;
  openblas_set_num_threads(p->blas);
  pthread_mutex_lock(&p->mu);
  for (;;) {
    if (p->exclusive) { /* someone is solving with every core */
      pthread_cond_wait(&p->cv, &p->mu);
    } else if (p->ready_head) { /* a stream whose next job can run: run it, in FIFO order */
      ewd_stream_t *st = p->ready_head;
      p->ready_head = st->ready_next;
      if (!p->ready_head)
        p->ready_tail = NULL;
      st->ready_next = NULL;
      ewd_job_t *job = st->qhead;
      st->qhead = job->next;
      if (!st->qhead)
        st->qtail = NULL;
      job->next = NULL;
      bool alone = job->kind == EWD_JOB_QUERY && p->cores > p->blas && p->running == 0 &&
                   !p->ready_head && !p->prep_head &&
                   (st->cfg.dim <= EWD_EXCLUSIVE_MAX_DIM || others_quiet(p, st));
      if (alone)
        p->exclusive = true;
      p->running++;
      pthread_mutex_unlock(&p->mu);

      if (alone)
        openblas_set_num_threads(p->cores);
      ewd__job_run(job);
      if (alone)
        openblas_set_num_threads(p->blas);

      pthread_mutex_lock(&p->mu);
      p->running--;
      p->exclusive = false;
      if (job->kind == EWD_JOB_INGEST)
        p->prepared--;
      if (feeds(job))
        p->stream_jobs--;
      st->scheduled = false;
      maybe_schedule(p, st);
      post_done(p, job);
    } else if (p->prep_head && p->prepared < (size_t)p->nthreads) {
      ewd_job_t *job = p->prep_head; /* the oldest unprepared batch, whatever its stream */
      p->prep_head = job->prep_next;
      if (!p->prep_head)
        p->prep_tail = NULL;
      job->prep_next = NULL;
      job->state = EWD_JOB_PREPARING;
      p->prepared++;
      p->running++;
      pthread_mutex_unlock(&p->mu);

      prepare_job(job);

      pthread_mutex_lock(&p->mu);
      p->running--;
      job->state = EWD_JOB_READY;
      maybe_schedule(p, job->st);
    } else if (p->eval_head && eval_may_start(p)) {
      ewd_job_t *job = p->eval_head; /* nothing else waits: solve a snapshot */
      p->eval_head = job->next;
      if (!p->eval_head)
        p->eval_tail = NULL;
      job->next = NULL;
      p->evaluating++;
      if (p->evaluating > p->eval_peak)
        p->eval_peak = p->evaluating;
      p->running++;
      bool owed = ingest_busy(p, ewd_now());
      pthread_mutex_unlock(&p->mu);

      ewd__job_run(job);

      pthread_mutex_lock(&p->mu);
      p->running--;
      p->evaluating--;
      if (owed)
        p->credit -= job->elapsed_ms / 1e3;
      post_done(p, job);
    } else if (p->stop && !p->prep_head && !p->eval_head) {
      break;
    } else if (p->eval_head && p->evaluating < p->eval_max) {
      /* held back for ingest: look again when the burst may be over */
      struct timespec ts;
      clock_gettime(CLOCK_REALTIME, &ts);
      ts.tv_nsec += (long)(EWD_INGEST_BUSY_S * 1e9);
      ts.tv_sec += ts.tv_nsec / 1000000000L;
      ts.tv_nsec %= 1000000000L;
      pthread_cond_timedwait(&p->cv, &p->mu, &ts);
    } else {
      pthread_cond_wait(&p->cv, &p->mu);
    }
  }
  pthread_mutex_unlock(&p->mu);
  ew_thread_scratch_release();
  return NULL;
}

static void on_async(uv_async_t *a) {
  ewd_pool_t *p = a->data;
  pthread_mutex_lock(&p->mu);
  ewd_job_t *j = p->done_head;
  p->done_head = p->done_tail = NULL;
  pthread_mutex_unlock(&p->mu);
  while (j) {
    ewd_job_t *next = j->next;
    j->next = NULL;
    pthread_mutex_lock(&p->mu);
    p->pending--;
    pthread_mutex_unlock(&p->mu);
    j->done(j); /* frees the job */
    j = next;
  }
}

int ewd_pool_start(ewd_pool_t **out, uv_loop_t *loop, int n, int blas, int eval_threads) {
  ewd_pool_t *p = calloc(1, sizeof *p);
  if (!p)
    return EW_ENOMEM;
  pthread_mutex_init(&p->mu, NULL);
  pthread_cond_init(&p->cv, NULL);
  p->blas = blas;
  p->nthreads = n;
  p->eval_max = eval_threads > 0 && eval_threads < n ? eval_threads : n;
  p->cores = openblas_get_num_procs();
  if (p->cores < 1)
    p->cores = 1;
  p->threads = calloc((size_t)n, sizeof(pthread_t));
  if (!p->threads || uv_async_init(loop, &p->async, on_async) != 0) {
    free(p->threads);
    free(p);
    return EW_ENOMEM;
  }
  p->async.data = p;
  for (int i = 0; i < n; i++)
    if (pthread_create(&p->threads[i], NULL, thread_main, p) != 0)
      return EW_EINTERNAL;
  *out = p;
  return 0;
}

void ewd_pool_submit(ewd_pool_t *p, ewd_job_t *job) {
  ewd_stream_t *st = job->st;
  st->refs++;
  st->queued_jobs++;
  pthread_mutex_lock(&p->mu);
  p->pending++;
  note_activity(p, st);
  if (feeds(job)) {
    p->stream_at = ewd_now();
    p->stream_jobs++;
  }
  job->next = NULL;
  if (st->qtail)
    st->qtail->next = job;
  else
    st->qhead = job;
  st->qtail = job;
  if (job->kind == EWD_JOB_INGEST) {
    job->state = EWD_JOB_NEEDS_PREPARE;
    job->prep_next = NULL;
    if (p->prep_tail)
      p->prep_tail->prep_next = job;
    else
      p->prep_head = job;
    p->prep_tail = job;
    pthread_cond_broadcast(&p->cv);
  } else {
    job->state = EWD_JOB_READY;
  }
  maybe_schedule(p, st);
  pthread_mutex_unlock(&p->mu);
}

void ewd_pool_submit_eval(ewd_pool_t *p, ewd_job_t *job) {
  job->st->refs++;
  job->st->queued_jobs++;
  pthread_mutex_lock(&p->mu);
  p->pending++;
  note_activity(p, job->st);
  job->next = NULL;
  job->state = EWD_JOB_READY;
  if (p->eval_tail)
    p->eval_tail->next = job;
  else
    p->eval_head = job;
  p->eval_tail = job;
  pthread_cond_signal(&p->cv);
  pthread_mutex_unlock(&p->mu);
}

size_t ewd_pool_eval_peak(ewd_pool_t *p) {
  pthread_mutex_lock(&p->mu);
  size_t n = (size_t)p->eval_peak;
  pthread_mutex_unlock(&p->mu);
  return n;
}

size_t ewd_pool_pending(ewd_pool_t *p) {
  pthread_mutex_lock(&p->mu);
  size_t n = p->pending;
  pthread_mutex_unlock(&p->mu);
  return n;
}

static void on_async_closed(uv_handle_t *h) {
  ewd_pool_t *p = h->data;
  pthread_mutex_destroy(&p->mu);
  pthread_cond_destroy(&p->cv);
  free(p->threads);
  free(p);
}

void ewd_pool_stop(ewd_pool_t *p) {
  pthread_mutex_lock(&p->mu);
  p->stop = true;
  pthread_cond_broadcast(&p->cv);
  pthread_mutex_unlock(&p->mu);
  for (int i = 0; i < p->nthreads; i++)
    pthread_join(p->threads[i], NULL);
  on_async(&p->async); /* deliver what finished last */
  uv_close((uv_handle_t *)&p->async, on_async_closed);
}

void ewd_qmetrics_free(ewd_qmetric_t *ms, size_t n) {
  for (size_t i = 0; ms && i < n; i++) {
    free(ms[i].name);
    free(ms[i].key);
    for (size_t k = 0; k < ms[i].nparams; k++)
      free(ms[i].pkeys[k]);
  }
  free(ms);
}

void ewd_job_free(ewd_job_t *job) {
  if (!job)
    return;
  free(job->data);
  free(job->labels);
  ew_batch_free(job->batch);
  ewd_qmetrics_free(job->metrics, job->nmetrics);
  free(job->prefix);
  free(job->train);
  free(job->stage);
  free(job->ring);
  if (job->cleanup)
    job->cleanup(job);
  free(job->out);
  if (job->results)
    for (size_t i = 0; i < job->nmetrics; i++)
      ew_result_clear(&job->results[i]);
  free(job->results);
  free(job->point);
  ew_snapshot_free(job->snap);
  free(job);
}
