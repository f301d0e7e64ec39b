#!/usr/bin/env bash
# Builds the libFuzzer targets with clang (ASan+UBSan) and runs each one.
#   scripts/fuzz.sh --smoke        a short bounded run of each (CI)
#   scripts/fuzz.sh [SECONDS]      a longer run of each (default 300 s)
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=300
[ "${1:-}" = "--smoke" ] && seconds=10
[[ "${1:-}" =~ ^[0-9]+$ ]] && seconds=$1
CC=clang CXX=clang++ cmake -S . -B build-fuzz -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DSMTPLB_FUZZ=ON -DSMTPLB_TESTS=OFF >/dev/null
ninja -C build-fuzz -j2
# Two targets at a time (the machine's two cores); each its own corpus copy.
run_target() {
  local target=$1 work
  work=$(mktemp -d)
  cp tests/fuzz/corpus/$target/* "$work"/ 2>/dev/null || true
  echo "fuzz: $target for ${seconds}s"
  if ! build-fuzz/tests/fuzz/fuzz_$target -max_total_time=$seconds -max_len=4096 \
       -print_final_stats=0 "$work" > "build-fuzz/$target.log" 2>&1; then
    echo "fuzz: $target FAILED; see build-fuzz/$target.log"; tail -40 "build-fuzz/$target.log"
    rm -rf "$work"
    return 1
  fi
  rm -rf "$work"
}
targets=(command data_decoder bdat reply_parser server_session xtext config probe spool_format
         proxy_header dovecot_auth dns_answer transaction message_id mime_downgrade cluster_messages)
failed=0
for ((i = 0; i < ${#targets[@]}; i += 2)); do
  run_target "${targets[i]}" & first=$!
  second=
  if [ $((i + 1)) -lt ${#targets[@]} ]; then run_target "${targets[i + 1]}" & second=$!; fi
  wait $first || failed=1
  if [ -n "$second" ]; then wait $second || failed=1; fi
done
if [ $failed -eq 0 ]; then echo "fuzz: all passed"; else echo "fuzz: failures found"; exit 1; fi
