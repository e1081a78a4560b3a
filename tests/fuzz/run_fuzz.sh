#!/usr/bin/env bash
# run_fuzz.sh SOURCE_ROOT SECONDS — builds the decoder fuzz target with clang's libFuzzer under
# AddressSanitizer + UBSan, seeds a corpus from proto/vectors/v1.tsv, runs it for SECONDS and
# reports TAP. A crash, leak or sanitizer report fails the test (the reproducer is kept in the log).
set -u
root=$1 secs=${2:-20}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
n=0 bad=0
if clang -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
  -I"$root/proto" "$root/proto/skim.c" "$root/proto/codec.c" "$root/tests/fuzz/fuzz_decoder.c" \
  $(pkg-config --cflags --libs msgpack) -o "$tmp/fuzz" >"$tmp/build.log" 2>&1; then
  echo "ok $((n += 1)) - fuzz_target_builds_with_libfuzzer_asan_ubsan"
else
  echo "not ok $((n += 1)) - fuzz_target_builds_with_libfuzzer_asan_ubsan"; bad=1
  sed 's/^/# /' "$tmp/build.log"
  echo "1..$n"; exit 1
fi
mkdir -p "$tmp/corpus"
i=0
grep -v '^#' "$root/proto/vectors/v1.tsv" | while IFS=$'\t' read -r name req resp vol; do
  echo "$req" | xxd -r -p >"$tmp/corpus/req_$name"
  [ -n "$resp" ] && echo "$resp" | xxd -r -p >"$tmp/corpus/resp_$name"
done
if (cd "$tmp" && ./fuzz -max_total_time="$secs" -rss_limit_mb=1024 -print_final_stats=1 \
  corpus >"$tmp/run.log" 2>&1); then
  echo "ok $((n += 1)) - fuzz_decoder_${secs}s_without_a_finding # $(grep -o 'stat::number_of_executed_units: [0-9]*' "$tmp/run.log")"
else
  echo "not ok $((n += 1)) - fuzz_decoder_${secs}s_without_a_finding"; bad=1
  tail -40 "$tmp/run.log" | sed 's/^/# /'
fi
echo "1..$n"
exit $bad
