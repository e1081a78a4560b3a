/* main.c — `eigenwatch`, the command-line client (over libeigenwatch-client): global options, the
 * table of commands, help.
 *
 *   eigenwatch [--address ADDR[,ADDR...]] [--timeout MS] [--json] COMMAND [ARGS]   (eigenwatch help)
 *
 * Several addresses: each stream lives on the daemon placement gives it, and a command about
 * many streams asks them all and merges the answers (fanout.c).
 *
 * Exit codes: 0 success; 1 the daemon answered an error (its code and message on stderr);
 * 2 usage error; 3 cannot reach the daemon (connect, I/O, timeout); 4 bad input file. */
#include "cli.h"
#include "ew_proto.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *g_address;
int g_timeout = 30000;
int g_json;
const char *g_run;

typedef struct {
  const char *name, *args, *help;
  int (*fn)(int argc, char **argv);
  const char *(*args_fn)(void); /* when args come from a table (create), instead of args */
} cmd_t;

/* ---- the table of commands ---- */

static int c_help(int argc, char **argv);

static const cmd_t cmds[] = {
    {"ping", "", "check the daemon answers; prints its version", c_ping},
    {"list", "", "all streams (or --run's) with run, dim, rows and memory", c_list},
    {"runs", "", "the runs with their stream count and first and last completed steps", c_runs},
    {"info", "STREAM", "one stream, with its configuration", c_info},
    {"create", NULL, "create a stream (idempotent for the same configuration)", c_create,
     create_args},
    {"drop", "STREAM", "delete a stream (--run RUN drop: every stream of the run)", c_drop},
    {"reset", "STREAM", "forget a stream's rows, keep its configuration", c_reset},
    {"stats", "", "daemon counters", c_stats},
    {"query", "STREAM METRIC... [--param k=v]... [--center true|false] [--source S] [--fresh] "
              "[--max-lag N]",
     "compute metrics (eigenwatch query s entropy erank --param k=5)", c_query},
    {"watch", "STREAM|GLOB... [METRIC...] [--metric M]... [--stream NAME]... [--interval S] "
              "[--count N] [--stale S] [--width COLUMNS]",
     "live view of a run's streams by step: value, sparkline, value and step ranges, stale "
     "marker, firing alerts (--json: a line per stream and step); waits for the daemon and "
     "the streams, reconnects",
     c_watch},
    {"history", "RUN/STREAM [METRIC...] [--from STEP] [--to STEP] [--max-points N] "
                "[--agg last|mean|min|max] [--csv]",
     "a stream's evaluated points by step (with --run RUN, the word is the stream)", c_history},
    {"metrics", "", "the metric table: kind, cost, sources, parameters", c_metrics},
    {"alerts", "[STREAM] [--events N]",
     "alert rules and their states (firing since which step); --events N: also the last N "
     "alert events",
     c_alerts},
    {"ingest", "STREAM FILE [--batch ROWS] [--dtype f32|f64|f16|bf16]",
     "send rows from a C-order .npy (f32, f64, f16, bf16) or a .csv", c_ingest},
    {"snapshot", "", "write every changed stream's snapshot to the daemon's state dir now",
     c_snapshot},
    {"export", "STREAM FILE", "save a stream's whole state to FILE (for merge elsewhere)",
     c_export},
    {"merge", "STREAM FILE", "fold a state saved by export into STREAM (created if absent)",
     c_merge},
    {"help", "[COMMAND]", "this text, or one command's", c_help},
};
#define NCMDS (sizeof cmds / sizeof cmds[0])

static void cmd_help(const cmd_t *c, FILE *f) {
  fprintf(f, "usage: eigenwatch [global options] %s %s\n  %s\n", c->name,
          c->args_fn ? c->args_fn() : c->args, c->help);
}

static int c_help(int argc, char **argv) {
  if (argc == 1) {
    for (size_t i = 0; i < NCMDS; i++)
      if (!strcmp(cmds[i].name, argv[0])) {
        cmd_help(&cmds[i], stdout);
        return EX_OK;
      }
    return usage_error("no command '%s'", argv[0]);
  }
  printf("usage: eigenwatch [--address ADDR[,ADDR...]] [--timeout MS] [--json] "
         "[--run RUN] COMMAND ...\n"
         "       eigenwatch --version\n"
         "The address defaults to $EIGENWATCH_ADDRESS, else the daemon's default socket (yours,\n"
         "then the system units' /run/eigenwatch/eigenwatchd.sock when you may use it), else\n"
         "tcp:127.0.0.1:7700; an address is unix:PATH or tcp:HOST:PORT. --json prints the daemon's\n"
         "answer as JSON. --run names the training run of every stream a command names (default:\n"
         "the daemon's run \"default\").\n"
         "Several daemons (--address a,b,c, or $EIGENWATCH_ADDRESS with commas): a command naming\n"
         "a stream goes to the daemon that holds it (rendezvous placement, as the Python client's);\n"
         "list, runs, alerts, watch, ping, snapshot, metrics and drop --run ask every daemon and\n"
         "merge the answers (stats: each under its address). One daemon unreachable fails the\n"
         "command (exit 3, naming it).\n\n"
         "commands:\n");
  for (size_t i = 0; i < NCMDS; i++)
    printf("  %-8s %s\n", cmds[i].name, cmds[i].help);
  printf("\n'eigenwatch COMMAND --help' shows a command's arguments.\n"
         "exit codes: 0 ok, 1 the daemon answered an error, 2 usage, 3 daemon unreachable,\n"
         "4 bad input file\n");
  return EX_OK;
}

int main(int argc, char **argv) {
  int i = 1;
  for (; i < argc && !strncmp(argv[i], "--", 2); i++) {
    uint64_t ms;
    if (!strcmp(argv[i], "--address") && i + 1 < argc) {
      g_address = argv[++i];
    } else if (!strcmp(argv[i], "--run") && i + 1 < argc) {
      g_run = argv[++i];
    } else if (!strcmp(argv[i], "--timeout") && i + 1 < argc) {
      if (parse_u64("--timeout", argv[++i], 0, INT32_MAX, &ms))
        return EX_USAGE;
      g_timeout = (int)ms;
    } else if (!strcmp(argv[i], "--json")) {
      g_json = 1;
    } else if (!strcmp(argv[i], "--help")) {
      return c_help(0, NULL);
    } else if (!strcmp(argv[i], "--version")) { /* this program's; `ping` gives the daemon's */
      printf("eigenwatch %s (protocol %d)\n", EW_CLI_VERSION, EW_PROTOCOL_VERSION);
      return EX_OK;
    } else {
      return usage_error("unknown option '%s'", argv[i]);
    }
  }
  if (i >= argc)
    return c_help(0, NULL), EX_USAGE;
  int ex = fan_init();
  if (ex)
    return ex;
  for (size_t k = 0; k < NCMDS; k++) {
    if (strcmp(cmds[k].name, argv[i]) != 0)
      continue;
    int sub = argc - i - 1;
    char **sv = argv + i + 1;
    for (int j = 0; j < sub; j++) {
      if (!strcmp(sv[j], "--help") || !strcmp(sv[j], "-h")) {
        cmd_help(&cmds[k], stdout);
        return EX_OK;
      }
      if (!strcmp(sv[j], "--json")) { /* also accepted after the command */
        g_json = 1;
        memmove(sv + j, sv + j + 1, (size_t)(sub - j - 1) * sizeof *sv);
        sub--;
        j--;
      }
    }
    return cmds[k].fn(sub, sv);
  }
  return usage_error("no command '%s'", argv[i]);
}
