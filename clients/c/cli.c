/* cli.c — `eigenwatch`, the command-line client (over libeigenwatch-client).
 *
 *   eigenwatch [--address ADDR] [--timeout MS] [--json] COMMAND [ARGS]   (eigenwatch help)
 *
 * Exit codes: 0 success; 1 the daemon answered an error (its code and message on stderr);
 * 2 usage error; 3 cannot reach the daemon (connect, I/O, timeout); 4 bad input file. */
#include "ewclient.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

enum { EX_OK = 0, EX_DAEMON = 1, EX_USAGE = 2, EX_UNREACHABLE = 3, EX_INPUT = 4 };

static const char *g_address;
static int g_timeout = 30000;
static int g_json;
static const char *g_run; /* --run: the run every stream named here belongs to */

typedef struct {
  const char *name, *args, *help;
  int (*fn)(int argc, char **argv);
} cmd_t;

static int usage_error(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "eigenwatch: ");
  vfprintf(stderr, fmt, ap);
  fprintf(stderr, " (see eigenwatch help)\n");
  va_end(ap);
  return EX_USAGE;
}

static int rpc_exit(int rc, ewc_reply_t *r) {
  if (rc == EWC_ERPC) {
    fprintf(stderr, "eigenwatch: %s: %s\n", r->code, r->message);
    return EX_DAEMON;
  }
  fprintf(stderr, "eigenwatch: %s\n", ewc_strerror(rc));
  return EX_UNREACHABLE;
}

static ewc_t *open_conn(int *ex) {
  ewc_t *c = NULL;
  char err[512];
  int rc = ewc_connect(g_address, g_timeout, &c, err, sizeof err);
  if (rc) {
    fprintf(stderr, "eigenwatch: %s\n", err);
    *ex = rc == EWC_EADDR ? EX_USAGE : EX_UNREACHABLE;
    return NULL;
  }
  if (g_run && ewc_set_run(c, g_run) != 0) {
    fprintf(stderr, "eigenwatch: out of memory\n");
    ewc_close(c);
    *ex = EX_UNREACHABLE;
    return NULL;
  }
  return c;
}

/* ---- output ---- */

static void json_str(FILE *f, const char *p, size_t n) {
  fputc('"', f);
  for (size_t i = 0; i < n; i++) {
    unsigned char ch = (unsigned char)p[i];
    if (ch == '"' || ch == '\\')
      fprintf(f, "\\%c", ch);
    else if (ch < 0x20)
      fprintf(f, "\\u%04x", ch);
    else
      fputc(ch, f);
  }
  fputc('"', f);
}

/* msgpack → JSON (non-finite floats become null: JSON has no inf/nan) */
static void json(FILE *f, const msgpack_object *o) {
  switch (o->type) {
  case MSGPACK_OBJECT_NIL: fputs("null", f); break;
  case MSGPACK_OBJECT_BOOLEAN: fputs(o->via.boolean ? "true" : "false", f); break;
  case MSGPACK_OBJECT_POSITIVE_INTEGER: fprintf(f, "%llu", (unsigned long long)o->via.u64); break;
  case MSGPACK_OBJECT_NEGATIVE_INTEGER: fprintf(f, "%lld", (long long)o->via.i64); break;
  case MSGPACK_OBJECT_FLOAT32:
  case MSGPACK_OBJECT_FLOAT64:
    if (isfinite(o->via.f64))
      fprintf(f, "%.17g", o->via.f64);
    else
      fputs("null", f);
    break;
  case MSGPACK_OBJECT_STR: json_str(f, o->via.str.ptr, o->via.str.size); break;
  case MSGPACK_OBJECT_BIN: json_str(f, o->via.bin.ptr, o->via.bin.size); break;
  case MSGPACK_OBJECT_ARRAY:
    fputc('[', f);
    for (uint32_t i = 0; i < o->via.array.size; i++) {
      if (i)
        fputs(", ", f);
      json(f, &o->via.array.ptr[i]);
    }
    fputc(']', f);
    break;
  case MSGPACK_OBJECT_MAP:
    fputc('{', f);
    for (uint32_t i = 0; i < o->via.map.size; i++) {
      if (i)
        fputs(", ", f);
      json(f, &o->via.map.ptr[i].key);
      fputs(": ", f);
      json(f, &o->via.map.ptr[i].val);
    }
    fputc('}', f);
    break;
  default: fputs("null", f);
  }
}

static void scalar(FILE *f, const msgpack_object *o) {
  if (o->type == MSGPACK_OBJECT_FLOAT32 || o->type == MSGPACK_OBJECT_FLOAT64)
    fprintf(f, "%.10g", o->via.f64);
  else if (o->type == MSGPACK_OBJECT_STR)
    fprintf(f, "%.*s", (int)o->via.str.size, o->via.str.ptr);
  else if (o->type == MSGPACK_OBJECT_ARRAY && o->via.array.size > 8) {
    for (uint32_t i = 0; i < 8; i++) {
      scalar(f, &o->via.array.ptr[i]);
      fputc(' ', f);
    }
    fprintf(f, "... (%u values)", o->via.array.size);
  } else if (o->type == MSGPACK_OBJECT_ARRAY) {
    for (uint32_t i = 0; i < o->via.array.size; i++) {
      if (i)
        fputc(' ', f);
      scalar(f, &o->via.array.ptr[i]);
    }
  } else
    json(f, o);
}

/* A map as aligned "key  value" lines (nested maps indented). */
static void table(const msgpack_object *m, int indent) {
  if (m->type != MSGPACK_OBJECT_MAP) {
    scalar(stdout, m);
    fputc('\n', stdout);
    return;
  }
  int w = 0;
  for (uint32_t i = 0; i < m->via.map.size; i++)
    if ((int)m->via.map.ptr[i].key.via.str.size > w)
      w = (int)m->via.map.ptr[i].key.via.str.size;
  for (uint32_t i = 0; i < m->via.map.size; i++) {
    const msgpack_object *k = &m->via.map.ptr[i].key, *v = &m->via.map.ptr[i].val;
    printf("%*s%-*.*s  ", indent, "", w, (int)k->via.str.size, k->via.str.ptr);
    if (v->type == MSGPACK_OBJECT_MAP) {
      fputc('\n', stdout);
      table(v, indent + 2);
    } else {
      scalar(stdout, v);
      fputc('\n', stdout);
    }
  }
}

static int print_result(ewc_reply_t *r) {
  if (g_json) {
    json(stdout, r->result);
    fputc('\n', stdout);
  } else {
    table(r->result, 0);
  }
  return EX_OK;
}

/* ---- request building ---- */

typedef struct {
  msgpack_sbuffer sb;
  msgpack_packer pk;
} params_t;

static void p_init(params_t *p) {
  msgpack_sbuffer_init(&p->sb);
  msgpack_packer_init(&p->pk, &p->sb, msgpack_sbuffer_write);
}

static void p_str(params_t *p, const char *s) {
  size_t n = strlen(s);
  msgpack_pack_str(&p->pk, n);
  msgpack_pack_str_body(&p->pk, s, n);
}

/* "run": --run's value, when given (the caller counted it in the map). */
static void p_run(params_t *p) {
  if (g_run) {
    p_str(p, "run");
    p_str(p, g_run);
  }
}

/* A value from the command line: true/false, an integer, a number, or a string. */
static void p_value(params_t *p, const char *v) {
  char *end;
  if (!strcmp(v, "true") || !strcmp(v, "false")) {
    v[0] == 't' ? msgpack_pack_true(&p->pk) : msgpack_pack_false(&p->pk);
    return;
  }
  long long i = strtoll(v, &end, 10);
  if (*v && !*end) {
    msgpack_pack_int64(&p->pk, i);
    return;
  }
  double d = strtod(v, &end);
  if (*v && !*end && strcmp(v, "inf") != 0) {
    msgpack_pack_double(&p->pk, d);
    return;
  }
  p_str(p, v);
}

/* A call naming `stream` (or nothing), in --run's run. */
static int simple_call(const char *method, const char *stream) {
  int ex = 0;
  ewc_t *c = open_conn(&ex);
  if (!c)
    return ex;
  params_t p;
  p_init(&p);
  if (stream) {
    msgpack_pack_map(&p.pk, 1 + (g_run != NULL));
    p_str(&p, "stream");
    p_str(&p, stream);
    p_run(&p);
  }
  ewc_reply_t r;
  int rc = ewc_call(c, method, stream ? &p.sb : NULL, &r);
  ex = rc ? rpc_exit(rc, &r) : print_result(&r);
  ewc_reply_free(&r);
  msgpack_sbuffer_destroy(&p.sb);
  ewc_close(c);
  return ex;
}

/* ---- commands ---- */

static int c_ping(int argc, char **argv) {
  (void)argv;
  return argc ? usage_error("ping takes no arguments") : simple_call("ping", NULL);
}
static int c_list(int argc, char **argv) {
  (void)argv;
  if (argc)
    return usage_error("list takes no arguments (--run RUN lists one run's streams)");
  int ex = 0;
  ewc_t *c = open_conn(&ex);
  if (!c)
    return ex;
  params_t p;
  p_init(&p);
  if (g_run) {
    msgpack_pack_map(&p.pk, 1);
    p_run(&p);
  }
  ewc_reply_t r;
  int rc = ewc_call(c, "list", g_run ? &p.sb : NULL, &r);
  if (rc) {
    ex = rpc_exit(rc, &r);
  } else if (g_json) {
    ex = print_result(&r);
  } else {
    const msgpack_object *s = ewc_get(r.result, "streams");
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
  ewc_reply_free(&r);
  msgpack_sbuffer_destroy(&p.sb);
  ewc_close(c);
  return ex;
}

static int c_runs(int argc, char **argv) {
  (void)argv;
  if (argc)
    return usage_error("runs takes no arguments");
  if (g_json)
    return simple_call("runs", NULL);
  int ex = 0;
  ewc_t *c = open_conn(&ex);
  if (!c)
    return ex;
  ewc_reply_t r;
  int rc = ewc_call(c, "runs", NULL, &r);
  if (rc) {
    ex = rpc_exit(rc, &r);
  } else {
    const msgpack_object *v = ewc_get(r.result, "runs");
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
  ewc_reply_free(&r);
  ewc_close(c);
  return ex;
}
static int c_stats(int argc, char **argv) {
  (void)argv;
  return argc ? usage_error("stats takes no arguments") : simple_call("stats", NULL);
}
static int c_info(int argc, char **argv) {
  return argc != 1 ? usage_error("info needs STREAM") : simple_call("info", argv[0]);
}
static int c_drop(int argc, char **argv) {
  return argc != 1 ? usage_error("drop needs STREAM") : simple_call("drop", argv[0]);
}
static int c_reset(int argc, char **argv) {
  return argc != 1 ? usage_error("reset needs STREAM") : simple_call("reset", argv[0]);
}

static int c_create(int argc, char **argv) {
  if (argc < 1)
    return usage_error("create needs STREAM --dim N");
  static const char *opts[] = {"dim", "normalize", "window", "window-mode", "decay", "topk",
                               "shuffle", "seed"};
  const char *vals[8] = {0};
  for (int i = 1; i < argc; i++) {
    int k = -1;
    for (int j = 0; j < 8; j++)
      if (!strncmp(argv[i], "--", 2) && !strcmp(argv[i] + 2, opts[j]))
        k = j;
    if (k < 0 || i + 1 >= argc)
      return usage_error("create: unknown or incomplete option '%s'", argv[i]);
    vals[k] = argv[++i];
  }
  if (!vals[0])
    return usage_error("create needs --dim N");
  int ex = 0;
  ewc_t *c = open_conn(&ex);
  if (!c)
    return ex;
  params_t p;
  p_init(&p);
  int n = 1;
  for (int j = 0; j < 8; j++)
    n += vals[j] != NULL;
  msgpack_pack_map(&p.pk, (size_t)n + (g_run != NULL));
  p_str(&p, "stream");
  p_str(&p, argv[0]);
  p_run(&p);
  for (int j = 0; j < 8; j++)
    if (vals[j]) {
      p_str(&p, j == 3 ? "window_mode" : opts[j]);
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
  double interval;
  long count;
} qargs_t;

static int parse_query(int argc, char **argv, qargs_t *q, int watch) {
  memset(q, 0, sizeof *q);
  q->center = -1;
  q->max_lag = -1;
  q->interval = 1.0;
  q->count = -1;
  for (int i = 0; i < argc; i++) {
    const char *a = argv[i];
    const char *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (!strcmp(a, "--param") && v) {
      if (!strchr(v, '=') || q->nparams >= 32)
        return usage_error("--param wants name=value, got '%s'", v);
      q->params[q->nparams++] = argv[++i];
    } else if (!strcmp(a, "--center") && v) {
      q->center = !strcmp(argv[++i], "true") ? 1 : 0;
    } else if (!strcmp(a, "--source") && v) {
      q->source = argv[++i];
    } else if (!strcmp(a, "--fresh")) {
      q->fresh = 1;
    } else if (!strcmp(a, "--max-lag") && v) {
      q->max_lag = atoll(argv[++i]);
    } else if (watch && !strcmp(a, "--interval") && v) {
      q->interval = atof(argv[++i]);
    } else if (watch && !strcmp(a, "--count") && v) {
      q->count = atol(argv[++i]);
    } else if (!strncmp(a, "--", 2)) {
      return usage_error("unknown or incomplete option '%s'", a);
    } else if (!q->stream) {
      q->stream = a;
    } else if (q->nmetrics < 64) {
      q->metrics[q->nmetrics++] = a;
    }
  }
  if (!q->stream)
    return usage_error("%s needs STREAM", watch ? "watch" : "query");
  if (!q->nmetrics && watch) {
    static const char *dflt[] = {"entropy", "erank", "participation_ratio", "anisotropy"};
    for (int i = 0; i < 4; i++)
      q->metrics[q->nmetrics++] = dflt[i];
  }
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

static int c_query(int argc, char **argv) {
  qargs_t q;
  int ex = parse_query(argc, argv, &q, 0);
  if (ex)
    return ex;
  ewc_t *c = open_conn(&ex);
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

/* ---- watch ---- */

#define HIST 48
static void sparkline(const double *h, int n) {
  static const char *bars[] = {"▁", "▂", "▃", "▄", "▅", "▆", "▇", "█"};
  double lo = INFINITY, hi = -INFINITY;
  for (int i = 0; i < n; i++)
    if (isfinite(h[i])) {
      lo = fmin(lo, h[i]);
      hi = fmax(hi, h[i]);
    }
  for (int i = 0; i < n; i++) {
    int b = (!isfinite(h[i]) || hi <= lo) ? 3 : (int)((h[i] - lo) / (hi - lo) * 7.0 + 0.5);
    fputs(bars[b < 0 ? 0 : b > 7 ? 7 : b], stdout);
  }
}

static int c_watch(int argc, char **argv) {
  qargs_t q;
  int ex = parse_query(argc, argv, &q, 1);
  if (ex)
    return ex;
  ewc_t *c = open_conn(&ex);
  if (!c)
    return ex;
  int tty = isatty(1);
  static double hist[64][HIST];
  int nh = 0;
  for (long it = 0; q.count < 0 || it < q.count; it++) {
    ewc_reply_t r;
    int rc = run_query(c, &q, &r);
    if (rc) {
      ex = rpc_exit(rc, &r);
      ewc_reply_free(&r);
      break;
    }
    const msgpack_object *m = ewc_get(r.result, "metrics");
    if (nh == HIST) {
      for (int k = 0; k < q.nmetrics; k++)
        memmove(hist[k], hist[k] + 1, (HIST - 1) * sizeof(double));
      nh--;
    }
    uint64_t count = 0;
    ewc_get_u64(r.result, "count", &count);
    if (tty)
      fputs("\033[H\033[2J", stdout); /* redraw in place */
    printf("eigenwatch watch %s — %llu rows — every %.1fs%s\n", q.stream,
           (unsigned long long)count, q.interval, tty ? " (Ctrl-C to stop)" : "");
    for (int k = 0; k < q.nmetrics; k++) {
      double v = NAN;
      ewc_get_double(m, q.metrics[k], &v);
      hist[k][nh] = v;
      printf("%-22s %14.6g  ", q.metrics[k], v);
      sparkline(hist[k], nh + 1);
      fputc('\n', stdout);
    }
    nh++;
    fflush(stdout);
    ewc_reply_free(&r);
    if (q.count < 0 || it + 1 < q.count) {
      struct timespec ts = {(time_t)q.interval, (long)((q.interval - floor(q.interval)) * 1e9)};
      nanosleep(&ts, NULL);
    }
  }
  ewc_close(c);
  return ex;
}

/* ---- ingest ---- */

typedef struct {
  unsigned char *data;
  size_t n, d;
  const char *dtype;
} rows_t;

/* Parses a C-order .npy of f4/f8/f2 (little-endian) or bf16 (descr 'bfloat16', '<V2'/'|V2', or
 * any 2-byte type with --dtype bf16). */
static int read_npy(const char *path, const char *force, rows_t *out, char *err, size_t cap) {
  FILE *f = fopen(path, "rb");
  if (!f) {
    snprintf(err, cap, "cannot open %s", path);
    return -1;
  }
  unsigned char magic[10];
  if (fread(magic, 1, 10, f) != 10 || memcmp(magic, "\x93NUMPY", 6) != 0) {
    snprintf(err, cap, "%s is not a .npy file", path);
    fclose(f);
    return -1;
  }
  size_t hlen = magic[8] | (size_t)magic[9] << 8;
  if (magic[6] >= 2) {
    unsigned char b[2];
    if (fread(b, 1, 2, f) != 2) {
      fclose(f);
      return -1;
    }
    hlen |= (size_t)b[0] << 16 | (size_t)b[1] << 24;
  }
  char *h = calloc(1, hlen + 1);
  if (!h || fread(h, 1, hlen, f) != hlen) {
    snprintf(err, cap, "%s: truncated header", path);
    free(h);
    fclose(f);
    return -1;
  }
  const char *descr = strstr(h, "'descr':"), *fo = strstr(h, "'fortran_order':"),
             *sh = strstr(h, "'shape':");
  char dt[32] = "";
  if (!descr || !fo || !sh || sscanf(descr, "'descr': '%31[^']'", dt) != 1) {
    snprintf(err, cap, "%s: cannot read the header", path);
    free(h);
    fclose(f);
    return -1;
  }
  if (strstr(fo, "True")) {
    snprintf(err, cap, "%s: Fortran order is not supported (save with C order)", path);
    free(h);
    fclose(f);
    return -1;
  }
  unsigned long long a = 0, b = 0;
  int dims = sscanf(sh, "'shape': (%llu, %llu", &a, &b);
  if (dims < 1) {
    snprintf(err, cap, "%s: cannot read the shape", path);
    free(h);
    fclose(f);
    return -1;
  }
  if (strchr(sh, ')') && dims == 2) { /* more than two dimensions are not rows */
    const char *close_p = strchr(sh, ')');
    int commas = 0;
    for (const char *q = strchr(sh, '('); q && q < close_p; q++)
      commas += *q == ',';
    if (commas > 2 || (commas == 2 && close_p[-1] != ',')) {
      snprintf(err, cap, "%s: only (n, d) or (d,) arrays can be ingested", path);
      free(h);
      fclose(f);
      return -1;
    }
  }
  if (dims == 1) { /* (d,) is one row */
    b = a;
    a = 1;
  }
  free(h);
  const char *dtype = NULL;
  size_t esz = 0;
  if (!strcmp(dt, "<f4")) dtype = "f32", esz = 4;
  else if (!strcmp(dt, "<f8")) dtype = "f64", esz = 8;
  else if (!strcmp(dt, "<f2")) dtype = "f16", esz = 2;
  else if (!strcmp(dt, "bfloat16") || !strcmp(dt, "<V2") || !strcmp(dt, "|V2")) dtype = "bf16", esz = 2;
  if (force) {
    size_t want = !strcmp(force, "f32") || !strcmp(force, "float32") ? 4
                  : !strcmp(force, "f64") ? 8 : 2;
    if (strlen(dt) < 3 || (size_t)(dt[strlen(dt) - 1] - '0') != want) {
      snprintf(err, cap, "%s: --dtype %s does not match the file's %s", path, force, dt);
      fclose(f);
      return -1;
    }
    dtype = force, esz = want;
  }
  if (!dtype) {
    snprintf(err, cap, "%s: dtype %s is not one of f32, f64, f16, bf16 (little-endian)", path, dt);
    fclose(f);
    return -1;
  }
  size_t bytes = (size_t)(a * b) * esz;
  out->data = malloc(bytes ? bytes : 1);
  if (!out->data || fread(out->data, 1, bytes, f) != bytes) {
    snprintf(err, cap, "%s: the file holds fewer values than its shape says", path);
    fclose(f);
    return -1;
  }
  fclose(f);
  out->n = a;
  out->d = b;
  out->dtype = dtype;
  return 0;
}

static int read_csv(const char *path, rows_t *out, char *err, size_t cap) {
  FILE *f = fopen(path, "r");
  if (!f) {
    snprintf(err, cap, "cannot open %s", path);
    return -1;
  }
  size_t n = 0, d = 0, capv = 1024, nv = 0;
  double *v = malloc(capv * sizeof(double));
  char *line = NULL;
  size_t lcap = 0;
  long lineno = 0;
  while (getline(&line, &lcap, f) > 0) {
    lineno++;
    char *p = line;
    while (isspace((unsigned char)*p))
      p++;
    if (!*p || *p == '#')
      continue;
    size_t k = 0;
    int header = 0;
    for (;;) {
      char *end;
      double x = strtod(p, &end);
      if (end == p) {
        header = 1;
        break;
      }
      if (nv == capv)
        v = realloc(v, (capv *= 2) * sizeof(double));
      v[nv++] = x;
      k++;
      p = end;
      while (*p == ' ' || *p == '\t')
        p++;
      if (*p == ',') {
        p++;
        continue;
      }
      break;
    }
    if (header) {
      if (n == 0 && k == 0)
        continue; /* a header line */
      snprintf(err, cap, "%s:%ld: not a number", path, lineno);
      free(v);
      free(line);
      fclose(f);
      return -1;
    }
    if (n == 0)
      d = k;
    else if (k != d) {
      snprintf(err, cap, "%s:%ld: %zu values; the first row has %zu", path, lineno, k, d);
      free(v);
      free(line);
      fclose(f);
      return -1;
    }
    n++;
  }
  free(line);
  fclose(f);
  out->data = (unsigned char *)v;
  out->n = n;
  out->d = d;
  out->dtype = "f64";
  return 0;
}

static int c_ingest(int argc, char **argv) {
  const char *stream = NULL, *file = NULL, *force = NULL;
  size_t batch = 1024;
  for (int i = 0; i < argc; i++) {
    if (!strcmp(argv[i], "--batch") && i + 1 < argc)
      batch = (size_t)atol(argv[++i]);
    else if (!strcmp(argv[i], "--dtype") && i + 1 < argc)
      force = argv[++i];
    else if (!strncmp(argv[i], "--", 2))
      return usage_error("ingest: unknown or incomplete option '%s'", argv[i]);
    else if (!stream)
      stream = argv[i];
    else if (!file)
      file = argv[i];
    else
      return usage_error("ingest takes STREAM FILE");
  }
  if (!stream || !file || batch == 0)
    return usage_error("ingest needs STREAM FILE");
  rows_t rows;
  char err[512];
  size_t fl = strlen(file);
  int rc = fl > 4 && !strcmp(file + fl - 4, ".csv") ? read_csv(file, &rows, err, sizeof err)
                                                    : read_npy(file, force, &rows, err, sizeof err);
  if (rc) {
    fprintf(stderr, "eigenwatch: %s\n", err);
    return EX_INPUT;
  }
  int ex = 0;
  ewc_t *c = open_conn(&ex);
  if (!c) {
    free(rows.data);
    return ex;
  }
  size_t esz = !strcmp(rows.dtype, "f64") ? 8 : !strcmp(rows.dtype, "f32") ? 4 : 2;
  int bar = isatty(2);
  uint64_t count = 0;
  for (size_t r0 = 0; r0 < rows.n; r0 += batch) {
    size_t b = rows.n - r0 < batch ? rows.n - r0 : batch;
    ewc_reply_t r;
    memset(&r, 0, sizeof r);
    rc = ewc_ingest(c, stream, rows.data + r0 * rows.d * esz, rows.dtype, b, rows.d, false,
                    &count, &r);
    if (rc) {
      if (bar)
        fputc('\n', stderr);
      ex = rpc_exit(rc, &r);
      fprintf(stderr, "eigenwatch: stopped at row %zu of %zu (rows before it were ingested)\n",
              r0, rows.n);
      ewc_reply_free(&r);
      break;
    }
    ewc_reply_free(&r);
    if (bar) {
      size_t done = r0 + b;
      int fill = (int)(40.0 * (double)done / (double)rows.n);
      fprintf(stderr, "\r[%.*s%*s] %3d%% %zu/%zu rows", fill,
              "########################################", 40 - fill, "",
              (int)(100.0 * (double)done / (double)rows.n), done, rows.n);
    }
  }
  if (bar && ex == 0)
    fputc('\n', stderr);
  if (ex == 0) {
    if (g_json)
      printf("{\"stream\": \"%s\", \"accepted\": %zu, \"count\": %llu}\n", stream, rows.n,
             (unsigned long long)count);
    else
      printf("ingested %zu rows of %zu (%s) into %s; it now holds %llu rows\n", rows.n, rows.d,
             rows.dtype, stream, (unsigned long long)count);
  }
  free(rows.data);
  ewc_close(c);
  return ex;
}

/* ---- state: snapshot, export, merge ---- */

static int c_snapshot(int argc, char **argv) {
  (void)argv;
  return argc ? usage_error("snapshot takes no arguments") : simple_call("snapshot", NULL);
}

/* Writes data to path through a temp file and a rename: a reader never sees half a state. */
static int write_file(const char *path, const void *data, size_t len) {
  char tmp[4200];
  if (snprintf(tmp, sizeof tmp, "%s.tmp%d", path, (int)getpid()) >= (int)sizeof tmp) {
    fprintf(stderr, "eigenwatch: path too long: %s\n", path);
    return EX_INPUT;
  }
  FILE *f = fopen(tmp, "wb");
  int ok = f && fwrite(data, 1, len, f) == len;
  if (f && fclose(f) != 0)
    ok = 0;
  if (!ok || rename(tmp, path) != 0) {
    fprintf(stderr, "eigenwatch: cannot write %s: %s\n", path, strerror(errno));
    remove(tmp);
    return EX_INPUT;
  }
  return EX_OK;
}

static int c_export(int argc, char **argv) {
  if (argc != 2)
    return usage_error("export needs STREAM FILE");
  int ex = 0;
  ewc_t *c = open_conn(&ex);
  if (!c)
    return ex;
  ewc_reply_t r;
  const void *state = NULL;
  size_t len = 0;
  uint64_t count = 0;
  int rc = ewc_export(c, argv[0], &state, &len, &count, &r);
  if (rc)
    ex = rpc_exit(rc, &r);
  else if ((ex = write_file(argv[1], state, len)) == EX_OK) {
    if (g_json)
      printf("{\"stream\": \"%s\", \"count\": %llu, \"bytes\": %zu, \"file\": \"%s\"}\n",
             argv[0], (unsigned long long)count, len, argv[1]);
    else
      printf("exported %s (%llu rows, %zu bytes) to %s\n", argv[0], (unsigned long long)count,
             len, argv[1]);
  }
  ewc_reply_free(&r);
  ewc_close(c);
  return ex;
}

static int c_merge(int argc, char **argv) {
  if (argc != 2)
    return usage_error("merge needs STREAM FILE");
  FILE *f = fopen(argv[1], "rb");
  if (!f) {
    fprintf(stderr, "eigenwatch: cannot read %s: %s\n", argv[1], strerror(errno));
    return EX_INPUT;
  }
  char *data = NULL;
  size_t len = 0, cap = 0;
  for (;;) {
    if (len == cap) {
      size_t nc = cap ? 2 * cap : 1 << 20;
      char *nd = realloc(data, nc);
      if (!nd) {
        fclose(f);
        free(data);
        fprintf(stderr, "eigenwatch: out of memory reading %s\n", argv[1]);
        return EX_INPUT;
      }
      data = nd;
      cap = nc;
    }
    size_t got = fread(data + len, 1, cap - len, f);
    len += got;
    if (got == 0)
      break;
  }
  int bad = ferror(f);
  fclose(f);
  if (bad) {
    free(data);
    fprintf(stderr, "eigenwatch: cannot read %s\n", argv[1]);
    return EX_INPUT;
  }
  int ex = 0;
  ewc_t *c = open_conn(&ex);
  if (!c) {
    free(data);
    return ex;
  }
  ewc_reply_t r;
  int rc = ewc_merge(c, argv[0], data, len, &r);
  free(data);
  if (rc) {
    ex = rpc_exit(rc, &r);
  } else if (g_json) {
    ex = print_result(&r);
  } else {
    uint64_t merged = 0, count = 0;
    const msgpack_object *cr = ewc_get(r.result, "created");
    bool created = cr && cr->type == MSGPACK_OBJECT_BOOLEAN && cr->via.boolean;
    ewc_get_u64(r.result, "merged", &merged);
    ewc_get_u64(r.result, "count", &count);
    printf("merged %llu rows from %s into %s%s; it now holds %llu rows\n",
           (unsigned long long)merged, argv[1], argv[0], created ? " (created)" : "",
           (unsigned long long)count);
  }
  ewc_reply_free(&r);
  ewc_close(c);
  return ex;
}

/* ---- the table of commands ---- */

static int c_help(int argc, char **argv);

static const cmd_t cmds[] = {
    {"ping", "", "check the daemon answers; prints its version", c_ping},
    {"list", "", "all streams (or --run's) with run, dim, rows and memory", c_list},
    {"runs", "", "the runs with their stream count and first and last completed steps", c_runs},
    {"info", "STREAM", "one stream, with its configuration", c_info},
    {"create", "STREAM --dim N [--window N] [--normalize none|l2] [--decay ROWS] [--topk K] "
               "[--window-mode auto|eager|lazy] [--shuffle N] [--seed N]",
     "create a stream (idempotent for the same configuration)", c_create},
    {"drop", "STREAM", "delete a stream", c_drop},
    {"reset", "STREAM", "forget a stream's rows, keep its configuration", c_reset},
    {"stats", "", "daemon counters", c_stats},
    {"query", "STREAM METRIC... [--param k=v]... [--center true|false] [--source S] [--fresh] "
              "[--max-lag N]",
     "compute metrics (eigenwatch query s entropy erank --param k=5)", c_query},
    {"watch", "STREAM [METRIC...] [--interval SECONDS] [--count N] [query options]",
     "live view refreshing in place, with a sparkline of each metric", c_watch},
    {"ingest", "STREAM FILE [--batch ROWS] [--dtype f32|f64|f16|bf16]",
     "send rows from a C-order .npy (f32, f64, f16, bf16) or a .csv", c_ingest},
    {"snapshot", "", "write every changed stream's snapshot to the daemon's state dir now",
     c_snapshot},
    {"export", "STREAM FILE", "save a stream's whole state to FILE (for merge elsewhere)",
     c_export},
    {"merge", "STREAM FILE", "fold a state saved by export into STREAM (created if absent)",
     c_merge},
    {"help", "[COMMAND]", "this text, or one command's", c_help},
};
#define NCMDS (sizeof cmds / sizeof cmds[0])

static void cmd_help(const cmd_t *c, FILE *f) {
  fprintf(f, "usage: eigenwatch [global options] %s %s\n  %s\n", c->name, c->args, c->help);
}

static int c_help(int argc, char **argv) {
  if (argc == 1) {
    for (size_t i = 0; i < NCMDS; i++)
      if (!strcmp(cmds[i].name, argv[0])) {
        cmd_help(&cmds[i], stdout);
        return EX_OK;
      }
    return usage_error("no command '%s'", argv[0]);
  }
  printf("usage: eigenwatch [--address unix:PATH|tcp:HOST:PORT] [--timeout MS] [--json] "
         "[--run RUN] COMMAND ...\n"
         "The address defaults to $EIGENWATCH_ADDRESS, else the daemon's default socket, else\n"
         "tcp:127.0.0.1:7700. --json prints the daemon's answer as JSON. --run names the training\n"
         "run of every stream a command names (default: the daemon's run \"default\").\n\n"
         "commands:\n");
  for (size_t i = 0; i < NCMDS; i++)
    printf("  %-8s %s\n", cmds[i].name, cmds[i].help);
  printf("\n'eigenwatch COMMAND --help' shows a command's arguments.\n"
         "exit codes: 0 ok, 1 the daemon answered an error, 2 usage, 3 daemon unreachable,\n"
         "4 bad input file\n");
  return EX_OK;
}

int main(int argc, char **argv) {
  int i = 1;
  for (; i < argc && !strncmp(argv[i], "--", 2); i++) {
    if (!strcmp(argv[i], "--address") && i + 1 < argc)
      g_address = argv[++i];
    else if (!strcmp(argv[i], "--run") && i + 1 < argc)
      g_run = argv[++i];
    else if (!strcmp(argv[i], "--timeout") && i + 1 < argc)
      g_timeout = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--json"))
      g_json = 1;
    else if (!strcmp(argv[i], "--help"))
      return c_help(0, NULL);
    else
      return usage_error("unknown option '%s'", argv[i]);
  }
  if (i >= argc)
    return c_help(0, NULL), EX_USAGE;
  for (size_t k = 0; k < NCMDS; k++) {
    if (strcmp(cmds[k].name, argv[i]) != 0)
      continue;
    int sub = argc - i - 1;
    char **sv = argv + i + 1;
    for (int j = 0; j < sub; j++) {
      if (!strcmp(sv[j], "--help") || !strcmp(sv[j], "-h")) {
        cmd_help(&cmds[k], stdout);
        return EX_OK;
      }
      if (!strcmp(sv[j], "--json")) { /* also accepted after the command */
        g_json = 1;
        memmove(sv + j, sv + j + 1, (size_t)(sub - j - 1) * sizeof *sv);
        sub--;
        j--;
      }
    }
    return cmds[k].fn(sub, sv);
  }
  return usage_error("no command '%s'", argv[i]);
}
