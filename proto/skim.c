/* skim.c — the bounded structural pre-scan in front of msgpack-c (see ew_proto.h).
 *
 * Why it exists: msgpack-c 4.0 sizes container allocations from the declared count, so a
 * five-byte array32 header declaring 2^31 elements makes it reserve gigabytes before it notices
 * the body is missing. The skim walks the bytes first, holding only a fixed-size stack, and
 * rejects declared lengths that the message cap cannot hold. It is resumable: each call starts
 * where the last stopped, so a large message arriving in small reads is scanned once, not once
 * per read. */
#include "ew_proto.h"

#include <string.h>

void ew_skim_limits_default(ew_skim_limits_t *lim) {
  lim->max_bytes = (size_t)64 << 20;
  lim->max_depth = 32;
  lim->max_elements = (uint64_t)8 << 20;
}

void ew_skim_reset(ew_skim_t *sk) { memset(sk, 0, sizeof *sk); }

const char *ew_skim_strerror(ew_skim_status_t st) {
  switch (st) {
  case EW_SKIM_TOO_LARGE:
    return "message exceeds the size limit (or declares a length it cannot hold)";
  case EW_SKIM_TOO_DEEP:
    return "message nests containers deeper than the limit";
  case EW_SKIM_BAD_BYTE:
    return "message contains the never-used msgpack byte 0xc1";
  case EW_SKIM_TOO_MANY:
    return "message declares more elements than the limit";
  default:
    return "ok";
  }
}

static uint64_t be(const uint8_t *p, int n) {
  uint64_t v = 0;
  for (int i = 0; i < n; i++)
    v = (v << 8) | p[i];
  return v;
}

/* Classifies the object starting at p[0]: how many header bytes it needs (hdr, including the
 * length field), a payload length (bytes) or a container count (items; maps count 2 per pair). */
typedef struct {
  int hdr;         /* bytes of the type byte + length field */
  uint64_t payload; /* raw bytes after the header (str/bin/ext/scalars) */
  uint64_t items;  /* for containers: elements that follow */
  bool container;
  bool bad;
  int lenbytes;    /* bytes of the big-endian length/count field after the type byte */
  int kind;        /* 0 scalar/raw, 1 array, 2 map */
  int fixed_extra; /* ext types: 1 type byte after the length */
} head_t;

static head_t classify(uint8_t b) {
  head_t h = {0};
  h.hdr = 1;
  if (b <= 0x7f || b >= 0xe0 || b == 0xc0 || b == 0xc2 || b == 0xc3)
    return h;
  if ((b & 0xe0) == 0xa0) { /* fixstr */
    h.payload = b & 0x1f;
    return h;
  }
  if ((b & 0xf0) == 0x90) {
    h.container = true, h.kind = 1, h.items = b & 0x0f;
    return h;
  }
  if ((b & 0xf0) == 0x80) {
    h.container = true, h.kind = 2, h.items = 2 * (uint64_t)(b & 0x0f);
    return h;
  }
  switch (b) {
  case 0xc1:
    h.bad = true;
    return h;
  case 0xcc: case 0xd0: h.payload = 1; return h;
  case 0xcd: case 0xd1: h.payload = 2; return h;
  case 0xce: case 0xd2: case 0xca: h.payload = 4; return h;
  case 0xcf: case 0xd3: case 0xcb: h.payload = 8; return h;
  case 0xd4: h.payload = 2; return h; /* fixext: type byte + data */
  case 0xd5: h.payload = 3; return h;
  case 0xd6: h.payload = 5; return h;
  case 0xd7: h.payload = 9; return h;
  case 0xd8: h.payload = 17; return h;
  case 0xc4: case 0xd9: h.lenbytes = 1; return h;
  case 0xc5: case 0xda: h.lenbytes = 2; return h;
  case 0xc6: case 0xdb: h.lenbytes = 4; return h;
  case 0xc7: h.lenbytes = 1, h.fixed_extra = 1; return h;
  case 0xc8: h.lenbytes = 2, h.fixed_extra = 1; return h;
  case 0xc9: h.lenbytes = 4, h.fixed_extra = 1; return h;
  case 0xdc: h.container = true, h.kind = 1, h.lenbytes = 2; return h;
  case 0xdd: h.container = true, h.kind = 1, h.lenbytes = 4; return h;
  case 0xde: h.container = true, h.kind = 2, h.lenbytes = 2; return h;
  case 0xdf: h.container = true, h.kind = 2, h.lenbytes = 4; return h;
  default:
    h.bad = true;
    return h;
  }
}

ew_skim_status_t ew_skim(ew_skim_t *sk, const uint8_t *buf, size_t len,
                         const ew_skim_limits_t *lim, size_t *msg_len) {
  uint32_t max_depth = lim->max_depth < EW_SKIM_MAX_DEPTH_CAP ? lim->max_depth : EW_SKIM_MAX_DEPTH_CAP;
  for (;;) {
    if (sk->started && sk->depth == 0) { /* the top-level object is complete */
      *msg_len = sk->pos;
      return EW_SKIM_DONE;
    }
    if (sk->pos >= len)
      return sk->pos >= lim->max_bytes ? EW_SKIM_TOO_LARGE : EW_SKIM_NEED_MORE;
    head_t h = classify(buf[sk->pos]);
    if (h.bad)
      return EW_SKIM_BAD_BYTE;
    size_t need = 1 + (size_t)h.lenbytes;
    if (sk->pos + need > len)
      return sk->pos + need > lim->max_bytes ? EW_SKIM_TOO_LARGE : EW_SKIM_NEED_MORE;
    if (h.lenbytes) {
      uint64_t v = be(buf + sk->pos + 1, h.lenbytes);
      if (h.container)
        h.items = h.kind == 2 ? 2 * v : v;
      else
        h.payload = v + (uint64_t)h.fixed_extra;
    }
    size_t after_hdr = sk->pos + need;
    if (after_hdr > lim->max_bytes)
      return EW_SKIM_TOO_LARGE;
    uint64_t room = lim->max_bytes - after_hdr; /* bytes the rest of the message may take */
    if (h.container) {
      if (h.items > room) /* each element needs >= 1 byte: this count cannot be honest */
        return EW_SKIM_TOO_LARGE;
      sk->elements += h.items;
      if (sk->elements > lim->max_elements)
        return EW_SKIM_TOO_MANY;
      /* consume the header; this object counts as one item of its parent */
      if (sk->depth > 0)
        sk->remaining[sk->depth - 1]--;
      sk->pos = after_hdr;
      sk->started = true;
      if (h.items > 0) {
        if (sk->depth >= max_depth)
          return EW_SKIM_TOO_DEEP;
        sk->remaining[sk->depth++] = h.items;
      }
    } else {
      if (h.payload > room)
        return EW_SKIM_TOO_LARGE;
      if (after_hdr + h.payload > len)
        return EW_SKIM_NEED_MORE; /* resume at this object's header next time */
      if (sk->depth > 0)
        sk->remaining[sk->depth - 1]--;
      sk->pos = after_hdr + (size_t)h.payload;
      sk->started = true;
    }
    while (sk->depth > 0 && sk->remaining[sk->depth - 1] == 0) /* close finished containers */
      sk->depth--;
  }
}

size_t ew_skim_need(const ew_skim_t *sk, const uint8_t *buf, size_t len) {
  uint64_t items = sk->started ? 0 : 1; /* the top-level object, before its first byte */
  for (uint32_t i = 0; i < sk->depth; i++)
    items += sk->remaining[i];
  uint64_t need = sk->pos;
  if (sk->pos < len) { /* the pending object: its header, and a raw object's payload */
    head_t h = classify(buf[sk->pos]);
    need += 1 + (uint64_t)h.lenbytes;
    if (!h.container && !h.bad) {
      if (!h.lenbytes)
        need += h.payload;
      else if (sk->pos + 1 + (size_t)h.lenbytes <= len)
        need += be(buf + sk->pos + 1, h.lenbytes) + (uint64_t)h.fixed_extra;
    }
    if (items > 0)
      items--; /* counted above */
  }
  need += items;
  return need > SIZE_MAX ? SIZE_MAX : (size_t)need;
}
