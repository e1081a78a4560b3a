#!/usr/bin/env bash
# scripts/test.sh — the whole test suite: installs what is missing, builds a normal tree (build/)
# and an AddressSanitizer + UndefinedBehaviorSanitizer tree (build-asan/), runs every test in
# both, and ends with one line "N passed, N failed" counted from meson's JSON logs.
set -uo pipefail
cd "$(dirname "$0")/.."
fail_early() { echo "test.sh: $1" >&2; echo "0 passed, 1 failed"; exit 1; }

scripts/setup.sh || fail_early "installing dependencies failed"
scripts/build.sh build || fail_early "build failed"
scripts/build.sh build-asan -Db_sanitize=address,undefined -Dbuildtype=debug \
  || fail_early "sanitizer build failed"

# which CPU ran the suite (OpenBLAS picks its kernels by CPU: a number must hold on every one)
echo "test.sh: cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'); openblas: $(pkg-config --modversion openblas 2>/dev/null || echo '?')"
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
rc=0
meson test -C build --print-errorlogs || rc=1
meson test -C build-asan --print-errorlogs || rc=1

/usr/bin/python3 - <<'PY'
import glob, json
ok = bad = 0
for f in ("build/meson-logs/testlog.json", "build-asan/meson-logs/testlog.json"):
    try:
        rows = [json.loads(l) for l in open(f)]
    except OSError:
        bad += 1
        continue
    ok += sum(r["result"] in ("OK", "EXPECTEDFAIL") for r in rows)
    bad += sum(r["result"] in ("FAIL", "UNEXPECTEDPASS", "TIMEOUT", "ERROR") for r in rows)
print(f"{ok} passed, {bad} failed")
PY
exit $rc
