/* sd.h — systemd integration (sd.c): notifications, watchdog, socket activation. */
#ifndef EWD_SD_H
#define EWD_SD_H

#include "core/ewd.h"

#include <stdbool.h>

/* Serves one inherited listening socket: HTTP when http, else msgpack-RPC. Returns 0 or -1
 * (logged). net/'s ewd_net_adopt, which main hands to ewd_sd_listeners (core calls no room
 * above it). */
typedef int (*ewd_sd_adopt_fn)(ewd_server_t *srv, int fd, bool http);
/* Serves the sockets systemd passed (LISTEN_FDS) through adopt: those named "http" as HTTP, the
 * rest as msgpack-RPC. *rpc / *http say whether any of each kind came (they then replace the
 * configured addresses). Returns 0 (also when none came) or -1 when one could not be served
 * (logged by adopt). */
int ewd_sd_listeners(ewd_server_t *srv, ewd_sd_adopt_fn adopt, bool *rpc, bool *http);
/* READY=1 (and starts the watchdog pings when WatchdogSec is set); call once serving. */
void ewd_sd_ready(ewd_server_t *srv);
/* RELOADING=1 before a SIGHUP reload, READY=1 after it. */
void ewd_sd_reloading(void);
void ewd_sd_reloaded(void);
/* STOPPING=1 as a stop begins. */
void ewd_sd_stopping(void);
/* Stops the watchdog timer (closes its handle) at the very end of a stop. */
void ewd_sd_close(void);

#endif
