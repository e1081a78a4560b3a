#!/usr/bin/env bash
# scripts/demo.sh — the library demo: Fashion-MNIST streamed through libeigenwatch in-process,
# printing entropy, effective rank, RankMe, the top eigenvalue and Diff-eRank as rows arrive.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/build.sh build
exec build/tools/ew_demo "$@"
