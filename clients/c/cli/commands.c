/* commands.c — the one-call commands: ping, list, runs, stats, info, create, drop, reset, query. */
#include "cli.h"
#include "ewp.h"

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- commands ---- */

int c_ping(int argc, char **argv) {
  (void)argv;
  return argc ? usage_error("ping takes no arguments") : simple_call("ping", NULL);
}
static void print_list(const msgpack_object *result) {
  const msgpack_object *s = ewc_get(result, "streams");
  printf("%-16s %-32s %8s %12s %14s\n", "RUN", "STREAM", "DIM", "COUNT", "MEMORY_BYTES");
  for (uint32_t i = 0; s && i < s->via.array.size; i++) {
    const msgpack_object *e = &s->via.array.ptr[i], *n = ewc_get(e, "stream"),
                         *ru = ewc_get(e, "run");
    uint64_t dim = 0, count = 0, mem = 0;
    ewc_get_u64(e, "dim", &dim);
    ewc_get_u64(e, "count", &count);
    ewc_get_u64(e, "memory_bytes", &mem);
    printf("%-16.*s %-32.*s %8llu %12llu %14llu\n", ru ? (int)ru->via.str.size : 1,
           ru ? ru->via.str.ptr : "-", (int)n->via.str.size, n->via.str.ptr,
           (unsigned long long)dim, (unsigned long long)count, (unsigned long long)mem);
  }
}

int c_list(int argc, char **argv) {
  (void)argv;
  if (argc)
    return usage_error("list takes no arguments (--run RUN lists one run's streams)");
  params_t p;
  p_init(&p);
  if (g_run) {
    msgpack_pack_map(&p.pk, 1);
    p_run(&p);
  }
  int ex = table_call("list", NULL, g_run ? &p.sb : NULL, print_list);
  msgpack_sbuffer_destroy(&p.sb);
  return ex;
}

static void print_runs(const msgpack_object *result) {
  const msgpack_object *v = ewc_get(result, "runs");
  printf("%-24s %8s %12s %12s\n", "RUN", "STREAMS", "FIRST_STEP", "LAST_STEP");
  for (uint32_t i = 0; v && i < v->via.array.size; i++) {
    const msgpack_object *e = &v->via.array.ptr[i], *n = ewc_get(e, "run"),
                         *ss = ewc_get(e, "streams");
    uint64_t first = 0, last = 0;
    char a[24] = "-", b[24] = "-";
    if (ewc_get_u64(e, "first_step", &first))
      snprintf(a, sizeof a, "%llu", (unsigned long long)first);
    if (ewc_get_u64(e, "last_step", &last))
      snprintf(b, sizeof b, "%llu", (unsigned long long)last);
    printf("%-24.*s %8u %12s %12s\n", (int)n->via.str.size, n->via.str.ptr,
           ss ? ss->via.array.size : 0, a, b);
  }
}

int c_runs(int argc, char **argv) {
  (void)argv;
  return argc ? usage_error("runs takes no arguments") : table_call("runs", NULL, NULL, print_runs);
}
int c_stats(int argc, char **argv) {
  (void)argv;
  return argc ? usage_error("stats takes no arguments") : simple_call("stats", NULL);
}
int c_info(int argc, char **argv) {
  return argc != 1 ? usage_error("info needs STREAM") : simple_call("info", argv[0]);
}
static void print_dropped_run(const msgpack_object *result) {
  const char *run;
  int rn = str_of(result, "run", &run);
  uint64_t n = 0;
  ewc_get_u64(result, "streams", &n);
  printf("dropped run %.*s: %llu streams\n", rn, run, (unsigned long long)n);
}

int c_drop(int argc, char **argv) {
  if (argc == 0 && g_run) { /* --run R drop: every stream of the run */
    params_t p;
    p_init(&p);
    msgpack_pack_map(&p.pk, 1);
    p_run(&p);
    int ex = table_call("drop", NULL, &p.sb, print_dropped_run);
    msgpack_sbuffer_destroy(&p.sb);
    return ex;
  }
  return argc != 1 ? usage_error("drop needs STREAM (or --run RUN alone: the whole run)")
                   : simple_call("drop", argv[0]);
}
int c_reset(int argc, char **argv) {
  return argc != 1 ? usage_error("reset needs STREAM") : simple_call("reset", argv[0]);
}

/* ---- create: one option per field of the create table ----
 * The options are create's fields (proto/ewp.h: the library's configuration table, EW_CONFIG_MAP,
 * and the daemon's own fields) that take one value on the command line: --NAME with '_' written
 * '-'. stream and run are the word and --run; the eval list and alert rules are not options. */

static bool create_option(const ewp_field_info_t *f) {
  return f->type == EWP_T_UINT || f->type == EWP_T_NUM || f->type == EWP_T_BOOL ||
         f->type == EWP_T_ENUM || f->type == EWP_T_STR || f->type == EWP_T_NAMES ||
         f->type == EWP_T_DIMS;
}

/* A list option's value, comma-separated: names (--columns entropy,logp) or integers
 * (--shape 24,16), packed as an array. */
static void p_list(params_t *p, const ewp_field_info_t *f, const char *v) {
  size_t n = 1;
  for (const char *c = v; *c; c++)
    n += *c == ',';
  msgpack_pack_array(&p->pk, n);
  for (const char *c = v;; c++) {
    const char *e = strchr(c, ',');
    size_t len = e ? (size_t)(e - c) : strlen(c);
    if (f->type == EWP_T_NAMES) {
      msgpack_pack_str(&p->pk, len);
      msgpack_pack_str_body(&p->pk, c, len);
    } else {
      msgpack_pack_uint64(&p->pk, strtoull(c, NULL, 10));
    }
    if (!e)
      break;
    c = e;
  }
}

/* True when arg is "--" and name with '_' written '-'. */
static bool is_option(const char *arg, const char *name) {
  if (strncmp(arg, "--", 2) != 0)
    return false;
  for (arg += 2; *name; name++, arg++)
    if (*arg != (*name == '_' ? '-' : *name))
      return false;
  return *arg == 0;
}

const char *create_args(void) {
  static char buf[2048];
  if (buf[0])
    return buf;
  size_t n, len = (size_t)snprintf(buf, sizeof buf, "STREAM");
  const ewp_field_info_t *f = ewp_method_fields(EWP_METHOD_CREATE, &n);
  for (size_t i = 0; i < n && len < sizeof buf; i++) {
    if (!create_option(&f[i]))
      continue;
    char name[EWP_METHOD_NAME_MAX], value[256] = "";
    size_t k = 0;
    for (const char *c = f[i].name; *c && k + 1 < sizeof name; c++)
      name[k++] = *c == '_' ? '-' : *c;
    name[k] = 0;
    if (f[i].type == EWP_T_NAMES || f[i].type == EWP_T_DIMS)
      snprintf(value, sizeof value, "%s", f[i].type == EWP_T_NAMES ? "NAME,..." : "N[,N]");
    else if (f[i].type == EWP_T_ENUM)
      for (const char *const *v = f[i].values; v && *v; v++)
        snprintf(value + strlen(value), sizeof value - strlen(value), "%s%s",
                 v == f[i].values ? "" : "|", *v);
    else
      snprintf(value, sizeof value, "%s",
               f[i].type == EWP_T_UINT  ? "N"
               : f[i].type == EWP_T_NUM ? "NUMBER"
               : f[i].type == EWP_T_BOOL ? "true|false"
                                         : "TEXT");
    bool req = f[i].flags & EWP_F_REQ;
    len += (size_t)snprintf(buf + len, sizeof buf - len, " %s--%s %s%s", req ? "" : "[", name,
                            value, req ? "" : "]");
  }
  return buf;
}

int c_create(int argc, char **argv) {
  if (argc < 1)
    return usage_error("create needs STREAM --dim N");
  size_t nf;
  const ewp_field_info_t *f = ewp_method_fields(EWP_METHOD_CREATE, &nf);
  const char *vals[64] = {0};
  if (nf > 64)
    return usage_error("create: the field table outgrew the CLI (%zu fields)", nf);
  for (int i = 1; i < argc; i++) {
    size_t k = nf;
    for (size_t j = 0; j < nf && k == nf; j++)
      if (create_option(&f[j]) && is_option(argv[i], f[j].name))
        k = j;
    if (k == nf || i + 1 >= argc)
      return usage_error("create: unknown or incomplete option '%s'", argv[i]);
    vals[k] = argv[++i];
  }
  for (size_t j = 0; j < nf; j++)
    if (create_option(&f[j]) && (f[j].flags & EWP_F_REQ) && !vals[j])
      return usage_error("create needs --%s", f[j].name);
  bool matrix = true, dim = false; /* a matrix stream needs --dim; the other kinds not */
  for (size_t j = 0; j < nf; j++) {
    if (vals[j] && !strcmp(f[j].name, "kind"))
      matrix = !strcmp(vals[j], "matrix");
    dim |= vals[j] && !strcmp(f[j].name, "dim");
  }
  if (matrix && !dim)
    return usage_error("create needs --dim (or --kind tokens with --columns, --kind stats with "
                       "--shape, --kind paired with --dims)");
  for (size_t j = 0; j < nf; j++)
    if (vals[j] && f[j].type == EWP_T_DIMS)
      for (const char *c = vals[j]; *c; c++)
        if (!(*c == ',' || (*c >= '0' && *c <= '9')))
          return usage_error("--%s wants integers separated by commas, got '%s'", f[j].name,
                             vals[j]);
  int ex = 0;
  ewc_t *c = open_stream_conn(NULL, argv[0], &ex);
  if (!c)
    return ex;
  params_t p;
  p_init(&p);
  size_t n = 1;
  for (size_t j = 0; j < nf; j++)
    n += vals[j] != NULL;
  msgpack_pack_map(&p.pk, n + (g_run != NULL));
  p_str(&p, "stream");
  p_str(&p, argv[0]);
  p_run(&p);
  for (size_t j = 0; j < nf; j++)
    if (vals[j]) {
      p_str(&p, f[j].name);
      if (f[j].type == EWP_T_NAMES || f[j].type == EWP_T_DIMS)
        p_list(&p, &f[j], vals[j]);
      else
        p_value(&p, vals[j]);
    }
  ewc_reply_t r;
  int rc = ewc_call(c, "create", &p.sb, &r);
  ex = rc ? rpc_exit(rc, &r) : print_result(&r);
  ewc_reply_free(&r);
  msgpack_sbuffer_destroy(&p.sb);
  ewc_close(c);
  return ex;
}

typedef struct {
  const char *stream;
  const char *metrics[64];
  int nmetrics;
  char *params[32];
  int nparams;
  int center;
  const char *source;
  int fresh;
  long long max_lag;
} qargs_t;

static int parse_query(int argc, char **argv, qargs_t *q) {
  memset(q, 0, sizeof *q);
  q->center = -1;
  q->max_lag = -1;
  for (int i = 0; i < argc; i++) {
    const char *a = argv[i];
    const char *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (!strcmp(a, "--param") && v) {
      if (!strchr(v, '=') || q->nparams >= 32)
        return usage_error("--param wants name=value (at most 32), got '%s'", v);
      q->params[q->nparams++] = argv[++i];
    } else if (!strcmp(a, "--center") && v) {
      if (strcmp(v, "true") != 0 && strcmp(v, "false") != 0)
        return usage_error("--center wants true or false, got '%s'", v);
      q->center = !strcmp(argv[++i], "true") ? 1 : 0;
    } else if (!strcmp(a, "--source") && v) {
      q->source = argv[++i];
    } else if (!strcmp(a, "--fresh")) {
      q->fresh = 1;
    } else if (!strcmp(a, "--max-lag") && v) {
      uint64_t lag;
      if (parse_u64("--max-lag", argv[++i], 0, INT64_MAX, &lag))
        return EX_USAGE;
      q->max_lag = (long long)lag;
    } else if (!strncmp(a, "--", 2)) {
      return usage_error("unknown or incomplete option '%s'", a);
    } else if (!q->stream) {
      q->stream = a;
    } else if (q->nmetrics < 64) {
      q->metrics[q->nmetrics++] = a;
    } else {
      return usage_error("query takes at most 64 metrics");
    }
  }
  if (!q->stream)
    return usage_error("query needs STREAM");
  if (!q->nmetrics)
    return usage_error("query needs at least one METRIC");
  return 0;
}

static int run_query(ewc_t *c, qargs_t *q, ewc_reply_t *r) {
  params_t p;
  p_init(&p);
  if (q->nparams) {
    msgpack_pack_map(&p.pk, (size_t)q->nparams);
    for (int i = 0; i < q->nparams; i++) {
      char *eq = strchr(q->params[i], '=');
      *eq = 0;
      p_str(&p, q->params[i]);
      p_value(&p, eq + 1);
      *eq = '=';
    }
  }
  int rc = ewc_query(c, q->stream, q->metrics, (size_t)q->nmetrics, q->nparams ? &p.sb : NULL,
                     q->center, q->source, q->fresh, q->max_lag, r);
  msgpack_sbuffer_destroy(&p.sb);
  return rc;
}

int c_query(int argc, char **argv) {
  qargs_t q;
  int ex = parse_query(argc, argv, &q);
  if (ex)
    return ex;
  ewc_t *c = open_stream_conn(NULL, q.stream, &ex);
  if (!c)
    return ex;
  ewc_reply_t r;
  int rc = run_query(c, &q, &r);
  if (rc) {
    ex = rpc_exit(rc, &r);
  } else if (g_json) {
    ex = print_result(&r);
  } else {
    const msgpack_object *m = ewc_get(r.result, "metrics");
    uint64_t as_of = 0, count = 0;
    double ms = 0;
    ewc_get_u64(r.result, "as_of", &as_of);
    ewc_get_u64(r.result, "count", &count);
    ewc_get_double(r.result, "elapsed_ms", &ms);
    int w = 6;
    for (uint32_t i = 0; m && i < m->via.map.size; i++)
      if ((int)m->via.map.ptr[i].key.via.str.size > w)
        w = (int)m->via.map.ptr[i].key.via.str.size;
    printf("%-*s  %s\n", w, "METRIC", "VALUE");
    for (uint32_t i = 0; m && i < m->via.map.size; i++) {
      const msgpack_object *k = &m->via.map.ptr[i].key;
      printf("%-*.*s  ", w, (int)k->via.str.size, k->via.str.ptr);
      scalar(stdout, &m->via.map.ptr[i].val);
      fputc('\n', stdout);
    }
    printf("# stream %s: %llu rows, answer as of %llu, %.2f ms\n", q.stream,
           (unsigned long long)count, (unsigned long long)as_of, ms);
  }
  ewc_reply_free(&r);
  ewc_close(c);
  return ex;
}

