/* state/load.c — bytes back into a stream (the format: state/state_priv.h, docs/STATE.md):
 * every section read and checked into a new stream, handed over only once the checksum matched,
 * then the embedder's sections handed to it (ew_stream_load_ex); ew_state_config, a state's
 * configuration read from its first bytes. */
#include "state_priv.h"

#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef ew__rd_t rd_t;

/* A little-endian u64 / f64 at p (the state format's byte order on any host we build for). */
static uint64_t rd64(const unsigned char *p) {
  uint64_t v;
  memcpy(&v, p, 8);
  return v;
}
static double rdf64(const unsigned char *p) {
  double v;
  memcpy(&v, p, 8);
  return v;
}

#define CONF_MAX (8 * EW_CONFIG_COUNT)

#define CONF_GET_COUNT(p) (size_t)rd64(p)
#define CONF_GET_U64(p) rd64(p)
#define CONF_GET_ENUM(p) (rd64(p) > INT_MAX ? -1 : (int)rd64(p)) /* -1: refused by the check */
#define CONF_GET_REAL_OFF(p) rdf64(p)

_Static_assert(offsetof(ew_config_t, dim) == 0, "dim is the first field (conf_parse reads it first)");

/* The configuration in the CONF payload p[0, ew__state_conf_len(version)) of a state of format
 * `version` (not checked: ew_config_check's to do). Fields that are not saved take their
 * default. */
static void conf_parse(const unsigned char *p, uint32_t version, ew_config_t *cfg) {
  ew_config_default(cfg, (size_t)rd64(p)); /* dim is the first field */
  const ew_config_t *c = cfg;               /* what the `was` expressions read */
#define XX(member, wire, old, type, def, lo, hi, kinds, flags, since, was, ...)                     if (SAVED(flags) && (since) <= version) {                                                           cfg->member = CONF_GET_##type(p);                                                                 p += 8;                                                                                         } else if (SAVED(flags)) {                                                                          cfg->member = (was);                                                                            }
  EW_CONFIG_MAP(XX)
#undef XX
  (void)c;
}

/* ---- COLS: a tokens stream's columns, the section right after CONF: u64 n, then n names of
 * EW_COLUMN_NAME_MAX bytes, zero-padded ---- */

uint64_t ew__state_cols_len(const ew_config_t *c) {
  return 8 + (uint64_t)c->columns.n * EW_COLUMN_NAME_MAX;
}

/* Parses a COLS payload p[0, len) into c's columns (dim must be their count). 0, or a sentence. */
static const char *cols_parse(const unsigned char *p, uint64_t len, ew_config_t *c) {
  uint64_t n = len >= 8 ? rd64(p) : 0;
  if (n == 0 || n > EW_COLUMNS_MAX || len != 8 + n * EW_COLUMN_NAME_MAX || n != c->dim)
    return "section COLS does not hold the stream's columns";
  const char *names[EW_COLUMNS_MAX];
  char buf[EW_COLUMNS_MAX][EW_COLUMN_NAME_MAX + 1];
  for (uint64_t i = 0; i < n; i++) {
    memcpy(buf[i], p + 8 + i * EW_COLUMN_NAME_MAX, EW_COLUMN_NAME_MAX);
    buf[i][EW_COLUMN_NAME_MAX] = 0;
    names[i] = buf[i];
  }
  if (ew_config_columns(c, names, (size_t)n, NULL, 0) != 0)
    return "section COLS holds a column name that is not one (1 to 32 bytes of [a-z0-9_], "
           "distinct)";
  return NULL;
}

/* ---- reading ---- */

#define bad ew__rd_fail


#define get ew__get

#define get_u64 ew__get_u64
#define get_f64 ew__get_f64

/* Reads a section whose length must be `want`; an unknown section is skipped. */
static int expect_len(rd_t *r, uint64_t len, uint64_t want, const char *name) {
  return len == want ? 0 : bad(r, "section %s has the wrong length for this configuration", name);
}

/* The accumulator of s saved under tag, or NULL. */
static ew__acc_t *acc_for(ew_stream_t *s, uint32_t tag) {
  for (int i = 0; i < EW__NROLES; i++)
    if (s->acc[i] && s->acc[i]->ops->tag == tag)
      return s->acc[i];
  return NULL;
}

/* The live estimate's numbers: rows as ingest keeps them (finite f32), vectors and sums finite,
 * squared norms and Σ‖a‖² finite and non-negative. */
static void check_live(rd_t *r, const ew__rop_t *o) {
  size_t d = o->d;
  for (size_t i = 0; i < o->fill * d && !r->err; i++)
    if (!isfinite(o->buf[i]))
      bad(r, "%s", "section LROP holds a row value that is not finite: the live estimate's rows "
          "are rows ingest accepted");
  for (size_t i = 0; i < o->nh * d && !r->err; i++)
    if (!isfinite(o->H[i]))
      bad(r, "%s", "section LROP holds a heavy row value that is not finite: the live "
          "estimate's rows are rows ingest accepted");
  ew__check_f64s(r, o->V, o->k * d, 1e3, "LROP", "a live vector entry");
  ew__check_f64s(r, o->Y, o->k * d, DBL_MAX, "LROP", "a live block sum");
  ew__check_f64s(r, o->Ysum, o->k * d, DBL_MAX, "LROP", "a live forgetting sum");
  ew__check_f64s(r, o->hn, o->nh, DBL_MAX, "LROP", "a live heavy row's squared norm");
  ew__check_f64s(r, &o->F, 1, DBL_MAX, "LROP", "the live estimate's sum of squared norms");
  for (size_t i = 0; i < o->nh && !r->err; i++)
    if (o->hn[i] < 0)
      bad(r, "%s", "section LROP holds a negative squared norm");
  if (!r->err && o->F < 0)
    bad(r, "%s", "section LROP holds a negative sum of squared norms");
}

/* The embedder sections a load collects, handed over once the checksum is verified. */
typedef struct {
  uint32_t tag;
  unsigned char *p;
  size_t len;
} extra_t;

typedef struct {
  extra_t *v;
  size_t n;
} extras_t;

static void extras_free(extras_t *x) {
  for (size_t i = 0; i < x->n; i++)
    free(x->v[i].p);
  free(x->v);
}

/* Reads an embedder section's len bytes into x. Grows its buffer as bytes arrive, so a length
 * that lies costs at most what the reader really holds. */
static void read_extra(rd_t *r, extras_t *x, uint32_t tag, uint64_t len) {
  for (size_t i = 0; i < x->n; i++)
    if (x->v[i].tag == tag) {
      bad(r, "%s", "a section appears twice");
      return;
    }
  if (len > EW_SECTION_MAX) {
    bad(r, "%s", "an embedder section is longer than 1 GiB");
    return;
  }
  extra_t *v = realloc(x->v, (x->n + 1) * sizeof *v);
  if (!v) {
    r->err = EW_ENOMEM;
    return;
  }
  x->v = v;
  extra_t *e = &v[x->n++];
  *e = (extra_t){.tag = tag};
  for (size_t off = 0; off < len && !r->err;) {
    size_t k = len - off < ((size_t)1 << 20) ? (size_t)(len - off) : ((size_t)1 << 20);
    unsigned char *p = realloc(e->p, off + k);
    if (!p) {
      r->err = EW_ENOMEM;
      return;
    }
    e->p = p;
    get(r, p + off, k);
    off += k;
    e->len = off;
  }
}

/* Parses a SHAP payload p[0, len) into c's shape. 0, or a sentence. */
static const char *shape_parse(const unsigned char *p, uint64_t len, ew_config_t *c) {
  uint64_t dims[2] = {len == 24 ? rd64(p + 8) : 0, len == 24 ? rd64(p + 16) : 0};
  uint64_t rank = len == 24 ? rd64(p) : 0;
  size_t dim = c->dim;
  if (c->stream_kind == EW_STREAM_PAIRED) /* a paired stream's dims, [dx, dy] */
    return rank != 2 || ew_config_dims(c, dims[0], dims[1], NULL, 0) != 0 || c->dim != dim
               ? "section SHAP does not hold the paired stream's dims"
               : NULL;
  if (rank < 1 || rank > 2 || (rank == 1 && dims[1] != 1) ||
      ew_config_shape(c, dims, (size_t)rank, NULL, 0) != 0 || c->dim != dim)
    return "section SHAP does not hold the stream's shape";
  return NULL;
}

/* Reads the section that must follow a tokens stream's CONF (COLS) or a stats stream's (SHAP)
 * into c. */
static int kind_read(rd_t *r, ew_config_t *c) {
  bool tokens = c->stream_kind == EW_STREAM_TOKENS;
  uint32_t tag = 0;
  get(r, &tag, 4);
  uint64_t len = get_u64(r);
  if (r->err)
    return r->err;
  if (tag != (tokens ? T_COLS : T_SHAP) || len > 8 + EW_COLUMNS_MAX * EW_COLUMN_NAME_MAX)
    return bad(r, "%s", tokens ? "a tokens stream's state lacks its COLS section after CONF"
                               : "a stats stream's state lacks its SHAP section after CONF");
  unsigned char raw[8 + EW_COLUMNS_MAX * EW_COLUMN_NAME_MAX];
  if (get(r, raw, (size_t)len))
    return r->err;
  const char *why = tokens ? cols_parse(raw, len, c) : shape_parse(raw, len, c);
  return why ? bad(r, "%s", why) : 0;
}

static int load_sections(rd_t *r, ew_stream_t **out, ew_section_fn on_section, void *sctx) {
  extras_t extras = {0};
  char magic[8];
  if (get(r, magic, 8))
    return r->err;
  if (memcmp(magic, MAGIC, 8) != 0)
    return bad(r, "%s", "not an eigenwatch state (bad magic)");
  uint32_t version = 0, flags = 0;
  get(r, &version, 4);
  get(r, &flags, 4);
  if (r->err)
    return r->err;
  if (version < 1 || version > VERSION) {
    char v[32];
    snprintf(v, sizeof v, "%u", version);
    return bad(r, "state format version %s is not one this library reads (it reads 1 to 4)", v);
  }
  ew_stream_t *s = NULL;
  bool have_strm = false, have_live = false, have_warm = false;
  bool have_acc[EW__NROLES] = {false};
  for (;;) {
    uint32_t tag = 0;
    get(r, &tag, 4);
    uint64_t len = get_u64(r);
    if (r->err)
      break;
    if (tag == T_END)
      break;
    if (tag == T_CONF) {
      if (s) {
        bad(r, "%s", "two CONF sections");
        break;
      }
      if (expect_len(r, len, ew__state_conf_len(version), "CONF"))
        return r->err;
      unsigned char raw[CONF_MAX];
      if (get(r, raw, (size_t)len))
        break;
      ew_config_t c;
      conf_parse(raw, version, &c);
      if (c.stream_kind != EW_STREAM_MATRIX && kind_read(r, &c) != 0)
        break;
      if (ew_config_check(&c, NULL, 0) != 0)
        return bad(r, "%s", "the saved configuration is not valid");
      int rc = ew_stream_create(&c, &s);
      if (rc)
        return r->err = rc;
      continue;
    }
    if (!s)
      return bad(r, "%s", "a section comes before the configuration");
    size_t d = s->d;
    if ((tag == T_STRM && have_strm) || (tag == T_WARM && have_warm) ||
        ((tag == T_LROP || tag == T_LIVE) && s->has_live && have_live)) {
      bad(r, "%s", "a section appears twice");
      break;
    }
    if (tag == T_STRM && !expect_len(r, len, 40, "STRM")) {
      s->count = get_u64(r);
      s->epoch = get_u64(r);
      s->window_rounded = get_u64(r) != 0;
      s->win_query_at = get_u64(r);
      s->win_queried = get_u64(r) != 0;
      have_strm = true;
      if (!r->err && s->count > EW__ROWS_MAX)
        ew__rd_failf(r, "section STRM counts %llu rows, more than 2^53 (the most rows a state "
                     "describes)", (unsigned long long)s->count);
    } else if (acc_for(s, tag)) { /* an accumulator reads its own section */
      ew__acc_t *a = acc_for(s, tag);
      int role = a == s->acc[EW__ROLE_ALL] ? EW__ROLE_ALL : EW__ROLE_WINDOW;
      if (have_acc[role]) {
        bad(r, "%s", "a section appears twice");
        break;
      }
      a->ops->load(a, r, len);
      have_acc[role] = true;
    } else if (tag == T_LROP && s->has_live) {
      ew__rop_t *o = &s->live;
      uint64_t fill = get_u64(r);
      if (r->err || fill > o->cap)
        break;
      o->fill = fill;
      get(r, o->buf, fill * d * sizeof(float));
      get(r, o->V, o->k * d * sizeof(double));
      get(r, o->Y, o->k * d * sizeof(double));
      get(r, o->Ysum, o->k * d * sizeof(double));
      o->nsum = get_u64(r);
      uint64_t nh = get_u64(r);
      if (r->err || nh > o->hcap || expect_len(r, len, ew__state_rop_len(o, fill, nh), "LROP"))
        break;
      o->nh = nh;
      get(r, o->H, nh * d * sizeof(float));
      get(r, o->hn, nh * sizeof(double));
      o->seen = get_u64(r);
      o->light = get_u64(r);
      o->cnt = get_u64(r);
      o->blk = get_u64(r);
      o->blocks = get_u64(r);
      o->heavy_seen = get_u64(r);
      o->F = get_f64(r);
      get(r, o->rng.s, sizeof o->rng.s);
      if (!r->err && (o->blk == 0 || o->cnt > o->blk))
        bad(r, "%s", "the live estimate's block counters are inconsistent");
      check_live(r, o);
      have_live = true;
    } else if (tag == T_LIVE && s->has_live) {
      /* a state saved before the random-order estimate: its Oja vectors do not carry over; the
       * live estimate starts again from the rows that come next (everything else loads) */
      for (uint64_t left = len; left > 0 && !r->err;) {
        char skip[256];
        size_t k = left < sizeof skip ? (size_t)left : sizeof skip;
        get(r, skip, k);
        left -= k;
      }
      have_live = true;
    } else if (tag == T_WARM) {
      uint64_t k = get_u64(r);
      if (r->err || k == 0 || k > 64 || k > d || expect_len(r, len, 8 + k * d * 8, "WARM"))
        break;
      if (!(s->topk_warm = malloc(k * d * sizeof(double)))) {
        r->err = EW_ENOMEM;
        break;
      }
      s->topk_warm_k = k;
      have_warm = true;
      get(r, s->topk_warm, k * d * sizeof(double));
      ew__check_f64s(r, s->topk_warm, k * d, 1e3, "WARM", "a warm-start vector entry");
    } else if (!r->err && (tag & 0xff) >= 'a' && (tag & 0xff) <= 'z' && on_section) {
      read_extra(r, &extras, tag, len); /* an embedder's section, for on_section */
    } else if (!r->err) { /* a section this version does not know (or this stream does not use) */
      if (tag == T_WIND || tag == T_LIVE || tag == T_LROP || tag == T_STRM || tag == T_MALL)
        bad(r, "%s", "a section does not match the saved configuration");
      for (uint64_t left = len; left > 0 && !r->err;) {
        char skip[256];
        size_t k = left < sizeof skip ? (size_t)left : sizeof skip;
        get(r, skip, k);
        left -= k;
      }
    }
    if (r->err)
      break;
  }
  bool accs_ok = s != NULL;
  for (int i = 0; s && i < EW__NROLES; i++)
    accs_ok = accs_ok && have_acc[i] == (s->acc[i] != NULL);
  if (!r->err && (!s || !have_strm || !accs_ok || have_live != s->has_live))
    bad(r, "%s", "a required section is missing");
  if (!r->err && ew__acc_is_paired(s->acc[EW__ROLE_ALL])) { /* its pairs are the stream's rows */
    ew__pview_t pv;
    ew__acc_paired_view(s->acc[EW__ROLE_ALL], &pv);
    if (pv.n != s->count)
      ew__rd_failf(r, "section PAIR holds %llu pairs and STRM counts %llu rows: no ingest makes that",
          (unsigned long long)pv.n, (unsigned long long)s->count);
  }
  if (!r->err) {
    uint32_t want = r->crc, got = 0;
    if (r->fn(r->ctx, &got, 4) != 0)
      bad(r, "%s", "the state ends before its checksum: truncated");
    else if (got != want)
      bad(r, "%s", "the checksum does not match: the state is corrupt");
  }
  for (size_t i = 0; !r->err && i < extras.n; i++) {
    char dummy[1];
    char *m = r->msg && r->cap ? r->msg : dummy;
    size_t mc = r->msg && r->cap ? r->cap : sizeof dummy;
    m[0] = 0;
    if (on_section(sctx, extras.v[i].tag, extras.v[i].p, extras.v[i].len, m, mc) != 0) {
      r->err = EW_ESTATE;
      if (!m[0])
        snprintf(m, mc, "%s", "the embedder refused one of its sections");
    }
  }
  extras_free(&extras);
  if (r->err) {
    ew_stream_free(s);
    return r->err;
  }
  *out = s;
  return 0;
}

EW_EXPORT int ew_stream_load_ex(ew_stream_t **out, ew_read_fn fn, void *ctx,
                                ew_section_fn on_section, void *sctx, char *msg, size_t cap) {
  ew__bytes_init();
  *out = NULL;
  if (msg && cap)
    msg[0] = 0;
  rd_t r = {.fn = fn, .ctx = ctx, .msg = msg, .cap = cap};
  return load_sections(&r, out, on_section, sctx);
}

EW_EXPORT int ew_stream_load(ew_stream_t **out, ew_read_fn fn, void *ctx, char *msg, size_t cap) {
  return ew_stream_load_ex(out, fn, ctx, NULL, NULL, msg, cap);
}

EW_EXPORT int ew_state_config(const void *buf, size_t len, ew_config_t *cfg, char *msg,
                              size_t cap) {
  const unsigned char *b = buf;
  if (msg && cap)
    msg[0] = 0;
  const char *why = NULL;
  uint32_t version = 0, tag = 0;
  if (len < 8 || memcmp(b, MAGIC, 8) != 0)
    why = "not an eigenwatch state (bad magic)";
  else if (len < 16 + 12 + ew__state_conf_len(1))
    why = "the state ends early (in its configuration): truncated";
  else if (memcpy(&version, b + 8, 4), version < 1 || version > VERSION)
    why = "state format version is not one this library reads (it reads 1 to 4)";
  else if (memcpy(&tag, b + 16, 4), tag != T_CONF || rd64(b + 20) != ew__state_conf_len(version))
    why = "the state does not begin with its configuration";
  else if (len < 16 + 12 + ew__state_conf_len(version))
    why = "the state ends early (in its configuration): truncated";
  size_t after = 16 + 12 + (size_t)ew__state_conf_len(version);
  ew_config_t t;
  if (!why) {
    conf_parse(b + 28, version, &t);
    if (t.stream_kind != EW_STREAM_MATRIX) {
      bool tokens = t.stream_kind == EW_STREAM_TOKENS;
      if (len < after + 12 || (memcpy(&tag, b + after, 4), tag != (tokens ? T_COLS : T_SHAP)) ||
          len < after + 12 + rd64(b + after + 4))
        why = "the state ends early (in its columns or shape): truncated";
      else if (tokens)
        why = cols_parse(b + after + 12, rd64(b + after + 4), &t);
      else
        why = shape_parse(b + after + 12, rd64(b + after + 4), &t);
    }
  }
  if (!why) {
    if (ew_config_check(&t, NULL, 0) != 0)
      why = "the saved configuration is not valid";
    else
      *cfg = t;
  }
  if (why && msg && cap)
    snprintf(msg, cap, "%s", why);
  return why ? EW_ESTATE : 0;
}
