/* restore.c — at start, every snapshot in <state_dir>/streams is read back into the registry
 * (persist.c writes them; the file format is in docs/STATE.md). A file that is truncated,
 * corrupt, of an unknown version or a second copy of a key is logged and moved to
 * <state_dir>/quarantine/, and the rest load. A file that does not fit the limits (max_streams,
 * max_memory) is logged and left where it is, for a start with larger limits, and its name is
 * reserved so no new stream overwrites it. A name that is not a regular file (a FIFO, a
 * directory) is moved to quarantine unopened: a FIFO would block the start. Leftover *.tmp
 * files (a stop mid-write) are removed: the snapshot they would have replaced is intact. A flock'd `lock` file keeps a second daemon
 * off the directory. This runs before anything listens, on the main thread. */
#include "store/persist.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

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
  /* O_NONBLOCK: opening a FIFO for reading would wait for a writer forever (and a start with
   * it); only a regular file is a snapshot */
  int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
  struct stat sb;
  if (fd >= 0 && (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode))) {
    close(fd);
    quarantine(p, file, "not a regular file (a FIFO, device, socket or directory)");
    return;
  }
  FILE *f = NULL;
  if (fd >= 0 && (fcntl(fd, F_SETFL, 0) != 0 || !(f = fdopen(fd, "rb"))))
    close(fd);
  if (!f) {
    ewd_log(EWD_LOG_ERROR, "snapshot not readable: left in place", "file=%s error=\"%s\"", file,
            strerror(errno));
    reserve(p, file);
    return;
  }
  char head[16];
  uint32_t version = 0, klen = 0, crc = 0, tlen = 0;
  double last = 0, saved_at = 0;
  ewd_stream_t train;
  ewd_train_init(&train);
  char *tb = NULL;
  ew_stream_t *s = NULL;
  ewd_key_t rkey = {0};
  if (fread(head, 1, 16, f) != 16)
    snprintf(why, sizeof why, "%s", "the file ends inside its header: truncated");
  else if (memcmp(head, SNAP_MAGIC, 8) != 0)
    snprintf(why, sizeof why, "%s", "not an eigenwatch snapshot (bad magic)");
  else if (memcpy(&version, head + 8, 4), (version < 1 || version > SNAP_VERSION))
    snprintf(why, sizeof why, "snapshot format version %u is not one this daemon reads (1 to %u)",
             version, SNAP_VERSION);
  else if (memcpy(&klen, head + 12, 4), klen == 0 || klen > SNAP_KEY_MAX)
    snprintf(why, sizeof why, "%s", "the header's key length is out of range: corrupt");
  else if (fread(key, 1, klen, f) != klen || fread(&last, 8, 1, f) != 1 ||
           fread(&saved_at, 8, 1, f) != 1 || (version >= 2 && fread(&tlen, 4, 1, f) != 1))
    snprintf(why, sizeof why, "%s", "the file ends inside its header: truncated");
  else if (tlen > SNAP_TRAIN_MAX || (version >= 4 && tlen != 0))
    snprintf(why, sizeof why, "%s", "the header's training block length is out of range: corrupt");
  else if (!(tb = malloc(tlen + 1)) || fread(tb, 1, tlen, f) != tlen || fread(&crc, 4, 1, f) != 1)
    snprintf(why, sizeof why, "%s", "the file ends inside its header: truncated");
  else {
    uint32_t c = ew_crc32c(0, head, 16);
    c = ew_crc32c(c, key, klen);
    c = ew_crc32c(c, &last, 8);
    c = ew_crc32c(c, &saved_at, 8);
    if (version >= 2) {
      c = ew_crc32c(c, &tlen, 4);
      c = ew_crc32c(c, tb, tlen);
    }
    key[klen] = 0;
    if (c != crc)
      snprintf(why, sizeof why, "%s", "the header's checksum does not match: corrupt");
    else if (!ewd_snap_key_parse(key, klen, &rkey))
      snprintf(why, sizeof why, "%s", "the key is not a valid (run, stream) name");
    else if (version >= 2 && version < 4 && !ewd_snap_train_parse(tb, tlen, &train, false))
      snprintf(why, sizeof why, "%s", "the training block (world, steps, producers) is not "
               "valid: corrupt");
  }
  free(tb);
  if (!why[0]) {
    char msg[256];
    /* from version 4 the training block is the state's tRUN section */
    int rc = ew_stream_load_ex(&s, file_read, f, ewd_train_section, &train, msg, sizeof msg);
    if (rc == EW_ENOMEM) {
      fclose(f);
      ewd_log(EWD_LOG_ERROR, "out of memory restoring a snapshot: left in place",
              "file=%s stream=\"%s\"", file, rkey.name);
      reserve(p, file);
      return;
    }
    if (rc)
      snprintf(why, sizeof why, "%s", msg);
    else if (fgetc(f) != EOF)
      snprintf(why, sizeof why, "%s", "bytes follow the state's checksum: corrupt");
  }
  fclose(f);
  if (!why[0] && train.steps && ewd_steps_saved_dim(&train) != ew_stream_config(s)->dim)
    snprintf(why, sizeof why, "the staged steps' rows are %u wide and the state's %zu: corrupt",
             ewd_steps_saved_dim(&train), ew_stream_config(s)->dim);
  if (!why[0] && ewd_registry_find(&srv->reg, &rkey))
    snprintf(why, sizeof why, "a second snapshot of stream '%.100s' (run '%.100s')", rkey.name,
             rkey.run);
  if (why[0]) {
    ew_stream_free(s);
    ewd_train_release(&train);
    quarantine(p, file, why);
    return;
  }
  ewd_stream_t *st = NULL;
  char msg[256];
  int rc = ewd_registry_adopt(&srv->reg, &srv->cfg, &rkey, s, &st, msg, sizeof msg);
  if (rc) {
    ew_stream_free(s);
    ewd_train_release(&train);
    ewd_log(EWD_LOG_ERROR, "snapshot not restored (the limits do not admit it): left in place",
            "file=%s stream=\"%s\" reason=\"%s\"", file, rkey.name, msg);
    reserve(p, file);
    return;
  }
  snprintf(st->file, sizeof st->file, "%s", file);
  st->saved_changes = st->changes;
  st->last_ingest = last;
  ewd_train_move(st, &train);
  ewd_steps_adopt(srv, st); /* its pending steps wait on, their step_timeout started over */
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
