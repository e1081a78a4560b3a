/* error.c — the error codes' names and sentences, generated from EW_ERRNO_MAP in eigenwatch.h.
 * Nothing else lives here: adding an error is one row in that list. */
#include "core.h"

#include <stdarg.h>
#include <stdio.h>

EW_EXPORT const char *ew_strerror(int err) {
  switch (err) {
  case EW_OK:
    return "success";
#define EW__XX(name, wire, msg)                                                                   \
  case EW_E##name:                                                                                \
    return msg;
    EW_ERRNO_MAP(EW__XX)
#undef EW__XX
  default:
    return "unknown error";
  }
}

EW_EXPORT const char *ew_err_name(int err) {
  switch (err) {
  case EW_OK:
    return "OK";
#define EW__XX(name, wire, msg)                                                                   \
  case EW_E##name:                                                                                \
    return wire;
    EW_ERRNO_MAP(EW__XX)
#undef EW__XX
  default:
    return "INTERNAL";
  }
}

int ew__fail_msg(char *msg, size_t cap, const char *fmt, ...) {
  if (msg && cap) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, cap, fmt, ap);
    va_end(ap);
  }
  return EW_EBADPARAM;
}
