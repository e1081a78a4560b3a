#!/usr/bin/env bash
# scripts/demo-dsmi.sh — diffusion spectral entropy and mutual information during training (Liao
# et al. 2023's observation, on a real run): the demo MLP on Fashion-MNIST (CPU, Debian's
# PyTorch) watched with each row's class as its label (watch(labels=...)); the daemon evaluates
# dse and dsmi(Z; Y) of fc1-fc3 every 10 steps, and the script measures test accuracy beside
# them. Writes docs/img/demo-dsmi.png (from the daemon's history) and prints the values and their
# correlation with accuracy (scripts/demo_dsmi.py). A few minutes.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh python3-matplotlib
scripts/build.sh build >/dev/null
exec /usr/bin/python3 scripts/demo_dsmi.py --daemon build/daemon/eigenwatchd --out docs/img "$@"
