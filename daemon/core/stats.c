/* stats.c — the self-stat table's rows and its gauges, read from the live state when asked
 * (those of the connections through conn_hooks, those of the rooms above core — history,
 * subscriptions — through the refreshers they register: ewd_stats_gauge). Also the server's small shared duties: error counts and giving freed heap
 * back. */
#include "core/conn.h"

#include <malloc.h>

const ewd_stat_info_t ewd_stat_table[EWD_STAT_COUNT] = {
#define EWD__SROW(member, kind, help) {#member, EWD_STAT_KIND_##kind, help},
#define EWD_STAT_KIND_COUNTER true
#define EWD_STAT_KIND_GAUGE false
    EWD_STAT_MAP(EWD__SROW)
#undef EWD__SROW
};

void ewd_stats_refresh(ewd_server_t *srv) {
  if (srv->conn_hooks) /* net/'s: connections, recv_held_bytes */
    srv->conn_hooks->gauges(srv);
  else
    srv->stat[EWD_STAT_connections] = srv->stat[EWD_STAT_recv_held_bytes] = 0;
  srv->stat[EWD_STAT_streams] = srv->reg.n;
  srv->stat[EWD_STAT_memory_bytes] = ewd_registry_memory(&srv->reg);
  srv->stat[EWD_STAT_admitted_bytes] = ewd_registry_admitted(&srv->reg, &srv->cfg);
  srv->stat[EWD_STAT_queue_jobs] = srv->pool ? ewd_pool_pending(srv->pool) : 0;
  srv->stat[EWD_STAT_eval_parallel_max] = srv->pool ? ewd_pool_eval_peak(srv->pool) : 0;
  size_t qb = 0;
  for (size_t i = 0; i < srv->reg.n; i++)
    qb += srv->reg.items[i]->queued_bytes;
  srv->stat[EWD_STAT_queue_bytes] = qb;
  srv->stat[EWD_STAT_out_held_bytes] =
      atomic_load_explicit(&srv->out_held, memory_order_relaxed);
  srv->stat[EWD_STAT_staged_bytes] = srv->reg.staged_bytes;
  srv->stat[EWD_STAT_window_bytes] = srv->reg.window_bytes;
  srv->stat[EWD_STAT_eval_bytes] = srv->reg.eval_bytes;
  for (size_t i = 0; i < srv->ngauges; i++)
    srv->gauges[i](srv);
}

int ewd_stats_gauge(ewd_server_t *srv, void (*fn)(ewd_server_t *srv)) {
  if (srv->ngauges == EWD_GAUGES_MAX) {
    ewd_log(EWD_LOG_ERROR, "a room's gauges are not refreshed: EWD_GAUGES_MAX is too small",
            "max=%d", EWD_GAUGES_MAX);
    return -1;
  }
  srv->gauges[srv->ngauges++] = fn;
  return 0;
}

_Static_assert(EW__ERR_END - EW__ERR_BASE <= sizeof ((ewd_server_t *)0)->errors / sizeof(uint64_t),
               "the server counts errors by code: one slot per EW_ERRNO_MAP row");

void ewd_stream_refused(ewd_stream_t *st, int code) {
  int i = code - EW__ERR_BASE;
  if (i > 0 && i < EW__ERR_END - EW__ERR_BASE)
    st->refused[i]++;
}

void ewd_count_error(ewd_server_t *srv, int code) {
  int i = code - EW__ERR_BASE;
  if (i > 0 && i < EW__ERR_END - EW__ERR_BASE)
    srv->errors[i]++;
}

/* glibc keeps freed heap for reuse; after a large free (a solve's workspace, a dropped stream,
 * a big receive buffer) it is given back with malloc_trim, debounced so that a burst of frees
 * costs one trim. */
#define TRIM_AFTER_BYTES ((size_t)32 << 20)
#define TRIM_DELAY_MS 200

static void on_trim(uv_timer_t *t) {
  ewd_server_t *srv = t->data;
  srv->freed_since_trim = 0;
  malloc_trim(0);
}

void ewd_server_freed(ewd_server_t *srv, size_t bytes) {
  srv->freed_since_trim += bytes;
  if (srv->freed_since_trim >= TRIM_AFTER_BYTES && !uv_is_active((uv_handle_t *)&srv->trim_timer))
    uv_timer_start(&srv->trim_timer, on_trim, TRIM_DELAY_MS, 0);
}

void ewd_server_apply_config(ewd_server_t *srv) {
  srv->skim.max_bytes = (size_t)srv->cfg.max_message_bytes;
  srv->skim.max_depth = (uint32_t)srv->cfg.max_depth;
  srv->skim.max_elements = srv->cfg.max_elements;
  ewd_log_level = (ewd_log_level_t)srv->cfg.log_level;
}
