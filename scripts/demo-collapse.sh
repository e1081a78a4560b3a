#!/usr/bin/env bash
# scripts/demo-collapse.sh — a real training run watched by eigenwatchd: an MLP on Fashion-MNIST
# (CPU, Debian's PyTorch), once healthy and once with a learning-rate spike that collapses its
# later layers (dying ReLU); eigenwatch.torch.watch(step=...) streams three layers, the daemon
# evaluates entropy and effective rank by step and fires a `collapse` alert. Writes
# docs/img/demo-collapse.png (from the daemon's history) and docs/img/demo-page.png (its page in
# headless Chromium), and prints the steps and values (scripts/demo_collapse.py). A few minutes.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh python3-matplotlib
scripts/build.sh build >/dev/null
exec /usr/bin/python3 scripts/demo_collapse.py --daemon build/daemon/eigenwatchd --out docs/img "$@"
