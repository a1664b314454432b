#!/usr/bin/env bash
# Runs Deckhand's whole test suite on a fresh machine: installs what the
# tests need (as root, from Debian's packages), builds the go-plugin peer
# that the interop tests launch, builds the package and runs `swift test`.
#
#   scripts/test.sh [extra swift test arguments]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

# Python example plugin: Debian's grpcio and protobuf for /usr/bin/python3.
# protoc and the well-known types: scripts/generate-protos.sh.
# PostgreSQL 15: the tests start throw-away clusters of their own
# (DeckhandTestSupport's PostgresCluster, as the postgres user).
# Prometheus (and promtool): the metrics tests run a throw-away server of
# their own that scrapes a real server and agent.
# Chromium and chromium-driver: the web UI's tests drive a real browser;
# curl sends them hostile requests.
# Go, grpc-go and OpenTelemetry Go (GOPATH mode, no module proxy): the Go
# plugin the traces tests run (Tests/Fixtures/GoTracedPlugin).
APT_PKGS="python3-grpcio python3-protobuf protobuf-compiler libprotobuf-dev tar gzip zlib1g-dev postgresql-15 prometheus
golang-go golang-google-grpc-dev golang-opentelemetry-otel-dev
chromium chromium-driver curl"
missing=()
for pkg in $APT_PKGS; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
  if [ "$(id -u)" = 0 ]; then
    echo "# installing Debian packages: ${missing[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get -o DPkg::Lock::Timeout=600 update -qq >&2
    apt-get -o DPkg::Lock::Timeout=600 install -y -qq "${missing[@]}" >&2
  else
    echo "scripts/test.sh: missing packages; as root: apt-get install ${missing[*]}" >&2
    exit 1
  fi
fi

# The go-plugin peer (HashiCorp go-plugin and grpc-go from Debian's
# packages): a real go-plugin plugin and host for the interop tests.
PEER="$ROOT/../shared/peers/goplugin/run.sh"
if [ -x "$PEER" ] || [ -f "$PEER" ]; then
  bash "$PEER" --build
  export DECKHAND_GOPLUGIN_PEER_BIN="$ROOT/../shared/peers/goplugin/build/bin"
else
  echo "scripts/test.sh: $PEER not found; the go-plugin interop tests will fail" >&2
fi

# The Go plugin of the traces tests, into .build-go/.
Tests/Fixtures/GoTracedPlugin/build.sh "$ROOT/.build-go"

# Formatting is part of the check: swift format lint --strict, with the
# repository's .swift-format (scripts/format.sh formats in place).
scripts/format.sh --check

# The tests launch the package's executables (the example and test plugins,
# `deckhand` itself), so build everything first.
swift build --build-tests
# One test at a time: several suites start servers, agents and plugins, and
# on a 2-core machine parallel suites starve the timing checks of others.
swift test --skip-build --no-parallel "$@"
