#!/usr/bin/env bash
# Sets up, builds and runs every test: unit, golden, io, integration against
# real Postfix/smtp-source/swaks; the same suite under ASan+UBSan, the
# threaded parts under TSan; clang-tidy over src/; and a short run of each
# fuzz target. First, that no source file is over 600 lines. Each step's
# time is printed: CI should stay under 40 minutes on a fresh machine.
set -euo pipefail
cd "$(dirname "$0")/.."
started=$SECONDS
step() {
    local began=$SECONDS
    "$@"
    echo "test.sh: $* took $((SECONDS - began)) s (total $((SECONDS - started)) s)"
}
step scripts/bootstrap.sh test
step scripts/check_file_sizes.sh
step scripts/build.sh
step ctest --test-dir build --output-on-failure -j2 --timeout 300
step scripts/sanitize.sh
step scripts/tidy.sh
step scripts/fuzz.sh --smoke
