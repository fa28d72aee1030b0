#!/usr/bin/env bash
# The whole test suite, as CI runs it (.ci/run calls this):
#   1. installs the Debian packages it needs,
#   2. checks the committed protobuf-c code matches proto/,
#   3. starts a throw-away redis-server on a loopback port,
#   4. builds and runs every Swift test (unit, integration against the real redis-server and a
#      fake Alpaca server on loopback, protocol tests against a real server),
#   5. (the Python client test runs inside the Swift suite), then the fuzzer for a bounded time.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/opt/swift/usr/bin:$PATH"

scripts/install-deps.sh
scripts/generate-proto.sh --check
# The cross-language test: a Python client generated from proto/ (examples/python).
python3 -m pip install -q --disable-pip-version-check -r examples/python/requirements.txt

redis_port=$(scripts/redis-test-server.sh)
cleanup() { redis-cli -p "$redis_port" shutdown nosave >/dev/null 2>&1 || true; }
trap cleanup EXIT
export BACKTESTD_REDIS_PORT="$redis_port"
echo "test.sh: redis-server on 127.0.0.1:$redis_port"

# Every import must be a declared dependency of its target, so Package.swift stays the true
# dependency graph (no target reaching the engine through another's dependencies).
swift build --build-tests --explicit-target-dependency-import-check error
# A hung test must fail the run, not stall CI for 90 minutes. Line-buffered output, so the log
# shows what ran up to a hang, and the tests that never finished are listed.
mkdir -p .build
if ! timeout 1200 stdbuf -oL -eL swift test --skip-build 2>&1 | tee .build/swift-test.log; then
  python3 scripts/unfinished-tests.py .build/swift-test.log
  exit 1
fi

# libFuzzer + AddressSanitizer over the frame and message decoders, for a bounded time.
scripts/run-fuzzer.sh "${BACKTESTD_FUZZ_SECONDS:-60}"
echo "test.sh: all tests passed"
