/* commands.c — the method table and the handlers. One row per RPC method; dispatch, the docs and
 * the `stats` counters come from it. The envelope ([type, msgid, method, params]) is validated
 * before any parameter is looked at. Handlers check every field, answer errors with a code and
 * a sentence, and either reply at once (loop-side state: ping, list, info, stats, metrics,
 * create, drop, cached queries) or hand the stream a job (ingest, query, reset) and reply when it
 * completes. A rejected request changes nothing. */
#include "ewd.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef ewd_disp_t (*handler_fn)(ewd_req_t *r);

typedef struct {
  const char *name;
  handler_fn fn;
  const char *fields; /* accepted params keys, space-separated ("" = none) */
  const char *doc;
} method_t;

double ewd_now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static double wall_now(void) {
  struct timespec t;
  clock_gettime(CLOCK_REALTIME, &t);
  return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* ---- reply building ---- */

typedef struct {
  msgpack_sbuffer sb;
  msgpack_packer pk;
} reply_t;

static msgpack_packer *reply_begin(reply_t *rp, uint64_t msgid) {
  msgpack_sbuffer_init(&rp->sb);
  msgpack_packer_init(&rp->pk, &rp->sb, msgpack_sbuffer_write);
  ew_pack_result_header(&rp->pk, msgid);
  return &rp->pk;
}

static void reply_end(ewd_req_t *r, reply_t *rp) {
  if (r->notify)
    msgpack_sbuffer_destroy(&rp->sb);
  else
    ewd_reply_send(r->conn, &rp->sb);
}

static void kv_str(msgpack_packer *pk, const char *k, const char *v) {
  ew_pack_str(pk, k);
  ew_pack_str(pk, v);
}
static void kv_u64(msgpack_packer *pk, const char *k, uint64_t v) {
  ew_pack_str(pk, k);
  msgpack_pack_uint64(pk, v);
}
static void kv_f64(msgpack_packer *pk, const char *k, double v) {
  ew_pack_str(pk, k);
  msgpack_pack_double(pk, v);
}
static void kv_bool(msgpack_packer *pk, const char *k, bool v) {
  ew_pack_str(pk, k);
  if (v)
    msgpack_pack_true(pk);
  else
    msgpack_pack_false(pk);
}
static void kv_time(msgpack_packer *pk, const char *k, double t) {
  ew_pack_str(pk, k);
  if (t > 0)
    msgpack_pack_double(pk, t);
  else
    msgpack_pack_nil(pk);
}

static const char *normalize_name(ew_normalize_t n) { return n == EW_NORMALIZE_L2 ? "l2" : "none"; }
static const char *window_mode_name(ew_window_mode_t m) {
  return m == EW_WINDOW_EAGER ? "eager" : m == EW_WINDOW_LAZY ? "lazy" : "auto";
}

static void pack_config(msgpack_packer *pk, const ew_config_t *c) {
  msgpack_pack_map(pk, 8);
  kv_u64(pk, "dim", c->dim);
  kv_str(pk, "normalize", normalize_name(c->normalize));
  kv_u64(pk, "window", c->window);
  kv_str(pk, "window_mode", window_mode_name(c->window_mode));
  kv_f64(pk, "decay", c->decay_half_life);
  kv_u64(pk, "topk", c->live_k);
  kv_u64(pk, "shuffle", c->shuffle);
  kv_u64(pk, "seed", c->seed);
}

/* ---- parameter helpers ---- */

#define FAIL(r, code, ...)                                                                        \
  do {                                                                                            \
    ewd_reply_error((r)->srv, (r)->conn, (r)->msgid, (r)->notify, (code), __VA_ARGS__);           \
    return EWD_DONE;                                                                              \
  } while (0)

/* Every key of params must be one of `fields`; returns the first stranger or NULL. */
static const msgpack_object *unknown_field(const ewd_req_t *r, const char *fields) {
  if (!r->params)
    return NULL;
  for (uint32_t i = 0; i < r->params->via.map.size; i++) {
    const msgpack_object *k = &r->params->via.map.ptr[i].key;
    const char *p;
    size_t n;
    if (!ew_obj_bytes(k, &p, &n))
      return k;
    bool found = false;
    for (const char *f = fields; *f && !found;) {
      const char *e = strchr(f, ' ');
      size_t fl = e ? (size_t)(e - f) : strlen(f);
      found = fl == n && memcmp(f, p, n) == 0;
      f += fl + (e ? 1 : 0);
    }
    if (!found)
      return k;
  }
  return NULL;
}

static int get_name(ewd_req_t *r, const char **p, size_t *n) {
  const msgpack_object *o = ew_map_get(r->params, "stream");
  if (!o || !ew_obj_bytes(o, p, n)) {
    ewd_reply_error(r->srv, r->conn, r->msgid, r->notify, EW_EBADREQ,
                    "'stream' (a string) is required");
    return -1;
  }
  if (!ewd_name_valid(*p, *n)) {
    ewd_reply_error(r->srv, r->conn, r->msgid, r->notify, EW_EBADREQ,
                    "stream names are 1-200 bytes of A-Z a-z 0-9 _ . : / - (got %zu bytes)", *n);
    return -1;
  }
  return 0;
}

static ewd_stream_t *get_stream(ewd_req_t *r) {
  const char *p;
  size_t n;
  if (get_name(r, &p, &n))
    return NULL;
  ewd_stream_t *st = ewd_registry_find(&r->srv->reg, p, n);
  if (!st)
    ewd_reply_error(r->srv, r->conn, r->msgid, r->notify, EW_ENOSTREAM,
                    "no stream named '%.*s' (ingest creates streams; 'list' shows them)", (int)n, p);
  return st;
}

static bool check_fields(ewd_req_t *r, const char *method, const char *fields) {
  const msgpack_object *k = unknown_field(r, fields);
  if (!k)
    return true;
  const char *p = "?";
  size_t n = 1;
  ew_obj_bytes(k, &p, &n);
  ewd_reply_error(r->srv, r->conn, r->msgid, r->notify, EW_EBADREQ,
                  "%s does not take '%.*s' (it takes: %s)", method, (int)n, p,
                  *fields ? fields : "nothing");
  return false;
}

/* ---- jobs ---- */

static ewd_job_t *job_new(ewd_req_t *r, ewd_stream_t *st, ewd_job_kind_t kind,
                          void (*done)(ewd_job_t *)) {
  ewd_job_t *j = calloc(1, sizeof *j);
  if (!j)
    return NULL;
  j->kind = kind;
  j->st = st;
  j->conn = r ? r->conn : NULL;
  j->msgid = r ? r->msgid : 0;
  j->notify = r ? r->notify : true;
  j->done = done;
  return j;
}

static void job_finish(ewd_job_t *j) {
  ewd_stream_t *st = j->st;
  ewd_conn_t *c = j->conn;
  bool was_request = c && c->job == j;
  st->queued_jobs--;
  st->queued_bytes -= j->bytes;
  if (c) {
    c->queued_bytes -= j->bytes;
  }
  ewd_job_free(j);
  ewd_stream_unref(st);
  if (c)
    ewd_conn_job_done(c, was_request);
}

static void update_mirrors(ewd_server_t *srv, ewd_job_t *j) {
  ewd_stream_t *st = j->st;
  if (!st->s)
    return;
  st->count = j->count_after;
  bool registered = ewd_registry_find(&srv->reg, st->name, strlen(st->name)) == st;
  if (registered)
    srv->reg.memory += j->memory_after - st->memory;
  st->memory = j->memory_after;
}

static ewd_server_t *g_srv; /* the one server, for job callbacks */

/* Hands a job to the stream's queue. A request's job holds the connection (later messages wait);
 * a pipelined ingest notification only counts as in flight. */
static void submit(ewd_req_t *r, ewd_job_t *j, bool pipelined) {
  if (r && r->conn) {
    ewd_conn_ref(r->conn);
    if (pipelined)
      r->conn->inflight++;
    else
      r->conn->job = j;
  }
  ewd_pool_submit(r ? r->srv->pool : g_srv->pool, j);
}

/* ---- ping ---- */

static ewd_disp_t h_ping(ewd_req_t *r) {
  if (!check_fields(r, "ping", ""))
    return EWD_DONE;
  reply_t rp;
  msgpack_packer *pk = reply_begin(&rp, r->msgid);
  msgpack_pack_map(pk, 3);
  kv_str(pk, "version", EW_VERSION_STRING);
  kv_u64(pk, "protocol", EW_PROTOCOL_VERSION);
  kv_bool(pk, "pong", true);
  reply_end(r, &rp);
  return EWD_DONE;
}

/* ---- create ---- */

#define CREATE_FIELDS "stream dim normalize window window_mode decay topk shuffle seed"

static int parse_config(ewd_req_t *r, ew_config_t *cfg, char *msg, size_t cap) {
  uint64_t u;
  const msgpack_object *o = ew_map_get(r->params, "dim");
  if (!o || !ew_obj_uint(o, &u) || u < 1 || u > EW_MAX_DIM) {
    snprintf(msg, cap, "'dim' must be an integer between 1 and %d", EW_MAX_DIM);
    return -1;
  }
  ew_config_default(cfg, (size_t)u);
  if ((o = ew_map_get(r->params, "normalize"))) {
    if (ew_obj_streq(o, "none"))
      cfg->normalize = EW_NORMALIZE_NONE;
    else if (ew_obj_streq(o, "l2"))
      cfg->normalize = EW_NORMALIZE_L2;
    else {
      snprintf(msg, cap, "'normalize' must be \"none\" or \"l2\"");
      return -1;
    }
  }
  if ((o = ew_map_get(r->params, "window"))) {
    if (!ew_obj_uint(o, &u)) {
      snprintf(msg, cap, "'window' must be a number of rows >= 0");
      return -1;
    }
    cfg->window = (size_t)u;
  }
  if ((o = ew_map_get(r->params, "window_mode"))) {
    if (ew_obj_streq(o, "auto"))
      cfg->window_mode = EW_WINDOW_AUTO;
    else if (ew_obj_streq(o, "eager"))
      cfg->window_mode = EW_WINDOW_EAGER;
    else if (ew_obj_streq(o, "lazy"))
      cfg->window_mode = EW_WINDOW_LAZY;
    else {
      snprintf(msg, cap, "'window_mode' must be \"auto\", \"eager\" or \"lazy\"");
      return -1;
    }
  }
  double v;
  if ((o = ew_map_get(r->params, "decay")) && o->type != MSGPACK_OBJECT_NIL) {
    if (!ew_obj_number(o, &v)) {
      snprintf(msg, cap, "'decay' is a half-life in rows (a number; 0 = off)");
      return -1;
    }
    cfg->decay_half_life = v;
  }
  if ((o = ew_map_get(r->params, "topk"))) {
    if (!ew_obj_uint(o, &u)) {
      snprintf(msg, cap, "'topk' (live eigenvector estimates) must be an integer >= 0");
      return -1;
    }
    cfg->live_k = (size_t)u;
  }
  if ((o = ew_map_get(r->params, "shuffle"))) {
    if (!ew_obj_uint(o, &u)) {
      snprintf(msg, cap, "'shuffle' must be a number of rows >= 1");
      return -1;
    }
    cfg->shuffle = (size_t)u;
  }
  if ((o = ew_map_get(r->params, "seed"))) {
    if (!ew_obj_uint(o, &u)) {
      snprintf(msg, cap, "'seed' must be an integer >= 0");
      return -1;
    }
    cfg->seed = u;
  }
  return ew_config_check(cfg, msg, cap) ? -1 : 0;
}

static ewd_disp_t h_create(ewd_req_t *r) {
  if (!check_fields(r, "create", CREATE_FIELDS))
    return EWD_DONE;
  const char *p;
  size_t n;
  if (get_name(r, &p, &n))
    return EWD_DONE;
  ew_config_t cfg;
  char msg[256];
  if (parse_config(r, &cfg, msg, sizeof msg))
    FAIL(r, EW_EBADPARAM, "%s", msg);
  ewd_stream_t *st = ewd_registry_find(&r->srv->reg, p, n);
  bool created = false;
  if (st) {
    if (!ew_config_equal(&st->cfg, &cfg))
      FAIL(r, EW_EEXISTS,
           "stream '%.*s' exists with a different configuration (dim %zu, window %zu, normalize "
           "%s); drop it first or use the same configuration",
           (int)n, p, st->cfg.dim, st->cfg.window, normalize_name(st->cfg.normalize));
  } else {
    int rc = ewd_registry_create(&r->srv->reg, &r->srv->lim, p, n, &cfg, &st, msg, sizeof msg);
    if (rc)
      FAIL(r, rc, "%s", msg);
    created = true;
    ewd_log(EWD_LOG_INFO, "stream created", "stream=\"%s\" dim=%zu window=%zu", st->name,
            cfg.dim, cfg.window);
  }
  reply_t rp;
  msgpack_packer *pk = reply_begin(&rp, r->msgid);
  msgpack_pack_map(pk, 3);
  kv_str(pk, "stream", st->name);
  kv_bool(pk, "created", created);
  ew_pack_str(pk, "config");
  pack_config(pk, &st->cfg);
  reply_end(r, &rp);
  return EWD_DONE;
}

/* ---- ingest ---- */

static void ingest_done(ewd_job_t *j) {
  ewd_server_t *srv = g_srv;
  ewd_stream_t *st = j->st;
  update_mirrors(srv, j);
  if (j->rc) {
    ewd_reply_error(srv, j->conn, j->msgid, j->notify, j->rc, "%s",
                    j->message);
  } else {
    st->last_ingest = wall_now();
    srv->stats.rows += j->n;
    if (!j->notify && j->conn) {
      reply_t rp;
      msgpack_packer *pk = reply_begin(&rp, j->msgid);
      msgpack_pack_map(pk, 3);
      kv_str(pk, "stream", st->name);
      kv_u64(pk, "accepted", j->n);
      kv_u64(pk, "count", st->count);
      ewd_reply_send(j->conn, &rp.sb);
    }
  }
  job_finish(j);
}

static ewd_disp_t h_ingest(ewd_req_t *r) {
  if (!check_fields(r, "ingest", "stream data dtype shape rows"))
    return EWD_DONE;
  const char *name;
  size_t nl;
  if (get_name(r, &name, &nl))
    return EWD_DONE;
  const msgpack_object *data = ew_map_get(r->params, "data");
  const msgpack_object *rows = ew_map_get(r->params, "rows");
  size_t n = 0, d = 0, esz = 0;
  ew_dtype_t dtype = EW_F64;
  const char *bytes = NULL;
  size_t blen = 0;
  if (data && rows)
    FAIL(r, EW_EBADREQ, "send either 'data' (with dtype and shape) or 'rows', not both");
  if (data) {
    if (data->type != MSGPACK_OBJECT_BIN)
      FAIL(r, EW_EBADREQ, "'data' must be bin (raw little-endian values, row-major)");
    bytes = data->via.bin.ptr;
    blen = data->via.bin.size;
    const msgpack_object *dt = ew_map_get(r->params, "dtype");
    const char *dp;
    size_t dn;
    if (!dt || !ew_obj_bytes(dt, &dp, &dn))
      FAIL(r, EW_EDTYPE, "'dtype' (f32, f64, f16 or bf16) is required with 'data'");
    if (ew_dtype_parse(dp, dn, &dtype))
      FAIL(r, EW_EDTYPE, "dtype '%.*s' is not supported (use f32, f64, f16 or bf16)", (int)dn, dp);
    esz = ew_dtype_size(dtype);
    const msgpack_object *sh = ew_map_get(r->params, "shape");
    uint64_t a, b;
    if (!sh || sh->type != MSGPACK_OBJECT_ARRAY || sh->via.array.size != 2 ||
        !ew_obj_uint(&sh->via.array.ptr[0], &a) || !ew_obj_uint(&sh->via.array.ptr[1], &b))
      FAIL(r, EW_EBADREQ, "'shape' must be [n, d] (two integers)");
    if (b == 0 || b > EW_MAX_DIM)
      FAIL(r, EW_EBADREQ, "shape [n, d] needs 1 <= d <= %d (got d = %llu)", EW_MAX_DIM,
           (unsigned long long)b);
    if (a > ((uint64_t)1 << 40) / b || a * b * esz != blen)
      FAIL(r, EW_EBADREQ, "'data' has %zu bytes but shape [%llu, %llu] of %s needs %llu", blen,
           (unsigned long long)a, (unsigned long long)b, ew_dtype_name(dtype),
           (unsigned long long)(a * b * esz));
    n = (size_t)a;
    d = (size_t)b;
  } else if (rows) {
    if (rows->type != MSGPACK_OBJECT_ARRAY)
      FAIL(r, EW_EBADREQ, "'rows' must be an array of rows (arrays of numbers)");
    n = rows->via.array.size;
    for (size_t i = 0; i < n; i++) {
      const msgpack_object *row = &rows->via.array.ptr[i];
      if (row->type != MSGPACK_OBJECT_ARRAY)
        FAIL(r, EW_EBADREQ, "row %zu is not an array of numbers", i);
      if (i == 0)
        d = row->via.array.size;
      if (row->via.array.size != d)
        FAIL(r, EW_EBADREQ, "row %zu has %u values; row 0 has %zu (rows must share one length)",
             i, row->via.array.size, d);
    }
    if (n > 0 && (d == 0 || d > EW_MAX_DIM))
      FAIL(r, EW_EBADREQ, "rows need 1 to %d values each", EW_MAX_DIM);
    esz = 8;
  } else {
    FAIL(r, EW_EBADREQ, "ingest needs 'data' (bin) with 'dtype' and 'shape', or 'rows'");
  }
  ewd_stream_t *st = ewd_registry_find(&r->srv->reg, name, nl);
  if (st && n > 0 && d != st->cfg.dim)
    FAIL(r, EW_EDIM, "stream '%s' has dim %zu; these rows have %zu values", st->name, st->cfg.dim,
         d);
  if (n == 0) { /* nothing to do, but an answer all the same */
    reply_t rp;
    msgpack_packer *pk = reply_begin(&rp, r->msgid);
    msgpack_pack_map(pk, 3);
    kv_str(pk, "stream", st ? st->name : "");
    kv_u64(pk, "accepted", 0);
    kv_u64(pk, "count", st ? st->count : 0);
    reply_end(r, &rp);
    return EWD_DONE;
  }
  /* copy the payload out of the receive buffer into an aligned one the job owns */
  void *buf = NULL;
  if (posix_memalign(&buf, 64, n * d * esz) != 0)
    FAIL(r, EW_ENOMEM, "out of memory for a batch of %zu x %zu", n, d);
  if (data) {
    memcpy(buf, bytes, n * d * esz);
  } else {
    double *x = buf;
    for (size_t i = 0; i < n; i++) {
      const msgpack_object *row = &rows->via.array.ptr[i];
      for (size_t j = 0; j < d; j++)
        if (!ew_obj_number(&row->via.array.ptr[j], &x[i * d + j])) {
          free(buf);
          FAIL(r, EW_EBADREQ, "rows[%zu][%zu] is not a number", i, j);
        }
    }
  }
  if (!st) { /* unknown stream: create it with defaults and d from the payload */
    ew_config_t cfg;
    ew_config_default(&cfg, d);
    char msg[256];
    int rc = ewd_registry_create(&r->srv->reg, &r->srv->lim, name, nl, &cfg, &st, msg, sizeof msg);
    if (rc) {
      free(buf);
      FAIL(r, rc, "%s", msg);
    }
    ewd_log(EWD_LOG_INFO, "stream created by ingest", "stream=\"%s\" dim=%zu", st->name, d);
  }
  ewd_job_t *j = job_new(r, st, EWD_JOB_INGEST, ingest_done);
  if (!j) {
    free(buf);
    FAIL(r, EW_ENOMEM, "out of memory");
  }
  j->data = buf;
  j->dtype = data ? dtype : EW_F64;
  j->n = n;
  j->d = d;
  j->bytes = n * d * esz;
  st->queued_bytes += j->bytes;
  r->conn->queued_bytes += j->bytes;
  submit(r, j, r->notify);
  return r->notify ? EWD_DONE : EWD_PENDING;
}

/* ---- query ---- */

static void pack_value(msgpack_packer *pk, const ew_result_t *res) {
  if (res->kind == EW_VALUE_SCALAR) {
    msgpack_pack_double(pk, res->scalar);
    return;
  }
  msgpack_pack_array(pk, res->len);
  for (size_t i = 0; i < res->len; i++)
    msgpack_pack_double(pk, res->list[i]);
}

static void pack_query_reply(msgpack_packer *pk, ewd_stream_t *st, ewd_qmetric_t *ms, size_t nm,
                             const ew_result_t *const *res, double elapsed_ms, bool cached) {
  uint64_t as_of = UINT64_MAX;
  size_t extra = 0;
  for (size_t i = 0; i < nm; i++) {
    if (res[i]->as_of < as_of)
      as_of = res[i]->as_of;
    extra += res[i]->has_error ? 1 : 0;
    extra += res[i]->vectors ? 1 : 0;
  }
  msgpack_pack_map(pk, 7);
  kv_str(pk, "stream", st->name);
  kv_u64(pk, "count", st->count);
  kv_u64(pk, "dim", st->cfg.dim);
  kv_u64(pk, "as_of", as_of);
  kv_f64(pk, "elapsed_ms", elapsed_ms);
  kv_bool(pk, "cached", cached);
  ew_pack_str(pk, "metrics");
  msgpack_pack_map(pk, nm + extra);
  char key[96];
  for (size_t i = 0; i < nm; i++) {
    ew_pack_str(pk, ms[i].name);
    pack_value(pk, res[i]);
    if (res[i]->has_error) {
      snprintf(key, sizeof key, "%s_error", ms[i].name);
      kv_f64(pk, key, res[i]->error);
    }
    if (res[i]->vectors) {
      snprintf(key, sizeof key, "%s_vectors", ms[i].name);
      ew_pack_str(pk, key);
      msgpack_pack_array(pk, res[i]->len);
      for (size_t v = 0; v < res[i]->len; v++) {
        msgpack_pack_array(pk, res[i]->dim);
        for (size_t t = 0; t < res[i]->dim; t++)
          msgpack_pack_double(pk, res[i]->vectors[v * res[i]->dim + t]);
      }
    }
  }
}

static void query_done(ewd_job_t *j) {
  ewd_stream_t *st = j->st;
  update_mirrors(g_srv, j);
  if (j->rc) {
    ewd_reply_error(g_srv, j->conn, j->msgid, j->notify, j->rc, "%s", j->message);
  } else {
    const ew_result_t **res = malloc(j->nmetrics * sizeof *res);
    for (size_t i = 0; res && i < j->nmetrics; i++) {
      res[i] = &j->results[i];
      ewd_cache_put(st, j->metrics[i].key, &j->results[i]);
    }
    if (res && !j->notify && j->conn) {
      reply_t rp;
      msgpack_packer *pk = reply_begin(&rp, j->msgid);
      pack_query_reply(pk, st, j->metrics, j->nmetrics, res, j->elapsed_ms, false);
      ewd_reply_send(j->conn, &rp.sb);
    }
    free(res);
  }
  job_finish(j);
}

static char *cache_key(const char *metric, int center, ew_source_t src, const ew_param_t *ps,
                       size_t np) {
  char buf[256];
  int n = snprintf(buf, sizeof buf, "%s|c=%d|s=%d", metric, center, (int)src);
  for (size_t i = 0; i < np && n > 0 && (size_t)n < sizeof buf; i++)
    n += snprintf(buf + n, sizeof buf - (size_t)n, "|%s=%.17g", ps[i].key, ps[i].value);
  return strdup(buf);
}

static ewd_disp_t h_query(ewd_req_t *r) {
  if (!check_fields(r, "query", "stream metrics params center source fresh max_lag"))
    return EWD_DONE;
  ewd_stream_t *st = get_stream(r);
  if (!st)
    return EWD_DONE;
  const msgpack_object *mo = ew_map_get(r->params, "metrics");
  const msgpack_object *list = mo;
  size_t nm;
  if (mo && (mo->type == MSGPACK_OBJECT_STR || mo->type == MSGPACK_OBJECT_BIN)) {
    nm = 1;
  } else if (mo && mo->type == MSGPACK_OBJECT_ARRAY && mo->via.array.size >= 1 &&
             mo->via.array.size <= 64) {
    nm = mo->via.array.size;
    list = mo->via.array.ptr;
  } else {
    FAIL(r, EW_EBADREQ, "'metrics' must be a metric name or a list of 1 to 64 names");
  }
  int center = -1;
  const msgpack_object *o;
  if ((o = ew_map_get(r->params, "center")) && o->type != MSGPACK_OBJECT_NIL) {
    if (o->type != MSGPACK_OBJECT_BOOLEAN)
      FAIL(r, EW_EBADREQ, "'center' must be true or false");
    center = o->via.boolean ? 1 : 0;
  }
  ew_source_t source = EW_SOURCE_DEFAULT;
  if ((o = ew_map_get(r->params, "source")) && o->type != MSGPACK_OBJECT_NIL) {
    const char *p;
    size_t n;
    if (!ew_obj_bytes(o, &p, &n) || ew_source_parse(p, n, &source))
      FAIL(r, EW_EBADPARAM, "'source' must be \"all\", \"window\" or \"window_cn\"");
  }
  bool fresh = false;
  if ((o = ew_map_get(r->params, "fresh")) && o->type != MSGPACK_OBJECT_NIL) {
    if (o->type != MSGPACK_OBJECT_BOOLEAN)
      FAIL(r, EW_EBADREQ, "'fresh' must be true or false");
    fresh = o->via.boolean;
  }
  uint64_t max_lag = 0;
  bool have_lag = false;
  if ((o = ew_map_get(r->params, "max_lag")) && o->type != MSGPACK_OBJECT_NIL) {
    if (!ew_obj_uint(o, &max_lag))
      FAIL(r, EW_EBADREQ, "'max_lag' must be a number of rows >= 0");
    have_lag = true;
  }
  const msgpack_object *pm = ew_map_get(r->params, "params");
  if (pm && pm->type != MSGPACK_OBJECT_MAP && pm->type != MSGPACK_OBJECT_NIL)
    FAIL(r, EW_EBADREQ, "'params' must be a map of parameter name to value");
  if (pm && pm->type == MSGPACK_OBJECT_NIL)
    pm = NULL;
  /* resolve the metrics and which params each takes */
  ewd_qmetric_t *ms = calloc(nm, sizeof *ms);
  bool used[64] = {false};
  if (!ms)
    FAIL(r, EW_ENOMEM, "out of memory");
  if (pm && pm->via.map.size > 64) {
    ewd_qmetrics_free(ms, nm);
    FAIL(r, EW_EBADPARAM, "too many parameters");
  }
  for (size_t i = 0; i < nm; i++) {
    const char *p;
    size_t n;
    const ew_metric_info_t *info = NULL;
    char name[64];
    if (ew_obj_bytes(&list[i], &p, &n) && n < sizeof name) {
      memcpy(name, p, n);
      name[n] = 0;
      info = ew_metric_find(name);
    }
    if (!info) {
      ewd_qmetrics_free(ms, nm);
      if (!ew_obj_bytes(&list[i], &p, &n))
        FAIL(r, EW_EBADREQ, "metrics[%zu] is not a string", i);
      FAIL(r, EW_EUNKMETRIC, "no metric named '%.*s' (the 'metrics' method lists them)",
           (int)(n > 64 ? 64 : n), p);
    }
    ms[i].name = strdup(info->name);
    for (size_t k = 0; pm && k < pm->via.map.size; k++) {
      const msgpack_object *kk = &pm->via.map.ptr[k].key, *vv = &pm->via.map.ptr[k].val;
      for (size_t q = 0; q < info->nparams; q++) {
        if (!ew_obj_streq(kk, info->params[q].name))
          continue;
        double v;
        if (ew_obj_streq(vv, "inf"))
          v = INFINITY;
        else if (vv->type == MSGPACK_OBJECT_BOOLEAN)
          v = vv->via.boolean ? 1 : 0;
        else if (!ew_obj_number(vv, &v)) {
          ewd_qmetrics_free(ms, nm);
          FAIL(r, EW_EBADPARAM, "parameter '%s' must be a number (or \"inf\")",
               info->params[q].name);
        }
        ms[i].pkeys[ms[i].nparams] = strdup(info->params[q].name);
        ms[i].params[ms[i].nparams].key = ms[i].pkeys[ms[i].nparams];
        ms[i].params[ms[i].nparams].value = v;
        ms[i].nparams++;
        used[k] = true;
      }
    }
    ms[i].key = cache_key(ms[i].name, center, source, ms[i].params, ms[i].nparams);
  }
  for (size_t k = 0; pm && k < pm->via.map.size; k++)
    if (!used[k]) {
      const char *p = "?";
      size_t n = 1;
      ew_obj_bytes(&pm->via.map.ptr[k].key, &p, &n);
      ewd_qmetrics_free(ms, nm);
      FAIL(r, EW_EBADPARAM, "no requested metric takes parameter '%.*s'", (int)n, p);
    }
  /* answer from the loop-side cache when every metric is there and recent enough */
  if (!fresh && have_lag) {
    const ew_result_t *res[64];
    bool all = true;
    for (size_t i = 0; i < nm && all; i++) {
      res[i] = ewd_cache_get(st, ms[i].key);
      all = res[i] && st->count - res[i]->as_of <= max_lag;
    }
    if (all) {
      double t0 = ewd_now();
      reply_t rp;
      msgpack_packer *pk = reply_begin(&rp, r->msgid);
      pack_query_reply(pk, st, ms, nm, res, 1e3 * (ewd_now() - t0), true);
      reply_end(r, &rp);
      ewd_qmetrics_free(ms, nm);
      return EWD_DONE;
    }
  }
  ewd_job_t *j = job_new(r, st, EWD_JOB_QUERY, query_done);
  if (!j) {
    ewd_qmetrics_free(ms, nm);
    FAIL(r, EW_ENOMEM, "out of memory");
  }
  j->metrics = ms;
  j->nmetrics = nm;
  j->center = center;
  j->source = source;
  submit(r, j, false);
  return EWD_PENDING;
}

/* ---- list, info ---- */

static void pack_stream_summary(msgpack_packer *pk, ewd_stream_t *st, bool with_config) {
  msgpack_pack_map(pk, with_config ? 7 : 5);
  kv_str(pk, "stream", st->name);
  kv_u64(pk, "dim", st->cfg.dim);
  kv_u64(pk, "count", st->count);
  kv_u64(pk, "memory_bytes", st->memory);
  kv_time(pk, "last_ingest", st->last_ingest);
  if (with_config) {
    ew_pack_str(pk, "config");
    pack_config(pk, &st->cfg);
    kv_u64(pk, "queued_jobs", st->queued_jobs);
  }
}

static ewd_disp_t h_list(ewd_req_t *r) {
  if (!check_fields(r, "list", ""))
    return EWD_DONE;
  reply_t rp;
  msgpack_packer *pk = reply_begin(&rp, r->msgid);
  msgpack_pack_map(pk, 1);
  ew_pack_str(pk, "streams");
  msgpack_pack_array(pk, r->srv->reg.n);
  for (size_t i = 0; i < r->srv->reg.n; i++)
    pack_stream_summary(pk, r->srv->reg.items[i], false);
  reply_end(r, &rp);
  return EWD_DONE;
}

static ewd_disp_t h_info(ewd_req_t *r) {
  if (!check_fields(r, "info", "stream"))
    return EWD_DONE;
  ewd_stream_t *st = get_stream(r);
  if (!st)
    return EWD_DONE;
  reply_t rp;
  msgpack_packer *pk = reply_begin(&rp, r->msgid);
  pack_stream_summary(pk, st, true);
  reply_end(r, &rp);
  return EWD_DONE;
}

/* ---- reset, drop ---- */

static void reset_done(ewd_job_t *j) {
  ewd_stream_t *st = j->st;
  update_mirrors(g_srv, j);
  st->last_ingest = 0;
  ewd_cache_clear(st);
  if (!j->notify && j->conn) {
    reply_t rp;
    msgpack_packer *pk = reply_begin(&rp, j->msgid);
    msgpack_pack_map(pk, 2);
    kv_str(pk, "stream", st->name);
    kv_u64(pk, "count", st->count);
    ewd_reply_send(j->conn, &rp.sb);
  }
  job_finish(j);
}

static ewd_disp_t h_reset(ewd_req_t *r) {
  if (!check_fields(r, "reset", "stream"))
    return EWD_DONE;
  ewd_stream_t *st = get_stream(r);
  if (!st)
    return EWD_DONE;
  ewd_job_t *j = job_new(r, st, EWD_JOB_RESET, reset_done);
  if (!j)
    FAIL(r, EW_ENOMEM, "out of memory");
  submit(r, j, false);
  return EWD_PENDING;
}

static void free_done(ewd_job_t *j) { job_finish(j); }

static ewd_disp_t h_drop(ewd_req_t *r) {
  if (!check_fields(r, "drop", "stream"))
    return EWD_DONE;
  ewd_stream_t *st = get_stream(r);
  if (!st)
    return EWD_DONE;
  ewd_job_t *j = job_new(NULL, st, EWD_JOB_FREE, free_done);
  if (!j)
    FAIL(r, EW_ENOMEM, "out of memory");
  ewd_registry_remove(&r->srv->reg, st);
  ewd_log(EWD_LOG_INFO, "stream dropped", "stream=\"%s\" count=%llu", st->name,
          (unsigned long long)st->count);
  reply_t rp;
  msgpack_packer *pk = reply_begin(&rp, r->msgid);
  msgpack_pack_map(pk, 2);
  kv_str(pk, "stream", st->name);
  kv_bool(pk, "dropped", true);
  reply_end(r, &rp);
  ewd_pool_submit(r->srv->pool, j); /* frees the state after the stream's queued jobs */
  ewd_stream_unref(st);              /* the registry's reference */
  return EWD_DONE;
}

/* ---- stats, metrics ---- */

static ewd_disp_t h_stats(ewd_req_t *r) {
  if (!check_fields(r, "stats", ""))
    return EWD_DONE;
  ewd_server_t *srv = r->srv;
  reply_t rp;
  msgpack_packer *pk = reply_begin(&rp, r->msgid);
  msgpack_pack_map(pk, 14);
  kv_str(pk, "version", EW_VERSION_STRING);
  kv_f64(pk, "uptime_s", ewd_now() - srv->stats.started);
  kv_u64(pk, "connections", srv->nconns);
  kv_u64(pk, "connections_total", srv->stats.connections_total);
  kv_u64(pk, "bytes_in", srv->stats.bytes_in);
  kv_u64(pk, "bytes_out", srv->stats.bytes_out);
  kv_u64(pk, "requests", srv->stats.requests);
  kv_u64(pk, "notifications", srv->stats.notifications);
  kv_u64(pk, "rows", srv->stats.rows);
  kv_u64(pk, "streams", srv->reg.n);
  kv_u64(pk, "memory_bytes", srv->reg.memory);
  kv_u64(pk, "queue_jobs", ewd_pool_pending(srv->pool));
  size_t qb = 0;
  for (size_t i = 0; i < srv->reg.n; i++)
    qb += srv->reg.items[i]->queued_bytes;
  kv_u64(pk, "queue_bytes", qb);
  size_t ne = 0;
  for (int i = 1; i < 64; i++)
    ne += srv->stats.errors[i] ? 1 : 0;
  ew_pack_str(pk, "errors");
  msgpack_pack_map(pk, ne);
  for (int i = 1; i < 64; i++)
    if (srv->stats.errors[i])
      kv_u64(pk, ew_err_name(EW__ERR_BASE + i), srv->stats.errors[i]);
  reply_end(r, &rp);
  return EWD_DONE;
}

static ewd_disp_t h_metrics(ewd_req_t *r) {
  if (!check_fields(r, "metrics", ""))
    return EWD_DONE;
  reply_t rp;
  msgpack_packer *pk = reply_begin(&rp, r->msgid);
  msgpack_pack_map(pk, 1);
  ew_pack_str(pk, "metrics");
  msgpack_pack_array(pk, ew_metric_count());
  for (size_t i = 0; i < ew_metric_count(); i++) {
    const ew_metric_info_t *m = ew_metric_info(i);
    msgpack_pack_map(pk, 6);
    kv_str(pk, "name", m->name);
    kv_str(pk, "kind", m->kind == EW_VALUE_LIST ? "list" : "scalar");
    kv_str(pk, "sources", m->sources);
    kv_str(pk, "cost", m->cost);
    kv_str(pk, "doc", m->doc);
    ew_pack_str(pk, "params");
    msgpack_pack_array(pk, m->nparams);
    for (size_t p = 0; p < m->nparams; p++) {
      const ew_param_info_t *pi = &m->params[p];
      msgpack_pack_map(pk, 6);
      kv_str(pk, "name", pi->name);
      kv_f64(pk, "default", pi->default_value);
      kv_f64(pk, "min", pi->min);
      kv_f64(pk, "max", pi->max);
      kv_bool(pk, "integer", pi->integer);
      kv_str(pk, "doc", pi->doc);
    }
  }
  reply_end(r, &rp);
  return EWD_DONE;
}

/* ---- the table and the envelope ---- */

static const method_t methods[] = {
    {"ping", h_ping, "", "liveness and version"},
    {"create", h_create, CREATE_FIELDS, "create a stream (idempotent for the same config)"},
    {"ingest", h_ingest, "stream data dtype shape rows", "add rows (request or notification)"},
    {"query", h_query, "stream metrics params center source fresh max_lag", "compute metrics"},
    {"list", h_list, "", "all streams"},
    {"info", h_info, "stream", "one stream with its configuration"},
    {"reset", h_reset, "stream", "forget a stream's rows, keep its configuration"},
    {"drop", h_drop, "stream", "delete a stream"},
    {"stats", h_stats, "", "daemon counters"},
    {"metrics", h_metrics, "", "the metric table with docs"},
};

ewd_disp_t ewd_dispatch(ewd_server_t *srv, ewd_conn_t *c, const msgpack_object *msg) {
  g_srv = srv;
  ewd_req_t r = {.srv = srv, .conn = c};
  if (msg->type != MSGPACK_OBJECT_ARRAY || msg->via.array.size < 3) {
    ewd_reply_error(srv, c, 0, false, EW_EBADREQ,
                    "a message is [0, msgid, method, params] or [2, method, params]");
    return EWD_DONE;
  }
  const msgpack_object *a = msg->via.array.ptr;
  uint64_t type;
  if (!ew_obj_uint(&a[0], &type) || (type != 0 && type != 2) ||
      (type == 0 && msg->via.array.size != 4) || (type == 2 && msg->via.array.size != 3)) {
    uint64_t id = 0;
    if (msg->via.array.size == 4)
      ew_obj_uint(&a[1], &id);
    ewd_reply_error(srv, c, id, false, EW_EBADREQ,
                    "a message is [0, msgid, method, params] or [2, method, params]");
    return EWD_DONE;
  }
  r.notify = type == 2;
  const msgpack_object *mobj = r.notify ? &a[1] : &a[2];
  const msgpack_object *pobj = r.notify ? &a[2] : &a[3];
  if (!r.notify && (!ew_obj_uint(&a[1], &r.msgid) || r.msgid > UINT32_MAX)) {
    ewd_reply_error(srv, c, 0, false, EW_EBADREQ, "msgid must be an unsigned 32-bit integer");
    return EWD_DONE;
  }
  if (r.notify)
    srv->stats.notifications++;
  else
    srv->stats.requests++;
  const char *mp;
  size_t mn;
  if (!ew_obj_bytes(mobj, &mp, &mn) || mn > 64) {
    ewd_reply_error(srv, c, r.msgid, r.notify, EW_EBADREQ, "method must be a string");
    return EWD_DONE;
  }
  const method_t *m = NULL;
  for (size_t i = 0; i < sizeof methods / sizeof methods[0]; i++)
    if (strlen(methods[i].name) == mn && memcmp(methods[i].name, mp, mn) == 0)
      m = &methods[i];
  if (!m) {
    ewd_reply_error(srv, c, r.msgid, r.notify, EW_EUNKMETHOD,
                    "no method '%.*s' (methods: ping create ingest query list info reset drop "
                    "stats metrics)", (int)mn, mp);
    return EWD_DONE;
  }
  if (pobj->type == MSGPACK_OBJECT_ARRAY && pobj->via.array.size == 0) {
    r.params = NULL;
  } else if (pobj->type == MSGPACK_OBJECT_ARRAY && pobj->via.array.size == 1 &&
             pobj->via.array.ptr[0].type == MSGPACK_OBJECT_MAP) {
    r.params = &pobj->via.array.ptr[0];
  } else if (pobj->type == MSGPACK_OBJECT_MAP) {
    r.params = pobj;
  } else {
    ewd_reply_error(srv, c, r.msgid, r.notify, EW_EBADREQ,
                    "params must be [] or [{...}] (an array holding one map)");
    return EWD_DONE;
  }
  if (r.params)
    for (uint32_t i = 0; i < r.params->via.map.size; i++)
      if (!ew_obj_bytes(&r.params->via.map.ptr[i].key, &mp, &mn)) {
        ewd_reply_error(srv, c, r.msgid, r.notify, EW_EBADREQ, "params keys must be strings");
        return EWD_DONE;
      }
  return m->fn(&r);
}
