/* rpc.c — msgpack-RPC on a connection: bytes → skim → typed decode (proto/) → ordering → the
 * handlers (cmd/), and replies back out.
 *
 * Ordering: messages of one connection take effect in the order sent. A decoded ingest
 * notification (a method flagged EWP_M_PIPELINE, sent as a notification) is handed to its stream
 * while the connection reads on; any other message is a barrier and waits — decoded and parked,
 * reads paused — until the connection's earlier jobs are done, and while a request's job runs
 * later messages wait, so replies leave in request order. The decision is made on the decoded
 * request, never on sniffed bytes. A connection therefore has at most one heavy job queued.
 *
 * Budgets: before each request is answered the connection's unsent output is checked against
 * conn_out_cap (per reply, not per burst); past it the connection is served again only once the
 * peer reads. When the peer is gone (EOF), messages already received that change state still
 * take effect; answer-only ones (EWP_M_ANSWER) are skipped and counted.
 *
 * Framing errors (the bytes cannot be framed within the limits, or are not msgpack) are
 * answered with msgid 0 and close the connection. HTTP sent to this port gets a plain 400 that
 * says what the port is. With an auth token, a TCP connection's first request must be `auth`. */
#include "net/net.h"
#include "cmd/cmd.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* proto's codes are named by the library's suffixes (EWP_CODE_MAP): the same code by name. */
int ewd_rpc_code(ewp_code_t c) {
  switch (c) {
#define EWD__XX(s)                                                                                \
  case EWP_E##s:                                                                                  \
    return EW_E##s;
    EWP_CODE_MAP(EWD__XX)
#undef EWD__XX
  default: return EW_EINTERNAL;
  }
}

/* ---- replies ---- */

static void send_sbuffer(ewd_conn_t *c, msgpack_sbuffer *sb) {
  char *data = sb->data;
  size_t len = sb->size;
  sb->data = NULL;
  sb->size = sb->alloc = 0;
  ewd_conn_send(c, data, len);
}

static void rpc_reply(ewd_conn_t *c, uint32_t msgid, const ewp_value_t *result) {
  msgpack_sbuffer sb;
  msgpack_sbuffer_init(&sb);
  ewp_encode_result(&sb, msgid, result);
  send_sbuffer(c, &sb);
}

static void rpc_reply_error(ewd_conn_t *c, uint32_t msgid, int code, const char *message) {
  msgpack_sbuffer sb;
  msgpack_sbuffer_init(&sb);
  ewp_encode_error(&sb, msgid, ew_err_name(code), message);
  send_sbuffer(c, &sb);
}

void ewd_rpc_result(ewd_conn_t *c, uint32_t msgid, bool notify, const ewp_value_t *result) {
  if (notify || !c || c->closing)
    return;
  c->proto->reply(c, msgid, result);
}

void ewd_rpc_error(ewd_server_t *srv, ewd_conn_t *c, uint32_t msgid, bool notify, int code,
                   const char *fmt, ...) {
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  ewd_count_error(srv, code);
  if (ewd_log_level >= EWD_LOG_DEBUG) {
    char esc[600];
    ewd_log(EWD_LOG_DEBUG, "request failed", "conn=%llu code=%s detail=\"%s\"",
            c ? (unsigned long long)c->id : 0ULL, ew_err_name(code),
            ewp_escape(esc, sizeof esc, msg, strlen(msg)));
  }
  if (notify || !c || c->closing)
    return;
  c->proto->reply_error(c, msgid, code, msg);
}

/* ---- notifications ---- */

void ewd_rpc_notify(ewd_conn_t *c, const char *method, const ewp_value_t *v) {
  ewd_server_t *srv = c->srv;
  if (c->closing)
    return;
  if (c->out_mem > srv->cfg.conn_out_cap) {
    srv->stat[EWD_STAT_subscribers_dropped]++;
    ewd_log(EWD_LOG_WARN, "subscriber disconnected: it does not read its notifications",
            "conn=%llu unsent_bytes=%zu held_bytes=%zu conn_out_cap=%llu",
            (unsigned long long)c->id, c->out_pending, c->out_mem,
            (unsigned long long)srv->cfg.conn_out_cap);
    ewd_conn_close(c, "subscriber over conn_out_cap");
    return;
  }
  msgpack_sbuffer sb;
  msgpack_sbuffer_init(&sb);
  msgpack_packer pk;
  msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
  msgpack_pack_array(&pk, 3);
  msgpack_pack_uint8(&pk, 2);
  msgpack_pack_str(&pk, strlen(method));
  msgpack_pack_str_body(&pk, method, strlen(method));
  msgpack_pack_array(&pk, 1);
  ewp_pack_value(&pk, v);
  srv->stat[EWD_STAT_notifications_sent]++;
  send_sbuffer(c, &sb);
}

/* ---- holds ---- */

void ewd_rpc_hold(ewd_conn_t *c, ewd_job_t *job, bool pipelined) {
  ewd_conn_ref(c);
  if (pipelined)
    c->inflight++;
  else
    c->job = job;
}

void ewd_rpc_job_done(ewd_conn_t *c, bool pipelined) {
  if (pipelined)
    c->inflight--;
  else
    c->job = NULL;
  if (!c->closing)
    c->proto->process(c);
  ewd_conn_unref(c);
}

/* ---- framing ---- */

static void framing_error(ewd_conn_t *c, int code, const char *detail) {
  ewd_server_t *srv = c->srv;
  srv->stat[EWD_STAT_framing_errors]++;
  ewd_log(EWD_LOG_WARN, "framing error, closing connection", "conn=%llu reason=\"%s\"",
          (unsigned long long)c->id, detail);
  ewd_rpc_error(srv, c, 0, false, code, "%s; the connection will be closed", detail);
  ewd_conn_consume(c, c->len - c->off);
  c->eof = true; /* nothing more is read; close once the reply is out */
  atomic_store(&c->gone, true);
}

/* HTTP's request line starts with an upper-case token and a space; no msgpack-RPC message does
 * (its first byte is an array header). Returns 1 (HTTP), 0 (not), -1 (too few bytes to say). */
static int looks_like_http(const uint8_t *b, size_t n) {
  size_t i = 0;
  while (i < n && i < 8 && b[i] >= 'A' && b[i] <= 'Z')
    i++;
  if (i == 0)
    return 0;
  if (i == n)
    return i < 8 ? -1 : 0;
  return b[i] == ' ' && i >= 3 ? 1 : 0;
}

static void answer_http(ewd_conn_t *c) {
  static const char body[] =
      "This is eigenwatchd's msgpack-RPC port: it speaks msgpack-RPC (proto/PROTOCOL.md), not "
      "HTTP.\nPrometheus /metrics and the web page are served on the HTTP listener (--http "
      "HOST:PORT, default 127.0.0.1:7701).\n";
  char *resp = malloc(512);
  if (resp) {
    int n = snprintf(resp, 512, "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; "
                     "charset=utf-8\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n%s",
                     sizeof body - 1, body);
    ewd_conn_send(c, resp, (size_t)n);
  }
  c->srv->stat[EWD_STAT_http_on_rpc_port]++;
  ewd_log(EWD_LOG_INFO, "HTTP request on the msgpack-RPC port answered 400", "conn=%llu",
          (unsigned long long)c->id);
  ewd_conn_consume(c, c->len - c->off);
  c->eof = true;
  atomic_store(&c->gone, true);
}

/* ---- processing ---- */

static bool can_dispatch(const ewd_conn_t *c, const ewp_request_t *req) {
  if (c->job)
    return false;
  if (c->inflight == 0)
    return true;
  return req->kind == EWP_KIND_NOTIFY &&
         (ewp_method_info(req->method)->flags & EWP_M_PIPELINE) &&
         c->queued_bytes < c->srv->cfg.conn_high_water;
}

/* Runs one decoded message and frees it; the caller consumes its bytes. */
static void run(ewd_conn_t *c, ewp_request_t *req) {
  ewd_server_t *srv = c->srv;
  bool notify = req->kind == EWP_KIND_NOTIFY;
  unsigned flags = ewp_method_info(req->method)->flags;
  if (c->eof && (flags & EWP_M_ANSWER)) { /* nobody will read the answer */
    srv->stat[EWD_STAT_jobs_skipped]++;
  } else if (!c->authed && !(flags & EWP_M_PREAUTH)) {
    srv->stat[EWD_STAT_auth_failures]++;
    ewd_log(EWD_LOG_WARN, "unauthenticated request refused, closing connection", "conn=%llu",
            (unsigned long long)c->id);
    ewd_rpc_error(srv, c, req->msgid, notify, EW_EAUTH,
                  "this connection must authenticate first: send auth {\"token\": ...} with the "
                  "daemon's token; the connection will be closed");
    c->eof = true;
    atomic_store(&c->gone, true);
  } else {
    ewd_call_t call = {.srv = srv, .conn = c, .req = req};
    ewd_cmd_dispatch(&call);
  }
  ewp_request_free(req);
}

static void rpc_process(ewd_conn_t *c) {
  ewd_server_t *srv = c->srv;
  while (!c->closing) {
    if (c->out_mem >= srv->cfg.conn_out_cap) {
      if (!c->out_blocked) {
        c->out_blocked = true;
        srv->stat[EWD_STAT_out_cap_pauses]++;
      }
      break;
    }
    c->out_blocked = false;
    if (c->parked_len) {
      if (!can_dispatch(c, &c->parked))
        break;
      size_t n = c->parked_len;
      c->parked_len = 0;
      run(c, &c->parked);
      ewd_conn_consume(c, n);
      continue;
    }
    if (c->len == c->off) {
      c->partial_since = 0;
      break;
    }
    const uint8_t *b = c->buf + c->off;
    size_t avail = c->len - c->off;
    if (!c->seen_message) {
      int h = looks_like_http(b, avail);
      if (h < 0) {
        if (c->partial_since == 0)
          c->partial_since = ewd_now();
        break;
      }
      if (h > 0) {
        answer_http(c);
        break;
      }
    }
    size_t mlen = 0;
    ew_skim_status_t st = ew_skim(&c->skim, b, avail, &srv->skim, &mlen);
    if (st == EW_SKIM_NEED_MORE) {
      if (c->partial_since == 0)
        c->partial_since = ewd_now();
      c->want = ew_skim_need(&c->skim, b, avail); /* reserved at once (conn.c) */
      break;
    }
    c->want = 0;
    ew_skim_reset(&c->skim);
    c->partial_since = 0;
    if (st != EW_SKIM_DONE) {
      framing_error(c, st == EW_SKIM_TOO_LARGE || st == EW_SKIM_TOO_MANY ? EW_ETOOLARGE
                                                                         : EW_EBADREQ,
                    ew_skim_strerror(st));
      break;
    }
    c->seen_message = true;
    ewp_request_t req;
    ewp_error_t err;
    int rc = ewp_decode(b, mlen, &req, &err);
    if (rc == -2) {
      framing_error(c, EW_EBADREQ, err.message);
      break;
    }
    if (rc != 0) {
      if (err.counted)
        srv->stat[err.notify ? EWD_STAT_notifications : EWD_STAT_requests]++;
      ewd_rpc_error(srv, c, err.msgid, err.notify, ewd_rpc_code(err.code), "%s", err.message);
      ewd_conn_consume(c, mlen);
      continue;
    }
    srv->stat[req.kind == EWP_KIND_NOTIFY ? EWD_STAT_notifications : EWD_STAT_requests]++;
    if (!can_dispatch(c, &req)) { /* a barrier: wait for the jobs in flight */
      c->parked = req;
      c->parked_len = mlen;
      break;
    }
    run(c, &req);
    ewd_conn_consume(c, mlen);
  }
  if (c->closing)
    return;
  if (c->eof && !ewd_conn_busy(c)) {
    ewd_conn_close(c, "eof");
    return;
  }
  ewd_conn_update_reading(c);
}

static void rpc_release(ewd_conn_t *c) {
  if (c->parked_len) {
    ewp_request_free(&c->parked);
    c->parked_len = 0;
  }
}

const ewd_proto_vt_t ewd_rpc_proto = {"msgpack-rpc", rpc_process, rpc_release, rpc_reply,
                                      rpc_reply_error, false};
