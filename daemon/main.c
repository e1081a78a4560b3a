/* main.c — eigenwatchd: flags, the configuration (defaults, file, flags; limits_table.h), the auth
 * token, default listeners and state directory, signals, and the graceful stop.
 *
 * SIGTERM/SIGINT: stop accepting and reading; queued jobs finish and their replies go out — for
 * at most drain_timeout seconds, after which connections still waiting (a client that does not
 * read its replies, say) are closed, their queued answers skipped; the last snapshots are
 * written; then exit 0, or 1 when a snapshot could not be written (the log says which, and
 * `stopped clean=false`): a supervisor must see that the state on disk is older than the rows
 * acknowledged.
 * SIGHUP: the config file is parsed into a copy and applied only if every line is good (all or
 * nothing); keys that are not reloadable keep their running value, with a warning if the file
 * changed them. SIGPIPE: ignored (a client that disconnects mid-reply is not a reason to die);
 * SIGXFSZ too (a file size limit makes a write fail with EFBIG, reported like a full disk). */
#include "core/ewd.h"
#include "net/net.h"
#include "core/sd.h"
#include "run/run.h"
#include "store/history.h"
#include "store/persist.h"

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
#define DEFAULT_HTTP "127.0.0.1:7701"
#define TOKEN_MIN 16

/* Everything main owns: the server, the flags that override the config file, signal handles. */
typedef struct {
  ewd_server_t srv;
  const char *config_path;
  ewd_config_t cli;          /* settings given as flags (unset members are zero/NULL) */
  const char *cli_level;
  bool foreground;
  uv_signal_t sig_term, sig_int, sig_hup;
  uv_timer_t stop_timer;
  double stop_deadline;
  size_t snapshots_failed; /* at the stop: the last snapshots not written */
} ewd_main_t;

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

/* defaults, then the file, then the flags. Returns 0, or -1 when the file has a bad line. */
static int build_config(ewd_main_t *m, ewd_config_t *out) {
  ewd_config_defaults(out);
  if (m->config_path && ewd_config_read_file(out, m->config_path) != 0) {
    ewd_config_free(out);
    return -1;
  }
  if (m->cli.listen.n) { /* flags replace the file's listeners */
    for (int i = 0; i < out->listen.n; i++)
      free(out->listen.v[i]);
    out->listen.n = 0;
    for (int i = 0; i < m->cli.listen.n; i++)
      out->listen.v[out->listen.n++] = strdup(m->cli.listen.v[i]);
  }
  if (m->cli.state_dir) {
    free(out->state_dir);
    out->state_dir = strdup(m->cli.state_dir);
  }
  if (m->cli.auth_token_file) {
    free(out->auth_token_file);
    out->auth_token_file = strdup(m->cli.auth_token_file);
  }
  if (m->cli.http) {
    free(out->http);
    out->http = strdup(m->cli.http);
  }
  if (m->cli_level) {
    ewd_log_level_t l;
    ewd_log_parse_level(m->cli_level, &l);
    out->log_level = (int)l;
  }
  return 0;
}

/* Reads the token file: its contents with surrounding whitespace removed, at least 16 bytes. */
static int read_token(ewd_server_t *srv, const char *path) {
  FILE *f = fopen(path, "r");
  if (!f) {
    ewd_log(EWD_LOG_ERROR, "cannot read the auth token file", "path=\"%s\" error=\"%s\"", path,
            strerror(errno));
    return -1;
  }
  struct stat sb;
  if (fstat(fileno(f), &sb) == 0 && (sb.st_mode & 077))
    ewd_log(EWD_LOG_WARN, "the auth token file is readable by others (chmod 600 it)",
            "path=\"%s\" mode=%o", path, (unsigned)(sb.st_mode & 0777));
  char buf[EWP_STR_MAX + 2];
  size_t n = fread(buf, 1, sizeof buf, f);
  fclose(f);
  if (n > EWP_STR_MAX) {
    ewd_log(EWD_LOG_ERROR, "the auth token file is too long", "path=\"%s\" max=%d", path,
            EWP_STR_MAX);
    return -1;
  }
  size_t a = 0, b = n;
  while (a < b && (buf[a] == ' ' || buf[a] == '\t' || buf[a] == '\n' || buf[a] == '\r'))
    a++;
  while (b > a && (buf[b - 1] == ' ' || buf[b - 1] == '\t' || buf[b - 1] == '\n' ||
                   buf[b - 1] == '\r'))
    b--;
  if (b - a < TOKEN_MIN) {
    ewd_log(EWD_LOG_ERROR, "the auth token is too short (at least 16 bytes; e.g. from `head -c 32 "
            "/dev/urandom | base64`)", "path=\"%s\" length=%zu", path, b - a);
    return -1;
  }
  srv->token = malloc(b - a);
  if (!srv->token)
    return -1;
  memcpy(srv->token, buf + a, b - a);
  srv->token_len = b - a;
  return 0;
}

/* ---- stopping ---- */

static void on_last_snapshots(void *arg, const ewd_round_t *r);

static void on_stop_tick(uv_timer_t *t) {
  ewd_main_t *m = t->data;
  ewd_server_t *srv = &m->srv;
  /* staged steps stay pending: the last snapshots carry them (steps_save.c) and a restart
   * waits on for their ranks, so a clean stop keeps every acknowledged row and completes no
   * step early */
  bool busy = ewd_pool_pending(srv->pool) > 0;
  size_t waiting = 0;
  for (ewd_conn_t *c = srv->net->conns; c; c = c->next)
    waiting += !c->closing && ewd_conn_busy(c);
  if ((busy || waiting) && ewd_now() < m->stop_deadline)
    return;
  if (waiting) {
    ewd_log(EWD_LOG_WARN, "drain deadline passed: closing connections still waiting",
            "connections=%zu queued_jobs=%zu drain_timeout=%g", waiting,
            ewd_pool_pending(srv->pool), srv->cfg.drain_timeout);
    for (ewd_conn_t *c = srv->net->conns; c; c = c->next)
      if (!c->closing && ewd_conn_busy(c))
        srv->stat[EWD_STAT_drain_closed]++;
  }
  for (ewd_conn_t *c = srv->net->conns, *next; c; c = next) {
    next = c->next;
    ewd_conn_close(c, "stop");
  }
  uv_timer_stop(&m->stop_timer);
  /* the last snapshots: every stream as of its last queued batch (a clean stop loses nothing) */
  ewd_log(EWD_LOG_INFO, "writing the last snapshots", "streams=%zu", srv->reg.n);
  ewd_persist_round(srv, on_last_snapshots, m);
}

static void on_last_snapshots(void *arg, const ewd_round_t *r) {
  ewd_main_t *m = arg;
  ewd_server_t *srv = &m->srv;
  m->snapshots_failed = r->failed;
  if (r->failed)
    ewd_log(EWD_LOG_ERROR, "stopping with snapshots not written", "failed=%zu first=\"%s\"",
            r->failed, r->first_error);
  ewd_persist_close(srv);
  ewd_subs_free(srv);
  ewd_alert_events_free(srv);
  uv_close((uv_handle_t *)&m->stop_timer, NULL);
  uv_close((uv_handle_t *)&m->sig_term, NULL);
  uv_close((uv_handle_t *)&m->sig_int, NULL);
  uv_close((uv_handle_t *)&m->sig_hup, NULL);
  ewd_net_close(srv);
  ewd_sd_close();
  uv_timer_stop(&srv->trim_timer);
  uv_close((uv_handle_t *)&srv->trim_timer, NULL);
  ewd_steps_stop(srv);
  ewd_eval_stop(srv);
  ewd_pool_stop(srv->pool); /* queued ingests are applied; answers nobody waits for are skipped */
  ewd_history_close(srv);   /* after the last evaluations' points */
}

static void reload(ewd_main_t *m) {
  ewd_server_t *srv = &m->srv;
  if (!m->config_path) {
    ewd_log(EWD_LOG_WARN, "SIGHUP: no config file to reload", "%s", "");
    return;
  }
  ewd_config_t next;
  if (build_config(m, &next) != 0) {
    ewd_log(EWD_LOG_WARN, "SIGHUP: config not reloaded (bad lines above); nothing changed",
            "path=\"%s\"", m->config_path);
    return;
  }
  /* keys that need a restart keep their running value */
  size_t nt;
  const ewd_config_info_t *tab = ewd_config_table(&nt);
  for (size_t i = 0; i < nt; i++) {
    if (tab[i].reloadable)
      continue;
    char *run = (char *)&srv->cfg + tab[i].offset, *nx = (char *)&next + tab[i].offset;
    bool differs = false;
    if (tab[i].type == EWD_CT_PATH) {
      const char *a = *(char **)run, *b = *(char **)nx;
      differs = (a == NULL) != (b == NULL) || (a && strcmp(a, b) != 0);
      free(*(char **)nx);
      *(char **)nx = a ? strdup(a) : NULL;
    } else if (tab[i].type == EWD_CT_LISTEN) {
      ewd_c_LISTEN *a = (ewd_c_LISTEN *)run, *b = (ewd_c_LISTEN *)nx;
      differs = a->n != b->n;
      for (int k = 0; k < b->n; k++) {
        differs = differs || k >= a->n || strcmp(a->v[k], b->v[k]) != 0;
        free(b->v[k]);
      }
      b->n = 0;
      for (int k = 0; k < a->n; k++)
        b->v[b->n++] = strdup(a->v[k]);
    } else {
      differs = memcmp(run, nx, sizeof(uint64_t)) != 0;
      memcpy(nx, run, sizeof(uint64_t));
    }
    if (differs)
      ewd_log(EWD_LOG_WARN, "SIGHUP: this key takes effect at the next start", "key=%s",
              tab[i].key);
  }
  ewd_config_free(&srv->cfg);
  srv->cfg = next;
  ewd_server_apply_config(srv);
  ewd_log(EWD_LOG_INFO, "config reloaded", "path=\"%s\"", m->config_path);
}

static void on_signal(uv_signal_t *s, int signum) {
  ewd_main_t *m = s->data;
  ewd_server_t *srv = &m->srv;
  if (signum == SIGHUP) {
    ewd_sd_reloading();
    reload(m);
    ewd_sd_reloaded();
    return;
  }
  if (srv->stopping)
    return;
  ewd_sd_stopping();
  ewd_log(EWD_LOG_INFO, "stopping", "signal=%s queued_jobs=%zu connections=%zu drain_timeout=%g",
          signum == SIGTERM ? "TERM" : "INT", ewd_pool_pending(srv->pool), srv->net->nconns,
          srv->cfg.drain_timeout);
  srv->stopping = true;
  ewd_net_stop(srv);
  m->stop_deadline = ewd_now() + srv->cfg.drain_timeout;
  uv_timer_init(srv->loop, &m->stop_timer);
  m->stop_timer.data = m;
  uv_timer_start(&m->stop_timer, on_stop_tick, 0, 10);
}

static int parse_args(ewd_main_t *m, int argc, char **argv) {
  char err[256];
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    const char *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
      ewd_config_usage(stdout);
      exit(0);
    } else if (!strcmp(a, "--version")) {
      printf("eigenwatchd %s (protocol %d)\n", EW_VERSION_STRING, EW_PROTOCOL_VERSION);
      exit(0);
    } else if (!strcmp(a, "--foreground")) {
      m->foreground = true;
    } else if (v && (!strcmp(a, "--listen") || !strcmp(a, "--state-dir") ||
                     !strcmp(a, "--auth-token-file") || !strcmp(a, "--http"))) {
      const char *key = !strcmp(a, "--listen")      ? "listen"
                        : !strcmp(a, "--state-dir") ? "state_dir"
                        : !strcmp(a, "--http")      ? "http"
                                                    : "auth_token_file";
      if (ewd_config_set(&m->cli, key, v, err, sizeof err)) {
        fprintf(stderr, "eigenwatchd: %s: %s\n", a, err);
        return 2;
      }
      i++;
    } else if (v && !strcmp(a, "--config")) {
      m->config_path = argv[++i];
    } else if (v && !strcmp(a, "--log-level")) {
      ewd_log_level_t l;
      if (ewd_log_parse_level(v, &l) != 0) {
        fprintf(stderr, "eigenwatchd: --log-level must be error, warn, info or debug\n");
        return 2;
      }
      m->cli_level = argv[++i];
    } else {
      fprintf(stderr, "eigenwatchd: unknown or incomplete option '%s'\n", a);
      ewd_config_usage(stderr);
      return 2;
    }
  }
  return 0;
}

int main(int argc, char **argv) {
  ewd_main_t main_ctx = {0}; /* outlives the loop: every handle points into it */
  ewd_main_t *m = &main_ctx;
  ewd_server_t *srv = &m->srv;
  int rc = parse_args(m, argc, argv);
  if (rc)
    return rc;
  if (build_config(m, &srv->cfg) != 0)
    return 2;
  ewd_server_apply_config(srv);
  ewd_config_t *cfg = &srv->cfg;
  if (!cfg->state_dir) {
    char dir[PATH_MAX];
    const char *x = getenv("XDG_STATE_HOME"), *h = getenv("HOME");
    if (x && *x)
      snprintf(dir, sizeof dir, "%s/eigenwatch", x);
    else
      snprintf(dir, sizeof dir, "%s/.local/state/eigenwatch", h ? h : "/tmp");
    cfg->state_dir = strdup(dir);
  }
  if (mkdir_p(cfg->state_dir) != 0) {
    ewd_log(EWD_LOG_ERROR, "cannot create state dir", "path=\"%s\" error=\"%s\"", cfg->state_dir,
            strerror(errno));
    return 1;
  }
  if (!cfg->listen.n) {
    char path[2 * PATH_MAX];
    const char *rt = getenv("XDG_RUNTIME_DIR");
    snprintf(path, sizeof path, "unix:%s/eigenwatch.sock", rt && *rt ? rt : cfg->state_dir);
    cfg->listen.v[cfg->listen.n++] = strdup(path);
    cfg->listen.v[cfg->listen.n++] = strdup(DEFAULT_TCP);
  }
  if (cfg->auth_token_file && read_token(srv, cfg->auth_token_file) != 0)
    return 1;

  signal(SIGPIPE, SIG_IGN);
  signal(SIGXFSZ, SIG_IGN);
  /* Batches allocate and free multi-MiB buffers (payload copies, d×d batch Grams) many times a
   * second. Served by mmap, each would be page-faulted and zeroed afresh (measured ~12% of
   * ingest time); kept in the heap they are reused, and after large frees (a solve's workspace,
   * a dropped stream) malloc_trim gives them back (stats.c). */
  mallopt(M_MMAP_THRESHOLD, 512 << 20);
  mallopt(M_TRIM_THRESHOLD, 256 << 20);
  /* one arena: buffers allocated on one thread and freed on another (a batch prepared on one
   * math thread is applied on the other) would otherwise pin a peak's worth in every arena. */
  mallopt(M_ARENA_MAX, 1);
  struct rlimit rl; /* room for many connections */
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }

  int ready[2] = {-1, -1};
  if (!m->foreground) { /* detach: the parent exits once the child is listening */
    if (pipe(ready) != 0)
      return 1;
    pid_t pid = fork();
    if (pid < 0)
      return 1;
    if (pid > 0) {
      close(ready[1]);
      char ok = 0;
      ssize_t n = read(ready[0], &ok, 1);
      ewd_config_free(&srv->cfg);
      ewd_config_free(&m->cli);
      free(srv->token);
      return n == 1 && ok == 1 ? 0 : 1;
    }
    close(ready[0]);
    setsid();
  }

  srv->loop = uv_default_loop();
  srv->started = ewd_now();
  uv_timer_init(srv->loop, &srv->trim_timer);
  srv->trim_timer.data = srv;
  ewd_run_init(srv);
  ewd_store_init(srv); /* before restore registers the first streams */
  if (ewd_persist_open(srv) != 0 || ewd_history_open(srv) != 0)
    return 1;
  ewd_persist_start(srv);
  ewd_eval_start(srv);
  if (ewd_net_init(srv) != 0)
    return 1;
  bool sd_rpc, sd_http; /* sockets passed by systemd replace the configured addresses */
  if (ewd_sd_listeners(srv, ewd_net_adopt, &sd_rpc, &sd_http) != 0)
    return 1;
  for (int i = 0; !sd_rpc && i < cfg->listen.n; i++)
    if (ewd_net_listen(srv, cfg->listen.v[i]) != 0)
      return 1;
  const char *http = cfg->http ? cfg->http : DEFAULT_HTTP;
  if (!sd_http && strcmp(http, "off") != 0 && ewd_net_listen_http(srv, http) != 0)
    return 1;
  if (ewd_pool_start(&srv->pool, srv->loop, (int)cfg->math_threads, (int)cfg->blas_threads,
                     (int)cfg->eval_threads) != 0) {
    ewd_log(EWD_LOG_ERROR, "cannot start math threads", "%s", "");
    return 1;
  }
  uv_signal_t *sigs[] = {&m->sig_term, &m->sig_int, &m->sig_hup};
  int signums[] = {SIGTERM, SIGINT, SIGHUP};
  for (int i = 0; i < 3; i++) {
    uv_signal_init(srv->loop, sigs[i]);
    sigs[i]->data = m;
    uv_signal_start(sigs[i], on_signal, signums[i]);
  }
  ewd_log(EWD_LOG_INFO, "ready", "version=%s pid=%d page=\"%s\" addresses=\"%s\" "
          "state_dir=\"%s\" math_threads=%llu blas_threads=%llu max_message_bytes=%llu auth=%s",
          EW_VERSION_STRING, (int)getpid(), ewd_net_page(srv), ewd_net_addresses(srv),
          cfg->state_dir, (unsigned long long)cfg->math_threads,
          (unsigned long long)cfg->blas_threads, (unsigned long long)cfg->max_message_bytes,
          srv->token ? "token" : "none");
  ewd_sd_ready(srv);
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
  uv_run(srv->loop, UV_RUN_DEFAULT);
  ewd_registry_free(&srv->reg);
  ewd_net_free(srv);
  int loop_open = uv_loop_close(srv->loop);
  bool clean = loop_open == 0 && m->snapshots_failed == 0;
  ewd_log(clean ? EWD_LOG_INFO : EWD_LOG_ERROR, "stopped", "clean=%s snapshots_failed=%zu",
          clean ? "true" : "false", m->snapshots_failed);
  ewd_config_free(&srv->cfg);
  ewd_config_free(&m->cli);
  free(srv->token);
  return m->snapshots_failed ? 1 : 0;
}
