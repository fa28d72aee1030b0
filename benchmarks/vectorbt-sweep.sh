#!/usr/bin/env bash
# Peer comparison (issues #7 and #11): the same 10,000-variant SMA-crossover sweep, in one run,
#   1. with backtestd's engine in process (`engine-bench sweep`, SweepRunner, data in memory),
#   2. end to end over TCP: `backtest sweep` (the CLI, a new process per run) against a spawned
#      release backtestd reading the shared CSV files, from the CLI's start to its final table,
#      plus the server's peak RSS (VmHWM from /proc),
#   3. with vectorbt 1.2 in process;
# checks every final equity of (2) and (3) against (1) to a cent, prints the times and ratios.
# Exits non-zero on a mismatch.
#
#     benchmarks/vectorbt-sweep.sh [engine-bench sweep flags, e.g. --ticker MSFT --fill close]
#
# Grid by default: sma(fast) > sma(slow), fast 5...104 x slow 110...209, AAPL, 2010-01-04 ..
# 2019-12-31, next-open fills, 1 bp commission, 100,000 initial capital
# (benchmarks/sweep-aapl-sma.json for the CLI; the end-to-end part only runs this default grid).
# What each side times is written in Sources/engine-bench/SweepBenchmark.swift and
# benchmarks/vectorbt_sweep.py. The venv (benchmarks/.venv, Python 3.11) is created on first use;
# its install is not timed. Environment: RUNS (5), E2E_RUNS (10), SCRATCH (the release build's
# scratch path, .build-rel), SKIP_VECTORBT=1 (only the backtestd figures), SKIP_BUILD=1.
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

E2E_RUNS=${E2E_RUNS:-10}
SCRATCH=${SCRATCH:-.build-rel}
SHARED=${BACKTESTD_SHARED:-$(cd .. && pwd)/shared}

if [[ ${SKIP_BUILD:-0} != 1 ]]; then
    echo "== building engine-bench, backtestd, backtest (release, $SCRATCH)"
    for product in engine-bench backtestd backtest; do
        swift build -c release --scratch-path "$SCRATCH" --product $product 2>&1 | grep -E "error|warning: unre|Build" || true
    done
fi
BINDIR=$(swift build -c release --scratch-path "$SCRATCH" --show-bin-path)
BIN=$BINDIR/engine-bench

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
echo "== backtestd sweep (2 threads, then 1 thread; $RUNS runs each)"
"$BIN" sweep --runs "$RUNS" --parallelism 2 --json "$WORK/backtestd-2.json" "$@"
"$BIN" sweep --runs "$RUNS" --parallelism 1 --json "$WORK/backtestd-1.json" "$@"

if [[ $# -eq 0 ]]; then
    echo "== backtestd end to end: backtest sweep -> TCP -> backtestd (release, files:$SHARED/market-data/daily), $E2E_RUNS runs after 1 warm-up"
    PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    # No Redis: the in-process layer only; the data files are read on the first (warm-up) run.
    BACKTESTD_CACHE=off "$BINDIR/backtestd" --host 127.0.0.1 --port "$PORT" \
        --data-source "files:$SHARED/market-data/daily" --log-level warning 2>"$WORK/backtestd.log" &
    SERVER=$!
    trap 'kill $SERVER 2>/dev/null || true; rm -rf "$WORK"' EXIT
    for _ in $(seq 100); do
        "$BINDIR/backtest" info --port "$PORT" >/dev/null 2>&1 && break
        sleep 0.1
    done
    SWEEP=("$BINDIR/backtest" sweep benchmarks/sweep-aapl-sma.json --port "$PORT"
        --grid 'positions[0].entry.lhs=sma:5..104' --grid 'positions[0].entry.rhs=sma:110..209' --sort-by final_equity)
    "${SWEEP[@]}" --csv "$WORK/cli.csv" >"$WORK/warmup.txt"
    : >"$WORK/e2e-ms.txt"
    for _ in $(seq "$E2E_RUNS"); do
        started=$(date +%s%N)
        "${SWEEP[@]}" >"$WORK/last.txt"
        echo $(( ($(date +%s%N) - started) / 1000 )) >>"$WORK/e2e-ms.txt"
    done
    grep -E "^VmHWM|^VmRSS" /proc/$SERVER/status | tr -s ' ' >"$WORK/rss.txt"
    sed -n 1,6p "$WORK/last.txt"
    kill $SERVER; wait $SERVER 2>/dev/null || true
    python3 - "$WORK" >"$WORK/e2e.json" <<'PY'
import json, sys, statistics
work = sys.argv[1]
us = [int(l) for l in open(f"{work}/e2e-ms.txt") if l.strip()]
rss = {l.split(":")[0]: int(l.split()[1]) for l in open(f"{work}/rss.txt")}
print(json.dumps({"runs_ms": [u / 1000 for u in us], "median_ms": statistics.median(us) / 1000,
                  "peak_rss_kb": rss.get("VmHWM"), "rss_kb": rss.get("VmRSS"), "csv": f"{work}/cli.csv"}))
PY
    E2E=(--e2e "$WORK/e2e.json")
else
    E2E=()
fi

[[ ${SKIP_VECTORBT:-0} == 1 ]] && VECTORBT=(--skip-vectorbt) || VECTORBT=()
echo "== vectorbt sweep"
# An empty Numba cache, so that vectorbt's first run really includes its JIT compilation.
NUMBA_CACHE_DIR="$WORK/numba-cache" $VENV/bin/python benchmarks/vectorbt_sweep.py \
    --runs "$RUNS" --backtestd "$WORK/backtestd-2.json" --backtestd "$WORK/backtestd-1.json" \
    "${E2E[@]}" "${VECTORBT[@]}"
