/* ewclient.c — the C client: sockets, framing (the proto skim), calls with timeouts, typed
 * helpers. See ewclient.h for the contract. */
#include "ewclient.h"

#include "ew_proto.h"
#include "eigenwatch.h" /* the error table only (EW_ERRNO_MAP): the client links no library */

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

/* Every wire error name (the library's one table) fits a reply's code. */
#define EWC__XX(s, wire, msg)                                                                     \
  _Static_assert(sizeof(wire) <= sizeof(((ewc_reply_t *)0)->code),                               \
                 "wire code " wire " fits ewc_reply_t.code");
EW_ERRNO_MAP(EWC__XX)
#undef EWC__XX

/* The project builds with hidden visibility; everything defined below is the public API. */
#pragma GCC visibility push(default)

struct ewc {
  int fd;
  int timeout_ms;
  char *run; /* sent with every stream this library names (NULL: the daemon's default run) */
  uint32_t msgid;
  uint8_t *buf;
  size_t len, cap;
  ew_skim_limits_t lim;
};

/* The run field after "stream", when the connection names a run. */
static void pack_run(const ewc_t *c, msgpack_packer *pk) {
  if (c->run) {
    ew_pack_str(pk, "run");
    ew_pack_str(pk, c->run);
  }
}

int ewc_set_run(ewc_t *c, const char *run) {
  char *r = run ? strdup(run) : NULL;
  if (run && !r)
    return EWC_ENOMEM;
  free(c->run);
  c->run = r;
  return EWC_OK;
}

const char *ewc_strerror(int err) {
  switch (err) {
  case EWC_OK: return "success";
  case EWC_EADDR: return "bad address (want unix:PATH or tcp:HOST:PORT)";
  case EWC_ECONNECT: return "cannot connect to the daemon";
  case EWC_EIO: return "the connection to the daemon broke";
  case EWC_ETIMEOUT: return "the daemon did not answer in time";
  case EWC_EPROTO: return "the daemon sent an invalid reply";
  case EWC_ERPC: return "the daemon answered an error";
  case EWC_ENOMEM: return "out of memory";
  case EWC_EARG: return "bad argument";
  default: return "unknown error";
  }
}

const char *ewc_default_address(char *buf, size_t cap) {
  const char *env = getenv("EIGENWATCH_ADDRESS");
  if (env && *env) {
    snprintf(buf, cap, "%s", env);
    return buf;
  }
  struct stat sb;
  const char *rt = getenv("XDG_RUNTIME_DIR");
  if (rt && *rt) {
    snprintf(buf, cap, "%s/eigenwatch.sock", rt);
    if (stat(buf, &sb) == 0) {
      char tmp[4200];
      snprintf(tmp, sizeof tmp, "unix:%s", buf);
      snprintf(buf, cap, "%s", tmp);
      return buf;
    }
  }
  const char *xs = getenv("XDG_STATE_HOME"), *home = getenv("HOME");
  char path[4096];
  if (xs && *xs)
    snprintf(path, sizeof path, "%s/eigenwatch/eigenwatch.sock", xs);
  else
    snprintf(path, sizeof path, "%s/.local/state/eigenwatch/eigenwatch.sock", home ? home : "");
  if (stat(path, &sb) == 0)
    snprintf(buf, cap, "unix:%s", path);
  else if (access(EWC_SYSTEM_SOCKET, R_OK | W_OK) == 0)
    snprintf(buf, cap, "unix:%s", EWC_SYSTEM_SOCKET);
  else
    snprintf(buf, cap, "tcp:127.0.0.1:7700");
  return buf;
}

static int fail(char *err, size_t cap, int code, const char *fmt, const char *a, const char *b) {
  if (err && cap)
    snprintf(err, cap, fmt, a, b);
  return code;
}

/* connect() bounded by timeout_ms (0: the kernel's own): 0, or the errno (ETIMEDOUT when the
 * time ran out). The socket is blocking again afterwards. */
static int connect_within(int fd, const struct sockaddr *sa, socklen_t len, int timeout_ms) {
  if (timeout_ms <= 0)
    return connect(fd, sa, len) == 0 ? 0 : errno;
  int fl = fcntl(fd, F_GETFL, 0);
  if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
    return errno;
  int e = 0;
  if (connect(fd, sa, len) != 0) {
    e = errno;
    if (e == EINPROGRESS) {
      struct pollfd p = {.fd = fd, .events = POLLOUT};
      int r;
      do
        r = poll(&p, 1, timeout_ms);
      while (r < 0 && errno == EINTR);
      int so = 0;
      socklen_t el = sizeof so;
      if (r == 0)
        e = ETIMEDOUT;
      else if (r < 0 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &so, &el) != 0)
        e = errno;
      else
        e = so;
    }
  }
  if (e == 0 && fcntl(fd, F_SETFL, fl) < 0)
    e = errno;
  return e;
}

int ewc_connect(const char *address, int timeout_ms, ewc_t **out, char *err, size_t errcap) {
  char def[4200];
  if (!address)
    address = ewc_default_address(def, sizeof def);
  int fd = -1;
  if (strncmp(address, "unix:", 5) == 0) {
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (strlen(address + 5) >= sizeof sa.sun_path)
      return fail(err, errcap, EWC_EADDR, "socket path too long: %s%s", address, "");
    strcpy(sa.sun_path, address + 5);
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
      int e = errno;
      if (fd >= 0)
        close(fd);
      return fail(err, errcap, EWC_ECONNECT, "cannot connect to %s: %s", address, strerror(e));
    }
  } else if (strncmp(address, "tcp:", 4) == 0) {
    char host[256];
    const char *colon = strrchr(address + 4, ':');
    if (!colon || colon == address + 4 || (size_t)(colon - address - 4) >= sizeof host)
      return fail(err, errcap, EWC_EADDR, "bad address %s%s (want tcp:HOST:PORT)", address, "");
    memcpy(host, address + 4, (size_t)(colon - address - 4));
    host[colon - address - 4] = 0;
    char *h = host;
    size_t hl = strlen(h);
    if (hl > 1 && h[0] == '[' && h[hl - 1] == ']') {
      h[hl - 1] = 0;
      h++;
    }
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res = NULL;
    if (getaddrinfo(h, colon + 1, &hints, &res) != 0 || !res)
      return fail(err, errcap, EWC_EADDR, "cannot resolve %s%s", address, "");
    int e = ECONNREFUSED;
    for (struct addrinfo *ai = res; ai && fd < 0; ai = ai->ai_next) {
      fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
      if (fd >= 0 && (e = connect_within(fd, ai->ai_addr, ai->ai_addrlen, timeout_ms)) != 0) {
        close(fd);
        fd = -1;
      }
    }
    freeaddrinfo(res);
    if (fd < 0)
      return fail(err, errcap, EWC_ECONNECT, "cannot connect to %s: %s", address, strerror(e));
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  } else {
    return fail(err, errcap, EWC_EADDR, "bad address '%s'%s (want unix:PATH or tcp:HOST:PORT)",
                address, "");
  }
  int rc = ewc_from_fd(fd, timeout_ms, out);
  if (rc)
    close(fd);
  return rc;
}

int ewc_from_fd(int fd, int timeout_ms, ewc_t **out) {
  ewc_t *c = calloc(1, sizeof *c);
  if (!c)
    return EWC_ENOMEM;
  c->fd = fd;
  c->timeout_ms = timeout_ms;
  ew_skim_limits_default(&c->lim);
  c->lim.max_bytes = (size_t)1 << 30; /* replies (spectra, vectors) may be large */
  c->lim.max_elements = (uint64_t)1 << 28;
  *out = c;
  return 0;
}

void ewc_set_msgid(ewc_t *c, uint32_t last) { c->msgid = last; }

void ewc_close(ewc_t *c) {
  if (!c)
    return;
  close(c->fd);
  free(c->buf);
  free(c->run);
  free(c);
}

void ewc_reply_free(ewc_reply_t *r) {
  if (!r)
    return;
  if (r->upk.zone)
    msgpack_unpacked_destroy(&r->upk);
  free(r->raw);
  r->raw = NULL;
  r->upk.zone = NULL;
  r->result = NULL;
}

static int send_all(ewc_t *c, const char *p, size_t n) {
  while (n > 0) {
    ssize_t w = send(c->fd, p, n, MSG_NOSIGNAL);
    if (w < 0 && errno == EINTR)
      continue;
    if (w <= 0)
      return EWC_EIO;
    p += w;
    n -= (size_t)w;
  }
  return 0;
}

static int send_message(ewc_t *c, int type, uint32_t msgid, const char *method,
                        const msgpack_sbuffer *params) {
  msgpack_sbuffer sb;
  msgpack_sbuffer_init(&sb);
  msgpack_packer pk;
  msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
  msgpack_pack_array(&pk, type == 0 ? 4 : 3);
  msgpack_pack_int(&pk, type);
  if (type == 0)
    msgpack_pack_uint32(&pk, msgid);
  ew_pack_str(&pk, method);
  if (params && params->size) {
    msgpack_pack_array(&pk, 1);
    msgpack_sbuffer_write(&sb, params->data, params->size);
  } else {
    msgpack_pack_array(&pk, 0);
  }
  int rc = send_all(c, sb.data, sb.size);
  msgpack_sbuffer_destroy(&sb);
  return rc;
}

static long now_ms(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec * 1000L + t.tv_nsec / 1000000L;
}

/* Reads until one complete message is buffered; returns its length. */
static int read_message(ewc_t *c, size_t *mlen) {
  long deadline = c->timeout_ms > 0 ? now_ms() + c->timeout_ms : 0;
  ew_skim_t sk;
  ew_skim_reset(&sk);
  for (;;) {
    if (c->len > 0) {
      ew_skim_status_t st = ew_skim(&sk, c->buf, c->len, &c->lim, mlen);
      if (st == EW_SKIM_DONE)
        return 0;
      if (st != EW_SKIM_NEED_MORE)
        return EWC_EPROTO;
    }
    if (c->cap - c->len < 65536) {
      size_t nc = c->cap ? 2 * c->cap : 65536;
      uint8_t *nb = realloc(c->buf, nc);
      if (!nb)
        return EWC_ENOMEM;
      c->buf = nb;
      c->cap = nc;
    }
    int wait = -1;
    if (deadline) {
      long left = deadline - now_ms();
      if (left <= 0)
        return EWC_ETIMEOUT;
      wait = (int)left;
    }
    struct pollfd p = {.fd = c->fd, .events = POLLIN};
    int pr = poll(&p, 1, wait);
    if (pr == 0)
      return EWC_ETIMEOUT;
    if (pr < 0) {
      if (errno == EINTR)
        continue;
      return EWC_EIO;
    }
    ssize_t r = recv(c->fd, c->buf + c->len, c->cap - c->len, 0);
    if (r < 0 && errno == EINTR)
      continue;
    if (r <= 0)
      return EWC_EIO;
    c->len += (size_t)r;
  }
}

int ewc_call(ewc_t *c, const char *method, const msgpack_sbuffer *params, ewc_reply_t *out) {
  memset(out, 0, sizeof *out);
  uint32_t id = ++c->msgid;
  int rc = send_message(c, 0, id, method, params);
  if (rc)
    return rc;
  for (;;) {
    size_t mlen;
    if ((rc = read_message(c, &mlen)) != 0)
      return rc;
    ewc_reply_free(out);
    if (!(out->raw = malloc(mlen ? mlen : 1)))
      return EWC_ENOMEM;
    memcpy(out->raw, c->buf, mlen); /* msgpack-c's objects point into these bytes */
    memmove(c->buf, c->buf + mlen, c->len - mlen);
    c->len -= mlen;
    msgpack_unpacked_init(&out->upk);
    size_t off = 0;
    msgpack_unpack_return ur = msgpack_unpack_next(&out->upk, out->raw, mlen, &off);
    if (ur != MSGPACK_UNPACK_SUCCESS)
      return EWC_EPROTO;
    const msgpack_object *m = &out->upk.data;
    uint64_t type, mid;
    if (m->type != MSGPACK_OBJECT_ARRAY || m->via.array.size != 4 ||
        !ew_obj_uint(&m->via.array.ptr[0], &type) || type != 1 ||
        !ew_obj_uint(&m->via.array.ptr[1], &mid))
      return EWC_EPROTO;
    if (mid != id && mid != 0) /* a reply to something else: skip it */
      continue;
    const msgpack_object *e = &m->via.array.ptr[2];
    if (e->type != MSGPACK_OBJECT_NIL) {
      const char *p;
      size_t n;
      const msgpack_object *code = ew_map_get(e, "code"), *msg = ew_map_get(e, "message");
      if (code && ew_obj_bytes(code, &p, &n))
        snprintf(out->code, sizeof out->code, "%.*s", (int)n, p);
      if (msg && ew_obj_bytes(msg, &p, &n))
        snprintf(out->message, sizeof out->message, "%.*s", (int)n, p);
      return EWC_ERPC;
    }
    out->result = &m->via.array.ptr[3];
    return 0;
  }
}

int ewc_notify(ewc_t *c, const char *method, const msgpack_sbuffer *params) {
  return send_message(c, 2, 0, method, params);
}

const msgpack_object *ewc_get(const msgpack_object *map, const char *key) {
  return ew_map_get(map, key);
}

bool ewc_get_double(const msgpack_object *map, const char *key, double *out) {
  const msgpack_object *o = ew_map_get(map, key);
  return o && ew_obj_number(o, out);
}

bool ewc_get_u64(const msgpack_object *map, const char *key, uint64_t *out) {
  const msgpack_object *o = ew_map_get(map, key);
  return o && ew_obj_uint(o, out);
}

int ewc_ingest(ewc_t *c, const char *stream, const void *data, const char *dtype, size_t n,
               size_t d, bool notify, uint64_t *count, ewc_reply_t *err) {
  size_t esz = !strcmp(dtype, "f32") ? 4 : !strcmp(dtype, "f64") ? 8
               : (!strcmp(dtype, "f16") || !strcmp(dtype, "bf16")) ? 2 : 0;
  if (!esz)
    return EWC_EARG;
  msgpack_sbuffer sb;
  msgpack_sbuffer_init(&sb);
  msgpack_packer pk;
  msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
  msgpack_pack_map(&pk, 4 + (c->run != NULL));
  ew_pack_str(&pk, "stream");
  ew_pack_str(&pk, stream);
  pack_run(c, &pk);
  ew_pack_str(&pk, "data");
  msgpack_pack_bin(&pk, n * d * esz);
  msgpack_pack_bin_body(&pk, data, n * d * esz);
  ew_pack_str(&pk, "dtype");
  ew_pack_str(&pk, dtype);
  ew_pack_str(&pk, "shape");
  msgpack_pack_array(&pk, 2);
  msgpack_pack_uint64(&pk, n);
  msgpack_pack_uint64(&pk, d);
  int rc;
  if (notify) {
    rc = ewc_notify(c, "ingest", &sb);
  } else {
    ewc_reply_t tmp, *r = err ? err : &tmp;
    rc = ewc_call(c, "ingest", &sb, r);
    if (rc == 0 && count)
      ewc_get_u64(r->result, "count", count);
    if (r == &tmp)
      ewc_reply_free(&tmp);
  }
  msgpack_sbuffer_destroy(&sb);
  return rc;
}

int ewc_export(ewc_t *c, const char *stream, const void **state, size_t *len, uint64_t *count,
               ewc_reply_t *out) {
  msgpack_sbuffer sb;
  msgpack_sbuffer_init(&sb);
  msgpack_packer pk;
  msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
  msgpack_pack_map(&pk, 1 + (c->run != NULL));
  ew_pack_str(&pk, "stream");
  ew_pack_str(&pk, stream);
  pack_run(c, &pk);
  int rc = ewc_call(c, "export", &sb, out);
  msgpack_sbuffer_destroy(&sb);
  if (rc)
    return rc;
  const msgpack_object *st = ewc_get(out->result, "state");
  if (!st || st->type != MSGPACK_OBJECT_BIN)
    return EWC_EPROTO;
  *state = st->via.bin.ptr;
  *len = st->via.bin.size;
  if (count)
    ewc_get_u64(out->result, "count", count);
  return 0;
}

int ewc_merge(ewc_t *c, const char *stream, const void *state, size_t len, ewc_reply_t *out) {
  msgpack_sbuffer sb;
  msgpack_sbuffer_init(&sb);
  msgpack_packer pk;
  msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
  msgpack_pack_map(&pk, 2 + (c->run != NULL));
  ew_pack_str(&pk, "stream");
  ew_pack_str(&pk, stream);
  pack_run(c, &pk);
  ew_pack_str(&pk, "state");
  msgpack_pack_bin(&pk, len);
  msgpack_pack_bin_body(&pk, state, len);
  int rc = ewc_call(c, "merge", &sb, out);
  msgpack_sbuffer_destroy(&sb);
  return rc;
}

int ewc_query(ewc_t *c, const char *stream, const char *const *metrics, size_t nmetrics,
              const msgpack_sbuffer *params, int center, const char *source, bool fresh,
              int64_t max_lag, ewc_reply_t *out) {
  msgpack_sbuffer sb;
  msgpack_sbuffer_init(&sb);
  msgpack_packer pk;
  msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
  size_t nk = 2 + (params && params->size) + (center >= 0) + (source != NULL) + fresh +
              (max_lag >= 0);
  msgpack_pack_map(&pk, nk + (c->run != NULL));
  ew_pack_str(&pk, "stream");
  ew_pack_str(&pk, stream);
  pack_run(c, &pk);
  ew_pack_str(&pk, "metrics");
  msgpack_pack_array(&pk, nmetrics);
  for (size_t i = 0; i < nmetrics; i++)
    ew_pack_str(&pk, metrics[i]);
  if (params && params->size) {
    ew_pack_str(&pk, "params");
    msgpack_sbuffer_write(&sb, params->data, params->size);
  }
  if (center >= 0) {
    ew_pack_str(&pk, "center");
    center ? msgpack_pack_true(&pk) : msgpack_pack_false(&pk);
  }
  if (source) {
    ew_pack_str(&pk, "source");
    ew_pack_str(&pk, source);
  }
  if (fresh) {
    ew_pack_str(&pk, "fresh");
    msgpack_pack_true(&pk);
  }
  if (max_lag >= 0) {
    ew_pack_str(&pk, "max_lag");
    msgpack_pack_uint64(&pk, (uint64_t)max_lag);
  }
  int rc = ewc_call(c, "query", &sb, out);
  msgpack_sbuffer_destroy(&sb);
  return rc;
}

#pragma GCC visibility pop

/* ---- several daemons: placement ---- */

uint64_t ewc_fnv1a64(const void *p, size_t n) {
  const unsigned char *b = p;
  uint64_t h = 0xcbf29ce484222325ULL;
  for (size_t i = 0; i < n; i++)
    h = (h ^ b[i]) * 0x100000001b3ULL;
  return h;
}

uint64_t ewc_score(const char *run, const char *stream, const char *address) {
  static const unsigned char zero = 0;
  const char *r = run ? run : "default";
  /* FNV-1a runs byte by byte: the key's parts one after another hash as their concatenation */
  uint64_t h = 0xcbf29ce484222325ULL;
  const struct { const void *p; size_t n; } parts[] = {
      {r, strlen(r)}, {&zero, 1}, {stream, strlen(stream)}, {&zero, 1},
      {address, strlen(address)}};
  for (size_t k = 0; k < sizeof parts / sizeof parts[0]; k++) {
    const unsigned char *b = parts[k].p;
    for (size_t i = 0; i < parts[k].n; i++)
      h = (h ^ b[i]) * 0x100000001b3ULL;
  }
  return h;
}

size_t ewc_place(const char *run, const char *stream, const char *const *addrs, size_t n) {
  size_t best = n;
  uint64_t best_h = 0;
  for (size_t i = 0; i < n; i++) {
    uint64_t h = ewc_score(run, stream, addrs[i]);
    if (best == n || h > best_h || (h == best_h && strcmp(addrs[i], addrs[best]) < 0))
      best = i, best_h = h;
  }
  return best;
}

size_t ewc_addresses(const char *spec, char *buf, size_t cap, const char **out, size_t max) {
  size_t n = 0, used = 0;
  for (const char *p = spec; p && *p;) {
    const char *e = strchr(p, ',');
    size_t len = e ? (size_t)(e - p) : strlen(p);
    const char *a = p, *z = p + len;
    while (a < z && (*a == ' ' || *a == '\t'))
      a++;
    while (z > a && (z[-1] == ' ' || z[-1] == '\t'))
      z--;
    size_t k = (size_t)(z - a);
    bool repeat = false;
    for (size_t i = 0; i < n && !repeat; i++)
      repeat = strlen(out[i]) == k && memcmp(out[i], a, k) == 0;
    if (k && !repeat) {
      if (n == max || used + k + 1 > cap)
        return n;
      memcpy(buf + used, a, k);
      buf[used + k] = 0;
      out[n++] = buf + used;
      used += k + 1;
    }
    p = e ? e + 1 : p + len;
  }
  return n;
}
