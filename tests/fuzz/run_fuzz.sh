#!/usr/bin/env bash
# run_fuzz.sh SOURCE_ROOT SECONDS [TARGET...] — builds the fuzz targets with clang's libFuzzer
# under AddressSanitizer + UBSan, seeds their corpora from proto/vectors/v1.tsv (seeds.py), runs
# each for SECONDS and reports TAP. Targets: decoder (the skim and msgpack-c on raw bytes),
# dispatch (bytes → connection → decode → the real handlers on a real stream → encoded replies;
# fuzz_dispatch.c) and http (the same with an HTTP connection: http-parser, /metrics, the page,
# /api/v1 → the handlers; fuzz_dispatch.c -DFUZZ_HTTP, seeded with requests written here). A crash, leak, hang, sanitizer report or broken invariant fails the test (the
# reproducer is kept in the log). Set FUZZ_KEEP=DIR to keep the corpora and logs.
set -u
root=$(cd "$1" && pwd) secs=${2:-20}
shift 2 2>/dev/null || shift $#
targets=${*:-decoder dispatch http}
tmp=${FUZZ_KEEP:-$(mktemp -d)}
mkdir -p "$tmp"
[ -n "${FUZZ_KEEP:-}" ] || trap 'rm -rf "$tmp"' EXIT
n=0 bad=0
flags="-g -O1 -std=gnu11 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined"
deps="$(pkg-config --cflags --libs msgpack libuv openblas lapacke sqlite3) -lhttp_parser $(pkg-config --cflags --libs jansson) -lm -lpthread"
src_decoder="$root/proto/skim.c $root/proto/codec.c $root/tests/fuzz/fuzz_decoder.c"
src_dispatch="$root/lib/*.c $root/lib/*/*.c $root/proto/*.c $root/daemon/config.c $root/daemon/log.c
  $root/daemon/stats.c $root/daemon/registry.c $root/daemon/pool.c $root/daemon/persist.c $root/daemon/restore.c $root/daemon/steps.c
  $root/daemon/state_jobs.c $root/daemon/train.c $root/daemon/merge_plan.c $root/daemon/steps_index.c
  $root/daemon/eval.c $root/daemon/eval_save.c $root/daemon/history.c $root/daemon/history_read.c
  $root/daemon/alerts.c $root/daemon/alerts_save.c $root/daemon/subs.c
  $root/daemon/expo.c
  $root/daemon/net/*.c
  $root/daemon/cmd/*.c $tmp/web_assets.c $root/tests/fuzz/fuzz_dispatch.c"
src_http="$src_dispatch -DFUZZ_HTTP"
# the page's table (the fuzz targets do not serve it; one file keeps the link whole)
/usr/bin/python3 "$root/tools/embed_web.py" "$tmp/web_assets.c" "/index.html=$root/daemon/web/index.html"
/usr/bin/python3 "$root/tests/fuzz/seeds.py" "$root/proto/vectors/v1.tsv" "$tmp/corpus_decoder" \
  "$tmp/corpus_dispatch"
mkdir -p "$tmp/corpus_http" # byte 0: connection kind and cut; then the requests
i=0
for req in 'GET /api/v1/history?stream=s&metrics=erank,entropy&from_step=1 HTTP/1.1\r\nHost: x\r\n\r\n' \
    'GET /api/v1/query?stream=s&metrics=entropy,topk&center=false HTTP/1.1\r\n\r\nGET /metrics HTTP/1.1\r\n\r\n' \
    'GET /api/v1/list HTTP/1.1\r\nConnection: close\r\n\r\n' \
    'HEAD / HTTP/1.1\r\n\r\nGET /app.js HTTP/1.1\r\n\r\n' \
    'GET /api/v1/info?stream=s&run=%64efault HTTP/1.1\r\nAuthorization: Bearer fuzz-token-0123456789\r\n\r\n' \
    'GET /api/v1/alerts?stream=nope HTTP/1.0\r\n\r\n' 'POST /x HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc'; do
  printf "\\x$(printf %02x $((i * 37 % 256)))$req" > "$tmp/corpus_http/seed$i"
  i=$((i + 1))
done
for t in $targets; do
  eval "src=\$src_$t"
  # shellcheck disable=SC2086
  if clang $flags -I"$root/lib" -I"$root/proto" -I"$root/daemon" $src $deps \
    -o "$tmp/fuzz_$t" >"$tmp/build_$t.log" 2>&1; then
    echo "ok $((n += 1)) - fuzz_${t}_builds_with_libfuzzer_asan_ubsan"
  else
    echo "not ok $((n += 1)) - fuzz_${t}_builds_with_libfuzzer_asan_ubsan"; bad=1
    sed 's/^/# /' "$tmp/build_$t.log"
    continue
  fi
  if (cd "$tmp" && "./fuzz_$t" -max_total_time="$secs" -timeout=30 -rss_limit_mb=2048 \
    -print_final_stats=1 "corpus_$t" >"$tmp/run_$t.log" 2>&1); then
    echo "ok $((n += 1)) - fuzz_${t}_${secs}s_without_a_finding # $(grep -o 'stat::number_of_executed_units: [0-9]*' "$tmp/run_$t.log") corpus=$(ls "$tmp/corpus_$t" | wc -l)"
  else
    echo "not ok $((n += 1)) - fuzz_${t}_${secs}s_without_a_finding"; bad=1
    tail -40 "$tmp/run_$t.log" | sed 's/^/# /'
  fi
done
echo "1..$n"
exit $bad
