#!/bin/sh
# Builds the FrameFuzzer (libFuzzer + AddressSanitizer) and runs it for N seconds (default 60).
# Usage: scripts/run-fuzzer.sh [seconds]. Crashing inputs are written to .build-fuzz/artifacts/.
set -eu
cd "$(dirname "$0")/.."
seconds=${1:-60}
swift build -c debug --sanitize fuzzer --sanitize address --product FrameFuzzer --scratch-path .build-fuzz
mkdir -p .build-fuzz/corpus .build-fuzz/artifacts
# Seed: a preface followed by a REQUEST frame carrying GetServerInfo.
printf 'BACKTEST\000\001\000\000\000\002\000\000\000\001\001\000\152\000' > .build-fuzz/corpus/seed-preface-request
.build-fuzz/debug/FrameFuzzer -max_total_time="$seconds" -rss_limit_mb=2048 -max_len=65536 \
    -artifact_prefix=.build-fuzz/artifacts/ .build-fuzz/corpus
