/* decode_priv.h — what the request decoder's two halves share: field.c (one field, a map of
 * fields) and decode.c (the envelope, the method, the cross-field rules). Nothing else sees it. */
#ifndef EWP_DECODE_PRIV_H
#define EWP_DECODE_PRIV_H

#include "ewp.h"

/* Sets err's code and message (printf-style) and returns -1, for `return ewp__fail(...)`. */
int ewp__fail(ewp_error_t *err, ewp_code_t code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Decodes `map` (NULL: empty) against fields fs[0, nf) into dst, a struct that starts with its
 * `has` bits (a field present sets bit i); `what` names it in refusals (a method, or "eval[2]").
 * Unknown and duplicate keys, missing required fields and each field's own rules are refused
 * with a sentence in err. Returns 0 or -1. */
int ewp__decode_map(const msgpack_object *map, const ewp_field_info_t *fs, size_t nf, void *dst,
                    const char *what, ewp_request_t *req, ewp_error_t *err);

/* field.c's helpers for field_batch.c: the refusal of a field (its row's code and sentence) and
 * the index of p[0, n) among an enum's names (aliases "a|b"; -1: none). */
int ewp__field_error(ewp_error_t *err, const ewp_field_info_t *f);
int ewp__enum_index(const char *const *values, const char *p, size_t n);

/* field_batch.c: a batch's fields, each decoded as field.c's decode_field would (0 or -1 with
 * err set): `rows` into out (the rows owned by req), one {dtype, data} (`what` and `esc` name
 * it in refusals), one {dtype, data, shape} (name in refusals), and a tokens batch's columns. */
int ewp__decode_rows(const msgpack_object *o, const ewp_field_info_t *f, ewp_rows_t *out,
                     ewp_request_t *req, ewp_error_t *err);
int ewp__decode_typed(const msgpack_object *v, const char *what, const char *esc, ewp_column_t *c,
                      ewp_error_t *err);
int ewp__decode_array(const msgpack_object *v, const char *name, ewp_array_t *a,
                      ewp_error_t *err);
int ewp__decode_columns(const msgpack_object *o, const ewp_field_info_t *f, ewp_columns_t *out,
                        ewp_error_t *err);

#endif
