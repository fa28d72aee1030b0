#!/bin/sh
# Generates backtest_pb2.py from proto/backtest.proto into the directory given (default: a
# "generated" folder next to this script). Generated code is not committed.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
out=${1:-"$here/generated"}
mkdir -p "$out"
protoc -I "$here/../../proto" --python_out="$out" "$here/../../proto/backtest.proto"
echo "$out/backtest_pb2.py"
