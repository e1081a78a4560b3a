/* net.h — connections and listeners (owner: the loop thread).
 *
 * A connection has two vtables: `io` says where its bytes come from and go to (a socket through
 * libuv, or memory for the in-process server the fuzz target drives), `proto` says how its bytes
 * are understood (msgpack-RPC, rpc.c; HTTP, http.c). conn.c owns what
 * every protocol needs: the receive buffer under the global receive budget, the output cap,
 * the partial-message and idle timeouts, and the close path. */
#ifndef EWD_NET_H
#define EWD_NET_H

#include "core/conn.h"

typedef struct {
  const char *name;
  /* Handles what the buffer holds, as far as ordering and budgets allow. */
  void (*process)(ewd_conn_t *c);
  /* The connection is closing: free protocol state (a parked request). */
  void (*release)(ewd_conn_t *c);
  /* Answers request msgid with a result or a refusal, in this protocol's own form (msgpack-RPC's
   * response array; HTTP's JSON body and status). The callers (ewd_rpc_result/_error) have
   * already dropped notifications and closing connections. */
  void (*reply)(ewd_conn_t *c, uint32_t msgid, const ewp_value_t *result);
  void (*reply_error)(ewd_conn_t *c, uint32_t msgid, int code, const char *message);
  /* Whether answers travel as JSON (history then builds JSON-shaped arrays). */
  bool json;
} ewd_proto_vt_t;

typedef struct {
  /* Sends data[0, len); takes ownership of data (malloc'ed). conn.c has at most one write
   * outstanding per connection; it ends with ewd_conn_wrote (possibly before write returns). */
  void (*write)(ewd_conn_t *c, char *data, size_t len);
  /* Starts or stops reading. */
  void (*set_reading)(ewd_conn_t *c, bool on);
  /* Closes; must end in ewd_conn_closed(c) (now or from a callback). */
  void (*close)(ewd_conn_t *c);
} ewd_io_vt_t;

struct ewd_conn {
  ewd_server_t *srv;
  const ewd_io_vt_t *io;
  const ewd_proto_vt_t *proto;
  union {
    uv_tcp_t tcp;
    uv_pipe_t pipe;
    uv_stream_t stream;
    uv_handle_t handle;
  } h;                     /* socket io only */
  ewd_conn_t *prev, *next; /* the server's list */
  ewd_conn_t *wait_next;   /* the receive-budget wait list (arrival order) */
  size_t want;             /* bytes the unfinished message at buf[off] needs at least, as far as
                              its declared lengths say (the protocol sets it; 0 = unknown) */
  uint64_t id;
  bool tcp;                /* accepted on a TCP listener */
  bool http;               /* accepted on the HTTP listener (counts in nhttp) */
  void *pstate;            /* the protocol's own state (freed by its release) */
  double idle_limit;       /* seconds idle before closing; 0 = the server's idle_timeout */
  size_t max_buffer;       /* buffered input that stops reading; 0 = max_message_bytes */
  bool authed;             /* may run more than `auth` (always true when no token is set) */
  /* input */
  uint8_t *buf;
  size_t off, len, cap;    /* unconsumed bytes are buf[off, len); cap is charged to the budget */
  ew_skim_t skim;
  double last_activity;    /* monotonic s: a byte in or a reply out */
  double partial_since;    /* monotonic s when the unfinished message started; 0 = none */
  bool reading, budget_wait, closing, eof, seen_message;
  atomic_bool gone;        /* the peer is gone: answer-only jobs skip (read by math threads) */
  /* msgpack-RPC ordering (rpc.c) */
  ewd_job_t *job;          /* the request whose reply the connection waits for */
  size_t inflight;         /* pipelined ingest notifications not yet applied */
  size_t queued_bytes;     /* their payload bytes */
  ewp_request_t parked;    /* a decoded message waiting for the jobs in flight */
  size_t parked_len;       /* its bytes at buf[off, off + parked_len); 0 = none parked */
  bool out_blocked;        /* stopped at conn_out_cap until the client reads */
  /* output (conn.c): one chunk at a time is handed to io->write; what is sent meanwhile waits in
   * outq, small messages copied together into shared chunks */
  struct ewd_out *outq, **outq_tail;
  bool out_inflight;       /* a chunk is with io->write */
  bool out_flushing;       /* out_flush is running (io->write may complete at once) */
  size_t out_inflight_mem; /* what the chunk with io->write holds */
  size_t out_pending;      /* bytes queued or with io->write, not yet written */
  size_t out_mem;          /* the memory they hold: allocations and a fixed cost per write
                              (conn_out_cap is checked against it) */
  int refs;                /* 1 while open + 1 per job that names this connection */
};

struct ewd_net {
  ewd_conn_t *conns;
  size_t nconns;
  size_t nhttp;            /* of them, HTTP connections */
  uint64_t next_id;
  size_t recv_held;        /* Σ cap of connection buffers */
  ewd_conn_t *waiters;     /* connections waiting for receive budget, oldest first */
  ewd_conn_t **waiters_tail;
  uv_handle_t **listeners;
  size_t nlisteners;
  char **unix_paths;       /* to unlink at exit */
  size_t nunix;
  uv_timer_t sweep;        /* timeouts and idle buffers */
  double last_accept_log;
  char addresses[1024];    /* the msgpack-RPC addresses listened on, space-separated */
  char page[128];          /* the first HTTP address: the page's URL ("" = no HTTP) */
};

/* ---- conn.c ---- */
/* Creates a connection on the server's list (refs = 1). NULL when out of memory. */
ewd_conn_t *ewd_conn_new(ewd_server_t *srv, const ewd_io_vt_t *io, const ewd_proto_vt_t *proto);
void ewd_conn_ref(ewd_conn_t *c);
void ewd_conn_unref(ewd_conn_t *c);
/* Gives room to read into: *p and *avail (0 when the receive budget is exhausted: the
 * connection then waits and is resumed when budget frees). */
void ewd_conn_alloc(ewd_conn_t *c, uint8_t **p, size_t *avail);
/* n bytes were read into the room ewd_conn_alloc gave; processes them. */
void ewd_conn_received(ewd_conn_t *c, size_t n);
/* Copies bytes in (as if read) and processes them; for in-process connections. Returns the
 * bytes taken (fewer when the budget or a pause stops it). */
size_t ewd_conn_input(ewd_conn_t *c, const void *data, size_t n);
/* The peer finished sending (EOF or a read error): it is gone. */
void ewd_conn_eof(ewd_conn_t *c);
/* n bytes at buf[off] were handled; shrinks the buffer when it empties. */
void ewd_conn_consume(ewd_conn_t *c, size_t n);
/* Queues bytes for the peer (takes data, malloc'ed) and counts them: a message of at most 4 KiB
 * is copied into the connection's shared output chunk and data freed; a larger one is queued as
 * it is (shrunk first when its allocation is much larger). out_mem and srv->out_held count the
 * memory held, allocation and a fixed per-write cost included. One chunk at a time goes to
 * io->write, so a write may carry several messages. Dropped when closing. */
void ewd_conn_send(ewd_conn_t *c, char *data, size_t len);
/* io->write finished the chunk it was handed, len bytes (status < 0: failed; the peer is gone);
 * the next chunk goes out. */
void ewd_conn_wrote(ewd_conn_t *c, size_t len, int status);
/* Frees every unsent chunk and uncounts it (conn_out.c; ewd_conn_close calls it). */
void ewd__conn_out_drop(ewd_conn_t *c);
/* Starts or stops reading as the connection's state asks (budget, caps, stop). */
void ewd_conn_update_reading(ewd_conn_t *c);
/* Closes (idempotent): frees the buffer and protocol state, marks it gone, calls io->close. */
void ewd_conn_close(ewd_conn_t *c, const char *reason);
/* io->close finished: unlinks and drops the open reference. */
void ewd_conn_closed(ewd_conn_t *c);
/* True while the connection has work or unsent output (a stop waits for it). */
bool ewd_conn_busy(const ewd_conn_t *c);

/* ---- hooks.c ---- */
/* What the rooms below net/ reach a connection through (core/conn.h); ewd_net_init installs it
 * as srv->conn_hooks. */
extern const ewd_conn_hooks_t ewd_net_hooks;

/* ---- listen.c ---- */
/* Makes srv->net (no connections or listeners yet), starts its sweep timer (timeouts, idle
 * buffers) and installs ewd_net_hooks (conn.c). Returns 0, or -1 when out of memory. */
int ewd_net_init(ewd_server_t *srv);
/* Listens on unix:PATH or tcp:HOST:PORT. Returns 0 or -1 (logged). A non-loopback TCP address
 * without an auth token is refused (logged with the reason). */
int ewd_net_listen(ewd_server_t *srv, const char *spec);
/* Stops accepting and reading; buffered messages and queued jobs still complete. */
void ewd_net_stop(ewd_server_t *srv);
/* Closes the sweep timer (after every connection closed). */
void ewd_net_close(ewd_server_t *srv);
void ewd_net_free(ewd_server_t *srv);
/* True when host (numeric IPv4 or IPv6, brackets stripped) is a loopback address. */
bool ewd_host_is_loopback(const char *host);

/* Listens for HTTP on HOST:PORT (numeric; [IPv6]). Same access rule as TCP. Returns 0 or -1. */
int ewd_net_listen_http(ewd_server_t *srv, const char *hostport);
/* Serves an inherited listening socket (socket activation: sd.c): msgpack-RPC on a Unix or TCP
 * socket, or HTTP (TCP only). The TCP access rule applies (non-loopback needs a token). The
 * socket is closed at stop, but a Unix socket's path is left to its owner. Returns 0 or -1
 * (logged). */
int ewd_net_adopt(ewd_server_t *srv, int fd, bool http);

/* ---- http.c ---- */
extern const ewd_proto_vt_t ewd_http_proto;
/* Answers the connection's current request: status, Content-Type, body (taken and freed; NULL
 * for none) and extra header lines ("Name: value\r\n"…, or NULL). HEAD sends headers only. */
void ewd_http_respond(ewd_conn_t *c, int status, const char *type, char *body, size_t len,
                      const char *extra);

/* ---- web_assets.c (generated at build time from daemon/web/ by tools/embed_web.py) ---- */
typedef struct {
  const char *path;  /* as requested: "/index.html", "/app.js", … */
  const char *type;  /* Content-Type */
  const unsigned char *data;
  size_t len;
} ewd_web_asset_t;
/* The embedded file served at `path`, or NULL. */
const ewd_web_asset_t *ewd_web_asset(const char *path);

/* ---- api.c ---- */
/* True for a path under /api/v1/. */
bool ewd_api_is_path(const char *path);
/* Serves GET /api/v1/METHOD?QUERY (query: the text after '?', or NULL): runs the answer-only
 * RPC method through the decoder and handlers; the answer comes back through ewd_rpc_result
 * or ewd_rpc_error, now or when the method's job completes (the connection is held till then). */
void ewd_api_serve(ewd_conn_t *c, const char *path, const char *query);
/* The JSON answers of an API request: a result, or {"error": {code, message}} with a status
 * by code (404 NO_SUCH_STREAM/UNKNOWN_METHOD, 401, 422 DEGENERATE/NO_WINDOW, 503 LIMIT/NO_MEMORY,
 * 500 INTERNAL/IO_ERROR, else 400). */
void ewd_api_result(ewd_conn_t *c, const ewp_value_t *result);
void ewd_api_error(ewd_conn_t *c, int code, const char *message);

/* ---- rpc.c ---- */
extern const ewd_proto_vt_t ewd_rpc_proto;
/* The EW_E* code of a decoder's refusal. */
int ewd_rpc_code(ewp_code_t c);
/* Sends a result or an error for a request (no-op for notifications, which only count). */
void ewd_rpc_result(ewd_conn_t *c, uint32_t msgid, bool notify, const ewp_value_t *result);
void ewd_rpc_error(ewd_server_t *srv, ewd_conn_t *c, uint32_t msgid, bool notify, int code,
                   const char *fmt, ...) __attribute__((format(printf, 6, 7)));
/* Sends the notification [2, method, [v]] (a subscription's: run/subs.c, through conn_hooks);
 * nothing when c is closing. A connection whose output memory is past conn_out_cap is closed
 * instead (counted and logged: a subscriber that does not read). */
void ewd_rpc_notify(ewd_conn_t *c, const char *method, const ewp_value_t *v);
/* A job now holds the connection: a request's job (replies wait), or one pipelined ingest. */
void ewd_rpc_hold(ewd_conn_t *c, ewd_job_t *job, bool pipelined);
/* That job finished: releases its hold, handles further messages, drops its reference. */
void ewd_rpc_job_done(ewd_conn_t *c, bool pipelined);

/* The msgpack-RPC addresses the daemon listens on ("unix:PATH tcp:HOST:PORT", as a client names
 * them) and the page's URL (the first HTTP listener; "" without HTTP): for the ready line. */
const char *ewd_net_addresses(const ewd_server_t *srv);
const char *ewd_net_page(const ewd_server_t *srv);

#endif
