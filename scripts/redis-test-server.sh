#!/usr/bin/env bash
# A throw-away redis-server on a loopback port for the test suite. Nothing is persisted.
#
#   scripts/redis-test-server.sh [PORT]
#       starts it daemonized on PORT (default: a free port), waits until it answers and prints the
#       port. Stop it with: redis-cli -p PORT shutdown nosave
#   scripts/redis-test-server.sh --foreground PORT
#       becomes the redis-server itself (exec), for a caller that runs it in the background (&):
#       its parent is then the caller, and where setpriv exists (util-linux) the kernel kills it
#       with SIGKILL when the caller dies, however the caller dies. The caller waits for it with
#       scripts/redis-test-server.sh --wait PORT
#   scripts/redis-test-server.sh --wait PORT
#       waits (up to 10 s) until a server answers on PORT.
set -euo pipefail

wait_for() {
  local port="$1"
  for _ in $(seq 1 100); do
    redis-cli -p "$port" ping 2>/dev/null | grep -q PONG && return 0
    sleep 0.1
  done
  echo "redis-server did not start on port $port (see /tmp/backtestd-test-redis-$port.log)" >&2
  return 1
}

options=(--bind 127.0.0.1 --save "" --appendonly no)
case "${1:-}" in
  --foreground)
    port="${2:?--foreground needs a PORT}"
    tie=()
    command -v setpriv >/dev/null && tie=(setpriv --pdeathsig KILL --)
    exec "${tie[@]}" redis-server --port "$port" "${options[@]}" --daemonize no \
      --logfile "/tmp/backtestd-test-redis-$port.log"
    ;;
  --wait)
    wait_for "${2:?--wait needs a PORT}"
    exit
    ;;
esac

port="${1:-}"
if [ -z "$port" ]; then
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()')
fi
redis-server --port "$port" "${options[@]}" --daemonize yes \
  --logfile "/tmp/backtestd-test-redis-$port.log" >/dev/null
wait_for "$port"
echo "$port"
