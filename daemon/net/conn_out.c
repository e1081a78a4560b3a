/* conn_out.c — a connection's output: unsent replies and notifications held in chunks, counted
 * against conn_out_cap as the memory that holds them, written through the connection's io, and
 * dropped when it closes. The rest of a connection (buffers, budgets, timeouts) is conn.c. */
#include "net/net.h"

#include <malloc.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

/* ---- output ----
 * Unsent output is counted as the memory that holds it, against conn_out_cap: each chunk's
 * allocation (malloc_usable_size) plus OUT_OVERHEAD for the chunk record and the write request.
 * A message of at most OUT_SMALL bytes (a reply, a subscriber's notification) is copied into the
 * connection's open chunk, which grows to OUT_CHUNK; before, each ~180-byte notification was its
 * own 8 KB buffer and write request counted as 180 bytes, and 64 subscribers that never read
 * held gigabytes with none of them over the cap. Freed output is reported to the trim timer so
 * that the heap goes back to the system after a slow reader closes. */

#define OUT_SMALL ((size_t)4096)
#define OUT_CHUNK ((size_t)64 * 1024)
#define OUT_OVERHEAD ((size_t)256) /* the chunk record, the io's write request, malloc headers */

typedef struct ewd_out {
  struct ewd_out *next;
  char *data;
  size_t len;  /* bytes to send */
  size_t cap;  /* bytes the allocation holds */
  bool shared; /* small messages are appended to it */
} ewd_out_t;

static void out_count(ewd_conn_t *c, ptrdiff_t mem) {
  c->out_mem += (size_t)mem;
  if (mem >= 0)
    atomic_fetch_add_explicit(&c->srv->out_held, (size_t)mem, memory_order_relaxed);
  else
    atomic_fetch_sub_explicit(&c->srv->out_held, (size_t)-mem, memory_order_relaxed);
}

/* Hands queued chunks to io->write, one at a time. */
static void out_flush(ewd_conn_t *c) {
  if (c->out_flushing)
    return;
  c->out_flushing = true;
  while (!c->closing && !c->out_inflight && c->outq) {
    ewd_out_t *o = c->outq;
    c->outq = o->next;
    if (!c->outq)
      c->outq_tail = &c->outq;
    c->out_inflight = true;
    c->out_inflight_mem = o->cap + OUT_OVERHEAD;
    char *data = o->data;
    size_t len = o->len;
    free(o);
    c->io->write(c, data, len); /* may end in ewd_conn_wrote before it returns */
  }
  c->out_flushing = false;
}

static ewd_out_t *out_chunk(ewd_conn_t *c, char *data, size_t len, size_t cap, bool shared) {
  ewd_out_t *o = malloc(sizeof *o);
  if (!o)
    return NULL;
  *o = (ewd_out_t){NULL, data, len, cap, shared};
  if (!c->outq_tail)
    c->outq_tail = &c->outq;
  *c->outq_tail = o;
  c->outq_tail = &o->next;
  out_count(c, (ptrdiff_t)(cap + OUT_OVERHEAD));
  return o;
}

/* Copies a small message into the open shared chunk (a new one when there is none, or it is
 * full). Returns false when out of memory. */
static bool out_append(ewd_conn_t *c, const char *data, size_t len) {
  ewd_out_t *t = c->outq ? (ewd_out_t *)((char *)c->outq_tail - offsetof(ewd_out_t, next)) : NULL;
  if (t && t->shared && t->len + len <= OUT_CHUNK) {
    if (t->len + len > t->cap) {
      size_t nc = 2 * t->cap;
      if (nc < t->len + len)
        nc = t->len + len;
      if (nc > OUT_CHUNK)
        nc = OUT_CHUNK;
      char *nd = realloc(t->data, nc);
      if (!nd)
        return false;
      size_t real = malloc_usable_size(nd);
      out_count(c, (ptrdiff_t)real - (ptrdiff_t)t->cap);
      t->data = nd;
      t->cap = real;
    }
    memcpy(t->data + t->len, data, len);
    t->len += len;
    return true;
  }
  size_t cap = len < 1024 ? 1024 : len;
  char *d = malloc(cap);
  if (!d)
    return false;
  memcpy(d, data, len);
  if (!out_chunk(c, d, len, malloc_usable_size(d), true)) {
    free(d);
    return false;
  }
  return true;
}

void ewd_conn_send(ewd_conn_t *c, char *data, size_t len) {
  if (!c || c->closing) {
    free(data);
    return;
  }
  bool ok;
  if (len <= OUT_SMALL) {
    ok = out_append(c, data, len);
    free(data);
  } else {
    size_t cap = malloc_usable_size(data);
    if (cap - len > len / 8) { /* a packer's doubling left much unused: give it back */
      char *nd = realloc(data, len);
      if (nd) {
        data = nd;
        cap = malloc_usable_size(nd);
      }
    }
    ok = out_chunk(c, data, len, cap, false) != NULL;
    if (!ok)
      free(data);
  }
  if (!ok) {
    ewd_conn_close(c, "out_of_memory");
    return;
  }
  c->srv->stat[EWD_STAT_bytes_out] += len;
  c->out_pending += len;
  out_flush(c);
}

void ewd_conn_wrote(ewd_conn_t *c, size_t len, int status) {
  c->out_pending -= len;
  c->out_inflight = false;
  out_count(c, -(ptrdiff_t)c->out_inflight_mem);
  ewd_server_freed(c->srv, c->out_inflight_mem);
  c->out_inflight_mem = 0;
  if (status == 0)
    c->last_activity = ewd_now();
  else
    atomic_store(&c->gone, true);
  if (c->closing)
    return;
  out_flush(c);
  c->proto->process(c); /* may serve again now that output drained */
}

/* Drops what was never handed to io->write (the connection is closing). */
void ewd__conn_out_drop(ewd_conn_t *c) {
  size_t freed = 0;
  while (c->outq) {
    ewd_out_t *o = c->outq;
    c->outq = o->next;
    c->out_pending -= o->len;
    out_count(c, -(ptrdiff_t)(o->cap + OUT_OVERHEAD));
    freed += o->cap;
    free(o->data);
    free(o);
  }
  c->outq_tail = &c->outq;
  ewd_server_freed(c->srv, freed);
}
