/* convert.c — the wire dtypes (f32, f64, f16, bf16; little-endian; any alignment) to float/double.
 *
 * Every conversion here is exact: f16 and bf16 values are all representable in f32, and f32 in
 * f64. A NaN or infinity anywhere rejects the whole batch (EW_ENONFINITE) — one non-finite row
 * would poison the co-moment forever, so the check runs before any state changes. */
#include "core.h"

#include <math.h>
#include <string.h>

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "convert.c assumes a little-endian host; add byte swaps before porting"
#endif

EW_EXPORT int ew_dtype_parse(const char *name, size_t len, ew_dtype_t *out) {
  static const struct {
    const char *name;
    ew_dtype_t t;
  } names[] = {{"f32", EW_F32},     {"float32", EW_F32}, {"f64", EW_F64},       {"float64", EW_F64},
               {"f16", EW_F16},     {"float16", EW_F16}, {"bf16", EW_BF16},     {"bfloat16", EW_BF16}};
  if (!name)
    return EW_EDTYPE;
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
    if (strlen(names[i].name) == len && memcmp(names[i].name, name, len) == 0) {
      *out = names[i].t;
      return 0;
    }
  }
  return EW_EDTYPE;
}

EW_EXPORT size_t ew_dtype_size(ew_dtype_t dtype) {
  switch (dtype) {
  case EW_F32:
    return 4;
  case EW_F64:
    return 8;
  case EW_F16:
  case EW_BF16:
    return 2;
  }
  return 0;
}

EW_EXPORT const char *ew_dtype_name(ew_dtype_t dtype) {
  switch (dtype) {
  case EW_F32:
    return "f32";
  case EW_F64:
    return "f64";
  case EW_F16:
    return "f16";
  case EW_BF16:
    return "bf16";
  }
  return NULL;
}

/* IEEE binary16 → binary32, exact. Returns 0 for a finite value, -1 for NaN/Inf. */
static inline int half_to_float(uint16_t h, float *out) {
  uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
  uint32_t exp = (h >> 10) & 0x1fu;
  uint32_t man = h & 0x3ffu;
  uint32_t bits;
  if (exp == 0x1f)
    return -1;
  if (exp == 0) {
    if (man == 0) {
      bits = sign;
    } else { /* subnormal: value = man * 2^-24, normalise it */
      int e = -1;
      do {
        man <<= 1;
        e++;
      } while (!(man & 0x400u));
      man &= 0x3ffu;
      bits = sign | ((uint32_t)(127 - 15 - e) << 23) | (man << 13);
    }
  } else {
    bits = sign | ((exp + 127 - 15) << 23) | (man << 13);
  }
  memcpy(out, &bits, 4);
  return 0;
}

static inline int bf16_to_float(uint16_t b, float *out) {
  if ((b & 0x7f80u) == 0x7f80u)
    return -1;
  uint32_t bits = (uint32_t)b << 16;
  memcpy(out, &bits, 4);
  return 0;
}

int ew__check_f32(const void *src, size_t count) {
  /* an exponent of all ones is Inf or NaN; an OR over the bit test vectorises */
  const unsigned char *p = src;
  uint32_t bad = 0;
  for (size_t i = 0; i < count; i++) {
    uint32_t u;
    memcpy(&u, p + 4 * i, 4);
    bad |= (u & 0x7f800000u) == 0x7f800000u;
  }
  return bad ? EW_ENONFINITE : 0;
}

EW_EXPORT int ew_convert_f32(const void *src, ew_dtype_t dtype, size_t count, float *dst) {
  const unsigned char *p = src;
  switch (dtype) {
  case EW_F32:
    memcpy(dst, p, count * 4);
    return ew__check_f32(dst, count);
  case EW_F16:
    for (size_t i = 0; i < count; i++) {
      uint16_t h;
      memcpy(&h, p + 2 * i, 2);
      if (half_to_float(h, &dst[i]) != 0)
        return EW_ENONFINITE;
    }
    return 0;
  case EW_BF16:
    for (size_t i = 0; i < count; i++) {
      uint16_t h;
      memcpy(&h, p + 2 * i, 2);
      if (bf16_to_float(h, &dst[i]) != 0)
        return EW_ENONFINITE;
    }
    return 0;
  case EW_F64:
    return EW_EDTYPE;
  }
  return EW_EDTYPE;
}

EW_EXPORT int ew_convert_f64(const void *src, ew_dtype_t dtype, size_t count, double *dst) {
  const unsigned char *p = src;
  if (dtype == EW_F64) {
    memcpy(dst, p, count * 8);
    for (size_t i = 0; i < count; i++)
      if (!isfinite(dst[i]))
        return EW_ENONFINITE;
    return 0;
  }
  if (ew_dtype_size(dtype) == 0)
    return EW_EDTYPE;
  for (size_t i = 0; i < count; i++) {
    float f;
    int rc;
    if (dtype == EW_F32) {
      memcpy(&f, p + 4 * i, 4);
      rc = isfinite(f) ? 0 : -1;
    } else {
      uint16_t h;
      memcpy(&h, p + 2 * i, 2);
      rc = dtype == EW_F16 ? half_to_float(h, &f) : bf16_to_float(h, &f);
    }
    if (rc != 0)
      return EW_ENONFINITE;
    dst[i] = (double)f;
  }
  return 0;
}
