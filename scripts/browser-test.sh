#!/usr/bin/env bash
# The web dashboard in a real browser (Tests/browser/test_dashboard.py), as scripts/test.sh runs
# it after the Swift tests:
#   1. installs Debian's chromium and chromium-driver (scripts/install-deps.sh --browser) and
#      selenium from PyPI (Tests/browser/requirements.txt, pinned),
#   2. starts the debug build's backtestd on demo data with the dashboard on a free loopback
#      port, pacing batch results (--variant-delay-ms) so the browser sees a batch while partial;
#      backtestd is this script's child and dies with it (setpriv --pdeathsig), and is stopped
#      and waited for on exit,
#   3. runs the test, which writes a screenshot to .build/browser/dashboard-final.png.
# Needs `swift build` first (test.sh builds). BACKTESTD_BIN overrides the server binary.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/opt/swift/usr/bin:$PATH"

scripts/install-deps.sh --browser
python3 -m pip install -q --disable-pip-version-check -r Tests/browser/requirements.txt

binary="${BACKTESTD_BIN:-$(swift build --show-bin-path)/backtestd}"
[ -x "$binary" ] || { echo "browser-test: $binary not built (run swift build)" >&2; exit 1; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
tcp_port=$(free_port)
http_port=$(free_port)
mkdir -p .build/browser
log=.build/browser/backtestd.log

tie=()
command -v setpriv >/dev/null && tie=(setpriv --pdeathsig KILL --)
BACKTESTD_CACHE=off "${tie[@]}" "$binary" --data-source demo --host 127.0.0.1 --port "$tcp_port" \
  --http-port "$http_port" --variant-delay-ms "${BACKTESTD_BROWSER_DELAY_MS:-500}" >"$log" 2>&1 &
server_pid=$!
stop_server() {
  kill -TERM "$server_pid" 2>/dev/null || true
  for _ in $(seq 1 50); do kill -0 "$server_pid" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$server_pid" 2>/dev/null || true
  wait "$server_pid" 2>/dev/null || true
}
trap stop_server EXIT

for _ in $(seq 1 100); do
  python3 -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$http_port/api/info', timeout=1)" 2>/dev/null && break
  kill -0 "$server_pid" 2>/dev/null || { echo "browser-test: backtestd exited; its log:" >&2; cat "$log" >&2; exit 1; }
  sleep 0.1
done
echo "browser-test: backtestd (pid $server_pid) with the dashboard on http://127.0.0.1:$http_port/"

timeout 300 python3 Tests/browser/test_dashboard.py --url "http://127.0.0.1:$http_port/" \
  --screenshot "$(pwd)/.build/browser/dashboard-final.png"
