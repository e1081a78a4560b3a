/* ewp_fields.h — the field table of every method: the data the decoder walks, the request
 * structs are generated from and PROTOCOL.md's field tables are printed from (a field is one
 * row). Included by ewp.h, after the field types it names; not included on its own. */
#ifndef EWP_FIELDS_H
#define EWP_FIELDS_H

/* ---- fields of each method ----
 * F(member, TYPE, flags, "wire type", "default", code, "sentence when wrong", "doc")
 *   flags: EWP_F_REQ (required), EWP_F_NIL (nil means absent)
 *   code/sentence: the error a missing (if required) or mistyped value answers
 * ENUM fields take their strings from EWP_ENUM_<member>. Order is the order fields are checked
 * and documented. */
#define EWP_F_REQ 1u
#define EWP_F_NIL 2u

#define EWP_FIELDS_PING(F)
#define EWP_FIELDS_STATS(F)
#define EWP_FIELDS_RUNS(F)
#define EWP_FIELDS_METRICS(F)
#define EWP_FIELDS_SNAPSHOT(F)

#define EWP__STREAM_FIELD(F)                                                                      \
  F(stream, NAME, EWP_F_REQ, "str", "required", EWP_EBADREQ, "'stream' (a string) is required",  \
    "1–200 bytes of `A-Z a-z 0-9 _ . : / -`; no leading or trailing `/`, no empty, `.` or `..` " \
    "part between slashes")                                                                       \
  EWP__RUN_FIELD(F)

/* A run: the same rule as a stream name. Absent means "default". */
#define EWP_DEFAULT_RUN "default"
#define EWP__RUN_FIELD(F)                                                                         \
  F(run, NAME, 0, "str", "`\"default\"`", EWP_EBADREQ,                                           \
    "'run' must be a name (1–200 bytes of A-Z a-z 0-9 _ . : / -)",                                \
    "the training run the stream belongs to; the key of a stream is (run, stream)")

#define EWP_FIELDS_LIST(F) EWP__RUN_FIELD(F)
#define EWP_FIELDS_INFO(F) EWP__STREAM_FIELD(F)
#define EWP_FIELDS_RESET(F) EWP__STREAM_FIELD(F)
/* drop: a stream, or with `run` alone every stream of the run (decode.c's cross-field rule). */
#define EWP_FIELDS_DROP(F)                                                                        \
  F(stream, NAME, 0, "str", "— (with `run` alone: every stream of the run)", EWP_EBADREQ,         \
    "'stream' must be a name (1–200 bytes of A-Z a-z 0-9 _ . : / -)",                             \
    "the stream to drop; absent, `run` must be given and every stream of that run is dropped")   \
  EWP__RUN_FIELD(F)
#define EWP_FIELDS_EXPORT(F) EWP__STREAM_FIELD(F)
/* flush: a stream's pending steps now; `end` also marks its run over for it. */
#define EWP_FIELDS_FLUSH(F)                                                                       \
  EWP__STREAM_FIELD(F)                                                                            \
  F(end, BOOL, 0, "bool", "false", EWP_EBADPARAM, "'end' must be true or false",                  \
    "true: the run's last rows for this stream have come: the stream is marked ended "           \
    "(`info.steps.ended`, /metrics' eigenwatch_stream_ended) until a batch comes again")          \
  F(rank, UINT, 0, "int", "absent", EWP_EBADPARAM, "'rank' must be an integer >= 0 (with 'end')",  \
    "with `end`: the rank whose last rows have come. Pending steps are then not completed now — " \
    "they complete as every rank ends them (its `end_step`) — so one rank that finishes first "    \
    "never cuts the others' last step short; without `rank`, every pending step completes now")

/* The widest a training run's rank count may be (world), and a producer name's length. */
#define EWP_WORLD_MAX 65536
#define EWP_PRODUCER_MAX 64

#define EWP_ENUM_source "all", "window", "window_cn", "step"
#define EWP_ENUM_method "auto", "slq", "exact"
#define EWP_ENUM_dtype "f32|float32", "f64|float64", "f16|float16", "bf16|bfloat16"

/* create's fields begin with the stream's configuration: one field per row of the library's
 * EW_CONFIG_MAP, named by its wire column, typed by its TYPE column (COUNT and U64: an integer;
 * ENUM: one of its names; REAL_OFF: a number, nil meaning absent), required when its flags say
 * EW_CF_GIVEN, answering the row's sentence with BAD_PARAM when wrong; a renamed field is also
 * taken under its old name (OLD column), in the row right after it. The rows of EW_CONFIG_MAP do
 * not carry F, so each F that EWP_FIELDS_CREATE is applied to has an adapter EWP__CONF_<F>. */
#define EWP__WT_COUNT UINT
#define EWP__WT_U64 UINT
#define EWP__WT_ENUM ENUM
#define EWP__WT_REAL_OFF NUM
#define EWP__WF_COUNT 0u
#define EWP__WF_U64 0u
#define EWP__WF_ENUM 0u
#define EWP__WF_REAL_OFF EWP_F_NIL
#define EWP__WD_COUNT "int"
#define EWP__WD_U64 "int"
#define EWP__WD_ENUM NULL /* the docs list its names (ewp_field_info_t.values) */
#define EWP__WD_REAL_OFF "number"
#define EWP__CALL(F, ...) F(__VA_ARGS__)
#define EWP__CONF(F, member, wire, old, type, def, lo, hi, kinds, flags, since, was, defdoc, doc,  \
                  err)                                                                            \
  EWP__CALL(F, wire, EWP__WT_##type,                                                              \
            EWP__WF_##type | (((flags) & (EW_CF_GIVEN | EW_CF_MATRIX_ONLY_GIVEN)) == EW_CF_GIVEN      \
                                  ? EWP_F_REQ : 0u), EWP__WD_##type, defdoc,                      \
            EWP_EBADPARAM, err, doc)                                                              \
  EW_IF_OLD(old, EWP__CONF_OLD, F, wire, type, defdoc, err)
#define EWP__CONF_OLD(name, F, wire, type, defdoc, err)                                           \
  EWP__CALL(F, name, EWP__WT_##type, EWP__WF_##type, EWP__WD_##type, defdoc, EWP_EBADPARAM, err,  \
            "the old name of `" #wire "`, still accepted (both given: they must agree)")
#define EWP__CONF_EWP__MEMBER(...) EWP__CONF(EWP__MEMBER, __VA_ARGS__)
#define EWP__CONF_EWP__BIT_CREATE(...) EWP__CONF(EWP__BIT_CREATE, __VA_ARGS__)
#define EWP__CONF_EWP__ROW_CREATE(...) EWP__CONF(EWP__ROW_CREATE, __VA_ARGS__)

#define EWP_FIELDS_CREATE(F)                                                                      \
  EWP__STREAM_FIELD(F)                                                                            \
  EW_CONFIG_MAP(EWP__CONF_##F)                                                                   \
  F(columns, NAMES, 0, "[str]", "`[\"entropy\"]`", EWP_EBADPARAM,                                    \
    "'columns' must be a list of 1 to 8 distinct column names",                                   \
    "kind `tokens`: the names of its per-token columns, 1–8 of 1–32 bytes of `[a-z0-9_]`, in "    \
    "the order ingest and metrics name them (`dim` is their count)")                              \
  F(shape, DIMS, 0, "[int] or [int, int]", "— (required for kind `stats`)", EWP_EBADPARAM,        \
    "'shape' must be [L] or [L, H] (integers >= 1, at most 65536 cells)",                         \
    "kind `stats`: its cells, `[layers]` or `[layers, heads]` (`dim` is L·H)")                    \
  F(dims, DIMS, 0, "[int, int]", "— (required for kind `paired`)", EWP_EBADPARAM,                 \
    "'dims' must be [dx, dy] (integers between 1 and 8192)",                                      \
    "kind `paired`: the widths of x (the prompt or input side) and y (the image or output side) " \
    "(`dim` is dx + dy)")                                                                         \
  F(world, UINT, 0, "int", "1", EWP_EBADPARAM, "'world' must be an integer between 1 and 65536",  \
    "ranks that send each step (1–65536); a step is complete when every rank has moved past it "  \
    "or ended it")                                                                                \
  F(step_timeout, NUM, EWP_F_NIL, "number", "60", EWP_EBADPARAM,                                  \
    "'step_timeout' must be a number of seconds > 0",                                             \
    "seconds after a step's first batch when it completes anyway, as partial")                    \
  F(recent, BOOL, 0, "bool", "false (true for a stream a stepped ingest creates)", EWP_EBADPARAM, \
    "'recent' must be true or false",                                                             \
    "a training stream: a window at any d (unless `window` says: 4096 rows up to d = 4096, "     \
    "64 MiB of f32 rows above: 2048 at 8192, 1024 at 16384), and every metric's "               \
    "default source is the window")                                                               \
  F(window_steps, UINT, 0, "int", "0 (off)", EWP_EBADPARAM,                                       \
    "'window_steps' must be a number of steps between 0 and 65536",                               \
    "the recent view is the rows of the last S completed steps (as many as the window holds); "  \
    "implies `recent`")                                                                           \
  F(eval, EVALS, EWP_F_NIL, "[{…}] (table below)",                                                \
    "`entropy`, `erank`, `rankme`, `participation_ratio`, `anisotropy`, `l2_std` every step",     \
    EWP_EBADPARAM, "'eval' must be a list of at most 32 maps {metric, as, every, params, "       \
    "source, center}", "metrics computed after completed steps and kept in the history, one "    \
    "series per entry (`[]`: none)")                                                              \
  F(rules, RULES, EWP_F_NIL, "[{…}] (table below)", "none", EWP_EBADPARAM,                        \
    "'rules' must be a list of at most 32 maps {name, metric, when, value, steps, "               \
    "baseline_steps}", "alert rules (as `alert_set`)")

#define EWP_FIELDS_INGEST(F)                                                                      \
  EWP__STREAM_FIELD(F)                                                                            \
  F(data, BIN, 0, "bin", "—", EWP_EBADREQ,                                                        \
    "'data' must be bin (raw little-endian values, row-major)",                                   \
    "`n·d` values of `dtype`, little-endian, row-major")                                          \
  F(dtype, ENUM, 0, "str", "— (required with `data`)", EWP_EDTYPE,                                \
    "'dtype' (f32, f64, f16 or bf16) is required with 'data'",                                    \
    "`\"f32\"`, `\"f64\"`, `\"f16\"`, `\"bf16\"` (or `float32`, `float64`, `float16`, "           \
    "`bfloat16`)")                                                                                \
  F(shape, SHAPE, 0, "[int, int]", "— (required with `data`)", EWP_EBADREQ,                       \
    "'shape' must be [n, d] (two integers)", "`[n, d]`, 1 ≤ d ≤ 65536")                           \
  F(rows, ROWS, 0, "[[number]]", "—", EWP_EBADREQ,                                                \
    "'rows' must be an array of rows (arrays of numbers)",                                        \
    "`n` arrays of `d` numbers (instead of `data`); converted to f64")                            \
  F(columns, COLUMNS, 0, "{name: {dtype, data}}", "—", EWP_EBADREQ,                              \
    "'columns' must be a map of 1 to 8 column names to {dtype, data} (data: bin)",                \
    "a tokens stream's batch: every column of the stream, each `n` values of its own `dtype` "    \
    "(as `dtype` above), little-endian (instead of `data`)")                                     \
  F(values, TYPED, 0, "{dtype, data}", "—", EWP_EBADREQ,                                          \
    "'values' must be a map {dtype, data} (data: bin)",                                           \
    "a stats stream's batch: one value per cell of its shape (row-major), of `dtype`, "           \
    "little-endian (instead of `data`)")                                                          \
  F(counts, TYPED, 0, "{dtype, data}", "1 per cell", EWP_EBADREQ,                                 \
    "'counts' must be a map {dtype, data} (data: bin)",                                           \
    "with `values`: each cell's weight (> 0; e.g. its tokens) in the `mean` reduction; the "     \
    "other rules add them up")                                                                    \
  F(mask, BIN, 0, "bin", "absent (every token counted)", EWP_EBADREQ,                            \
    "'mask' must be bin (one byte per token)",                                                    \
    "with `columns`: `n` bytes, nonzero = the token is counted; a NaN in a token it leaves out "  \
    "is accepted and never read")                                                                 \
  F(lengths, BIN, 0, "bin", "absent (no sequences)", EWP_EBADREQ,                                 \
    "'lengths' must be bin (u32 little-endian per sequence)",                                     \
    "with `columns`: tokens per sequence, u32 little-endian, in order, summing to `n` (masked "   \
    "tokens included); sequences never span batches")                                            \
  F(x, ARRAY, 0, "{dtype, data, shape}", "—", EWP_EBADREQ,                                       \
    "'x' must be a map {dtype, data, shape: [n, dx]} (data: bin)",                                \
    "a paired stream's batch (instead of `data`): n rows of x, `dtype` as above, little-endian, " \
    "row-major; row i pairs with row i of `y`")                                                   \
  F(y, ARRAY, 0, "{dtype, data, shape}", "—", EWP_EBADREQ,                                       \
    "'y' must be a map {dtype, data, shape: [n, dy]} (data: bin)",                                \
    "with `x`: the n rows of y (its own dtype)")                                                 \
  F(labels, U32S, 0, "bin or [int]", "absent (rows without labels)", EWP_EBADREQ,                \
    "'labels' must be bin (u32 little-endian per row) or a list of integers",                     \
    "with rows: one label per row, u32 little-endian or a list of integers in [0, 2^32) (e.g. "   \
    "each example's class), kept with the " \
    "window's rows for the grouped metrics and `dsmi`; a stream's first batch decides whether "  \
    "it is labelled")                                                                             \
  F(step, UINT, 0, "int", "absent (applied on arrival)", EWP_EBADREQ,                             \
    "'step' must be an integer >= 0",                                                             \
    "the training step of these rows: they are staged and applied when the step completes")       \
  F(rank, UINT, 0, "int", "0", EWP_EBADREQ, "'rank' must be an integer >= 0",                     \
    "the sending rank, below the stream's `world` (needs `step`)")                                \
  F(world, UINT, 0, "int", "the stream's", EWP_EBADREQ,                                           \
    "'world' must be an integer between 1 and 65536",                                             \
    "ranks per step; must equal the stream's (sets it when this ingest creates the stream)")      \
  F(end_step, BOOL, 0, "bool", "false", EWP_EBADREQ, "'end_step' must be true or false",          \
    "this rank has sent all of `step`; without `data`/`rows` it only marks the end")              \
  F(producer, STR, 0, "str", "absent", EWP_EBADREQ,                                               \
    "'producer' must be a string of at most 64 bytes",                                            \
    "who sends (≤ 64 bytes); with `seq`, a batch is applied at most once")                         \
  F(seq, UINT, 0, "int", "absent", EWP_EBADREQ, "'seq' must be an integer >= 0",                  \
    "increasing per (producer, stream); a batch whose seq is not above the last one seen from "   \
    "its producer is acknowledged `duplicate: true` and not applied")                             \
  F(dropped_rows, UINT, 0, "int", "absent", EWP_EBADREQ,                                          \
    "'dropped_rows' must be an integer >= 0",                                                     \
    "rows of this stream the producer discarded so far (queue full, closed), cumulative; needs "  \
    "`producer`; exported by /metrics as `sender_dropped_rows_total`")                            \
  F(dropped_batches, UINT, 0, "int", "absent", EWP_EBADREQ,                                       \
    "'dropped_batches' must be an integer >= 0",                                                  \
    "batches of this stream the producer discarded so far, cumulative; needs `producer`")

/* nullify: rows y less what a paired stream's x explains (linear features). */
#define EWP_FIELDS_NULLIFY(F)                                                                     \
  EWP__STREAM_FIELD(F)                                                                            \
  F(x, ARRAY, EWP_F_REQ, "{dtype, data, shape}", "required", EWP_EBADREQ,                         \
    "'x' must be a map {dtype, data, shape: [n, dx]} (data: bin)",                                \
    "n rows of x (the prompt side), as ingest's `x`")                                            \
  F(y, ARRAY, EWP_F_REQ, "{dtype, data, shape}", "required", EWP_EBADREQ,                         \
    "'y' must be a map {dtype, data, shape: [n, dy]} (data: bin)",                                \
    "the n rows of y to correct, row i with row i of `x`")

#define EWP_FIELDS_QUERY(F)                                                                       \
  EWP__STREAM_FIELD(F)                                                                            \
  F(metrics, NAMES, EWP_F_REQ, "str or [str]", "required", EWP_EBADREQ,                           \
    "'metrics' must be a metric name or a list of 1 to 64 names",                                 \
    "1–64 distinct names from the metric table (`metrics` method)")                               \
  F(params, PARAMS, EWP_F_NIL, "map", "`{}`", EWP_EBADREQ,                                        \
    "'params' must be a map of parameter name to value",                                          \
    "metric parameters by name (`alpha`, `q`, `eps`, `rcond`, `k`, `vectors`); each applies to "  \
    "every requested metric that takes it; a parameter no requested metric takes is "             \
    "`BAD_PARAM`. Each value has the type the metric table gives its parameter (`metrics` "      \
    "method): a number (`\"inf\"` too; a bool counts as 0 or 1), a bool, or a string (≤ 256 "       \
    "bytes) for a string or enum parameter; another type is `BAD_PARAM` naming the parameter and " \
    "the type it takes. A name may appear once")                                                  \
  F(center, BOOL, EWP_F_NIL, "bool", "per metric (true; rankme false)", EWP_EBADREQ,              \
    "'center' must be true or false", "covariance C (true) or second moment S (false)")           \
  F(source, ENUM, EWP_F_NIL,                                                                      \
    "`\"all\"` \\| `\"window\"` \\| `\"window_cn\"` \\| `\"step\"`",                                \
    "per metric (`all`; tokens and stats streams `step`); the window on a recent stream",          \
    EWP_EBADPARAM, "'source' must be \"all\", \"window\", \"window_cn\" or \"step\"",                 \
    "which rows (docs/METRICS.md); on a stream with `window_steps`, a window source reads the "    \
    "rows of its last steps; `step` (tokens and stats streams): the newest completed step's "     \
    "tokens or cells")                                                                            \
  F(fresh, BOOL, EWP_F_NIL, "bool", "false", EWP_EBADREQ, "'fresh' must be true or false",        \
    "never answer from the cache")                                                                \
  F(max_lag, UINT, EWP_F_NIL, "int", "absent", EWP_EBADREQ,                                       \
    "'max_lag' must be a number of rows >= 0",                                                    \
    "answer from the cache if every metric's cached value is at most this many rows old")         \
  F(method, ENUM, EWP_F_NIL, "`\"auto\"` \\| `\"slq\"` \\| `\"exact\"`", "`\"auto\"`", EWP_EBADPARAM, \
    "'method' must be \"auto\", \"slq\" or \"exact\"",                                               \
    "spectrum-wide metrics (entropy, entropy_normalized, renyi, erank, vendi, nuclear_norm): "    \
    "`exact` solves for every eigenvalue; `slq` is the quick estimate with `{name}_error`; "       \
    "`auto` uses a cached exact spectrum within `max_lag`, else `slq` from d = 3072 (where it is " \
    "the d×d solve it replaces) when its error bar is within 1% of the estimated sum, else "      \
    "`exact`")

#define EWP_ENUM_agg "last", "mean", "min", "max"
#define EWP_HISTORY_POINTS_MAX 100000
#define EWP_FIELDS_HISTORY(F)                                                                     \
  F(stream, NAME, 0, "str", "— (or `streams`; neither: every stream of the run)", EWP_EBADREQ,    \
    "'stream' must be a stream name", "one stream")                                               \
  EWP__RUN_FIELD(F)                                                                               \
  F(streams, NAMES, EWP_F_NIL, "[str]", "—", EWP_EBADREQ,                                         \
    "'streams' must be a list of 1 to 64 stream names (or one name)",                             \
    "several streams of the run (instead of `stream`)")                                           \
  F(metrics, NAMES, EWP_F_NIL, "str or [str]", "every evaluated metric", EWP_EBADREQ,             \
    "'metrics' must be a metric name or a list of 1 to 64 names", "which series")                 \
  F(from_step, UINT, EWP_F_NIL, "int", "0", EWP_EBADREQ, "'from_step' must be an integer >= 0",   \
    "the first step (inclusive)")                                                                 \
  F(to_step, UINT, EWP_F_NIL, "int", "the last", EWP_EBADREQ, "'to_step' must be an integer >= 0", \
    "the last step (inclusive)")                                                                  \
  F(max_points, UINT, EWP_F_NIL, "int", "2000", EWP_EBADREQ,                                      \
    "'max_points' must be an integer between 1 and 100000",                                       \
    "more points than this in the range are merged into this many equal step buckets")            \
  F(agg, ENUM, EWP_F_NIL, "`\"last\"` \\| `\"mean\"` \\| `\"min\"` \\| `\"max\"`", "`\"last\"`",     \
    EWP_EBADREQ, "'agg' must be \"last\", \"mean\", \"min\" or \"max\"",                           \
    "a bucket's value: its last point's, or the mean, min or max of its values (vector metrics: " \
    "always the last)")

#define EWP_FIELDS_SUBSCRIBE(F)                                                                   \
  F(stream, STR, 0, "str", "every stream", EWP_EBADREQ,                                          \
    "'stream' must be a stream name or a glob with '*' (at most 200 bytes)",                      \
    "a stream name, or a glob where `*` matches any run of characters")                           \
  EWP__RUN_FIELD(F)                                                                               \
  F(metrics, NAMES, EWP_F_NIL, "str or [str]", "every evaluated metric", EWP_EBADREQ,             \
    "'metrics' must be a metric name or a list of 1 to 64 names",                                 \
    "the metrics a `metrics` notification carries (one without any of them is not sent)")

#define EWP_FIELDS_UNSUBSCRIBE(F)                                                                 \
  F(subscription, UINT, EWP_F_REQ, "int", "required", EWP_EBADREQ,                                \
    "'subscription' (the id subscribe answered) is required", "the id `subscribe` answered")

#define EWP_FIELDS_ALERT_SET(F)                                                                   \
  EWP__STREAM_FIELD(F)                                                                            \
  F(rules, RULES, EWP_F_REQ, "[{…}]", "required", EWP_EBADPARAM,                                  \
    "'rules' must be a list of at most 32 maps {name, metric, when, value, steps, "               \
    "baseline_steps}", "the stream's rules, replacing the ones it had (`[]`: none)")

#define EWP_FIELDS_ALERTS(F)                                                                      \
  F(stream, NAME, 0, "str", "every stream", EWP_EBADREQ, "'stream' must be a stream name",       \
    "one stream")                                                                                 \
  EWP__RUN_FIELD(F)                                                                               \
  F(events, UINT, 0, "int", "0", EWP_EBADPARAM, "'events' must be a count of events (0–512)",     \
    "also the last that many alert events (fired, resolved) of those streams, oldest first")

#define EWP_FIELDS_AUTH(F)                                                                        \
  F(token, STR, EWP_F_REQ, "str", "required", EWP_EBADREQ, "'token' (a string) is required",      \
    "the contents of the daemon's token file (surrounding whitespace removed)")

#define EWP_FIELDS_MERGE(F)                                                                       \
  EWP__STREAM_FIELD(F)                                                                            \
  F(state, BIN, EWP_F_REQ, "bin", "required", EWP_EBADREQ,                                        \
    "'state' (bin: the bytes `export` answered) is required",                                     \
    "a saved state (docs/STATE.md) of the same d, normalize and decay")

#endif
