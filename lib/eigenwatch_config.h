/* eigenwatch_config.h — part of eigenwatch.h (include that, not this): the two tables a stream's
 * configuration comes from, EW_KIND_MAP and EW_CONFIG_MAP, and the configuration's functions. */
#ifndef EIGENWATCH_CONFIG_H
#define EIGENWATCH_CONFIG_H

/* ---- stream kinds and configuration: two tables ------------------------------------------
 * EW_KIND_MAP lists what a stream may keep of its rows, EW_CONFIG_MAP every field of its
 * configuration. From them come ew_config_t, its defaults, checks and equality, which kinds a
 * configuration keeps and how a stream builds them (lib/config.c), the CONF section of the saved
 * state (lib/state/, docs/STATE.md), and — in proto/ and the daemon — create's fields, the CONFIG
 * map of info, the CLI's create options and the tables of proto/PROTOCOL.md and docs/STATE.md.
 * A new field is one row (plus the code that reads it); a new kind is one row plus its functions
 * (lib/config.c). */

/* What metrics may read of a kind (the views column). */
#define EW_VIEW_MATRIX 1u  /* the exact d×d matrix: f64 mean and co-moment */
#define EW_VIEW_SKETCH 2u  /* the matrix within a certificate, with exact n, mean, trace, diagonal */
#define EW_VIEW_ROWS 4u    /* the rows themselves, in arrival order */
#define EW_VIEW_VECTORS 8u /* estimated top eigenvectors (the live_topk metric) */
#define EW_VIEW_TOKENS 16u /* per-token scalars by column: a step's, a window of steps', sums of all */
#define EW_VIEW_CELLS 32u  /* pre-reduced statistics per (layer, head) cell, reduced by its rule */
#define EW_VIEW_PAIRED 64u /* the uncentred blocks Σφ(x)φ(x)ᵀ, Σφ(x)φ(y)ᵀ, Σφ(y)φ(y)ᵀ of paired rows */

/* Which rows a kind describes (the role column). A valid configuration keeps exactly one kind of
 * role ALL and at most one of each other role. */
typedef enum { EW_ROLE_ALL = 0, EW_ROLE_WINDOW = 1, EW_ROLE_LIVE = 2 } ew_role_t;

/* XX(ID, name, ROLE, views, "TAG", when, "doc")
 *   name  lower case: the docs' name, and lib/config.c builds the kind with attach_<name>
 *   TAG   the section of the saved state its rows are kept in (docs/STATE.md)
 *   when  whether a configuration keeps the kind: a C expression over c (const ew_config_t *) */
#define EW_KIND_MAP(XX)                                                                           \
  XX(DENSE, dense, ALL, EW_VIEW_MATRIX, "MALL",                                                   \
     EW__MATRIX(c) && !ew_config_sketched(c) && (c)->decay_half_life == 0,                        \
     "every row's exact moments: count, f64 mean and co-moment (dim ≤ exact_max_dim, no decay)") \
  XX(DECAY, decay, ALL, EW_VIEW_MATRIX, "MALL",                                                   \
     EW__MATRIX(c) && !ew_config_sketched(c) && (c)->decay_half_life > 0,                                          \
     "exact moments whose weights halve every `decay` rows (dim ≤ exact_max_dim)")                \
  XX(FD, fd, ALL, EW_VIEW_SKETCH, "FDSK", EW__MATRIX(c) && ew_config_sketched(c),                                   \
     "a Frequent Directions sketch of the co-moment with exact count, mean, trace and diagonal "  \
     "(dim > exact_max_dim; it forgets too when `decay` is set)")                                 \
  XX(WINDOW, window, WINDOW, EW_VIEW_MATRIX | EW_VIEW_ROWS, "WIND",                                   \
     EW__MATRIX(c) && (c)->window > 0,                                                            \
     "the last `window` rows (f32) in a ring, with their own exact moments unless window < dim")  \
  XX(LIVE, live, LIVE, EW_VIEW_VECTORS, "LROP", EW__MATRIX(c) && (c)->live_k > 0,                \
     "the live top-`live_k` eigenvector estimate (random-order block power behind a shuffle "    \
     "buffer)")                                                                                   \
  XX(TOKENS, tokens, ALL, EW_VIEW_TOKENS, "TOKS", (c)->stream_kind == EW_STREAM_TOKENS,                  \
     "per-token scalars in named `columns`: the newest `window_steps` steps' counted tokens (f64) " \
     "and exact mergeable sums of all of them, with a quantile sketch per column")              \
  XX(STATS, stats, ALL, EW_VIEW_CELLS, "CELL", (c)->stream_kind == EW_STREAM_STATS,               \
     "pre-reduced statistics of a `shape` of cells (layers × heads), reduced over ranks and "     \
     "batches by `reduce`: the newest `window_steps` steps' cells and all of them")              \
  XX(PAIRED, paired, ALL, EW_VIEW_PAIRED, "PAIR", (c)->stream_kind == EW_STREAM_PAIRED,           \
     "paired rows (x, y): their count and the f64 blocks Σφ(x)φ(x)ᵀ, Σφ(x)φ(y)ᵀ, Σφ(y)φ(y)ᵀ of "   \
     "the raw rows (`features` linear) or of random Fourier features with one seeded Ω (`rff`)")

/* A matrix stream keeps rows of d values; a tokens stream per-token scalars (EW_ENUM_stream_kind, the `kind` field). */
#define EW__MATRIX(c) ((c)->stream_kind == EW_STREAM_MATRIX)

typedef enum {
#define EW__XX(id, ...) EW_KIND_##id,
  EW_KIND_MAP(EW__XX)
#undef EW__XX
  EW_KIND_COUNT
} ew_kind_t;
#define EW_KIND_BIT(id) (1u << EW_KIND_##id)
#define EW_KINDS_ALL ((1u << EW_KIND_COUNT) - 1u)

typedef struct {
  const char *name;
  ew_role_t role;
  unsigned views;  /* EW_VIEW_* */
  const char *tag; /* the saved section */
  const char *doc;
} ew_kind_info_t;
/* Row k of the kind table (static), or NULL when k is out of range. */
const ew_kind_info_t *ew_kind_info(ew_kind_t k);

/* The names of an enumerated field, in value order: XX(ENUM_VALUE, "name"). */
#define EW_ENUM_normalize(XX) XX(EW_NORMALIZE_NONE, "none") XX(EW_NORMALIZE_L2, "l2")
/* How the window keeps its moments. Incremental maintenance (merge each batch, un-merge the rows
 * it pushes out) costs about two extra syrks per batch; rebuilding from the ring costs one syrk
 * of W rows per query. AUTO maintains incrementally while window metrics are being asked for
 * (a window query within the last W rows) and otherwise only writes the ring, rebuilding once at
 * the next window query. Answers are identical either way (to rounding). */
#define EW_ENUM_window_mode(XX)                                                                   \
  XX(EW_WINDOW_AUTO, "auto") XX(EW_WINDOW_EAGER, "eager") XX(EW_WINDOW_LAZY, "lazy")
/* What a stream is fed (create's `kind`): rows of d values, per-token scalars in named columns
 * (RL policy entropy, log-probabilities, advantages), pre-reduced cells, or paired rows (x, y). */
#define EW_ENUM_stream_kind(XX)                                                                   \
  XX(EW_STREAM_MATRIX, "matrix") XX(EW_STREAM_TOKENS, "tokens") XX(EW_STREAM_STATS, "stats")      \
  XX(EW_STREAM_PAIRED, "paired")
/* What a paired stream keeps of each side's rows (create's `features`): the rows themselves, or
 * random Fourier features φ(v) = [cos vΩ, sin vΩ]/√m of one Ω shared by both sides. */
#define EW_ENUM_features(XX) XX(EW_FEATURES_LINEAR, "linear") XX(EW_FEATURES_RFF, "rff")
/* How a stats stream reduces a cell over ranks and batches (create's `reduce`): the mean weighted
 * by the batches' counts, the largest, the smallest, or the sum. */
#define EW_ENUM_reduce(XX)                                                                        \
  XX(EW_REDUCE_MEAN, "mean") XX(EW_REDUCE_MAX, "max") XX(EW_REDUCE_MIN, "min")                    \
  XX(EW_REDUCE_SUM, "sum")
#define EW__ENUM_VALUE(value, name) value,
typedef enum { EW_ENUM_normalize(EW__ENUM_VALUE) } ew_normalize_t;
typedef enum { EW_ENUM_window_mode(EW__ENUM_VALUE) } ew_window_mode_t;
typedef enum { EW_ENUM_stream_kind(EW__ENUM_VALUE) } ew_stream_kind_t;
typedef enum { EW_ENUM_reduce(EW__ENUM_VALUE) } ew_reduce_t;
typedef enum { EW_ENUM_features(EW__ENUM_VALUE) } ew_features_t;

#define EW_MAX_DIM 65536          /* hard ceiling on d for the exact accumulator */
#define EW_DEFAULT_WINDOW 4096    /* rows kept when d <= EW_WINDOW_AUTO_MAX_DIM */
#define EW_WINDOW_AUTO_MAX_DIM 1024
#define EW_WINDOW_MAX_ROWS ((uint64_t)1 << 26)
#define EW_WINDOW_MAX_VALUES ((uint64_t)1 << 32) /* window × dim */
#define EW_DEFAULT_SHUFFLE 256    /* rows of the live estimate's randomising buffer */
#define EW_LIVE_K_MAX 64
#define EW_EXACT_MAX_DIM 4096
#define EW_DEFAULT_SKETCH_ROWS 256
#define EW_SKETCH_ROWS_MAX 4096
#define EW_PAIRED_DIM_MAX 8192    /* a paired stream's dx, dy and feature dimensions at most */
#define EW_DEFAULT_RFF_DIM 512
#define EW_RFF_DIM_MAX 4096       /* m: 2m features a side */

/* The types of the TYPE column: the member's C type, and how the wire carries the field.
 *   COUNT     size_t                      a non-negative integer
 *   U64       uint64_t                    a non-negative integer
 *   ENUM      ew_<member>_t               one of the names of EW_ENUM_<member>, as a string
 *   REAL_OFF  double: 0 = off, else a     a number (nil: absent)
 *             finite value in [min, max] */
typedef enum { EW_CT_COUNT, EW_CT_U64, EW_CT_ENUM, EW_CT_REAL_OFF } ew_config_type_t;
#define EW__CTYPE_COUNT(member) size_t
#define EW__CTYPE_U64(member) uint64_t
#define EW__CTYPE_ENUM(member) ew_##member##_t
#define EW__CTYPE_REAL_OFF(member) double

/* The flags column. */
#define EW_CF_GIVEN 1u   /* no default: the caller gives it (create requires it) */
#define EW_CF_SAVED 2u   /* kept in the CONF section of the saved state */
#define EW_CF_MERGE 4u   /* ew_stream_merge needs it equal in both streams */
#define EW_CF_IF_KEPT 8u /* checked only when the configuration keeps one of its kinds */
#define EW_CF_MATRIX_ONLY_GIVEN 16u /* with GIVEN: given for matrix streams only (a tokens stream's
                                       dim is its number of columns) */

/* The OLD column: NONE, or OLD(name) for a field renamed on the wire, whose earlier name create
 * still accepts and info still shows. For X-macro users, EW_IF_OLD(col, M, args...) expands to
 * M(name, args...) for OLD(name) and to nothing for NONE. */
#define EW_IF_OLD(col, M, ...) EW__IF_OLD2(EW__OLD_##col, M, __VA_ARGS__)
#define EW__OLD_NONE EW__OLD_DROP, _
#define EW__OLD_OLD(name) EW__OLD_KEEP, name
#define EW__IF_OLD2(...) EW__IF_OLD3(__VA_ARGS__)
#define EW__IF_OLD3(which, name, M, ...) which(M, name, __VA_ARGS__)
#define EW__OLD_DROP(...)
#define EW__OLD_KEEP(M, ...) M(__VA_ARGS__)

/* The largest window for a configuration c: at most EW_WINDOW_MAX_ROWS rows and
 * EW_WINDOW_MAX_VALUES values (dim must be valid). */
#define EW__WINDOW_MAX(c)                                                                         \
  (EW_WINDOW_MAX_VALUES / (c)->dim < EW_WINDOW_MAX_ROWS ? EW_WINDOW_MAX_VALUES / (c)->dim         \
                                                        : EW_WINDOW_MAX_ROWS)

/* Every field of a stream's configuration, in the order of ew_config_t, of the CONF section and
 * of create's fields:
 * XX(member, wire, OLD, TYPE, default, min, max, kinds, flags, since, was, "default", "doc",
 *    "sentence")
 *   member    the ew_config_t member
 *   wire      its name on the wire (create, info's CONFIG), in the docs and the CLI (--wire-name)
 *   default   its value in ew_config_default, an expression over c (const ew_config_t *, whose
 *             dim is set); min, max: the accepted range, expressions over c (the fields before it
 *             have been checked; ENUM: its first and last value)
 *   kinds     EW_KIND_BIT()s of the kinds it applies to: ew_config_equal compares it only when
 *             both keep one of them (both keep the same kinds or they differ); 0: it counts only
 *             through the kinds it chooses
 *   since     the state format version whose CONF first carries it; a state of an earlier version
 *             loads the field as `was`, an expression over c. info's CONFIG lists the fields of
 *             version 1 first (under their old names where renamed), then the daemon's keys,
 *             then the rest: the order its replies have always had.
 *   "default" the default as the docs say it; "sentence" what a value out of range (or of the wrong
 *             type, on the wire) answers: EW_EBADPARAM / BAD_PARAM. */
#define EW_CONFIG_MAP(XX)                                                                         \
  XX(dim, dim, NONE, COUNT, (c)->dim, 1, EW_MAX_DIM, EW_KINDS_ALL,                                \
     EW_CF_GIVEN | EW_CF_MATRIX_ONLY_GIVEN | EW_CF_SAVED, 1,                                      \
     0, "required", "d, 1–65536", "'dim' must be an integer between 1 and 65536")                \
  XX(normalize, normalize, NONE, ENUM, EW_NORMALIZE_NONE, EW_NORMALIZE_NONE, EW_NORMALIZE_L2,     \
     EW_KINDS_ALL, EW_CF_SAVED | EW_CF_MERGE, 1, 0, "`\"none\"`",                                 \
     "scale rows to unit length before accumulating (zero rows stay zero and count)",             \
     "'normalize' must be \"none\" or \"l2\"")                                                    \
  XX(window, window, NONE, COUNT, (c)->dim <= EW_WINDOW_AUTO_MAX_DIM ? EW_DEFAULT_WINDOW : 0, 0,  \
     EW__WINDOW_MAX(c), EW_KIND_BIT(WINDOW), EW_CF_SAVED, 1, 0, "4096 if d ≤ 1024, else 0",      \
     "rows in the FIFO window (0 = none)",                                                        \
     "'window' must be a number of rows, at most 2^26 and with window*dim at most 2^32")          \
  XX(window_mode, window_mode, NONE, ENUM, EW_WINDOW_AUTO, EW_WINDOW_AUTO, EW_WINDOW_LAZY,        \
     EW_KIND_BIT(WINDOW), EW_CF_SAVED, 1, 0, "`\"auto\"`",                                        \
     "how the window's moments are kept (see docs/METRICS.md)",                                   \
     "'window_mode' must be \"auto\", \"eager\" or \"lazy\"")                                     \
  XX(decay_half_life, decay, NONE, REAL_OFF, 0, 1, DBL_MAX, EW_KIND_BIT(DECAY) | EW_KIND_BIT(FD), \
     EW_CF_SAVED | EW_CF_MERGE, 1, 0, "0",                                                        \
     "half-life in rows of an exponentially forgetting state (0 = off, else ≥ 1)",                \
     "'decay' is a half-life in rows: 0 (off) or a finite number >= 1")                           \
  XX(live_k, live_k, OLD(topk), COUNT, 1, 0,                                                      \
     (c)->dim < EW_LIVE_K_MAX ? (c)->dim : EW_LIVE_K_MAX, EW_KIND_BIT(LIVE), EW_CF_SAVED, 1, 0,   \
     "1",                                                                                         \
     "vectors of the live estimate (random-order block power; the `live_topk` metric), "         \
     "0–min(64, d)",                                                                              \
     "'live_k' (live eigenvector estimates; old name topk) must be an integer between 0 and "    \
     "min(64, dim)")                                                                              \
  XX(shuffle, shuffle, NONE, COUNT, EW_DEFAULT_SHUFFLE, 1, 65536, EW_KIND_BIT(LIVE),              \
     EW_CF_SAVED | EW_CF_IF_KEPT, 1, 0, "256", "shuffle-buffer rows in front of the live estimate", \
     "'shuffle' must be a number of rows between 1 and 65536")                                    \
  XX(seed, seed, NONE, U64, 24301, 0, UINT64_MAX, EW_KINDS_ALL, EW_CF_SAVED, 1, 0, "24301",       \
     "seed of the shuffle buffer and start vectors", "'seed' must be an integer >= 0")            \
  XX(exact_max_dim, exact_max_dim, NONE, COUNT, EW_EXACT_MAX_DIM, 1, EW_MAX_DIM, 0, EW_CF_SAVED,  \
     2, (c)->dim > EW_EXACT_MAX_DIM ? (c)->dim : EW_EXACT_MAX_DIM, "4096",                        \
     "above this d the stream keeps a Frequent Directions sketch instead of the exact d×d "       \
     "co-moment (docs/METRICS.md, \"Sketched streams\")",                                         \
     "'exact_max_dim' must be an integer between 1 and 65536")                                    \
  XX(sketch_rows, sketch_rows, NONE, COUNT, EW_DEFAULT_SKETCH_ROWS, 2, EW_SKETCH_ROWS_MAX,        \
     EW_KIND_BIT(FD), EW_CF_SAVED, 2, EW_DEFAULT_SKETCH_ROWS, "256",                              \
     "ℓ, the sketch's rows after each shrink (it holds up to 2ℓ; memory 2ℓ·d doubles)",           \
     "'sketch_rows' must be an integer between 2 and 4096")                                  \
  XX(stream_kind, kind, NONE, ENUM, EW_STREAM_MATRIX, EW_STREAM_MATRIX, EW_STREAM_PAIRED,         \
     EW_KINDS_ALL, EW_CF_SAVED | EW_CF_MERGE, 3, EW_STREAM_MATRIX, "`\"matrix\"`",                 \
     "what the stream is fed: rows of `dim` values (`matrix`), per-token scalars in named "      \
     "`columns` (`tokens`; `dim` is their count), pre-reduced statistics of a `shape` of "        \
     "cells (`stats`; `dim` is the cells), or paired rows x, y of `dims` [dx, dy] (`paired`; "    \
     "`dim` is dx + dy)",                                                                         \
     "'kind' must be \"matrix\", \"tokens\", \"stats\" or \"paired\"")                           \
  XX(reduce, reduce, NONE, ENUM, EW_REDUCE_MEAN, EW_REDUCE_MEAN, EW_REDUCE_SUM,                   \
     EW_KIND_BIT(STATS), EW_CF_SAVED | EW_CF_MERGE, 3, EW_REDUCE_MEAN, "`\"mean\"`",              \
     "kind `stats`: how a cell is reduced over ranks and batches: `mean` (weighted by the "       \
     "batches' counts), `max`, `min` or `sum`",                                                   \
     "'reduce' must be \"mean\", \"max\", \"min\" or \"sum\"")                                   \
  XX(features, features, NONE, ENUM, EW_FEATURES_LINEAR, EW_FEATURES_LINEAR, EW_FEATURES_RFF,     \
     EW_KIND_BIT(PAIRED), EW_CF_SAVED | EW_CF_MERGE | EW_CF_IF_KEPT, 4, EW_FEATURES_LINEAR,       \
     "`\"linear\"`",                                                                              \
     "kind `paired`: φ, what the blocks are made of: the raw rows (`linear`), or random Fourier "  \
     "features [cos vΩ, sin vΩ]/√m (`rff`, Ω = a seeded N(0, 1/σ²) dx×m draw shared by x and y; "  \
     "needs dx = dy)",                                                                           \
     "'features' must be \"linear\" or \"rff\"")                                                  \
  XX(sigma, sigma, NONE, REAL_OFF, 0, DBL_MIN, DBL_MAX, EW_KIND_BIT(PAIRED),                      \
     EW_CF_SAVED | EW_CF_MERGE | EW_CF_IF_KEPT, 4, 0, "none (required by `rff`)",                 \
     "kind `paired`, `rff`: the Gaussian kernel's bandwidth σ, k(x, y) = exp(−‖x−y‖²/(2σ²))",     \
     "'sigma' must be a finite number > 0")                                                       \
  XX(rff_dim, rff_dim, NONE, COUNT, EW_DEFAULT_RFF_DIM, 1, EW_RFF_DIM_MAX, EW_KIND_BIT(PAIRED),   \
     EW_CF_SAVED | EW_CF_MERGE | EW_CF_IF_KEPT, 4, EW_DEFAULT_RFF_DIM, "512",                     \
     "kind `paired`, `rff`: m, the frequencies of Ω (2m features a side; the SCE paper used 2500)", \
     "'rff_dim' must be an integer between 1 and 4096")

/* The columns of a tokens stream: 1–EW_COLUMNS_MAX distinct names of 1–EW_COLUMN_NAME_MAX bytes
 * of [a-z0-9_] (NUL-terminated), in the order create gave them. */
#define EW_COLUMNS_MAX 8
#define EW_COLUMN_NAME_MAX 32
typedef struct {
  uint32_t n;
  char name[EW_COLUMNS_MAX][EW_COLUMN_NAME_MAX + 1];
} ew_names_t;

typedef struct {
#define EW__XX(member, wire, old, type, ...) EW__CTYPE_##type(member) member;
  EW_CONFIG_MAP(EW__XX)
#undef EW__XX
  /* kind tokens: its columns (default one, "entropy"). A list, so not a row of the table of
   * scalars above: create's `columns`, info's CONFIG and the TOKS section of the saved state
   * carry it; ew_config_check, ew_config_equal and merge compare it for tokens streams. */
  ew_names_t columns;
  /* kind stats: its shape, [L] (shape[1] = 1, rank 1) or [L, H] (rank 2); dim = L·H cells, at
   * most EW_CELLS_MAX. Outside the table as columns are (create's `shape`, info's CONFIG, the
   * saved state's SHAP section). */
  uint32_t shape_rank;
  uint32_t shape[2];
  /* (kind paired keeps its dims [dx, dy] in shape, rank 2: create's `dims`, the SHAP section) */
} ew_config_t;
#define EW_CELLS_MAX 65536

#define EW__PLUS1(...) +1
#define EW__OLD_PLUS1(member, wire, old, ...) EW_IF_OLD(old, EW__PLUS1, _)
/* The number of fields, and of old names. */
enum {
  EW_CONFIG_COUNT = 0 EW_CONFIG_MAP(EW__PLUS1),
  EW_CONFIG_OLD_COUNT = 0 EW_CONFIG_MAP(EW__OLD_PLUS1)
};

/* Row i of the configuration table, as data (ew_config_field; static). */
typedef struct {
  const char *name;          /* on the wire, in info, the CLI (--name, '_' as '-') and the docs */
  const char *member;        /* the ew_config_t member */
  const char *old_name;      /* an earlier wire name create accepts and info shows, or NULL */
  ew_config_type_t type;
  size_t offset;             /* of the member in ew_config_t */
  const char *const *values; /* EW_CT_ENUM: its names in value order, NULL-terminated; else NULL */
  unsigned kinds;            /* EW_KIND_BIT()s it applies to (0: it only chooses kinds) */
  unsigned flags;            /* EW_CF_* */
  unsigned since;            /* the state format version whose CONF first carries it */
  const char *default_doc, *doc, *error;
} ew_config_field_t;
/* The number of rows (EW_CONFIG_COUNT), and row i (NULL when out of range). */
size_t ew_config_field_count(void);
const ew_config_field_t *ew_config_field(size_t i);
/* Field i of cfg: as an integer (COUNT, U64; ENUM: the value's index; REAL_OFF: 0) and as a
 * double (any type). */
uint64_t ew_config_get_u64(const ew_config_t *cfg, size_t i);
double ew_config_get_f64(const ew_config_t *cfg, size_t i);

/* Sets cfg's columns to names[0, n) (each NUL-terminated) and dim to n; kind becomes tokens.
 * Returns 0, or EW_EBADPARAM with a sentence in msg[0, cap) (msg may be NULL) for no name, more
 * than EW_COLUMNS_MAX, an empty, too long or repeated name, or a byte outside [a-z0-9_]; cfg is
 * then unchanged. */
int ew_config_columns(ew_config_t *cfg, const char *const *names, size_t n, char *msg, size_t cap);
/* Sets cfg's shape to dims[0, rank) (rank 1 or 2, each ≥ 1, at most EW_CELLS_MAX cells in all)
 * and dim to its cells; kind becomes stats. Returns 0, or EW_EBADPARAM with a sentence (msg may be
 * NULL); cfg is then unchanged. */
int ew_config_shape(ew_config_t *cfg, const uint64_t *dims, size_t rank, char *msg, size_t cap);
/* Sets cfg's dims to [dx, dy] (each 1–EW_PAIRED_DIM_MAX; kept in shape, rank 2) and dim to
 * dx + dy; kind becomes paired. Returns 0, or EW_EBADPARAM with a sentence (msg may be NULL);
 * cfg is then unchanged. */
int ew_config_dims(ew_config_t *cfg, uint64_t dx, uint64_t dy, char *msg, size_t cap);
/* The index of column name[0, len) in cfg's columns, or -1. */
int ew_config_column(const ew_config_t *cfg, const char *name, size_t len);

/* Fills `cfg` with every field's default for dimension `dim`: no normalisation, a window of
 * EW_DEFAULT_WINDOW rows when dim <= EW_WINDOW_AUTO_MAX_DIM (else none), no decay, one live
 * vector behind a shuffle buffer of EW_DEFAULT_SHUFFLE rows, seed 0x5eed, window_mode AUTO,
 * exact_max_dim EW_EXACT_MAX_DIM and EW_DEFAULT_SKETCH_ROWS sketch rows. */
void ew_config_default(ew_config_t *cfg, size_t dim);
/* Returns 0 if `cfg` is usable, else EW_EBADPARAM (and, when msg != NULL, the offending field's
 * sentence in msg[0..msgcap)). Fields are checked in table order, each within its [min, max];
 * a field flagged EW_CF_IF_KEPT only when the configuration keeps one of its kinds. */
int ew_config_check(const ew_config_t *cfg, char *msg, size_t msgcap);
int ew_config_sketched(const ew_config_t *cfg); /* 1 when dim > exact_max_dim */
/* EW_KIND_BIT()s of the kinds a configuration keeps (EW_KIND_MAP's when column). */
unsigned ew_config_kinds(const ew_config_t *cfg);
/* Returns 1 if the two configurations describe the same stream, else 0: they keep the same kinds,
 * and every field that applies to one of those kinds is equal (so exact_max_dim counts only
 * through what it decides — both sketched, or both exact — sketch_rows only for a sketched
 * stream, window_mode only with a window, shuffle only with a live estimate). */
int ew_config_equal(const ew_config_t *a, const ew_config_t *b);
/* The order of the symmetric eigenproblem behind an exact spectrum of source all: dim, or for a
 * sketched stream the 2ℓ+1 directions of its sketch. 0 for a configuration that keeps no kind of
 * role ALL (ew_config_check refuses it). */
size_t ew_config_solve_dim(const ew_config_t *cfg);
/* Writes a phrase saying how the stream keeps every row ("exact up to exact_max_dim 4096", "a
 * sketch of 256 rows") into buf[0, cap) (always NUL-terminated when cap > 0). Returns what
 * snprintf returns. */
int ew_config_summary(const ew_config_t *cfg, char *buf, size_t cap);

#endif /* EIGENWATCH_CONFIG_H */
