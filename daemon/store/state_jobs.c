/* state_jobs.c — the math-thread halves of the jobs that move a stream's whole state: SAVE (the
 * state and its training block as bytes, for a snapshot or `export`) and MERGE (an exported
 * state loaded, checked and folded into the stream, every view or a refusal; merge_plan.c lays
 * recent views by steps out). pool.c runs them on the stream's turn. */
#include "core/ewd.h"
#include "store/persist.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A saved state goes to / comes from memory: the job's buffers. */
typedef struct {
  char *p;
  size_t len, off;
} membuf_t;

static int mem_write(void *ctx, const void *p, size_t n) {
  membuf_t *m = ctx;
  if (n > m->len - m->off)
    return -1;
  memcpy(m->p + m->off, p, n);
  m->off += n;
  return 0;
}

static int mem_read(void *ctx, void *p, size_t n) {
  membuf_t *m = ctx;
  if (n > m->len - m->off)
    return -1;
  memcpy(p, m->p + m->off, n);
  m->off += n;
  return 0;
}

/* The stream's state after job->prefix, into job->out (the copy a snapshot or export takes on
 * the stream's math turn; the caller writes or sends it later without touching the stream). */
void ewd_run_save(ewd_job_t *job, ewd_stream_t *st) {
  ew_stream_t *s = st->s;
  ew_section_t sec[2];
  size_t nx = 0;
  if (job->train)
    sec[nx++] = (ew_section_t){EWD_TAG_TRAIN, job->train, job->train_len};
  if (job->stage) /* after tRUN: reading it needs the producers tRUN gave */
    sec[nx++] = (ew_section_t){EWD_TAG_STAGE, job->stage, job->stage_len};
  size_t n = ew_stream_saved_bytes_ex(s, sec, nx);
  if (!(job->out = malloc(job->prefix_len + n))) {
    job->rc = EW_ENOMEM;
    snprintf(job->message, sizeof job->message, "out of memory for a %zu-byte state", n);
    return;
  }
  if (job->prefix_len)
    memcpy(job->out, job->prefix, job->prefix_len);
  membuf_t m = {job->out + job->prefix_len, n, 0};
  if ((job->rc = ew_stream_save_ex(s, sec, nx, mem_write, &m)) != 0 || m.off != n) {
    job->rc = job->rc ? job->rc : EW_EINTERNAL;
    snprintf(job->message, sizeof job->message, "saving the state failed: %s",
             ew_strerror(job->rc));
    free(job->out);
    job->out = NULL;
    return;
  }
  job->out_len = job->prefix_len + n;
}

const char *ewd_merge_kind_mismatch(const ew_config_t *dst, const ew_config_t *src) {
  if (ew_config_sketched(src))
    return "the state is a Frequent Directions sketch (dim above exact_max_dim) and this stream "
           "is exact: a sketch cannot be folded into exact moments (merge it into a sketched "
           "stream)";
  (void)dst;
  return "the state is exact and this stream is a Frequent Directions sketch (dim above "
         "exact_max_dim): merge states of the same kind (both exact or both sketched)";
}

/* The sentence for a merge ew_stream_merge refused (its contract lists the codes). */
static void merge_refused(ewd_job_t *job, const ew_stream_t *s, const ew_stream_t *src) {
  const ew_config_t *a = ew_stream_config(s), *b = ew_stream_config(src);
  if (job->rc == EW_EBADPARAM && ew_config_sketched(a) != ew_config_sketched(b))
    snprintf(job->message, sizeof job->message, "%s", ewd_merge_kind_mismatch(a, b));
  else if (job->rc == EW_ERANGE)
    snprintf(job->message, sizeof job->message, "the stream holds %llu rows and the state %llu: "
             "together more than 2^53, the most rows a stream describes",
             (unsigned long long)ew_stream_count(s), (unsigned long long)ew_stream_count(src));
  else if (job->rc == EW_ESTATE)
    snprintf(job->message, sizeof job->message, "the state is a Frequent Directions sketch whose "
             "eigensolvers once failed (broken): it certifies nothing, so it is not merged");
  else
    snprintf(job->message, sizeof job->message, "%s", ew_strerror(job->rc));
}

/* A merge into a stream whose recent view is its last window_steps steps: the union's last
 * steps laid out by step number (merge_plan.c); the merged ring goes back in job->ring. */
static void merge_by_steps(ewd_job_t *job, ew_stream_t *s, const ew_stream_t *src,
                           const ewd_stream_t *train) {
  uint32_t S = job->window_steps;
  if (!train->window_steps || !train->nstep_rows) {
    job->rc = EW_EBADPARAM;
    snprintf(job->message, sizeof job->message, "this stream's recent view is its last %u steps "
             "and the state's rows carry no steps (its recent view is not by steps)", S);
    return;
  }
  ew_window_span_t *spans = calloc(2 * (size_t)S, sizeof *spans);
  ewd_step_rows_t *ring = calloc(S, sizeof *ring);
  size_t nspans = 0;
  uint32_t nring = 0;
  if (!spans || !ring) {
    job->rc = EW_ENOMEM;
    snprintf(job->message, sizeof job->message, "out of memory");
  } else {
    job->rc = ewd_merge_plan(job->ring, job->nring, ew_stream_window_count(s), train->step_rows,
                             train->nstep_rows, ew_stream_window_count(src), S,
                             ew_stream_config(s)->window, spans, &nspans, ring, &nring,
                             job->message, sizeof job->message);
    if (job->rc == 0 && (job->rc = ew_stream_merge_ex(s, src, spans, nspans, job->message,
                                                      sizeof job->message)) != 0 &&
        !job->message[0])
      merge_refused(job, s, src);
  }
  if (job->rc == 0) {
    free(job->ring);
    job->ring = ring, job->nring = nring, ring = NULL;
  }
  free(spans);
  free(ring);
}

/* A merge job's cleanup: the training fields it read and merge_done did not adopt. */
static void free_train(ewd_job_t *job) {
  ewd_train_release(job->train_st);
  free(job->train_st);
  job->train_st = NULL;
}

void ewd_run_merge(ewd_job_t *job, ewd_stream_t *st) {
  membuf_t m = {job->data, job->bytes, 0};
  ew_stream_t *src = NULL, *s = st->s;
  ewd_stream_t *train = calloc(1, sizeof *train);
  if (!train) {
    job->rc = EW_ENOMEM;
    snprintf(job->message, sizeof job->message, "out of memory");
    goto out;
  }
  ewd_train_init(train);
  job->rc = ew_stream_load_ex(&src, mem_read, &m, ewd_train_section, train, job->message,
                              sizeof job->message);
  if (job->rc == 0 && m.off != m.len) {
    job->rc = EW_ESTATE;
    snprintf(job->message, sizeof job->message, "%zu bytes follow the state's checksum: not one "
             "exported state", m.len - m.off);
  }
  if (job->rc == 0 && train->steps &&
      ewd_steps_saved_dim(train) != ew_stream_config(src)->dim) {
    job->rc = EW_ESTATE;
    snprintf(job->message, sizeof job->message, "the staged steps' rows are %u wide and the "
             "state's %zu: corrupt", ewd_steps_saved_dim(train), ew_stream_config(src)->dim);
  }
  if (job->rc == 0 && train->steps && !job->merge_replace) {
    size_t nsteps;
    uint64_t lowest;
    size_t nb = ewd_steps_saved_batches(train, &nsteps, &lowest);
    job->rc = EW_EBADPARAM;
    if (nb)
      snprintf(job->message, sizeof job->message, "the state holds %zu staged batches of %zu "
               "pending steps (lowest %llu): they only start a new stream; flush the source "
               "before export", nb, nsteps, (unsigned long long)lowest);
    else
      snprintf(job->message, sizeof job->message, "the state's ranks are part way through a "
               "pending step: it only starts a new stream; flush the source before export");
  }
  if (job->rc == 0) {
    job->merged_rows = ew_stream_count(src);
    if (job->merge_replace) { /* a stream this merge created: the state becomes it, exactly */
      ew_stream_free(st->s);
      st->s = src;
      src = NULL;
    } else if (job->merge_by_steps && ew_stream_config(s)->window && ew_stream_count(s) &&
               ew_stream_count(src)) {
      merge_by_steps(job, s, src, train);
    } else {
      bool was_empty = ew_stream_count(s) == 0;
      if ((job->rc = ew_stream_merge_ex(s, src, NULL, 0, job->message, sizeof job->message)) != 0 &&
          !job->message[0])
        merge_refused(job, s, src);
      if (job->rc == 0 && job->merge_by_steps && was_empty) { /* the state's steps, then */
        uint32_t n = train->nstep_rows < job->window_steps ? train->nstep_rows : job->window_steps;
        job->nring = 0;
        for (uint32_t i = train->nstep_rows - n; i < train->nstep_rows; i++)
          job->ring[job->nring++] = train->step_rows[i];
      }
    }
  }
  if (job->rc == 0) {
    job->train_st = train;
    job->cleanup = free_train;
    train = NULL;
  }
out:
  if (train) {
    ewd_train_release(train);
    free(train);
  }
  ew_stream_free(src);
  free(job->data);
  job->data = NULL;
}
