#!/usr/bin/env bash
# scripts/run.sh [eigenwatchd options] — installs what is missing, builds, and runs the daemon in
# the foreground with its defaults: a Unix socket in $XDG_RUNTIME_DIR (or the state dir) and TCP
# on 127.0.0.1:7700. Ctrl-C stops it cleanly. (scripts/demo.sh runs the library demo instead.)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/build.sh build
echo "eigenwatchd: its 'ready' line below gives the page (page=) and the msgpack-RPC addresses (addresses=)" >&2
exec build/daemon/eigenwatchd --foreground "$@"
