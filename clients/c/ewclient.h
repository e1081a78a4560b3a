/* ewclient.h — the C client library for eigenwatchd (pkg-config: eigenwatch-client).
 *
 * Blocking calls over one connection, with a timeout per call. Messages are framed with the same
 * bounded skim the daemon uses, then decoded by msgpack-c. Not thread-safe: one connection per
 * thread (or a lock around it).
 *
 * Errors: functions return 0 or a negative EWC_E* code; for EWC_ERPC (the daemon answered an
 * error) the reply carries the wire code and message. */
#ifndef EWCLIENT_H
#define EWCLIENT_H

#include <msgpack.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

enum {
  EWC_OK = 0,
  EWC_EADDR = -1,    /* bad address */
  EWC_ECONNECT = -2, /* cannot connect */
  EWC_EIO = -3,      /* the connection broke */
  EWC_ETIMEOUT = -4, /* no complete reply within the timeout */
  EWC_EPROTO = -5,   /* the daemon sent something that is not a valid reply */
  EWC_ERPC = -6,     /* the daemon answered an error: see the reply's code and message */
  EWC_ENOMEM = -7,
  EWC_EARG = -8      /* a bad argument (e.g. unknown dtype) */
};

/* Returns a static sentence for an EWC_E* code. */
const char *ewc_strerror(int err);

typedef struct ewc ewc_t;

/* The socket the systemd units listen on (group eigenwatch, 0660). */
#define EWC_SYSTEM_SOCKET "/run/eigenwatch/eigenwatchd.sock"
/* The address used when none is given: $EIGENWATCH_ADDRESS, else the daemon's default Unix socket
 * if it exists ($XDG_RUNTIME_DIR/eigenwatch.sock, then ~/.local/state/eigenwatch/eigenwatch.sock,
 * then EWC_SYSTEM_SOCKET when this user may read and write it), else "tcp:127.0.0.1:7700".
 * Writes into buf (cap bytes) and returns it. */
const char *ewc_default_address(char *buf, size_t cap);

/* Connects to "unix:PATH" or "tcp:HOST:PORT" (NULL: the default address). timeout_ms bounds the
 * connect (a TCP host that does not answer: EWC_ECONNECT, "timed out") and every later call
 * (0 = wait forever). On success *out owns a connection closed with
 * ewc_close. On failure returns EWC_EADDR/EWC_ECONNECT/EWC_ENOMEM and, if err != NULL, a
 * sentence in err[0..errcap). */
int ewc_connect(const char *address, int timeout_ms, ewc_t **out, char *err, size_t errcap);
/* Adopts an already connected stream socket (socket activation, socketpair tests); the connection
 * owns fd afterwards. Returns 0 or EWC_ENOMEM. */
int ewc_from_fd(int fd, int timeout_ms, ewc_t **out);
void ewc_close(ewc_t *c);
/* The next request uses msgid last + 1 (for replaying recorded conversations; ids wrap). */
void ewc_set_msgid(ewc_t *c, uint32_t last);
/* Every later call that names a stream (ingest, query, export, merge) names it in `run` (copied;
 * NULL: the daemon's default run). Returns 0 or EWC_ENOMEM. */
int ewc_set_run(ewc_t *c, const char *run);

/* A reply: on success `result` points into `upk` (valid until ewc_reply_free); on EWC_ERPC `code`
 * and `message` hold the daemon's error. Always pass a reply to ewc_reply_free afterwards. */
typedef struct {
  msgpack_unpacked upk;
  char *raw; /* the reply's bytes; decoded strings and bins point into it */
  const msgpack_object *result;
  char code[40];
  char message[512];
} ewc_reply_t;
void ewc_reply_free(ewc_reply_t *r);

/* Sends [0, msgid, method, [params]] and waits for the matching reply. `params` is a packed
 * msgpack map (or NULL for []). Returns 0, EWC_ERPC, EWC_EIO, EWC_ETIMEOUT or EWC_EPROTO. */
int ewc_call(ewc_t *c, const char *method, const msgpack_sbuffer *params, ewc_reply_t *out);
/* Sends [2, method, [params]] (no reply). Returns 0 or EWC_EIO. */
int ewc_notify(ewc_t *c, const char *method, const msgpack_sbuffer *params);

/* Typed helpers. */
/* Ingests n rows of d values of `dtype` ("f32", "f64", "f16", "bf16"), raw little-endian. With
 * notify, returns once sent and *count is left alone; otherwise *count (may be NULL) gets the
 * stream's row count after the batch. */
int ewc_ingest(ewc_t *c, const char *stream, const void *data, const char *dtype, size_t n,
               size_t d, bool notify, uint64_t *count, ewc_reply_t *err);
/* Queries metrics; `params` (may be NULL) is a packed map of metric parameters, center is -1
 * (default), 0 or 1, source NULL for the default, max_lag < 0 for none. The result map is in
 * out->result (see PROTOCOL.md: stream, count, dim, as_of, elapsed_ms, cached, metrics). */
int ewc_query(ewc_t *c, const char *stream, const char *const *metrics, size_t nmetrics,
              const msgpack_sbuffer *params, int center, const char *source, bool fresh,
              int64_t max_lag, ewc_reply_t *out);

/* A stream's saved state (`export`): on success *state and *len point into out (valid until
 * ewc_reply_free(out)) and *count (may be NULL) gets the rows it describes. */
int ewc_export(ewc_t *c, const char *stream, const void **state, size_t *len, uint64_t *count,
               ewc_reply_t *out);
/* Folds an exported state into `stream` (`merge`; created if absent). The result map (stream,
 * merged, count, created) is in out->result. */
int ewc_merge(ewc_t *c, const char *stream, const void *state, size_t len, ewc_reply_t *out);

/* ---- several daemons (PROTOCOL.md, "Many daemons") ----
 * Placement by rendezvous hashing: (run, stream) belongs to the address with the largest
 * FNV-1a-64(run ‖ 0x00 ‖ stream ‖ 0x00 ‖ address) (ties: the bytewise-smaller address); run NULL
 * is the daemon's default run, "default". The Python and JS clients compute the same
 * (proto/vectors/placement.tsv). */
/* FNV-1a, 64 bits, of p[0, n). */
uint64_t ewc_fnv1a64(const void *p, size_t n);
/* The rendezvous weight of `address` for (run, stream). */
uint64_t ewc_score(const char *run, const char *stream, const char *address);
/* The index in addrs[0, n) (n ≥ 1) of the daemon that owns (run, stream); n when n == 0. */
size_t ewc_place(const char *run, const char *stream, const char *const *addrs, size_t n);
/* Splits "a,b,c" (EIGENWATCH_ADDRESS with commas) into addresses: each trimmed of spaces, empty
 * entries and repeats dropped, in order. The strings are written into buf (cap bytes) and up to
 * max pointers into out[]; returns how many were written. It stops at the first address that
 * does not fit in buf or out, so a caller that must have them all sizes buf as strlen(spec) + 1
 * and max as the commas + 1 (then nothing is ever cut). */
size_t ewc_addresses(const char *spec, char *buf, size_t cap, const char **out, size_t max);

/* Helpers over decoded results. */
const msgpack_object *ewc_get(const msgpack_object *map, const char *key);
bool ewc_get_double(const msgpack_object *map, const char *key, double *out);
bool ewc_get_u64(const msgpack_object *map, const char *key, uint64_t *out);

#ifdef __cplusplus
}
#endif
#endif
