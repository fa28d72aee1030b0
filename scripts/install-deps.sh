#!/usr/bin/env bash
# Installs the Debian packages backtestd builds and tests with (idempotent; needs root or sudo).
#   --browser: also chromium and chromium-driver, for the dashboard's browser test
#              (scripts/browser-test.sh).
set -euo pipefail
packages=(libhiredis-dev libcurl4-openssl-dev libprotobuf-c-dev protobuf-c-compiler protobuf-compiler
          redis-server pkg-config python3-venv)
[ "${1:-}" = "--browser" ] && packages+=(chromium chromium-driver)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all Debian packages present"
  exit 0
fi
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
echo "install-deps: installing ${missing[*]}"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
