/* fuzz_dispatch.c — libFuzzer target through the whole request path: bytes → the connection
 * (receive budget, skim, typed decode) → ordering → the real handlers → a real stream on a
 * math thread → encoded replies. An in-process server: the daemon's own loop, pool, registry
 * and connection code, with a memory io vtable in place of a socket. Built and run by
 * run_fuzz.sh (clang, libFuzzer, ASan + UBSan).
 *
 * Each input runs on a fresh connection against a fresh stream "s" (d = 4, a window of 8, 16
 * rows ingested through the same path), and leaves no stream behind. Input: byte 0 picks the
 * connection (bit 0: TCP with a token required), where the bytes are cut in two (bits 1-7);
 * the rest is what the client sends.
 *
 * Besides the sanitizers, it checks what a client would: every reply is one msgpack array
 * [1, msgid, error, result] with an error of {code: str, message: valid UTF-8} or nil (or the
 * plain-HTTP 400 for HTTP bytes), and after each input no connection, receive budget, job or
 * stream is left over.
 *
 * Built with -DFUZZ_HTTP (run_fuzz.sh's target "http"), the connection speaks HTTP instead
 * (http.c, api.c: the parser, the bounds, /metrics, the page's files, /api/v1 through the same
 * handlers), and every reply must be one whole HTTP/1.1 response whose body has the length its
 * Content-Length says (or none, for HEAD) and, when it is application/json, parses as JSON. */
#define _GNU_SOURCE /* memmem */
#include "cmd/cmd.h"
#include "net/net.h"

#include <jansson.h>
#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static ewd_server_t srv;
static uv_loop_t loop;
static char *prelude;
static size_t prelude_len;

typedef struct out {
  struct out *next;
  ewd_conn_t *c;
  char *data;
  size_t len;
} out_t;
static out_t *outs, **outs_tail = &outs;

static void die(const char *what) {
  fprintf(stderr, "fuzz_dispatch: %s\n", what);
  abort();
}

/* ---- the memory io vtable: replies wait in a list, as in a socket, until the "client" reads */

static void mem_write(ewd_conn_t *c, char *data, size_t len) {
  out_t *o = malloc(sizeof *o);
  if (!o)
    die("out of memory");
  *o = (out_t){NULL, c, data, len};
  ewd_conn_ref(c);
  *outs_tail = o;
  outs_tail = &o->next;
}

static void mem_set_reading(ewd_conn_t *c, bool on) { (void)c, (void)on; }

static void mem_close(ewd_conn_t *c) { ewd_conn_closed(c); }

static const ewd_io_vt_t mem_io = {mem_write, mem_set_reading, mem_close};

static bool utf8(const msgpack_object *o) {
  return o->type == MSGPACK_OBJECT_STR && ewp_utf8_valid(o->via.str.ptr, o->via.str.size);
}

#ifdef FUZZ_HTTP
#define FUZZ_PROTO (&ewd_http_proto)
#else
#define FUZZ_PROTO (&ewd_rpc_proto)
#endif

/* An HTTP reply: status line, headers, and a body of Content-Length bytes (none for HEAD);
 * JSON bodies parse. */
static void check_http(const char *p, size_t n) {
  if (n < 12 || memcmp(p, "HTTP/1.1 ", 9) != 0 || p[9] < '1' || p[9] > '5')
    die("an HTTP reply does not start with a status line");
  const char *end = memmem(p, n, "\r\n\r\n", 4);
  if (!end)
    die("an HTTP reply has no end of headers");
  size_t head = (size_t)(end - p) + 4, body = n - head;
  const char *cl = memmem(p, head, "\r\nContent-Length: ", 18);
  if (!cl)
    die("an HTTP reply has no Content-Length");
  size_t want = strtoull(cl + 18, NULL, 10);
  if (body != want && body != 0)
    die("an HTTP reply's body is not Content-Length bytes");
  if (body && memmem(p, head, "\r\nContent-Type: application/json", 32)) {
    json_error_t err;
    json_t *j = json_loadb(p + head, body, JSON_DECODE_ANY, &err);
    if (!j) {
      fprintf(stderr, "bad JSON (%s): %.*s\n", err.text, (int)(body < 400 ? body : 400), p + head);
      die("an API reply is not JSON");
    }
    json_decref(j);
  }
}

/* Every reply must be what a strict client can read. A write holds one or more whole messages
 * (conn.c coalesces small ones). */
static void check_reply(const ewd_conn_t *c, const char *p, size_t n) {
  if (c->proto == &ewd_http_proto) {
    check_http(p, n);
    return;
  }
  if (n >= 9 && memcmp(p, "HTTP/1.1 ", 9) == 0)
    return;
  msgpack_unpacked u;
  msgpack_unpacked_init(&u);
  size_t off = 0;
  while (off < n) {
    if (msgpack_unpack_next(&u, p, n, &off) != MSGPACK_UNPACK_SUCCESS)
      die("a write does not hold whole msgpack objects");
    const msgpack_object *o = &u.data;
    if (o->type != MSGPACK_OBJECT_ARRAY || o->via.array.size != 4)
      die("a reply is not a 4-array");
    const msgpack_object *a = o->via.array.ptr;
    if (a[0].type != MSGPACK_OBJECT_POSITIVE_INTEGER || a[0].via.u64 != 1 ||
        a[1].type != MSGPACK_OBJECT_POSITIVE_INTEGER)
      die("a reply's type or msgid is wrong");
    if (a[2].type == MSGPACK_OBJECT_NIL) {
      if (a[3].type == MSGPACK_OBJECT_NIL)
        die("a reply has neither error nor result");
    } else {
      if (a[2].type != MSGPACK_OBJECT_MAP || a[2].via.map.size != 2 ||
          a[3].type != MSGPACK_OBJECT_NIL)
        die("an error reply is not {code, message} with a nil result");
      for (uint32_t i = 0; i < 2; i++)
        if (!utf8(&a[2].via.map.ptr[i].key) || !utf8(&a[2].via.map.ptr[i].val))
          die("an error's code or message is not valid UTF-8 text");
    }
  }
  msgpack_unpacked_destroy(&u);
}

/* The client reads everything written so far. */
static bool read_replies(void) {
  bool any = outs != NULL;
  while (outs) {
    out_t *o = outs;
    outs = o->next;
    if (!outs)
      outs_tail = &outs;
    check_reply(o->c, o->data, o->len);
    ewd_conn_wrote(o->c, o->len, 0);
    ewd_conn_unref(o->c);
    free(o->data);
    free(o);
  }
  return any;
}

static bool conn_waits(const ewd_conn_t *c) {
  return !c->closing && (c->job || c->inflight || c->parked_len);
}

/* Feeds data to c (which the caller holds a reference to) and runs the loop until everything it
 * started is answered, or the connection closed. */
static void pump(ewd_conn_t *c, const uint8_t *data, size_t n) {
  size_t taken = 0;
  for (long spins = 0;; spins++) {
    if (spins > 2000000)
      die("no progress: the connection neither answers nor takes input");
    bool read = read_replies();
    size_t k = 0;
    if (taken < n && !c->closing)
      k = ewd_conn_input(c, data + taken, n - taken);
    taken += k;
    bool pending = ewd_pool_pending(srv.pool) > 0;
    if (!pending && !read && !k && !outs && (c->closing || !conn_waits(c)) &&
        (taken == n || c->closing))
      break;
    uv_run(&loop, pending ? UV_RUN_ONCE : UV_RUN_NOWAIT);
  }
}

/* Runs the loop until the pool is idle and every reply was read. */
static void settle(void) {
  while (ewd_pool_pending(srv.pool) > 0 || outs) {
    read_replies();
    uv_run(&loop, ewd_pool_pending(srv.pool) > 0 ? UV_RUN_ONCE : UV_RUN_NOWAIT);
  }
  uv_run(&loop, UV_RUN_NOWAIT);
}

static void pack_str(msgpack_packer *pk, const char *s) {
  msgpack_pack_str(pk, strlen(s));
  msgpack_pack_str_body(pk, s, strlen(s));
}

/* create {stream: "s", dim: 4, window: 8} and ingest 16 rows of f64 as a request. */
static void build_prelude(void) {
  msgpack_sbuffer sb;
  msgpack_sbuffer_init(&sb);
  msgpack_packer pk;
  msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
  msgpack_pack_array(&pk, 4);
  msgpack_pack_uint32(&pk, 0);
  msgpack_pack_uint32(&pk, 1);
  pack_str(&pk, "create");
  msgpack_pack_map(&pk, 3);
  pack_str(&pk, "stream");
  pack_str(&pk, "s");
  pack_str(&pk, "dim");
  msgpack_pack_uint32(&pk, 4);
  pack_str(&pk, "window");
  msgpack_pack_uint32(&pk, 8);
  double x[16 * 4];
  for (int i = 0; i < 16 * 4; i++)
    x[i] = (double)((i * 7919) % 23) - 11.0 + 0.125 * (i % 5);
  msgpack_pack_array(&pk, 4);
  msgpack_pack_uint32(&pk, 0);
  msgpack_pack_uint32(&pk, 2);
  pack_str(&pk, "ingest");
  msgpack_pack_map(&pk, 4);
  pack_str(&pk, "stream");
  pack_str(&pk, "s");
  pack_str(&pk, "data");
  msgpack_pack_bin(&pk, sizeof x);
  msgpack_pack_bin_body(&pk, x, sizeof x);
  pack_str(&pk, "dtype");
  pack_str(&pk, "f64");
  pack_str(&pk, "shape");
  msgpack_pack_array(&pk, 2);
  msgpack_pack_uint32(&pk, 16);
  msgpack_pack_uint32(&pk, 4);
  prelude = sb.data;
  prelude_len = sb.size;
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc, (void)argv;
  ewd_config_defaults(&srv.cfg);
  srv.cfg.log_level = EWD_LOG_ERROR;
  srv.cfg.max_message_bytes = 256 * 1024; /* small limits keep each input fast */
  srv.cfg.max_elements = 1 << 16;
  srv.cfg.max_memory = 8 << 20;           /* d up to a few hundred */
  srv.cfg.max_streams = 16;
  srv.cfg.math_threads = 1;
  srv.cfg.partial_timeout = 0;
  ewd_server_apply_config(&srv);
  if (uv_loop_init(&loop) != 0)
    die("uv_loop_init");
  srv.loop = &loop;
  srv.started = ewd_now();
  uv_timer_init(&loop, &srv.trim_timer);
  srv.trim_timer.data = &srv;
  ewd_run_init(&srv); /* the rooms' slots, as main sets them */
  ewd_store_init(&srv);
  if (ewd_net_init(&srv) != 0 || ewd_pool_start(&srv.pool, &loop, 1, 1, 0) != 0)
    die("cannot start the server");
  build_prelude();
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1)
    return 0;
  bool tcp_token = data[0] & 1;
  size_t cut = (size - 1) * (data[0] >> 1) / 127;
  data++, size--;

  /* the stream every input finds: created and filled through the same path */
  srv.token = NULL;
  ewd_conn_t *setup = ewd_conn_new(&srv, &mem_io, &ewd_rpc_proto);
  ewd_conn_ref(setup);
  pump(setup, (const uint8_t *)prelude, prelude_len);
  if (setup->closing || srv.reg.n != 1 || srv.reg.items[0]->count != 16)
    die("the prelude did not create and fill the stream");
  ewd_conn_close(setup, "prelude done");
  ewd_conn_unref(setup);

  static char token[] = "fuzz-token-0123456789";
  srv.token = tcp_token ? token : NULL;
  srv.token_len = tcp_token ? strlen(token) : 0;
  ewd_conn_t *c = ewd_conn_new(&srv, &mem_io, FUZZ_PROTO);
  c->tcp = tcp_token;
  ewd_conn_ref(c);
  pump(c, data, cut);
  pump(c, data + cut, size - cut);
  ewd_conn_close(c, "input done");
  ewd_conn_unref(c);
  settle();

  while (srv.reg.n > 0)
    ewd_stream_drop(&srv, srv.reg.items[srv.reg.n - 1]);
  settle();
  if (srv.net->nconns != 0 || srv.net->conns || srv.net->recv_held != 0 || srv.net->waiters)
    die("a connection or its receive budget outlived the input");
  if (ewd_registry_admitted(&srv.reg, &srv.cfg) != 0 || srv.reg.state_bytes != 0)
    die("the admission model still charges a dropped stream");
  if (srv.reg.staged_bytes != 0 || srv.reg.pending_bytes != 0 || srv.nstaging != 0)
    die("staged rows outlived their stream");
  srv.token = NULL;
  return 0;
}
