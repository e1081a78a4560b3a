/* metrics/query.c — a query's way through the table: its row by name (table.c), its parameters,
 * source and centring resolved against the row, the view opened, and the row's function run on
 * it — or, on a sketched view, refused, run as is, or bracketed between the two extreme spectra
 * the sketch's certificate allows. */
#include "metrics_priv.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

EW_EXPORT void ew_result_clear(ew_result_t *r) {
  if (!r)
    return;
  free(r->list);
  free(r->vectors);
  free(r->groups);
  memset(r, 0, sizeof *r);
}

/* Validates and resolves the query's parameters (ew_param_check, one per given value), source
 * and centring into cx. */
static int resolve(mctx_t *cx, const metric_row_t *row, const ew_query_t *q) {
  const ew_metric_info_t *info = &row->info;
  for (size_t i = 0; i < info->nparams; i++) {
    cx->p[i] = info->params[i].default_value;
    cx->s[i] = info->params[i].type == EW_PARAM_STRING ? info->params[i].default_str : NULL;
  }
  for (size_t k = 0; k < q->nparams; k++) {
    const ew_param_t *p = &q->params[k];
    const ew_param_info_t *pi = p->key ? ew_metric_param(info, p->key, strlen(p->key)) : NULL;
    if (!pi) {
      if (info->nparams == 0)
        return ew__m_fail(cx, EW_EBADPARAM, "metric '%s' takes no parameters (got '%s')", info->name,
                    p->key ? p->key : "(null)");
      return ew__m_fail(cx, EW_EBADPARAM, "metric '%s' has no parameter '%s' (it takes: %s%s%s)",
                  info->name, p->key ? p->key : "(null)", info->params[0].name,
                  info->nparams > 1 ? ", " : "", info->nparams > 1 ? info->params[1].name : "");
    }
    size_t i = (size_t)(pi - info->params);
    char msg[sizeof cx->out->message];
    if (ew_param_check(info, pi, p, &cx->p[i], &cx->s[i], msg, sizeof msg))
      return ew__m_fail(cx, EW_EBADPARAM, "%s", msg);
  }
  ew_source_t src = q->source == EW_SOURCE_DEFAULT ? info->def_source : q->source;
  if (src < 0 || src >= EW_SOURCE_COUNT || !(info->sources & EW_SOURCE_BIT(src))) {
    char names[64];
    return ew__m_fail(cx, EW_EBADPARAM, "metric '%s' is computed from source %s, not '%s'",
                      info->name, ew_metric_sources_str(info, names, sizeof names),
                      ew_source_name(src));
  }
  int center = q->center < 0 ? info->def_center : (q->center ? 1 : 0);
  if (src == EW_SOURCE_WINDOW_CN) {
    if (q->center > 0)
      return ew__m_fail(cx, EW_EBADPARAM,
                  "source window_cn is already centred before normalisation; center does not "
                  "apply (omit it or pass false)");
    center = 0;
  }
  if ((unsigned)q->method > EW_METHOD_EXACT)
    return ew__m_fail(cx, EW_EBADPARAM, "method must be auto, slq or exact");
  cx->method = q->method;
  cx->src = src;
  cx->center = center;
  return 0;
}

static int query_view(ew_stream_t *s, const ew_query_t *q, mctx_t *cx, const metric_row_t *row,
                      ew__ws_t *ws);
static int query_tokens(ew_stream_t *s, mctx_t *cx, const metric_row_t *row, ew__ws_t *ws);

/* A metric of a sketched view (source all of a stream with d > exact_max_dim): refused, run as is
 * (exact inputs, certified intervals), or bracketed — its function evaluated on the two extreme
 * spectra the certificate allows, the value being the bracket's midpoint and the error its
 * half-width. */
static int sketched(ew_stream_t *s, mctx_t *cx, const metric_row_t *row) {
  const ew_config_t *c = ew_stream_config(s);
  if (row->info.sketch == EW_SK_REFUSED)
    return ew__m_fail(cx, EW_EBADPARAM,
                "'%s' needs every eigenvalue exactly, and this stream keeps a sketch (d = %zu > "
                "exact_max_dim %zu): ask a bracketed metric (entropy, erank, ...) or create it "
                "with exact_max_dim >= %zu",
                row->info.name, c->dim, c->exact_max_dim, c->dim);
  if (row->info.sketch != EW_SK_BRACKET)
    return row->fn(cx);
  if (cx->method != EW_METHOD_AUTO)
    return ew__m_fail(cx, EW_EBADPARAM,
                "method '%s' needs the exact matrix, and this stream keeps a sketch (d = %zu > "
                "exact_max_dim %zu) whose spectrum-wide metrics are certified brackets: omit "
                "method",
                ew_method_name(cx->method), c->dim, c->exact_max_dim);
  const double *ext[3];
  int rc = ew__view_sketch_bounds(&cx->v, &ext[0], &ext[1], &ext[2]);
  if (rc)
    return ew__m_view_fail(cx, rc);
  double val[3];
  for (int i = 0; i < 3; i++) {
    cx->eig = ext[i];
    cx->method = EW_METHOD_EXACT;
    cx->out->has_error = 0;
    if ((rc = row->fn(cx)) != 0)
      return rc;
    val[i] = cx->out->scalar;
  }
  cx->eig = NULL;
  /* the most spread spectrum gives one end; the least spread one and the exact diagonal both
   * bound the other end (each is majorised by the true spectrum): the nearer one is tighter */
  double far = fabs(val[1] - val[0]) <= fabs(val[2] - val[0]) ? val[1] : val[2];
  double lo = fmin(val[0], far), hi = fmax(val[0], far);
  cx->out->scalar = 0.5 * (lo + hi);
  cx->out->has_error = 1;
  cx->out->error = 0.5 * (hi - lo);
  cx->out->has_bracket = 1;
  cx->out->lo = lo;
  cx->out->hi = hi;
  cx->out->clamped = 0;
  return 0;
}

_Static_assert(EW_METRIC_KIND_MATRIX == 1u << EW_STREAM_MATRIX &&
                   EW_METRIC_KIND_TOKENS == 1u << EW_STREAM_TOKENS &&
                   EW_METRIC_KIND_STATS == 1u << EW_STREAM_STATS &&
                   EW_METRIC_KIND_PAIRED == 1u << EW_STREAM_PAIRED,
               "a metric's kinds bit is its stream kind's");
#define EW__QNAME(value, name) name,

EW_EXPORT int ew_stream_query(ew_stream_t *s, const ew_query_t *q, ew_result_t *out) {
  memset(out, 0, sizeof *out);
  mctx_t cx = {.d = ew_stream_config(s)->dim, .out = out};
  const metric_row_t *row = ew__m_find_row(q->metric);
  if (!row) {
    int rc = ew__m_fail(&cx, EW_EUNKMETRIC, "no metric named '%s' (the 'metrics' method lists them)",
                  q->metric ? q->metric : "(null)");
    return rc;
  }
  const ew_config_t *c = ew_stream_config(s);
  static const char *const kind_names[] = {EW_ENUM_stream_kind(EW__QNAME)};
  unsigned kind = 1u << c->stream_kind; /* EW_METRIC_KIND_* is the stream kind's bit */
  if (!(row->info.kinds & kind)) {
    unsigned k = (unsigned)__builtin_ctz(row->info.kinds);
    return ew__m_fail(&cx, EW_EBADPARAM, "metric '%s' is one of %s streams, and this is a %s "
                      "stream (the 'metrics' method lists each metric's kinds)", row->info.name,
                      kind_names[k], kind_names[c->stream_kind]);
  }
  int rc = resolve(&cx, row, q);
  if (rc)
    return rc;
  ew__ws_t *ws = ew__ws_thread();
  if (!ws)
    return ew__m_fail(&cx, EW_ENOMEM, "%s", ew_strerror(EW_ENOMEM));
  if (kind != EW_METRIC_KIND_MATRIX)
    return query_tokens(s, &cx, row, ws);
  rc = query_view(s, q, &cx, row, ws);
  ew__view_close(&cx.v);
  return rc;
}

/* A tokens or stats metric: its view of the stream's tokens or cells (step, window or all), on
 * workspace ws. */
static int query_tokens(ew_stream_t *s, mctx_t *cx, const metric_row_t *row, ew__ws_t *ws) {
  ew__ws_mark_t mk = ew__ws_begin(ws);
  cx->cfg = ew_stream_config(s);
  cx->ws = ws;
  cx->row_name = row->info.name;
  cx->stream = s;
  int rc = ew__view_kind_open(s, cx->src, &cx->tv, &cx->cv, ws);
  if (rc)
    rc = ew__m_fail(cx, rc, "%s", ew_strerror(rc));
  else
    rc = row->fn(cx);
  cx->out->as_of = ew_stream_count(s);
  ew__view_kind_close(s, ew__ws_end(ws, mk));
  if (rc) {
    free(cx->out->list);
    cx->out->list = NULL;
    cx->out->len = 0;
    cx->out->code = rc;
  }
  return rc;
}

/* The part of a query that reads the stream, through a view on workspace ws. */
static int query_view(ew_stream_t *s, const ew_query_t *q, mctx_t *cxp, const metric_row_t *row,
                      ew__ws_t *ws) {
  ew_result_t *out = cxp->out;
  int rc;
  if ((rc = ew__view_open(&cxp->v, s, cxp->src, cxp->center, q->max_lag, q->window_rows, ws)) ==
      EW_ENOWINDOW)
    return ew__m_fail(cxp, EW_ENOWINDOW,
                "source '%s' needs a window, and this stream keeps none (create it with window > 0)",
                ew_source_name(cxp->src));
  if (rc)
    return ew__m_fail(cxp, rc, "%s", ew_strerror(rc));
  cxp->rows = cxp->v.rows;
  cxp->weight = cxp->v.weight;
  cxp->cfg = ew_stream_config(s);
  cxp->ws = ws;
  cxp->row_name = row->info.name;
  if (cxp->rows == 0)
    return ew__m_fail(cxp, EW_EDEGENERATE, "%s has no rows yet",
                cxp->src == EW_SOURCE_ALL ? "the stream" : "the window");
  if (cxp->center && cxp->rows < 2)
    return ew__m_fail(cxp, EW_EDEGENERATE,
                "a centred covariance needs at least 2 rows (the %s has %llu); pass center=false "
                "for the second moment",
                cxp->src == EW_SOURCE_ALL ? "stream" : "window", (unsigned long long)cxp->rows);
  rc = ew__view_is_sketch(&cxp->v) ? sketched(s, cxp, row) : row->fn(cxp);
  out->as_of = cxp->v.as_of;
  if (rc) {
    free(out->list);
    free(out->vectors);
    out->list = out->vectors = NULL;
    out->len = 0;
    out->code = rc;
  }
  return rc;
}
