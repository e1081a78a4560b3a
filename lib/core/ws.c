/* ws.c — workspaces: the memory an operation borrows and gives back.
 *
 * A batch needs a centred copy of its rows and a d×d Gram; a query needs a d×d snapshot for
 * LAPACK (which destroys its input), LAPACK's own workspace and eigenvectors. Keeping those per
 * stream would double or triple each stream's memory, so they are borrowed from a workspace for
 * the length of one operation and handed down explicitly to every function that needs them.
 *
 * A workspace is a stack of allocations in chunks that never move: every allocation is distinct
 * from every other live one (no two callers can alias the same buffer, which fixed slots allowed),
 * and releasing a mark frees everything allocated after it in O(1). Chunks are kept for the next
 * operation, so a steady stream of batches allocates nothing; when an operation needed more than
 * one chunk, they are merged into one of their total size the next time the workspace is empty.
 * `peak` records the most bytes live at once, which is what a stream reports as its workspace. */
#include "core.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define ALIGN 64
#define MIN_CHUNK ((size_t)64 << 10)

typedef struct {
  char *p;    /* 64-byte aligned start */
  void *raw;  /* what malloc returned */
  size_t cap;
} chunk_t;

struct ew__ws {
  chunk_t *chunks;
  size_t nchunks, capchunks;
  size_t cur;   /* the chunk allocations come from (chunks after it hold nothing live) */
  size_t off;   /* bytes used in it */
  size_t used;  /* live bytes (aligned sizes) */
  size_t peak;  /* most live bytes since the outermost ew__ws_begin */
  size_t want;  /* size of the one chunk to make when chunks were merged away */
};

size_t ew__ws_size(size_t bytes) { return ((bytes ? bytes : 1) + ALIGN - 1) & ~(size_t)(ALIGN - 1); }

ew__ws_t *ew__ws_new(void) { return calloc(1, sizeof(ew__ws_t)); }

static void free_chunks(ew__ws_t *ws, size_t from) {
  for (size_t i = from; i < ws->nchunks; i++)
    free(ws->chunks[i].raw);
  ws->nchunks = from;
}

void ew__ws_free(ew__ws_t *ws) {
  if (!ws)
    return;
  free_chunks(ws, 0);
  free(ws->chunks);
  free(ws);
}

void ew__ws_trim(ew__ws_t *ws) {
  if (!ws || ws->used != 0)
    return;
  free_chunks(ws, 0);
  ws->cur = ws->off = 0;
  ws->want = 0;
}

size_t ew__ws_held(const ew__ws_t *ws) {
  size_t t = 0;
  for (size_t i = 0; ws && i < ws->nchunks; i++)
    t += ws->chunks[i].cap;
  return t;
}

/* Makes the current chunk one with at least sz free bytes at off. */
static int make_room(ew__ws_t *ws, size_t sz) {
  if (ws->nchunks > 0 && ws->chunks[ws->cur].cap - ws->off >= sz)
    return 0;
  if (ws->nchunks > 0 && ws->off > 0) { /* the current chunk holds live data: go past it */
    if (ws->cur + 1 < ws->nchunks && ws->chunks[ws->cur + 1].cap >= sz) {
      ws->cur++;
      ws->off = 0;
      return 0;
    }
    free_chunks(ws, ws->cur + 1); /* unused and too small */
  } else if (ws->nchunks > 0) {   /* the current chunk is empty but too small: replace it */
    free_chunks(ws, ws->cur);
  }
  size_t cap = sz > MIN_CHUNK ? sz : MIN_CHUNK;
  if (ws->want > cap)
    cap = ws->want;
  ws->want = 0;
  if (ws->nchunks == ws->capchunks) {
    size_t nc = ws->capchunks ? 2 * ws->capchunks : 4;
    chunk_t *n = realloc(ws->chunks, nc * sizeof *n);
    if (!n)
      return EW_ENOMEM;
    ws->chunks = n;
    ws->capchunks = nc;
  }
  /* plain malloc, aligned by hand: posix_memalign carves blocks out of larger ones and, with the
   * daemon's single heap arena, fragmented it (peak RSS under a flood of batches nearly doubled) */
  char *raw = malloc(cap + ALIGN);
  if (!raw)
    return EW_ENOMEM;
  char *p = raw + (ALIGN - (uintptr_t)raw % ALIGN) % ALIGN;
  ws->chunks[ws->nchunks] = (chunk_t){p, raw, cap};
  ws->cur = ws->nchunks++;
  ws->off = 0;
  return 0;
}

void *ew__ws_alloc(ew__ws_t *ws, size_t bytes) {
  size_t sz = ew__ws_size(bytes);
  if (make_room(ws, sz) != 0)
    return NULL;
  void *p = ws->chunks[ws->cur].p + ws->off;
  ws->off += sz;
  ws->used += sz;
  if (ws->used > ws->peak)
    ws->peak = ws->used;
  return p;
}

int ew__ws_reserve(ew__ws_t *ws, size_t bytes) { return make_room(ws, bytes); }

ew__ws_mark_t ew__ws_mark(const ew__ws_t *ws) {
  return (ew__ws_mark_t){.cur = ws->cur, .off = ws->off, .used = ws->used, .peak = ws->peak};
}

void ew__ws_release(ew__ws_t *ws, ew__ws_mark_t m) {
  ws->cur = m.cur;
  ws->off = m.off;
  ws->used = m.used;
  if (ws->used == 0 && ws->nchunks > 1) { /* one operation outgrew a chunk: merge them */
    ws->want = ew__ws_held(ws);
    free_chunks(ws, 0);
    ws->cur = ws->off = 0;
  }
}

ew__ws_mark_t ew__ws_begin(ew__ws_t *ws) {
  ew__ws_mark_t m = ew__ws_mark(ws);
  ws->peak = ws->used;
  return m;
}

size_t ew__ws_end(ew__ws_t *ws, ew__ws_mark_t m) {
  size_t peak = ws->peak - m.used;
  size_t outer = ws->peak > m.peak ? ws->peak : m.peak;
  ew__ws_release(ws, m);
  ws->peak = outer;
  return peak;
}

/* ---- the calling thread's workspace (what the public entry points hand down) ---- */

static pthread_key_t key;
static pthread_once_t key_once = PTHREAD_ONCE_INIT;

static void thread_ws_destroy(void *arg) { ew__ws_free(arg); }
static void make_key(void) { (void)pthread_key_create(&key, thread_ws_destroy); }

ew__ws_t *ew__ws_thread(void) {
  (void)pthread_once(&key_once, make_key);
  ew__ws_t *ws = pthread_getspecific(key);
  if (!ws && (ws = ew__ws_new()) != NULL && pthread_setspecific(key, ws) != 0) {
    ew__ws_free(ws);
    ws = NULL;
  }
  return ws;
}

/* Public: frees the calling thread's workspace chunks (they regrow on demand). */
EW_EXPORT void ew_thread_scratch_release(void) {
  (void)pthread_once(&key_once, make_key);
  ew__ws_trim(pthread_getspecific(key));
}

/* Public: bytes the calling thread's workspace holds. */
EW_EXPORT size_t ew_thread_scratch_bytes(void) {
  (void)pthread_once(&key_once, make_key);
  return ew__ws_held(pthread_getspecific(key));
}
