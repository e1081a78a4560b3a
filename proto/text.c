/* text.c — UTF-8 validation and the escaping of peer bytes before they are echoed in an error
 * message or written to a log. Peer bytes are never copied verbatim: a reply must stay readable
 * by strict msgpack decoders (str must be UTF-8) and a log line must stay one line. */
#include "ewp.h"

#include <stdio.h>
#include <string.h>

/* Length of the valid UTF-8 sequence at s[0, n), or 0 if it is not one. */
static size_t utf8_seq(const unsigned char *s, size_t n) {
  unsigned char c = s[0];
  if (c < 0x80)
    return 1;
  size_t len;
  unsigned min;
  unsigned cp;
  if (c >= 0xc2 && c <= 0xdf)
    len = 2, min = 0x80, cp = c & 0x1f;
  else if (c >= 0xe0 && c <= 0xef)
    len = 3, min = 0x800, cp = c & 0x0f;
  else if (c >= 0xf0 && c <= 0xf4)
    len = 4, min = 0x10000, cp = c & 0x07;
  else
    return 0;
  if (n < len)
    return 0;
  for (size_t i = 1; i < len; i++) {
    if ((s[i] & 0xc0) != 0x80)
      return 0;
    cp = (cp << 6) | (s[i] & 0x3f);
  }
  if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
    return 0;
  return len;
}

bool ewp_utf8_valid(const char *s, size_t n) {
  const unsigned char *p = (const unsigned char *)s;
  for (size_t i = 0; i < n;) {
    size_t l = utf8_seq(p + i, n - i);
    if (!l)
      return false;
    i += l;
  }
  return true;
}

char *ewp_escape(char *dst, size_t cap, const char *s, size_t n) {
  const unsigned char *p = (const unsigned char *)s;
  size_t o = 0;
  if (cap < 4) {
    if (cap)
      dst[0] = 0;
    return dst;
  }
  for (size_t i = 0; i < n;) {
    char piece[8];
    size_t plen;
    size_t l = utf8_seq(p + i, n - i);
    if (l == 1 && (p[i] == '"' || p[i] == '\\')) {
      piece[0] = '\\', piece[1] = (char)p[i], plen = 2;
    } else if (l == 1 && p[i] >= 0x20 && p[i] < 0x7f) {
      piece[0] = (char)p[i], plen = 1;
    } else if (l > 1) {
      memcpy(piece, p + i, l), plen = l;
    } else { /* a control byte or a byte that starts no valid character */
      snprintf(piece, sizeof piece, "\\x%02x", p[i]);
      plen = 4, l = 1;
    }
    /* keep room for "..." unless this is the last piece */
    size_t room = cap - 1 - o;
    bool last = i + l >= n;
    if (plen > room || (!last && plen + 3 > room)) {
      size_t k = room < 3 ? room : 3;
      memcpy(dst + o, "...", k);
      o += k;
      break;
    }
    memcpy(dst + o, piece, plen);
    o += plen;
    i += l;
  }
  dst[o] = 0;
  return dst;
}
