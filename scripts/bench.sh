#!/usr/bin/env bash
# The performance comparison, in one sitting: Deckhand's lean gRPC path
# (host client and SDK server on swift-nio-http2), the same plugin on
# grpc-swift-2 at both ends, and the go-plugin / grpc-go peer. Prints
# `name value unit` lines; release builds only.
#
#   scripts/bench.sh [--quick]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
quick=()
peer=()
if [ "${1:-}" = "--quick" ]; then
  quick=(--launches 5 --calls 5000 --duration 1 --apply-calls 500)
  peer=(--quick)
fi
swift build -c release >&2
dir="$(mktemp -d /tmp/dhbench.XXXX)"
trap 'rm -rf "$dir"' EXIT
bin=.build/release/deckhand
"$bin" plugin bench Examples/Echo/plugin-release.json --prefix lean. \
  --state-dir "$dir/state" --runtime-dir "$dir/run" "${quick[@]}"
"$bin" plugin bench Benchmarks/grpc-swift-echo.json --transport grpc-swift --prefix grpcswift. \
  --state-dir "$dir/state" --runtime-dir "$dir/run" "${quick[@]}"
# The same plugin with the Swift runtime linked in: what a plugin author
# ships.
scripts/static-echo.sh "$dir/static.json"
"$bin" plugin bench "$dir/static.json" --prefix lean-static. \
  --state-dir "$dir/state" --runtime-dir "$dir/run" "${quick[@]}"
bash ../shared/peers/goplugin/run.sh "${peer[@]}" 2>/dev/null
# The agent's command socket beside a bare unix-socket echo (the floor).
if [ ${#quick[@]} -gt 0 ]; then
  .build/release/deckhand-bench commands --requests 2000 --seconds 1
else
  .build/release/deckhand-bench commands
fi
