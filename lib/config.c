/* config.c — the two tables of eigenwatch.h at work: EW_KIND_MAP (what a stream keeps of its
 * rows) and EW_CONFIG_MAP (every field of its configuration). Everything here is generated from
 * their rows: the field table as data, defaults, checks, equality, merge compatibility, which
 * kinds a configuration keeps, and building those kinds into a stream (each kind's functions
 * below are the only code a new kind adds here). The CONF section of the saved state is
 * state/save.c's and state/load.c's; the stream itself (merge, reset, the admission model) is
 * stream.c's, its ingest stream_ingest.c's. */
#include "ew_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- the kind table ---- */

#define XX(id, name, role, views, tag, when, doc) {#name, EW_ROLE_##role, views, tag, doc},
static const ew_kind_info_t kinds[EW_KIND_COUNT] = {EW_KIND_MAP(XX)};
#undef XX

EW_EXPORT const ew_kind_info_t *ew_kind_info(ew_kind_t k) {
  return (unsigned)k < EW_KIND_COUNT ? &kinds[k] : NULL;
}

_Static_assert(EW__ROLE_ALL == (int)EW_ROLE_ALL && EW__ROLE_WINDOW == (int)EW_ROLE_WINDOW,
               "the accumulator slots of a stream are the kind table's roles");
_Static_assert(EW_KIND_COUNT <= 32, "kinds are bits of an unsigned");

EW_EXPORT unsigned ew_config_kinds(const ew_config_t *c) {
  unsigned k = 0;
#define XX(id, name, role, views, tag, when, doc)                                                 \
  if (when)                                                                                       \
    k |= EW_KIND_BIT(id);
  EW_KIND_MAP(XX)
#undef XX
  return k;
}

/* The kinds of a role, as bits. */
static unsigned role_kinds(ew_role_t role) {
  unsigned k = 0;
  for (int i = 0; i < EW_KIND_COUNT; i++)
    if (kinds[i].role == role)
      k |= 1u << i;
  return k;
}

/* The kind of role ALL a configuration keeps, or -1 (none, or more than one). */
static int all_kind(const ew_config_t *c) {
  unsigned k = ew_config_kinds(c) & role_kinds(EW_ROLE_ALL);
  if (k == 0 || (k & (k - 1)) != 0)
    return -1;
  return __builtin_ctz(k);
}

/* ---- each kind's functions: build it into a stream, bound its state, and (role ALL) the order
 * of its eigenproblem and how messages describe it ---- */

static int put_acc(ew_stream_t *s, ew_role_t role, ew__acc_t *a) {
  s->acc[role] = a;
  return a ? 0 : EW_ENOMEM;
}

static int attach_dense(ew_stream_t *s, const ew_config_t *c) {
  return put_acc(s, EW_ROLE_ALL, ew__acc_dense_new(c->dim));
}
static int attach_decay(ew_stream_t *s, const ew_config_t *c) {
  return put_acc(s, EW_ROLE_ALL, ew__acc_decay_new(c->dim, c->decay_half_life));
}
static int attach_fd(ew_stream_t *s, const ew_config_t *c) {
  return put_acc(s, EW_ROLE_ALL, ew__acc_fd_new(c->dim, ew__acc_fd_ell(c), c->decay_half_life));
}
static int attach_window(ew_stream_t *s, const ew_config_t *c) {
  return put_acc(s, EW_ROLE_WINDOW, ew__acc_window_new(c->dim, c->window));
}
static int attach_tokens(ew_stream_t *s, const ew_config_t *c) {
  return put_acc(s, EW_ROLE_ALL, ew__acc_tokens_new(c->columns.n));
}
static int attach_stats(ew_stream_t *s, const ew_config_t *c) {
  return put_acc(s, EW_ROLE_ALL, ew__acc_stats_new(c->dim, c->reduce));
}
static int attach_paired(ew_stream_t *s, const ew_config_t *c) {
  return put_acc(s, EW_ROLE_ALL, ew__acc_paired_new(c));
}
static int attach_live(ew_stream_t *s, const ew_config_t *c) {
  int rc = ew__rop_init(&s->live, c->dim, c->live_k, c->shuffle, c->seed);
  s->has_live = rc == 0;
  return rc;
}

static size_t bound_dense(const ew_config_t *c) { return ew__acc_dense_bound(c->dim); }
#define bound_decay bound_dense
static size_t bound_fd(const ew_config_t *c) { return ew__acc_fd_bound(c->dim, ew__acc_fd_ell(c)); }
static size_t bound_window(const ew_config_t *c) { return ew__acc_window_bound(c->dim, c->window); }
static size_t bound_live(const ew_config_t *c) { return ew__rop_bound(c->dim, c->live_k, c->shuffle); }

static size_t bound_tokens(const ew_config_t *c) { return ew__acc_tokens_bound(c->columns.n); }
static size_t bound_stats(const ew_config_t *c) { return ew__acc_stats_bound(c->dim); }
static size_t bound_paired(const ew_config_t *c) { return ew__acc_paired_bound(c); }

static size_t order_dense(const ew_config_t *c) { return c->dim; }
#define order_decay order_dense
static size_t order_fd(const ew_config_t *c) { return 2 * ew__acc_fd_ell(c) + 1; }
#define order_window NULL
#define order_live NULL
static size_t order_tokens(const ew_config_t *c) { (void)c; return 0; } /* no eigenproblem */
#define order_stats order_tokens
#define order_paired order_tokens /* its metrics solve their own blocks */

static int summary_dense(const ew_config_t *c, char *buf, size_t cap) {
  return snprintf(buf, cap, "exact up to exact_max_dim %zu", c->exact_max_dim);
}
#define summary_decay summary_dense
static int summary_fd(const ew_config_t *c, char *buf, size_t cap) {
  return snprintf(buf, cap, "a sketch of %zu rows", ew__acc_fd_ell(c));
}
#define summary_window NULL
#define summary_live NULL
static int summary_tokens(const ew_config_t *c, char *buf, size_t cap) {
  return snprintf(buf, cap, "tokens in %u columns", c->columns.n);
}
static int summary_stats(const ew_config_t *c, char *buf, size_t cap) {
  return snprintf(buf, cap, "a %ux%u shape of cells", c->shape[0], c->shape[1]);
}
static int summary_paired(const ew_config_t *c, char *buf, size_t cap) {
  if (c->features == EW_FEATURES_RFF)
    return snprintf(buf, cap, "paired %u/%u rows as %zu random Fourier features (sigma %g)",
                    c->shape[0], c->shape[1], 2 * c->rff_dim, c->sigma);
  return snprintf(buf, cap, "paired %u/%u rows, linear", c->shape[0], c->shape[1]);
}

static const struct {
  int (*attach)(ew_stream_t *s, const ew_config_t *c); /* 0 or EW_ENOMEM */
  size_t (*bound)(const ew_config_t *c);                /* the most bytes its state holds */
  size_t (*order)(const ew_config_t *c);                /* role ALL: ew_config_solve_dim */
  int (*summary)(const ew_config_t *c, char *buf, size_t cap); /* role ALL */
} kind_fns[EW_KIND_COUNT] = {
#define XX(id, name, ...) [EW_KIND_##id] = {attach_##name, bound_##name, order_##name, summary_##name},
    EW_KIND_MAP(XX)
#undef XX
};

int ew__kinds_attach(ew_stream_t *s) {
  unsigned k = ew_config_kinds(&s->cfg);
  int rc = 0;
  for (int i = 0; i < EW_KIND_COUNT && rc == 0; i++)
    if (k & (1u << i))
      rc = kind_fns[i].attach(s, &s->cfg);
  return rc;
}

size_t ew__kinds_state_bound(const ew_config_t *c) {
  unsigned k = ew_config_kinds(c);
  size_t t = 0;
  for (int i = 0; i < EW_KIND_COUNT; i++)
    if (k & (1u << i))
      t += kind_fns[i].bound(c);
  return t;
}

EW_EXPORT size_t ew_config_solve_dim(const ew_config_t *c) {
  int k = all_kind(c);
  return k < 0 ? 0 : kind_fns[k].order(c);
}

EW_EXPORT int ew_config_summary(const ew_config_t *c, char *buf, size_t cap) {
  int k = all_kind(c);
  if (k < 0)
    return snprintf(buf, cap, "no way to keep every row");
  return kind_fns[k].summary(c, buf, cap);
}

/* ---- the configuration table as data ---- */

/* The names of each ENUM field, in value order: its EW_ENUM_<member> list. */
#define EW__NAME(value, name) name,
#define NAMES_COUNT(member)
#define NAMES_U64(member)
#define NAMES_REAL_OFF(member)
#define NAMES_ENUM(member)                                                                        \
  static const char *const names_##member[] = {EW_ENUM_##member(EW__NAME) NULL};
#define XX(member, wire, old, type, ...) NAMES_##type(member)
EW_CONFIG_MAP(XX)
#undef XX
/* An ENUM field's range is its whole list: min the first value (0), max the last. */
#define ENUM_RANGE_COUNT(member, lo, hi)
#define ENUM_RANGE_U64(member, lo, hi)
#define ENUM_RANGE_REAL_OFF(member, lo, hi)
#define ENUM_RANGE_ENUM(member, lo, hi)                                                           \
  _Static_assert((lo) == 0 && (hi) + 2 == sizeof names_##member / sizeof names_##member[0],       \
                 "the range of " #member " is its EW_ENUM_" #member " list");
#define XX(member, wire, old, type, def, lo, hi, ...) ENUM_RANGE_##type(member, lo, hi)
EW_CONFIG_MAP(XX)
#undef XX

#define VALUES_COUNT(member) NULL
#define VALUES_U64(member) NULL
#define VALUES_REAL_OFF(member) NULL
#define VALUES_ENUM(member) names_##member
#define OLD_NAME_NONE NULL
#define OLD_NAME_OLD(name) #name
#define XX(member, wire, old, type, def, lo, hi, kinds_, flags, since, was, defdoc, doc, err)     \
  {#wire, #member, OLD_NAME_##old, EW_CT_##type, offsetof(ew_config_t, member),                  \
   VALUES_##type(member), kinds_, flags, since, defdoc, doc, err},
static const ew_config_field_t fields[EW_CONFIG_COUNT] = {EW_CONFIG_MAP(XX)};
#undef XX

EW_EXPORT size_t ew_config_field_count(void) { return EW_CONFIG_COUNT; }

EW_EXPORT const ew_config_field_t *ew_config_field(size_t i) {
  return i < EW_CONFIG_COUNT ? &fields[i] : NULL;
}

EW_EXPORT uint64_t ew_config_get_u64(const ew_config_t *cfg, size_t i) {
  if (i >= EW_CONFIG_COUNT)
    return 0;
  const char *p = (const char *)cfg + fields[i].offset;
  switch (fields[i].type) {
  case EW_CT_COUNT: return *(const size_t *)(const void *)p;
  case EW_CT_U64: return *(const uint64_t *)(const void *)p;
  case EW_CT_ENUM: return (uint64_t)*(const int *)(const void *)p;
  case EW_CT_REAL_OFF: return 0;
  }
  return 0;
}

EW_EXPORT double ew_config_get_f64(const ew_config_t *cfg, size_t i) {
  if (i < EW_CONFIG_COUNT && fields[i].type == EW_CT_REAL_OFF)
    return *(const double *)(const void *)((const char *)cfg + fields[i].offset);
  return (double)ew_config_get_u64(cfg, i);
}

/* Every ENUM member is stored as an int (ew_config_get_u64 reads it so). */
#define ENUM_INT_COUNT(member)
#define ENUM_INT_U64(member)
#define ENUM_INT_REAL_OFF(member)
#define ENUM_INT_ENUM(member)                                                                     \
  _Static_assert(sizeof(ew_##member##_t) == sizeof(int), #member " is stored as an int");
#define XX(member, wire, old, type, ...) ENUM_INT_##type(member)
EW_CONFIG_MAP(XX)
#undef XX

/* ---- defaults, checks, equality ---- */

EW_EXPORT void ew_config_default(ew_config_t *cfg, size_t dim) {
  memset(cfg, 0, sizeof *cfg);
  cfg->dim = dim;
  const ew_config_t *c = cfg; /* what the default expressions read */
#define XX(member, wire, old, type, def, lo, hi, kinds_, flags, ...)                              \
  if (!((flags) & EW_CF_GIVEN))                                                                   \
    cfg->member = (def);
  EW_CONFIG_MAP(XX)
#undef XX
  (void)c;
  cfg->columns.n = 1; /* a tokens stream's default column */
  memcpy(cfg->columns.name[0], "entropy", 8);
  cfg->shape_rank = 1; /* a stats stream's: dim cells in one row */
  cfg->shape[0] = dim <= UINT32_MAX ? (uint32_t)dim : 0;
  cfg->shape[1] = 1;
}

EW_EXPORT int ew_config_shape(ew_config_t *cfg, const uint64_t *dims, size_t rank, char *msg,
                              size_t cap) {
  if (rank < 1 || rank > 2)
    return ew__fail_msg(msg, cap, "'shape' must be [L] or [L, H] (got %zu numbers)", rank);
  uint64_t cells = 1;
  for (size_t i = 0; i < rank; i++) {
    if (dims[i] < 1 || dims[i] > EW_CELLS_MAX)
      return ew__fail_msg(msg, cap, "'shape' must hold numbers of at least 1 (and at most %d "
                          "cells in all)", EW_CELLS_MAX);
    cells *= dims[i];
  }
  if (cells > EW_CELLS_MAX)
    return ew__fail_msg(msg, cap, "'shape' holds %llu cells; a stats stream holds at most %d",
                        (unsigned long long)cells, EW_CELLS_MAX);
  cfg->shape_rank = (uint32_t)rank;
  cfg->shape[0] = (uint32_t)dims[0];
  cfg->shape[1] = rank == 2 ? (uint32_t)dims[1] : 1;
  cfg->dim = (size_t)cells;
  cfg->stream_kind = EW_STREAM_STATS;
  return 0;
}

EW_EXPORT int ew_config_dims(ew_config_t *cfg, uint64_t dx, uint64_t dy, char *msg, size_t cap) {
  if (dx < 1 || dx > EW_PAIRED_DIM_MAX || dy < 1 || dy > EW_PAIRED_DIM_MAX)
    return ew__fail_msg(msg, cap, "'dims' must be [dx, dy], each between 1 and %d", EW_PAIRED_DIM_MAX);
  cfg->shape_rank = 2;
  cfg->shape[0] = (uint32_t)dx;
  cfg->shape[1] = (uint32_t)dy;
  cfg->dim = (size_t)(dx + dy);
  cfg->stream_kind = EW_STREAM_PAIRED;
  return 0;
}

/* Whether name[0, len) is a column name: 1..EW_COLUMN_NAME_MAX bytes of [a-z0-9_]. */
static bool column_name_ok(const char *name, size_t len) {
  if (len == 0 || len > EW_COLUMN_NAME_MAX)
    return false;
  for (size_t i = 0; i < len; i++)
    if (!((name[i] >= 'a' && name[i] <= 'z') || (name[i] >= '0' && name[i] <= '9') ||
          name[i] == '_'))
      return false;
  return true;
}

/* 0 when names[0, n) are a tokens stream's columns, else EW_EBADPARAM and the sentence. */
static int columns_check(const char *const *names, size_t n, char *msg, size_t cap) {
  if (n == 0 || n > EW_COLUMNS_MAX)
    return ew__fail_msg(msg, cap, "'columns' must name 1 to %d columns (got %zu)", EW_COLUMNS_MAX,
                        n);
  for (size_t i = 0; i < n; i++) {
    size_t len = strnlen(names[i], EW_COLUMN_NAME_MAX + 1);
    if (!column_name_ok(names[i], len)) {
      char shown[41]; /* the name as printable ASCII ('?' for any other byte) */
      size_t k = 0;
      for (; k < 40 && names[i][k]; k++)
        shown[k] = names[i][k] >= 0x20 && names[i][k] < 0x7f ? names[i][k] : '?';
      shown[k] = 0;
      return ew__fail_msg(msg, cap, "column name '%s' must be 1 to %d bytes of [a-z0-9_]", shown,
                          EW_COLUMN_NAME_MAX);
    }
    for (size_t k = 0; k < i; k++)
      if (strcmp(names[k], names[i]) == 0)
        return ew__fail_msg(msg, cap, "column '%s' is named twice in 'columns'", names[i]);
  }
  return 0;
}

EW_EXPORT int ew_config_columns(ew_config_t *cfg, const char *const *names, size_t n, char *msg,
                                size_t cap) {
  int rc = columns_check(names, n, msg, cap);
  if (rc)
    return rc;
  memset(&cfg->columns, 0, sizeof cfg->columns);
  cfg->columns.n = (uint32_t)n;
  for (size_t i = 0; i < n; i++)
    memcpy(cfg->columns.name[i], names[i], strlen(names[i]) + 1);
  cfg->dim = n;
  cfg->stream_kind = EW_STREAM_TOKENS;
  return 0;
}

EW_EXPORT int ew_config_column(const ew_config_t *cfg, const char *name, size_t len) {
  for (uint32_t i = 0; i < cfg->columns.n && i < EW_COLUMNS_MAX; i++)
    if (strlen(cfg->columns.name[i]) == len && memcmp(cfg->columns.name[i], name, len) == 0)
      return (int)i;
  return -1;
}

/* True when both configurations name the same columns (tokens streams). */
static bool columns_equal(const ew_config_t *a, const ew_config_t *b) {
  if (a->columns.n != b->columns.n)
    return false;
  for (uint32_t i = 0; i < a->columns.n && i < EW_COLUMNS_MAX; i++)
    if (strcmp(a->columns.name[i], b->columns.name[i]) != 0)
      return false;
  return true;
}

/* True when both configurations have the same shape (stats streams). */
static bool shape_equal(const ew_config_t *a, const ew_config_t *b) {
  return a->shape_rank == b->shape_rank && a->shape[0] == b->shape[0] && a->shape[1] == b->shape[1];
}

EW_EXPORT int ew_config_sketched(const ew_config_t *cfg) { return cfg->dim > cfg->exact_max_dim; }

/* Whether v lies in its field's range, by type (functions, so that a bound of 0 or of the type's
 * largest value compares without a warning). */
static bool in_u64(uint64_t v, uint64_t lo, uint64_t hi) { return v >= lo && v <= hi; }
static bool in_enum(long v, long lo, long hi) { return v >= lo && v <= hi; }
static bool in_real_off(double v, double lo, double hi) {
  return v == 0 || (isfinite(v) && v >= lo && v <= hi);
}
#define IN_COUNT(v, lo, hi) in_u64((uint64_t)(v), (uint64_t)(lo), (uint64_t)(hi))
#define IN_U64(v, lo, hi) in_u64((uint64_t)(v), (uint64_t)(lo), (uint64_t)(hi))
#define IN_ENUM(v, lo, hi) in_enum((long)(v), (long)(lo), (long)(hi))
#define IN_REAL_OFF(v, lo, hi) in_real_off((double)(v), (double)(lo), (double)(hi))

static int cfg_fail(char *msg, size_t cap, const char *text) {
  if (msg && cap)
    snprintf(msg, cap, "%s", text);
  return EW_EBADPARAM;
}

EW_EXPORT int ew_config_check(const ew_config_t *c, char *msg, size_t cap) {
  unsigned kept = ew_config_kinds(c);
#define XX(member, wire, old, type, def, lo, hi, kinds_, flags, since, was, defdoc, doc, err)     \
  if ((!((flags) & EW_CF_IF_KEPT) || ((kinds_) & kept)) && !IN_##type(c->member, lo, hi))        \
    return cfg_fail(msg, cap, err);
  EW_CONFIG_MAP(XX)
#undef XX
  /* every row goes to exactly one kind of role ALL (true of any configuration whose fields pass:
   * a table whose when column broke that would be caught here, and by tests/unit/test_config.c) */
  unsigned all = kept & role_kinds(EW_ROLE_ALL);
  if (all == 0 || (all & (all - 1)) != 0)
    return cfg_fail(msg, cap, "the configuration keeps no single kind of state for every row");
  for (int r = EW_ROLE_ALL + 1; r <= EW_ROLE_LIVE; r++) {
    unsigned k = kept & role_kinds((ew_role_t)r);
    if (k & (k - 1))
      return cfg_fail(msg, cap, "the configuration keeps two kinds of state in one role");
  }
  if (c->stream_kind == EW_STREAM_TOKENS) {
    const char *names[EW_COLUMNS_MAX];
    size_t n = c->columns.n <= EW_COLUMNS_MAX ? c->columns.n : 0;
    for (size_t i = 0; i < n; i++)
      names[i] = c->columns.name[i];
    for (size_t i = 0; i < n; i++)
      if (!memchr(c->columns.name[i], 0, EW_COLUMN_NAME_MAX + 1))
        return cfg_fail(msg, cap, "a column name is not terminated");
    int rc = columns_check(names, n ? n : c->columns.n, msg, cap);
    if (rc)
      return rc;
    if (c->dim != n)
      return ew__fail_msg(msg, cap, "a tokens stream's dim is its number of columns (%zu), not %zu",
                          n, c->dim);
  }
  if (c->stream_kind == EW_STREAM_STATS) {
    uint64_t dims[2] = {c->shape[0], c->shape[1]};
    ew_config_t t = *c;
    int rc = ew_config_shape(&t, dims, c->shape_rank, msg, cap);
    if (rc)
      return rc;
    if ((c->shape_rank == 1 && c->shape[1] != 1) || t.dim != c->dim)
      return ew__fail_msg(msg, cap, "a stats stream's dim is the cells of its shape (%zu), not %zu",
                          t.dim, c->dim);
  }
  if (c->stream_kind == EW_STREAM_PAIRED) {
    ew_config_t t = *c;
    int rc = ew_config_dims(&t, c->shape[0], c->shape[1], msg, cap);
    if (rc)
      return rc;
    if (c->shape_rank != 2 || t.dim != c->dim)
      return ew__fail_msg(msg, cap, "a paired stream's dim is dx + dy (%zu), not %zu", t.dim,
                          c->dim);
    if (c->normalize != EW_NORMALIZE_NONE)
      return cfg_fail(msg, cap, "a paired stream takes its rows as they are: 'normalize' must be "
                      "\"none\"");
    if (c->features == EW_FEATURES_RFF) {
      if (c->sigma == 0)
        return cfg_fail(msg, cap, "features \"rff\" needs 'sigma', the Gaussian kernel's "
                        "bandwidth (a number > 0)");
      if (c->shape[0] != c->shape[1])
        return ew__fail_msg(msg, cap, "features \"rff\" share one Ω between x and y, so 'dims' "
                            "must be equal (got [%u, %u])", c->shape[0], c->shape[1]);
    }
  }
  return 0;
}

/* c with what its kind ignores set to the defaults: a linear paired stream's sigma and rff_dim
 * (they describe the rff map only), so that two linear streams compare by what they keep. */
static ew_config_t canonical(const ew_config_t *c) {
  ew_config_t t = *c;
  if (t.stream_kind == EW_STREAM_PAIRED && t.features == EW_FEATURES_LINEAR)
    t.sigma = 0, t.rff_dim = EW_DEFAULT_RFF_DIM;
  return t;
}

EW_EXPORT int ew_config_equal(const ew_config_t *a0, const ew_config_t *b0) {
  ew_config_t ca = canonical(a0), cb = canonical(b0);
  const ew_config_t *a = &ca, *b = &cb;
  unsigned k = ew_config_kinds(a);
  if (k != ew_config_kinds(b))
    return 0;
#define XX(member, wire, old, type, def, lo, hi, kinds_, ...)                                     \
  if (((kinds_) & k) && !(a->member == b->member))                                                \
    return 0;
  EW_CONFIG_MAP(XX)
#undef XX
  if ((a->stream_kind == EW_STREAM_STATS || a->stream_kind == EW_STREAM_PAIRED) &&
      !shape_equal(a, b))
    return 0;
  if (a->stream_kind == EW_STREAM_PAIRED && a->features == EW_FEATURES_RFF && a->seed != b->seed)
    return 0; /* the seed draws Ω */
  return a->stream_kind != EW_STREAM_TOKENS || columns_equal(a, b);
}

int ew__config_mergeable(const ew_config_t *a0, const ew_config_t *b0) {
  ew_config_t ca = canonical(a0), cb = canonical(b0);
  const ew_config_t *a = &ca, *b = &cb;
#define XX(member, wire, old, type, def, lo, hi, kinds_, flags, ...)                              \
  if (((flags) & EW_CF_MERGE) && !(a->member == b->member))                                       \
    return 0;
  EW_CONFIG_MAP(XX)
#undef XX
  unsigned all = role_kinds(EW_ROLE_ALL);
  if ((a->stream_kind == EW_STREAM_TOKENS && !columns_equal(a, b)) ||
      ((a->stream_kind == EW_STREAM_STATS || a->stream_kind == EW_STREAM_PAIRED) &&
       !shape_equal(a, b)) ||
      (a->stream_kind == EW_STREAM_PAIRED && a->features == EW_FEATURES_RFF && a->seed != b->seed))
    return 0;
  return (ew_config_kinds(a) & all) == (ew_config_kinds(b) & all);
}
