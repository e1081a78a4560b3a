/* registry.c — the named streams, as the loop thread sees them: lookup, creation under the
 * stream-count and memory limits, removal, reference counts (an entry outlives its removal while
 * jobs still hold it), and the loop-side result cache that lets a query be answered without
 * waiting for a stream that is busy in a worker. */
#include "ewd.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

bool ewd_name_valid(const char *p, size_t n) {
  if (n < 1 || n > EWD_NAME_MAX)
    return false;
  for (size_t i = 0; i < n; i++) {
    char c = p[i];
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
          c == '.' || c == ':' || c == '/' || c == '-'))
      return false;
  }
  return true;
}

ewd_stream_t *ewd_registry_find(ewd_registry_t *r, const char *name, size_t n) {
  for (size_t i = 0; i < r->n; i++)
    if (strlen(r->items[i]->name) == n && memcmp(r->items[i]->name, name, n) == 0)
      return r->items[i];
  return NULL;
}

size_t ewd_config_memory(const ew_config_t *c) {
  size_t d = c->dim;
  size_t m = 8 * d * d + 16 * d + 4096;
  if (c->window)
    m += 8 * d * d + 4 * c->window * d;
  if (c->live_k)
    m += 4 * c->shuffle * d + 16 * c->live_k * d;
  return m;
}

int ewd_registry_create(ewd_registry_t *r, const ewd_limits_t *lim, const char *name, size_t n,
                        const ew_config_t *cfg, ewd_stream_t **out, char *msg, size_t msgcap) {
  if (r->n >= lim->max_streams) {
    snprintf(msg, msgcap, "the daemon already holds %zu streams (limit max_streams = %zu); drop "
             "one or raise the limit", r->n, lim->max_streams);
    return EW_ELIMIT;
  }
  int rc = ew_config_check(cfg, msg, msgcap);
  if (rc)
    return rc;
  size_t need = ewd_config_memory(cfg);
  if (r->memory + need > lim->max_memory) {
    snprintf(msg, msgcap, "creating this stream needs %zu bytes; %zu of max_memory = %zu are in "
             "use", need, r->memory, lim->max_memory);
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
  ewd_stream_t *st = calloc(1, sizeof *st);
  if (!st)
    return EW_ENOMEM;
  if ((rc = ew_stream_create(cfg, &st->s)) != 0) {
    free(st);
    snprintf(msg, msgcap, "%s", ew_strerror(rc));
    return rc;
  }
  memcpy(st->name, name, n);
  st->name[n] = 0;
  st->cfg = *cfg;
  st->memory = ew_stream_memory(st->s);
  st->refs = 1;
  r->items[r->n++] = st;
  r->memory += st->memory;
  *out = st;
  return 0;
}

void ewd_registry_remove(ewd_registry_t *r, ewd_stream_t *st) {
  for (size_t i = 0; i < r->n; i++)
    if (r->items[i] == st) {
      r->items[i] = r->items[--r->n];
      r->memory -= st->memory;
      break;
    }
}

void ewd_cache_clear(ewd_stream_t *st) {
  for (size_t i = 0; i < st->ncache; i++) {
    free(st->cache[i].key);
    ew_result_clear(&st->cache[i].res);
  }
  st->ncache = 0;
}

void ewd_stream_unref(ewd_stream_t *st) {
  if (--st->refs > 0)
    return;
  ewd_cache_clear(st);
  free(st->cache);
  ew_stream_free(st->s); /* NULL after a FREE job */
  free(st);
}

const ew_result_t *ewd_cache_get(ewd_stream_t *st, const char *key) {
  for (size_t i = 0; i < st->ncache; i++)
    if (strcmp(st->cache[i].key, key) == 0)
      return &st->cache[i].res;
  return NULL;
}

static int copy_result(ew_result_t *dst, const ew_result_t *src) {
  *dst = *src;
  dst->list = NULL;
  dst->vectors = NULL;
  if (src->list && !(dst->list = malloc(src->len * sizeof(double))))
    return -1;
  if (src->list)
    memcpy(dst->list, src->list, src->len * sizeof(double));
  if (src->vectors && !(dst->vectors = malloc(src->len * src->dim * sizeof(double)))) {
    free(dst->list);
    dst->list = NULL;
    return -1;
  }
  if (src->vectors)
    memcpy(dst->vectors, src->vectors, src->len * src->dim * sizeof(double));
  return 0;
}

void ewd_cache_put(ewd_stream_t *st, const char *key, const ew_result_t *res) {
  for (size_t i = 0; i < st->ncache; i++)
    if (strcmp(st->cache[i].key, key) == 0) {
      ew_result_t tmp;
      if (copy_result(&tmp, res) == 0) {
        ew_result_clear(&st->cache[i].res);
        st->cache[i].res = tmp;
      }
      return;
    }
  if (st->ncache >= 64) /* a small cache: dashboards ask the same few questions */
    return;
  if (st->ncache == st->capcache) {
    size_t nc = st->capcache ? 2 * st->capcache : 8;
    ewd_cached_t *ni = realloc(st->cache, nc * sizeof *ni);
    if (!ni)
      return;
    st->cache = ni;
    st->capcache = nc;
  }
  ewd_cached_t *c = &st->cache[st->ncache];
  if (!(c->key = strdup(key)))
    return;
  if (copy_result(&c->res, res) != 0) {
    free(c->key);
    return;
  }
  st->ncache++;
}

void ewd_registry_free(ewd_registry_t *r) {
  for (size_t i = 0; i < r->n; i++)
    ewd_stream_unref(r->items[i]);
  free(r->items);
  r->items = NULL;
  r->n = r->cap = 0;
}
