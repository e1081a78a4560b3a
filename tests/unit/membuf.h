/* membuf.h — an in-memory byte stream for the unit tests that save and load (ew_write_fn and
 * ew_read_fn over a growing buffer): buf_write appends, buf_read consumes from `off`. */
#ifndef EW_MEMBUF_H
#define EW_MEMBUF_H
#include <stdlib.h>
#include <string.h>

typedef struct {
  unsigned char *p;
  size_t len, cap, off;
} buf_t;

static int buf_write(void *ctx, const void *p, size_t n) {
  buf_t *b = ctx;
  if (b->len + n > b->cap) {
    size_t cap = (b->len + n) * 2;
    unsigned char *q = realloc(b->p, cap);
    if (!q)
      return -1;
    b->p = q;
    b->cap = cap;
  }
  memcpy(b->p + b->len, p, n);
  b->len += n;
  return 0;
}

static int buf_read(void *ctx, void *p, size_t n) {
  buf_t *b = ctx;
  if (b->off + n > b->len)
    return -1;
  memcpy(p, b->p + b->off, n);
  b->off += n;
  return 0;
}

#endif /* EW_MEMBUF_H */
