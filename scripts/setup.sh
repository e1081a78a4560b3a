#!/usr/bin/env bash
# scripts/setup.sh — installs what eigenwatch needs from Debian's archive, only what is missing.
# Extra Debian packages may be named as arguments (scripts/demo-collapse.sh: python3-matplotlib).
# Needs root (uses sudo when not root). Safe to run again: it does nothing when all is there.
# Then fetches the page's chart library from npm into daemon/web/node_modules, and the JavaScript
# client's msgpack into clients/js/node_modules, at the versions their package-lock.json pin
# (npm ci), unless they are there already.
set -euo pipefail
PKGS=(meson ninja-build pkg-config gcc libc6-dev gzip xxd clang libclang-rt-14-dev
      libuv1-dev libmsgpack-dev libopenblas-dev liblapacke-dev libsqlite3-dev
      libhttp-parser-dev libjansson-dev libsystemd-dev systemd prometheus chromium
      python3 python3-venv python3-setuptools python3-wheel python3-numpy python3-msgpack python3-torch
      dataset-fashion-mnist zlib1g-dev victoria-metrics python3-yaml "$@")
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
command -v npm >/dev/null || missing+=(npm) # Debian's npm (and nodejs), unless a node is there
if ((${#missing[@]})); then
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; fi
  echo "setup: installing ${missing[*]}" >&2
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
root=$(cd "$(dirname "$0")/.." && pwd)
if [ ! -f "$root/clients/js/node_modules/@msgpack/msgpack/package.json" ]; then
  echo "setup: npm ci in clients/js (the JavaScript client's msgpack)" >&2
  (cd "$root/clients/js" && npm ci --no-audit --no-fund --loglevel=error)
fi
if [ ! -f "$root/daemon/web/node_modules/uplot/dist/uPlot.iife.min.js" ]; then
  echo "setup: npm ci in daemon/web (the page's chart library)" >&2
  (cd "$root/daemon/web" && npm ci --no-audit --no-fund --loglevel=error)
fi
