/* registry.c — the named streams, as the loop thread sees them: lookup, creation under the
 * stream-count limit and the library's admission model, removal, reference counts (an entry
 * outlives its removal while jobs still hold it), and the loop-side result cache that lets a
 * query be answered without waiting for a stream that is busy on a math thread.
 *
 * Admission: a stream is admitted when Σ state (every stream's ew_config_memory().state) plus
 * math_threads × the largest workspace any stream may need fits in max_memory. The daemon keeps
 * no formula of its own: the numbers are the library's. The result cache holds values only
 * (never eigenvectors), is bounded per stream by entries and bytes, and is counted in
 * memory_bytes; so is a stream's block of /metrics lines (st->expo, cmd/expo.c), freed with it. */
#include "core/ewd.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CACHE_MAX_ENTRIES 64

ewd_key_t ewd_key_of(ewp_str_t stream, ewp_str_t run, bool has_run) {
  ewd_key_t k = {EWP_DEFAULT_RUN, strlen(EWP_DEFAULT_RUN), stream.p, stream.n};
  if (has_run) {
    k.run = run.p;
    k.rn = run.n;
  }
  return k;
}

uint64_t ewd_fnv1a(uint64_t h, const void *p, size_t n) {
  const unsigned char *b = p;
  for (size_t i = 0; i < n; i++) {
    h ^= b[i];
    h *= 0x100000001b3ULL;
  }
  return h;
}

uint64_t ewd_key_hash(const ewd_key_t *k) {
  uint64_t h = ewd_fnv1a(EWD_FNV_BASIS, k->run, k->rn);
  h = ewd_fnv1a(h, "", 1); /* names hold no zero byte: (run, stream) splits one way only */
  return ewd_fnv1a(h, k->name, k->n);
}

static bool key_is(const ewd_stream_t *st, const ewd_key_t *k) {
  return strlen(st->name) == k->n && memcmp(st->name, k->name, k->n) == 0 &&
         strlen(st->run) == k->rn && memcmp(st->run, k->run, k->rn) == 0;
}

ewd_stream_t *ewd_registry_find(ewd_registry_t *r, const ewd_key_t *k) {
  if (!r->nbuckets)
    return NULL;
  uint64_t h = ewd_key_hash(k);
  for (ewd_stream_t *st = r->buckets[h & (r->nbuckets - 1)]; st; st = st->hnext)
    if (st->hash == h && key_is(st, k))
      return st;
  return NULL;
}

ewd_stream_t *ewd_registry_visible(ewd_registry_t *r, const ewd_key_t *k) {
  ewd_stream_t *st = ewd_registry_find(r, k);
  return st && !st->provisional ? st : NULL;
}

/* Doubles the bucket array when it holds as many streams as buckets. Returns 0 or EW_ENOMEM
 * (the index stays as it was). */
static int index_grow(ewd_registry_t *r) {
  if (r->n < r->nbuckets)
    return 0;
  size_t nb = r->nbuckets ? 2 * r->nbuckets : 64;
  ewd_stream_t **b = calloc(nb, sizeof *b);
  if (!b)
    return EW_ENOMEM;
  for (size_t i = 0; i < r->n; i++) {
    ewd_stream_t *st = r->items[i];
    st->hnext = b[st->hash & (nb - 1)];
    b[st->hash & (nb - 1)] = st;
  }
  free(r->buckets);
  r->buckets = b;
  r->nbuckets = nb;
  return 0;
}

size_t ewd_stream_state_bytes(const ew_stream_t *s) {
  return ew_stream_memory(s) - ew_stream_workspace_peak(s);
}

static size_t admitted(size_t state, size_t peak_ws, const ewd_config_t *lim) {
  return state + (size_t)lim->math_threads * peak_ws;
}

size_t ewd_registry_admitted(const ewd_registry_t *r, const ewd_config_t *lim) {
  return admitted(r->state_bytes, r->peak_ws, lim) + r->staged_bytes + r->window_bytes;
}

void ewd_registry_window(ewd_registry_t *r, ewd_stream_t *st, size_t bytes) {
  r->window_bytes = r->window_bytes - st->window_bytes + bytes;
  st->window_bytes = bytes;
}

size_t ewd_registry_memory(const ewd_registry_t *r) {
  size_t m = 0;
  for (size_t i = 0; i < r->n; i++)
    m += r->items[i]->memory + r->items[i]->cache_bytes + r->items[i]->expo_bytes;
  return m;
}

static void recompute_peak(ewd_registry_t *r) {
  r->peak_ws = 0;
  for (size_t i = 0; i < r->n; i++)
    if (r->items[i]->model.workspace > r->peak_ws)
      r->peak_ws = r->items[i]->model.workspace;
}

/* Checks max_streams and the admission model for a stream of configuration cfg, and makes room in
 * the item array. Returns 0 with *model, or an error with msg. */
static int admit(ewd_registry_t *r, const ewd_config_t *lim, const ew_config_t *cfg,
                 ew_memory_model_t *model, char *msg, size_t msgcap) {
  if (r->n >= lim->max_streams) {
    snprintf(msg, msgcap, "the daemon already holds %zu streams (limit max_streams = %llu); drop "
             "one or raise the limit", r->n, (unsigned long long)lim->max_streams);
    return EW_ELIMIT;
  }
  int rc = ew_config_check(cfg, msg, msgcap);
  if (rc)
    return rc;
  /* The rows of a batch (≤ 3× its message: converted, centred, windowed copies) are bounded by
   * the receive side (conn_high_water, recv_budget); the model charges what depends on d. */
  if ((rc = ew_config_memory(cfg, 0, model)) != 0)
    return rc;
  size_t peak = model->workspace > r->peak_ws ? model->workspace : r->peak_ws;
  size_t before = ewd_registry_admitted(r, lim);
  size_t after = admitted(r->state_bytes + model->state, peak, lim) + r->staged_bytes +
                 r->window_bytes;
  if (after > lim->max_memory) {
    snprintf(msg, msgcap, "creating this stream needs %zu bytes (state %zu, workspace %zu per "
             "math thread); %zu of max_memory = %llu are in use", after - before, model->state,
             model->workspace, before, (unsigned long long)lim->max_memory);
    return EW_ELIMIT;
  }
  if (r->n == r->cap) {
    size_t nc = r->cap ? 2 * r->cap : 16;
    ewd_stream_t **ni = realloc(r->items, nc * sizeof *ni);
    if (!ni)
      return EW_ENOMEM;
    r->items = ni;
    r->cap = nc;
  }
  return index_grow(r);
}

/* Wraps s (admitted with model) in a registry entry. */
static int insert(ewd_registry_t *r, const ewd_key_t *k, ew_stream_t *s,
                  const ew_memory_model_t *model, ewd_stream_t **out) {
  ewd_stream_t *st = calloc(1, sizeof *st);
  if (!st)
    return EW_ENOMEM;
  st->s = s;
  st->release = r->release;
  memcpy(st->name, k->name, k->n);
  st->name[k->n] = 0;
  memcpy(st->run, k->run, k->rn);
  st->run[k->rn] = 0;
  st->hash = ewd_key_hash(k);
  size_t b = st->hash & (r->nbuckets - 1); /* admit grew the index */
  st->hnext = r->buckets[b];
  r->buckets[b] = st;
  st->cfg = *ew_stream_config(s);
  st->model = *model;
  st->memory = ewd_stream_state_bytes(s);
  st->window_bytes = ew_stream_window_bytes(s); /* a restored stream's window */
  r->window_bytes += st->window_bytes;
  st->count = ew_stream_count(s);
  st->refs = 1;
  st->changes = 1; /* a new entry is not on disk yet (a restore marks it saved) */
  st->world = 1;
  st->step_timeout = EWD_STEP_TIMEOUT_DEFAULT;
  r->items[r->n++] = st;
  r->state_bytes += model->state;
  if (model->workspace > r->peak_ws)
    r->peak_ws = model->workspace;
  *out = st;
  return 0;
}

int ewd_registry_create(ewd_registry_t *r, const ewd_config_t *lim, const ewd_key_t *k,
                        const ew_config_t *cfg, ewd_stream_t **out, char *msg, size_t msgcap) {
  ew_memory_model_t model;
  int rc = admit(r, lim, cfg, &model, msg, msgcap);
  if (rc)
    return rc;
  ew_stream_t *s = NULL;
  if ((rc = ew_stream_create(cfg, &s)) != 0) {
    snprintf(msg, msgcap, "%s", ew_strerror(rc));
    return rc;
  }
  if ((rc = insert(r, k, s, &model, out)) != 0)
    ew_stream_free(s);
  return rc;
}

int ewd_registry_adopt(ewd_registry_t *r, const ewd_config_t *lim, const ewd_key_t *k,
                       ew_stream_t *s, ewd_stream_t **out, char *msg, size_t msgcap) {
  ew_memory_model_t model;
  int rc = admit(r, lim, ew_stream_config(s), &model, msg, msgcap);
  return rc ? rc : insert(r, k, s, &model, out);
}

void ewd_registry_remove(ewd_registry_t *r, ewd_stream_t *st) {
  if (r->nbuckets)
    for (ewd_stream_t **pp = &r->buckets[st->hash & (r->nbuckets - 1)]; *pp; pp = &(*pp)->hnext)
      if (*pp == st) {
        *pp = st->hnext;
        break;
      }
  for (size_t i = 0; i < r->n; i++)
    if (r->items[i] == st) {
      r->items[i] = r->items[--r->n];
      r->state_bytes -= st->model.state;
      ewd_registry_window(r, st, 0);
      recompute_peak(r);
      break;
    }
}

void ewd_cache_clear(ewd_stream_t *st) {
  for (size_t i = 0; i < st->ncache; i++) {
    free(st->cache[i].key);
    ew_result_clear(&st->cache[i].res);
  }
  st->ncache = 0;
  st->cache_bytes = 0;
}

void ewd_stream_unref(ewd_stream_t *st) {
  if (--st->refs > 0)
    return;
  ewd_cache_clear(st);
  free(st->cache);
  free(st->expo); /* /metrics' lines (cmd/expo.c): one block */
  if (st->release) /* steps (dropped streams were discarded first), producers, ring, evals, rules */
    st->release(st);
  ew_stream_free(st->s); /* NULL after a FREE job */
  free(st);
}

const ew_result_t *ewd_cache_get(ewd_stream_t *st, const char *key) {
  for (size_t i = 0; i < st->ncache; i++)
    if (strcmp(st->cache[i].key, key) == 0)
      return &st->cache[i].res;
  return NULL;
}

/* A copy of `src` without vectors; *bytes is what it holds. */
static int copy_result(ew_result_t *dst, const ew_result_t *src, size_t *bytes) {
  *dst = *src;
  dst->list = NULL;
  dst->vectors = NULL;
  dst->groups = NULL;
  dst->dim = 0;
  *bytes = sizeof *dst;
  if (src->list) {
    if (!(dst->list = malloc(src->len * sizeof(double))))
      return -1;
    memcpy(dst->list, src->list, src->len * sizeof(double));
    *bytes += src->len * sizeof(double);
  }
  if (src->groups) { /* group_erank's labels */
    if (!(dst->groups = malloc(src->len * sizeof(uint32_t)))) {
      free(dst->list);
      dst->list = NULL;
      return -1;
    }
    memcpy(dst->groups, src->groups, src->len * sizeof(uint32_t));
    *bytes += src->len * sizeof(uint32_t);
  }
  return 0;
}

/* Entries are bounded in number and, together, to four spectra of the stream's d. */
static size_t cache_cap_bytes(const ewd_stream_t *st) {
  return 4 * (st->cfg.dim * sizeof(double) + sizeof(ew_result_t)) + 64 * 1024;
}

static void cache_drop_oldest(ewd_stream_t *st) {
  free(st->cache[0].key);
  ew_result_clear(&st->cache[0].res);
  st->cache_bytes -= st->cache[0].bytes;
  memmove(st->cache, st->cache + 1, (st->ncache - 1) * sizeof *st->cache);
  st->ncache--;
}

void ewd_cache_put(ewd_stream_t *st, const char *key, const ew_result_t *res) {
  ew_result_t tmp;
  size_t bytes;
  if (copy_result(&tmp, res, &bytes) != 0)
    return;
  bytes += strlen(key) + 1;
  for (size_t i = 0; i < st->ncache; i++)
    if (strcmp(st->cache[i].key, key) == 0) {
      ew_result_clear(&st->cache[i].res);
      st->cache_bytes += bytes - st->cache[i].bytes;
      st->cache[i].res = tmp;
      st->cache[i].bytes = bytes;
      return;
    }
  while (st->ncache && (st->ncache >= CACHE_MAX_ENTRIES ||
                        st->cache_bytes + bytes > cache_cap_bytes(st)))
    cache_drop_oldest(st);
  if (bytes > cache_cap_bytes(st)) {
    ew_result_clear(&tmp);
    return;
  }
  if (st->ncache == st->capcache) {
    size_t nc = st->capcache ? 2 * st->capcache : 8;
    ewd_cached_t *ni = realloc(st->cache, nc * sizeof *ni);
    if (!ni) {
      ew_result_clear(&tmp);
      return;
    }
    st->cache = ni;
    st->capcache = nc;
  }
  ewd_cached_t *c = &st->cache[st->ncache];
  if (!(c->key = strdup(key))) {
    ew_result_clear(&tmp);
    return;
  }
  c->res = tmp;
  c->bytes = bytes;
  st->cache_bytes += bytes;
  st->ncache++;
}

void ewd_registry_free(ewd_registry_t *r) {
  for (size_t i = 0; i < r->n; i++)
    ewd_stream_unref(r->items[i]);
  free(r->items);
  free(r->buckets);
  r->items = NULL;
  r->buckets = NULL;
  r->n = r->cap = r->nbuckets = 0;
  r->state_bytes = r->peak_ws = 0;
}

/* ---- producers (exactly-once ingest) ---- */

int ewd_producer_slot(ewd_stream_t *st, const char *name, size_t n) {
  for (size_t i = 0; i < st->nproducers; i++)
    if (strlen(st->producers[i].name) == n && memcmp(st->producers[i].name, name, n) == 0)
      return (int)i;
  if (st->nproducers >= EWD_PRODUCERS_MAX)
    return -1;
  ewd_producer_t *v = realloc(st->producers, (st->nproducers + 1) * sizeof *v);
  if (!v)
    return -1;
  st->producers = v;
  ewd_producer_t *p = &v[st->nproducers];
  memset(p, 0, sizeof *p);
  memcpy(p->name, name, n);
  return (int)st->nproducers++;
}
