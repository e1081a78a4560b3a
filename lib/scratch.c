/* scratch.c — per-thread growable scratch buffers.
 *
 * Why: a batch needs a centred copy of its rows and a d×d Gram, and a query needs a d×d snapshot
 * for LAPACK (which destroys its input). Keeping those per stream would double or triple each
 * stream's memory (DESIGN §6 asks for 8d² per exact stream). Streams on one thread never run at
 * the same time, so they share one set of buffers per thread. Buffers only grow; they are freed at
 * thread exit (a pthread key destructor) or by ew_thread_scratch_release(). */
#include "ew_internal.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
  void *p[EW__SCR_N];
  size_t cap[EW__SCR_N];
} scratch_t;

static pthread_key_t key;
static pthread_once_t key_once = PTHREAD_ONCE_INIT;

static void scratch_destroy(void *arg) {
  scratch_t *sc = arg;
  if (!sc)
    return;
  for (int i = 0; i < EW__SCR_N; i++)
    free(sc->p[i]);
  free(sc);
}

static void make_key(void) { (void)pthread_key_create(&key, scratch_destroy); }

static scratch_t *get_scratch(int create) {
  (void)pthread_once(&key_once, make_key);
  scratch_t *sc = pthread_getspecific(key);
  if (!sc && create) {
    sc = calloc(1, sizeof *sc);
    if (sc && pthread_setspecific(key, sc) != 0) {
      free(sc);
      sc = NULL;
    }
  }
  return sc;
}

void *ew__scratch(int slot, size_t bytes) {
  scratch_t *sc = get_scratch(1);
  if (!sc || slot < 0 || slot >= EW__SCR_N)
    return NULL;
  if (bytes == 0)
    bytes = 64;
  if (sc->cap[slot] < bytes) {
    size_t want = bytes + bytes / 4; /* grow by 25% to avoid creeping reallocations */
    want = (want + 63) & ~(size_t)63;
    void *np = NULL;
    if (posix_memalign(&np, 64, want) != 0)
      return NULL;
    free(sc->p[slot]);
    sc->p[slot] = np;
    sc->cap[slot] = want;
  }
  return sc->p[slot];
}

size_t ew__scratch_bytes(void) {
  scratch_t *sc = get_scratch(0);
  size_t t = 0;
  if (sc)
    for (int i = 0; i < EW__SCR_N; i++)
      t += sc->cap[i];
  return t;
}

/* Public: frees the calling thread's scratch buffers (they regrow on demand). */
EW_EXPORT void ew_thread_scratch_release(void) {
  scratch_t *sc = get_scratch(0);
  if (!sc)
    return;
  for (int i = 0; i < EW__SCR_N; i++) {
    free(sc->p[i]);
    sc->p[i] = NULL;
    sc->cap[i] = 0;
  }
}

/* Public: bytes of scratch the calling thread holds. */
EW_EXPORT size_t ew_thread_scratch_bytes(void) { return ew__scratch_bytes(); }
