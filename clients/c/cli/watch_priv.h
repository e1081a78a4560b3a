/* watch_priv.h — what watch.c (the arguments and the loop), watch_poll.c (one cycle against the
 * daemon) and watch_draw.c (the terminal view, --json's lines) share; nothing else sees it. */
#ifndef EW_CLI_WATCH_PRIV_H
#define EW_CLI_WATCH_PRIV_H

#include "cli.h"

#define WMAX 200      /* widest sparkline */
#define MAXPAT 64     /* stream words */
#define MAXMET 16     /* metrics */
#define MAXSTREAMS 64 /* streams shown */

typedef struct {
  uint64_t x; /* step (or rows, for a polled or step-less series) */
  double v, t;
} pt_t;

typedef struct {
  int polled;   /* not evaluated by the stream: query each interval, x = rows */
  int rows_axis; /* x counts rows (step-less schedule or polled) */
  int has_last;
  uint64_t last;
  pt_t pts[WMAX];
  int n;
  char why[128]; /* the daemon's refusal of the last poll, if any */
} series_t;

typedef struct {
  char name[256];
  size_t owner; /* its daemon: the index in watch_t.conns (ewc_place) */
  int live;     /* in the latest list */
  int ready;    /* info read on this connection */
  uint64_t step, rows, ranks; /* of the newest point */
  int step_axis, partial, stale_said;
  double lag, last_t; /* of the newest point; last_t = Unix seconds (0: none yet) */
  series_t s[MAXMET];
} wstream_t;

typedef struct {
  const char *words[MAXPAT], *metrics[MAXMET];
  int nwords, nmetrics, classified, width;
  double interval, stale;
  uint64_t count;
  const char *run;
  ewc_t **conns;  /* one per daemon (g_addrs; one: g_address), NULL until connected */
  size_t nconns;
  size_t failed;  /* after a failed cycle: the index of the daemon whose call failed */
  wstream_t *st;
  int nst, more;
  char alerts[4096]; /* firing alerts of matched streams, one per line */
  char status[512];  /* why nothing is shown (waiting, unreachable) */
} watch_t;

/* The time now, in Unix seconds (watch.c). */
double watch_now(void);

/* One cycle against the daemons (w->conns, all connected): the run's streams listed on every
 * daemon and matched, each live one's schedule read once, its new points read (and printed with
 * --json) from its daemon, then the firing alerts of every daemon. Returns 0, or the failed
 * call's code (err holds an RPC error) with w->failed its daemon (watch_poll.c). */
int watch_cycle(watch_t *w, ewc_reply_t *err);

/* --json: the opening of a line about s, `{"run": ..., "stream": ...` (watch_draw.c). */
void watch_json_head(const watch_t *w, const wstream_t *s);
/* The terminal view: every shown stream, its series and the firing alerts; tty clears the screen
 * first (watch_draw.c). */
void watch_draw(watch_t *w, int tty);
/* --json: a line when a stream turns stale (watch_draw.c). */
void watch_json_stale(watch_t *w);

#endif /* EW_CLI_WATCH_PRIV_H */
