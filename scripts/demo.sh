#!/usr/bin/env bash
# Sets up, builds and runs `smtplb demo`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh build
scripts/build.sh
exec build/src/app/smtplb demo "$@"
