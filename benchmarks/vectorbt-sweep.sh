#!/usr/bin/env bash
# Peer comparison (issue #7): the same 10,000-variant SMA-crossover sweep with backtestd's engine
# and with vectorbt, on the same shared data; checks every final equity agrees to a cent, prints
# both times and the ratio. Exits non-zero on a mismatch.
#
#     benchmarks/vectorbt-sweep.sh [engine-bench sweep flags, e.g. --ticker MSFT --fill close]
#
# Grid by default: sma(fast) > sma(slow), fast 5...104 x slow 110...209, AAPL, 2010-01-04 ..
# 2019-12-31, next-open fills, 1 bp commission, 100,000 initial capital. What each side times is
# written in Sources/engine-bench/SweepBenchmark.swift and benchmarks/vectorbt_sweep.py. The
# venv (benchmarks/.venv, Python 3.11) is created on first use; its install is not timed.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3.11}
VENV=benchmarks/.venv
RUNS=${RUNS:-5}

if [[ ! -x $VENV/bin/python ]] || ! cmp -s benchmarks/requirements-vectorbt.txt $VENV/.installed; then
    echo "== installing vectorbt into $VENV"
    "$PYTHON" -m venv $VENV
    $VENV/bin/pip install --quiet --upgrade pip
    $VENV/bin/pip install --quiet -r benchmarks/requirements-vectorbt.txt
    cp benchmarks/requirements-vectorbt.txt $VENV/.installed
fi

echo "== building engine-bench (release)"
swift build -c release --product engine-bench 2>&1 | grep -E "error|warning: unre|Compiling|Build" || true
BIN=$(swift build -c release --show-bin-path)/engine-bench

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
echo "== backtestd sweep (2 threads, then 1 thread; $RUNS runs each)"
"$BIN" sweep --runs "$RUNS" --parallelism 2 --json "$WORK/backtestd-2.json" "$@"
"$BIN" sweep --runs "$RUNS" --parallelism 1 --json "$WORK/backtestd-1.json" "$@"

echo "== vectorbt sweep"
# An empty Numba cache, so that vectorbt's first run really includes its JIT compilation.
NUMBA_CACHE_DIR="$WORK/numba-cache" $VENV/bin/python benchmarks/vectorbt_sweep.py \
    --runs "$RUNS" --backtestd "$WORK/backtestd-2.json" --backtestd "$WORK/backtestd-1.json"
