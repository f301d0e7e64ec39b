#!/usr/bin/env bash
# clang-tidy over src/ with the checked-in .clang-tidy; fails on any warning.
# Uses its own compile database: clang, no precompiled headers (GCC's
# cannot be read by clang).
set -euo pipefail
cd "$(dirname "$0")/.."
CC=clang CXX=clang++ cmake -S . -B build-tidy -G Ninja -DCMAKE_DISABLE_PRECOMPILE_HEADERS=ON \
  -DSMTPLB_TESTS=OFF >/dev/null
files=$(find src -name '*.cpp' | wc -l)
if ! run-clang-tidy-14 -p build-tidy -j2 -quiet "$PWD/src/" > build-tidy/tidy.log 2>&1 ||
   grep -qE "(warning|error):" build-tidy/tidy.log; then
  grep -E -A3 "(warning|error):" build-tidy/tidy.log | head -100 || tail -40 build-tidy/tidy.log
  echo "tidy: clang-tidy found problems (build-tidy/tidy.log)"
  exit 1
fi
checked=$(grep -c "^clang-tidy-14 " build-tidy/tidy.log || true)
if [ "$checked" -ne "$files" ]; then
  echo "tidy: checked $checked files of $files"; exit 1
fi
echo "tidy: clean ($files files)"
