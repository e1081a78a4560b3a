/* log.c — logfmt lines on stderr: one event per line, "ts=… level=… msg=…" then key=value
 * pairs. Levels are the ones journald understands by name. Peer bytes reach a log line only
 * escaped (ewp_escape), so a line stays one line. Also the daemon's two clocks. */
#include "core/ewd.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

ewd_log_level_t ewd_log_level = EWD_LOG_INFO;

static const char *names[] = {"error", "warn", "info", "debug"};

int ewd_log_parse_level(const char *s, ewd_log_level_t *out) {
  for (int i = 0; i < 4; i++)
    if (strcmp(s, names[i]) == 0) {
      *out = (ewd_log_level_t)i;
      return 0;
    }
  return -1;
}

const char *ewd_log_level_name(ewd_log_level_t l) {
  return (unsigned)l < 4 ? names[l] : "?";
}

void ewd_log(ewd_log_level_t lvl, const char *msg, const char *fmt, ...) {
  if (lvl > ewd_log_level)
    return;
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  struct tm tm;
  gmtime_r(&ts.tv_sec, &tm);
  char line[1024];
  int n = snprintf(line, sizeof line, "ts=%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ level=%s msg=\"%s\"",
                   tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                   tm.tm_sec, ts.tv_nsec / 1000000, names[lvl], msg);
  if (fmt && *fmt && n > 0 && (size_t)n < sizeof line - 2) {
    line[n++] = ' ';
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line + n, sizeof line - (size_t)n, fmt, ap);
    va_end(ap);
  }
  for (char *p = line; *p; p++) /* one event, one line */
    if (*p == '\n' || *p == '\r')
      *p = ' ';
  fprintf(stderr, "%s\n", line);
}

double ewd_now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

double ewd_wall_now(void) {
  struct timespec t;
  clock_gettime(CLOCK_REALTIME, &t);
  return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}
