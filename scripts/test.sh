#!/usr/bin/env bash
# The whole test suite, as CI runs it (.ci/run calls this):
#   1. installs the Debian packages it needs,
#   2. checks the committed protobuf-c code matches proto/,
#   3. starts a throw-away redis-server on a loopback port (tied to this script's life),
#   4. builds and runs every Swift test (unit, integration against the real redis-server and a
#      fake Alpaca server on loopback, protocol tests against a real server),
#   5. (the Python client test runs inside the Swift suite), then the dashboard's browser test
#      (scripts/browser-test.sh: chromium + selenium), then the fuzzer for a bounded time.
# It fails when a test leaves a child process (redis-server, backtestd, ...) behind, naming the
# test, and kills what was left.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/opt/swift/usr/bin:$PATH"

scripts/install-deps.sh
scripts/generate-proto.sh --check
# The cross-language test: a Python client generated from proto/ (examples/python).
python3 -m pip install -q --disable-pip-version-check -r examples/python/requirements.txt

clone=$(pwd -P)
# Every child a test starts (redis-server, backtestd, python3) is recorded here by
# BacktestTestSupport.ChildProcess as a file named by its pid, "<pid> <executable> <test>", and the
# record is removed once the test has stopped it. check_children reads what is left.
children_dir=$(mktemp -d "${TMPDIR:-/tmp}/backtestd-test-children.XXXXXX")
export BACKTESTD_TEST_CHILDREN="$children_dir"

# Our own redis-server is our child (not a daemon) and dies with us even on SIGKILL
# (setpriv --pdeathsig, see scripts/redis-test-server.sh).
redis_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()')
scripts/redis-test-server.sh --foreground "$redis_port" &
redis_pid=$!

# Running, not a zombie.
alive() { [ -r "/proc/$1/stat" ] && [ "$(sed 's/.*) //' "/proc/$1/stat" | cut -c1)" != Z ]; }

# Fails (status 1) when a child a test started is still running, or was never stopped by its test
# (it ended only with the test process, by its parent-death signal), naming the test; also when a
# redis-server or backtestd not started through ChildProcess runs from this clone. Kills whatever
# it finds running, so the machine is clean afterwards.
check_children() {
  local failed=0 record pid executable owner proc comm cwd
  for record in "$children_dir"/*; do
    [ -f "$record" ] || continue
    read -r pid executable owner < "$record" || true
    rm -f "$record"
    if alive "$pid" && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "${executable:0:15}" ]; then
      echo "test.sh: LEAK: $executable (pid $pid) started by test '$owner' is still running; killing it" >&2
      kill -KILL "$pid" 2>/dev/null || true
    else
      echo "test.sh: LEAK: $executable (pid $pid) started by test '$owner' was never stopped by the test (it ended only when the test process exited)" >&2
    fi
    failed=1
  done
  for proc in /proc/[0-9]*; do
    pid=${proc#/proc/}
    [ "$pid" = "$redis_pid" ] && continue
    comm=$(cat "$proc/comm" 2>/dev/null) || continue
    case "$comm" in redis-server|backtestd) ;; *) continue ;; esac
    cwd=$(readlink "$proc/cwd" 2>/dev/null) || continue
    case "$cwd" in "$clone"|"$clone"/*) ;; *) continue ;; esac
    alive "$pid" || continue
    echo "test.sh: LEAK: $comm (pid $pid, $(tr '\0' ' ' < "$proc/cmdline" 2>/dev/null | tr -s ' ')) runs from this clone, started by no recorded test; killing it" >&2
    kill -KILL "$pid" 2>/dev/null || true
    failed=1
  done
  return "$failed"
}

finish() {
  local status=$?
  redis-cli -p "$redis_port" shutdown nosave >/dev/null 2>&1 || true
  kill -KILL "$redis_pid" 2>/dev/null || true
  wait "$redis_pid" 2>/dev/null || true
  check_children || status=1
  rm -rf "$children_dir"
  exit "$status"
}
trap finish EXIT
scripts/redis-test-server.sh --wait "$redis_port"
export BACKTESTD_REDIS_PORT="$redis_port"
echo "test.sh: redis-server on 127.0.0.1:$redis_port (pid $redis_pid)"

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
# Every redis-server and backtestd a test started must be gone now that the tests are over.
if ! check_children; then
  echo "test.sh: tests left child processes behind (issue 18); see the LEAK lines above" >&2
  exit 1
fi
echo "test.sh: no test left a child process running"

# The web dashboard in a real browser: Debian's chromium and chromium-driver, selenium from PyPI,
# against a backtestd child of its own on demo data (stopped before the script returns).
scripts/browser-test.sh
if ! check_children; then
  echo "test.sh: the browser test left a backtestd running" >&2
  exit 1
fi

# libFuzzer + AddressSanitizer over the frame and message decoders, for a bounded time.
scripts/run-fuzzer.sh "${BACKTESTD_FUZZ_SECONDS:-60}"
echo "test.sh: all tests passed"
