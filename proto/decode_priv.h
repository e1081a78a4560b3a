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

#endif
