/* persist.c — snapshots of every stream in the state dir, and their restore at start.
 *
 * Files: <state_dir>/streams/<16 hex digits>.ews, the digits an FNV-1a hash of the stream's key
 * (never the raw name: names have slashes), "-2", "-3"... appended in the unlikely case two live
 * keys share a hash; the key itself is inside the file. A file is:
 *
 *   "EWSNAP\0\0"  u32 version (1)  u32 key length  key  f64 last_ingest  f64 saved_at
 *   u32 CRC-32C of the header bytes before it      then one saved stream (docs/STATE.md)
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
 * At start every *.ews file is read back; a file that is truncated, corrupt, of an unknown
 * version or a second copy of a key is logged and moved to <state_dir>/quarantine/, and the rest
 * load. A file that does not fit the limits (max_streams, max_memory) is logged and left where it
 * is, for a start with larger limits. Leftover *.tmp files (a crash mid-write) are removed: the
 * snapshot they would have replaced is intact. */
#include "ewd.h"
#include "cmd/cmd.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#define SNAP_MAGIC "EWSNAP\0"
#define SNAP_VERSION 1u
#define SNAP_KEY_MAX 1024
#define SNAP_EXT ".ews"

typedef struct ewd_op {
  struct ewd_op *next;
  uv_work_t work;
  ewd_persist_t *p;
  bool is_write;       /* else a delete */
  ewd_stream_t *st;    /* write: referenced until the write is done */
  char path[PATH_MAX + 48], tmp[PATH_MAX + 56];
  char *buf;
  size_t len;
  uint64_t changes_at;
  double copy_ms;      /* the SAVE job's time on its math thread */
  double write_ms;     /* open to directory fsync, on the worker thread */
  int err;             /* errno of the step that failed */
  const char *step;
} ewd_op_t;

typedef struct ewd_waiter {
  struct ewd_waiter *next;
  ewd_round_cb cb;
  void *arg;
} ewd_waiter_t;

struct ewd_persist {
  ewd_server_t *srv;
  char dir[PATH_MAX];   /* <state_dir>/streams */
  char qdir[PATH_MAX];  /* <state_dir>/quarantine */
  uv_timer_t tick;      /* once a second: is a round due? */
  uv_timer_t kick;      /* starts an asked-for round from the loop, never inside the asker */
  double last_round;    /* monotonic start of the last round */
  ewd_op_t *io_head, *io_tail;
  bool io_busy;
  bool active;          /* a round runs */
  bool draining;        /* its snapshots are taken; earlier deletes are still being done */
  ewd_stream_t **todo;  /* its streams, referenced */
  size_t ntodo, itodo;
  ewd_round_t res;
  double t0;
  ewd_waiter_t *cur, *next; /* callbacks of this round, and of the one asked for meanwhile */
  bool again;
  char **reserved;      /* names of files left in place at start (not loaded) */
  size_t nreserved;
  bool closing;
  int open_handles;
};

/* ---- file names ---- */

static uint64_t fnv1a(const char *s, size_t n) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (size_t i = 0; i < n; i++)
    h = (h ^ (unsigned char)s[i]) * 0x100000001b3ull;
  return h;
}

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
  unsigned long long h = (unsigned long long)fnv1a(st->name, strlen(st->name));
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
  return ewd_registry_find(&srv->reg, st->name, strlen(st->name)) == st;
}

/* The header of st's snapshot file (malloc'ed, *len bytes). */
static char *snap_header(const ewd_stream_t *st, size_t *len) {
  uint32_t klen = (uint32_t)strlen(st->name), version = SNAP_VERSION;
  double last = st->last_ingest, now = ewd_wall_now();
  size_t n = 8 + 4 + 4 + klen + 8 + 8 + 4;
  char *h = malloc(n), *q = h;
  if (!h)
    return NULL;
  memcpy(q, SNAP_MAGIC, 8), q += 8;
  memcpy(q, &version, 4), q += 4;
  memcpy(q, &klen, 4), q += 4;
  memcpy(q, st->name, klen), q += klen;
  memcpy(q, &last, 8), q += 8;
  memcpy(q, &now, 8), q += 8;
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
  free(p->todo);
  p->todo = NULL;
  p->ntodo = p->itodo = 0;
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
  while (p->active && p->itodo < p->ntodo) {
    ewd_stream_t *st = p->todo[p->itodo++];
    if (!registered(srv, st) || !st->s) {
      ewd_stream_unref(st);
      continue;
    }
    assign_file(p, st);
    ewd_job_t *j = ewd_job_new(srv, NULL, st, EWD_JOB_SAVE, save_done);
    if (j && !(j->prefix = snap_header(st, &j->prefix_len))) {
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
      snprintf(p->res.first_error, sizeof p->res.first_error, "stream '%s': %s", st->name,
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
  p->todo = malloc((r->n + 1) * sizeof *p->todo);
  p->ntodo = p->itodo = 0;
  for (size_t i = 0; p->todo && i < r->n; i++) {
    ewd_stream_t *st = r->items[i];
    if (!st->provisional && st->changes != st->saved_changes) {
      st->refs++;
      p->todo[p->ntodo++] = st;
    }
  }
  if (!p->todo) {
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

/* ---- restore ---- */

static int file_read(void *ctx, void *b, size_t n) { return fread(b, 1, n, ctx) == n ? 0 : -1; }

static void quarantine(ewd_persist_t *p, const char *file, const char *why) {
  char from[PATH_MAX + 256], to[PATH_MAX + 320];
  snprintf(from, sizeof from, "%s/%s", p->dir, file);
  snprintf(to, sizeof to, "%s/%s.%lld", p->qdir, file, (long long)ewd_wall_now());
  p->srv->stat[EWD_STAT_states_quarantined]++;
  if (rename(from, to) != 0) {
    ewd_log(EWD_LOG_ERROR, "snapshot not restored and not moved to quarantine", "file=%s "
            "reason=\"%s\" error=\"%s\"", file, why, strerror(errno));
    return;
  }
  ewd_log(EWD_LOG_ERROR, "snapshot not restored: moved to quarantine", "file=%s to=\"%s\" "
          "reason=\"%s\"", file, to, why);
}

static void reserve(ewd_persist_t *p, const char *file) {
  char **n = realloc(p->reserved, (p->nreserved + 1) * sizeof *n);
  if (!n)
    return;
  p->reserved = n;
  if ((n[p->nreserved] = strdup(file)))
    p->nreserved++;
}

/* Reads one snapshot file into the registry. */
static void restore_one(ewd_persist_t *p, const char *file) {
  ewd_server_t *srv = p->srv;
  char path[PATH_MAX + 256], why[300] = "", key[SNAP_KEY_MAX + 1];
  snprintf(path, sizeof path, "%s/%s", p->dir, file);
  double t0 = ewd_now();
  FILE *f = fopen(path, "rb");
  if (!f) {
    ewd_log(EWD_LOG_ERROR, "snapshot not readable: left in place", "file=%s error=\"%s\"", file,
            strerror(errno));
    reserve(p, file);
    return;
  }
  char head[16];
  uint32_t version = 0, klen = 0, crc = 0;
  double last = 0, saved_at = 0;
  ew_stream_t *s = NULL;
  if (fread(head, 1, 16, f) != 16)
    snprintf(why, sizeof why, "%s", "the file ends inside its header: truncated");
  else if (memcmp(head, SNAP_MAGIC, 8) != 0)
    snprintf(why, sizeof why, "%s", "not an eigenwatch snapshot (bad magic)");
  else if (memcpy(&version, head + 8, 4), version != SNAP_VERSION)
    snprintf(why, sizeof why, "snapshot format version %u is not one this daemon reads (1)",
             version);
  else if (memcpy(&klen, head + 12, 4), klen == 0 || klen > SNAP_KEY_MAX)
    snprintf(why, sizeof why, "%s", "the header's key length is out of range: corrupt");
  else if (fread(key, 1, klen, f) != klen || fread(&last, 8, 1, f) != 1 ||
           fread(&saved_at, 8, 1, f) != 1 || fread(&crc, 4, 1, f) != 1)
    snprintf(why, sizeof why, "%s", "the file ends inside its header: truncated");
  else {
    uint32_t c = ew_crc32c(0, head, 16);
    c = ew_crc32c(c, key, klen);
    c = ew_crc32c(c, &last, 8);
    c = ew_crc32c(c, &saved_at, 8);
    key[klen] = 0;
    if (c != crc)
      snprintf(why, sizeof why, "%s", "the header's checksum does not match: corrupt");
    else if (!ewp_name_valid(key, klen))
      snprintf(why, sizeof why, "%s", "the key is not a valid stream name");
  }
  if (!why[0]) {
    char msg[256];
    int rc = ew_stream_load(&s, file_read, f, msg, sizeof msg);
    if (rc == EW_ENOMEM) {
      fclose(f);
      ewd_log(EWD_LOG_ERROR, "out of memory restoring a snapshot: left in place",
              "file=%s stream=\"%s\"", file, key);
      reserve(p, file);
      return;
    }
    if (rc)
      snprintf(why, sizeof why, "%s", msg);
    else if (fgetc(f) != EOF)
      snprintf(why, sizeof why, "%s", "bytes follow the state's checksum: corrupt");
  }
  fclose(f);
  if (!why[0] && ewd_registry_find(&srv->reg, key, klen))
    snprintf(why, sizeof why, "a second snapshot of stream '%.200s'", key);
  if (why[0]) {
    ew_stream_free(s);
    quarantine(p, file, why);
    return;
  }
  ewd_stream_t *st = NULL;
  char msg[256];
  int rc = ewd_registry_adopt(&srv->reg, &srv->cfg, key, klen, s, &st, msg, sizeof msg);
  if (rc) {
    ew_stream_free(s);
    ewd_log(EWD_LOG_ERROR, "snapshot not restored (the limits do not admit it): left in place",
            "file=%s stream=\"%s\" reason=\"%s\"", file, key, msg);
    reserve(p, file);
    return;
  }
  snprintf(st->file, sizeof st->file, "%s", file);
  st->saved_changes = st->changes;
  st->last_ingest = last;
  srv->stat[EWD_STAT_streams_restored]++;
  ewd_log(EWD_LOG_INFO, "stream restored", "stream=\"%s\" file=%s count=%llu dim=%zu "
          "seconds=%.3f", st->name, file, (unsigned long long)st->count, st->cfg.dim,
          ewd_now() - t0);
}

static bool ends_with(const char *s, const char *suffix) {
  size_t a = strlen(s), b = strlen(suffix);
  return a >= b && strcmp(s + a - b, suffix) == 0;
}

static int make_dir(const char *path) {
  if (mkdir(path, 0700) == 0 || errno == EEXIST)
    return 0;
  ewd_log(EWD_LOG_ERROR, "cannot create a state directory", "path=\"%s\" error=\"%s\"", path,
          strerror(errno));
  return -1;
}

/* One daemon per state dir: a second would overwrite the first one's snapshots. The lock is held
 * (its descriptor open) for the life of the process. */
static int lock_state_dir(const char *dir) {
  char path[PATH_MAX + 16];
  snprintf(path, sizeof path, "%s/lock", dir);
  int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) {
    ewd_log(EWD_LOG_ERROR, "cannot open the state dir's lock file", "path=\"%s\" error=\"%s\"",
            path, strerror(errno));
    return -1;
  }
  if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
    char pid[32] = "";
    ssize_t n = pread(fd, pid, sizeof pid - 1, 0);
    pid[n > 0 ? n : 0] = 0;
    pid[strcspn(pid, "\n")] = 0;
    ewd_log(EWD_LOG_ERROR, "another daemon uses this state dir", "path=\"%s\" pid=%s", dir,
            pid[0] ? pid : "?");
    close(fd);
    return -1;
  }
  char pid[32];
  int n = snprintf(pid, sizeof pid, "%d\n", (int)getpid());
  if (ftruncate(fd, 0) != 0 || pwrite(fd, pid, (size_t)n, 0) != n)
    ewd_log(EWD_LOG_WARN, "cannot write the pid into the lock file", "path=\"%s\"", path);
  return 0; /* fd stays open: the lock lasts until the process ends */
}

int ewd_persist_open(ewd_server_t *srv) {
  if (lock_state_dir(srv->cfg.state_dir) != 0)
    return -1;
  ewd_persist_t *p = calloc(1, sizeof *p);
  if (!p)
    return -1;
  p->srv = srv;
  srv->persist = p;
  snprintf(p->dir, sizeof p->dir, "%s/streams", srv->cfg.state_dir);
  snprintf(p->qdir, sizeof p->qdir, "%s/quarantine", srv->cfg.state_dir);
  if (make_dir(p->dir) || make_dir(p->qdir))
    return -1;
  DIR *d = opendir(p->dir);
  if (!d) {
    ewd_log(EWD_LOG_ERROR, "cannot read the snapshot directory", "path=\"%s\" error=\"%s\"",
            p->dir, strerror(errno));
    return -1;
  }
  char **names = NULL;
  size_t n = 0, cap = 0;
  for (struct dirent *e; (e = readdir(d));) {
    if (e->d_name[0] == '.')
      continue;
    if (ends_with(e->d_name, ".tmp")) {
      char path[PATH_MAX + 256];
      snprintf(path, sizeof path, "%s/%s", p->dir, e->d_name);
      ewd_log(EWD_LOG_WARN, "removing an unfinished snapshot (a stop mid-write); the previous "
              "one stands", "file=%s", e->d_name);
      unlink(path);
      continue;
    }
    if (!ends_with(e->d_name, SNAP_EXT))
      continue;
    if (n == cap) {
      cap = cap ? 2 * cap : 16;
      char **nn = realloc(names, cap * sizeof *nn);
      if (!nn)
        break;
      names = nn;
    }
    if ((names[n] = strdup(e->d_name)))
      n++;
  }
  closedir(d);
  /* in name order: the same files restore the same way every time */
  for (size_t i = 1; i < n; i++)
    for (size_t k = i; k > 0 && strcmp(names[k - 1], names[k]) > 0; k--) {
      char *t = names[k];
      names[k] = names[k - 1];
      names[k - 1] = t;
    }
  for (size_t i = 0; i < n; i++) {
    restore_one(p, names[i]);
    free(names[i]);
  }
  free(names);
  return 0;
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
  free(p->todo);
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
