/* conn.c — one connection's buffers, budgets and timeouts, whatever its protocol.
 *
 * Memory a peer can make the daemon hold is bounded three ways:
 *  - the receive buffer of every connection is charged to one global budget (recv_budget); a
 *    connection that needs a bigger buffer than the budget has left stops reading and waits on a
 *    list, oldest first, until another connection's buffer shrinks or closes (a declared message
 *    is reserved whole; when every holder of a partial message waits, the oldest may go past
 *    the budget by one message: see "the receive budget" and unblock_waiters);
 *  - a started message must finish within partial_timeout, or the connection is closed (which
 *    returns its buffer to the budget): holding a message one byte short costs the peer its
 *    connection, not the daemon its memory;
 *  - unsent replies are capped per connection (conn_out_cap), counted as the memory holding them:
 *    past it the protocol answers nothing more, and reads stop, until the peer reads (a
 *    subscriber is disconnected).
 * An idle connection (idle_timeout, off by default) is closed, and a buffer left empty for a
 * second is freed. A connection's end (EOF or a read error) means the peer is gone: `gone` is set
 * for the math threads, which then skip its queued answers. Connections are freed after the
 * close callback and after the last job naming them finished (refs), never inside a callback
 * that found them broken. */
#include "net/net.h"

#include <malloc.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#define READ_CHUNK ((size_t)64 * 1024)
#define SWEEP_MS 100

ewd_conn_t *ewd_conn_new(ewd_server_t *srv, const ewd_io_vt_t *io, const ewd_proto_vt_t *proto) {
  ewd_conn_t *c = calloc(1, sizeof *c);
  if (!c)
    return NULL;
  ewd_net_t *net = srv->net;
  c->srv = srv;
  c->io = io;
  c->proto = proto;
  c->refs = 1;
  c->outq_tail = &c->outq;
  c->id = ++net->next_id;
  c->authed = srv->token == NULL;
  c->last_activity = ewd_now();
  atomic_init(&c->gone, false);
  c->next = net->conns;
  if (net->conns)
    net->conns->prev = c;
  net->conns = c;
  net->nconns++;
  return c;
}

void ewd_conn_ref(ewd_conn_t *c) { c->refs++; }

void ewd_conn_unref(ewd_conn_t *c) {
  if (--c->refs > 0)
    return;
  free(c->buf);
  free(c);
}

/* ---- the receive budget ----
 * A buffer grows in one step to what its unfinished message is known to need (c->want: the
 * lengths it declares, so a 40 MB `data` is reserved whole as soon as its header is here), else
 * by doubling, up to max_message_bytes + READ_CHUNK. A growth that does not fit the budget makes
 * the connection wait, in arrival order: freed budget goes to the oldest waiter first, and while
 * one waits no other connection grows past its first chunk into the room the oldest needs. So
 * no connection holds part of a declared message waiting for room only the others could free
 * (8 clients sending 40 MB at a 256 MB budget were all closed by partial_timeout, each holding
 * 32 MB): a message that fits the budget on its own is received in turn. */

/* The capacity c's buffer should grow to now (c->cap when no growth is due). */
static size_t grow_target(const ewd_conn_t *c) {
  size_t limit = c->srv->cfg.max_message_bytes + READ_CHUNK;
  if (c->cap - c->len >= READ_CHUNK || c->cap >= limit)
    return c->cap;
  size_t nc = READ_CHUNK; /* powers of two, whatever a reservation made the capacity */
  while (nc < 2 * c->cap || nc < c->len + READ_CHUNK)
    nc *= 2;
  if (c->want && c->want < limit && c->off + c->want + READ_CHUNK > nc)
    nc = c->off + c->want + READ_CHUNK;
  return nc > limit ? limit : nc;
}

/* Grows c's buffer to nc when the budget has room for it with `reserve` bytes to spare. Returns
 * false when it does not fit (true after a failed realloc: the buffer stays as it is). */
static bool try_grow(ewd_conn_t *c, size_t nc, size_t reserve);

static void resume_waiters(ewd_net_t *net) {
  while (net->waiters) {
    ewd_conn_t *w = net->waiters;
    if (!w->closing) {
      size_t nc = grow_target(w);
      if (nc > w->cap && !try_grow(w, nc, 0))
        break; /* the oldest first: the others wait behind it */
    }
    net->waiters = w->wait_next;
    if (!net->waiters)
      net->waiters_tail = &net->waiters;
    w->wait_next = NULL;
    w->budget_wait = false;
    if (!w->closing)
      ewd_conn_update_reading(w);
    ewd_conn_unref(w);
  }
}

static void budget_release(ewd_conn_t *c, size_t bytes) {
  ewd_net_t *net = c->srv->net;
  net->recv_held -= bytes;
  ewd_server_freed(c->srv, bytes);
  resume_waiters(net);
}

static void budget_wait(ewd_conn_t *c) {
  ewd_net_t *net = c->srv->net;
  if (c->budget_wait)
    return;
  c->budget_wait = true;
  c->srv->stat[EWD_STAT_recv_budget_waits]++;
  ewd_conn_ref(c);
  c->wait_next = NULL;
  if (!net->waiters_tail)
    net->waiters_tail = &net->waiters;
  *net->waiters_tail = c;
  net->waiters_tail = &c->wait_next;
}

static void set_cap(ewd_conn_t *c, uint8_t *nb, size_t ncap) {
  ewd_net_t *net = c->srv->net;
  size_t old = c->cap;
  c->buf = nb;
  c->cap = ncap;
  if (ncap > old)
    net->recv_held += ncap - old;
  else if (old > ncap)
    budget_release(c, old - ncap);
}

static bool try_grow(ewd_conn_t *c, size_t nc, size_t reserve) {
  ewd_server_t *srv = c->srv;
  if (srv->net->recv_held + (nc - c->cap) + reserve > srv->cfg.recv_budget)
    return false;
  uint8_t *nb = realloc(c->buf, nc);
  if (nb)
    set_cap(c, nb, nc);
  return true;
}

static void buffer_free(ewd_conn_t *c) {
  uint8_t *b = c->buf;
  set_cap(c, NULL, 0);
  free(b);
  c->off = c->len = 0;
  c->want = 0;
}

void ewd_conn_alloc(ewd_conn_t *c, uint8_t **p, size_t *avail) {
  ewd_net_t *net = c->srv->net;
  *p = NULL;
  *avail = 0;
  if (c->off > 0 && c->cap - c->len < READ_CHUNK && c->parked_len == 0) { /* compact */
    memmove(c->buf, c->buf + c->off, c->len - c->off);
    c->len -= c->off;
    c->off = 0;
  }
  size_t nc = grow_target(c);
  if (nc > c->cap) {
    /* past its first chunk, a connection leaves the oldest waiter the room it needs (when that
     * buffer fits the budget on its own: a larger one waits for partial_timeout, alone) */
    ewd_conn_t *head = net->waiters;
    size_t reserve = 0;
    if (head && head != c && c->cap > 0) {
      size_t hn = grow_target(head);
      if (hn > head->cap && hn <= c->srv->cfg.recv_budget)
        reserve = hn - head->cap;
    }
    if (!try_grow(c, nc, reserve) && c->cap == c->len) {
      budget_wait(c);
      return;
    }
  }
  *p = c->buf + c->len;
  *avail = c->cap - c->len;
}

void ewd_conn_received(ewd_conn_t *c, size_t n) {
  c->len += n;
  c->last_activity = ewd_now();
  c->srv->stat[EWD_STAT_bytes_in] += n;
  c->proto->process(c);
}

size_t ewd_conn_input(ewd_conn_t *c, const void *data, size_t n) {
  size_t taken = 0;
  while (taken < n && !c->closing) {
    uint8_t *p;
    size_t avail;
    ewd_conn_alloc(c, &p, &avail);
    if (!avail)
      break;
    size_t k = n - taken < avail ? n - taken : avail;
    memcpy(p, (const uint8_t *)data + taken, k);
    taken += k;
    ewd_conn_received(c, k);
  }
  return taken;
}

void ewd_conn_consume(ewd_conn_t *c, size_t n) {
  c->off += n;
  c->want = 0; /* the protocol says again what the next message needs */
  if (c->off == c->len) {
    c->off = c->len = 0;
    if (c->cap > 4 * READ_CHUNK) { /* give big buffers back */
      uint8_t *nb = realloc(c->buf, READ_CHUNK);
      if (nb)
        set_cap(c, nb, READ_CHUNK);
    }
  }
}

void ewd_conn_eof(ewd_conn_t *c) {
  c->eof = true;
  atomic_store(&c->gone, true);
  ewd_conn_update_reading(c);
  c->proto->process(c);
}

/* ---- reading ---- */

void ewd_conn_update_reading(ewd_conn_t *c) {
  ewd_server_t *srv = c->srv;
  if (c->closing)
    return;
  size_t buffered = c->len - c->off;
  bool want = !c->eof && !srv->stopping && !c->budget_wait && !c->out_blocked &&
              c->parked_len == 0 && c->queued_bytes < srv->cfg.conn_high_water &&
              !((c->job || c->inflight) && buffered >= srv->cfg.conn_high_water) &&
              buffered < (c->max_buffer ? c->max_buffer : srv->cfg.max_message_bytes);
  if (!want && !c->budget_wait)
    c->partial_since = 0; /* the clock runs only while the daemon is willing to read */
  if (want != c->reading) {
    c->reading = want;
    c->io->set_reading(c, want);
  }
}

/* ---- closing ---- */

bool ewd_conn_busy(const ewd_conn_t *c) {
  return c->job || c->inflight || c->parked_len || c->out_pending;
}

void ewd_conn_close(ewd_conn_t *c, const char *reason) {
  if (c->closing)
    return;
  c->closing = true;
  atomic_store(&c->gone, true);
  ewd_log(EWD_LOG_DEBUG, "connection closed", "conn=%llu reason=%s", (unsigned long long)c->id,
          reason);
  c->proto->release(c);
  buffer_free(c);
  ewd__conn_out_drop(c);
  if (c->reading) {
    c->reading = false;
    c->io->set_reading(c, false);
  }
  c->io->close(c);
}

void ewd_conn_closed(ewd_conn_t *c) {
  ewd_net_t *net = c->srv->net;
  if (c->prev)
    c->prev->next = c->next;
  else
    net->conns = c->next;
  if (c->next)
    c->next->prev = c->prev;
  c->prev = c->next = NULL;
  net->nconns--;
  if (c->http)
    net->nhttp--;
  ewd_conn_unref(c); /* jobs still running keep it until they finish (unanswered) */
}

/* ---- timeouts and idle buffers ---- */

/* A message whose size is not declared up front (rows as nested arrays) grows by doubling, and
 * such messages can still leave every connection that holds part of one waiting for budget only
 * the others could free. When that is so (no connection holding more than its first chunk is
 * able to go on), the oldest waiter is let past recv_budget by its growth, as long as the
 * receive buffers stay within recv_budget + max_message_bytes + READ_CHUNK: it finishes its
 * message, and what it then frees lets the others go on. Checked by the sweep, every SWEEP_MS. */
static void unblock_waiters(ewd_server_t *srv) {
  ewd_net_t *net = srv->net;
  ewd_conn_t *head = net->waiters;
  while (head && head->closing) /* closed waiters leave at the next release */
    head = head->wait_next;
  if (!head)
    return;
  for (ewd_conn_t *c = net->conns; c; c = c->next)
    if (!c->closing && !c->budget_wait && c->len > c->off && c->cap > READ_CHUNK)
      return; /* someone holds more than a first chunk and can go on: it will free budget */
  size_t nc = grow_target(head);
  size_t limit = srv->cfg.max_message_bytes + READ_CHUNK;
  if (nc <= head->cap || net->recv_held + (nc - head->cap) > srv->cfg.recv_budget + limit)
    return;
  srv->stat[EWD_STAT_recv_budget_overdrafts]++;
  ewd_log(EWD_LOG_INFO, "every connection holding part of a message waits for receive budget: "
          "the oldest goes past recv_budget to finish its message", "conn=%llu buffer=%zu "
          "recv_held=%zu recv_budget=%llu", (unsigned long long)head->id, nc, net->recv_held,
          (unsigned long long)srv->cfg.recv_budget);
  uint8_t *nb = realloc(head->buf, nc);
  if (!nb)
    return;
  set_cap(head, nb, nc); /* a growth: no release, the wait list is untouched */
  /* unlink it from the wait list and let it read */
  for (ewd_conn_t **pp = &net->waiters; *pp; pp = &(*pp)->wait_next)
    if (*pp == head) {
      *pp = head->wait_next;
      if (net->waiters_tail == &head->wait_next)
        net->waiters_tail = pp;
      break;
    }
  head->wait_next = NULL;
  head->budget_wait = false;
  ewd_conn_update_reading(head);
  ewd_conn_unref(head);
}

static void on_sweep(uv_timer_t *t) {
  ewd_server_t *srv = t->data;
  unblock_waiters(srv);
  double now = ewd_now();
  double pt = srv->cfg.partial_timeout, it = srv->cfg.idle_timeout;
  for (ewd_conn_t *c = srv->net->conns, *next; c; c = next) {
    next = c->next;
    if (c->closing)
      continue;
    if (pt > 0 && c->partial_since > 0 && now - c->partial_since > pt) {
      srv->stat[EWD_STAT_partial_timeouts]++;
      ewd_log(EWD_LOG_WARN, "unfinished message timed out, closing connection",
              "conn=%llu buffered=%zu partial_timeout=%g", (unsigned long long)c->id,
              c->len - c->off, pt);
      ewd_conn_close(c, "partial_timeout");
      continue;
    }
    double lim = c->idle_limit > 0 ? c->idle_limit : it;
    if (lim > 0 && !ewd_conn_busy(c) && c->len == c->off && now - c->last_activity > lim) {
      srv->stat[EWD_STAT_idle_timeouts]++;
      ewd_log(EWD_LOG_INFO, "idle connection closed", "conn=%llu idle_timeout=%g",
              (unsigned long long)c->id, lim);
      ewd_conn_close(c, "idle_timeout");
      continue;
    }
    if (c->cap && c->len == 0 && now - c->last_activity > 1.0) /* an idle empty buffer */
      buffer_free(c);
  }
}

int ewd_net_init(ewd_server_t *srv) {
  srv->net = calloc(1, sizeof *srv->net);
  if (!srv->net)
    return -1;
  uv_timer_init(srv->loop, &srv->net->sweep);
  srv->net->sweep.data = srv;
  uv_timer_start(&srv->net->sweep, on_sweep, SWEEP_MS, SWEEP_MS);
  uv_unref((uv_handle_t *)&srv->net->sweep);
  srv->conn_hooks = &ewd_net_hooks; /* what the rooms below reach a connection through */
  return 0;
}

void ewd_net_close(ewd_server_t *srv) {
  uv_timer_stop(&srv->net->sweep);
  uv_close((uv_handle_t *)&srv->net->sweep, NULL);
}
