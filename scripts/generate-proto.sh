#!/usr/bin/env bash
# Regenerates the protobuf-c code committed under Sources/CBacktestProto from proto/*.proto.
#
#   scripts/generate-proto.sh          rewrite the committed files
#   scripts/generate-proto.sh --check  fail (exit 1) if the committed files are stale
#
# The generated code is committed so that a build needs only libprotobuf-c, not the compiler.
# protoc-c comes from Debian's protobuf-c-compiler (1.4.1 on bookworm); CI runs --check.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
target="$root/Sources/CBacktestProto"
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT

command -v protoc-c >/dev/null || { echo "protoc-c not found: apt-get install protobuf-c-compiler" >&2; exit 2; }
(cd "$root/proto" && protoc-c --c_out="$out" backtest.proto)

if [ "${1:-}" = "--check" ]; then
  if cmp -s "$out/backtest.pb-c.c" "$target/backtest.pb-c.c" &&
     cmp -s "$out/backtest.pb-c.h" "$target/include/backtest.pb-c.h"; then
    echo "generated protobuf-c code is up to date"
  else
    echo "Sources/CBacktestProto is stale: run scripts/generate-proto.sh and commit the result" >&2
    exit 1
  fi
else
  mkdir -p "$target/include"
  cp "$out/backtest.pb-c.c" "$target/backtest.pb-c.c"
  cp "$out/backtest.pb-c.h" "$target/include/backtest.pb-c.h"
  echo "wrote $target/{backtest.pb-c.c,include/backtest.pb-c.h}"
fi
