#!/usr/bin/env bash
# Builds deckhand-go-traced-plugin from Debian's Go packages (golang-go,
# golang-google-grpc-dev, golang-opentelemetry-otel-dev) in GOPATH mode:
# no module proxy is used.
#
#   Tests/Fixtures/GoTracedPlugin/build.sh OUT_DIR
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
OUT="$(mkdir -p "$1" && cd "$1" && pwd)"
GOPATH_DIR="$OUT/gopath"
mkdir -p "$GOPATH_DIR/src"
ln -sfn "$HERE" "$GOPATH_DIR/src/deckhandgotraced"
export GO111MODULE=off GOPATH="$GOPATH_DIR:/usr/share/gocode" GOCACHE="$OUT/gocache" GOFLAGS=
go build -o "$OUT/deckhand-go-traced-plugin" deckhandgotraced
