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
# The same plugin with the Swift runtime linked in (--static-swift-stdlib):
# what a plugin author ships. Its own scratch folder, as switching the
# stdlib rebuilds everything.
swift build -c release --static-swift-stdlib --scratch-path .build-static --product deckhand-example-echo >&2
cat > "$dir/static.json" <<JSON
{ "name": "echo-static", "version": "1.0.0", "entrypoint": "$ROOT/.build-static/release/deckhand-example-echo" }
JSON
"$bin" plugin bench "$dir/static.json" --prefix lean-static. \
  --state-dir "$dir/state" --runtime-dir "$dir/run" "${quick[@]}"
bash ../shared/peers/goplugin/run.sh "${peer[@]}" 2>/dev/null
# The agent's command socket beside a bare unix-socket echo (the floor).
if [ ${#quick[@]} -gt 0 ]; then
  "$bin" bench commands --requests 2000 --seconds 1
else
  "$bin" bench commands
fi
