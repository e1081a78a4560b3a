/* server.c — sockets: listeners (TCP, Unix), connections, framing, replies, backpressure.
 *
 * Each connection's messages take effect in order. Ingest notifications are pipelined: they are
 * handed to their stream's queue (which applies them in order) while the connection reads on, so
 * one producer keeps both math threads busy. Any other message is a barrier: it waits until the
 * connection's earlier jobs are done (so a `ping` after a run of ingest notifications is answered
 * only once those rows are counted), and while a request's job runs, later messages wait in the
 * buffer (so replies leave in request order). Bytes are skimmed (ew_skim) before msgpack-c decodes anything; a framing error answers
 * what it can (msgid 0) and closes that connection only. Reading pauses while a connection's
 * buffer or unsent replies pass a high-water mark, and resumes when they drain: TCP/Unix flow
 * control then slows the producer instead of the daemon buffering without bound.
 * This file knows nothing of eigenvalues. */
#include "ewd.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#define READ_CHUNK (64 * 1024)
#define OUT_HIGH_WATER ((size_t)16 << 20)

typedef struct {
  uv_write_t req;
  ewd_conn_t *conn;
  char *data;
  size_t len;
} write_req_t;

static void conn_process(ewd_conn_t *c);
static void conn_close(ewd_conn_t *c);

static uint64_t next_conn_id = 1;

void ewd_count_error(ewd_server_t *srv, int code) {
  int i = code - EW__ERR_BASE;
  if (i > 0 && i < 64)
    srv->stats.errors[i]++;
}

/* ---- replies ---- */

static void on_write(uv_write_t *req, int status) {
  write_req_t *w = (write_req_t *)req;
  ewd_conn_t *c = w->conn;
  (void)status;
  c->writes_pending -= w->len;
  free(w->data);
  free(w);
  if (c->close_after_write && c->writes_pending == 0 && !c->job && !c->inflight)
    conn_close(c);
  else if (!c->closing)
    conn_process(c); /* may resume reading now that output drained */
}

void ewd_reply_send(ewd_conn_t *c, msgpack_sbuffer *sb) {
  if (!c || c->closing) {
    msgpack_sbuffer_destroy(sb);
    return;
  }
  write_req_t *w = malloc(sizeof *w);
  if (!w) {
    msgpack_sbuffer_destroy(sb);
    return;
  }
  w->conn = c;
  w->data = sb->data;
  w->len = sb->size;
  sb->data = NULL;
  sb->size = sb->alloc = 0;
  c->srv->stats.bytes_out += w->len;
  c->writes_pending += w->len;
  uv_buf_t b = uv_buf_init(w->data, (unsigned)w->len);
  if (uv_write(&w->req, &c->h.stream, &b, 1, on_write) != 0) {
    c->writes_pending -= w->len;
    free(w->data);
    free(w);
  }
}

void ewd_reply_error(ewd_server_t *srv, ewd_conn_t *c, uint64_t msgid, bool notify, int code,
                     const char *fmt, ...) {
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  ewd_count_error(srv, code);
  ewd_log(EWD_LOG_DEBUG, "request failed", "conn=%llu code=%s detail=\"%s\"",
          c ? (unsigned long long)c->id : 0ULL, ew_err_name(code), msg);
  if (notify || !c)
    return;
  msgpack_sbuffer sb;
  msgpack_sbuffer_init(&sb);
  msgpack_packer pk;
  msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
  ew_pack_error_response(&pk, msgid, ew_err_name(code), msg);
  ewd_reply_send(c, &sb);
}

/* ---- connections ---- */

static void conn_unref(ewd_conn_t *c) {
  if (--c->refs > 0)
    return;
  free(c->buf);
  free(c);
}

void ewd_conn_ref(ewd_conn_t *c) { c->refs++; }

static void on_closed(uv_handle_t *h) {
  ewd_conn_t *c = h->data;
  ewd_server_t *srv = c->srv;
  if (c->prev)
    c->prev->next = c->next;
  else
    srv->conns = c->next;
  if (c->next)
    c->next->prev = c->prev;
  c->prev = c->next = NULL;
  srv->nconns--;
  conn_unref(c); /* jobs still running keep it until they finish (unanswered) */
}

static void conn_close(ewd_conn_t *c) {
  if (c->closing)
    return;
  c->closing = true;
  uv_close(&c->h.handle, on_closed);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  ewd_conn_t *c = h->data;
  (void)suggested;
  if (c->off > 0 && c->cap - c->len < READ_CHUNK) { /* compact once, not per message */
    memmove(c->buf, c->buf + c->off, c->len - c->off);
    c->len -= c->off;
    c->off = 0;
  }
  size_t limit = c->srv->lim.skim.max_bytes + READ_CHUNK;
  if (c->cap - c->len < READ_CHUNK && c->cap < limit) {
    size_t nc = c->cap ? 2 * c->cap : READ_CHUNK;
    while (nc < c->len + READ_CHUNK)
      nc *= 2;
    if (nc > limit)
      nc = limit;
    uint8_t *nb = realloc(c->buf, nc);
    if (nb) {
      c->buf = nb;
      c->cap = nc;
    }
  }
  *buf = uv_buf_init((char *)c->buf + c->len, (unsigned)(c->cap - c->len));
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  ewd_conn_t *c = s->data;
  (void)buf;
  if (nread > 0) {
    c->len += (size_t)nread;
    c->srv->stats.bytes_in += (uint64_t)nread;
    conn_process(c);
    return;
  }
  if (nread == 0)
    return;
  /* EOF or error: handle what is already buffered, then close */
  uv_read_stop(s);
  c->reading = false;
  c->close_after_write = true;
  conn_process(c);
}

static void framing_error(ewd_conn_t *c, ew_skim_status_t st, const char *detail) {
  int code = st == EW_SKIM_TOO_LARGE || st == EW_SKIM_TOO_MANY ? EW_ETOOLARGE : EW_EBADREQ;
  ewd_log(EWD_LOG_WARN, "framing error, closing connection", "conn=%llu reason=\"%s\"",
          (unsigned long long)c->id, detail);
  ewd_reply_error(c->srv, c, 0, false, code, "%s; the connection will be closed", detail);
  uv_read_stop(&c->h.stream);
  c->reading = false;
  c->off = c->len = 0;
  c->close_after_write = true;
  if (c->writes_pending == 0)
    conn_close(c);
}

/* An ingest notification ([2, "ingest", ...] with a str method) may be pipelined. */
static bool is_ingest_notification(const ewd_conn_t *c) {
  const uint8_t *b = c->buf + c->off;
  return c->len - c->off >= 9 && b[0] == 0x93 && b[1] == 0x02 && b[2] == 0xa6 &&
         memcmp(b + 3, "ingest", 6) == 0;
}

static void conn_process(ewd_conn_t *c) {
  ewd_server_t *srv = c->srv;
  while (!c->job && !c->closing && c->len > c->off) {
    if (c->inflight > 0 &&
        (!is_ingest_notification(c) || c->queued_bytes >= srv->lim.conn_high_water))
      break; /* a barrier, or too much already queued: wait for the jobs in flight */
    size_t mlen = 0;
    ew_skim_status_t st =
        ew_skim(&c->skim, c->buf + c->off, c->len - c->off, &srv->lim.skim, &mlen);
    if (st == EW_SKIM_NEED_MORE)
      break;
    if (st != EW_SKIM_DONE) {
      framing_error(c, st, ew_skim_strerror(st));
      return;
    }
    msgpack_unpacked upk;
    msgpack_unpacked_init(&upk);
    size_t off = 0;
    msgpack_unpack_return ret =
        msgpack_unpack_next(&upk, (const char *)c->buf + c->off, mlen, &off);
    if (ret != MSGPACK_UNPACK_SUCCESS || off != mlen) {
      msgpack_unpacked_destroy(&upk);
      framing_error(c, EW_SKIM_BAD_BYTE, "message is not valid msgpack");
      return;
    }
    ewd_dispatch(srv, c, &upk.data);
    msgpack_unpacked_destroy(&upk);
    c->off += mlen;
    ew_skim_reset(&c->skim);
    if (c->off == c->len)
      c->off = c->len = 0;
    if (c->cap > 4 * READ_CHUNK && c->len == 0) { /* give big buffers back */
      uint8_t *nb = realloc(c->buf, READ_CHUNK);
      if (nb) {
        c->buf = nb;
        c->cap = READ_CHUNK;
      }
    }
  }
  if (c->closing)
    return;
  if (c->close_after_write) { /* peer finished sending */
    if (!c->job && !c->inflight && c->writes_pending == 0)
      conn_close(c);
    return;
  }
  /* backpressure: pause while jobs hold the connection with a full buffer, or replies pile */
  bool full = ((c->job || c->inflight) && c->len - c->off >= srv->lim.conn_high_water) ||
              c->queued_bytes >= srv->lim.conn_high_water ||
              c->writes_pending > OUT_HIGH_WATER || srv->stopping ||
              c->len - c->off >= srv->lim.skim.max_bytes;
  if (full && c->reading) {
    uv_read_stop(&c->h.stream);
    c->reading = false;
  } else if (!full && !c->reading) {
    if (uv_read_start(&c->h.stream, on_alloc, on_read) == 0)
      c->reading = true;
  }
}

void ewd_conn_job_done(ewd_conn_t *c, bool was_request) {
  if (was_request)
    c->job = NULL;
  else
    c->inflight--;
  if (!c->closing)
    conn_process(c);
  conn_unref(c);
}

static void on_connection(uv_stream_t *server, int status) {
  ewd_server_t *srv = server->data;
  if (status < 0)
    return;
  ewd_conn_t *c = calloc(1, sizeof *c);
  if (!c)
    return;
  c->srv = srv;
  c->refs = 1;
  c->id = next_conn_id++;
  int rc = server->type == UV_TCP ? uv_tcp_init(srv->loop, &c->h.tcp)
                                  : uv_pipe_init(srv->loop, &c->h.pipe, 0);
  if (rc != 0) {
    free(c);
    return;
  }
  c->h.handle.data = c;
  c->next = srv->conns;
  if (srv->conns)
    srv->conns->prev = c;
  srv->conns = c;
  srv->nconns++;
  if (uv_accept(server, &c->h.stream) != 0) {
    conn_close(c);
    return;
  }
  if (srv->nconns > srv->lim.max_connections || srv->stopping) {
    ewd_log(EWD_LOG_WARN, "connection refused", "reason=%s connections=%zu",
            srv->stopping ? "stopping" : "max_connections", srv->nconns - 1);
    ewd_count_error(srv, EW_ELIMIT);
    conn_close(c);
    return;
  }
  if (server->type == UV_TCP)
    uv_tcp_nodelay(&c->h.tcp, 1);
  srv->stats.connections_total++;
  if (uv_read_start(&c->h.stream, on_alloc, on_read) == 0)
    c->reading = true;
}

/* ---- listeners ---- */

static int listen_unix(ewd_server_t *srv, const char *path) {
  if (strlen(path) >= sizeof(((struct sockaddr_un *)0)->sun_path)) {
    ewd_log(EWD_LOG_ERROR, "unix socket path too long", "path=\"%s\" max=%zu", path,
            sizeof(((struct sockaddr_un *)0)->sun_path) - 1);
    return -1;
  }
  struct stat sb;
  if (lstat(path, &sb) == 0) { /* stale socket from a crash, or a live daemon? */
    if (!S_ISSOCK(sb.st_mode)) {
      ewd_log(EWD_LOG_ERROR, "refusing to replace a non-socket", "path=\"%s\"", path);
      return -1;
    }
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
    int live = fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0;
    if (fd >= 0)
      close(fd);
    if (live) {
      ewd_log(EWD_LOG_ERROR, "another daemon is listening", "path=\"%s\"", path);
      return -1;
    }
    unlink(path);
  }
  uv_pipe_t *p = malloc(sizeof *p);
  if (!p || uv_pipe_init(srv->loop, p, 0) != 0) {
    free(p);
    return -1;
  }
  p->data = srv;
  int rc = uv_pipe_bind(p, path);
  if (rc == 0)
    rc = uv_listen((uv_stream_t *)p, 1024, on_connection);
  if (rc != 0) {
    ewd_log(EWD_LOG_ERROR, "cannot listen", "address=unix:%s error=\"%s\"", path, uv_strerror(rc));
    uv_close((uv_handle_t *)p, (uv_close_cb)free);
    return -1;
  }
  chmod(path, 0660);
  srv->listeners[srv->nlisteners++] = (uv_handle_t *)p;
  char **np = realloc(srv->unix_paths, (srv->nunix + 1) * sizeof *np);
  if (np) {
    srv->unix_paths = np;
    srv->unix_paths[srv->nunix++] = strdup(path);
  }
  ewd_log(EWD_LOG_INFO, "listening", "address=unix:%s", path);
  return 0;
}

static int listen_tcp(ewd_server_t *srv, const char *hostport) {
  char host[256];
  const char *colon = strrchr(hostport, ':');
  if (!colon || colon == hostport || (size_t)(colon - hostport) >= sizeof host) {
    ewd_log(EWD_LOG_ERROR, "bad tcp address (want tcp:HOST:PORT)", "address=\"%s\"", hostport);
    return -1;
  }
  memcpy(host, hostport, (size_t)(colon - hostport));
  host[colon - hostport] = 0;
  char *end;
  long port = strtol(colon + 1, &end, 10);
  if (*end || port < 0 || port > 65535) {
    ewd_log(EWD_LOG_ERROR, "bad tcp port", "address=\"%s\"", hostport);
    return -1;
  }
  struct sockaddr_storage ss;
  char *h = host;
  size_t hl = strlen(h);
  if (hl > 1 && h[0] == '[' && h[hl - 1] == ']') { /* [::1] */
    h[hl - 1] = 0;
    h++;
  }
  if (uv_ip4_addr(h, (int)port, (struct sockaddr_in *)&ss) != 0 &&
      uv_ip6_addr(h, (int)port, (struct sockaddr_in6 *)&ss) != 0) {
    ewd_log(EWD_LOG_ERROR, "bad tcp host (use a numeric IPv4 or [IPv6] address)", "address=\"%s\"",
            hostport);
    return -1;
  }
  uv_tcp_t *t = malloc(sizeof *t);
  if (!t || uv_tcp_init(srv->loop, t) != 0) {
    free(t);
    return -1;
  }
  t->data = srv;
  int rc = uv_tcp_bind(t, (struct sockaddr *)&ss, 0);
  if (rc == 0)
    rc = uv_listen((uv_stream_t *)t, 1024, on_connection);
  if (rc != 0) {
    ewd_log(EWD_LOG_ERROR, "cannot listen", "address=tcp:%s error=\"%s\"", hostport,
            uv_strerror(rc));
    uv_close((uv_handle_t *)t, (uv_close_cb)free);
    return -1;
  }
  struct sockaddr_storage bound;
  int blen = sizeof bound;
  char name[64] = "?";
  int bport = (int)port;
  if (uv_tcp_getsockname(t, (struct sockaddr *)&bound, &blen) == 0) {
    if (bound.ss_family == AF_INET) {
      uv_ip4_name((struct sockaddr_in *)&bound, name, sizeof name);
      bport = ntohs(((struct sockaddr_in *)&bound)->sin_port);
    } else {
      uv_ip6_name((struct sockaddr_in6 *)&bound, name, sizeof name);
      bport = ntohs(((struct sockaddr_in6 *)&bound)->sin6_port);
    }
  }
  srv->listeners[srv->nlisteners++] = (uv_handle_t *)t;
  ewd_log(EWD_LOG_INFO, "listening", "address=tcp:%s:%d", name, bport);
  return 0;
}

int ewd_server_listen(ewd_server_t *srv, const char *spec) {
  uv_handle_t **nl = realloc(srv->listeners, (srv->nlisteners + 1) * sizeof *nl);
  if (!nl)
    return -1;
  srv->listeners = nl;
  if (strncmp(spec, "unix:", 5) == 0)
    return listen_unix(srv, spec + 5);
  if (strncmp(spec, "tcp:", 4) == 0)
    return listen_tcp(srv, spec + 4);
  ewd_log(EWD_LOG_ERROR, "bad listen address (want unix:PATH or tcp:HOST:PORT)", "address=\"%s\"",
          spec);
  return -1;
}

/* Graceful stop, step one: no new connections, no new reads; buffered messages and queued
 * jobs still complete (main.c waits for them, then closes the rest). */
void ewd_server_stop(ewd_server_t *srv) {
  srv->stopping = true;
  for (size_t i = 0; i < srv->nlisteners; i++)
    uv_close(srv->listeners[i], (uv_close_cb)free);
  srv->nlisteners = 0;
  for (size_t i = 0; i < srv->nunix; i++) {
    unlink(srv->unix_paths[i]);
    free(srv->unix_paths[i]);
  }
  srv->nunix = 0;
  for (ewd_conn_t *c = srv->conns; c; c = c->next)
    if (c->reading) {
      uv_read_stop(&c->h.stream);
      c->reading = false;
    }
}
