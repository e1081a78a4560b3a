/* selfstats.h — the daemon's own counters and gauges: one row each. The `stats` reply
 * (cmd/daemon.c), /metrics' eigenwatch_* self families (expo.c) and PROTOCOL.md's table
 * (tools/ew_protocol_doc) are all generated from this table (stats.c builds ewd_stat_table).
 *
 * XX(member, KIND, "help"); KIND is COUNTER (only grows) or GAUGE (read when asked). */
#ifndef EWD_SELFSTATS_H
#define EWD_SELFSTATS_H

#define EWD_STAT_MAP(XX)                                                                          \
  XX(connections, GAUGE, "open connections")                                                      \
  XX(connections_total, COUNTER, "connections accepted")                                          \
  XX(connections_refused, COUNTER, "connections closed at accept (max_connections, stopping)")   \
  XX(accept_errors, COUNTER, "accepts that failed (out of file descriptors or memory)")           \
  XX(bytes_in, COUNTER, "bytes read from clients")                                                \
  XX(bytes_out, COUNTER, "bytes of replies queued to clients")                                    \
  XX(requests, COUNTER, "requests received (envelope valid)")                                     \
  XX(notifications, COUNTER, "notifications received (envelope valid)")                           \
  XX(rows, COUNTER, "rows accepted into streams")                                                 \
  XX(streams, GAUGE, "streams held")                                                              \
  XX(memory_bytes, GAUGE, "bytes the streams hold now: state, windows, caches")                   \
  XX(admitted_bytes, GAUGE,                                                                       \
     "the admission model: every stream's state plus the peak workspace of what it may run")      \
  XX(queue_jobs, GAUGE, "jobs queued or running on the math threads")                             \
  XX(queue_bytes, GAUGE, "ingest payload bytes queued")                                           \
  XX(recv_held_bytes, GAUGE, "receive-buffer bytes held across connections (recv_budget)")        \
  XX(recv_budget_waits, COUNTER, "times a connection waited for recv_budget")                     \
  XX(recv_budget_overdrafts, COUNTER,                                                             \
     "times every holder of a partial message waited and the oldest went past recv_budget")      \
  XX(partial_timeouts, COUNTER, "connections closed by partial_timeout")                          \
  XX(idle_timeouts, COUNTER, "connections closed by idle_timeout")                                \
  XX(out_cap_pauses, COUNTER, "times a connection stopped being served at conn_out_cap")          \
  XX(out_held_bytes, GAUGE,                                                                       \
     "memory held by unsent replies and notifications across connections (conn_out_cap)")        \
  XX(jobs_skipped, COUNTER, "queued answers skipped because their connection was gone")           \
  XX(framing_errors, COUNTER, "connections closed because their bytes could not be framed")       \
  XX(http_requests, COUNTER, "HTTP requests answered on the HTTP listener")                     \
  XX(http_errors, COUNTER, "HTTP requests refused as malformed or too large (connection closed)") \
  XX(http_on_rpc_port, COUNTER, "HTTP requests answered with 400 on the msgpack-RPC port")        \
  XX(auth_failures, COUNTER, "connections refused by auth")                                       \
  XX(drain_closed, COUNTER, "connections closed at the drain deadline of a stop")                 \
  XX(snapshots_written, COUNTER, "stream snapshots written to the state dir")                     \
  XX(snapshot_bytes, COUNTER, "bytes of stream snapshots written")                                \
  XX(snapshot_failures, COUNTER, "stream snapshots that could not be written (logged)")           \
  XX(snapshot_last_ms, GAUGE, "milliseconds the last snapshot round took")                        \
  XX(streams_restored, COUNTER, "streams restored from snapshots at start")                       \
  XX(states_quarantined, COUNTER, "snapshot files moved to quarantine/ at start (logged)")       \
  XX(staged_bytes, GAUGE, "rows held for training steps, from arrival until applied")            \
  XX(window_bytes, GAUGE,                                                                         \
     "what tokens and stats streams keep of their windows of steps (counted against "            \
     "max_staged_bytes with the staging)")                                                        \
  XX(steps_completed, COUNTER, "training steps completed (all ranks, timeout, flush or staging)")  \
  XX(steps_partial, COUNTER, "steps completed with ranks missing (timeout, flush, staging full)") \
  XX(steps_forced, COUNTER, "steps completed early because staging passed max_staged_bytes")     \
  XX(late_batches, COUNTER, "step batches that came after their rank or step had moved on")      \
  XX(duplicate_batches, COUNTER, "batches acknowledged as duplicates (producer, seq) and skipped") \
  XX(step_apply_failures, COUNTER, "staged batches a completed step could not apply (logged)")   \
  XX(evaluations, COUNTER, "scheduled evaluations completed (one per stream and evaluated step)") \
  XX(eval_coalesced, COUNTER, "due evaluations skipped because a later step replaced them")      \
  XX(eval_failures, COUNTER, "scheduled metrics that failed (logged once per stream and metric)") \
  XX(eval_inline, COUNTER, "evaluations run in the stream's queue (no room for a snapshot)")     \
  XX(eval_bytes, GAUGE, "snapshots held for evaluation (the recent views' moments or rows)")      \
  XX(eval_parallel_max, GAUGE, "the most evaluations solved at once so far (eval_threads bounds it)")\
  XX(eval_lag_ms, GAUGE, "milliseconds from step completion to value, of the last evaluation")   \
  XX(history_points, COUNTER, "values committed to the history database")                        \
  XX(history_failures, COUNTER, "history writes or reads that failed (logged)")                   \
  XX(history_queue, GAUGE, "values waiting for the history's I/O thread")                        \
  XX(alerts_fired, COUNTER, "alert rules that started firing (logged)")                           \
  XX(alerts_resolved, COUNTER, "alert rules that stopped firing (logged)")                        \
  XX(subscriptions, GAUGE, "subscriptions held (subscribe)")                                      \
  XX(notifications_sent, COUNTER, "metrics and alert notifications sent to subscribers")          \
  XX(subscribers_dropped, COUNTER, "subscribers disconnected at conn_out_cap (logged)")

typedef enum {
#define EWD__SENUM(member, kind, help) EWD_STAT_##member,
  EWD_STAT_MAP(EWD__SENUM)
#undef EWD__SENUM
  EWD_STAT_COUNT
} ewd_stat_t;

typedef struct {
  const char *name;
  bool counter;
  const char *help;
} ewd_stat_info_t;

extern const ewd_stat_info_t ewd_stat_table[EWD_STAT_COUNT];

#endif
