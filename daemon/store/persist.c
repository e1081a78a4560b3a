/* persist.c — snapshots of every stream in the state dir (restore at start is restore.c).
 *
 * Files: <state_dir>/streams/<16 hex digits>.ews, the digits an FNV-1a hash of the stream's key
 * (never the raw name: names have slashes), "-2", "-3"... appended in the unlikely case two live
 * keys share a hash; the key itself is inside the file. A file is:
 *
 *   "EWSNAP\0\0"  u32 version (4)  u32 key length  key  f64 last_ingest  f64 saved_at
 *   u32 training block length (0 from version 4)  training block (ewd_snap_train; versions 2, 3)
 *   u32 CRC-32C of the header bytes before it      then one saved stream (docs/STATE.md)
 * From version 4 the training block is a section of the saved stream (tag tRUN,
 * ew_stream_save_ex), so the bytes after the header are exactly what `export` sends and `merge`
 * takes: one serializer for the three.
 * All numbers little-endian (the host's: the daemon runs on little-endian machines only). A
 * training block: u32 world, f64 step_timeout, u8 flags (1 = first step, 2 = last step,
 * 4 = recent), u64 first_step, u64 last_step, u32 producers, then per producer: u8 name length,
 * name, u64 the last seq whose rows the state holds; then u32 window_steps, u32 n, and the row
 * counts of the last n completed steps, oldest first; then (version 3) u32 length and the eval
 * list create gave (ewd_eval_save; length 0: the defaults), u32 length and the alert rules
 * (ewd_alerts_save; 0: none). Versions 1 (no block) and 2 (no eval
 * list) are still read.
 *
 * A round snapshots every stream changed since its last snapshot, one at a time: a SAVE job on
 * the stream's own queue copies its state into memory on its math turn (so the copy sees every
 * batch submitted before the round, and never races one), then libuv's worker threads write it:
 * temp file, fsync, rename over the old snapshot, fsync the directory. The loop thread touches no
 * file after start; other streams' ingest runs on the math threads meanwhile (the copy is a
 * memcpy-speed pass over one stream's state). At most one stream's copy is held at a time.
 * Rounds run on the snapshot_interval, on `snapshot {}`, and at a stop (after the last queued
 * batch). Dropping a stream deletes its file, in order behind any write of it.
 *
 * Restore at start, the quarantine and the state-dir lock are restore.c. */
#include "core/ewd.h"
#include "store/persist.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- file names ---- */

static bool file_taken(ewd_persist_t *p, const ewd_stream_t *self, const char *name) {
  ewd_registry_t *r = &p->srv->reg;
  for (size_t i = 0; i < r->n; i++)
    if (r->items[i] != self && strcmp(r->items[i]->file, name) == 0)
      return true;
  for (size_t i = 0; i < p->nreserved; i++)
    if (strcmp(p->reserved[i], name) == 0)
      return true;
  return false;
}

static void assign_file(ewd_persist_t *p, ewd_stream_t *st) {
  if (st->file[0])
    return;
  char key[2 * (EWD_NAME_MAX + 1)];
  unsigned long long h = (unsigned long long)ewd_fnv1a(EWD_FNV_BASIS, key, ewd_snap_key(st, key));
  for (int k = 1;; k++) {
    if (k == 1)
      snprintf(st->file, sizeof st->file, "%016llx" SNAP_EXT, h);
    else
      snprintf(st->file, sizeof st->file, "%016llx-%d" SNAP_EXT, h, k);
    if (!file_taken(p, st, st->file))
      return;
  }
}

static bool registered(ewd_server_t *srv, const ewd_stream_t *st) {
  return ewd_registry_find(&srv->reg, &EWD_KEY_ST(st)) == st;
}

size_t ewd_snap_key(const ewd_stream_t *st, char *out) {
  size_t rn = strlen(st->run), n = strlen(st->name);
  if (strcmp(st->run, EWP_DEFAULT_RUN) == 0) {
    memcpy(out, st->name, n);
    return n;
  }
  memcpy(out, st->run, rn);
  out[rn] = 0;
  memcpy(out + rn + 1, st->name, n);
  return rn + 1 + n;
}

bool ewd_snap_key_parse(const char *key, size_t klen, ewd_key_t *out) {
  const char *z = memchr(key, 0, klen);
  if (!z) {
    *out = (ewd_key_t){EWP_DEFAULT_RUN, strlen(EWP_DEFAULT_RUN), key, klen};
  } else {
    *out = (ewd_key_t){key, (size_t)(z - key), z + 1, klen - (size_t)(z - key) - 1};
  }
  return ewp_name_valid(out->run, out->rn) && ewp_name_valid(out->name, out->n);
}

/* The header of st's snapshot file (malloc'ed, *len bytes); the training block goes into the
 * state itself (ewd_train_bytes, the SAVE job's train). */
static char *snap_header(const ewd_stream_t *st, size_t *len) {
  char key[2 * (EWD_NAME_MAX + 1)];
  uint32_t klen = (uint32_t)ewd_snap_key(st, key), version = SNAP_VERSION;
  double last = st->last_ingest, now = ewd_wall_now();
  char *h = malloc(8 + 4 + 4 + klen + 8 + 8 + 4 + 4), *q = h;
  if (!h)
    return NULL;
  memcpy(q, SNAP_MAGIC, 8), q += 8;
  memcpy(q, &version, 4), q += 4;
  memcpy(q, &klen, 4), q += 4;
  memcpy(q, key, klen), q += klen;
  memcpy(q, &last, 8), q += 8;
  memcpy(q, &now, 8), q += 8;
  uint32_t tlen = 0;
  memcpy(q, &tlen, 4), q += 4;
  size_t n = (size_t)(q - h) + 4;
  uint32_t crc = ew_crc32c(0, h, (size_t)(q - h));
  memcpy(q, &crc, 4);
  *len = n;
  return h;
}

/* ---- the I/O queue: one operation at a time on libuv's worker threads ---- */

static void round_step(ewd_persist_t *p);
static void io_next(ewd_persist_t *p);
static void persist_free(ewd_persist_t *p);
static void finish_round(ewd_persist_t *p);

static int write_all(int fd, const char *b, size_t n) {
  while (n) {
    ssize_t w = write(fd, b, n);
    if (w < 0 && errno == EINTR)
      continue;
    if (w <= 0)
      return -1;
    b += w;
    n -= (size_t)w;
  }
  return 0;
}

static int fsync_dir(const char *dir) {
  int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0)
    return -1;
  int rc = fsync(fd);
  close(fd);
  return rc;
}

static void op_do(ewd_op_t *op);

/* Worker thread: no loop state is touched here, only the op. */
static void op_work(uv_work_t *w) {
  ewd_op_t *op = w->data;
  double t0 = ewd_now();
  op_do(op);
  op->write_ms = 1e3 * (ewd_now() - t0);
}

static void op_do(ewd_op_t *op) {
  errno = 0;
  if (!op->is_write) {
    if (unlink(op->path) != 0 && errno != ENOENT)
      op->err = errno, op->step = "unlink";
    else if (fsync_dir(op->p->dir) != 0)
      op->err = errno, op->step = "fsync of the directory";
    return;
  }
  int fd = open(op->tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) {
    op->err = errno, op->step = "open";
    return;
  }
  if (write_all(fd, op->buf, op->len) != 0)
    op->err = errno ? errno : EIO, op->step = "write";
  else if (fsync(fd) != 0)
    op->err = errno, op->step = "fsync";
  if (close(fd) != 0 && !op->err)
    op->err = errno, op->step = "close";
  if (!op->err && rename(op->tmp, op->path) != 0)
    op->err = errno, op->step = "rename";
  if (op->err)
    unlink(op->tmp);
  else if (fsync_dir(op->p->dir) != 0)
    op->err = errno, op->step = "fsync of the directory";
}

static void delete_file(ewd_persist_t *p, const char *file);

static void op_after(uv_work_t *w, int status) {
  ewd_op_t *op = w->data;
  ewd_persist_t *p = op->p;
  ewd_server_t *srv = p->srv;
  if (status != 0 && !op->err)
    op->err = ECANCELED, op->step = "queue";
  if (op->is_write) {
    ewd_stream_t *st = op->st;
    if (op->err) {
      srv->stat[EWD_STAT_snapshot_failures]++;
      p->res.failed++;
      ewd_log(EWD_LOG_ERROR, "snapshot not written", "stream=\"%s\" path=\"%s\" step=\"%s\" "
              "error=\"%s\"", st->name, op->path, op->step, strerror(op->err));
      if (!p->res.first_error[0])
        snprintf(p->res.first_error, sizeof p->res.first_error, "stream '%s': %s failed: %s",
                 st->name, op->step, strerror(op->err));
    } else {
      srv->stat[EWD_STAT_snapshots_written]++;
      srv->stat[EWD_STAT_snapshot_bytes] += op->len;
      p->res.written++;
      p->res.bytes += op->len;
      if (op->changes_at > st->saved_changes)
        st->saved_changes = op->changes_at;
      ewd_log(EWD_LOG_DEBUG, "snapshot written", "stream=\"%s\" file=%s bytes=%zu copy_ms=%.1f "
              "write_ms=%.1f", st->name, st->file, op->len, op->copy_ms, op->write_ms);
      if (!registered(srv, st)) /* dropped while it was written */
        delete_file(p, st->file);
    }
    ewd_server_freed(srv, op->len);
    ewd_stream_unref(st);
  } else if (op->err) {
    ewd_log(EWD_LOG_ERROR, "snapshot of a dropped stream not deleted", "path=\"%s\" step=\"%s\" "
            "error=\"%s\"", op->path, op->step, strerror(op->err));
  }
  bool was_write = op->is_write;
  free(op->buf);
  free(op);
  p->io_busy = false;
  io_next(p);
  if (was_write)
    round_step(p);
  if (p->draining && !p->io_busy) {
    p->draining = false;
    finish_round(p);
  }
  if (p->closing && !p->io_busy)
    persist_free(p);
}

static void io_next(ewd_persist_t *p) {
  if (p->io_busy || !p->io_head)
    return;
  ewd_op_t *op = p->io_head;
  p->io_head = op->next;
  if (!p->io_head)
    p->io_tail = NULL;
  p->io_busy = true;
  op->work.data = op;
  if (uv_queue_work(p->srv->loop, &op->work, op_work, op_after) != 0) {
    op->err = EAGAIN, op->step = "queue";
    op_after(&op->work, 0);
  }
}

static void io_push(ewd_persist_t *p, ewd_op_t *op) {
  op->p = p;
  if (p->io_tail)
    p->io_tail->next = op;
  else
    p->io_head = op;
  p->io_tail = op;
  io_next(p);
}

static void delete_file(ewd_persist_t *p, const char *file) {
  ewd_op_t *op = calloc(1, sizeof *op);
  if (!op) {
    ewd_log(EWD_LOG_ERROR, "out of memory: snapshot of a dropped stream left", "file=%s", file);
    return;
  }
  snprintf(op->path, sizeof op->path, "%s/%s", p->dir, file);
  io_push(p, op);
}

void ewd_persist_forget(ewd_server_t *srv, ewd_stream_t *st) {
  if (srv->persist && st->file[0])
    delete_file(srv->persist, st->file);
}

/* ---- rounds ---- */

static void on_kick(uv_timer_t *t);

static void finish_round(ewd_persist_t *p) {
  ewd_server_t *srv = p->srv;
  p->res.seconds = ewd_now() - p->t0;
  srv->stat[EWD_STAT_snapshot_last_ms] = (uint64_t)(1e3 * p->res.seconds + 0.5);
  if (p->res.written || p->res.failed)
    ewd_log(p->res.failed ? EWD_LOG_WARN : EWD_LOG_INFO, "snapshot round", "written=%zu "
            "failed=%zu bytes=%llu seconds=%.3f", p->res.written, p->res.failed,
            (unsigned long long)p->res.bytes, p->res.seconds);
  free(p->round_st);
  p->round_st = NULL;
  p->round_n = p->round_at = 0;
  p->active = false;
  ewd_round_t res = p->res;
  ewd_waiter_t *w = p->cur;
  p->cur = p->next;
  p->next = NULL;
  bool again = p->again;
  p->again = false;
  if (again)
    uv_timer_start(&p->kick, on_kick, 0, 0);
  while (w) {
    ewd_waiter_t *nx = w->next;
    if (w->cb)
      w->cb(w->arg, &res);
    free(w);
    w = nx;
  }
}

static void save_done(ewd_job_t *j);

/* Snapshots the next stream of the round (or ends it). */
static void round_step(ewd_persist_t *p) {
  ewd_server_t *srv = p->srv;
  while (p->active && p->round_at < p->round_n) {
    ewd_stream_t *st = p->round_st[p->round_at++];
    if (!registered(srv, st) || !st->s) {
      ewd_stream_unref(st);
      continue;
    }
    assign_file(p, st);
    ewd_job_t *j = ewd_job_make(srv, st, EWD_JOB_SAVE, save_done);
    if (j)
      j->work = ewd_run_save;
    if (j && (!(j->prefix = snap_header(st, &j->prefix_len)) ||
              ewd_train_attach(st, j) != 0)) {
      free(j->prefix);
      free(j);
      j = NULL;
    }
    if (!j) {
      p->res.failed++;
      srv->stat[EWD_STAT_snapshot_failures]++;
      snprintf(p->res.first_error, sizeof p->res.first_error, "stream '%s': out of memory",
               st->name);
      ewd_stream_unref(st);
      continue;
    }
    ewd_job_submit(srv, j, false);
    ewd_stream_unref(st); /* the job holds its own reference now */
    return;
  }
  if (!p->active)
    return;
  if (p->io_busy) /* a round ends durable: deletes queued before it are done too (op_after) */
    p->draining = true;
  else
    finish_round(p);
}

static void save_done(ewd_job_t *j) {
  ewd_server_t *srv = j->srv;
  ewd_persist_t *p = srv->persist;
  ewd_stream_t *st = j->st;
  ewd_job_mirrors(j);
  if (j->rc || !j->out) {
    p->res.failed++;
    srv->stat[EWD_STAT_snapshot_failures]++;
    ewd_log(EWD_LOG_ERROR, "snapshot not taken", "stream=\"%s\" error=\"%s\"", st->name,
            j->message);
    if (!p->res.first_error[0])
      snprintf(p->res.first_error, sizeof p->res.first_error, "stream '%.60s': %.160s", st->name,
               j->message);
    ewd_job_finish(j);
    round_step(p);
    return;
  }
  if (!registered(srv, st)) { /* dropped after the copy was queued: its file is gone, keep it so */
    ewd_job_finish(j);
    round_step(p);
    return;
  }
  ewd_op_t *op = calloc(1, sizeof *op);
  if (!op) {
    p->res.failed++;
    srv->stat[EWD_STAT_snapshot_failures]++;
    ewd_job_finish(j);
    round_step(p);
    return;
  }
  op->is_write = true;
  op->st = st;
  st->refs++;
  snprintf(op->path, sizeof op->path, "%s/%s", p->dir, st->file);
  snprintf(op->tmp, sizeof op->tmp, "%s.tmp", op->path);
  op->buf = j->out;
  op->len = j->out_len;
  op->changes_at = j->changes_at;
  op->copy_ms = j->elapsed_ms;
  j->out = NULL;
  ewd_job_finish(j);
  io_push(p, op); /* the round continues when it is written (op_after) */
}

static void start_round(ewd_persist_t *p) {
  ewd_server_t *srv = p->srv;
  ewd_registry_t *r = &srv->reg;
  p->active = true;
  p->t0 = p->last_round = ewd_now();
  memset(&p->res, 0, sizeof p->res);
  p->round_st = malloc((r->n + 1) * sizeof *p->round_st);
  p->round_n = p->round_at = 0;
  for (size_t i = 0; p->round_st && i < r->n; i++) {
    ewd_stream_t *st = r->items[i];
    if (!st->provisional && st->changes != st->saved_changes) {
      st->refs++;
      p->round_st[p->round_n++] = st;
    }
  }
  if (!p->round_st) {
    p->res.failed = 1;
    snprintf(p->res.first_error, sizeof p->res.first_error, "out of memory");
  }
  round_step(p);
}

static void on_kick(uv_timer_t *t) {
  ewd_persist_t *p = t->data;
  if (!p->active && (p->cur || p->again)) {
    p->again = false;
    start_round(p);
  }
}

void ewd_persist_round(ewd_server_t *srv, ewd_round_cb cb, void *arg) {
  ewd_persist_t *p = srv->persist;
  ewd_waiter_t *w = calloc(1, sizeof *w);
  if (w) {
    w->cb = cb;
    w->arg = arg;
  }
  ewd_waiter_t **list = p->active ? &p->next : &p->cur;
  if (w) {
    while (*list)
      list = &(*list)->next;
    *list = w;
  }
  if (p->active)
    p->again = true;
  else
    uv_timer_start(&p->kick, on_kick, 0, 0);
}

static void on_tick(uv_timer_t *t) {
  ewd_persist_t *p = t->data;
  ewd_server_t *srv = p->srv;
  double every = srv->cfg.snapshot_interval;
  if (every > 0 && !srv->stopping && !p->active && ewd_now() - p->last_round >= every)
    ewd_persist_round(srv, NULL, NULL);
}

void ewd_persist_start(ewd_server_t *srv) {
  ewd_persist_t *p = srv->persist;
  p->last_round = ewd_now();
  uv_timer_init(srv->loop, &p->tick);
  uv_timer_init(srv->loop, &p->kick);
  p->tick.data = p->kick.data = p;
  p->open_handles = 2;
  uv_timer_start(&p->tick, on_tick, 1000, 1000);
}

static void persist_free(ewd_persist_t *p) {
  for (size_t i = 0; i < p->nreserved; i++)
    free(p->reserved[i]);
  free(p->reserved);
  free(p->round_st);
  free(p);
}

static void on_closed(uv_handle_t *h) {
  ewd_persist_t *p = h->data;
  if (--p->open_handles > 0)
    return;
  if (p->io_busy) /* the last write or delete frees it (op_after) */
    p->closing = true;
  else
    persist_free(p);
}

void ewd_persist_close(ewd_server_t *srv) {
  ewd_persist_t *p = srv->persist;
  if (!p)
    return;
  srv->persist = NULL;
  if (!p->open_handles) {
    persist_free(p);
    return;
  }
  uv_close((uv_handle_t *)&p->tick, on_closed);
  uv_close((uv_handle_t *)&p->kick, on_closed);
}
