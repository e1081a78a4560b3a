/* errors_table.h — what each error code means on the daemon's wire: when it is answered, and the
 * HTTP status of a refusal on the JSON API. The codes, their wire names and sentences are the
 * library's one table (EW_ERRNO_MAP in eigenwatch.h); this table adds the daemon's side, one row
 * per library code named by its suffix, so that:
 *  - a suffix the library lacks does not compile (EW_E##s), a row given twice does not compile
 *    (its enumerator below is declared twice), and a library code without a row fails the
 *    _Static_assert on the count;
 *  - PROTOCOL.md's table of errors (tools/ew_protocol_doc, block gen:errors) and the JSON API's
 *    statuses (net/api.c) are generated from it.
 * Two codes share the wire name INTERNAL: the first (LAPACK) has doc NULL, the doc of the name
 * being the later row's; rows of one name have one status (ew_protocol_doc checks both).
 *
 * XX(SUFFIX, http status, "when it is answered") — in the order PROTOCOL.md lists them. */
#ifndef EWD_ERRORS_TABLE_H
#define EWD_ERRORS_TABLE_H

#include "eigenwatch.h"

#define EWD_ERROR_MAP(XX)                                                                         \
  XX(BADREQ, 400,                                                                                 \
     "malformed envelope or params: not an array of the right shape, non-string method or keys, " \
     "a missing or mistyped field, an unknown field, a key repeated in a map, a metric named "    \
     "twice, a bad stream name (charset, length, or an empty, `.` or `..` part between slashes), " \
     "`data` whose length does not match `shape`, ragged `rows`, framing errors other than size " \
     "(depth, byte `0xc1`, invalid msgpack)")                                                     \
  XX(UNKMETHOD, 404, "no such method")                                                            \
  XX(NOSTREAM, 404, "`query`, `info`, `reset`, `drop`, `export` on a stream that does not exist") \
  XX(DIM, 400, "rows whose d differs from the stream's")                                          \
  XX(DTYPE, 400, "`dtype` missing (with `data`) or not one of the four")                          \
  XX(NONFINITE, 400, "a NaN or ±Inf in the batch (nothing ingested)")                             \
  XX(RANGE, 400,                                                                                  \
     "an f64 batch whose largest magnitude is outside [2⁻¹⁰⁰, 3.4e38] and not 0, an f64 token "   \
     "of magnitude 2¹²⁸ or more (nothing ingested); a `merge` whose union would describe more "   \
     "than 2⁵³ rows")                                                                             \
  XX(TOOLARGE, 400,                                                                               \
     "a message over `max_message_bytes`, a declared length or count the cap cannot hold, more "  \
     "than `max_elements` elements; a `history` answer over 500,000 points or "                   \
     "`max_answer_bytes`")                                                                        \
  XX(EXISTS, 400, "`create` with a config different from the existing stream's")                 \
  XX(UNKMETRIC, 400,                                                                              \
     "a metric name not in the table (where a series name is taken — `history`, `subscribe`, a "  \
     "rule's `metric` — one that is neither a metric nor a series of the stream(s))")             \
  XX(BADPARAM, 400,                                                                               \
     "a bad `create` value (dim, normalize, window_mode, decay, topk, shuffle), an unknown or "    \
     "out-of-range metric parameter or one of another type than the table gives it (a string "   \
     "where a number belongs), a source or centring the metric does not accept")                  \
  XX(DEGENERATE, 422,                                                                             \
     "the state cannot define the metric: no rows, fewer than 2 rows for a centred matrix, zero " \
     "trace, d = 1 for metrics divided by ln d, λ₂ = 0 for `spectral_gap`")                       \
  XX(NOWINDOW, 422,                                                                               \
     "`source: window`/`window_cn` (or a window metric) on a stream created with `window: 0`")    \
  XX(LIMIT, 503,                                                                                  \
     "creating a stream beyond `max_streams` or `max_memory` (an implicit create by `ingest` "    \
     "too); a `history` answer that would take answers in flight past `answer_budget`")           \
  XX(NOMEM, 503, "an allocation failed")                                                          \
  XX(AUTH, 401,                                                                                   \
     "a TCP connection that must authenticate sent something else first, or a wrong token (the " \
     "connection is closed)")                                                                     \
  XX(LAPACK, 500, NULL)                                                                           \
  XX(INTERNAL, 500, "an eigensolver failed to converge, or a bug")                                \
  XX(STATE, 400,                                                                                  \
     "`merge` with bytes that are not one whole exported state: bad magic, unknown format "       \
     "version, truncated, checksum mismatch, a section that does not match its configuration, "   \
     "trailing bytes; or a state whose numbers no ingest produces (NaN or out-of-range mean, "    \
     "weight, M2, certificate, more than 2⁵³ rows: docs/STATE.md), or a broken sketch")           \
  XX(IO, 500,                                                                                     \
     "`snapshot` could not write a stream's file (the message names the stream, the step and "   \
     "the system's error)")

enum {
#define EWD__XX(s, http, doc) EWD__ERROR_ROW_##s,
  EWD_ERROR_MAP(EWD__XX)
#undef EWD__XX
  EWD_ERROR_ROWS
};
_Static_assert(EWD_ERROR_ROWS == EW__ERR_END - EW__ERR_BASE - 1,
               "every library error code (EW_ERRNO_MAP) has one row in EWD_ERROR_MAP");

typedef struct {
  int code;        /* the library's EW_E* code */
  int http;        /* the JSON API's status for a refusal with it */
  const char *doc; /* when it is answered (NULL: documented under a later row of its name) */
} ewd_error_info_t;

/* Row i (0 <= i < EWD_ERROR_ROWS, in the table's order) of the table, or NULL. */
static inline const ewd_error_info_t *ewd_error_row(int i) {
  static const ewd_error_info_t rows[] = {
#define EWD__XX(s, status, text) {EW_E##s, status, text},
      EWD_ERROR_MAP(EWD__XX)
#undef EWD__XX
  };
  return i >= 0 && i < EWD_ERROR_ROWS ? &rows[i] : NULL;
}

/* The row of an EW_E* code, or NULL for 0 and codes out of range. */
static inline const ewd_error_info_t *ewd_error_info(int code) {
  for (int i = 0; i < EWD_ERROR_ROWS; i++)
    if (ewd_error_row(i)->code == code)
      return ewd_error_row(i);
  return NULL;
}

#endif /* EWD_ERRORS_TABLE_H */
