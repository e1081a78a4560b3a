#!/usr/bin/env bash
# scripts/run.sh — installs what is missing, builds, and runs eigenwatch with its defaults.
# Until the daemon (eigenwatchd) lands, this runs the library's demo instead: Fashion-MNIST
# streamed through libeigenwatch in-process, printing entropy, effective rank and the spectrum.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/build.sh build
echo "eigenwatch: the daemon is not built yet; running the library demo (build/tools/ew_demo)" >&2
exec build/tools/ew_demo "$@"
