#!/usr/bin/env bash
# Builds the echo example the way plugins ship (scripts/build-release.sh:
# --static-swift-stdlib, functions in sections of their own, linked with
# Package.swift's pluginLinkerSettings) and writes a manifest for it.
#
#   scripts/static-echo.sh MANIFEST_PATH
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
binary="$(scripts/build-release.sh deckhand-example-echo)"
cat > "$1" <<JSON
{ "name": "echo-static", "version": "1.0.0", "entrypoint": "$binary" }
JSON
