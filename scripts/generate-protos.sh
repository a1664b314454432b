#!/usr/bin/env bash
# Regenerates the committed Swift code for every .proto under Protos/.
#
# Needs protoc and the well-known types (Debian: protobuf-compiler,
# libprotobuf-dev). The two generator plugins are built once, in release
# mode, from the local package mirror's grpc-swift-protobuf 2.4.1 (which
# brings swift-protobuf 1.39.0) into .build-protoc-gen/; later runs reuse
# them. Never run from the normal build: building the generators takes
# minutes.
#
#   scripts/generate-protos.sh
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
GEN="$ROOT/.build-protoc-gen"
GRPC_PROTOBUF_VERSION=2.4.1
OUT="$ROOT/Sources/DeckhandProtocol/Generated"
PLUGIN_OUT="$ROOT/Sources/DeckhandPluginProtocol/Generated"

for tool in protoc git swift; do
  command -v "$tool" >/dev/null || { echo "generate-protos: $tool not found (apt-get install protobuf-compiler libprotobuf-dev)" >&2; exit 1; }
done
[ -f /usr/include/google/protobuf/any.proto ] ||
  { echo "generate-protos: well-known types missing (apt-get install libprotobuf-dev)" >&2; exit 1; }

if [ ! -x "$GEN/bin/protoc-gen-grpc-swift-2" ] || [ ! -x "$GEN/bin/protoc-gen-swift" ]; then
  mkdir -p "$GEN"
  if [ ! -d "$GEN/src" ]; then
    git clone -q --branch "$GRPC_PROTOBUF_VERSION" https://github.com/grpc/grpc-swift-protobuf "$GEN/src"
  fi
  (cd "$GEN/src" && swift build -c release --product protoc-gen-grpc-swift-2 &&
    swift build -c release --product protoc-gen-swift)
  mkdir -p "$GEN/bin"
  bin="$(cd "$GEN/src" && swift build -c release --show-bin-path)"
  cp "$bin/protoc-gen-grpc-swift-2" "$bin/protoc-gen-swift" "$GEN/bin/"
fi

mkdir -p "$OUT" "$PLUGIN_OUT"
rm -f "$OUT"/*.swift "$PLUGIN_OUT"/*.swift
cd "$ROOT/Protos"
# What a plugin speaks: messages only, into DeckhandPluginProtocol (the SDK
# links that and SwiftProtobuf, not grpc-swift-2). Their gRPC stubs go into
# DeckhandProtocol with the rest, importing DeckhandPluginProtocol.
plugin_protos=(plugin_comm.proto grpc/health/v1/health.proto goplugin/goplugin.proto deckhand/host/v1/host.proto)
mapfile -t other_protos < <(find . -name '*.proto' | sed 's|^\./||' | sort | grep -vxF -f <(printf '%s\n' "${plugin_protos[@]}"))
swift_opt=Visibility=Public,FileNaming=PathToUnderscores,UseAccessLevelOnImports=true
run_protoc() {
  protoc -I . -I /usr/include \
    --plugin=protoc-gen-swift="$GEN/bin/protoc-gen-swift" \
    --plugin=protoc-gen-grpc-swift-2="$GEN/bin/protoc-gen-grpc-swift-2" "$@"
}
run_protoc --swift_out="$PLUGIN_OUT" --swift_opt="$swift_opt" "${plugin_protos[@]}"
run_protoc --grpc-swift-2_out="$OUT" --grpc-swift-2_opt="$swift_opt,ExtraModuleImports=DeckhandPluginProtocol" \
  "${plugin_protos[@]}"
run_protoc --swift_out="$OUT" --swift_opt="$swift_opt" --grpc-swift-2_out="$OUT" --grpc-swift-2_opt="$swift_opt" \
  "${other_protos[@]}"
# The descriptors of the server's messages, for `--json` output that prints
# every field (swift-protobuf has no public reflection; see ProtoJSON.swift).
{
  echo "// DO NOT EDIT. Written by scripts/generate-protos.sh from Protos/."
  echo "// protoc --include_imports --descriptor_set_out, base64."
  echo ""
  echo '/// A serialized `google.protobuf.FileDescriptorSet` of the protos of the server, base64.'
  printf 'package let deckhandProtoDescriptorSet = "'
  run_protoc --include_imports --descriptor_set_out=/dev/stdout "${other_protos[@]}" | base64 -w0
  echo '"'
} >"$OUT/deckhand_descriptors.swift"
echo "generate-protos: wrote $(ls "$PLUGIN_OUT" | wc -l) files to ${PLUGIN_OUT#"$ROOT"/}"
echo "generate-protos: wrote $(ls "$OUT" | wc -l) files to ${OUT#"$ROOT"/}"

# The Python example's messages (Debian's python3-protobuf matches this protoc).
PY_OUT="$ROOT/Examples/PythonEcho/generated"
mkdir -p "$PY_OUT"
protoc -I . -I /usr/include --python_out="$PY_OUT" plugin_comm.proto
echo "generate-protos: wrote ${PY_OUT#"$ROOT"/}/plugin_comm_pb2.py"

# The tests' OTLP receiver reads trace exports with a subset of OTLP of its
# own (Tests/Fixtures/otlp/otlp_traces.proto).
OTLP_FIXTURE="$ROOT/Tests/Fixtures/otlp"
(cd "$OTLP_FIXTURE" && protoc -I . --python_out=. otlp_traces.proto)
echo "generate-protos: wrote ${OTLP_FIXTURE#"$ROOT"/}/otlp_traces_pb2.py"
