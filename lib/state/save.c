/* state/save.c — a whole stream as bytes (the format: state/state_priv.h, docs/STATE.md): the
 * library's sections, then the embedder's, through a caller-supplied writer that counts and
 * checksums every byte; ew_stream_clone, a save loaded back from memory. */
#include "state_priv.h"

#include <stdlib.h>
#include <string.h>

/* ---- writing: every byte is counted and checksummed on its way out ---- */

typedef ew__wr_t wr_t;

static void put_u32(wr_t *w, uint32_t v) { ew__put(w, &v, 4); }
#define put ew__put
#define put_u64 ew__put_u64
#define put_f64 ew__put_f64

static void section(wr_t *w, uint32_t tag, uint64_t len) {
  put_u32(w, tag);
  put_u64(w, len);
}

/* The CONF section's length in a state of format `version`. */
uint64_t ew__state_conf_len(uint32_t version) {
  uint64_t n = 0;
#define XX(member, wire, old, type, def, lo, hi, kinds, flags, since, ...)                          n += SAVED(flags) && (since) <= version ? 8 : 0;
  EW_CONFIG_MAP(XX)
#undef XX
  return n;
}

#define CONF_PUT_COUNT(w, v) put_u64(w, (uint64_t)(v))
#define CONF_PUT_U64(w, v) put_u64(w, (uint64_t)(v))
#define CONF_PUT_ENUM(w, v) put_u64(w, (uint64_t)(v))
#define CONF_PUT_REAL_OFF(w, v) put_f64(w, (v))

static void conf_save(wr_t *w, const ew_config_t *c, uint32_t version) {
#define XX(member, wire, old, type, def, lo, hi, kinds, flags, since, ...)                          if (SAVED(flags) && (since) <= version)                                                             CONF_PUT_##type(w, c->member);
  EW_CONFIG_MAP(XX)
#undef XX
}

/* The LROP section's length for a buffer holding `fill` rows and `nh` heavy rows. */
uint64_t ew__state_rop_len(const ew__rop_t *o, uint64_t fill, uint64_t nh) {
  uint64_t d = o->d;
  return 8 + fill * d * 4 + 3 * o->k * d * 8 + 8 + nh * (d * 4 + 8) + 7 * 8 + 8 + 32;
}

/* Whether extra[0, n) are embedder sections save_all may write: lowercase first byte, no tag
 * twice. */
static bool extras_ok(const ew_section_t *extra, size_t n) {
  for (size_t i = 0; i < n; i++) {
    unsigned char c0 = (unsigned char)(extra[i].tag & 0xff);
    if (c0 < 'a' || c0 > 'z' || extra[i].len > EW_SECTION_MAX || (extra[i].len && !extra[i].data))
      return false;
    for (size_t k = 0; k < i; k++)
      if (extra[k].tag == extra[i].tag)
        return false;
  }
  return true;
}

static int save_all(const ew_stream_t *s, const ew_section_t *extra, size_t nextra, wr_t *w) {
  size_t d = s->d;
  const ew_config_t *c = &s->cfg;
  /* a matrix stream's state is format 2, byte for byte what earlier versions wrote (its kind
   * and reduce are the ones a format-2 state loads with); tokens and stats streams need 3, and
   * write 3 still; paired streams 4 (features, sigma, rff_dim) */
  uint32_t version = c->stream_kind == EW_STREAM_MATRIX   ? 2
                     : c->stream_kind == EW_STREAM_PAIRED ? 4
                                                          : 3;
  put(w, MAGIC, 8);
  put_u32(w, version);
  put_u32(w, 0);
  section(w, T_CONF, ew__state_conf_len(version));
  conf_save(w, c, version);
  if (c->stream_kind == EW_STREAM_TOKENS) {
    section(w, T_COLS, ew__state_cols_len(c));
    put_u64(w, c->columns.n);
    for (uint32_t i = 0; i < c->columns.n; i++) {
      char name[EW_COLUMN_NAME_MAX] = {0};
      memcpy(name, c->columns.name[i], strnlen(c->columns.name[i], EW_COLUMN_NAME_MAX));
      put(w, name, EW_COLUMN_NAME_MAX);
    }
  }
  if (c->stream_kind == EW_STREAM_STATS || c->stream_kind == EW_STREAM_PAIRED) {
    section(w, T_SHAP, 24); /* a stats stream's shape, a paired stream's dims */
    put_u64(w, c->shape_rank);
    put_u64(w, c->shape[0]);
    put_u64(w, c->shape[1]);
  }
  section(w, T_STRM, 5 * 8);
  put_u64(w, s->count);
  put_u64(w, s->epoch);
  put_u64(w, s->window_rounded);
  put_u64(w, s->win_query_at);
  put_u64(w, s->win_queried);
  for (int r = 0; r < EW__NROLES; r++) { /* MALL, then WIND: each kind writes its own section */
    const ew__acc_t *a = s->acc[r];
    if (a) {
      section(w, a->ops->tag, a->ops->saved_len(a));
      a->ops->save(a, w);
    }
  }
  if (s->has_live) {
    const ew__rop_t *o = &s->live;
    section(w, T_LROP, ew__state_rop_len(o, o->fill, o->nh));
    put_u64(w, o->fill);
    put(w, o->buf, o->fill * d * sizeof(float));
    put(w, o->V, o->k * d * sizeof(double));
    put(w, o->Y, o->k * d * sizeof(double));
    put(w, o->Ysum, o->k * d * sizeof(double));
    put_u64(w, o->nsum);
    put_u64(w, o->nh);
    put(w, o->H, o->nh * d * sizeof(float));
    put(w, o->hn, o->nh * sizeof(double));
    put_u64(w, o->seen);
    put_u64(w, o->light);
    put_u64(w, o->cnt);
    put_u64(w, o->blk);
    put_u64(w, o->blocks);
    put_u64(w, o->heavy_seen);
    put_f64(w, o->F);
    put(w, o->rng.s, sizeof o->rng.s);
  }
  if (s->topk_warm_k) {
    section(w, T_WARM, 8 + s->topk_warm_k * d * 8);
    put_u64(w, s->topk_warm_k);
    put(w, s->topk_warm, s->topk_warm_k * d * sizeof(double));
  }
  for (size_t i = 0; i < nextra; i++) { /* the embedder's sections, verbatim */
    section(w, extra[i].tag, extra[i].len);
    put(w, extra[i].data, extra[i].len);
  }
  section(w, T_END, 0);
  uint32_t crc = w->crc;
  put_u32(w, crc);
  return w->err;
}

EW_EXPORT int ew_stream_save_ex(const ew_stream_t *s, const ew_section_t *extra, size_t n,
                                ew_write_fn fn, void *ctx) {
  if (!extras_ok(extra, n))
    return EW_EBADPARAM;
  ew__bytes_init();
  wr_t w = {.fn = fn, .ctx = ctx};
  return save_all(s, extra, n, &w);
}

EW_EXPORT int ew_stream_save(const ew_stream_t *s, ew_write_fn fn, void *ctx) {
  return ew_stream_save_ex(s, NULL, 0, fn, ctx);
}

EW_EXPORT size_t ew_stream_saved_bytes_ex(const ew_stream_t *s, const ew_section_t *extra,
                                         size_t n) {
  ew__bytes_init();
  wr_t w = {0};
  save_all(s, extra, n, &w);
  return w.bytes;
}

EW_EXPORT size_t ew_stream_saved_bytes(const ew_stream_t *s) {
  return ew_stream_saved_bytes_ex(s, NULL, 0);
}

/* A saved state in memory (ew_stream_clone). */
typedef struct {
  unsigned char *p;
  size_t len, off;
} clonebuf_t;

static int clone_write(void *ctx, const void *p, size_t n) {
  clonebuf_t *b = ctx;
  if (n > b->len - b->off)
    return -1;
  memcpy(b->p + b->off, p, n);
  b->off += n;
  return 0;
}

static int clone_read(void *ctx, void *p, size_t n) {
  clonebuf_t *b = ctx;
  if (n > b->len - b->off)
    return -1;
  memcpy(p, b->p + b->off, n);
  b->off += n;
  return 0;
}

EW_EXPORT int ew_stream_clone(const ew_stream_t *s, ew_stream_t **out) {
  *out = NULL;
  clonebuf_t b = {.len = ew_stream_saved_bytes(s)};
  if (!(b.p = malloc(b.len)))
    return EW_ENOMEM;
  int rc = ew_stream_save(s, clone_write, &b);
  if (rc == 0 && b.off == b.len) {
    b.off = 0;
    rc = ew_stream_load(out, clone_read, &b, NULL, 0);
  }
  free(b.p);
  if (rc == 0 && !*out)
    rc = EW_EINTERNAL;
  return rc == 0 ? 0 : rc == EW_ENOMEM ? EW_ENOMEM : EW_EINTERNAL;
}
