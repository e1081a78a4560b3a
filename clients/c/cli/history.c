/* history.c — the time-axis commands: history (a stream's evaluated points by step, as a table,
 * CSV or JSON), alerts (rule states), metrics (the metric table). */
#include "cli.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double num_at(const msgpack_object *arr, uint32_t i) {
  if (!arr || arr->type != MSGPACK_OBJECT_ARRAY || i >= arr->via.array.size)
    return NAN;
  const msgpack_object *o = &arr->via.array.ptr[i];
  switch (o->type) {
  case MSGPACK_OBJECT_FLOAT32:
  case MSGPACK_OBJECT_FLOAT64: return o->via.f64;
  case MSGPACK_OBJECT_POSITIVE_INTEGER: return (double)o->via.u64;
  case MSGPACK_OBJECT_NEGATIVE_INTEGER: return (double)o->via.i64;
  default: return NAN;
  }
}

static uint64_t u64_at(const msgpack_object *arr, uint32_t i) {
  if (!arr || arr->type != MSGPACK_OBJECT_ARRAY || i >= arr->via.array.size ||
      arr->via.array.ptr[i].type != MSGPACK_OBJECT_POSITIVE_INTEGER)
    return 0;
  return arr->via.array.ptr[i].via.u64;
}

static int bool_at(const msgpack_object *arr, uint32_t i) {
  return arr && arr->type == MSGPACK_OBJECT_ARRAY && i < arr->via.array.size &&
         arr->via.array.ptr[i].type == MSGPACK_OBJECT_BOOLEAN && arr->via.array.ptr[i].via.boolean;
}

/* One value for CSV: a number, or a list as space-separated numbers in quotes. */
static void csv_value(const msgpack_object *o) {
  if (o->type == MSGPACK_OBJECT_ARRAY) {
    fputc('"', stdout);
    for (uint32_t i = 0; i < o->via.array.size; i++)
      printf(i ? " %.17g" : "%.17g", num_at(o, i));
    fputc('"', stdout);
  } else if (o->type == MSGPACK_OBJECT_FLOAT32 || o->type == MSGPACK_OBJECT_FLOAT64) {
    printf("%.17g", o->via.f64);
  } else {
    scalar(stdout, o);
  }
}

static int by_u64(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

/* The series as one table: a row per step, a column per (stream, metric) series. */
static void history_table(const msgpack_object *series) {
  uint32_t ns = series->via.array.size;
  size_t total = 0;
  for (uint32_t k = 0; k < ns; k++) {
    const msgpack_object *st = ewc_get(&series->via.array.ptr[k], "step");
    total += st && st->type == MSGPACK_OBJECT_ARRAY ? st->via.array.size : 0;
  }
  uint64_t *steps = malloc((total ? total : 1) * sizeof *steps);
  uint32_t *at = calloc(ns ? ns : 1, sizeof *at);
  if (!steps || !at) {
    free(steps);
    free(at);
    fprintf(stderr, "eigenwatch: out of memory\n");
    return;
  }
  size_t n = 0;
  for (uint32_t k = 0; k < ns; k++) {
    const msgpack_object *st = ewc_get(&series->via.array.ptr[k], "step");
    for (uint32_t i = 0; st && st->type == MSGPACK_OBJECT_ARRAY && i < st->via.array.size; i++)
      steps[n++] = u64_at(st, i);
  }
  qsort(steps, n, sizeof *steps, by_u64);
  /* Column titles: the metric, prefixed by the stream when several streams are shown. */
  int several = 0;
  const char *s0 = NULL;
  int s0n = 0;
  for (uint32_t k = 0; k < ns; k++) {
    const char *s;
    int sn = str_of(&series->via.array.ptr[k], "stream", &s);
    if (k == 0)
      s0 = s, s0n = sn;
    else if (sn != s0n || memcmp(s, s0, (size_t)sn) != 0)
      several = 1;
  }
  printf("%12s %8s %6s", "STEP", "ROWS", "RANKS");
  for (uint32_t k = 0; k < ns; k++) {
    const char *s, *m;
    int sn = str_of(&series->via.array.ptr[k], "stream", &s);
    int mn = str_of(&series->via.array.ptr[k], "metric", &m);
    char title[128];
    if (several)
      snprintf(title, sizeof title, "%.*s:%.*s", sn, s, mn, m);
    else
      snprintf(title, sizeof title, "%.*s", mn, m);
    printf(" %16s", title);
  }
  printf("\n");
  size_t shown = 0;
  for (size_t i = 0; i < n; i++) {
    if (i && steps[i] == steps[i - 1])
      continue;
    shown++;
    uint64_t rows = 0, ranks = 0;
    int partial = 0;
    for (uint32_t k = 0; k < ns; k++) {
      const msgpack_object *s = &series->via.array.ptr[k], *st = ewc_get(s, "step");
      if (at[k] < st->via.array.size && u64_at(st, at[k]) == steps[i]) {
        rows = u64_at(ewc_get(s, "rows"), at[k]);
        ranks = u64_at(ewc_get(s, "ranks"), at[k]);
        partial |= bool_at(ewc_get(s, "partial"), at[k]);
      }
    }
    printf("%11llu%c %8llu %6llu", (unsigned long long)steps[i], partial ? '*' : ' ',
           (unsigned long long)rows, (unsigned long long)ranks);
    for (uint32_t k = 0; k < ns; k++) {
      const msgpack_object *s = &series->via.array.ptr[k], *st = ewc_get(s, "step"),
                           *v = ewc_get(s, "value");
      if (at[k] < st->via.array.size && u64_at(st, at[k]) == steps[i]) {
        const msgpack_object *o = &v->via.array.ptr[at[k]];
        if (o->type == MSGPACK_OBJECT_ARRAY)
          printf(" %16s", "[list]");
        else
          printf(" %16.10g", num_at(v, at[k]));
        at[k]++;
      } else {
        printf(" %16s", "");
      }
    }
    printf("\n");
  }
  printf("# %zu steps; * partial (a rank was missing)\n", shown);
  free(steps);
  free(at);
}

static void history_csv(const msgpack_object *series) {
  printf("run,stream,metric,step,time,value,partial,rows,ranks,lag_s,skipped\n");
  for (uint32_t k = 0; k < series->via.array.size; k++) {
    const msgpack_object *s = &series->via.array.ptr[k];
    const char *run, *stream, *metric;
    int rn = str_of(s, "run", &run), sn = str_of(s, "stream", &stream),
        mn = str_of(s, "metric", &metric);
    const msgpack_object *st = ewc_get(s, "step"), *tm = ewc_get(s, "time"),
                         *v = ewc_get(s, "value"), *pa = ewc_get(s, "partial"),
                         *ro = ewc_get(s, "rows"), *ra = ewc_get(s, "ranks"),
                         *lag = ewc_get(s, "lag_s"), *sk = ewc_get(s, "skipped");
    for (uint32_t i = 0; st && i < st->via.array.size; i++) {
      printf("%.*s,%.*s,%.*s,%llu,%.6f,", rn, run, sn, stream, mn, metric,
             (unsigned long long)u64_at(st, i), num_at(tm, i));
      csv_value(&v->via.array.ptr[i]);
      printf(",%s,%llu,%llu,%.6f,%llu\n", bool_at(pa, i) ? "true" : "false",
             (unsigned long long)u64_at(ro, i), (unsigned long long)u64_at(ra, i),
             num_at(lag, i), (unsigned long long)u64_at(sk, i));
    }
  }
}

int c_history(int argc, char **argv) {
  const char *target = NULL, *metrics[64], *agg = NULL;
  int nm = 0, csv = 0;
  uint64_t from = 0, to = 0, maxp = 0;
  int has_from = 0, has_to = 0, has_max = 0;
  for (int i = 0; i < argc; i++) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (!strcmp(a, "--csv")) {
      csv = 1;
    } else if (!strcmp(a, "--from") && v) {
      if (parse_u64("--from", argv[++i], 0, INT64_MAX, &from))
        return EX_USAGE;
      has_from = 1;
    } else if (!strcmp(a, "--to") && v) {
      if (parse_u64("--to", argv[++i], 0, INT64_MAX, &to))
        return EX_USAGE;
      has_to = 1;
    } else if (!strcmp(a, "--max-points") && v) {
      if (parse_u64("--max-points", argv[++i], 1, 100000, &maxp))
        return EX_USAGE;
      has_max = 1;
    } else if (!strcmp(a, "--agg") && v) {
      agg = argv[++i];
      if (strcmp(agg, "last") && strcmp(agg, "mean") && strcmp(agg, "min") && strcmp(agg, "max"))
        return usage_error("--agg wants last, mean, min or max, got '%s'", agg);
    } else if (!strncmp(a, "--", 2)) {
      return usage_error("history: unknown or incomplete option '%s'", a);
    } else if (!target) {
      target = a;
    } else if (nm < 64) {
      metrics[nm++] = a;
    } else {
      return usage_error("history takes at most 64 metrics");
    }
  }
  if (!target)
    return usage_error("history needs RUN/STREAM (or STREAM with --run)");
  if (csv && g_json)
    return usage_error("history: --csv and --json exclude each other");
  if (has_from && has_to && to < from)
    return usage_error("history: --to %llu is before --from %llu", (unsigned long long)to,
                       (unsigned long long)from);
  /* RUN/STREAM: the run is the part before the first '/'; with --run the word is the stream. */
  char run[256] = "", stream[256];
  const char *slash = g_run ? NULL : strchr(target, '/');
  if (strlen(target) >= sizeof stream)
    return usage_error("history: '%s' is too long for a stream name", target);
  if (slash) {
    if (slash == target || slash - target >= (long)sizeof run || !slash[1])
      return usage_error("history wants RUN/STREAM, got '%s'", target);
    snprintf(run, sizeof run, "%.*s", (int)(slash - target), target);
    snprintf(stream, sizeof stream, "%s", slash + 1);
  } else {
    snprintf(run, sizeof run, "%s", g_run ? g_run : "default");
    snprintf(stream, sizeof stream, "%s", target);
  }
  int ex = 0;
  ewc_t *c = open_stream_conn(run, stream, &ex);
  if (!c)
    return ex;
  params_t p;
  p_init(&p);
  msgpack_pack_map(&p.pk, 2 + (nm > 0) + has_from + has_to + has_max + (agg != NULL));
  p_str(&p, "run");
  p_str(&p, run);
  p_str(&p, "stream");
  p_str(&p, stream);
  if (nm) {
    p_str(&p, "metrics");
    msgpack_pack_array(&p.pk, (size_t)nm);
    for (int i = 0; i < nm; i++)
      p_str(&p, metrics[i]);
  }
  if (has_from) {
    p_str(&p, "from_step");
    msgpack_pack_uint64(&p.pk, from);
  }
  if (has_to) {
    p_str(&p, "to_step");
    msgpack_pack_uint64(&p.pk, to);
  }
  if (has_max) {
    p_str(&p, "max_points");
    msgpack_pack_uint64(&p.pk, maxp);
  }
  if (agg) {
    p_str(&p, "agg");
    p_str(&p, agg);
  }
  ewc_reply_t r;
  int rc = ewc_call(c, "history", &p.sb, &r);
  msgpack_sbuffer_destroy(&p.sb);
  if (rc) {
    ex = rpc_exit(rc, &r);
  } else {
    const msgpack_object *series = ewc_get(r.result, "series");
    if (!series || series->type != MSGPACK_OBJECT_ARRAY) {
      fprintf(stderr, "eigenwatch: the daemon's history answer has no series\n");
      ex = EX_UNREACHABLE;
    } else if (g_json) {
      ex = print_result(&r);
    } else if (csv) {
      history_csv(series);
    } else if (series->via.array.size == 0) {
      fprintf(stderr, "eigenwatch: no points for %s in run %s%s (its evaluated metrics: "
                      "eigenwatch info)\n", stream, run, nm ? " and these metrics" : "");
    } else {
      history_table(series);
    }
  }
  ewc_reply_free(&r);
  ewc_close(c);
  return ex;
}

static void print_alerts(const msgpack_object *result) {
  const msgpack_object *a = ewc_get(result, "alerts");
  printf("%-12s %-24s %-20s %-20s %-14s %10s %-7s %10s %14s\n", "RUN", "STREAM", "RULE",
         "METRIC", "WHEN", "VALUE", "STATE", "STEP", "LAST_VALUE");
  for (uint32_t i = 0; a && a->type == MSGPACK_OBJECT_ARRAY && i < a->via.array.size; i++) {
    const msgpack_object *e = &a->via.array.ptr[i];
    const char *ru, *st, *rule, *met, *when, *state;
    int rn = str_of(e, "run", &ru), sn = str_of(e, "stream", &st), rl = str_of(e, "rule", &rule),
        mn = str_of(e, "metric", &met), wn = str_of(e, "when", &when),
        stn = str_of(e, "state", &state);
    double value = NAN, last = NAN;
    uint64_t step = 0;
    ewc_get_double(e, "value", &value);
    ewc_get_double(e, "last_value", &last);
    char stepbuf[24] = "-";
    if (ewc_get_u64(e, "step", &step))
      snprintf(stepbuf, sizeof stepbuf, "%llu", (unsigned long long)step);
    printf("%-12.*s %-24.*s %-20.*s %-20.*s %-14.*s %10.4g %-7.*s %10s %14.6g\n", rn, ru, sn, st,
           rl, rule, mn, met, wn, when, value, stn, state, stepbuf, last);
  }
}

/* With --events: the events after the rules, oldest first. */
static void print_alerts_events(const msgpack_object *result) {
  print_alerts(result);
  const msgpack_object *ev = ewc_get(result, "events");
  printf("\n%-17s %-8s %s\n", "TIME", "STATE", "MESSAGE");
  for (uint32_t i = 0; ev && ev->type == MSGPACK_OBJECT_ARRAY && i < ev->via.array.size; i++) {
    const msgpack_object *e = &ev->via.array.ptr[i];
    const char *state, *msg;
    int sn = str_of(e, "state", &state), mn = str_of(e, "message", &msg);
    double t = NAN;
    ewc_get_double(e, "time", &t);
    printf("%-17.3f %-8.*s %.*s\n", t, sn, state, mn, msg);
  }
}

int c_alerts(int argc, char **argv) {
  const char *stream = NULL;
  uint64_t events = 0;
  for (int i = 0; i < argc; i++) {
    if (!strcmp(argv[i], "--events") && i + 1 < argc) {
      if (parse_u64("--events", argv[++i], 1, UINT32_MAX, &events))
        return EX_USAGE;
    } else if (!strncmp(argv[i], "--", 2)) {
      return usage_error("alerts: unknown or incomplete option '%s'", argv[i]);
    } else if (!stream) {
      stream = argv[i];
    } else {
      return usage_error("alerts takes at most one STREAM");
    }
  }
  params_t p;
  p_init(&p);
  msgpack_pack_map(&p.pk, (size_t)(stream != NULL) + (g_run != NULL) + (events > 0));
  if (stream) {
    p_str(&p, "stream");
    p_str(&p, stream);
  }
  p_run(&p);
  if (events) {
    p_str(&p, "events");
    msgpack_pack_uint64(&p.pk, events);
  }
  int ex = table_call("alerts", stream, &p.sb, events ? print_alerts_events : print_alerts);
  msgpack_sbuffer_destroy(&p.sb);
  return ex;
}

static void print_metrics(const msgpack_object *result) {
  const msgpack_object *ms = ewc_get(result, "metrics");
  printf("%-24s %-7s %-10s %s\n", "METRIC", "KIND", "COST", "SOURCES");
  for (uint32_t i = 0; ms && ms->type == MSGPACK_OBJECT_ARRAY && i < ms->via.array.size; i++) {
    const msgpack_object *m = &ms->via.array.ptr[i], *ps = ewc_get(m, "params");
    const char *name, *kind, *cost, *src, *doc;
    int nn = str_of(m, "name", &name), kn = str_of(m, "kind", &kind),
        cn = str_of(m, "cost", &cost), sn = str_of(m, "sources", &src),
        dn = str_of(m, "doc", &doc);
    printf("%-24.*s %-7.*s %-10.*s %.*s\n    %.*s\n", nn, name, kn, kind, cn, cost, sn, src, dn,
           doc);
    for (uint32_t j = 0; ps && ps->type == MSGPACK_OBJECT_ARRAY && j < ps->via.array.size; j++) {
      const msgpack_object *pp = &ps->via.array.ptr[j];
      const char *pn, *pd;
      int pnn = str_of(pp, "name", &pn), pdn = str_of(pp, "doc", &pd);
      printf("    param %.*s (default ", pnn, pn);
      const msgpack_object *dv = ewc_get(pp, "default"), *lo = ewc_get(pp, "min"),
                           *hi = ewc_get(pp, "max");
      if (dv)
        scalar(stdout, dv);
      printf(", range ");
      if (lo)
        scalar(stdout, lo);
      printf(" .. ");
      if (hi)
        scalar(stdout, hi);
      printf("): %.*s\n", pdn, pd);
    }
  }
}

int c_metrics(int argc, char **argv) {
  (void)argv;
  return argc ? usage_error("metrics takes no arguments")
              : table_call("metrics", NULL, NULL, print_metrics);
}
