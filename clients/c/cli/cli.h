/* cli.h — the `eigenwatch` command-line client's shared pieces (over libeigenwatch-client).
 *
 * Every command is `int c_NAME(int argc, char **argv)`: argv holds the words after the command
 * name (global options removed) and the return value is the process's exit code (EX_*). */
#ifndef EW_CLI_H
#define EW_CLI_H

#include "ewclient.h"

#include <stdint.h>
#include <stdio.h>

enum { EX_OK = 0, EX_DAEMON = 1, EX_USAGE = 2, EX_UNREACHABLE = 3, EX_INPUT = 4 };

/* Global options (main.c): --address (NULL: the default), --timeout in ms, --json, --run. */
extern const char *g_address; /* one address; with several see g_addrs */
extern int g_timeout;
extern int g_json;
extern const char *g_run;

/* Prints "eigenwatch: <message> (see eigenwatch help)" on stderr; returns EX_USAGE. */
int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Prints the failure of a call (the daemon's code and message, or the transport error) and
 * returns its exit code: EX_DAEMON for EWC_ERPC, else EX_UNREACHABLE. With several daemons the
 * message names the stream's daemon (g_peer). */
int rpc_exit(int rc, ewc_reply_t *r);
/* Connects to g_address with g_timeout and --run's run; on failure prints why, sets *ex and
 * returns NULL. */
ewc_t *open_conn(int *ex);
/* The same for `address` (NULL: the default address). */
ewc_t *open_conn_at(const char *address, int *ex);

/* Strict numbers for options: the whole word must be the number, within [lo, hi] (and finite).
 * On a bad word prints a usage error naming opt and returns EX_USAGE; else 0. */
int parse_u64(const char *opt, const char *word, uint64_t lo, uint64_t hi, uint64_t *out);
int parse_double(const char *opt, const char *word, double lo, double hi, double *out);

/* msgpack → JSON on f (non-finite floats become null). */
void json(FILE *f, const msgpack_object *o);
void json_str(FILE *f, const char *p, size_t n);
/* A value for a table cell: floats with 10 significant digits, strings bare, long lists cut. */
void scalar(FILE *f, const msgpack_object *o);
/* A map as aligned "key  value" lines (nested maps indented). */
void table(const msgpack_object *m, int indent);
/* The reply's result as JSON (--json) or as a table; returns EX_OK. */
int print_result(ewc_reply_t *r);

/* A request's params map being packed. */
typedef struct {
  msgpack_sbuffer sb;
  msgpack_packer pk;
} params_t;
void p_init(params_t *p);
void p_str(params_t *p, const char *s);
/* "run": --run's value, when given (the caller counted it in the map). */
void p_run(params_t *p);
/* A value from the command line: true/false, an integer, a number, or a string. */
void p_value(params_t *p, const char *v);
/* A call naming `stream` (on its daemon) or nothing (on every daemon, merged), in --run's run,
 * its answer printed; returns the exit code. */
int simple_call(const char *method, const char *stream);
/* A string field `key` of map m: *p and its length, or "-" and 1 when absent or not a string
 * (for printing with %.*s). */
int str_of(const msgpack_object *m, const char *key, const char **p);
/* Calls `method` with params (NULL: none) and answers: with --json the reply as it came, else
 * print(result) draws it (a table). `stream`: the stream params name, whose daemon is asked;
 * NULL: every daemon, the answers merged (fan_table). Returns the exit code (rpc_exit's on a
 * refusal). */
int table_call(const char *method, const char *stream, msgpack_sbuffer *params,
               void (*print)(const msgpack_object *result));

/* ---- several daemons (fanout.c) ---- */
/* The daemons: --address, else $EIGENWATCH_ADDRESS, split at commas (ewc_addresses); set by
 * fan_init. g_naddrs < 2: one daemon, g_address (NULL: the default address) as before. */
extern const char **g_addrs;
extern size_t g_naddrs;
/* With several daemons: the one open_stream_conn chose last (NULL: none yet). */
extern const char *g_peer;
/* Splits --address or $EIGENWATCH_ADDRESS into g_addrs (one address: g_address is set to it,
 * trimmed). An empty list ("", ",") is left to ewc_connect to refuse. Call once, after the
 * options are read. Returns 0, or EX_UNREACHABLE after printing "out of memory". */
int fan_init(void);
/* The connection for a request about (run, stream) (run NULL: --run's, else the default run):
 * to the daemon ewc_place gives it among g_addrs; with one address, open_conn. On failure
 * prints why, sets *ex and returns NULL. */
ewc_t *open_stream_conn(const char *run, const char *stream, int *ex);
/* Prints a failed call on stderr — the daemon's code and message, or the transport error — after
 * "ADDRESS: " when there are several daemons and address is not NULL; returns the exit code
 * (EX_DAEMON for EWC_ERPC, else EX_UNREACHABLE). */
int fan_exit(const char *address, int rc, ewc_reply_t *r);
/* Calls `method` with params (borrowed; NULL: none) on each of cs[0, n) (connections to g_addrs
 * in order; n == 1: just ewc_call) and merges the answers into *out, shaped as one daemon's
 * answer: list by (run, stream), runs by run, alerts by (run, stream, rule) with the last N
 * events by time, drop of a run and snapshot summed, ping and metrics the first's, stats an
 * object keyed by address. Always pass *out to ewc_reply_free afterwards. Returns 0, or the
 * failed call's EWC_E* code with *failed its index (n: every daemon refused alike) and, for
 * EWC_ERPC, the refusal in out->code and out->message; EWC_EPROTO when an answer lacks what the
 * merge reads, EWC_EARG for a method without a merge. */
int fan_merged(ewc_t *const *cs, size_t n, const char *method, const msgpack_sbuffer *params,
               ewc_reply_t *out, size_t *failed);
/* table_call on every daemon (g_naddrs ≥ 2): all are connected first, then asked in order; the
 * merged answer printed (--json or print NULL: print_result). Any daemon unreachable or
 * refusing: nothing printed on stdout, the exit code of fan_exit naming it. */
int fan_table(const char *method, const msgpack_sbuffer *params,
              void (*print)(const msgpack_object *result));

/* Commands. */
int c_ping(int argc, char **argv);
int c_list(int argc, char **argv);
int c_runs(int argc, char **argv);
int c_stats(int argc, char **argv);
int c_info(int argc, char **argv);
int c_drop(int argc, char **argv);
int c_reset(int argc, char **argv);
int c_create(int argc, char **argv);
/* create's arguments for help: STREAM and one option per scalar field of create's table. */
const char *create_args(void);
int c_query(int argc, char **argv);
int c_watch(int argc, char **argv);
int c_history(int argc, char **argv);
int c_metrics(int argc, char **argv);
int c_alerts(int argc, char **argv);
int c_ingest(int argc, char **argv);
int c_snapshot(int argc, char **argv);
int c_export(int argc, char **argv);
int c_merge(int argc, char **argv);

#endif
