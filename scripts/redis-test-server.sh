#!/usr/bin/env bash
# Starts a throw-away redis-server on a free loopback port for the test suite and prints the
# port. Nothing is persisted. Stop it with: redis-cli -p PORT shutdown nosave
set -euo pipefail
port="${1:-}"
if [ -z "$port" ]; then
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()')
fi
redis-server --bind 127.0.0.1 --port "$port" --save "" --appendonly no --daemonize yes \
  --logfile "/tmp/backtestd-test-redis-$port.log" >/dev/null
for _ in $(seq 1 100); do
  redis-cli -p "$port" ping 2>/dev/null | grep -q PONG && { echo "$port"; exit 0; }
  sleep 0.1
done
echo "redis-server did not start on port $port (see /tmp/backtestd-test-redis-$port.log)" >&2
exit 1
