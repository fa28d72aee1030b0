#!/usr/bin/env bash
# The whole test suite, as CI runs it (.ci/run calls this):
#   1. installs the Debian packages it needs,
#   2. checks the committed protobuf-c code matches proto/,
#   3. starts a throw-away redis-server on a loopback port,
#   4. builds and runs every Swift test (unit, integration against the real redis-server and a
#      fake Alpaca server on loopback, protocol tests against a real server),
#   5. runs the cross-language (Python) client test and the fuzzer for a bounded time.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/opt/swift/usr/bin:$PATH"

scripts/install-deps.sh
scripts/generate-proto.sh --check

redis_port=$(scripts/redis-test-server.sh)
cleanup() { redis-cli -p "$redis_port" shutdown nosave >/dev/null 2>&1 || true; }
trap cleanup EXIT
export BACKTESTD_REDIS_PORT="$redis_port"
echo "test.sh: redis-server on 127.0.0.1:$redis_port"

swift build --build-tests
swift test --skip-build 2>&1 | tee /tmp/backtestd-swift-test.log
test "${PIPESTATUS[0]}" -eq 0

for extra in scripts/test-python-client.sh scripts/run-fuzzer.sh; do
  if [ -x "$extra" ]; then
    echo "test.sh: $extra"
    "$extra"
  fi
done
echo "test.sh: all tests passed"
