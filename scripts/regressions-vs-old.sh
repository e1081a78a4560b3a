#!/usr/bin/env bash
# scripts/regressions-vs-old.sh [COMMIT] — shows that each regression test of the daemon's
# boundary fails on the daemon before it was rebuilt (default COMMIT 6c166cd, the last commit
# before the boundary issue) and passes on this tree. Builds COMMIT's daemon in a git worktree
# under /tmp, then runs tests/integration/test_boundary.py (one daemon per case) and
# test_access.py against both daemons and prints one line per case. Config keys the old daemon
# does not know are left out of its config files (it would refuse to start), so each case meets
# the old daemon's own defaults; a case that needs a flag the old daemon lacks fails at start.
# Needs a built tree in build/ (scripts/build.sh build).
set -uo pipefail
cd "$(dirname "$0")/.."
old=${1:-6c166cd}
wt=/tmp/eigenwatch-old-$old
[ -d "$wt" ] || git worktree add --detach "$wt" "$old" >/dev/null || exit 1
[ -d "$wt/build" ] || meson setup "$wt/build" "$wt" >/dev/null || exit 1
ninja -C "$wt/build" daemon/eigenwatchd >/dev/null || exit 1
old_keys=listen,state_dir,log_level,max_message_bytes,max_depth,max_elements,max_streams,max_memory,max_connections,conn_high_water,math_threads,blas_threads

run() { # label daemon [key list]
  local label=$1 bin=$2 keys=${3:-}
  for t in boundary access; do
    EWD_BIN=$bin EWD_CONFIG_KEYS=$keys EWD_CASE_PER_DAEMON=1 OPENBLAS_NUM_THREADS=1 \
      /usr/bin/python3 tests/integration/test_$t.py 2>/dev/null |
      sed -n "s/^\(not ok\|ok\) [0-9]* - \([a-z0-9_]*\).*/\2 \1/p" | sed "s/^/$label /"
  done
}
{ run old "$wt/build/daemon/eigenwatchd" "$old_keys"; run new build/daemon/eigenwatchd; } >/tmp/ewd-regressions.$$
printf '%-62s %-8s %-8s\n' case "$old" "this tree"
failed_old=0 passed_new=0 total=0
for c in $(awk '$1 == "new" {print $2}' /tmp/ewd-regressions.$$); do
  o=$(awk -v c="$c" '$1 == "old" && $2 == c {$1 = $2 = ""; print substr($0, 3)}' /tmp/ewd-regressions.$$)
  n=$(awk -v c="$c" '$1 == "new" && $2 == c {$1 = $2 = ""; print substr($0, 3)}' /tmp/ewd-regressions.$$)
  o=${o:-missing}
  printf '%-62s %-8s %-8s\n' "$c" "${o/not ok/FAILS}" "${n/not ok/FAILS}"
  total=$((total + 1))
  [ "$o" != ok ] && failed_old=$((failed_old + 1))
  [ "$n" = ok ] && passed_new=$((passed_new + 1))
done
rm -f /tmp/ewd-regressions.$$
echo "$total cases: $failed_old fail on $old, $passed_new pass on this tree"
[ "$failed_old" = "$total" ] && [ "$passed_new" = "$total" ]
