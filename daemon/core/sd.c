/* sd.c — the daemon under systemd (libsystemd): readiness and stop notifications, the watchdog,
 * and listeners inherited by socket activation. Outside systemd (no NOTIFY_SOCKET, no LISTEN_FDS)
 * every function here does nothing.
 *
 * Notifications (sd_notify; NotifyAccess=main): READY=1 once every listener is open and the math
 * threads run; RELOADING=1 then READY=1 around a SIGHUP reload; STOPPING=1 when a stop begins
 * (the drain and the last snapshots follow); STATUS= with a sentence at each. WATCHDOG=1 every
 * half of WatchdogSec from a timer on the loop, so a wedged loop stops the pings and systemd
 * restarts the daemon; it keeps pinging through the drain.
 *
 * Socket activation (sd_listen_fds_with_names): sockets named `http` (FileDescriptorName=http)
 * serve HTTP, every other one msgpack-RPC, each handed to the adopt callback main passes (net/'s
 * ewd_net_adopt). Inherited RPC sockets replace the configured `listen` addresses, an inherited
 * HTTP socket the `http` address. */
#include "core/sd.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

static uv_timer_t watchdog;
static bool watchdog_on;

int ewd_sd_listeners(ewd_server_t *srv, ewd_sd_adopt_fn adopt, bool *rpc, bool *http) {
  *rpc = *http = false;
  char **names = NULL;
  int n = sd_listen_fds_with_names(1, &names);
  if (n < 0) {
    ewd_log(EWD_LOG_ERROR, "socket activation: cannot read LISTEN_FDS", "error=\"%s\"",
            strerror(-n));
    return -1;
  }
  int rc = 0;
  for (int i = 0; i < n; i++) {
    int fd = SD_LISTEN_FDS_START + i;
    bool is_http = names && names[i] && !strcmp(names[i], "http");
    if (adopt(srv, fd, is_http) != 0)
      rc = -1;
    *(is_http ? http : rpc) = true;
  }
  if (n > 0)
    ewd_log(EWD_LOG_INFO, "socket activation: serving the inherited sockets instead of the "
            "configured addresses", "sockets=%d rpc=%s http=%s", n, *rpc ? "inherited" : "config",
            *http ? "inherited" : "config");
  if (names)
    for (int i = 0; i < n; i++)
      free(names[i]);
  free(names);
  return rc;
}

static void on_watchdog(uv_timer_t *t) {
  (void)t;
  sd_notify(0, "WATCHDOG=1");
}

void ewd_sd_ready(ewd_server_t *srv) {
  uint64_t usec = 0;
  if (sd_watchdog_enabled(0, &usec) > 0 && usec > 0) {
    uv_timer_init(srv->loop, &watchdog);
    uint64_t every_ms = usec / 2000 ? usec / 2000 : 1;
    uv_timer_start(&watchdog, on_watchdog, every_ms, every_ms);
    uv_unref((uv_handle_t *)&watchdog); /* never what keeps the loop alive */
    watchdog_on = true;
    ewd_log(EWD_LOG_INFO, "systemd watchdog on", "interval_ms=%llu",
            (unsigned long long)every_ms);
  }
  sd_notifyf(0, "READY=1\nSTATUS=serving (pid %d)\nMAINPID=%d", (int)getpid(), (int)getpid());
}

void ewd_sd_reloading(void) { sd_notify(0, "RELOADING=1\nSTATUS=reloading the config"); }

void ewd_sd_reloaded(void) { sd_notify(0, "READY=1\nSTATUS=serving (config reloaded)"); }

void ewd_sd_stopping(void) {
  sd_notify(0, "STOPPING=1\nSTATUS=stopping: draining queued work, writing the last snapshots");
}

void ewd_sd_close(void) {
  if (!watchdog_on)
    return;
  uv_timer_stop(&watchdog);
  uv_close((uv_handle_t *)&watchdog, NULL);
  watchdog_on = false;
}
