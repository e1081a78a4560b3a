/* test_convert.c — dtype conversion: exact widening of every f16 and bf16 bit pattern (checked
 * against an independent ldexp construction), rejection of every non-finite pattern, unaligned
 * little-endian input, and the dtype name table. */
#include "eigenwatch.h"
#include "tap.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

/* the value of an IEEE binary16 pattern, built independently from its fields */
static double half_value(uint16_t h, int *finite) {
  int s = h >> 15, e = (h >> 10) & 31, m = h & 1023;
  *finite = e != 31;
  double v = e == 0 ? ldexp(m, -24) : ldexp(1024 + m, e - 25);
  return s ? -v : v;
}

static double bf16_value(uint16_t b, int *finite) {
  int s = b >> 15, e = (b >> 7) & 255, m = b & 127;
  *finite = e != 255;
  double v = e == 0 ? ldexp(m, -133) : ldexp(128 + m, e - 134);
  return s ? -v : v;
}

static void every_f16_pattern_widens_exactly_or_is_rejected(void) {
  int bad = 0;
  for (uint32_t p = 0; p < 65536; p++) {
    uint16_t h = (uint16_t)p;
    int finite;
    double want = half_value(h, &finite);
    float f32;
    double f64;
    int r32 = ew_convert_f32(&h, EW_F16, 1, &f32), r64 = ew_convert_f64(&h, EW_F16, 1, &f64);
    if (finite) {
      if (r32 != 0 || r64 != 0 || (double)f32 != want || f64 != want || (signbit(f32) ? 1 : 0) != (h >> 15))
        bad++;
    } else if (r32 != EW_ENONFINITE || r64 != EW_ENONFINITE) {
      bad++;
    }
  }
  CHECK(bad == 0, "%d f16 patterns converted wrongly", bad);
}

static void every_bf16_pattern_widens_exactly_or_is_rejected(void) {
  int bad = 0;
  for (uint32_t p = 0; p < 65536; p++) {
    uint16_t b = (uint16_t)p;
    int finite;
    double want = bf16_value(b, &finite);
    float f32;
    double f64;
    int r32 = ew_convert_f32(&b, EW_BF16, 1, &f32), r64 = ew_convert_f64(&b, EW_BF16, 1, &f64);
    if (finite) {
      if (r32 != 0 || r64 != 0 || (double)f32 != want || f64 != want)
        bad++;
    } else if (r32 != EW_ENONFINITE || r64 != EW_ENONFINITE) {
      bad++;
    }
  }
  CHECK(bad == 0, "%d bf16 patterns converted wrongly", bad);
}

static void unaligned_little_endian_input_is_read_exactly(void) {
  unsigned char buf[1 + 3 * 8];
  double src[3] = {1.5, -2.25e-300, 12345.678};
  memcpy(buf + 1, src, sizeof src); /* deliberately misaligned by one byte */
  double out[3];
  CHECK(ew_convert_f64(buf + 1, EW_F64, 3, out) == 0, "f64 unaligned");
  CHECK(memcmp(out, src, sizeof src) == 0, "f64 values differ");
  float fs[3] = {1.5f, -3.0e-38f, 65504.0f}, fo[3];
  memcpy(buf + 1, fs, sizeof fs);
  CHECK(ew_convert_f32(buf + 1, EW_F32, 3, fo) == 0, "f32 unaligned");
  CHECK(memcmp(fo, fs, sizeof fs) == 0, "f32 values differ");
  const unsigned char le_one_f16[2] = {0x00, 0x3c}; /* 1.0 in f16, little-endian */
  CHECK(ew_convert_f32(le_one_f16, EW_F16, 1, fo) == 0 && fo[0] == 1.0f, "f16 LE 1.0 -> %g", fo[0]);
}

static void nonfinite_anywhere_rejects_the_batch(void) {
  float f[5] = {1, 2, 3, 4, 5};
  double d[5];
  f[3] = NAN;
  CHECK(ew_convert_f32(f, EW_F32, 5, (float[5]){0}) == EW_ENONFINITE, "f32 NaN");
  CHECK(ew_convert_f64(f, EW_F32, 5, d) == EW_ENONFINITE, "f32 NaN via f64");
  f[3] = -INFINITY;
  CHECK(ew_convert_f64(f, EW_F32, 5, d) == EW_ENONFINITE, "f32 -Inf");
  double x[2] = {0, INFINITY};
  CHECK(ew_convert_f64(x, EW_F64, 2, d) == EW_ENONFINITE, "f64 Inf");
}

static void f64_cannot_narrow_to_f32(void) {
  double x = 1.0;
  float f;
  CHECK(ew_convert_f32(&x, EW_F64, 1, &f) == EW_EDTYPE, "f64 -> f32 must be refused");
  CHECK(ew_convert_f32(&x, (ew_dtype_t)7, 1, &f) == EW_EDTYPE, "bad dtype");
  CHECK(ew_convert_f64(&x, (ew_dtype_t)7, 1, (double[1]){0}) == EW_EDTYPE, "bad dtype f64");
}

static void dtype_names_parse_and_print(void) {
  static const struct {
    const char *s;
    ew_dtype_t t;
    size_t size;
  } ok[] = {{"f32", EW_F32, 4}, {"float32", EW_F32, 4}, {"f64", EW_F64, 8},
            {"float64", EW_F64, 8}, {"f16", EW_F16, 2}, {"float16", EW_F16, 2},
            {"bf16", EW_BF16, 2}, {"bfloat16", EW_BF16, 2}};
  for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
    ew_dtype_t t;
    CHECK(ew_dtype_parse(ok[i].s, strlen(ok[i].s), &t) == 0 && t == ok[i].t, "%s", ok[i].s);
    CHECK(ew_dtype_size(ok[i].t) == ok[i].size, "size of %s", ok[i].s);
  }
  ew_dtype_t t;
  const char *bad[] = {"", "f8", "F32", "f32 ", "int8", "bf1"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    CHECK(ew_dtype_parse(bad[i], strlen(bad[i]), &t) == EW_EDTYPE, "'%s' must not parse", bad[i]);
  CHECK(ew_dtype_parse("f32xyz", 3, &t) == 0 && t == EW_F32, "length-bounded parse");
  CHECK(strcmp(ew_dtype_name(EW_BF16), "bf16") == 0, "name");
  CHECK(ew_dtype_name((ew_dtype_t)9) == NULL && ew_dtype_size((ew_dtype_t)9) == 0, "invalid");
}

int main(void) {
  TAP_RUN(every_f16_pattern_widens_exactly_or_is_rejected);
  TAP_RUN(every_bf16_pattern_widens_exactly_or_is_rejected);
  TAP_RUN(unaligned_little_endian_input_is_read_exactly);
  TAP_RUN(nonfinite_anywhere_rejects_the_batch);
  TAP_RUN(f64_cannot_narrow_to_f32);
  TAP_RUN(dtype_names_parse_and_print);
  TAP_DONE();
}
