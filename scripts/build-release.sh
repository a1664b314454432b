#!/usr/bin/env bash
# Builds Deckhand's products the way they ship: the Swift runtime and
# Foundation linked in (--static-swift-stdlib), every function in a section of
# its own (-function-sections) so that the linker can place the code that
# starting and serving run together, in the order of Linker/*.order (see
# Package.swift's pluginCodeOrdering and deckhandLinkerSettings, and
# scripts/order-code.sh), libstdc++ linked in too (the Swift runtime uses a
# little of it; loaded as a shared library it was 1 MiB of each process's
# memory and work for the loader at every start), and no $ORIGIN run path
# (the loader looked for libc, libm and libstdc++ in 13 folders beside the
# binary first). Generic types' metadata is reached through accessor calls
# instead of by mangled name (-disable-concrete-type-metadata-mangled-name-
# accessors): a mangled name is demangled at its first use, and each generic
# requirement in it is a protocol conformance looked up by scanning all of
# the binary's 6,000 conformance records; at a plugin's start that was about
# a third of its CPU (the echo example run by hand: 2.4–2.9 ms of CPU before,
# 1.3–1.8 ms after, `perf stat -r 80`). Its own scratch folder, as these
# flags rebuild everything.
#
#   scripts/build-release.sh [PRODUCT...]     (default: deckhand)
#
# Prints the path of each binary built.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
# The linker takes the first libstdc++ it finds along its search path: a
# folder holding only the archive, searched first, makes it the archive.
cxx="$ROOT/.build-static/static-cxx"
archive="$(clang -print-file-name=libstdc++.a)"
[ -f "$archive" ] || { echo "build-release: libstdc++.a not found (apt-get install libstdc++-12-dev)" >&2; exit 1; }
mkdir -p "$cxx"
ln -sfn "$archive" "$cxx/libstdc++.a"
products=("$@")
[ ${#products[@]} -gt 0 ] || products=(deckhand)
for product in "${products[@]}"; do
  # Relinked every time: SwiftPM does not see a change to Linker/*.order.
  rm -f ".build-static/release/$product"
  swift build -c release --static-swift-stdlib --disable-local-rpath --scratch-path .build-static \
    -Xswiftc -Xfrontend -Xswiftc -function-sections \
    -Xswiftc -Xfrontend -Xswiftc -disable-concrete-type-metadata-mangled-name-accessors \
    -Xlinker -L"$cxx" --product "$product" >&2
  echo "$ROOT/.build-static/release/$product"
done
