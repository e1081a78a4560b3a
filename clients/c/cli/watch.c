/* watch.c — `eigenwatch watch`: the live view of one run's streams by step.
 *
 * Every --interval seconds it lists the run's streams, matches them against the words given
 * (exact names or `*` globs), and reads each matched stream's new evaluated points from the
 * daemon's history (from the step after the last one it has, so nothing is missed or shown
 * twice, across reconnects too). A metric the stream does not evaluate is polled with `query`
 * and drawn against the stream's row count instead. Each (stream, metric) line shows the latest
 * value, a sparkline placed by step, its value range and its step range; a stream without a new
 * point for --stale seconds is marked STALE; firing alerts are listed. With --json it prints one
 * line per (stream, step) instead. It waits for the daemon and for the streams to appear, and
 * reconnects when the daemon goes away.
 *
 * This file reads the arguments and runs the loop; watch_poll.c is one cycle against the daemon,
 * watch_draw.c what is shown of it. */
#include "watch_priv.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

double watch_now(void) {
  struct timespec t;
  clock_gettime(CLOCK_REALTIME, &t);
  return (double)t.tv_sec + t.tv_nsec * 1e-9;
}

static void sleep_s(double s) {
  struct timespec ts = {(time_t)s, (long)((s - floor(s)) * 1e9)};
  nanosleep(&ts, NULL);
}

/* The metric words: every positional word that names a metric in the daemon's table is a metric,
 * the others are stream names or globs. Returns 0, a transport error (EWC_E*, < 0: try again), or
 * an exit code (> 0) after printing why. */
static int classify(watch_t *w, ewc_t *c, char **pos, int npos) {
  ewc_reply_t r;
  int rc = ewc_call(c, "metrics", NULL, &r);
  if (rc) {
    int ex = rc == EWC_ERPC ? rpc_exit(rc, &r) : rc;
    ewc_reply_free(&r);
    return ex;
  }
  const msgpack_object *ms = ewc_get(r.result, "metrics");
  int bad = -1;
  for (int i = 0; i < npos + w->nmetrics && bad < 0; i++) {
    const char *word = i < npos ? pos[i] : w->metrics[i - npos];
    int found = 0;
    for (uint32_t j = 0; ms && j < ms->via.array.size && !found; j++) {
      const msgpack_object *n = ewc_get(&ms->via.array.ptr[j], "name");
      found = n && n->via.str.size == strlen(word) && !memcmp(n->via.str.ptr, word, strlen(word));
    }
    if (i >= npos && !found)
      bad = i - npos;
    else if (i < npos && found && w->nmetrics < MAXMET)
      w->metrics[w->nmetrics++] = word;
    else if (i < npos && !found && w->nwords < MAXPAT)
      w->words[w->nwords++] = word;
  }
  ewc_reply_free(&r);
  if (bad >= 0) {
    fprintf(stderr, "eigenwatch: no metric named '%s' (eigenwatch metrics lists them)\n",
            w->metrics[bad]);
    return EX_DAEMON;
  }
  if (!w->nwords)
    return usage_error("watch needs a STREAM or a glob (a word naming a metric is a metric; "
                       "--stream NAME for a stream named like one)");
  if (!w->nmetrics) {
    static const char *dflt[] = {"entropy", "erank", "participation_ratio", "anisotropy"};
    for (int i = 0; i < 4; i++)
      w->metrics[w->nmetrics++] = dflt[i];
  }
  w->classified = 1;
  return 0;
}


int c_watch(int argc, char **argv) {
  watch_t w = {.interval = 1.0, .width = 0, .run = g_run ? g_run : "default"};
  char *pos[MAXPAT];
  int npos = 0, has_count = 0;
  uint64_t width = 0;
  for (int i = 0; i < argc; i++) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (!strcmp(a, "--interval") && v) {
      if (parse_double("--interval", argv[++i], 0.01, 86400, &w.interval))
        return EX_USAGE;
    } else if (!strcmp(a, "--count") && v) {
      if (parse_u64("--count", argv[++i], 1, UINT32_MAX, &w.count))
        return EX_USAGE;
      has_count = 1;
    } else if (!strcmp(a, "--stale") && v) {
      if (parse_double("--stale", argv[++i], 0.01, 1e9, &w.stale))
        return EX_USAGE;
    } else if (!strcmp(a, "--width") && v) {
      if (parse_u64("--width", argv[++i], 8, WMAX, &width))
        return EX_USAGE;
    } else if (!strcmp(a, "--metric") && v) {
      if (w.nmetrics == MAXMET)
        return usage_error("watch takes at most %d metrics", MAXMET);
      w.metrics[w.nmetrics++] = argv[++i];
    } else if (!strcmp(a, "--stream") && v) {
      if (w.nwords == MAXPAT)
        return usage_error("watch takes at most %d streams or globs", MAXPAT);
      w.words[w.nwords++] = argv[++i];
    } else if (!strncmp(a, "--", 2)) {
      return usage_error("watch: unknown or incomplete option '%s'", a);
    } else if (npos < MAXPAT) {
      pos[npos++] = argv[i];
    } else {
      return usage_error("watch takes at most %d words", MAXPAT);
    }
  }
  if (!npos && !w.nwords)
    return usage_error("watch needs a STREAM or a glob");
  int tty = isatty(1);
  struct winsize ws;
  if (!width && tty && ioctl(1, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0)
    width = ws.ws_col > 90 ? ws.ws_col - 80 : 10;
  w.width = (int)(width ? width : 40);
  if (!(w.st = calloc(MAXSTREAMS, sizeof *w.st)))
    return fprintf(stderr, "eigenwatch: out of memory\n"), EX_UNREACHABLE;
  /* one connection per daemon; with one, to g_address as given (NULL: the default address,
   * looked for again at each connect) */
  w.nconns = g_naddrs > 1 ? g_naddrs : 1;
  if (!(w.conns = calloc(w.nconns, sizeof *w.conns))) {
    free(w.st);
    return fprintf(stderr, "eigenwatch: out of memory\n"), EX_UNREACHABLE;
  }
  int ex = EX_OK, ok = 0;
  char addr[4200];
  const char *shown = g_address ? g_address : ewc_default_address(addr, sizeof addr);
  for (uint64_t it = 0; !has_count || it < w.count; it++) {
    char err[512];
    int rc = 0;
    w.failed = 0;
    for (size_t k = 0; k < w.nconns && !rc; k++)
      if (!w.conns[k] && (rc = ewc_connect(w.nconns > 1 ? g_addrs[k] : g_address, g_timeout,
                                           &w.conns[k], err, sizeof err)) != 0)
        w.failed = k;
    if (rc == EWC_EADDR) {
      fprintf(stderr, "eigenwatch: %s\n", err);
      ex = EX_USAGE;
      break;
    }
    ewc_reply_t r;
    memset(&r, 0, sizeof r);
    if (!rc && !w.classified) {
      rc = classify(&w, w.conns[0], pos, npos);
      if (rc > 0) { /* a usage or metric error: no point in waiting */
        ex = rc;
        break;
      }
    }
    if (!rc)
      rc = watch_cycle(&w, &r);
    if (rc == EWC_ERPC) { /* the daemon refused the watch itself (a bad run name, ...) */
      ex = fan_exit(w.failed < g_naddrs ? g_addrs[w.failed] : NULL, rc, &r);
      ewc_reply_free(&r);
      break;
    }
    ewc_reply_free(&r);
    ok = rc == 0;
    if (rc) {
      snprintf(w.status, sizeof w.status, "waiting for the daemon at %.200s (%.200s); retrying",
               w.nconns > 1 ? g_addrs[w.failed] : shown,
               rc == EWC_ECONNECT ? err : ewc_strerror(rc));
      for (size_t k = 0; k < w.nconns; k++) {
        ewc_close(w.conns[k]);
        w.conns[k] = NULL;
      }
      for (int i = 0; i < w.nst; i++)
        w.st[i].ready = 0; /* the daemon may have restarted: read each schedule again */
    } else {
      int live = 0;
      for (int i = 0; i < w.nst; i++)
        live += w.st[i].live;
      if (!live)
        snprintf(w.status, sizeof w.status, "waiting for a stream matching %s%s in run %s",
                 w.words[0], w.nwords > 1 ? " (or the others)" : "", w.run);
      else
        w.status[0] = 0;
    }
    if (g_json) {
      if (w.status[0])
        fprintf(stderr, "eigenwatch: %s\n", w.status);
      watch_json_stale(&w);
    } else {
      watch_draw(&w, tty);
    }
    if (!has_count || it + 1 < w.count)
      sleep_s(w.interval);
  }
  for (size_t k = 0; k < w.nconns; k++)
    ewc_close(w.conns[k]);
  free(w.conns);
  free(w.st);
  if (ex == EX_OK && !ok)
    ex = EX_UNREACHABLE;
  return ex;
}
