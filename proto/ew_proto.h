/* ew_proto.h — the wire codec shared by the daemon and the C client: the bounded skim that runs
 * before any decoding, the request decoder over msgpack-c, and reply encoders.
 *
 * Wire format (proto/PROTOCOL.md): msgpack-RPC messages back to back on a stream socket —
 * request [0, msgid, method, params], response [1, msgid, error, result], notification
 * [2, method, params]. Nothing here touches sockets or streams of vectors' math. */
#ifndef EW_PROTO_H
#define EW_PROTO_H

#include <msgpack.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define EW_PROTOCOL_VERSION 1

/* ---- skim: a resumable, non-allocating structural pre-scan ----
 * It walks msgpack bytes as they arrive and finds where the first complete message ends, while
 * refusing anything that could make a decoder allocate more than the bytes present justify:
 *   - the message may not exceed max_bytes (declared bin/str/ext lengths included),
 *   - containers may not nest deeper than max_depth,
 *   - the total number of elements (array items + map keys and values) may not exceed
 *     max_elements, and no container may declare more elements than bytes remain under max_bytes
 *     (every element takes at least one byte),
 *   - the never-used byte 0xc1 is rejected.
 * A declared count therefore never drives an allocation by itself. */
typedef struct {
  size_t max_bytes;    /* default 64 MiB */
  uint32_t max_depth;  /* default 32 */
  uint64_t max_elements; /* default 8 Mi */
} ew_skim_limits_t;

#define EW_SKIM_MAX_DEPTH_CAP 64

typedef enum {
  EW_SKIM_NEED_MORE = 0, /* no complete message yet; call again with more bytes */
  EW_SKIM_DONE = 1,      /* a complete message occupies bytes [0, *msg_len) */
  EW_SKIM_TOO_LARGE = -1,
  EW_SKIM_TOO_DEEP = -2,
  EW_SKIM_BAD_BYTE = -3,
  EW_SKIM_TOO_MANY = -4
} ew_skim_status_t;

typedef struct {
  size_t pos;              /* bytes consumed of the current message */
  uint32_t depth;
  uint64_t remaining[EW_SKIM_MAX_DEPTH_CAP]; /* items left in each open container */
  uint64_t elements;
  bool started;
} ew_skim_t;

void ew_skim_limits_default(ew_skim_limits_t *lim);
/* Starts a new message. */
void ew_skim_reset(ew_skim_t *sk);
/* Continues over buf[0, len) (the same buffer start every call, possibly longer each time).
 * Returns EW_SKIM_DONE with *msg_len set, EW_SKIM_NEED_MORE, or a negative status; after a
 * negative status the connection's framing is lost and it should be closed. */
ew_skim_status_t ew_skim(ew_skim_t *sk, const uint8_t *buf, size_t len,
                         const ew_skim_limits_t *lim, size_t *msg_len);
const char *ew_skim_strerror(ew_skim_status_t st);
/* After EW_SKIM_NEED_MORE over buf[0, len): a lower bound on the whole message's bytes — what is
 * scanned, the pending object's header and declared payload (a bin's length is known from its
 * first five bytes), and one byte for each element still declared by an open container. The
 * daemon reserves receive buffer for it at once (a 40 MB `data` is one reservation, not a series
 * of doublings that can leave every connection holding part of a message). */
size_t ew_skim_need(const ew_skim_t *sk, const uint8_t *buf, size_t len);

/* ---- decoding helpers over a decoded msgpack_object ---- */
/* Looks up string key `key` in map `m` (keys may be str or bin). NULL if absent or m not a map. */
const msgpack_object *ew_map_get(const msgpack_object *m, const char *key);
/* Compares a str/bin object with a C string. */
bool ew_obj_streq(const msgpack_object *o, const char *s);
/* Numeric value of a positive/negative int or float object; false if not a number. */
bool ew_obj_number(const msgpack_object *o, double *out);
/* Exact non-negative integer (ints, or floats with an integral value); false otherwise. */
bool ew_obj_uint(const msgpack_object *o, uint64_t *out);
/* Bytes of a str or bin object. */
bool ew_obj_bytes(const msgpack_object *o, const char **p, size_t *len);

/* ---- encoding ---- */
/* Packs a string. */
void ew_pack_str(msgpack_packer *pk, const char *s);
/* Packs [1, msgid, {"code": code, "message": message}, nil]. */
void ew_pack_error_response(msgpack_packer *pk, uint64_t msgid, const char *code,
                            const char *message);
/* Packs the header of a success response [1, msgid, nil, <result follows>]. */
void ew_pack_result_header(msgpack_packer *pk, uint64_t msgid);

#endif
