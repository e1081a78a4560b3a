/* ewp.h — the typed wire boundary (prefix ewp_). Bytes that the skim (ew_proto.h) has framed are
 * decoded here into a typed request struct, every field checked — type, range, duplicate keys,
 * UTF-8, unknown fields — and replies are encoded here from typed structs, map sizes computed from
 * what is present. The daemon never sees a msgpack_object: it gets an ewp_request_t or an
 * ewp_error_t, and hands back an ewp_value_t tree or a typed reply.
 *
 * One table per axis (every list of methods, fields, codes or keys is one table that the code, docs and tests are generated from): EWP_METHOD_MAP lists the methods; EWP_FIELDS_<METHOD>
 * lists each method's parameters. Decoding, the "takes:" hints, the method list in
 * UNKNOWN_METHOD and the tables of PROTOCOL.md (tools/ew_protocol_doc) all come from them.
 * Nothing here touches sockets, streams of vectors or the library's numerics. */
#ifndef EWP_H
#define EWP_H

#include "ew_proto.h"
#include "eigenwatch.h" /* the stream configuration table (EW_CONFIG_MAP) only: proto links no lib */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- wire error codes ----
 * The daemon's error names are the library's (EW_ERRNO_MAP in eigenwatch.h: the one table of
 * error codes). Proto reports its own failures with the subset below, named by the library's
 * suffixes: ewp_code_name gives the library's wire name, the daemon maps each to the library's
 * code by the same suffix (EWP_E##s -> EW_E##s), and a suffix the library lacks does not compile.
 * Proto uses only the table (a macro), never a library function. */
#include "eigenwatch.h"

#define EWP_CODE_MAP(XX) XX(BADREQ) XX(UNKMETHOD) XX(DTYPE) XX(BADPARAM) XX(TOOLARGE) XX(NOMEM)

typedef enum {
  EWP_OK = 0,
#define EWP__XX(s) EWP_E##s,
  EWP_CODE_MAP(EWP__XX)
#undef EWP__XX
  EWP__CODE_END
} ewp_code_t;

/* The wire name of a code ("BAD_PARAM"), "OK" for EWP_OK, "INTERNAL" out of range (static). */
const char *ewp_code_name(ewp_code_t code);

/* ---- methods ----
 * XX(ID, "name", flags, "doc"). Flags:
 *   EWP_M_PIPELINE  as a notification it may run while earlier jobs of the connection are in
 *                   flight (ingest); any other message waits for them (a barrier)
 *   EWP_M_ANSWER    the method only produces an answer (no state changes): when its connection
 *                   is gone, a queued one is skipped
 *   EWP_M_PREAUTH   allowed before `auth` on a connection that must authenticate */
#define EWP_M_PIPELINE 1u
#define EWP_M_ANSWER 2u
#define EWP_M_PREAUTH 4u

#define EWP_METHOD_MAP(XX)                                                                        \
  XX(PING, "ping", EWP_M_ANSWER | EWP_M_PREAUTH, "liveness and version")                          \
  XX(CREATE, "create", 0, "create a stream (idempotent for the same config)")                     \
  XX(INGEST, "ingest", EWP_M_PIPELINE, "add rows (request or notification)")                      \
  XX(QUERY, "query", EWP_M_ANSWER, "compute metrics")                                             \
  XX(LIST, "list", EWP_M_ANSWER, "all streams, or one run's")                                     \
  XX(INFO, "info", EWP_M_ANSWER, "one stream with its configuration")                             \
  XX(RESET, "reset", 0, "forget a stream's rows, keep its configuration")                         \
  XX(DROP, "drop", 0, "delete a stream")                                                          \
  XX(STATS, "stats", EWP_M_ANSWER, "daemon counters")                                             \
  XX(METRICS, "metrics", EWP_M_ANSWER, "the metric table with docs")                              \
  XX(AUTH, "auth", EWP_M_PREAUTH, "present the shared token (TCP with --auth-token-file)")      \
  XX(SNAPSHOT, "snapshot", 0, "write every changed stream's snapshot now; answers when durable")  \
  XX(EXPORT, "export", 0, "a stream's whole state as bytes (docs/STATE.md)")                      \
  XX(MERGE, "merge", 0, "fold an exported state into a stream (created if absent)")               \
  XX(RUNS, "runs", EWP_M_ANSWER, "the runs, each with its streams, steps and last activity")   \
  XX(FLUSH, "flush", 0, "complete every pending step of a stream now (partial if ranks are missing)") \
  XX(HISTORY, "history", EWP_M_ANSWER, "evaluated points by step, downsampled to max_points")     \
  XX(SUBSCRIBE, "subscribe", 0, "receive metrics and alert notifications on this connection")   \
  XX(UNSUBSCRIBE, "unsubscribe", 0, "stop a subscription")                                        \
  XX(ALERT_SET, "alert_set", 0, "replace a stream's alert rules")                                 \
  XX(ALERTS, "alerts", EWP_M_ANSWER, "alert rules and their states")                             \
  XX(NULLIFY, "nullify", EWP_M_ANSWER, "rows y less what a paired stream's x explains (y − x·A*)")

typedef enum {
#define EWP__XX(id, name, flags, doc) EWP_METHOD_##id,
  EWP_METHOD_MAP(EWP__XX)
#undef EWP__XX
  EWP_METHOD_COUNT
} ewp_method_t;

typedef struct {
  const char *name;
  unsigned flags;
  const char *doc;
} ewp_method_info_t;

/* Row `m` of the method table (static), or NULL when out of range. */
const ewp_method_info_t *ewp_method_info(ewp_method_t m);

/* ---- field types ----
 * Each maps to one C member type:
 *   NAME   ewp_str_t     a stream name: 1–200 bytes of [A-Za-z0-9_.:/-], no leading or trailing
 *                        '/', no empty, '.' or '..' part between slashes
 *   STR    ewp_str_t     UTF-8 text (str or bin), at most EWP_STR_MAX bytes
 *   UINT   uint64_t      a non-negative integer (an integral float is accepted)
 *   NUM    double        any finite or infinite number (ints accepted)
 *   BOOL   bool
 *   BIN    ewp_bytes_t   raw bytes (bin only)
 *   ENUM   int           the index of one of the field's strings (aliases: "a|b")
 *   SHAPE  ewp_shape_t   [n, d], two UINTs
 *   ROWS   ewp_rows_t    an array of n arrays of d numbers, converted to f64 (owned by the
 *                        request, freed by ewp_request_free)
 *   NAMES  ewp_names_t   a str, or an array of 1..EWP_NAMES_MAX distinct strs
 *   COLUMNS ewp_columns_t a map of 1..EWP_COLUMNS_MAX distinct names to {dtype, data}: a tokens
 *                        batch's columns (dtype as the `dtype` field, data bin)
 *   TYPED  ewp_column_t  one {dtype, data} (name empty): a stats batch's values or counts
 *   DIMS   ewp_dims_t    [L] or [L, H]: one or two UINTs (a stats stream's shape)
 *   U32S   ewp_bytes_t   u32s little-endian: bin (a whole number of them), or an array of
 *                        integers in [0, 2^32) packed into a buffer the request owns
 *   ARRAY  ewp_array_t   one {dtype, data, shape: [n, d]} with data n·d values of dtype,
 *                        1 ≤ d ≤ EWP_MAX_DIM (a paired batch's x or y)
 *   PARAMS ewp_params_t  a map of up to EWP_PARAMS_MAX distinct names to a number, a bool or a
 *                        UTF-8 string (the metric table says which each name takes)
 *   EVALS  ewp_evals_t   an array of up to EWP_EVAL_MAX maps, each decoded against
 *                        EWP_FIELDS_EVAL (the scheduled evaluations of a stream)
 *   RULES  ewp_rules_t   an array of up to EWP_RULES_MAX maps, each decoded against
 *                        EWP_FIELDS_RULE (alert rules)
 * A field's string members point into the message bytes: valid while those bytes are. */
typedef enum {
  EWP_T_NAME, EWP_T_STR, EWP_T_UINT, EWP_T_NUM, EWP_T_BOOL, EWP_T_BIN, EWP_T_ENUM,
  EWP_T_SHAPE, EWP_T_ROWS, EWP_T_NAMES, EWP_T_PARAMS, EWP_T_EVALS, EWP_T_RULES, EWP_T_COLUMNS,
  EWP_T_TYPED, EWP_T_DIMS, EWP_T_ARRAY, EWP_T_U32S
} ewp_type_t;

#define EWP_NAME_MAX 200
#define EWP_STR_MAX 4096
#define EWP_NAMES_MAX 64
#define EWP_PARAMS_MAX 64
#define EWP_METHOD_NAME_MAX 64
#define EWP_MAX_DIM 65536 /* the library's EW_MAX_DIM (the daemon checks they agree) */

typedef struct {
  const char *p;
  size_t n;
} ewp_str_t;

typedef struct {
  const uint8_t *p;
  size_t n;
} ewp_bytes_t;

typedef struct {
  uint64_t n, d;
} ewp_shape_t;

typedef struct {
  double *x; /* n*d values, row-major; owned by the request */
  size_t n, d;
} ewp_rows_t;

typedef struct {
  ewp_str_t v[EWP_NAMES_MAX];
  size_t n;
} ewp_names_t;

#define EWP_COLUMNS_MAX 8 /* the library's EW_COLUMNS_MAX */
typedef struct {
  ewp_str_t name;
  int dtype; /* the index of EWP_ENUM_dtype */
  ewp_bytes_t data;
} ewp_column_t;
typedef struct {
  ewp_column_t v[EWP_COLUMNS_MAX];
  size_t n;
} ewp_columns_t;
typedef struct {
  uint64_t v[2];
  size_t n;
} ewp_dims_t;
typedef struct {
  int dtype; /* the index of EWP_ENUM_dtype */
  ewp_bytes_t data;
  uint64_t n, d;
} ewp_array_t;

/* A metric parameter as sent: its type is the wire's (a number, a bool or a string); the metric
 * table decides what each parameter takes (the daemon checks with ew_param_check: a number
 * parameter also takes a bool as 0/1 and the string "inf"; a string or enum parameter takes a
 * string). */
typedef enum { EWP_PV_NUM = 0, EWP_PV_BOOL = 1, EWP_PV_STR = 2 } ewp_pv_t;

#define EWP_PARAM_STR_MAX 256 /* bytes of a string parameter's value */
#define EWP_PARAM_KEY_MAX 200 /* bytes of a parameter's name */

/* 24 bytes, as the untyped number it replaced: a request holds EWP_PARAMS_MAX of them per map and
 * a connection parks a whole request (create's evals: 32 maps), so its size is paid per
 * connection. */
typedef struct {
  const char *key; /* the name: key_n bytes (into the message), not NUL-terminated */
  union {
    double value;    /* NUM: the number; BOOL: 0 or 1 */
    const char *str; /* STR: str_n bytes of UTF-8 (into the message) */
  };
  uint32_t str_n;
  uint16_t key_n;
  uint8_t type; /* ewp_pv_t */
} ewp_param_t;
_Static_assert(sizeof(ewp_param_t) <= 24, "a parameter costs what the untyped one did");

typedef struct {
  ewp_param_t v[EWP_PARAMS_MAX];
  size_t n;
} ewp_params_t;

/* One scheduled evaluation (an entry of create's `eval`): `has` as for a method's struct. Its
 * series name (`as`, default the metric's name) is at most EWP_SERIES_MAX bytes of a-z, 0-9 and
 * _, a letter first (ewp_series_valid). */
#define EWP_EVAL_MAX 32
#define EWP_SERIES_MAX 63
#define EWP_FIELDS_EVAL(F)                                                                        \
  F(metric, STR, EWP_F_REQ, "str", "required", EWP_EBADPARAM,                                     \
    "each 'eval' entry needs 'metric' (a name from the metric table)",                            \
    "a metric from the table (`metrics` method)")                                                 \
  F(as, STR, 0, "str", "the metric's name", EWP_EBADPARAM,                                        \
    "'as' must be a series name: 1 to 63 bytes of a-z, 0-9 and _, starting with a letter",       \
    "the series name (1–63 bytes of `a-z 0-9 _`, a letter first, as a metric's name), unique in " \
    "the list: history, subscriptions, alert rules, `/metrics` and the page use it, so one metric " \
    "can be scheduled with several parameter sets")                                               \
  F(every, UINT, 0, "int", "1", EWP_EBADPARAM, "'every' must be a number of steps >= 1",          \
    "evaluate at the first completed step of every `every` steps (step ÷ every changes)")        \
  F(every_rows, UINT, 0, "int", "—", EWP_EBADPARAM, "'every_rows' must be a number of rows >= 1", \
    "instead of `every`, for a stream without steps: after each this many rows")                 \
  F(every_s, NUM, 0, "number", "—", EWP_EBADPARAM,                                                \
    "'every_s' must be a number of seconds >= 0.1",                                               \
    "instead of `every`, for a stream without steps: this often while rows arrive")              \
  F(params, PARAMS, EWP_F_NIL, "map", "`{}`", EWP_EBADPARAM,                                      \
    "'params' must be a map of parameter name to value", "the metric's parameters, as in `query`") \
  F(source, ENUM, EWP_F_NIL, "`\"all\"` \\| `\"window\"` \\| `\"window_cn\"`",                    \
    "the recent view (as `query`)", EWP_EBADPARAM,                                                \
    "'source' must be \"all\", \"window\" or \"window_cn\"", "which rows, as in `query`")              \
  F(center, BOOL, EWP_F_NIL, "bool", "the metric's", EWP_EBADPARAM,                               \
    "'center' must be true or false", "as in `query`")

typedef struct ewp_evals ewp_evals_t;

/* One alert rule (an entry of create's or alert_set's `rules`). */
#define EWP_RULES_MAX 32
#define EWP_RULE_NAME_MAX 64
#define EWP_ENUM_when "below", "above", "drop", "below_baseline", "stale", "non_finite"
#define EWP_FIELDS_RULE(F)                                                                        \
  F(name, STR, EWP_F_REQ, "str", "required", EWP_EBADPARAM,                                       \
    "each rule needs 'name' (a string of 1 to 64 bytes)", "1–64 bytes, unique in the stream")     \
  F(metric, STR, 0, "str", "— (required but for stale, non_finite)", EWP_EBADPARAM,               \
    "'metric' must be a metric name",                                                             \
    "a series the stream evaluates: an entry of its `eval` list, by its `as` name (default the "  \
    "metric's)")                                                                                  \
  F(when, ENUM, EWP_F_REQ, "`\"below\"` \\| `\"above\"` \\| `\"drop\"` \\| `\"below_baseline\"` \\| "   \
    "`\"stale\"` \\| `\"non_finite\"`", "required", EWP_EBADPARAM,                                \
    "'when' must be below, above, drop, below_baseline, stale or non_finite", "the condition")    \
  F(value, NUM, 0, "number", "— (required but for non_finite)", EWP_EBADPARAM,                    \
    "'value' must be a number", "below/above: the threshold; drop: the fraction (0–1); "          \
    "below_baseline: the factor (> 0); stale: seconds (> 0)")                                     \
  F(steps, UINT, 0, "int", "10", EWP_EBADPARAM, "'steps' must be a number of points >= 1",       \
    "drop: the points the maximum is taken over (this one included)")                             \
  F(baseline_steps, UINT, 0, "int", "10", EWP_EBADPARAM,                                          \
    "'baseline_steps' must be a number of points >= 1",                                           \
    "below_baseline: the first points whose mean is the baseline")                                \
  F(after_step, UINT, 0, "int", "— (from the first point)", EWP_EBADPARAM,                        \
    "'after_step' must be a step (an integer >= 0)",                                              \
    "the warm-up: points at steps below it are not checked, and a below_baseline rule's "         \
    "baseline is the first points at or after it (a stream without steps: its row count)")

typedef struct ewp_rules ewp_rules_t;

typedef ewp_str_t ewp_c_NAME;
typedef ewp_str_t ewp_c_STR;
typedef uint64_t ewp_c_UINT;
typedef double ewp_c_NUM;
typedef bool ewp_c_BOOL;
typedef ewp_bytes_t ewp_c_BIN;
typedef int ewp_c_ENUM;
typedef ewp_shape_t ewp_c_SHAPE;
typedef ewp_rows_t ewp_c_ROWS;
typedef ewp_names_t ewp_c_NAMES;
typedef ewp_columns_t ewp_c_COLUMNS;
typedef ewp_column_t ewp_c_TYPED;
typedef ewp_dims_t ewp_c_DIMS;
typedef ewp_array_t ewp_c_ARRAY;
typedef ewp_bytes_t ewp_c_U32S;
typedef ewp_params_t ewp_c_PARAMS;

#define EWP__MEMBER(member, type, flags, wt, def, code, err, doc) ewp_c_##type member;
typedef struct {
  uint32_t has;
  EWP_FIELDS_EVAL(EWP__MEMBER)
} ewp_eval_t;
#define EWP__BIT_EVAL(member, ...) EWP_EVAL_##member,
enum { EWP_FIELDS_EVAL(EWP__BIT_EVAL) };
struct ewp_evals {
  ewp_eval_t v[EWP_EVAL_MAX];
  size_t n;
};
typedef ewp_evals_t ewp_c_EVALS;

typedef struct {
  uint32_t has;
  EWP_FIELDS_RULE(EWP__MEMBER)
} ewp_rule_t;
#define EWP__BIT_RULE(member, ...) EWP_RULE_##member,
enum { EWP_FIELDS_RULE(EWP__BIT_RULE) };
struct ewp_rules {
  ewp_rule_t v[EWP_RULES_MAX];
  size_t n;
};
typedef ewp_rules_t ewp_c_RULES;

#include "ewp_fields.h" /* the field table of every method */

/* One struct per method: `has` is a bitmask of the fields present (bit i = field i in table
 * order), then one member per field (EWP__MEMBER, above). */
#define EWP__REQ_STRUCT(ID, lower)                                                                \
  typedef struct {                                                                                \
    uint32_t has;                                                                                 \
    EWP_FIELDS_##ID(EWP__MEMBER)                                                                  \
  } ewp_##lower##_req_t;
EWP__REQ_STRUCT(PING, ping)
EWP__REQ_STRUCT(CREATE, create)
EWP__REQ_STRUCT(INGEST, ingest)
EWP__REQ_STRUCT(QUERY, query)
EWP__REQ_STRUCT(LIST, list)
EWP__REQ_STRUCT(INFO, info)
EWP__REQ_STRUCT(RESET, reset)
EWP__REQ_STRUCT(DROP, drop)
EWP__REQ_STRUCT(STATS, stats)
EWP__REQ_STRUCT(METRICS, metrics)
EWP__REQ_STRUCT(AUTH, auth)
EWP__REQ_STRUCT(SNAPSHOT, snapshot)
EWP__REQ_STRUCT(EXPORT, export)
EWP__REQ_STRUCT(MERGE, merge)
EWP__REQ_STRUCT(RUNS, runs)
EWP__REQ_STRUCT(FLUSH, flush)
EWP__REQ_STRUCT(HISTORY, history)
EWP__REQ_STRUCT(SUBSCRIBE, subscribe)
EWP__REQ_STRUCT(UNSUBSCRIBE, unsubscribe)
EWP__REQ_STRUCT(ALERT_SET, alert_set)
EWP__REQ_STRUCT(ALERTS, alerts)
EWP__REQ_STRUCT(NULLIFY, nullify)
#undef EWP__REQ_STRUCT

/* Field bits: EWP_<METHOD>_<member> is the bit index of that field in its struct's `has`
 * (table order). EWP_HAS(&req->u.create, EWP_CREATE_window). */
#define EWP__BIT_CREATE(member, ...) EWP_CREATE_##member,
#define EWP__BIT_INGEST(member, ...) EWP_INGEST_##member,
#define EWP__BIT_QUERY(member, ...) EWP_QUERY_##member,
#define EWP__BIT_AUTH(member, ...) EWP_AUTH_##member,
#define EWP__BIT_STREAM(member, ...) EWP_STREAM_##member,
#define EWP__BIT_MERGE(member, ...) EWP_MERGE_##member,
enum { EWP_FIELDS_CREATE(EWP__BIT_CREATE) };
enum { EWP_FIELDS_INGEST(EWP__BIT_INGEST) };
enum { EWP_FIELDS_QUERY(EWP__BIT_QUERY) };
enum { EWP_FIELDS_AUTH(EWP__BIT_AUTH) };
enum { EWP_FIELDS_INFO(EWP__BIT_STREAM) }; /* info, reset, export: stream only */
#define EWP__BIT_FLUSH(member, ...) EWP_FLUSH_##member,
enum { EWP_FIELDS_FLUSH(EWP__BIT_FLUSH) }; /* flush: the stream, and `end` */
#define EWP__BIT_DROP(member, ...) EWP_DROP_##member,
enum { EWP_FIELDS_DROP(EWP__BIT_DROP) }; /* drop: the stream optional (then a whole run) */
enum { EWP_FIELDS_MERGE(EWP__BIT_MERGE) };
#define EWP__BIT_HISTORY(member, ...) EWP_HISTORY_##member,
enum { EWP_FIELDS_HISTORY(EWP__BIT_HISTORY) };
#define EWP__BIT_SUBSCRIBE(member, ...) EWP_SUBSCRIBE_##member,
enum { EWP_FIELDS_SUBSCRIBE(EWP__BIT_SUBSCRIBE) };
#define EWP__BIT_ALERTS(member, ...) EWP_ALERTS_##member,
enum { EWP_FIELDS_ALERTS(EWP__BIT_ALERTS) };
#define EWP__BIT_NULLIFY(member, ...) EWP_NULLIFY_##member,
enum { EWP_FIELDS_NULLIFY(EWP__BIT_NULLIFY) };
#define EWP__BIT_LIST(member, ...) EWP_LIST_##member,
enum { EWP_FIELDS_LIST(EWP__BIT_LIST) };
/* Every method that takes `stream` takes `run` right after it: one bit for all of them. */
_Static_assert(EWP_CREATE_run == 1 && EWP_INGEST_run == 1 && EWP_QUERY_run == 1 &&
                   EWP_STREAM_run == 1 && EWP_DROP_run == 1 && EWP_FLUSH_run == 1 &&
                   EWP_MERGE_run == 1 &&
                   EWP_HISTORY_run == 1 &&
                   EWP_SUBSCRIBE_run == 1 && EWP_ALERTS_run == 1 && EWP_NULLIFY_run == 1,
               "run is the field after stream");
#define EWP_RUN_BIT 1
#define EWP_HAS(req, bit) ((((req)->has) >> (bit)) & 1u)

typedef struct {
  const char *name;
  ewp_type_t type;
  unsigned flags;
  const char *wire_type; /* for the docs */
  const char *default_doc;
  ewp_code_t code;
  const char *error;
  const char *doc;
  size_t offset;               /* of the member in the method's struct */
  const char *const *values;   /* ENUM strings (NULL-terminated), else NULL */
} ewp_field_info_t;

/* The fields of method `m`, in table order; *n receives the count. Static. */
const ewp_field_info_t *ewp_method_fields(ewp_method_t m, size_t *n);
/* The fields of one entry of create's `eval` (EWP_FIELDS_EVAL). Static. */
const ewp_field_info_t *ewp_eval_fields(size_t *n);
/* The fields of one alert rule (EWP_FIELDS_RULE). Static. */
const ewp_field_info_t *ewp_rule_fields(size_t *n);

/* ---- requests ---- */
typedef enum { EWP_KIND_REQUEST = 0, EWP_KIND_NOTIFY = 2 } ewp_kind_t;

typedef struct {
  ewp_kind_t kind;
  uint32_t msgid;     /* 0 for notifications */
  ewp_method_t method;
  union {
    ewp_ping_req_t ping;
    ewp_create_req_t create;
    ewp_ingest_req_t ingest;
    ewp_query_req_t query;
    ewp_list_req_t list;
    ewp_info_req_t info;
    ewp_reset_req_t reset;
    ewp_drop_req_t drop;
    ewp_stats_req_t stats;
    ewp_metrics_req_t metrics;
    ewp_auth_req_t auth;
    ewp_snapshot_req_t snapshot;
    ewp_export_req_t export;
    ewp_merge_req_t merge;
    ewp_runs_req_t runs;
    ewp_flush_req_t flush;
    ewp_history_req_t history;
    ewp_subscribe_req_t subscribe;
    ewp_unsubscribe_req_t unsubscribe;
    ewp_alert_set_req_t alert_set;
    ewp_alerts_req_t alerts;
    ewp_nullify_req_t nullify;
  } u;
  /* private: what the request owns */
  msgpack_unpacked upk_;
  double *rows_;
  uint8_t *u32s_;
} ewp_request_t;

/* Why a message was refused, and what the envelope said before it failed. `counted` is false
 * when the envelope itself was not a request or notification (nothing to count it as). */
typedef struct {
  ewp_code_t code;
  char message[512];
  uint32_t msgid;     /* the reply's msgid: 0 when the envelope's cannot be trusted */
  bool notify;        /* a notification: no reply is sent */
  bool counted;       /* the envelope was valid: kind and msgid known */
  ewp_method_t method; /* EWP_METHOD_COUNT when unknown */
} ewp_error_t;

/* Decodes one framed message (bytes the skim accepted: buf[0, len)) into *req. Returns 0, or
 * -1 with *err filled (and *req needing no free). On success *req references buf — keep the bytes
 * until ewp_request_free(req) — and owns a decoded `rows` buffer. Checks, in order: the envelope
 * ([0, msgid, method, params] or [2, method, params]; msgid < 2^32; method a UTF-8 string of at
 * most 64 bytes that is in the table; params [] or [{...}] or a bare map), then the params map:
 * every key a UTF-8 string, known to the method, present once; then each field in table order:
 * type, range, and the method's cross-field rules (ingest: data xor rows, dtype and shape with
 * data, len(data) = n·d·size; query: distinct metric names, distinct parameter names).
 * Bytes that are not one msgpack value return -2 (a framing error: the caller closes the
 * connection); an allocation failure while building the tree returns -1 with EWP_ENOMEM and the
 * msgid read from the envelope's bytes (the message was whole; the client is answered, kept). */
int ewp_decode(const uint8_t *buf, size_t len, ewp_request_t *req, ewp_error_t *err);
/* Frees what a decoded request owns. Safe on a zeroed request and twice. */
void ewp_request_free(ewp_request_t *req);

/* Size in bytes of one element of ENUM dtype index i (f32, f64, f16, bf16), 0 if out of range. */
size_t ewp_dtype_size(int dtype);
const char *ewp_dtype_name(int dtype);

/* Writes `s[0, n)` into dst[0, cap) as printable text: valid UTF-8 characters other than
 * controls are kept, every other byte becomes \xNN, and `"` and `\` are escaped; when it does not
 * fit, it is cut at a character boundary and ends in "...". Always NUL-terminates (cap >= 4).
 * Returns dst. For echoing peer bytes in error messages and logs. */
char *ewp_escape(char *dst, size_t cap, const char *s, size_t n);
/* True when p[0, n) is a valid series name: 1 to EWP_SERIES_MAX bytes of a-z, 0-9 and _, a
 * letter first (the charset of the metric table's names; an eval entry's `as`). */
bool ewp_series_valid(const char *p, size_t n);
/* True when p[0, n) is a valid stream name (the NAME field type's rule). */
bool ewp_name_valid(const char *p, size_t n);
/* True when s[0, n) is valid UTF-8 (no overlongs, surrogates or code points past U+10FFFF). */
bool ewp_utf8_valid(const char *s, size_t n);

/* ---- replies ----
 * A reply is a tree of values; maps count their present entries when packed. */
typedef enum {
  EWP_V_ABSENT = 0, /* map entries with this value are left out */
  EWP_V_NIL, EWP_V_BOOL, EWP_V_U64, EWP_V_F64, EWP_V_STR, EWP_V_F64S, EWP_V_F64ROWS,
  EWP_V_MAP, EWP_V_ARRAY, EWP_V_BIN
} ewp_vtype_t;

typedef struct ewp_kv ewp_kv_t;
typedef struct ewp_value ewp_value_t;

struct ewp_value {
  ewp_vtype_t t;
  union {
    bool b;
    uint64_t u;
    double f;
    struct { const char *p; size_t n; } s; /* STR, BIN */
    struct { const double *p; size_t n, cols; } fs; /* F64S: n values; F64ROWS: n rows of cols */
    struct { const ewp_kv_t *kv; size_t n; } map;
    struct { const ewp_value_t *v; size_t n; } arr;
  } v;
};

struct ewp_kv {
  const char *key;
  ewp_value_t val;
};

/* Value constructors. Strings are borrowed (NUL-terminated for ewp_vstr). */
ewp_value_t ewp_vnil(void);
ewp_value_t ewp_vbool(bool b);
ewp_value_t ewp_vu64(uint64_t u);
ewp_value_t ewp_vf64(double f);
ewp_value_t ewp_vstr(const char *s);
ewp_value_t ewp_vstrn(const char *s, size_t n);
/* Raw bytes (msgpack bin), borrowed. */
ewp_value_t ewp_vbin(const void *p, size_t n);
ewp_value_t ewp_vf64s(const double *p, size_t n);
ewp_value_t ewp_vf64rows(const double *p, size_t rows, size_t cols);
ewp_value_t ewp_vmap(const ewp_kv_t *kv, size_t n);
ewp_value_t ewp_varray(const ewp_value_t *v, size_t n);
/* A float, or nil when t <= 0 (an unset time). */
ewp_value_t ewp_vtime(double t);

/* Packs `v` (map sizes counted from the entries present). */
void ewp_pack_value(msgpack_packer *pk, const ewp_value_t *v);
/* Encodes [1, msgid, nil, result] into sb (initialised by the caller). */
void ewp_encode_result(msgpack_sbuffer *sb, uint32_t msgid, const ewp_value_t *result);
/* Encodes [1, msgid, {"code", "message"}, nil] into sb (initialised by the caller). */
void ewp_encode_error(msgpack_sbuffer *sb, uint32_t msgid, const char *code, const char *message);

#endif
