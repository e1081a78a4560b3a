/* history_read.c — a `history` read, run on the history's I/O thread: each requested series'
 * points in [from, to], in step order, merged into equal step buckets when there are more than
 * max_points of them. A bucket covers w = floor((last − first) / max_points) + 1 consecutive
 * steps from the first point's step (so at most max_points buckets); it reports its last point's
 * step, time, rows, ranks, lag_s and skipped (and, for an estimated metric, its error bar and
 * bracket), whether any of its points was partial, and its values' last, mean, min or max (list
 * values: always the last).
 * The answer stops at EWD_HISTORY_REPLY_MAX points in all (TOO_LARGE).
 *
 * Bytes: before a series' values are read, its answer is estimated from above from the first
 * pass (bucket count, the longest list): encoded as msgpack (9 bytes a float) or JSON (25), and
 * the memory it takes while the answer is built (the values read, the ewp tree, the encoding).
 * An answer encoded over max_answer_bytes is TOO_LARGE; one whose memory would take answers in
 * flight (unsent output of every connection, RPC and HTTP, plus answers being built) past
 * answer_budget is refused with LIMIT. The memory stays reserved until the read is freed, after
 * its reply went to the connection's output, which counts it from then on. Before, a list metric
 * at d = 16384 made one answer of 412 MB and eight unread ones gigabytes. */
#include "store/history.h"

#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void fail(ewd_hread_t *rd, int code, const char *fmt, const char *arg) {
  if (rd->rc)
    return;
  rd->rc = code;
  snprintf(rd->message, sizeof rd->message, fmt, arg);
}

static void series_free(ewd_hseries_t *s) {
  for (size_t i = 0; s->lists && i < s->n; i++)
    free(s->lists[i]);
  free(s->lists);
  free(s->lens);
  free(s->step);
  free(s->time);
  free(s->value);
  free(s->partial);
  free(s->rows);
  free(s->ranks);
  free(s->lag);
  free(s->skipped);
  free(s->est);
  free(s->err);
  free(s->br);
}

void ewd_hread_free(ewd_hread_t *rd) {
  if (!rd)
    return;
  if (rd->reserved)
    atomic_fetch_sub_explicit(&rd->srv->answers_building, rd->reserved,
                              memory_order_relaxed);
  for (size_t i = 0; i < rd->nseries; i++)
    series_free(&rd->series[i]);
  free(rd->series);
  free(rd->streams);
  free(rd->metrics);
  free(rd->hold);
  free(rd);
}

#define MB(x) ((double)(x) / 1048576.0)

/* Estimates a series of nb points (lists of at most maxlen values when vec) and reserves the
 * memory its answer takes. Returns 0, or -1 after fail() (TOO_LARGE, LIMIT). */
static int reserve(ewd_hread_t *rd, size_t nb, bool vec, size_t maxlen, int est_fields) {
  /* encoded, from above: 8 fields a point, plus 1 for an error bar and 2 for a bracket
   * (msgpack: at most 9 bytes each; JSON: 25 with the comma, 17 significant digits and an
   * exponent), the keys and names of the series */
  double per_field = rd->json ? 25 : 9;
  double enc = 700 + (double)nb * (8 + est_fields) * per_field +
               (vec ? (double)nb * maxlen * per_field : 0);
  /* memory while it is built: the columns read, each list's values, the ewp tree
   * (cmd/history.c: 6 values a point, 8 with estimates), and the encoding */
  double mem = (double)nb * (8 * sizeof(uint64_t) + 6 * sizeof(ewp_value_t)) +
               (est_fields ? (double)nb * (1 + 3 * sizeof(double) + 2 * sizeof(ewp_value_t))
                           : 0) +
               (vec ? (double)nb * (maxlen * sizeof(double) + 48) : 0) + enc;
  if ((double)rd->est + enc > (double)rd->max_bytes) {
    if (!rd->rc) {
      rd->rc = EW_ETOOLARGE;
      snprintf(rd->message, sizeof rd->message,
               "the answer would take about %.1f MB as %s, over max_answer_bytes (%.1f MB): ask "
               "for fewer series, a shorter step range or a smaller max_points",
               MB((double)rd->est + enc), rd->json ? "JSON" : "msgpack", MB(rd->max_bytes));
    }
    return -1;
  }
  size_t held = atomic_load_explicit(&rd->srv->out_held, memory_order_relaxed) +
                atomic_load_explicit(&rd->srv->answers_building, memory_order_relaxed);
  if ((double)held + mem > (double)rd->budget) {
    if (!rd->rc) {
      rd->rc = EW_ELIMIT;
      snprintf(rd->message, sizeof rd->message,
               "answers in flight hold %.1f MB of answer_budget (%.1f MB) and this one needs "
               "about %.1f MB more: retry once clients have read their answers, or ask for less",
               MB(held), MB(rd->budget), MB(mem));
    }
    return -1;
  }
  atomic_fetch_add_explicit(&rd->srv->answers_building, (size_t)mem, memory_order_relaxed);
  rd->reserved += (size_t)mem;
  rd->est += (size_t)enc;
  return 0;
}

/* The points of series `id` in range into s. Returns 0, or -1 after fail(). `budget` is what the
 * answer may still hold. */
static int read_series(sqlite3 *db, sqlite3_stmt *q, ewd_hread_t *rd, sqlite3_int64 id,
                       ewd_hseries_t *s, size_t *budget) {
  /* first pass: how many, and the step range */
  size_t cnt = 0, maxlen = 0;
  uint64_t first = 0, last = 0;
  bool vec = false, has_err = false, has_br = false;
  sqlite3_bind_int64(q, 1, id);
  sqlite3_bind_int64(q, 2, (sqlite3_int64)rd->from);
  sqlite3_bind_int64(q, 3, (sqlite3_int64)rd->to);
  int rc;
  while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
    uint64_t step = (uint64_t)sqlite3_column_int64(q, 0);
    if (cnt++ == 0)
      first = step;
    last = step;
    if (sqlite3_column_type(q, 3) == SQLITE_BLOB) {
      size_t len = (size_t)sqlite3_column_bytes(q, 3) / sizeof(double);
      vec = true;
      maxlen = len > maxlen ? len : maxlen;
    }
    has_err = has_err || sqlite3_column_type(q, 9) != SQLITE_NULL;
    has_br = has_br || sqlite3_column_type(q, 10) != SQLITE_NULL;
  }
  sqlite3_reset(q);
  if (rc != SQLITE_DONE) {
    sqlite3_clear_bindings(q);
    fail(rd, EW_EIO, "reading the history failed: %s", sqlite3_errmsg(db));
    return -1;
  }
  uint64_t w = 0; /* 0: one point per entry (the range holds at most max_points) */
  size_t nb = cnt;
  if (cnt > rd->max_points) {
    uint64_t span = last - first; /* + 1, without overflowing */
    w = span / rd->max_points + 1;
    nb = (size_t)(span / w) + 1;
  }
  if (nb > *budget) {
    sqlite3_clear_bindings(q);
    fail(rd, EW_ETOOLARGE, "%s", "the answer would hold more than 500000 points: ask for fewer "
         "series, a shorter step range or a smaller max_points");
    return -1;
  }
  *budget -= nb;
  if (reserve(rd, nb, vec, maxlen, (has_err ? 1 : 0) + (has_br ? 2 : 0)) != 0) {
    sqlite3_clear_bindings(q);
    return -1;
  }
  s->vec = vec;
  s->step = calloc(nb ? nb : 1, sizeof *s->step);
  s->time = calloc(nb ? nb : 1, sizeof *s->time);
  s->partial = calloc(nb ? nb : 1, sizeof *s->partial);
  s->value = calloc(nb ? nb : 1, sizeof *s->value);
  s->rows = calloc(nb ? nb : 1, sizeof *s->rows);
  s->ranks = calloc(nb ? nb : 1, sizeof *s->ranks);
  s->lag = calloc(nb ? nb : 1, sizeof *s->lag);
  s->skipped = calloc(nb ? nb : 1, sizeof *s->skipped);
  if (vec) {
    s->lists = calloc(nb ? nb : 1, sizeof *s->lists);
    s->lens = calloc(nb ? nb : 1, sizeof *s->lens);
  }
  s->has_err = has_err, s->has_br = has_br;
  if (has_err || has_br) {
    s->est = calloc(nb ? nb : 1, sizeof *s->est);
    s->err = calloc(nb ? nb : 1, sizeof *s->err);
    s->br = calloc(nb ? nb : 1, sizeof *s->br);
  }
  if (!s->step || !s->time || !s->partial || !s->value || !s->rows || !s->ranks || !s->lag ||
      !s->skipped || (vec && (!s->lists || !s->lens)) ||
      ((has_err || has_br) && (!s->est || !s->err || !s->br))) {
    sqlite3_clear_bindings(q);
    fail(rd, EW_ENOMEM, "%s", "out of memory reading the history");
    return -1;
  }
  /* second pass: fill the buckets */
  size_t b = SIZE_MAX, inb = 0, row = 0;
  while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
    uint64_t step = (uint64_t)sqlite3_column_int64(q, 0);
    size_t k = w ? (size_t)((step - first) / w) : row;
    row++;
    if (k >= nb) /* a point written between the passes */
      break;
    if (k != b) {
      if (b != SIZE_MAX && rd->agg == EWD_AGG_MEAN && !vec)
        s->value[b] /= (double)inb;
      b = k, inb = 0;
      s->n = k + 1;
    }
    double v = sqlite3_column_type(q, 2) == SQLITE_NULL ? NAN : sqlite3_column_double(q, 2);
    s->step[b] = step;
    s->time[b] = sqlite3_column_double(q, 1);
    s->partial[b] = s->partial[b] || sqlite3_column_int(q, 4) != 0;
    s->rows[b] = (uint64_t)sqlite3_column_int64(q, 5);
    s->ranks[b] = (uint64_t)sqlite3_column_int64(q, 6);
    s->lag[b] = sqlite3_column_double(q, 7);
    s->skipped[b] = (uint64_t)sqlite3_column_int64(q, 8);
    if (s->est) { /* the last point's, like rows and ranks */
      s->est[b] = 0;
      if (sqlite3_column_type(q, 9) != SQLITE_NULL)
        s->est[b] |= 1, s->err[b] = sqlite3_column_double(q, 9);
      if (sqlite3_column_type(q, 10) != SQLITE_NULL)
        s->est[b] |= 2, s->br[b][0] = sqlite3_column_double(q, 10),
            s->br[b][1] = sqlite3_column_double(q, 11);
    }
    if (vec) {
      free(s->lists[b]);
      int bytes = sqlite3_column_bytes(q, 3);
      size_t len = bytes > 0 ? (size_t)bytes / sizeof(double) : 0;
      s->lists[b] = malloc(len ? len * sizeof(double) : 1);
      s->lens[b] = s->lists[b] ? len : 0;
      if (s->lists[b] && len)
        memcpy(s->lists[b], sqlite3_column_blob(q, 3), len * sizeof(double));
    } else if (inb == 0 || rd->agg == EWD_AGG_LAST) {
      s->value[b] = v;
    } else if (rd->agg == EWD_AGG_MEAN) {
      s->value[b] += v;
    } else if (rd->agg == EWD_AGG_MIN) {
      s->value[b] = fmin(s->value[b], v);
    } else {
      s->value[b] = fmax(s->value[b], v);
    }
    inb++;
  }
  if (b != SIZE_MAX && rd->agg == EWD_AGG_MEAN && !vec)
    s->value[b] /= (double)inb;
  sqlite3_reset(q);
  sqlite3_clear_bindings(q);
  /* buckets without points (gaps in the steps) are left out */
  size_t o = 0;
  for (size_t i = 0; i < s->n; i++) {
    if (s->step[i] == 0 && s->time[i] == 0)
      continue;
    s->step[o] = s->step[i], s->time[o] = s->time[i], s->partial[o] = s->partial[i];
    s->value[o] = s->value[i];
    s->rows[o] = s->rows[i], s->ranks[o] = s->ranks[i], s->lag[o] = s->lag[i];
    s->skipped[o] = s->skipped[i];
    if (s->est) {
      s->est[o] = s->est[i], s->err[o] = s->err[i];
      s->br[o][0] = s->br[i][0], s->br[o][1] = s->br[i][1];
    }
    if (vec)
      s->lists[o] = s->lists[i], s->lens[o] = s->lens[i];
    o++;
  }
  for (size_t i = o; vec && i < s->n; i++)
    s->lists[i] = NULL;
  s->n = o;
  return 0;
}

void ewd_hread_run(sqlite3 *db, sqlite3_stmt *series, sqlite3_stmt *points, ewd_hread_t *rd) {
  size_t cap = 0, budget = EWD_HISTORY_REPLY_MAX;
  for (size_t si = 0; si < rd->nstreams && !rd->rc; si++) {
    sqlite3_bind_text(series, 1, rd->run, -1, SQLITE_STATIC);
    sqlite3_bind_text(series, 2, rd->streams[si], -1, SQLITE_STATIC);
    int rc;
    while (!rd->rc && (rc = sqlite3_step(series)) == SQLITE_ROW) {
      sqlite3_int64 id = sqlite3_column_int64(series, 0);
      const char *metric = (const char *)sqlite3_column_text(series, 1);
      bool wanted = rd->nmetrics == 0;
      for (size_t m = 0; !wanted && m < rd->nmetrics; m++)
        wanted = metric && strcmp(metric, rd->metrics[m]) == 0;
      if (!wanted || !metric)
        continue;
      if (rd->nseries == cap) {
        size_t nc = cap ? 2 * cap : 8;
        ewd_hseries_t *v = realloc(rd->series, nc * sizeof *v);
        if (!v) {
          fail(rd, EW_ENOMEM, "%s", "out of memory reading the history");
          break;
        }
        rd->series = v, cap = nc;
      }
      ewd_hseries_t *s = &rd->series[rd->nseries++];
      memset(s, 0, sizeof *s);
      s->stream = rd->streams[si];
      snprintf(s->metric, sizeof s->metric, "%s", metric);
      read_series(db, points, rd, id, s, &budget);
    }
    if (!rd->rc && rc != SQLITE_DONE)
      fail(rd, EW_EIO, "reading the history failed: %s", sqlite3_errmsg(db));
    sqlite3_reset(series);
    sqlite3_clear_bindings(series);
  }
  /* series in the order metrics were asked for, within each stream (SQLite gave id order) */
  for (size_t i = 1; rd->nmetrics > 1 && i < rd->nseries; i++)
    for (size_t j = i; j > 0; j--) {
      ewd_hseries_t *a = &rd->series[j - 1], *c = &rd->series[j];
      size_t ra = 0, rc2 = 0;
      for (size_t m = 0; m < rd->nmetrics; m++) {
        if (strcmp(rd->metrics[m], a->metric) == 0)
          ra = m;
        if (strcmp(rd->metrics[m], c->metric) == 0)
          rc2 = m;
      }
      if (a->stream != c->stream || ra <= rc2)
        break;
      ewd_hseries_t t = *a;
      *a = *c, *c = t;
    }
}
