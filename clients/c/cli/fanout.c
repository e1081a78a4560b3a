/* fanout.c — the CLI over several daemons: `--address a,b,c` (or $EIGENWATCH_ADDRESS with commas).
 *
 * Streams are placed on the daemons by rendezvous hashing (ewc_place, the same as the Python
 * client's eigenwatch.placement and its Sender): a command that names one stream talks to that
 * stream's daemon only (open_stream_conn). A command about many streams asks every daemon and
 * merges the answers into one shaped like a single daemon's (fan_merged, the table `merges`
 * below; the Python client's _fanout.py merges the same way), so the printing code is the same
 * for one daemon and for many. A daemon that cannot be reached, or that refuses, makes the whole
 * command fail naming its address: an answer from some daemons is never printed as if it were
 * from all of them.
 *
 * With one address nothing here changes what a command does: open_stream_conn is open_conn and
 * fan_merged is one ewc_call. Not here: what a command sends and how an answer is drawn. */
#include "cli.h"
#include "ew_proto.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char **g_addrs;
size_t g_naddrs;
const char *g_peer;

int fan_init(void) {
  /* Only --address and $EIGENWATCH_ADDRESS can list several daemons: the other defaults
   * (ewc_default_address: the sockets, then tcp:127.0.0.1:7700) are one address each and are
   * left to ewc_connect, which looks for them again at each connect (watch waits for them). */
  const char *env = getenv("EIGENWATCH_ADDRESS");
  const char *spec = g_address ? g_address : env && *env ? env : NULL;
  if (!spec)
    return 0;
  size_t len = strlen(spec), max = 1;
  for (const char *p = spec; *p; p++)
    max += *p == ',';
  /* room for every entry: each is at most its part of spec plus a NUL, so nothing is cut */
  char *buf = malloc(len + 1);
  const char **out = malloc(max * sizeof *out);
  if (!buf || !out) {
    free(buf);
    free(out);
    fprintf(stderr, "eigenwatch: out of memory\n");
    return EX_UNREACHABLE;
  }
  size_t n = ewc_addresses(spec, buf, len + 1, out, max);
  if (n == 0) { /* "" or ",": ewc_connect refuses it, as it did before lists */
    free(buf);
    free(out);
    return 0;
  }
  g_addrs = out; /* kept until exit */
  g_naddrs = n;
  if (n == 1)
    g_address = out[0];
  return 0;
}

ewc_t *open_stream_conn(const char *run, const char *stream, int *ex) {
  if (g_naddrs < 2)
    return open_conn(ex);
  size_t k = ewc_place(run ? run : g_run, stream, g_addrs, g_naddrs);
  g_peer = g_addrs[k];
  return open_conn_at(g_peer, ex);
}

int fan_exit(const char *address, int rc, ewc_reply_t *r) {
  const char *at = g_naddrs > 1 && address ? address : "", *sep = *at ? ": " : "";
  if (rc == EWC_ERPC) {
    fprintf(stderr, "eigenwatch: %s%s%s: %s\n", at, sep, r->code, r->message);
    return EX_DAEMON;
  }
  fprintf(stderr, "eigenwatch: %s%s%s\n", at, sep, ewc_strerror(rc));
  return EX_UNREACHABLE;
}

/* ---- merging answers ---- */

/* One answer's entry among all answers', with where it came from (a stable order for ties). */
typedef struct {
  const msgpack_object *o;
  size_t from, at;
} item_t;

typedef struct {
  const ewc_reply_t *ans; /* n answers; ans[k].result NULL: daemon k had nothing (drop) */
  size_t n;
  const msgpack_object *params; /* the request's map, or NULL */
  msgpack_packer *pk;
} merge_t;

static void pk_str(msgpack_packer *pk, const char *s) { ew_pack_str(pk, s); }

/* Bytewise order of two strings (absent or not a string: ""), as Python orders str. */
static int str_cmp(const msgpack_object *x, const msgpack_object *y) {
  const char *p = "", *q = "";
  size_t n = 0, m = 0;
  if (!x || !ew_obj_bytes(x, &p, &n))
    p = "", n = 0;
  if (!y || !ew_obj_bytes(y, &q, &m))
    q = "", m = 0;
  int c = memcmp(p, q, n < m ? n : m);
  return c ? c : (n > m) - (n < m);
}

static int field_cmp(const msgpack_object *a, const msgpack_object *b, const char *key) {
  return str_cmp(ewc_get(a, key), ewc_get(b, key));
}

static int tie(const item_t *a, const item_t *b) {
  return a->from != b->from ? (a->from > b->from) - (a->from < b->from)
                            : (a->at > b->at) - (a->at < b->at);
}

static int by_run_stream(const void *x, const void *y) {
  const item_t *a = x, *b = y;
  int c = field_cmp(a->o, b->o, "run");
  c = c ? c : field_cmp(a->o, b->o, "stream");
  return c ? c : tie(a, b);
}

static int by_run_stream_rule(const void *x, const void *y) {
  const item_t *a = x, *b = y;
  int c = field_cmp(a->o, b->o, "run");
  c = c ? c : field_cmp(a->o, b->o, "stream");
  c = c ? c : field_cmp(a->o, b->o, "rule");
  return c ? c : tie(a, b);
}

static int by_run(const void *x, const void *y) {
  const item_t *a = x, *b = y;
  int c = field_cmp(a->o, b->o, "run");
  return c ? c : tie(a, b);
}

static int by_name(const void *x, const void *y) {
  const item_t *a = x, *b = y;
  int c = str_cmp(a->o, b->o);
  return c ? c : tie(a, b);
}

static int by_time(const void *x, const void *y) {
  const item_t *a = x, *b = y;
  double s = 0, t = 0;
  ewc_get_double(a->o, "time", &s);
  ewc_get_double(b->o, "time", &t);
  return s != t ? (s > t) - (s < t) : tie(a, b);
}

/* Every element of the array `key` of every answer, sorted by cmp; NULL (EWC_ENOMEM or
 * EWC_EPROTO in *rc, *bad the answer without such an array) on failure. */
static item_t *gather(const merge_t *m, const char *key, int (*cmp)(const void *, const void *),
                      size_t *count, int *rc, size_t *bad) {
  size_t total = 0;
  for (size_t k = 0; k < m->n; k++) {
    const msgpack_object *a = m->ans[k].result ? ewc_get(m->ans[k].result, key) : NULL;
    if (m->ans[k].result && (!a || a->type != MSGPACK_OBJECT_ARRAY)) {
      *rc = EWC_EPROTO, *bad = k;
      return NULL;
    }
    total += a ? a->via.array.size : 0;
  }
  item_t *v = malloc((total ? total : 1) * sizeof *v);
  if (!v) {
    *rc = EWC_ENOMEM, *bad = 0;
    return NULL;
  }
  size_t n = 0;
  for (size_t k = 0; k < m->n; k++) {
    const msgpack_object *a = m->ans[k].result ? ewc_get(m->ans[k].result, key) : NULL;
    for (uint32_t i = 0; a && i < a->via.array.size; i++)
      v[n++] = (item_t){&a->via.array.ptr[i], k, i};
  }
  qsort(v, n, sizeof *v, cmp);
  *count = n;
  return v;
}

static void pack_items(msgpack_packer *pk, const item_t *v, size_t n) {
  msgpack_pack_array(pk, n);
  for (size_t i = 0; i < n; i++)
    msgpack_pack_object(pk, *v[i].o);
}

/* Each merge packs the merged answer on m->pk; returns 0 or an EWC_E* code (*bad: which
 * answer was not what the protocol says). */
typedef int (*merge_fn)(const merge_t *m, size_t *bad);

/* ping, metrics: every daemon was asked; the first one's answer stands for all. */
static int merge_first(const merge_t *m, size_t *bad) {
  (void)bad;
  return msgpack_pack_object(m->pk, *m->ans[0].result) ? EWC_ENOMEM : 0;
}

/* list: every stream, sorted by (run, stream). */
static int merge_list(const merge_t *m, size_t *bad) {
  size_t n;
  int rc = 0;
  item_t *v = gather(m, "streams", by_run_stream, &n, &rc, bad);
  if (!v)
    return rc;
  msgpack_pack_map(m->pk, 1);
  pk_str(m->pk, "streams");
  pack_items(m->pk, v, n);
  free(v);
  return 0;
}

/* runs: one entry per run: its streams' union, the smallest first_step, the largest last_step
 * and last_activity (first_step, last_step absent and last_activity nil when no daemon has one,
 * as one daemon answers). */
static int merge_runs(const merge_t *m, size_t *bad) {
  size_t n, nr = 0;
  int rc = 0;
  item_t *v = gather(m, "runs", by_run, &n, &rc, bad);
  if (!v)
    return rc;
  for (size_t i = 0; i < n; i++) {
    if (!ewc_get(v[i].o, "run")) {
      *bad = v[i].from;
      free(v);
      return EWC_EPROTO;
    }
    nr += i == 0 || field_cmp(v[i - 1].o, v[i].o, "run") != 0;
  }
  msgpack_pack_map(m->pk, 1);
  pk_str(m->pk, "runs");
  msgpack_pack_array(m->pk, nr);
  for (size_t i = 0, j; i < n; i = j) {
    size_t ns = 0;
    for (j = i; j < n && field_cmp(v[i].o, v[j].o, "run") == 0; j++) {
      const msgpack_object *ss = ewc_get(v[j].o, "streams");
      ns += ss && ss->type == MSGPACK_OBJECT_ARRAY ? ss->via.array.size : 0;
    }
    item_t *names = malloc((ns ? ns : 1) * sizeof *names);
    if (!names) {
      free(v);
      return EWC_ENOMEM;
    }
    int has_first = 0, has_last = 0, has_act = 0;
    uint64_t first = 0, last = 0, x;
    double act = 0, t;
    size_t k = 0;
    for (size_t e = i; e < j; e++) {
      const msgpack_object *ss = ewc_get(v[e].o, "streams");
      for (uint32_t s = 0; ss && ss->type == MSGPACK_OBJECT_ARRAY && s < ss->via.array.size; s++)
        names[k++] = (item_t){&ss->via.array.ptr[s], v[e].from, s};
      if (ewc_get_u64(v[e].o, "first_step", &x) && (!has_first || x < first))
        first = x, has_first = 1;
      if (ewc_get_u64(v[e].o, "last_step", &x) && (!has_last || x > last))
        last = x, has_last = 1;
      if (ewc_get_double(v[e].o, "last_activity", &t) && (!has_act || t > act))
        act = t, has_act = 1;
    }
    qsort(names, k, sizeof *names, by_name); /* then each name once */
    size_t u = 0;
    for (size_t a = 0; a < k; a++)
      if (u == 0 || str_cmp(names[u - 1].o, names[a].o) != 0)
        names[u++] = names[a];
    msgpack_pack_map(m->pk, 3 + (size_t)has_first + (size_t)has_last);
    pk_str(m->pk, "run");
    msgpack_pack_object(m->pk, *ewc_get(v[i].o, "run"));
    pk_str(m->pk, "streams");
    pack_items(m->pk, names, u);
    if (has_first) {
      pk_str(m->pk, "first_step");
      msgpack_pack_uint64(m->pk, first);
    }
    if (has_last) {
      pk_str(m->pk, "last_step");
      msgpack_pack_uint64(m->pk, last);
    }
    pk_str(m->pk, "last_activity");
    has_act ? msgpack_pack_double(m->pk, act) : msgpack_pack_nil(m->pk);
    free(names);
  }
  free(v);
  return 0;
}

/* alerts: every rule, sorted by (run, stream, rule); with "events": N asked for, the last N
 * events of all daemons by time, oldest first. */
static int merge_alerts(const merge_t *m, size_t *bad) {
  uint64_t want = 0;
  if (m->params)
    ewc_get_u64(m->params, "events", &want);
  size_t n, ne = 0;
  int rc = 0;
  item_t *v = gather(m, "alerts", by_run_stream_rule, &n, &rc, bad), *ev = NULL;
  if (!v)
    return rc;
  if (want && !(ev = gather(m, "events", by_time, &ne, &rc, bad))) {
    free(v);
    return rc;
  }
  msgpack_pack_map(m->pk, 1 + (want > 0));
  pk_str(m->pk, "alerts");
  pack_items(m->pk, v, n);
  if (want) {
    size_t keep = ne < want ? ne : (size_t)want;
    pk_str(m->pk, "events");
    pack_items(m->pk, ev + ne - keep, keep);
  }
  free(v);
  free(ev);
  return 0;
}

/* drop {run}: the run's streams on every daemon; one without any counts none. */
static int merge_drop_run(const merge_t *m, size_t *bad) {
  uint64_t total = 0, s;
  const msgpack_object *run = NULL;
  for (size_t k = 0; k < m->n; k++) {
    if (!m->ans[k].result)
      continue;
    if (!ewc_get_u64(m->ans[k].result, "streams", &s) || !ewc_get(m->ans[k].result, "run")) {
      *bad = k;
      return EWC_EPROTO;
    }
    total += s;
    run = run ? run : ewc_get(m->ans[k].result, "run");
  }
  msgpack_pack_map(m->pk, 3);
  pk_str(m->pk, "run");
  msgpack_pack_object(m->pk, *run);
  pk_str(m->pk, "dropped");
  msgpack_pack_true(m->pk);
  pk_str(m->pk, "streams");
  msgpack_pack_uint64(m->pk, total);
  return 0;
}

/* snapshot: the streams and bytes written everywhere; the slowest daemon's seconds. */
static int merge_snapshot(const merge_t *m, size_t *bad) {
  uint64_t streams = 0, bytes = 0, a, b;
  double secs = 0, t;
  for (size_t k = 0; k < m->n; k++) {
    const msgpack_object *r = m->ans[k].result;
    if (!ewc_get_u64(r, "streams", &a) || !ewc_get_u64(r, "bytes", &b) ||
        !ewc_get_double(r, "seconds", &t)) {
      *bad = k;
      return EWC_EPROTO;
    }
    streams += a, bytes += b, secs = t > secs ? t : secs;
  }
  msgpack_pack_map(m->pk, 3);
  pk_str(m->pk, "streams");
  msgpack_pack_uint64(m->pk, streams);
  pk_str(m->pk, "bytes");
  msgpack_pack_uint64(m->pk, bytes);
  pk_str(m->pk, "seconds");
  msgpack_pack_double(m->pk, secs);
  return 0;
}

/* stats: counters do not add across daemons (gauges, versions): each answer under its address. */
static int merge_stats(const merge_t *m, size_t *bad) {
  (void)bad;
  msgpack_pack_map(m->pk, m->n);
  for (size_t k = 0; k < m->n; k++) {
    pk_str(m->pk, g_addrs[k]);
    msgpack_pack_object(m->pk, *m->ans[k].result);
  }
  return 0;
}

/* The methods a command sends to every daemon, and how their answers become one. `none`: the
 * error code by which a daemon says it has nothing of what was asked (it counts as an empty
 * answer; only when every daemon says it is the command refused). */
static const struct {
  const char *method;
  merge_fn merge;
  const char *none;
} merges[] = {
    {"ping", merge_first, NULL},         {"metrics", merge_first, NULL},
    {"list", merge_list, NULL},          {"runs", merge_runs, NULL},
    {"alerts", merge_alerts, NULL},      {"drop", merge_drop_run, "NO_SUCH_STREAM"},
    {"snapshot", merge_snapshot, NULL},  {"stats", merge_stats, NULL},
};

int fan_merged(ewc_t *const *cs, size_t n, const char *method, const msgpack_sbuffer *params,
               ewc_reply_t *out, size_t *failed) {
  *failed = 0;
  if (n == 1)
    return ewc_call(cs[0], method, params, out);
  memset(out, 0, sizeof *out);
  size_t row = 0;
  while (row < sizeof merges / sizeof merges[0] && strcmp(merges[row].method, method) != 0)
    row++;
  if (row == sizeof merges / sizeof merges[0])
    return EWC_EARG; /* a method without a merge is not sent to several daemons */
  ewc_reply_t *ans = calloc(n, sizeof *ans);
  if (!ans)
    return EWC_ENOMEM;
  int rc = 0;
  size_t answered = 0;
  for (size_t k = 0; k < n && !rc; k++) {
    rc = ewc_call(cs[k], method, params, &ans[k]);
    if (rc == EWC_ERPC && merges[row].none && !strcmp(ans[k].code, merges[row].none)) {
      if (!out->code[0]) { /* the first refusal: the answer if every daemon refuses */
        memcpy(out->code, ans[k].code, sizeof out->code);
        memcpy(out->message, ans[k].message, sizeof out->message);
        *failed = k;
      }
      ewc_reply_free(&ans[k]);
      rc = 0;
      continue;
    }
    if (rc) {
      memcpy(out->code, ans[k].code, sizeof out->code);
      memcpy(out->message, ans[k].message, sizeof out->message);
      *failed = k;
    } else {
      answered++;
    }
  }
  if (!rc && !answered) {
    rc = EWC_ERPC; /* out holds the first daemon's refusal; it speaks for all */
    *failed = n;
  }
  msgpack_sbuffer sb;
  msgpack_sbuffer_init(&sb);
  if (!rc) {
    msgpack_object pm;
    msgpack_unpacked up;
    msgpack_unpacked_init(&up);
    size_t poff = 0;
    int has_params = params && params->size &&
                     msgpack_unpack_next(&up, params->data, params->size, &poff) ==
                         MSGPACK_UNPACK_SUCCESS;
    if (has_params)
      pm = up.data;
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    merge_t m = {ans, n, has_params ? &pm : NULL, &pk};
    size_t bad = 0;
    rc = merges[row].merge(&m, &bad);
    if (rc)
      *failed = bad;
    msgpack_unpacked_destroy(&up);
  }
  for (size_t k = 0; k < n; k++)
    ewc_reply_free(&ans[k]);
  free(ans);
  if (!rc) { /* the merged answer, as ewc_call leaves one: bytes and their decoding */
    size_t len = sb.size, off = 0;
    out->raw = msgpack_sbuffer_release(&sb);
    msgpack_unpacked_init(&out->upk);
    if (msgpack_unpack_next(&out->upk, out->raw, len, &off) != MSGPACK_UNPACK_SUCCESS)
      rc = EWC_ENOMEM; /* what we packed ourselves: only memory can fail */
    else
      out->result = &out->upk.data;
  }
  msgpack_sbuffer_destroy(&sb);
  return rc;
}

int fan_table(const char *method, const msgpack_sbuffer *params,
              void (*print)(const msgpack_object *result)) {
  ewc_t **cs = calloc(g_naddrs, sizeof *cs);
  if (!cs) {
    fprintf(stderr, "eigenwatch: out of memory\n");
    return EX_UNREACHABLE;
  }
  int ex = 0;
  /* every daemon reachable before any is asked: a drop or a snapshot is not half done when the
   * last daemon turns out to be down */
  for (size_t k = 0; k < g_naddrs && !ex; k++)
    cs[k] = open_conn_at(g_addrs[k], &ex);
  if (!ex) {
    ewc_reply_t r;
    size_t failed;
    int rc = fan_merged(cs, g_naddrs, method, params, &r, &failed);
    if (rc)
      ex = fan_exit(failed < g_naddrs ? g_addrs[failed] : NULL, rc, &r);
    else if (g_json || !print)
      ex = print_result(&r);
    else
      print(r.result);
    ewc_reply_free(&r);
  }
  for (size_t k = 0; k < g_naddrs; k++)
    ewc_close(cs[k]);
  free(cs);
  return ex;
}
