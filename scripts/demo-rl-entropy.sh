#!/usr/bin/env bash
# scripts/demo-rl-entropy.sh — a small real RL run that shows policy entropy collapse: a GRU
# policy trained by GRPO on a task with a checkable reward, as two ranks (torch.distributed, gloo on
# loopback, CPU, Debian's PyTorch), once with the plain policy gradient (entropy collapses while
# Cov(log π, A) stays positive) and once with Clip-Cov (entropy held up). Writes
# build/demo-rl/demo-rl-entropy.png (entropy, Cov and reward by step, both runs) and prints each
# run's figures (scripts/demo_rl_entropy.py). About a minute and a half; arguments go to the script
# (--seed N, --steps N, --runs plain, --out DIR, --clip-ratio R, ...).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh python3-matplotlib
scripts/build.sh build >/dev/null
# ---- the daemon (not yet): once eigenwatchd evaluates the tokens kind and the client has
# eigenwatch.rl.TokenStream, add `--daemon build/daemon/eigenwatchd` below: the script then starts
# it, hands its address to both ranks as EIGENWATCH_ADDRESS, and stops it at the end. Without it,
# each rank writes its tokens to build/demo-rl/RUN.tokens.rankR.jsonl.
exec /usr/bin/python3 scripts/demo_rl_entropy.py "$@"
