#!/usr/bin/env bash
# Builds the echo example the way plugins ship (--static-swift-stdlib, linked
# with Package.swift's pluginLinkerSettings) into its own scratch folder, as
# switching the stdlib rebuilds everything, and writes a manifest for it.
#
#   scripts/static-echo.sh MANIFEST_PATH
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
swift build -c release --static-swift-stdlib --scratch-path .build-static --product deckhand-example-echo >&2
cat > "$1" <<JSON
{ "name": "echo-static", "version": "1.0.0", "entrypoint": "$ROOT/.build-static/release/deckhand-example-echo" }
JSON
