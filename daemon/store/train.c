/* train.c — the training block: what the daemon knows of a stream beyond the library's state
 * (world, step timeout, first and last completed steps, each producer's last applied seq, the
 * recent view and its ring of steps, the eval list, the alert rules and their states). It is the
 * saved stream's tRUN section (ew_stream_save_ex), so snapshots, `export` and `merge` carry the
 * same bytes; snapshots of versions 2 and 3 kept it in their header (read by restore.c). Layout:
 * docs/STATE.md, "Snapshot files". */
#include "core/ewd.h"
#include "store/persist.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>


static int producer_cmp(const void *a, const void *b) {
  return strcmp((*(const ewd_producer_t *const *)a)->name, (*(const ewd_producer_t *const *)b)->name);
}

size_t ewd_snap_train_bound(const ewd_stream_t *st) {
  return 4 + 8 + 1 + 8 + 8 + 4 + st->nproducers * (1 + EWP_PRODUCER_MAX + 8) + 4 + 4 +
         (size_t)st->window_steps * 16 + 4 + EWD_EVAL_SAVED_MAX + 4 + EWD_ALERTS_SAVED_MAX;
}

size_t ewd_snap_train(const ewd_stream_t *st, char *out, size_t cap) {
  char *q = out;
  uint32_t world = st->world, np = 0;
  uint8_t flags = (uint8_t)((st->has_first_step ? 1 : 0) | (st->has_last_step ? 2 : 0) |
                            (st->recent ? 4 : 0) | (st->ended ? 8 : 0));
  EWD_PUT(q, world);
  EWD_PUT(q, st->step_timeout);
  EWD_PUT(q, flags);
  EWD_PUT(q, st->first_step);
  EWD_PUT(q, st->last_step);
  for (size_t i = 0; i < st->nproducers; i++)
    np += st->producers[i].has_applied;
  EWD_PUT(q, np);
  /* by name, so that the same history gives the same bytes whatever order producers came in */
  const ewd_producer_t *byname[EWD_PRODUCERS_MAX];
  size_t nb = 0;
  for (size_t i = 0; i < st->nproducers && nb < EWD_PRODUCERS_MAX; i++)
    if (st->producers[i].has_applied)
      byname[nb++] = &st->producers[i];
  qsort(byname, nb, sizeof *byname, producer_cmp);
  for (size_t i = 0; i < nb; i++) {
    const ewd_producer_t *p = byname[i];
    uint8_t n = (uint8_t)strlen(p->name);
    EWD_PUT(q, n);
    memcpy(q, p->name, n), q += n;
    EWD_PUT(q, p->applied_seq);
  }
  uint32_t ws = st->window_steps, nr = st->nstep_rows;
  EWD_PUT(q, ws);
  EWD_PUT(q, nr);
  for (uint32_t i = 0; i < nr; i++) { /* oldest first: rows, then (tRUN) the step */
    const ewd_step_rows_t *v = &st->step_rows[(st->step_rows_at + ws - nr + i) % ws];
    EWD_PUT(q, v->rows);
    EWD_PUT(q, v->step);
  }
  /* version 3: the eval list create gave (0 bytes: the defaults) */
  uint32_t elen = (uint32_t)ewd_eval_save(st, q + 4, cap - (size_t)(q + 4 - out));
  EWD_PUT(q, elen);
  q += elen;
  uint32_t alen = (uint32_t)ewd_alerts_save(st, q + 4, cap - (size_t)(q + 4 - out));
  EWD_PUT(q, alen);
  q += alen;
  return (size_t)(q - out);
}

bool ewd_snap_train_parse(const char *b, size_t n, ewd_stream_t *st, bool section) {
  size_t o = 0;
  uint32_t world, np;
  double timeout;
  uint8_t flags;
  uint64_t first, last;
  ewd_producer_t *ps = NULL;
  EWD_GET(world);
  EWD_GET(timeout);
  EWD_GET(flags);
  EWD_GET(first);
  EWD_GET(last);
  EWD_GET(np);
  if (world < 1 || world > EWP_WORLD_MAX || !(timeout > 0 && timeout <= 1e9) || flags > 15 ||
      np > EWD_PRODUCERS_MAX)
    goto bad;
  if (np && !(ps = calloc(np, sizeof *ps)))
    goto bad;
  for (uint32_t i = 0; i < np; i++) {
    uint8_t len;
    EWD_GET(len);
    if (len == 0 || len > EWP_PRODUCER_MAX || n - o < len)
      goto bad;
    memcpy(ps[i].name, b + o, len), o += len;
    for (uint32_t k = 0; k < i; k++)
      if (strcmp(ps[k].name, ps[i].name) == 0)
        goto bad;
    EWD_GET(ps[i].applied_seq);
    ps[i].seq = ps[i].applied_seq;
    ps[i].has_seq = ps[i].has_applied = true;
  }
  uint32_t ws, nr;
  EWD_GET(ws);
  EWD_GET(nr);
  size_t per = section ? 16 : 8; /* a header block (versions 2, 3) has no step numbers */
  if (ws > EWP_WORLD_MAX || nr > ws || (uint64_t)(n - o) < (uint64_t)nr * per)
    goto bad;
  ewd_step_rows_t *ring = ws ? calloc(ws, sizeof *ring) : NULL;
  if (ws && !ring)
    goto bad;
  for (uint32_t i = 0; i < nr; i++) { /* oldest first: the next write goes at nr % ws */
    memcpy(&ring[i].rows, b + o, 8), o += 8;
    ring[i].step = EWD_STEP_UNKNOWN;
    if (section)
      memcpy(&ring[i].step, b + o, 8), o += 8;
  }
  uint32_t elen = 0, alen = 0;
  if (o < n) { /* version 3: the eval list, then the alert rules */
    if (n - o < 4 || (memcpy(&elen, b + o, 4), n - o - 4 < elen) ||
        (elen && !ewd_eval_load(st, b + o + 4, elen))) {
      free(ring);
      goto bad;
    }
    o += 4 + elen;
    if (n - o < 4 || (memcpy(&alen, b + o, 4), n - o - 4 != alen) ||
        (alen && !ewd_alerts_load(st, b + o + 4, alen))) {
      free(ring);
      goto bad;
    }
    o = n;
  }
  if (o != n) {
    free(ring);
    goto bad;
  }
  free(st->step_rows);
  st->step_rows = ring;
  st->window_steps = ws;
  st->nstep_rows = nr;
  st->step_rows_at = ws ? nr % ws : 0;
  st->recent = (flags & 4) != 0;
  st->ended = (flags & 8) != 0;
  ewd_expo_stale(st);
  st->world = world;
  st->step_timeout = timeout;
  st->has_first_step = flags & 1, st->first_step = first;
  st->has_last_step = (flags & 2) != 0, st->last_step = last;
  free(st->producers);
  st->producers = ps;
  st->nproducers = np;
  return true;
bad:
  free(ps);
  return false;
}

char *ewd_train_bytes(const ewd_stream_t *st, size_t *len) {
  size_t cap = ewd_snap_train_bound(st);
  char *b = malloc(cap);
  if (!b)
    return NULL;
  *len = ewd_snap_train(st, b, cap);
  char *t = realloc(b, *len ? *len : 1);
  return t ? t : b;
}

int ewd_train_attach(const ewd_stream_t *st, ewd_job_t *j) {
  if (!(j->train = ewd_train_bytes(st, &j->train_len)))
    return -1;
  size_t n = ewd_steps_saved_len(st);
  if (n && (!(j->stage = malloc(n)) || (j->stage_len = ewd_steps_save(st, j->stage, n)) != n)) {
    free(j->train);
    free(j->stage);
    j->train = j->stage = NULL;
    return -1;
  }
  return 0;
}

void ewd_train_init(ewd_stream_t *t) {
  memset(t, 0, sizeof *t);
  t->world = 1;
  t->step_timeout = EWD_STEP_TIMEOUT_DEFAULT;
}

void ewd_train_move(ewd_stream_t *st, ewd_stream_t *t) {
  free(st->producers);
  free(st->step_rows);
  ewd_eval_free(st->eval);
  ewd_alerts_free(st->alerts);
  st->world = t->world;
  st->step_timeout = t->step_timeout;
  st->has_first_step = t->has_first_step, st->first_step = t->first_step;
  st->has_last_step = t->has_last_step, st->last_step = t->last_step;
  st->producers = t->producers, st->nproducers = t->nproducers;
  st->recent = t->recent;
  st->ended = t->ended;
  st->window_steps = t->window_steps;
  st->step_rows = t->step_rows;
  st->nstep_rows = t->nstep_rows, st->step_rows_at = t->step_rows_at;
  st->eval = t->eval;
  st->alerts = t->alerts;
  ewd_expo_stale(st);
  if (t->steps) /* st has none (restore; a merge's caller flushes its own): ewd_steps_adopt */
    st->steps = t->steps;
  ewd_train_init(t); /* everything it held is st's now */
}

void ewd_train_free_fields(ewd_stream_t *st) {
  free(st->producers);
  free(st->step_rows);
  ewd_eval_free(st->eval);
  ewd_alerts_free(st->alerts);
  ewd_steps_free(st->steps);
  st->producers = NULL, st->step_rows = NULL, st->eval = NULL, st->alerts = NULL;
  st->steps = NULL;
}

void ewd_store_init(ewd_server_t *srv) { srv->reg.release = ewd_train_free_fields; }

void ewd_train_release(ewd_stream_t *t) {
  ewd_train_free_fields(t);
  ewd_train_init(t);
}

int ewd_train_section(void *ctx, uint32_t tag, const void *data, size_t len, char *msg,
                      size_t cap) {
  ewd_stream_t *t = ctx;
  if (tag == EWD_TAG_STAGE) {
    int rc = t->has_train && !t->steps ? ewd_steps_load(t, data, len) : EW_ESTATE;
    if (rc == EW_ENOMEM)
      snprintf(msg, cap, "%s", "out of memory reading the staged steps (tSTG section)");
    else if (rc)
      snprintf(msg, cap, "%s", "the staged steps (tSTG section) are not valid: corrupt");
    return rc ? 1 : 0;
  }
  if (tag != EWD_TAG_TRAIN)
    return 0; /* another embedder's section: not ours to read */
  if (t->has_train) {
    snprintf(msg, cap, "%s", "two training blocks (tRUN sections)");
    return 1;
  }
  if (!ewd_snap_train_parse(data, len, t, true)) {
    snprintf(msg, cap, "%s", "the training block (world, steps, producers, eval list, rules) is "
             "not valid: corrupt");
    return 1;
  }
  t->has_train = true;
  return 0;
}
