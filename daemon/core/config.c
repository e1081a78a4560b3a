/* config.c — the configuration table (limits_table.h): defaults, `key = value` parsing with a sentence
 * for every refusal, deep copies, and the --help text. A file is parsed into a copy; the caller
 * applies it only when every line was good (SIGHUP reloads all or nothing). */
#include "core/ewd.h"

#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const ewd_config_info_t table[] = {
#define EWD__CROW(member, type, def, min, max, reload, doc)                                       \
  {#member, EWD_CT_##type, (uint64_t)(def), (uint64_t)(min), (uint64_t)(max), reload, doc,        \
   offsetof(ewd_config_t, member)},
    EWD_CONFIG_MAP(EWD__CROW)
#undef EWD__CROW
};

const ewd_config_info_t *ewd_config_table(size_t *n) {
  *n = sizeof table / sizeof table[0];
  return table;
}

void ewd_config_defaults(ewd_config_t *c) {
  memset(c, 0, sizeof *c);
  for (size_t i = 0; i < sizeof table / sizeof table[0]; i++) {
    void *dst = (char *)c + table[i].offset;
    switch (table[i].type) {
    case EWD_CT_SIZE:
    case EWD_CT_COUNT: *(uint64_t *)dst = table[i].def; break;
    case EWD_CT_SECONDS: *(double *)dst = (double)table[i].def; break;
    case EWD_CT_LEVEL: *(int *)dst = (int)table[i].def; break;
    case EWD_CT_PATH:
    case EWD_CT_LISTEN: break;
    }
  }
}

void ewd_config_free(ewd_config_t *c) {
  for (size_t i = 0; i < sizeof table / sizeof table[0]; i++) {
    void *dst = (char *)c + table[i].offset;
    if (table[i].type == EWD_CT_PATH) {
      free(*(char **)dst);
      *(char **)dst = NULL;
    } else if (table[i].type == EWD_CT_LISTEN) {
      ewd_c_LISTEN *l = dst;
      for (int k = 0; k < l->n; k++)
        free(l->v[k]);
      l->n = 0;
    }
  }
}

int ewd_config_copy(ewd_config_t *dst, const ewd_config_t *src) {
  *dst = *src;
  int bad = 0;
  for (size_t i = 0; i < sizeof table / sizeof table[0]; i++) {
    char *d = (char *)dst + table[i].offset;
    if (table[i].type == EWD_CT_PATH && *(char **)d) {
      if (!(*(char **)d = strdup(*(char **)d)))
        bad = 1;
    } else if (table[i].type == EWD_CT_LISTEN) {
      ewd_c_LISTEN *l = (ewd_c_LISTEN *)d;
      for (int k = 0; k < l->n; k++)
        if (!(l->v[k] = strdup(l->v[k])))
          bad = 1;
    }
  }
  return bad ? -1 : 0;
}

static int parse_u64(const char *v, bool size, uint64_t *out) {
  char *end;
  errno = 0;
  if (*v == '-')
    return -1;
  unsigned long long x = strtoull(v, &end, 10);
  if (errno || end == v)
    return -1;
  int shift = 0;
  if (size && (*end == 'K' || *end == 'k'))
    shift = 10, end++;
  else if (size && (*end == 'M' || *end == 'm'))
    shift = 20, end++;
  else if (size && (*end == 'G' || *end == 'g'))
    shift = 30, end++;
  if (*end || (shift && x > (UINT64_MAX >> shift)))
    return -1;
  *out = (uint64_t)x << shift;
  return 0;
}

int ewd_config_set(ewd_config_t *c, const char *key, const char *value, char *err, size_t cap) {
  const ewd_config_info_t *f = NULL;
  for (size_t i = 0; i < sizeof table / sizeof table[0]; i++)
    if (strcmp(table[i].key, key) == 0)
      f = &table[i];
  if (!f) {
    snprintf(err, cap, "unknown key (eigenwatchd --help lists them)");
    return -1;
  }
  void *dst = (char *)c + f->offset;
  uint64_t u;
  switch (f->type) {
  case EWD_CT_SIZE:
  case EWD_CT_COUNT:
    if (parse_u64(value, f->type == EWD_CT_SIZE, &u) || u < f->min || u > f->max) {
      snprintf(err, cap, "%s must be %s between %llu and %llu", f->key,
               f->type == EWD_CT_SIZE ? "a size (bytes; K, M, G suffixes)" : "an integer",
               (unsigned long long)f->min, (unsigned long long)f->max);
      return -1;
    }
    *(uint64_t *)dst = u;
    return 0;
  case EWD_CT_SECONDS: {
    char *end;
    double s = strtod(value, &end);
    if (end == value || *end || !(s >= (double)f->min && s <= (double)f->max)) {
      snprintf(err, cap, "%s must be a number of seconds between %llu and %llu", f->key,
               (unsigned long long)f->min, (unsigned long long)f->max);
      return -1;
    }
    *(double *)dst = s;
    return 0;
  }
  case EWD_CT_LEVEL: {
    ewd_log_level_t l;
    if (ewd_log_parse_level(value, &l)) {
      snprintf(err, cap, "%s must be error, warn, info or debug", f->key);
      return -1;
    }
    *(int *)dst = (int)l;
    return 0;
  }
  case EWD_CT_PATH: {
    if (!*value) {
      snprintf(err, cap, "%s must not be empty", f->key);
      return -1;
    }
    char *p = strdup(value);
    if (!p) {
      snprintf(err, cap, "out of memory");
      return -1;
    }
    free(*(char **)dst);
    *(char **)dst = p;
    return 0;
  }
  case EWD_CT_LISTEN: {
    ewd_c_LISTEN *l = dst;
    if (strncmp(value, "unix:", 5) != 0 && strncmp(value, "tcp:", 4) != 0) {
      snprintf(err, cap, "%s must be unix:PATH or tcp:HOST:PORT", f->key);
      return -1;
    }
    if (l->n >= EWD_LISTEN_MAX) {
      snprintf(err, cap, "at most %d listeners", EWD_LISTEN_MAX);
      return -1;
    }
    if (!(l->v[l->n] = strdup(value))) {
      snprintf(err, cap, "out of memory");
      return -1;
    }
    l->n++;
    return 0;
  }
  }
  snprintf(err, cap, "bad key type");
  return -1;
}

int ewd_config_read_file(ewd_config_t *c, const char *path) {
  FILE *f = fopen(path, "r");
  if (!f) {
    ewd_log(EWD_LOG_ERROR, "cannot read config", "path=\"%s\" error=\"%s\"", path,
            strerror(errno));
    return -1;
  }
  char line[1024];
  int lineno = 0, bad = 0;
  while (fgets(line, sizeof line, f)) {
    lineno++;
    char *p = line;
    while (*p == ' ' || *p == '\t')
      p++;
    if (*p == '#' || *p == '\n' || *p == '\r' || !*p)
      continue;
    char *eq = strchr(p, '=');
    char err[256];
    if (!eq) {
      ewd_log(EWD_LOG_ERROR, "bad config line", "path=\"%s\" line=%d reason=\"not key = value\"",
              path, lineno);
      bad = 1;
      continue;
    }
    char *k = p, *v = eq + 1, *e = eq;
    while (e > k && (e[-1] == ' ' || e[-1] == '\t'))
      e--;
    *e = 0;
    while (*v == ' ' || *v == '\t')
      v++;
    size_t vl = strlen(v);
    while (vl && (v[vl - 1] == '\n' || v[vl - 1] == ' ' || v[vl - 1] == '\r' || v[vl - 1] == '\t'))
      v[--vl] = 0;
    if (ewd_config_set(c, k, v, err, sizeof err)) {
      char ek[96];
      ewd_log(EWD_LOG_ERROR, "bad config line", "path=\"%s\" line=%d key=\"%s\" reason=\"%s\"",
              path, lineno, ewp_escape(ek, sizeof ek, k, strlen(k)), err);
      bad = 1;
    }
  }
  fclose(f);
  return bad ? -1 : 0;
}

const char *ewd_config_format(char *buf, size_t cap, const ewd_config_info_t *r, uint64_t v) {
  unsigned long long u = (unsigned long long)v;
  switch (r->type) {
  case EWD_CT_SIZE:
    if (v != 0 && v % EWD_GIB == 0)
      snprintf(buf, cap, "%lluG", u / EWD_GIB);
    else if (v != 0 && v % EWD_MIB == 0)
      snprintf(buf, cap, "%lluM", u / EWD_MIB);
    else if (v != 0 && v % EWD_KIB == 0)
      snprintf(buf, cap, "%lluK", u / EWD_KIB);
    else
      snprintf(buf, cap, "%llu", u);
    break;
  case EWD_CT_COUNT:
  case EWD_CT_SECONDS: snprintf(buf, cap, "%llu", u); break;
  case EWD_CT_LEVEL: snprintf(buf, cap, "%s", ewd_log_level_name((ewd_log_level_t)v)); break;
  default: snprintf(buf, cap, "-"); break;
  }
  return buf;
}

void ewd_config_usage(FILE *f) {
  fprintf(f, "usage: eigenwatchd [options]\n"
             "  --listen unix:PATH | tcp:HOST:PORT   listener (repeatable; replaces the config's)\n"
             "  --state-dir DIR      state directory\n"
             "  --auth-token-file F  TCP connections must send auth {token} first\n"
             "  --http HOST:PORT     HTTP listener for /metrics and /healthz (default "
             "127.0.0.1:7701; off: none)\n"
             "  --config FILE        key = value lines (keys below); SIGHUP reloads it, all or "
             "nothing\n"
             "  --foreground         stay attached (otherwise detach once listening)\n"
             "  --log-level LEVEL    error | warn | info | debug\n"
             "  --version, --help\n\nconfig keys (default; * = reloaded by SIGHUP):\n");
  for (size_t i = 0; i < sizeof table / sizeof table[0]; i++) {
    char def[32];
    fprintf(f, "  %-18s %s %-8s %s\n", table[i].key, table[i].reloadable ? "*" : " ",
            ewd_config_format(def, sizeof def, &table[i], table[i].def), table[i].doc);
  }
}
