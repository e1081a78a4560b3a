/* limits_table.h — (not limits.h: that name would shadow the system header) the daemon's configuration keys and limits: one row each (one table: the config parser, --help, PROTOCOL.md and the tests read it). The
 * config file parser, SIGHUP's reload, `eigenwatchd --help` and PROTOCOL.md's table of limits
 * (tools/ew_protocol_doc) are generated from this table.
 *
 * XX(member, TYPE, default, min, max, reloadable, "doc")
 *   TYPE: SIZE (bytes; K, M, G suffixes), COUNT (an integer), SECONDS (a number; 0 = off),
 *         PATH, LEVEL (error|warn|info|debug), LISTEN (repeatable: unix:PATH or tcp:HOST:PORT)
 *   min/max bound numeric values; text types ignore them. */
#ifndef EWD_LIMITS_H
#define EWD_LIMITS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define EWD_KIB ((uint64_t)1 << 10)
#define EWD_MIB ((uint64_t)1 << 20)
#define EWD_GIB ((uint64_t)1 << 30)

#define EWD_CONFIG_MAP(XX)                                                                        \
  XX(listen, LISTEN, 0, 0, 0, false,                                                              \
     "listener, repeatable: unix:PATH or tcp:HOST:PORT (default: a Unix socket in "               \
     "$XDG_RUNTIME_DIR or the state dir, and tcp:127.0.0.1:7700)")                                \
  XX(state_dir, PATH, 0, 0, 0, false,                                                             \
     "state directory (default $XDG_STATE_HOME/eigenwatch or ~/.local/state/eigenwatch)")         \
  XX(auth_token_file, PATH, 0, 0, 0, false,                                                       \
     "file holding the shared token every TCP connection must present with `auth` first; "        \
     "required for a non-loopback TCP address")                                                   \
  XX(http, PATH, 0, 0, 0, false,                                                                  \
     "HOST:PORT of the HTTP listener (/metrics, /healthz; default 127.0.0.1:7701), or off; a "    \
     "non-loopback address needs auth_token_file")                                                \
  XX(log_level, LEVEL, 2, 0, 3, true, "error | warn | info | debug")                              \
  XX(max_message_bytes, SIZE, 64 * EWD_MIB, 1 * EWD_KIB, 1 * EWD_GIB, true,                       \
     "one message, declared lengths included")                                                    \
  XX(max_depth, COUNT, 32, 2, 64, true, "container nesting in one message")                       \
  XX(max_elements, COUNT, 4 * EWD_MIB, 16, 1 * EWD_GIB, true,                                     \
     "array items plus map keys and values in one message")                                       \
  XX(max_streams, COUNT, 1024, 1, 1 * EWD_MIB, true, "streams held at once")                      \
  XX(max_memory, SIZE, 8 * EWD_GIB, 1 * EWD_MIB, (uint64_t)1 << 50, true,                         \
     "admission budget: every stream's state plus the peak workspace of what it may run, per "    \
     "math thread (the library's model)")                                                         \
  XX(max_staged_bytes, SIZE, 1 * EWD_GIB, 1 * EWD_MIB, (uint64_t)1 << 50, true,                  \
     "rows held for training steps that have not completed, across streams, each batch at what "  \
     "it costs (rows, entry, job: ~700 bytes more than its rows; counted in the admission "       \
     "budget); past it, the oldest pending step completes as partial")                            \
  XX(history_max_points, COUNT, 1000000, 100, (uint64_t)1 << 40, false,                          \
     "points kept per history series (run, stream, metric); past it, every second point of the "  \
     "oldest half is deleted")                                                                    \
  XX(max_connections, COUNT, 4096, 1, 1 * EWD_MIB, true, "further connections are closed at once") \
  XX(http_max_connections, COUNT, 256, 1, 65536, true,                                            \
     "HTTP connections held at once (apart from max_connections); further ones are closed")      \
  XX(conn_high_water, SIZE, 32 * EWD_MIB, 64 * EWD_KIB, 16 * EWD_GIB, true,                       \
     "ingest bytes queued or buffered per connection before its reads pause")                     \
  XX(conn_out_cap, SIZE, 16 * EWD_MIB, 64 * EWD_KIB, 16 * EWD_GIB, true,                          \
     "unsent reply bytes per connection, counted as the memory holding them; past it, no "        \
     "further request of that connection is answered (nor read) until the client reads, and a "   \
     "subscriber is disconnected")                                                                \
  XX(max_answer_bytes, SIZE, 128 * EWD_MIB, 64 * EWD_KIB, 16 * EWD_GIB, true,                    \
     "one history answer, as its encoding is estimated before its values are read (msgpack, or "  \
     "JSON over HTTP); a larger one is refused with TOO_LARGE")                                   \
  XX(answer_budget, SIZE, 1 * EWD_GIB, 1 * EWD_MIB, (uint64_t)1 << 50, true,                       \
     "memory for answers across connections, msgpack-RPC and HTTP together: replies and "        \
     "notifications not yet written plus history answers being read; a history request that "    \
     "would pass it is refused with LIMIT")                                                       \
  XX(recv_budget, SIZE, 256 * EWD_MIB, 1 * EWD_MIB, (uint64_t)1 << 50, true,                      \
     "bytes held across all connections for unfinished messages (a message's declared size is "   \
     "reserved when its header arrives); a connection that needs more waits (its reads pause), "  \
     "in arrival order, until others finish; when every holder of a partial message waits, the "  \
     "oldest may go past it by one message")                                                      \
  XX(partial_timeout, SECONDS, 30, 0, 86400, true,                                                \
     "seconds a started message may stay unfinished before its connection is closed (0 = off)")   \
  XX(idle_timeout, SECONDS, 0, 0, 31 * 86400, true,                                               \
     "seconds without a byte or a pending answer before a connection is closed (0 = off)")       \
  XX(drain_timeout, SECONDS, 10, 0, 86400, true,                                                  \
     "at SIGTERM, seconds to wait for queued work and unread replies before closing the "         \
     "remaining connections")                                                                     \
  XX(snapshot_interval, SECONDS, 60, 0, 86400, true,                                              \
     "seconds between snapshots of changed streams to the state dir (0 = only on `snapshot` and " \
     "at a stop)")                                                                                \
  XX(math_threads, COUNT, 2, 1, 64, false, "threads that run BLAS/LAPACK")                        \
  XX(blas_threads, COUNT, 1, 1, 64, false, "OpenBLAS threads per math thread")                     \
  XX(eval_threads, COUNT, 0, 0, 64, false,                                                        \
     "math threads that may solve scheduled evaluations at once (0 = all of them; fewer leaves "   \
     "cores to a training job on the same machine)")

typedef enum {
  EWD_CT_SIZE, EWD_CT_COUNT, EWD_CT_SECONDS, EWD_CT_PATH, EWD_CT_LEVEL, EWD_CT_LISTEN
} ewd_ctype_t;

#define EWD_LISTEN_MAX 32

typedef uint64_t ewd_c_SIZE;
typedef uint64_t ewd_c_COUNT;
typedef double ewd_c_SECONDS;
typedef char *ewd_c_PATH; /* owned (strdup), NULL when unset */
typedef int ewd_c_LEVEL;
typedef struct {
  char *v[EWD_LISTEN_MAX]; /* owned */
  int n;
} ewd_c_LISTEN;

/* The running configuration: one member per row. Owned by main (the loop thread); handlers
 * read it through the server. */
typedef struct {
#define EWD__CMEMBER(member, type, def, min, max, reload, doc) ewd_c_##type member;
  EWD_CONFIG_MAP(EWD__CMEMBER)
#undef EWD__CMEMBER
} ewd_config_t;

typedef struct {
  const char *key;
  ewd_ctype_t type;
  uint64_t def;
  uint64_t min, max;
  bool reloadable;
  const char *doc;
  size_t offset;
} ewd_config_info_t;

/* The table (static) and its length. */
const ewd_config_info_t *ewd_config_table(size_t *n);
/* Fills *c with every default (text members NULL). */
void ewd_config_defaults(ewd_config_t *c);
/* Frees what *c owns (paths, listeners); leaves defaults' numbers. */
void ewd_config_free(ewd_config_t *c);
/* Deep copy of *src into *dst (dst is overwritten, not freed). Returns 0 or -1 (no memory). */
int ewd_config_copy(ewd_config_t *dst, const ewd_config_t *src);
/* Sets key = value in *c. Returns 0, or -1 with a sentence in err[0, cap) (unknown key, bad
 * value, out of range). A LISTEN value is appended. */
int ewd_config_set(ewd_config_t *c, const char *key, const char *value, char *err, size_t cap);
/* Reads a config file (key = value lines, # comments) into *c. Every bad line is logged (path,
 * line, sentence); returns 0 only when every line was good — the caller then decides to apply. */
int ewd_config_read_file(ewd_config_t *c, const char *path);
/* Writes v as a value of row r's type into buf[0, cap), spelled as the config file takes it
 * (64M, 30, info; "-" for text types, which have no numeric value). Returns buf. */
const char *ewd_config_format(char *buf, size_t cap, const ewd_config_info_t *r, uint64_t v);
/* Prints the keys, defaults, ranges and docs (for --help). */
void ewd_config_usage(FILE *f);

#endif
