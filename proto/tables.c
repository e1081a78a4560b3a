/* tables.c — the wire's tables as data: the methods, each method's field table (generated from
 * the EWP_FIELDS_* maps in ewp.h, with their ENUM values from the library's and the wire's enum
 * lists), the error codes' wire names and the dtypes. decode.c and field.c read them; the
 * documentation generator (tools/ew_protocol_doc) prints them. */
#include "ewp.h"

#include <stddef.h>

/* ---- tables ---- */

static const ewp_method_info_t methods[EWP_METHOD_COUNT] = {
#define EWP__XX(id, name, flags, doc) {name, flags, doc},
    EWP_METHOD_MAP(EWP__XX)
#undef EWP__XX
};

const ewp_method_info_t *ewp_method_info(ewp_method_t m) {
  return (unsigned)m < EWP_METHOD_COUNT ? &methods[m] : NULL;
}

/* ENUM fields find their strings by member name (ewp__enum_<member>); other fields get NULL. The
 * configuration's ENUM fields take theirs from the library's EW_ENUM_<member> lists. */
static const char *const ewp__enum_source[] = {EWP_ENUM_source, NULL};
static const char *const ewp__enum_method[] = {EWP_ENUM_method, NULL};
static const char *const ewp__enum_dtype[] = {EWP_ENUM_dtype, NULL};
static const char *const ewp__enum_agg[] = {EWP_ENUM_agg, NULL};
static const char *const ewp__enum_when[] = {EWP_ENUM_when, NULL};
#define EWP__ENUM_NAME(value, name) name,
#define EWP__CONF_ENUM_COUNT(member, wire)
#define EWP__CONF_ENUM_U64(member, wire)
#define EWP__CONF_ENUM_REAL_OFF(member, wire)
#define EWP__CONF_ENUM_ENUM(member, wire)                                                         \
  static const char *const ewp__enum_##wire[] = {EW_ENUM_##member(EWP__ENUM_NAME) NULL};
#define EWP__CONF_ENUM(member, wire, old, type, ...) EWP__CONF_ENUM_##type(member, wire)
EW_CONFIG_MAP(EWP__CONF_ENUM)
#define EWP__VALUES(member, type) EWP__VALUES_##type(member)
#define EWP__VALUES_ENUM(member) ewp__enum_##member
#define EWP__VALUES_NAME(member) NULL
#define EWP__VALUES_STR(member) NULL
#define EWP__VALUES_UINT(member) NULL
#define EWP__VALUES_NUM(member) NULL
#define EWP__VALUES_BOOL(member) NULL
#define EWP__VALUES_BIN(member) NULL
#define EWP__VALUES_SHAPE(member) NULL
#define EWP__VALUES_ROWS(member) NULL
#define EWP__VALUES_COLUMNS(member) NULL
#define EWP__VALUES_TYPED(member) NULL
#define EWP__VALUES_DIMS(member) NULL
#define EWP__VALUES_ARRAY(member) NULL
#define EWP__VALUES_U32S(member) NULL
#define EWP__VALUES_NAMES(member) NULL
#define EWP__VALUES_PARAMS(member) NULL
#define EWP__VALUES_EVALS(member) NULL
#define EWP__VALUES_RULES(member) NULL

/* A field table's row: its member's offset in the method's struct T, and its ENUM values. */
#define EWP__ROW(T, member, type, flags, wt, def, code, err, doc)                                 \
  {#member, EWP_T_##type, flags, wt, def, code, err, doc, offsetof(T, member),                     \
   EWP__VALUES(member, type)},
#define EWP__ROW_CREATE(...) EWP__ROW(ewp_create_req_t, __VA_ARGS__)
#define EWP__ROW_INGEST(...) EWP__ROW(ewp_ingest_req_t, __VA_ARGS__)
#define EWP__ROW_QUERY(...) EWP__ROW(ewp_query_req_t, __VA_ARGS__)
#define EWP__ROW_INFO(...) EWP__ROW(ewp_info_req_t, __VA_ARGS__)
#define EWP__ROW_AUTH(...) EWP__ROW(ewp_auth_req_t, __VA_ARGS__)

static const ewp_field_info_t f_create[] = {EWP_FIELDS_CREATE(EWP__ROW_CREATE)};
static const ewp_field_info_t f_ingest[] = {EWP_FIELDS_INGEST(EWP__ROW_INGEST)};
static const ewp_field_info_t f_query[] = {EWP_FIELDS_QUERY(EWP__ROW_QUERY)};
static const ewp_field_info_t f_stream[] = {EWP_FIELDS_INFO(EWP__ROW_INFO)};
#define EWP__ROW_DROP(...) EWP__ROW(ewp_drop_req_t, __VA_ARGS__)
static const ewp_field_info_t f_drop[] = {EWP_FIELDS_DROP(EWP__ROW_DROP)};
#define EWP__ROW_FLUSH(...) EWP__ROW(ewp_flush_req_t, __VA_ARGS__)
static const ewp_field_info_t f_flush[] = {EWP_FIELDS_FLUSH(EWP__ROW_FLUSH)};
static const ewp_field_info_t f_auth[] = {EWP_FIELDS_AUTH(EWP__ROW_AUTH)};
#define EWP__ROW_MERGE(...) EWP__ROW(ewp_merge_req_t, __VA_ARGS__)
static const ewp_field_info_t f_merge[] = {EWP_FIELDS_MERGE(EWP__ROW_MERGE)};
#define EWP__ROW_LIST(...) EWP__ROW(ewp_list_req_t, __VA_ARGS__)
static const ewp_field_info_t f_list[] = {EWP_FIELDS_LIST(EWP__ROW_LIST)};
#define EWP__ROW_HISTORY(...) EWP__ROW(ewp_history_req_t, __VA_ARGS__)
static const ewp_field_info_t f_history[] = {EWP_FIELDS_HISTORY(EWP__ROW_HISTORY)};
#define EWP__ROW_EVAL(...) EWP__ROW(ewp_eval_t, __VA_ARGS__)
static const ewp_field_info_t f_eval[] = {EWP_FIELDS_EVAL(EWP__ROW_EVAL)};

const ewp_field_info_t *ewp_eval_fields(size_t *n) {
  *n = sizeof f_eval / sizeof f_eval[0];
  return f_eval;
}

#define EWP__ROW_RULE(...) EWP__ROW(ewp_rule_t, __VA_ARGS__)
static const ewp_field_info_t f_rule[] = {EWP_FIELDS_RULE(EWP__ROW_RULE)};

const ewp_field_info_t *ewp_rule_fields(size_t *n) {
  *n = sizeof f_rule / sizeof f_rule[0];
  return f_rule;
}

#define EWP__ROW_SUBSCRIBE(...) EWP__ROW(ewp_subscribe_req_t, __VA_ARGS__)
static const ewp_field_info_t f_subscribe[] = {EWP_FIELDS_SUBSCRIBE(EWP__ROW_SUBSCRIBE)};
#define EWP__ROW_UNSUBSCRIBE(...) EWP__ROW(ewp_unsubscribe_req_t, __VA_ARGS__)
static const ewp_field_info_t f_unsubscribe[] = {EWP_FIELDS_UNSUBSCRIBE(EWP__ROW_UNSUBSCRIBE)};
#define EWP__ROW_ALERT_SET(...) EWP__ROW(ewp_alert_set_req_t, __VA_ARGS__)
static const ewp_field_info_t f_alert_set[] = {EWP_FIELDS_ALERT_SET(EWP__ROW_ALERT_SET)};
#define EWP__ROW_ALERTS(...) EWP__ROW(ewp_alerts_req_t, __VA_ARGS__)
static const ewp_field_info_t f_alerts[] = {EWP_FIELDS_ALERTS(EWP__ROW_ALERTS)};
#define EWP__ROW_NULLIFY(...) EWP__ROW(ewp_nullify_req_t, __VA_ARGS__)
static const ewp_field_info_t f_nullify[] = {EWP_FIELDS_NULLIFY(EWP__ROW_NULLIFY)};

/* info, reset and export share one layout (a stream name: f_stream); drop and flush have their
 * own tables, whose stream and run are where theirs are (EWD_KEY reads any of them) */
_Static_assert(offsetof(ewp_info_req_t, stream) == offsetof(ewp_reset_req_t, stream) &&
                   offsetof(ewp_info_req_t, stream) == offsetof(ewp_export_req_t, stream) &&
                   sizeof(ewp_info_req_t) == sizeof(ewp_reset_req_t) &&
                   sizeof(ewp_info_req_t) == sizeof(ewp_export_req_t),
               "stream-only requests share a layout");
_Static_assert(sizeof(f_create) / sizeof f_create[0] <= 32, "has is 32 bits");
_Static_assert(sizeof(f_ingest) / sizeof f_ingest[0] <= 32, "has is 32 bits");

const ewp_field_info_t *ewp_method_fields(ewp_method_t m, size_t *n) {
#define EWP__N(a) (sizeof(a) / sizeof(a)[0])
  switch (m) {
  case EWP_METHOD_CREATE: *n = EWP__N(f_create); return f_create;
  case EWP_METHOD_INGEST: *n = EWP__N(f_ingest); return f_ingest;
  case EWP_METHOD_QUERY: *n = EWP__N(f_query); return f_query;
  case EWP_METHOD_INFO:
  case EWP_METHOD_RESET:
  case EWP_METHOD_EXPORT: *n = EWP__N(f_stream); return f_stream;
  case EWP_METHOD_FLUSH: *n = EWP__N(f_flush); return f_flush;
  case EWP_METHOD_DROP: *n = EWP__N(f_drop); return f_drop;
  case EWP_METHOD_MERGE: *n = EWP__N(f_merge); return f_merge;
  case EWP_METHOD_LIST: *n = EWP__N(f_list); return f_list;
  case EWP_METHOD_HISTORY: *n = EWP__N(f_history); return f_history;
  case EWP_METHOD_SUBSCRIBE: *n = EWP__N(f_subscribe); return f_subscribe;
  case EWP_METHOD_UNSUBSCRIBE: *n = EWP__N(f_unsubscribe); return f_unsubscribe;
  case EWP_METHOD_ALERT_SET: *n = EWP__N(f_alert_set); return f_alert_set;
  case EWP_METHOD_ALERTS: *n = EWP__N(f_alerts); return f_alerts;
  case EWP_METHOD_AUTH: *n = EWP__N(f_auth); return f_auth;
  case EWP_METHOD_NULLIFY: *n = EWP__N(f_nullify); return f_nullify;
  default: *n = 0; return NULL;
  }
#undef EWP__N
}

/* The library's wire names by code, from its table (EW_ERRNO_MAP); no function of it is called. */
static const char *const lib_wire_names[EW__ERR_END - EW__ERR_BASE] = {
#define EWP__XX(s, wire, msg) [EW_E##s - EW__ERR_BASE] = wire,
    EW_ERRNO_MAP(EWP__XX)
#undef EWP__XX
};

const char *ewp_code_name(ewp_code_t code) {
  switch (code) {
  case EWP_OK: return "OK";
#define EWP__XX(s)                                                                                \
  case EWP_E##s:                                                                                  \
    return lib_wire_names[EW_E##s - EW__ERR_BASE];
    EWP_CODE_MAP(EWP__XX)
#undef EWP__XX
  case EWP__CODE_END: break;
  }
  return "INTERNAL";
}

static const size_t dtype_sizes[] = {4, 8, 2, 2};
static const char *const dtype_names[] = {"f32", "f64", "f16", "bf16"};

size_t ewp_dtype_size(int dtype) { return dtype >= 0 && dtype < 4 ? dtype_sizes[dtype] : 0; }
const char *ewp_dtype_name(int dtype) { return dtype >= 0 && dtype < 4 ? dtype_names[dtype] : "?"; }
