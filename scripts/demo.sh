#!/usr/bin/env bash
# The README's first command: installs what backtestd needs, builds it (release), starts a Redis
# and backtestd on the embedded demo data (no network, no keys), runs two example backtests
# through the command-line client (the second run of the first is answered from the cache), and
# shuts everything down again.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/opt/swift/usr/bin:$PATH"

scripts/install-deps.sh
swift build -c release --product backtestd
swift build -c release --product backtest
bin="$(swift build -c release --show-bin-path)"

redis_port=$(scripts/redis-test-server.sh)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()')
BACKTESTD_REDIS_PORT="$redis_port" "$bin/backtestd" --port "$port" --data-source demo > /tmp/backtestd-demo.log 2>&1 &
server=$!
cleanup() {
  kill "$server" 2>/dev/null || true
  wait "$server" 2>/dev/null || true
  redis-cli -p "$redis_port" shutdown nosave >/dev/null 2>&1 || true
}
trap cleanup EXIT
for _ in $(seq 1 100); do
  "$bin/backtest" ping --port "$port" >/dev/null 2>&1 && break
  sleep 0.1
done
"$bin/backtest" info --port "$port"
for strategy in examples/strategies/sma-crossover.json examples/strategies/sma-crossover.json \
                examples/strategies/rsi-with-regime-filter.json; do
  echo
  echo "=== backtest run $strategy"
  "$bin/backtest" run "$strategy" --port "$port"
done
echo
echo "server log (/tmp/backtestd-demo.log):"
tail -n 5 /tmp/backtestd-demo.log
