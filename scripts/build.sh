#!/usr/bin/env bash
# Configures and builds smtplb into build/ (Release with debug info).
set -euo pipefail
cd "$(dirname "$0")/.."
# The dashboard's chart library (uPlot) and the end-to-end test's Playwright,
# from the npm registry, pinned by web/package-lock.json. Without npm the
# dashboard is built without charts.
if command -v npm >/dev/null 2>&1 && [ ! -f web/node_modules/.package-lock.json ]; then
  npm ci --prefix web --no-audit --no-fund --loglevel=error
fi
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo "$@" >/dev/null
ninja -C build -j2
