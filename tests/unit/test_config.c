/* test_config.c — the kind and configuration tables (lib/eigenwatch.h) and what lib/config.c and
 * lib/state/ generate from them, checked against the tables' own columns: every field refused
 * just outside its [min, max] with its row's sentence and accepted at both ends; defaults as the
 * docs say them; equality comparing a field exactly where its kinds column says; every
 * configuration keeping one kind of role ALL, a stream holding (and saving) exactly the kinds its
 * configuration keeps, with the views the table gives; the CONF section one 8-byte value per
 * field in table order, and a version-1 state loading the later fields as their `was` column. */
#include "ew_internal.h"
#include "tap.h"

#include <float.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

/* ---- ranges and sentences ---- */

static int probes;

/* Checks cfg: accepted (want == NULL) or refused with exactly the sentence want. */
static void expect(const ew_config_t *cfg, const char *want, const char *field, const char *what) {
  char msg[256] = "";
  int rc = ew_config_check(cfg, msg, sizeof msg);
  probes++;
  if (!want)
    CHECK(rc == 0, "%s %s: refused: %s", field, what, msg);
  else
    CHECK(rc == EW_EBADPARAM && strcmp(msg, want) == 0, "%s %s: rc %d, message '%s', want '%s'",
          field, what, rc, msg, want);
}

/* One field of *x at its range's ends and just outside them, by its TYPE. */
#define PROBE_COUNT(x, m, lo, hi, err, name)                                                      \
  do {                                                                                            \
    uint64_t lo_ = (uint64_t)(lo), hi_ = (uint64_t)(hi);                                          \
    ew_config_t y = *(x);                                                                         \
    y.m = (size_t)lo_, expect(&y, NULL, name, "at min");                                          \
    y = *(x), y.m = (size_t)hi_, expect(&y, NULL, name, "at max");                                \
    if (lo_ > 0)                                                                                  \
      y = *(x), y.m = (size_t)(lo_ - 1), expect(&y, err, name, "below min");                      \
    if (hi_ < SIZE_MAX)                                                                           \
      y = *(x), y.m = (size_t)(hi_ + 1), expect(&y, err, name, "above max");                      \
  } while (0)
#define PROBE_U64(x, m, lo, hi, err, name)                                                        \
  do {                                                                                            \
    uint64_t lo_ = (uint64_t)(lo), hi_ = (uint64_t)(hi);                                          \
    ew_config_t y = *(x);                                                                         \
    y.m = lo_, expect(&y, NULL, name, "at min");                                                  \
    y = *(x), y.m = hi_, expect(&y, NULL, name, "at max");                                        \
    if (lo_ > 0)                                                                                  \
      y = *(x), y.m = lo_ - 1, expect(&y, err, name, "below min");                                \
    if (hi_ < UINT64_MAX)                                                                         \
      y = *(x), y.m = hi_ + 1, expect(&y, err, name, "above max");                                \
  } while (0)
#define PROBE_ENUM(x, m, lo, hi, err, name)                                                       \
  do {                                                                                            \
    int lo_ = (int)(lo), hi_ = (int)(hi);                                                         \
    ew_config_t y = *(x);                                                                         \
    y.m = lo_, expect(&y, NULL, name, "first value");                                             \
    y = *(x), y.m = hi_, expect(&y, NULL, name, "last value");                                    \
    y = *(x), y.m = lo_ - 1, expect(&y, err, name, "before the first");                           \
    y = *(x), y.m = hi_ + 1, expect(&y, err, name, "after the last");                             \
  } while (0)
#define PROBE_REAL_OFF(x, m, lo, hi, err, name)                                                   \
  do {                                                                                            \
    double lo_ = (double)(lo), hi_ = (double)(hi);                                                \
    double ok[] = {0, lo_, hi_}, bad[] = {lo_ / 2, -lo_, NAN, INFINITY, -INFINITY};              \
    for (size_t i_ = 0; i_ < sizeof ok / sizeof ok[0]; i_++) {                                    \
      ew_config_t y = *(x);                                                                       \
      y.m = ok[i_], expect(&y, NULL, name, "0 or within the range");                              \
    }                                                                                             \
    for (size_t i_ = 0; i_ < sizeof bad / sizeof bad[0]; i_++) {                                  \
      ew_config_t y = *(x);                                                                       \
      y.m = bad[i_], expect(&y, err, name, "neither 0 nor within the range");                    \
    }                                                                                             \
  } while (0)

static void every_field_is_refused_outside_its_range_with_its_sentence(void) {
  size_t dims[] = {8, 2000}; /* the window's and live_k's ranges depend on dim */
  probes = 0;
  for (size_t i = 0; i < sizeof dims / sizeof dims[0]; i++) {
    ew_config_t base, pb;
    ew_config_default(&base, dims[i]);
    const ew_config_t *c = &base; /* what the min and max expressions read */
    /* a paired stream's fields (checked only on one) are probed on a paired configuration whose
     * every value of them is valid: linear, σ given, equal dims (rff's rules) */
    pb = base;
    CHECK(ew_config_dims(&pb, dims[i], dims[i], NULL, 0) == 0, "dims");
    pb.sigma = 1;
    /* kind tokens needs its columns (dim their count): probed below */
#define XX(member, wire, old, type, def, lo, hi, kinds, flags, since, was, defdoc, doc, err)      \
  if (strcmp(#wire, "kind") != 0)                                                                 \
    PROBE_##type(((flags) & EW_CF_IF_KEPT) && (kinds) == EW_KIND_BIT(PAIRED) ? &pb : &base,     \
                 member, lo, hi, err, #wire);
    EW_CONFIG_MAP(XX)
#undef XX
    (void)c;
  }
  CHECK(probes >= 4 * (EW_CONFIG_COUNT - 1), "only %d probes", probes);
  ew_config_t tk;
  ew_config_default(&tk, 3);
  const char *cols[] = {"entropy", "logp", "advantage"};
  CHECK(ew_config_columns(&tk, cols, 3, NULL, 0) == 0 && tk.dim == 3 &&
            tk.stream_kind == EW_STREAM_TOKENS, "columns");
  expect(&tk, NULL, "kind", "tokens with its columns");
  const char *kind_err = NULL;
  for (size_t i = 0; i < EW_CONFIG_COUNT; i++)
    if (strcmp(ew_config_field(i)->name, "kind") == 0)
      kind_err = ew_config_field(i)->error;
  tk.stream_kind = (ew_stream_kind_t)(EW_STREAM_PAIRED + 1);
  expect(&tk, kind_err, "kind", "after the last");
  tk.stream_kind = EW_STREAM_TOKENS, tk.dim = 2;
  expect(&tk, "a tokens stream's dim is its number of columns (3), not 2", "kind", "dim");
  const char *dup[] = {"a", "a"}, *bad[] = {"Entropy"};
  char msg[160];
  CHECK(ew_config_columns(&tk, dup, 2, msg, sizeof msg) == EW_EBADPARAM &&
            strcmp(msg, "column 'a' is named twice in 'columns'") == 0, "twice: %s", msg);
  CHECK(ew_config_columns(&tk, bad, 1, msg, sizeof msg) == EW_EBADPARAM &&
            strstr(msg, "[a-z0-9_]"), "charset: %s", msg);
  CHECK(ew_config_columns(&tk, cols, 0, msg, sizeof msg) == EW_EBADPARAM &&
            strstr(msg, "1 to 8"), "none: %s", msg);
  /* kind stats: its shape gives dim */
  ew_config_t sc;
  ew_config_default(&sc, 1);
  uint64_t shape[] = {24, 16}, big[] = {65536, 2}, zero[] = {0};
  CHECK(ew_config_shape(&sc, shape, 2, NULL, 0) == 0 && sc.dim == 384 &&
            sc.stream_kind == EW_STREAM_STATS, "shape 24x16");
  expect(&sc, NULL, "shape", "24 x 16");
  sc.dim = 383;
  expect(&sc, "a stats stream's dim is the cells of its shape (384), not 383", "shape", "dim");
  CHECK(ew_config_shape(&sc, big, 2, msg, sizeof msg) == EW_EBADPARAM &&
            strstr(msg, "131072 cells"), "too many cells: %s", msg);
  CHECK(ew_config_shape(&sc, zero, 1, msg, sizeof msg) == EW_EBADPARAM &&
            strstr(msg, "at least 1"), "zero: %s", msg);
  /* kind paired: its dims give dim; rff's rules */
  ew_config_t pc;
  ew_config_default(&pc, 1);
  CHECK(ew_config_dims(&pc, 6, 4, NULL, 0) == 0 && pc.dim == 10 &&
            pc.stream_kind == EW_STREAM_PAIRED && pc.shape[0] == 6 && pc.shape[1] == 4, "dims");
  expect(&pc, NULL, "dims", "6, 4 linear");
  pc.dim = 9;
  expect(&pc, "a paired stream's dim is dx + dy (10), not 9", "dims", "dim");
  pc.dim = 10, pc.normalize = EW_NORMALIZE_L2;
  expect(&pc, "a paired stream takes its rows as they are: 'normalize' must be \"none\"",
         "normalize", "l2 on a paired stream");
  pc.normalize = EW_NORMALIZE_NONE, pc.features = EW_FEATURES_RFF;
  expect(&pc, "features \"rff\" needs 'sigma', the Gaussian kernel's bandwidth (a number > 0)",
         "sigma", "rff without");
  pc.sigma = 2;
  expect(&pc, "features \"rff\" share one Ω between x and y, so 'dims' must be equal (got [6, 4])",
         "dims", "rff unequal");
  CHECK(ew_config_dims(&pc, 6, 6, NULL, 0) == 0, "dims 6, 6");
  expect(&pc, NULL, "features", "rff, sigma 2, dims 6, 6");
  uint64_t bad_dims[][2] = {{0, 4}, {4, 0}, {8193, 4}, {4, 8193}};
  for (size_t i = 0; i < 4; i++)
    CHECK(ew_config_dims(&pc, bad_dims[i][0], bad_dims[i][1], msg, sizeof msg) == EW_EBADPARAM &&
              strstr(msg, "'dims' must be [dx, dy], each between 1 and 8192") && pc.shape[0] == 6,
          "dims %zu: %s", i, msg);
  /* a field flagged EW_CF_IF_KEPT is not checked when none of its kinds is kept: a shuffle buffer
   * of 0 rows is fine without a live estimate, not with one */
  ew_config_t x;
  ew_config_default(&x, 8);
  x.live_k = 0, x.shuffle = 0;
  expect(&x, NULL, "shuffle", "0 without a live estimate");
  x.live_k = 1;
  expect(&x, ew_config_field(6)->error, "shuffle", "0 with a live estimate");
  CHECK(strcmp(ew_config_field(6)->name, "shuffle") == 0, "row 6 is %s", ew_config_field(6)->name);
}

/* ---- the table as data ---- */

static void the_field_table_is_the_map(void) {
  CHECK(ew_config_field_count() == EW_CONFIG_COUNT && EW_CONFIG_COUNT >= 10, "%d fields",
        (int)EW_CONFIG_COUNT);
  CHECK(ew_config_field(EW_CONFIG_COUNT) == NULL, "past the end");
  size_t i = 0, olds = 0;
#define XX(m_, w_, o_, t_, d_, lo_, hi_, k_, fl_, si_, wa_, dd_, doc_, err_)                       \
  {                                                                                               \
    const ew_config_field_t *f = ew_config_field(i++);                                            \
    CHECK(strcmp(f->name, #w_) == 0 && strcmp(f->member, #m_) == 0, "%s", f->name);               \
    CHECK(f->offset == offsetof(ew_config_t, m_) && f->type == EW_CT_##t_, "%s", f->name);        \
    CHECK(f->kinds == (k_) && (f->kinds & ~EW_KINDS_ALL) == 0 && f->flags == (fl_) &&             \
              f->since == (si_) && f->since >= 1,                                                 \
          "%s", f->name);                                                                         \
    CHECK(strlen(f->doc) > 10 && strlen(f->error) > 10 && *f->default_doc, "%s docs", f->name);   \
    CHECK(strstr(f->error, "'" #w_ "'") == f->error, "%s: the sentence names the field first",    \
          f->name);                                                                               \
    CHECK((f->values != NULL) == (f->type == EW_CT_ENUM), "%s values", f->name);                  \
    olds += f->old_name != NULL;                                                                  \
  }
  EW_CONFIG_MAP(XX)
#undef XX
  CHECK(olds == EW_CONFIG_OLD_COUNT, "%zu old names", olds);
  for (size_t a = 0; a < EW_CONFIG_COUNT; a++)
    for (size_t b = 0; b < EW_CONFIG_COUNT; b++) {
      const ew_config_field_t *x = ew_config_field(a), *y = ew_config_field(b);
      CHECK(a == b || strcmp(x->name, y->name) != 0, "two fields named %s", x->name);
      CHECK(!y->old_name || strcmp(x->name, y->old_name) != 0, "%s is also an old name",
            x->name);
    }
  for (int k = 0; k < EW_KIND_COUNT; k++) {
    const ew_kind_info_t *i_ = ew_kind_info((ew_kind_t)k);
    CHECK(i_ && *i_->name && strlen(i_->tag) == 4 && strlen(i_->doc) > 10 && i_->views,
          "kind %d", k);
  }
  CHECK(ew_kind_info(EW_KIND_COUNT) == NULL, "past the end");
}

static void defaults_are_what_their_docs_say(void) {
  for (size_t d = 1; d <= 4096; d *= 8) {
    ew_config_t c;
    ew_config_default(&c, d);
    CHECK(ew_config_check(&c, NULL, 0) == 0, "the defaults at dim %zu are valid", d);
    for (size_t i = 0; i < EW_CONFIG_COUNT; i++) {
      const ew_config_field_t *f = ew_config_field(i);
      char *end;
      double v = strtod(f->default_doc, &end);
      if (f->flags & EW_CF_GIVEN) {
        CHECK(strcmp(f->default_doc, "required") == 0 && ew_config_get_u64(&c, i) == d, "%s",
              f->name);
      } else if (*end == 0) {
        CHECK(ew_config_get_f64(&c, i) == v, "%s: default %g, docs say %s", f->name,
              ew_config_get_f64(&c, i), f->default_doc);
      } else if (f->type == EW_CT_ENUM) {
        char want[64];
        snprintf(want, sizeof want, "`\"%s\"`", f->values[ew_config_get_u64(&c, i)]);
        CHECK(strcmp(f->default_doc, want) == 0, "%s: docs say %s, default %s", f->name,
              f->default_doc, want);
      }
    }
  }
}

/* ---- equality and kinds ---- */

/* Configurations that keep different kinds (dense with a window and a live estimate, decay
 * without window, fd without live estimate). */
static void bases(ew_config_t b[3]) {
  ew_config_default(&b[0], 8);
  ew_config_default(&b[1], 8);
  b[1].decay_half_life = 50, b[1].window = 0;
  ew_config_default(&b[2], 16);
  b[2].exact_max_dim = 8, b[2].live_k = 0;
}

static void equality_compares_a_field_only_where_it_applies(void) {
  ew_config_t b[3];
  bases(b);
  int compared = 0, skipped = 0;
  for (int k = 0; k < 3; k++) {
    CHECK(ew_config_equal(&b[k], &b[k]), "base %d equals itself", k);
    for (size_t i = 0; i < EW_CONFIG_COUNT; i++) {
      const ew_config_field_t *f = ew_config_field(i);
      ew_config_t y = b[k];
      char *p = (char *)&y + f->offset; /* another valid value of the field */
      switch (f->type) {
      case EW_CT_COUNT: *(size_t *)(void *)p += *(size_t *)(void *)p > 2 ? -1 : 1; break;
      case EW_CT_U64: *(uint64_t *)(void *)p += 1; break;
      case EW_CT_ENUM: *(int *)(void *)p = !*(int *)(void *)p; break;
      case EW_CT_REAL_OFF: *(double *)(void *)p = *(double *)(void *)p ? 0 : 10; break;
      }
      if (ew_config_check(&y, NULL, 0) != 0)
        continue;
      unsigned kept = ew_config_kinds(&b[k]);
      int want = ew_config_kinds(&y) == kept && !(f->kinds & kept);
      CHECK(ew_config_equal(&b[k], &y) == want && ew_config_equal(&y, &b[k]) == want,
            "base %d, %s changed: equal %d, want %d", k, f->name, ew_config_equal(&b[k], &y),
            want);
      want ? skipped++ : compared++;
    }
  }
  CHECK(compared >= 10 && skipped >= 4, "%d compared, %d skipped", compared, skipped);
  /* what that rule means, pinned */
  ew_config_t a, c;
  ew_config_default(&a, 8);
  c = a, c.exact_max_dim = 5000;
  CHECK(ew_config_equal(&a, &c), "exact_max_dim counts only through the kind it chooses");
  c = a, c.exact_max_dim = 4;
  CHECK(!ew_config_equal(&a, &c), "... which a sketch changes");
  c = a, c.sketch_rows = 100;
  CHECK(ew_config_equal(&a, &c), "sketch_rows counts only for a sketch");
  c = a, c.seed = 1;
  CHECK(!ew_config_equal(&a, &c), "seed counts for every kind");
  a.live_k = 0, c = a, c.shuffle = 9;
  CHECK(ew_config_equal(&a, &c), "shuffle counts only with a live estimate");
  a.window = 0, c = a, c.window_mode = EW_WINDOW_LAZY;
  CHECK(ew_config_equal(&a, &c), "window_mode counts only with a window");
}

/* A saved state in memory. */
typedef struct {
  unsigned char *p;
  size_t len, off;
} buf_t;

static int buf_write(void *ctx, const void *p, size_t n) {
  buf_t *b = ctx;
  if (n > b->len - b->off)
    return -1;
  memcpy(b->p + b->off, p, n);
  b->off += n;
  return 0;
}

static int buf_read(void *ctx, void *p, size_t n) {
  buf_t *b = ctx;
  if (n > b->len - b->off)
    return -1;
  memcpy(p, b->p + b->off, n);
  b->off += n;
  return 0;
}

static buf_t save(const ew_stream_t *s) {
  buf_t b = {.len = ew_stream_saved_bytes(s)};
  b.p = malloc(b.len);
  CHECK(b.p && ew_stream_save(s, buf_write, &b) == 0 && b.off == b.len, "save");
  return b;
}

/* Whether the saved state b has a section tagged tag. */
static bool has_section(const buf_t *b, const char *tag) {
  for (size_t off = 16; off + 12 <= b->len;) {
    uint64_t l;
    memcpy(&l, b->p + off + 4, 8);
    if (memcmp(b->p + off, tag, 4) == 0)
      return true;
    off += 12 + l;
  }
  return false;
}

static void a_stream_keeps_exactly_the_kinds_of_its_configuration(void) {
  int n = 0;
  for (int sk = 0; sk < 2; sk++)
    for (int dec = 0; dec < 2; dec++)
      for (int win = 0; win < 3; win++)
        for (int live = 0; live < 2; live++) {
          ew_config_t c;
          ew_config_default(&c, 12);
          c.exact_max_dim = sk ? 8 : 4096, c.decay_half_life = dec ? 30 : 0;
          c.window = win == 0 ? 0 : win == 1 ? 5 : 40; /* none, rows only (5 < d), moments */
          c.live_k = (size_t)live * 2;
          unsigned k = ew_config_kinds(&c), all = 0;
          for (int i = 0; i < EW_KIND_COUNT; i++)
            if ((k >> i) & 1 && ew_kind_info((ew_kind_t)i)->role == EW_ROLE_ALL)
              all++;
          CHECK(all == 1, "%u kinds of role ALL", all);
          CHECK(ew_config_check(&c, NULL, 0) == 0, "valid");
          ew_stream_t *s = NULL;
          CHECK(ew_stream_create(&c, &s) == 0, "create");
          if (!s)
            continue;
          float rows[30 * 12];
          for (size_t i = 0; i < 30 * 12; i++)
            rows[i] = (float)((i * 7919) % 101) / 50.0f - 1.0f;
          CHECK(ew_stream_ingest(s, rows, EW_F32, 30, 12) == 0, "ingest");
          buf_t b = save(s);
          for (int i = 0; i < EW_KIND_COUNT; i++) {
            const ew_kind_info_t *ki = ew_kind_info((ew_kind_t)i);
            bool kept = (k >> i) & 1;
            /* it is built: its accumulator (or the live estimate) exists, and is saved */
            bool built = ki->role == EW_ROLE_LIVE ? s->has_live : s->acc[ki->role] != NULL;
            if (kept)
              CHECK(built && has_section(&b, ki->tag), "%s kept: built %d, section %s saved",
                    ki->name, built, ki->tag);
            if (!kept && ki->role == EW_ROLE_LIVE)
              CHECK(!built && !has_section(&b, ki->tag), "%s not kept", ki->name);
            if (!kept || ki->role == EW_ROLE_LIVE)
              continue;
            const ew__acc_t *a = s->acc[ki->role];
            CHECK(memcmp(&a->ops->tag, ki->tag, 4) == 0, "%s is saved as %s", ki->name, ki->tag);
            /* what it offers a view is what the table says */
            ew__src_t src;
            memset(&src, 0, sizeof src);
            ew__ws_t *ws = ew__ws_thread();
            ew__ws_mark_t mk = ew__ws_begin(ws);
            CHECK(a->ops->view((ew__acc_t *)a, EW__WANT_MOMENTS | EW__WANT_ROWS, 0, &src, ws) == 0,
                  "%s view", ki->name);
            CHECK(!(ki->views & EW_VIEW_SKETCH) == !src.sketch, "%s: sketch", ki->name);
            CHECK(!(ki->views & EW_VIEW_ROWS) == !src.keeps_rows, "%s: rows", ki->name);
            CHECK(!(ki->views & EW_VIEW_MATRIX) || src.mom || src.keeps_rows,
                  "%s: the matrix, from moments or rows", ki->name);
            ew__ws_end(ws, mk);
          }
          for (int r = EW_ROLE_ALL; r < EW__NROLES; r++) {
            bool any = false;
            for (int i = 0; i < EW_KIND_COUNT; i++)
              any |= ((k >> i) & 1) && ew_kind_info((ew_kind_t)i)->role == (ew_role_t)r;
            CHECK(any == (s->acc[r] != NULL), "role %d: an accumulator iff a kind keeps it", r);
          }
          free(b.p);
          ew_stream_free(s);
          n++;
        }
  CHECK(n == 24, "%d configurations", n);
}

static void summary_and_solve_dim_follow_the_kind(void) {
  ew_config_t c;
  char buf[64];
  ew_config_default(&c, 12);
  ew_config_summary(&c, buf, sizeof buf);
  CHECK(strcmp(buf, "exact up to exact_max_dim 4096") == 0 && ew_config_solve_dim(&c) == 12,
        "dense: %s, %zu", buf, ew_config_solve_dim(&c));
  c.decay_half_life = 9;
  ew_config_summary(&c, buf, sizeof buf);
  CHECK(strcmp(buf, "exact up to exact_max_dim 4096") == 0 && ew_config_solve_dim(&c) == 12,
        "decay: %s", buf);
  c.exact_max_dim = 8, c.sketch_rows = 3;
  ew_config_summary(&c, buf, sizeof buf);
  CHECK(strcmp(buf, "a sketch of 3 rows") == 0 && ew_config_solve_dim(&c) == 7, "fd: %s, %zu",
        buf, ew_config_solve_dim(&c));
}

/* ---- the CONF section ---- */

/* A saved stream's CONF holds its configuration, one 8-byte value per field of its format's
 * version, in table order; ew_state_config reads it back. */
static void conf_check(const ew_config_t *c, uint32_t version) {
  ew_stream_t *s = NULL;
  CHECK(ew_stream_create(c, &s) == 0, "create");
  if (!s)
    return;
  buf_t b = save(s);
  uint64_t len, want = 0;
  uint32_t v;
  memcpy(&v, b.p + 8, 4);
  memcpy(&len, b.p + 20, 8);
  for (size_t i = 0; i < EW_CONFIG_COUNT; i++)
    want += ew_config_field(i)->since <= version ? 8 : 0;
  CHECK(v == version && memcmp(b.p + 16, "CONF", 4) == 0 && len == want,
        "version %u, CONF of %llu bytes", v, (unsigned long long)len);
  for (size_t i = 0, at = 0; i < EW_CONFIG_COUNT; i++) {
    const ew_config_field_t *f = ew_config_field(i);
    if (f->since > version)
      continue;
    uint64_t u;
    double x;
    memcpy(&u, b.p + 28 + 8 * at, 8);
    memcpy(&x, b.p + 28 + 8 * at++, 8);
    if (f->type == EW_CT_REAL_OFF)
      CHECK(x == ew_config_get_f64(c, i), "%s: %g", f->name, x);
    else
      CHECK(u == ew_config_get_u64(c, i), "%s: %llu", f->name, (unsigned long long)u);
  }
  ew_config_t got;
  char msg[128];
  CHECK(ew_state_config(b.p, b.len, &got, msg, sizeof msg) == 0 && ew_config_equal(&got, c) &&
            got.stream_kind == c->stream_kind && got.dim == c->dim,
        "ew_state_config reads it back: %s", msg);
  free(b.p);
  ew_stream_free(s);
}

static void conf_is_one_value_per_field_in_table_order(void) {
  ew_config_t c;
  ew_config_default(&c, 12);
  c.normalize = EW_NORMALIZE_L2, c.window = 33, c.window_mode = EW_WINDOW_LAZY;
  c.decay_half_life = 12.5, c.live_k = 3, c.shuffle = 77, c.seed = 0x123456789abcdefULL;
  c.exact_max_dim = 10, c.sketch_rows = 5; /* a sketch */
  conf_check(&c, 2); /* a matrix stream's state is format 2, as before the tokens and stats kinds */
  ew_config_t st;
  ew_config_default(&st, 1);
  uint64_t shape[] = {6, 4};
  CHECK(ew_config_shape(&st, shape, 2, NULL, 0) == 0, "shape");
  st.reduce = EW_REDUCE_MAX;
  conf_check(&st, 3); /* kind and reduce, then SHAP */
  const char *cols[] = {"entropy", "logp"};
  ew_config_t tk;
  ew_config_default(&tk, 1);
  CHECK(ew_config_columns(&tk, cols, 2, NULL, 0) == 0, "columns");
  conf_check(&tk, 3);
}

static void a_version_1_state_loads_later_fields_as_they_were(void) {
  ew_config_t orig;
  ew_config_default(&orig, 12);
  orig.exact_max_dim = 100, orig.sketch_rows = 5, orig.window = 20; /* exact: a v1 state can be */
  ew_stream_t *s = NULL;
  CHECK(ew_stream_create(&orig, &s) == 0, "create");
  if (!s)
    return;
  buf_t b = save(s);
  uint64_t len, v1 = 0;
  memcpy(&len, b.p + 20, 8);
  for (size_t i = 0; i < EW_CONFIG_COUNT; i++)
    v1 += ew_config_field(i)->since <= 1 ? 8 : 0;
  CHECK(v1 == 64 && len == 80, "CONF: %llu bytes, %llu in version 1", (unsigned long long)len,
        (unsigned long long)v1);
  /* the same state as version 1 wrote it: its CONF holds the fields of version 1 only */
  buf_t o = {.len = b.len - (len - v1)};
  o.p = malloc(o.len);
  uint32_t one = 1;
  memcpy(o.p, b.p, 28 + v1);
  memcpy(o.p + 8, &one, 4);
  memcpy(o.p + 20, &v1, 8);
  memcpy(o.p + 28 + v1, b.p + 28 + len, b.len - 28 - len - 4);
  uint32_t crc = ew_crc32c(0, o.p, o.len - 4);
  memcpy(o.p + o.len - 4, &crc, 4);
  char msg[160];
  ew_config_t head;
  CHECK(ew_state_config(o.p, o.len, &head, msg, sizeof msg) == 0, "its configuration: %s", msg);
  ew_stream_t *old = NULL;
  CHECK(ew_stream_load(&old, buf_read, &o, msg, sizeof msg) == 0, "version 1 loads: %s", msg);
  if (old) {
    const ew_config_t *got = ew_stream_config(old);
    CHECK(memcmp(got, &head, sizeof head) == 0, "ew_state_config reads what the load does");
    const ew_config_t *c = got; /* what the was expressions read */
#define XX(member, wire, old_, type, def, lo, hi, kinds, flags, since, was, ...)                   \
  CHECK((since) <= 1 ? got->member == orig.member : got->member == (was),                         \
        #wire " of a version-1 state");
    EW_CONFIG_MAP(XX)
#undef XX
    (void)c;
    CHECK(got->exact_max_dim == 4096 && got->sketch_rows == EW_DEFAULT_SKETCH_ROWS,
          "a version-1 state of dim 12 loads exact up to 4096: %zu, %zu", got->exact_max_dim,
          got->sketch_rows);
    CHECK(ew_stream_count(old) == ew_stream_count(s), "rows");
    ew_stream_free(old);
  }
  free(o.p);
  free(b.p);
  ew_stream_free(s);
}

int main(void) {
  TAP_RUN(every_field_is_refused_outside_its_range_with_its_sentence);
  TAP_RUN(the_field_table_is_the_map);
  TAP_RUN(defaults_are_what_their_docs_say);
  TAP_RUN(equality_compares_a_field_only_where_it_applies);
  TAP_RUN(a_stream_keeps_exactly_the_kinds_of_its_configuration);
  TAP_RUN(summary_and_solve_dim_follow_the_kind);
  TAP_RUN(conf_is_one_value_per_field_in_table_order);
  TAP_RUN(a_version_1_state_loads_later_fields_as_they_were);
  TAP_DONE();
}
