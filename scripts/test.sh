#!/usr/bin/env bash
# Sets up, builds and runs every test: unit, golden, io, integration against
# real Postfix/smtp-source/swaks; the same suite under ASan+UBSan, the
# threaded parts under TSan; clang-tidy over src/; and a short run of each
# fuzz target. First, that no source file is over 600 lines.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh test
scripts/check_file_sizes.sh
scripts/build.sh
ctest --test-dir build --output-on-failure -j2 --timeout 300
scripts/sanitize.sh
scripts/tidy.sh
scripts/fuzz.sh --smoke
