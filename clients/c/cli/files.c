/* files.c — commands that read or write files: ingest (.npy, .csv), export, merge; and snapshot. */
#include "cli.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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

int c_ingest(int argc, char **argv) {
  const char *stream = NULL, *file = NULL, *force = NULL;
  size_t batch = 1024;
  for (int i = 0; i < argc; i++) {
    if (!strcmp(argv[i], "--batch") && i + 1 < argc) {
      uint64_t b;
      if (parse_u64("--batch", argv[++i], 1, 1u << 24, &b))
        return EX_USAGE;
      batch = (size_t)b;
    }
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
  ewc_t *c = open_stream_conn(NULL, stream, &ex);
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

int c_snapshot(int argc, char **argv) {
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

int c_export(int argc, char **argv) {
  if (argc != 2)
    return usage_error("export needs STREAM FILE");
  int ex = 0;
  ewc_t *c = open_stream_conn(NULL, argv[0], &ex);
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

int c_merge(int argc, char **argv) {
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
  ewc_t *c = open_stream_conn(NULL, argv[0], &ex);
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

