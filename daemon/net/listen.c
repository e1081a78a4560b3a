/* listen.c — listeners (Unix and TCP sockets through libuv) and the socket side of a connection:
 * accept, read into the connection's budgeted buffer, write replies, close.
 *
 * Access (README, "Who can talk to it"): the Unix socket is created 0660; TCP on loopback is trusted like it unless
 * an auth token is set, and then every TCP connection must `auth` first. A TCP address that is
 * not loopback is refused at start without a token. An accept that fails (out of file
 * descriptors, out of memory) is counted and logged (at most once a second), never silent. */
#include "net/net.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

typedef struct {
  uv_write_t req;
  ewd_conn_t *conn;
  char *data;
  size_t len;
} write_req_t;

/* ---- the socket io vtable ---- */


/* Adds one msgpack-RPC address to the list the ready line shows (ewd_net_addresses). */
static void note_address(ewd_net_t *net, const char *scheme, const char *where) {
  size_t n = strlen(net->addresses);
  if (n + 1 < sizeof net->addresses)
    snprintf(net->addresses + n, sizeof net->addresses - n, "%s%s%s", n ? " " : "", scheme,
             where);
}
static void on_write(uv_write_t *req, int status) {
  write_req_t *w = (write_req_t *)req;
  ewd_conn_t *c = w->conn;
  size_t len = w->len;
  free(w->data);
  free(w);
  ewd_conn_wrote(c, len, status);
  ewd_conn_unref(c);
}

static void sock_write(ewd_conn_t *c, char *data, size_t len) {
  write_req_t *w = malloc(sizeof *w);
  if (!w) {
    free(data);
    ewd_conn_wrote(c, len, UV_ENOMEM);
    return;
  }
  w->conn = c;
  w->data = data;
  w->len = len;
  ewd_conn_ref(c);
  uv_buf_t b = uv_buf_init(data, (unsigned)len);
  int rc = uv_write(&w->req, &c->h.stream, &b, 1, on_write);
  if (rc != 0) {
    free(data);
    free(w);
    ewd_conn_wrote(c, len, rc);
    ewd_conn_unref(c);
  }
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  ewd_conn_t *c = h->data;
  uint8_t *p;
  size_t avail;
  (void)suggested;
  ewd_conn_alloc(c, &p, &avail);
  *buf = uv_buf_init((char *)p, (unsigned)(avail > UINT32_MAX ? UINT32_MAX : avail));
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  ewd_conn_t *c = s->data;
  (void)buf;
  if (nread > 0) {
    ewd_conn_received(c, (size_t)nread);
  } else if (nread == UV_ENOBUFS) { /* waiting for receive budget */
    ewd_conn_update_reading(c);
  } else if (nread < 0) { /* EOF or an error: the peer is gone */
    ewd_conn_eof(c);
  }
}

static void sock_set_reading(ewd_conn_t *c, bool on) {
  if (on) {
    if (uv_read_start(&c->h.stream, on_alloc, on_read) != 0)
      c->reading = false;
  } else {
    uv_read_stop(&c->h.stream);
  }
}

static void on_closed(uv_handle_t *h) { ewd_conn_closed(h->data); }

static void sock_close(ewd_conn_t *c) { uv_close(&c->h.handle, on_closed); }

static const ewd_io_vt_t sock_io = {sock_write, sock_set_reading, sock_close};

/* ---- accept ---- */

static void accept_failed(ewd_server_t *srv, int err) {
  srv->stat[EWD_STAT_accept_errors]++;
  double now = ewd_now();
  if (now - srv->net->last_accept_log >= 1.0) {
    srv->net->last_accept_log = now;
    ewd_log(EWD_LOG_WARN, "accept failed, connection dropped", "error=\"%s\" accept_errors=%llu",
            uv_strerror(err), (unsigned long long)srv->stat[EWD_STAT_accept_errors]);
  }
}

#define HTTP_IDLE_S 30.0
#define HTTP_MAX_BUFFER ((size_t)64 * 1024)

static void accept_on(uv_stream_t *server, int status, const ewd_proto_vt_t *proto) {
  ewd_server_t *srv = server->data;
  if (status < 0) {
    accept_failed(srv, status);
    return;
  }
  ewd_conn_t *c = ewd_conn_new(srv, &sock_io, proto);
  if (!c) { /* accept and close it so the backlog does not spin */
    uv_tcp_t tmp;
    accept_failed(srv, UV_ENOMEM);
    if (server->type == UV_TCP && uv_tcp_init(srv->loop, &tmp) == 0) {
      if (uv_accept(server, (uv_stream_t *)&tmp) == 0)
        uv_close((uv_handle_t *)&tmp, NULL);
    }
    return;
  }
  c->tcp = server->type == UV_TCP;
  c->authed = srv->token == NULL || !c->tcp;
  if (proto == &ewd_http_proto) {
    c->http = true;
    srv->net->nhttp++;
    c->idle_limit = HTTP_IDLE_S;
    c->max_buffer = HTTP_MAX_BUFFER;
  }
  int rc = c->tcp ? uv_tcp_init(srv->loop, &c->h.tcp) : uv_pipe_init(srv->loop, &c->h.pipe, 0);
  if (rc != 0) {
    accept_failed(srv, rc);
    c->closing = true;
    ewd_conn_closed(c);
    return;
  }
  c->h.handle.data = c;
  if ((rc = uv_accept(server, &c->h.stream)) != 0) {
    accept_failed(srv, rc);
    ewd_conn_close(c, "accept_failed");
    return;
  }
  bool over = c->http ? srv->net->nhttp > srv->cfg.http_max_connections
                      : srv->net->nconns - srv->net->nhttp > srv->cfg.max_connections;
  if (over || srv->stopping) {
    ewd_log(EWD_LOG_WARN, "connection refused", "reason=%s connections=%zu",
            srv->stopping ? "stopping" : c->http ? "http_max_connections" : "max_connections",
            (c->http ? srv->net->nhttp : srv->net->nconns - srv->net->nhttp) - 1);
    srv->stat[EWD_STAT_connections_refused]++;
    ewd_count_error(srv, EW_ELIMIT);
    ewd_conn_close(c, "refused");
    return;
  }
  if (c->tcp)
    uv_tcp_nodelay(&c->h.tcp, 1);
  srv->stat[EWD_STAT_connections_total]++;
  ewd_conn_update_reading(c);
}

static void on_connection(uv_stream_t *server, int status) {
  accept_on(server, status, &ewd_rpc_proto);
}

static void on_http_connection(uv_stream_t *server, int status) {
  accept_on(server, status, &ewd_http_proto);
}

/* ---- listeners ---- */

static int add_listener(ewd_server_t *srv, uv_handle_t *h) {
  ewd_net_t *net = srv->net;
  uv_handle_t **nl = realloc(net->listeners, (net->nlisteners + 1) * sizeof *nl);
  if (!nl)
    return -1;
  net->listeners = nl;
  net->listeners[net->nlisteners++] = h;
  return 0;
}

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
  if (rc != 0 || add_listener(srv, (uv_handle_t *)p) != 0) {
    ewd_log(EWD_LOG_ERROR, "cannot listen", "address=unix:%s error=\"%s\"", path,
            uv_strerror(rc ? rc : UV_ENOMEM));
    uv_close((uv_handle_t *)p, (uv_close_cb)free);
    return -1;
  }
  chmod(path, 0660);
  ewd_net_t *net = srv->net;
  char **np = realloc(net->unix_paths, (net->nunix + 1) * sizeof *np);
  if (np) {
    net->unix_paths = np;
    net->unix_paths[net->nunix++] = strdup(path);
  }
  ewd_log(EWD_LOG_INFO, "listening", "address=unix:%s", path);
  note_address(net, "unix:", path);
  return 0;
}

bool ewd_host_is_loopback(const char *host) {
  struct in_addr a4;
  struct in6_addr a6;
  if (inet_pton(AF_INET, host, &a4) == 1)
    return (ntohl(a4.s_addr) >> 24) == 127;
  if (inet_pton(AF_INET6, host, &a6) == 1) {
    if (IN6_IS_ADDR_LOOPBACK(&a6))
      return true;
    if (IN6_IS_ADDR_V4MAPPED(&a6))
      return a6.s6_addr[12] == 127;
  }
  return false;
}

/* The bound address of a TCP listener in *name and its port (-1 when unknown). */
static int tcp_name(uv_tcp_t *t, char *name, size_t cap, bool *v6) {
  struct sockaddr_storage bound;
  int blen = sizeof bound;
  snprintf(name, cap, "?");
  *v6 = false;
  if (uv_tcp_getsockname(t, (struct sockaddr *)&bound, &blen) != 0)
    return -1;
  *v6 = bound.ss_family == AF_INET6;
  if (bound.ss_family == AF_INET) {
    uv_ip4_name((struct sockaddr_in *)&bound, name, cap);
    return ntohs(((struct sockaddr_in *)&bound)->sin_port);
  }
  uv_ip6_name((struct sockaddr_in6 *)&bound, name, cap);
  return ntohs(((struct sockaddr_in6 *)&bound)->sin6_port);
}

static void log_tcp(ewd_server_t *srv, uv_tcp_t *t, bool http, const char *extra) {
  char name[64], addr[96];
  bool v6;
  int bport = tcp_name(t, name, sizeof name, &v6);
  if (http)
    snprintf(addr, sizeof addr, "http://%s%s%s:%d/", v6 ? "[" : "", name, v6 ? "]" : "", bport);
  else
    snprintf(addr, sizeof addr, "tcp:%s:%d", name, bport);
  ewd_log(EWD_LOG_INFO, "listening", "address=%s auth=%s%s", addr,
          srv->token ? "token" : "none", extra);
  if (http && !srv->net->page[0])
    snprintf(srv->net->page, sizeof srv->net->page, "%s", addr);
  else if (!http)
    note_address(srv->net, "", addr);
}

static int listen_tcp(ewd_server_t *srv, const char *hostport, bool http) {
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
  if (!ewd_host_is_loopback(h) && !srv->token) {
    ewd_log(EWD_LOG_ERROR,
            http ? "refusing to serve HTTP on a non-loopback address without --auth-token-file: "
                   "anyone who can reach it could read every stream's values"
                 : "refusing to listen on a non-loopback TCP address without --auth-token-file: "
                   "anyone who can reach it could create, read and drop streams",
            "address=%s%s", http ? "http://" : "tcp:", hostport);
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
    rc = uv_listen((uv_stream_t *)t, 1024, http ? on_http_connection : on_connection);
  if (rc != 0 || add_listener(srv, (uv_handle_t *)t) != 0) {
    ewd_log(EWD_LOG_ERROR, "cannot listen", "address=%s%s error=\"%s\"",
            http ? "http://" : "tcp:", hostport,
            uv_strerror(rc ? rc : UV_ENOMEM));
    uv_close((uv_handle_t *)t, (uv_close_cb)free);
    return -1;
  }
  log_tcp(srv, t, http, "");
  return 0;
}

int ewd_net_listen(ewd_server_t *srv, const char *spec) {
  if (strncmp(spec, "unix:", 5) == 0)
    return listen_unix(srv, spec + 5);
  if (strncmp(spec, "tcp:", 4) == 0)
    return listen_tcp(srv, spec + 4, false);
  ewd_log(EWD_LOG_ERROR, "bad listen address (want unix:PATH or tcp:HOST:PORT)", "address=\"%s\"",
          spec);
  return -1;
}

int ewd_net_listen_http(ewd_server_t *srv, const char *hostport) {
  return listen_tcp(srv, hostport, true);
}

int ewd_net_adopt(ewd_server_t *srv, int fd, bool http) {
  struct sockaddr_storage ss;
  socklen_t sl = sizeof ss;
  int type = 0, listening = 0;
  socklen_t tl = sizeof type, ll = sizeof listening;
  if (getsockname(fd, (struct sockaddr *)&ss, &sl) != 0 ||
      getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &tl) != 0 ||
      getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &ll) != 0 || type != SOCK_STREAM ||
      !listening || (http && ss.ss_family == AF_UNIX) ||
      (ss.ss_family != AF_UNIX && ss.ss_family != AF_INET && ss.ss_family != AF_INET6)) {
    ewd_log(EWD_LOG_ERROR, "an inherited socket is not a listening stream socket this daemon "
            "serves (Unix or TCP; HTTP on TCP only)", "fd=%d http=%s", fd, http ? "yes" : "no");
    return -1;
  }
  uv_stream_t *st;
  int rc;
  if (ss.ss_family == AF_UNIX) {
    uv_pipe_t *p = malloc(sizeof *p);
    if (!p || uv_pipe_init(srv->loop, p, 0) != 0) {
      free(p);
      return -1;
    }
    st = (uv_stream_t *)p;
    rc = uv_pipe_open(p, fd);
  } else {
    char host[INET6_ADDRSTRLEN] = "";
    if (ss.ss_family == AF_INET)
      inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, host, sizeof host);
    else
      inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr, host, sizeof host);
    if (!ewd_host_is_loopback(host) && !srv->token) {
      ewd_log(EWD_LOG_ERROR, "refusing an inherited non-loopback TCP socket without "
              "--auth-token-file: anyone who can reach it could use every stream", "host=%s fd=%d",
              host, fd);
      return -1;
    }
    uv_tcp_t *t = malloc(sizeof *t);
    if (!t || uv_tcp_init(srv->loop, t) != 0) {
      free(t);
      return -1;
    }
    st = (uv_stream_t *)t;
    rc = uv_tcp_open(t, fd);
  }
  st->data = srv;
  if (rc == 0)
    rc = uv_listen(st, 1024, http ? on_http_connection : on_connection);
  if (rc != 0 || add_listener(srv, (uv_handle_t *)st) != 0) {
    ewd_log(EWD_LOG_ERROR, "cannot serve an inherited socket", "fd=%d error=\"%s\"", fd,
            uv_strerror(rc ? rc : UV_ENOMEM));
    uv_close((uv_handle_t *)st, (uv_close_cb)free);
    return -1;
  }
  if (ss.ss_family == AF_UNIX) { /* systemd owns the path: it is not unlinked at stop */
    ewd_log(EWD_LOG_INFO, "listening", "address=unix:%s inherited=fd%d",
            ((struct sockaddr_un *)&ss)->sun_path, fd);
    note_address(srv->net, "unix:", ((struct sockaddr_un *)&ss)->sun_path);
  } else {
    char extra[32];
    snprintf(extra, sizeof extra, " inherited=fd%d", fd);
    log_tcp(srv, (uv_tcp_t *)st, http, extra);
  }
  return 0;
}

void ewd_net_stop(ewd_server_t *srv) {
  ewd_net_t *net = srv->net;
  for (size_t i = 0; i < net->nlisteners; i++)
    uv_close(net->listeners[i], (uv_close_cb)free);
  net->nlisteners = 0;
  for (size_t i = 0; i < net->nunix; i++) {
    unlink(net->unix_paths[i]);
    free(net->unix_paths[i]);
  }
  net->nunix = 0;
  for (ewd_conn_t *c = net->conns; c; c = c->next)
    ewd_conn_update_reading(c);
}

void ewd_net_free(ewd_server_t *srv) {
  ewd_net_t *net = srv->net;
  if (!net)
    return;
  free(net->listeners);
  free(net->unix_paths);
  free(net);
  srv->net = NULL;
}

const char *ewd_net_addresses(const ewd_server_t *srv) { return srv->net->addresses; }

const char *ewd_net_page(const ewd_server_t *srv) { return srv->net->page; }
