#!/usr/bin/env bash
# Formats the package's own Swift files (not the generated code) with the
# toolchain's swift-format and .swift-format. `--check` only reports.
set -euo pipefail
cd "$(dirname "$0")/.."
mode=(format --in-place)
[ "${1:-}" = "--check" ] && mode=(format lint --strict)
git ls-files '*.swift' | grep -v '/Generated/' | xargs swift "${mode[@]}" --configuration .swift-format
