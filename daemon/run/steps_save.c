/* steps_save.c — a stream's staging in its saved form: the `tSTG` section of the saved stream
 * (after `tRUN`), so that a snapshot, `export` and `merge` carry the steps that have not completed
 * yet — each rank's progress and every staged batch, byte for byte — and a restart goes on
 * waiting for them instead of completing them partial. Layout (host order, like tRUN):
 *
 *   u32 world, u32 d (the rows' width)
 *   per rank: u8 flags (1 = a latest step, 2 = done through a step), u64 latest, u64 done
 *   u64 late batches, u64 partial steps (the counters `info` shows)
 *   u32 pending steps, then per step in ascending order: u64 step, u32 batches (at least 1),
 *       its batches in the order they will apply (ranks ascending, each rank's in the order
 *       sent: so the same batches give the same bytes whatever order the ranks interleaved)
 *   u32 late batches, then each in the order it came
 *   a batch: u32 rank, u8 producer name length (0: none), the name, u64 seq, u8 dtype, u64 rows,
 *       rows·d·size(dtype) bytes of data as sent; a tokens batch: dtype 255, u64 its packed
 *       form's length, that packed form (ew_tokens_pack); rows with labels: dtype 254, u8 their
 *       dtype, u64 rows, the data, then rows u32 labels
 *
 * The section is written only when the staging holds something the stream's own fields do not
 * say (a pending step, a late batch, or a rank ahead of the last completed step), so a stream
 * without steps saves the same bytes as before. docs/STATE.md describes it for readers. */
#include "run/run.h"
#include "run/steps_priv.h"

#include <stdlib.h>
#include <string.h>

#define PACKED 255   /* the dtype byte of a packed tokens batch */
#define LABELLED 254 /* the dtype byte of rows with labels (their own dtype follows) */

/* Whether sp holds anything the saved stream must carry. */
static bool worth_saving(const ewd_stream_t *st, const ewd_steps_t *sp) {
  if (!sp)
    return false;
  if (sp->nheap || sp->late_head)
    return true;
  for (uint32_t r = 0; r < sp->world; r++) {
    const rank_t *k = &sp->ranks[r];
    if ((k->has_latest && (!st->has_last_step || k->latest > st->last_step)) ||
        (k->has_done && (!st->has_last_step || k->done > st->last_step)))
      return true;
  }
  return false;
}

static size_t batch_len(const ewd_stream_t *st, const staged_t *b) {
  size_t name = b->producer >= 0 ? strlen(st->producers[b->producer].name) : 0;
  return 4 + 1 + name + 8 + 1 + 8 + (b->plen ? b->plen : b->n * b->d * ew_dtype_size(b->dtype)) +
         (b->labels ? 1 + b->n * 4 : 0);
}

/* Pending steps in ascending order (a copy of the heap, sorted). */
static int by_step(const void *a, const void *b) {
  uint64_t x = (*(pstep_t *const *)a)->step, y = (*(pstep_t *const *)b)->step;
  return x < y ? -1 : x > y;
}

size_t ewd_steps_saved_len(const ewd_stream_t *st) {
  const ewd_steps_t *sp = st->steps;
  if (!worth_saving(st, sp))
    return 0;
  size_t n = 4 + 4 + (size_t)sp->world * 17 + 8 + 8 + 4 + 4;
  for (size_t i = 0; i < sp->nheap; i++) {
    n += 8 + 4;
    for (const staged_t *b = sp->heap[i]->head; b; b = b->next)
      n += batch_len(st, b);
  }
  for (const staged_t *b = sp->late_head; b; b = b->next)
    n += batch_len(st, b);
  return n;
}

static char *put_batch(char *q, const ewd_stream_t *st, const staged_t *b) {
  const char *name = b->producer >= 0 ? st->producers[b->producer].name : "";
  uint8_t len = (uint8_t)strlen(name), dtype = b->plen     ? PACKED
                                               : b->labels ? LABELLED
                                                           : (uint8_t)b->dtype;
  uint64_t rows = b->plen ? b->plen : b->n;
  size_t bytes = b->plen ? b->plen : b->n * b->d * ew_dtype_size(b->dtype);
  EWD_PUT(q, b->rank);
  EWD_PUT(q, len);
  memcpy(q, name, len), q += len;
  EWD_PUT(q, b->seq);
  EWD_PUT(q, dtype);
  if (b->labels) {
    uint8_t own = (uint8_t)b->dtype;
    EWD_PUT(q, own);
  }
  EWD_PUT(q, rows);
  if (bytes)
    memcpy(q, b->data, bytes);
  q += bytes;
  if (b->labels)
    memcpy(q, b->labels, b->n * 4), q += b->n * 4;
  return q;
}

size_t ewd_steps_save(const ewd_stream_t *st, char *out, size_t cap) {
  const ewd_steps_t *sp = st->steps;
  size_t need = ewd_steps_saved_len(st);
  if (!need || need > cap)
    return 0;
  pstep_t **v = malloc((sp->nheap ? sp->nheap : 1) * sizeof *v);
  if (!v)
    return 0;
  memcpy(v, sp->heap, sp->nheap * sizeof *v);
  qsort(v, sp->nheap, sizeof *v, by_step);
  char *q = out;
  uint32_t world = sp->world, d = (uint32_t)st->cfg.dim, np = (uint32_t)sp->nheap, nl = 0;
  EWD_PUT(q, world);
  EWD_PUT(q, d);
  for (uint32_t r = 0; r < world; r++) {
    const rank_t *k = &sp->ranks[r];
    uint8_t flags = (uint8_t)((k->has_latest ? 1 : 0) | (k->has_done ? 2 : 0));
    EWD_PUT(q, flags);
    EWD_PUT(q, k->latest);
    EWD_PUT(q, k->done);
  }
  EWD_PUT(q, sp->late_batches);
  EWD_PUT(q, sp->partial_steps);
  EWD_PUT(q, np);
  const staged_t **bv = NULL;
  size_t capb = 0;
  for (uint32_t i = 0; i < np; i++) {
    uint32_t nb = 0;
    for (const staged_t *b = v[i]->head; b; b = b->next)
      nb++;
    if (nb > capb) {
      const staged_t **t = realloc(bv, nb * sizeof *t);
      if (!t) {
        free(bv);
        free(v);
        return 0;
      }
      bv = t, capb = nb;
    }
    nb = 0;
    for (const staged_t *b = v[i]->head; b; b = b->next)
      bv[nb++] = b;
    qsort(bv, nb, sizeof *bv, steps_by_rank_then_arrival);
    EWD_PUT(q, v[i]->step);
    EWD_PUT(q, nb);
    for (uint32_t k = 0; k < nb; k++)
      q = put_batch(q, st, bv[k]);
  }
  free(bv);
  for (const staged_t *b = sp->late_head; b; b = b->next)
    nl++;
  EWD_PUT(q, nl);
  for (const staged_t *b = sp->late_head; b; b = b->next)
    q = put_batch(q, st, b);
  free(v);
  return (size_t)(q - out);
}

/* ---- reading ---- */

/* One batch from b[*o, n): its producer found or added in t's table (its seq then at least this
 * batch's, so a resent copy is a duplicate). NULL: corrupt or out of memory (*nomem says). */
static staged_t *get_batch(const char *b, size_t n, size_t *op, ewd_stream_t *t, uint32_t world,
                           uint32_t d, bool new_step, bool *nomem) {
  size_t o = *op;
  uint32_t rank;
  uint8_t len, dtype;
  uint64_t seq, rows;
  staged_t *x = NULL;
  EWD_GET(rank);
  EWD_GET(len);
  if (rank >= world || len > EWP_PRODUCER_MAX || n - o < len)
    goto bad;
  const char *name = b + o;
  o += len;
  EWD_GET(seq);
  EWD_GET(dtype);
  bool labelled = dtype == LABELLED;
  if (labelled) {
    EWD_GET(dtype);
    if (dtype == PACKED || dtype == LABELLED)
      goto bad;
  }
  EWD_GET(rows);
  size_t es = dtype == PACKED ? 1 : ew_dtype_size((ew_dtype_t)dtype);
  if (!es || rows == 0 || rows > (n - o) / es / (dtype == PACKED ? 1 : d) ||
      (dtype == PACKED && rows < 16))
    goto bad;
  size_t bytes = dtype == PACKED ? (size_t)rows : (size_t)rows * d * es;
  if (!(x = calloc(1, sizeof *x)) || posix_memalign(&x->data, 64, bytes) != 0) {
    if (x)
      x->data = NULL;
    *nomem = true;
    goto bad;
  }
  memcpy(x->data, b + o, bytes), o += bytes;
  if (labelled) { /* one u32 per row after the rows */
    if ((n - o) / 4 < rows || !(x->labels = malloc((size_t)rows * 4))) {
      *nomem = (n - o) / 4 >= rows;
      goto bad;
    }
    memcpy(x->labels, b + o, (size_t)rows * 4), o += (size_t)rows * 4;
  }
  x->rank = rank;
  x->producer = -1;
  x->seq = seq;
  x->dtype = dtype == PACKED ? EW_F64 : (ew_dtype_t)dtype;
  x->n = (size_t)rows;
  x->d = d;
  if (dtype == PACKED) { /* its tokens: the packed header's n (checked when it applies) */
    uint64_t tokens;
    memcpy(&tokens, (const char *)x->data + 8, 8);
    x->plen = bytes;
    x->n = (size_t)tokens;
  }
  x->bytes = steps_entry_cost(bytes + (x->labels ? x->n * 4 : 0), new_step);
  if (len) {
    int k = ewd_producer_slot(t, name, len);
    if (k < 0) {
      *nomem = t->nproducers < EWD_PRODUCERS_MAX;
      goto bad;
    }
    ewd_producer_t *p = &t->producers[k];
    if (!p->has_seq || p->seq < seq)
      p->seq = seq, p->has_seq = true;
    x->producer = k;
  }
  *op = o;
  return x;
bad:
  if (x)
    free(x->data), free(x->labels);
  free(x);
  return NULL;
}

int ewd_steps_load(ewd_stream_t *t, const char *b, size_t n) {
  size_t o = 0;
  uint32_t world, d, np, nl;
  ewd_steps_t *sp = NULL;
  bool nomem = false;
  EWD_GET(world);
  EWD_GET(d);
  if (world != t->world || d == 0 || d > EWP_MAX_DIM || t->steps)
    goto bad;
  if (!(sp = calloc(1, sizeof *sp)) || !(sp->ranks = calloc(world, sizeof *sp->ranks))) {
    nomem = true;
    goto bad;
  }
  sp->world = world;
  sp->saved_d = d;
  for (uint32_t r = 0; r < world; r++) {
    uint8_t flags;
    rank_t *k = &sp->ranks[r];
    EWD_GET(flags);
    EWD_GET(k->latest);
    EWD_GET(k->done);
    if (flags > 3)
      goto bad;
    k->has_latest = flags & 1, k->has_done = (flags & 2) != 0;
  }
  EWD_GET(sp->late_batches);
  EWD_GET(sp->partial_steps);
  EWD_GET(np);
  double now = ewd_now();
  for (uint32_t i = 0; i < np; i++) {
    uint64_t step;
    uint32_t nb;
    EWD_GET(step);
    EWD_GET(nb);
    if (nb == 0 || steps_find_step(sp, step) ||
        (sp->nheap && step <= sp->newest->step) /* ascending, each once */)
      goto bad;
    pstep_t *p = NULL;
    if (steps_reserve_step(sp) != 0 || !(p = calloc(1, sizeof *p))) {
      nomem = true;
      goto bad;
    }
    p->step = step;
    p->first = now; /* its step_timeout starts over */
    steps_insert_step(sp, p);
    for (uint32_t k = 0; k < nb; k++) {
      staged_t *x = get_batch(b, n, &o, t, world, d, k == 0, &nomem);
      if (!x)
        goto bad;
      x->ord = sp->ord++;
      *(p->head ? &p->tail->next : &p->head) = x;
      p->tail = x;
      sp->bytes += x->bytes;
    }
  }
  EWD_GET(nl);
  for (uint32_t k = 0; k < nl; k++) {
    staged_t *x = get_batch(b, n, &o, t, world, d, false, &nomem);
    if (!x)
      goto bad;
    x->ord = sp->ord++;
    *(sp->late_head ? &sp->late_tail->next : &sp->late_head) = x;
    sp->late_tail = x;
    sp->bytes += x->bytes;
  }
  if (sp->late_head)
    sp->late_first = now;
  if (o != n)
    goto bad;
  t->steps = sp;
  return 0;
bad:
  ewd_steps_free(sp);
  return nomem ? EW_ENOMEM : EW_ESTATE;
}

uint32_t ewd_steps_saved_dim(const ewd_stream_t *t) { return t->steps ? t->steps->saved_d : 0; }

size_t ewd_steps_saved_batches(const ewd_stream_t *t, size_t *steps, uint64_t *lowest) {
  const ewd_steps_t *sp = t->steps;
  size_t nb = 0;
  *steps = sp ? sp->nheap : 0;
  *lowest = sp && sp->nheap ? steps_lowest(sp)->step : 0;
  if (!sp)
    return 0;
  for (size_t i = 0; i < sp->nheap; i++)
    for (const staged_t *b = sp->heap[i]->head; b; b = b->next)
      nb++;
  for (const staged_t *b = sp->late_head; b; b = b->next)
    nb++;
  return nb;
}
