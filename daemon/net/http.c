/* http.c — the HTTP/1.1 side of a connection (proto/PROTOCOL.md, HTTP): GET /metrics (Prometheus text
 * exposition, expo.c), GET /healthz. Requests are parsed by http-parser (Debian
 * libhttp-parser-dev: the parser Node.js used for a decade, small, callback-driven over any byte
 * source, so it runs on the connection buffers conn.c already bounds; llhttp, its successor, is
 * not packaged in Debian 12).
 *
 * Bounds: the request line and headers together at most HTTP_MAX_HEAD bytes and HTTP_MAX_HEADERS
 * headers (431), no request body (413), GET and HEAD only (405); a request must arrive whole
 * within partial_timeout and a keep-alive connection idle for HTTP_IDLE_S is closed (slow
 * clients); HTTP connections are at most http_max_connections, apart from max_connections'
 * RPC share. Requests on one connection are answered in order, one at a time; a response is
 * built whole on the loop and handed to the socket, and the next request is read once the
 * previous answer is written. With an auth token set, every path but /healthz needs
 * `Authorization: Bearer TOKEN` (compared in constant time), else 401. */
#include "net/net.h"
#include "cmd/cmd.h"

#include <http_parser.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define HTTP_MAX_HEAD 16384
#define HTTP_MAX_HEADERS 64
#define HTTP_MAX_URL 2048
#define HTTP_MAX_AUTH 512

typedef struct {
  http_parser p;
  size_t head;          /* request-line and header bytes so far */
  unsigned nheaders;
  bool in_value;        /* the last callback was a header value */
  char field[16];       /* the current header's name (enough to recognise Authorization) */
  size_t field_len;
  bool is_auth;
  char url[HTTP_MAX_URL + 1];
  size_t url_len;
  char auth[HTTP_MAX_AUTH + 1];
  size_t auth_len;
  int fail;             /* a status to answer with, then close (431, 413, 414) */
  bool complete;        /* a whole request is parsed (the parser is paused) */
  bool close_after;     /* close once the answer is written */
} http_t;

static int grow_head(http_t *h, size_t n) {
  h->head += n;
  if (h->head > HTTP_MAX_HEAD) {
    h->fail = 431;
    return 1;
  }
  return 0;
}

static int on_begin(http_parser *p) {
  ewd_conn_t *c = p->data;
  http_t *h = c->pstate;
  h->head = h->nheaders = 0;
  h->in_value = false;
  h->field_len = h->url_len = h->auth_len = 0;
  h->is_auth = false;
  h->url[0] = h->auth[0] = 0;
  c->partial_since = ewd_now();
  return 0;
}

static int on_url(http_parser *p, const char *at, size_t n) {
  http_t *h = ((ewd_conn_t *)p->data)->pstate;
  if (grow_head(h, n))
    return 1;
  if (h->url_len + n > HTTP_MAX_URL) {
    h->fail = 414;
    return 1;
  }
  memcpy(h->url + h->url_len, at, n);
  h->url[h->url_len += n] = 0;
  return 0;
}

static int on_field(http_parser *p, const char *at, size_t n) {
  http_t *h = ((ewd_conn_t *)p->data)->pstate;
  if (grow_head(h, n))
    return 1;
  if (h->in_value || h->nheaders == 0) { /* a new header */
    if (++h->nheaders > HTTP_MAX_HEADERS) {
      h->fail = 431;
      return 1;
    }
    h->in_value = false;
    h->field_len = 0;
  }
  for (size_t i = 0; i < n && h->field_len < sizeof h->field - 1; i++)
    h->field[h->field_len++] = at[i];
  h->field[h->field_len] = 0;
  return 0;
}

static int on_value(http_parser *p, const char *at, size_t n) {
  http_t *h = ((ewd_conn_t *)p->data)->pstate;
  if (grow_head(h, n))
    return 1;
  if (!h->in_value) {
    h->in_value = true;
    h->is_auth = !strcasecmp(h->field, "authorization");
  }
  if (h->is_auth) {
    if (h->auth_len + n > HTTP_MAX_AUTH) {
      h->fail = 431;
      return 1;
    }
    memcpy(h->auth + h->auth_len, at, n);
    h->auth[h->auth_len += n] = 0;
  }
  return 0;
}

static int on_headers_complete(http_parser *p) {
  http_t *h = ((ewd_conn_t *)p->data)->pstate;
  if ((p->flags & F_CHUNKED) || (p->content_length > 0 && p->content_length != ULLONG_MAX)) {
    h->fail = 413; /* no method here takes a body */
    return -1;
  }
  return 0;
}

static int on_complete(http_parser *p) {
  ewd_conn_t *c = p->data;
  http_t *h = c->pstate;
  h->complete = true;
  c->partial_since = 0;
  http_parser_pause(p, 1); /* one request at a time */
  return 0;
}

static const http_parser_settings settings = {
    .on_message_begin = on_begin,
    .on_url = on_url,
    .on_header_field = on_field,
    .on_header_value = on_value,
    .on_headers_complete = on_headers_complete,
    .on_message_complete = on_complete,
};

static const char *reason(int status) {
  switch (status) {
  case 200: return "OK";
  case 400: return "Bad Request";
  case 401: return "Unauthorized";
  case 404: return "Not Found";
  case 405: return "Method Not Allowed";
  case 413: return "Payload Too Large";
  case 414: return "URI Too Long";
  case 431: return "Request Header Fields Too Large";
  case 500: return "Internal Server Error";
  default: return "Error";
  }
}

void ewd_http_respond(ewd_conn_t *c, int status, const char *type, char *body, size_t len,
                    const char *extra) {
  http_t *h = c->pstate;
  bool head_only = h->p.method == HTTP_HEAD && !h->fail;
  char hdr[512];
  int n = snprintf(hdr, sizeof hdr,
                   "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                   "Cache-Control: no-store\r\nConnection: %s\r\n%s\r\n",
                   status, reason(status), type, len, h->close_after ? "close" : "keep-alive",
                   extra ? extra : "");
  size_t total = (size_t)n + (head_only ? 0 : len);
  char *out;
  if (body && len && !head_only) { /* the headers go in front of the body, in its allocation:
                                      a large answer is never held twice */
    out = realloc(body, total);
    if (!out)
      free(body);
    else
      memmove(out + n, out, len);
  } else {
    free(body); /* HEAD, or nothing to send */
    out = malloc(total ? total : 1);
  }
  if (!out) {
    ewd_conn_close(c, "out_of_memory");
    return;
  }
  memcpy(out, hdr, (size_t)n);
  ewd_conn_send(c, out, total);
}

static void respond(ewd_conn_t *c, int status, const char *type, char *body, size_t len,
                    const char *extra) {
  ewd_http_respond(c, status, type, body, len, extra);
}

static void respond_text(ewd_conn_t *c, int status, const char *text, const char *extra) {
  size_t n = strlen(text);
  char *b = malloc(n + 1);
  if (b)
    memcpy(b, text, n);
  respond(c, status, "text/plain; charset=utf-8", b, b ? n : 0, extra);
}

static bool authorised(ewd_conn_t *c, const http_t *h) {
  ewd_server_t *srv = c->srv;
  if (!srv->token)
    return true;
  if (h->auth_len != 7 + srv->token_len || strncasecmp(h->auth, "Bearer ", 7) != 0)
    return false;
  unsigned char diff = 0; /* constant time over the token's length */
  for (size_t i = 0; i < srv->token_len; i++)
    diff |= (unsigned char)(h->auth[7 + i] ^ srv->token[i]);
  return diff == 0;
}

static void serve(ewd_conn_t *c, http_t *h) {
  ewd_server_t *srv = c->srv;
  srv->stat[EWD_STAT_http_requests]++;
  h->close_after = h->close_after || !http_should_keep_alive(&h->p) || srv->stopping;
  char path[HTTP_MAX_URL + 1];
  snprintf(path, sizeof path, "%s", h->url);
  char *q = strchr(path, '?');
  if (q)
    *q++ = 0;
  if (h->p.method != HTTP_GET && h->p.method != HTTP_HEAD) {
    respond_text(c, 405, "only GET and HEAD\n", "Allow: GET, HEAD\r\n");
    return;
  }
  if (!strcmp(path, "/healthz")) {
    respond_text(c, 200, "ok\n", NULL);
    return;
  }
  const ewd_web_asset_t *a = ewd_web_asset(!strcmp(path, "/") ? "/index.html" : path);
  if (a) { /* the page's files (no data: open like /healthz), embedded at build time */
    char *body = malloc(a->len ? a->len : 1);
    if (!body) {
      respond_text(c, 500, "out of memory\n", NULL);
      return;
    }
    memcpy(body, a->data, a->len);
    respond(c, 200, a->type, body, a->len, NULL);
    return;
  }
  if (!authorised(c, h)) {
    srv->stat[EWD_STAT_auth_failures]++;
    ewd_count_error(srv, EW_EAUTH);
    respond_text(c, 401, "this daemon needs Authorization: Bearer TOKEN (its auth token file)\n",
                 "WWW-Authenticate: Bearer realm=\"eigenwatch\"\r\n");
    return;
  }
  if (!strcmp(path, "/metrics")) {
    size_t len = 0;
    char *body = ewd_expo_metrics(srv, &len);
    if (!body) {
      respond_text(c, 500, "out of memory\n", NULL);
      return;
    }
    respond(c, 200, "text/plain; version=0.0.4; charset=utf-8", body, len, NULL);
    return;
  }
  if (ewd_api_is_path(path)) {
    ewd_api_serve(c, path, q);
    return;
  }
  respond_text(c, 404, "not found (GET /, /api/v1/METHOD, /metrics, /healthz)\n", NULL);
}

static void http_process(ewd_conn_t *c) {
  ewd_server_t *srv = c->srv;
  if (c->closing)
    return;
  http_t *h = c->pstate;
  if (!h) {
    if (!(h = c->pstate = calloc(1, sizeof *h))) {
      ewd_conn_close(c, "out_of_memory");
      return;
    }
    http_parser_init(&h->p, HTTP_REQUEST);
    h->p.data = c;
  }
  /* one answer in flight at a time: the next request is read once it is written */
  while (!c->closing && !h->close_after && !c->job && c->out_pending == 0 && c->off < c->len) {
    size_t n = http_parser_execute(&h->p, &settings, (const char *)c->buf + c->off,
                                   c->len - c->off);
    enum http_errno e = HTTP_PARSER_ERRNO(&h->p);
    ewd_conn_consume(c, n);
    if (h->complete) {
      h->complete = false;
      http_parser_pause(&h->p, 0);
      serve(c, h);
    } else if (e != HPE_OK) {
      int status = h->fail ? h->fail : 400;
      srv->stat[EWD_STAT_http_errors]++;
      ewd_log(EWD_LOG_DEBUG, "bad HTTP request", "conn=%llu status=%d error=%s",
              (unsigned long long)c->id, status, http_errno_name(e));
      h->close_after = true;
      h->fail = status;
      respond_text(c, status, status == 400 ? "malformed HTTP request\n" : "request too large\n",
                   NULL);
    } else {
      break; /* a partial request: wait for more */
    }
  }
  if (!c->closing && !c->job && c->out_pending == 0 && (h->close_after || c->eof))
    ewd_conn_close(c, h->close_after ? "http_close" : "eof");
  else
    ewd_conn_update_reading(c);
}

static void http_release(ewd_conn_t *c) {
  free(c->pstate);
  c->pstate = NULL;
}

static void http_reply(ewd_conn_t *c, uint32_t msgid, const ewp_value_t *result) {
  (void)msgid; /* one request at a time: the answer is the connection's current one */
  ewd_api_result(c, result);
}

static void http_reply_error(ewd_conn_t *c, uint32_t msgid, int code, const char *message) {
  (void)msgid;
  ewd_api_error(c, code, message);
}

const ewd_proto_vt_t ewd_http_proto = {"http", http_process, http_release, http_reply,
                                       http_reply_error, true};
