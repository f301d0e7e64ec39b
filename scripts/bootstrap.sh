#!/usr/bin/env bash
# Installs what smtplb needs to build, test and benchmark, from Debian's
# packages. Idempotent: does nothing when everything is already there.
set -euo pipefail

build_packages=(
  build-essential cmake ninja-build ccache pkg-config
  libboost1.81-dev libboost-json1.81-dev libssl-dev
  libtomlplusplus-dev libcli11-dev libgtest-dev libgmock-dev libbenchmark-dev libldns-dev libre2-dev libgmime-3.0-dev
  libhiredis-dev
)
test_packages=(
  python3 postfix swaks libnet-ssleay-perl openssl dovecot-core nsd clang clang-tidy libclang-rt-14-dev systemd chromium
  prometheus librsvg2-bin iproute2 nftables iptables python3-jsonschema logrotate
  redis-server redis-tools
)
bench_packages=(haproxy nginx libnginx-mod-mail)

want=("${build_packages[@]}")
case "${1:-all}" in
  build) ;;
  test) want+=("${test_packages[@]}") ;;
  all) want+=("${test_packages[@]}" "${bench_packages[@]}") ;;
  *) echo "usage: $0 [build|test|all]" >&2; exit 2 ;;
esac

# Node.js and npm for the dashboard's uPlot and its Playwright test: Debian's,
# unless a node with npm is already there (e.g. from another repository).
if [ "${1:-all}" != build ] && ! { command -v node && command -v npm; } >/dev/null 2>&1; then
  want+=(nodejs npm)
fi

missing=()
for p in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  echo "bootstrap: installing ${missing[*]}"
  $SUDO apt-get update -q
  # Postfix asks no questions with this; the image starts no daemons.
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
