/* main.c — eigenwatchd: flags and config file, default listeners and state directory, resource
 * limits, signals, and the graceful stop.
 *
 * SIGTERM/SIGINT: stop accepting and reading, let every queued job finish and its reply go out,
 * then close connections and exit 0. SIGHUP: re-read the config file's limits. SIGPIPE: ignored
 * (a client that disconnects mid-reply is not a reason to die). */
#include "ewd.h"

#include <cblas.h>
#include <errno.h>
#include <limits.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#define DEFAULT_TCP "tcp:127.0.0.1:7700"

typedef struct {
  char *listens[32];
  int nlisten;
  char state_dir[PATH_MAX];
  char *config;
  bool foreground;
  ewd_limits_t lim;
} opts_t;

static ewd_server_t srv;
static opts_t opts;
static uv_signal_t sig_term, sig_int, sig_hup;
static uv_timer_t stop_timer;

static void usage(FILE *f) {
  fprintf(f,
          "usage: eigenwatchd [options]\n"
          "  --listen unix:PATH | tcp:HOST:PORT   (repeatable; default: a Unix socket in\n"
          "                                        $XDG_RUNTIME_DIR or the state dir, and\n"
          "                                        " DEFAULT_TCP ")\n"
          "  --state-dir DIR      (default $XDG_STATE_HOME/eigenwatch or ~/.local/state/eigenwatch)\n"
          "  --config FILE        key = value lines: listen, state_dir, log_level,\n"
          "                       max_message_bytes, max_depth, max_elements, max_streams,\n"
          "                       max_memory, max_connections, conn_high_water, math_threads,\n"
          "                       blas_threads\n"
          "  --foreground         stay attached (otherwise detach once listening)\n"
          "  --log-level LEVEL    error | warn | info | debug (default info)\n"
          "  --version, --help\n");
}

static int parse_size(const char *v, size_t *out) {
  char *end;
  errno = 0;
  unsigned long long x = strtoull(v, &end, 10);
  if (errno || end == v)
    return -1;
  if (*end == 'K' || *end == 'k')
    x <<= 10, end++;
  else if (*end == 'M' || *end == 'm')
    x <<= 20, end++;
  else if (*end == 'G' || *end == 'g')
    x <<= 30, end++;
  if (*end)
    return -1;
  *out = (size_t)x;
  return 0;
}

/* Applies one key = value; returns 0, or -1 with a message already logged. */
static int apply_kv(const char *k, const char *v, bool limits_only) {
  size_t s;
  if (!limits_only && strcmp(k, "listen") == 0) {
    if (opts.nlisten < 32)
      opts.listens[opts.nlisten++] = strdup(v);
    return 0;
  }
  if (!limits_only && strcmp(k, "state_dir") == 0) {
    snprintf(opts.state_dir, sizeof opts.state_dir, "%s", v);
    return 0;
  }
  if (strcmp(k, "log_level") == 0)
    return ewd_log_parse_level(v, &ewd_log_level) == 0 ? 0 : -1;
  struct {
    const char *key;
    size_t *dst;
  } sizes[] = {{"max_message_bytes", &opts.lim.skim.max_bytes},
               {"max_streams", &opts.lim.max_streams},
               {"max_memory", &opts.lim.max_memory},
               {"max_connections", &opts.lim.max_connections},
               {"conn_high_water", &opts.lim.conn_high_water}};
  for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
    if (strcmp(k, sizes[i].key) == 0) {
      if (parse_size(v, &s) || s == 0)
        return -1;
      *sizes[i].dst = s;
      return 0;
    }
  if (strcmp(k, "max_depth") == 0 && parse_size(v, &s) == 0 && s >= 2 &&
      s <= EW_SKIM_MAX_DEPTH_CAP) {
    opts.lim.skim.max_depth = (uint32_t)s;
    return 0;
  }
  if (strcmp(k, "max_elements") == 0 && parse_size(v, &s) == 0 && s > 0) {
    opts.lim.skim.max_elements = s;
    return 0;
  }
  if (!limits_only && strcmp(k, "math_threads") == 0 && parse_size(v, &s) == 0 && s >= 1 &&
      s <= 64) {
    opts.lim.math_threads = (int)s;
    return 0;
  }
  if (!limits_only && strcmp(k, "blas_threads") == 0 && parse_size(v, &s) == 0 && s >= 1 &&
      s <= 64) {
    opts.lim.blas_threads = (int)s;
    return 0;
  }
  if (limits_only && (!strcmp(k, "listen") || !strcmp(k, "state_dir") ||
                      !strcmp(k, "math_threads") || !strcmp(k, "blas_threads")))
    return 0; /* not reloadable; kept as started */
  return -1;
}

static int read_config(const char *path, bool limits_only) {
  FILE *f = fopen(path, "r");
  if (!f) {
    ewd_log(EWD_LOG_ERROR, "cannot read config", "path=\"%s\" error=\"%s\"", path,
            strerror(errno));
    return -1;
  }
  char line[1024];
  int lineno = 0, bad = 0;
  while (fgets(line, sizeof line, f)) {
    lineno++;
    char *p = line;
    while (*p == ' ' || *p == '\t')
      p++;
    if (*p == '#' || *p == '\n' || !*p)
      continue;
    char *eq = strchr(p, '=');
    if (!eq) {
      ewd_log(EWD_LOG_ERROR, "config line is not key = value", "path=\"%s\" line=%d", path, lineno);
      bad = 1;
      continue;
    }
    char *k = p, *v = eq + 1;
    char *e = eq;
    while (e > k && (e[-1] == ' ' || e[-1] == '\t'))
      e--;
    *e = 0;
    while (*v == ' ' || *v == '\t')
      v++;
    size_t vl = strlen(v);
    while (vl && (v[vl - 1] == '\n' || v[vl - 1] == ' ' || v[vl - 1] == '\r'))
      v[--vl] = 0;
    if (apply_kv(k, v, limits_only)) {
      ewd_log(EWD_LOG_ERROR, "bad config entry", "path=\"%s\" line=%d key=\"%s\"", path, lineno, k);
      bad = 1;
    }
  }
  fclose(f);
  return bad ? -1 : 0;
}

static int mkdir_p(const char *path) {
  char tmp[PATH_MAX];
  snprintf(tmp, sizeof tmp, "%s", path);
  for (char *p = tmp + 1; *p; p++)
    if (*p == '/') {
      *p = 0;
      mkdir(tmp, 0700);
      *p = '/';
    }
  return mkdir(tmp, 0700) == 0 || errno == EEXIST ? 0 : -1;
}

/* ---- stopping ---- */

static void on_stop_tick(uv_timer_t *t) {
  (void)t;
  bool busy = ewd_pool_pending(srv.pool) > 0;
  for (ewd_conn_t *c = srv.conns; c && !busy; c = c->next)
    busy = c->job != NULL || c->inflight > 0 || c->writes_pending > 0;
  if (busy)
    return;
  for (ewd_conn_t *c = srv.conns; c; c = c->next)
    if (!c->closing) {
      c->closing = true;
      uv_close(&c->h.handle, NULL); /* freed below after the loop ends */
    }
  uv_timer_stop(&stop_timer);
  uv_close((uv_handle_t *)&stop_timer, NULL);
  uv_close((uv_handle_t *)&sig_term, NULL);
  uv_close((uv_handle_t *)&sig_int, NULL);
  uv_close((uv_handle_t *)&sig_hup, NULL);
  ewd_pool_stop(srv.pool);
}

static void on_signal(uv_signal_t *s, int signum) {
  if (signum == SIGHUP) {
    if (opts.config && read_config(opts.config, true) == 0) {
      srv.lim = opts.lim;
      ewd_log(EWD_LOG_INFO, "config reloaded", "path=\"%s\"", opts.config);
    } else {
      ewd_log(EWD_LOG_WARN, "SIGHUP: nothing reloaded", "config=\"%s\"",
              opts.config ? opts.config : "(none)");
    }
    return;
  }
  (void)s;
  if (srv.stopping)
    return;
  ewd_log(EWD_LOG_INFO, "stopping", "signal=%s queued_jobs=%zu connections=%zu",
          signum == SIGTERM ? "TERM" : "INT", ewd_pool_pending(srv.pool), srv.nconns);
  ewd_server_stop(&srv);
  uv_timer_init(srv.loop, &stop_timer);
  uv_timer_start(&stop_timer, on_stop_tick, 0, 10);
}

int main(int argc, char **argv) {
  ew_skim_limits_default(&opts.lim.skim);
  opts.lim.skim.max_elements = (uint64_t)4 << 20;
  opts.lim.max_streams = 1024;
  opts.lim.max_memory = (size_t)8 << 30;
  opts.lim.max_connections = 4096;
  opts.lim.conn_high_water = (size_t)32 << 20;
  opts.lim.math_threads = 2;
  opts.lim.blas_threads = 1;
  char *cli_listens[32];
  int ncli = 0;
  const char *cli_state = NULL, *cli_level = NULL;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    const char *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
      usage(stdout);
      return 0;
    } else if (!strcmp(a, "--version")) {
      printf("eigenwatchd %s (protocol %d)\n", EW_VERSION_STRING, EW_PROTOCOL_VERSION);
      return 0;
    } else if (!strcmp(a, "--foreground")) {
      opts.foreground = true;
    } else if (v && !strcmp(a, "--listen")) {
      if (ncli < 32)
        cli_listens[ncli++] = argv[++i];
    } else if (v && !strcmp(a, "--state-dir")) {
      cli_state = argv[++i];
    } else if (v && !strcmp(a, "--config")) {
      opts.config = argv[++i];
    } else if (v && !strcmp(a, "--log-level")) {
      cli_level = argv[++i];
    } else {
      fprintf(stderr, "eigenwatchd: unknown or incomplete option '%s'\n", a);
      usage(stderr);
      return 2;
    }
  }
  if (opts.config && read_config(opts.config, false) != 0)
    return 2;
  if (cli_level && ewd_log_parse_level(cli_level, &ewd_log_level) != 0) {
    fprintf(stderr, "eigenwatchd: --log-level must be error, warn, info or debug\n");
    return 2;
  }
  if (cli_state)
    snprintf(opts.state_dir, sizeof opts.state_dir, "%s", cli_state);
  if (!opts.state_dir[0]) {
    const char *x = getenv("XDG_STATE_HOME"), *h = getenv("HOME");
    if (x && *x)
      snprintf(opts.state_dir, sizeof opts.state_dir, "%s/eigenwatch", x);
    else
      snprintf(opts.state_dir, sizeof opts.state_dir, "%s/.local/state/eigenwatch", h ? h : "/tmp");
  }
  if (mkdir_p(opts.state_dir) != 0) {
    ewd_log(EWD_LOG_ERROR, "cannot create state dir", "path=\"%s\" error=\"%s\"", opts.state_dir,
            strerror(errno));
    return 1;
  }
  if (ncli) { /* flags replace the config file's listeners */
    opts.nlisten = 0;
    for (int i = 0; i < ncli; i++)
      opts.listens[opts.nlisten++] = strdup(cli_listens[i]);
  }
  if (!opts.nlisten) {
    char path[2 * PATH_MAX];
    const char *rt = getenv("XDG_RUNTIME_DIR");
    snprintf(path, sizeof path, "unix:%s/eigenwatch.sock", rt && *rt ? rt : opts.state_dir);
    opts.listens[opts.nlisten++] = strdup(path);
    opts.listens[opts.nlisten++] = strdup(DEFAULT_TCP);
  }

  signal(SIGPIPE, SIG_IGN);
  /* Batches allocate and free multi-MiB buffers (payload copies, d×d batch Grams) many times a
   * second. Served by mmap, each would be page-faulted and zeroed afresh (measured ~12% of
   * ingest time); kept in the heap they are reused. */
  mallopt(M_MMAP_THRESHOLD, 512 << 20);
  mallopt(M_TRIM_THRESHOLD, 1024 << 20);
  /* one arena: buffers allocated on one thread and freed on another (a batch prepared on one
   * math thread is applied on the other) would otherwise pin a peak's worth in every arena. */
  mallopt(M_ARENA_MAX, 1);
  struct rlimit rl; /* room for many connections */
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }

  int ready[2] = {-1, -1};
  if (!opts.foreground) { /* detach: the parent exits once the child is listening */
    if (pipe(ready) != 0)
      return 1;
    pid_t pid = fork();
    if (pid < 0)
      return 1;
    if (pid > 0) {
      close(ready[1]);
      char ok = 0;
      ssize_t n = read(ready[0], &ok, 1);
      return n == 1 && ok == 1 ? 0 : 1;
    }
    close(ready[0]);
    setsid();
  }

  srv.loop = uv_default_loop();
  srv.lim = opts.lim;
  srv.stats.started = ewd_now();
  for (int i = 0; i < opts.nlisten; i++)
    if (ewd_server_listen(&srv, opts.listens[i]) != 0)
      return 1;
  if (ewd_pool_start(&srv.pool, srv.loop, opts.lim.math_threads, opts.lim.blas_threads) != 0) {
    ewd_log(EWD_LOG_ERROR, "cannot start math threads", "%s", "");
    return 1;
  }
  uv_signal_init(srv.loop, &sig_term);
  uv_signal_start(&sig_term, on_signal, SIGTERM);
  uv_signal_init(srv.loop, &sig_int);
  uv_signal_start(&sig_int, on_signal, SIGINT);
  uv_signal_init(srv.loop, &sig_hup);
  uv_signal_start(&sig_hup, on_signal, SIGHUP);
  ewd_log(EWD_LOG_INFO, "ready", "version=%s pid=%d state_dir=\"%s\" math_threads=%d "
          "blas_threads=%d max_message_bytes=%zu", EW_VERSION_STRING, (int)getpid(),
          opts.state_dir, opts.lim.math_threads, opts.lim.blas_threads, opts.lim.skim.max_bytes);
  if (ready[1] >= 0) {
    char ok = 1;
    (void)!write(ready[1], &ok, 1);
    close(ready[1]);
    int fd = open("/dev/null", 0);
    if (fd >= 0) {
      dup2(fd, 0);
      close(fd);
    }
  }
  uv_run(srv.loop, UV_RUN_DEFAULT);
  /* everything closed: free what remains */
  while (srv.conns) {
    ewd_conn_t *c = srv.conns;
    srv.conns = c->next;
    free(c->buf);
    free(c);
  }
  ewd_registry_free(&srv.reg);
  free(srv.listeners);
  free(srv.unix_paths);
  for (int i = 0; i < opts.nlisten; i++)
    free(opts.listens[i]);
  int rc = uv_loop_close(srv.loop);
  ewd_log(EWD_LOG_INFO, "stopped", "clean=%s", rc == 0 ? "true" : "false");
  return 0;
}
