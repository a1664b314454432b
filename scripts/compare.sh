#!/usr/bin/env bash
# Deckhand's lean path (the echo example built as plugins ship:
# --static-swift-stdlib, linked as in Package.swift) against HashiCorp
# go-plugin, alternating ROUNDS times on this machine so that both see the
# same noise. Prints every round's figures, then per figure the median of
# each side and their ratio (Deckhand / go-plugin) as `name value unit`.
#
#   scripts/compare.sh [ROUNDS]      (default 3; release builds only)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
rounds="${1:-3}"
swift build -c release --product deckhand >&2
dir="$(mktemp -d /tmp/dhcompare.XXXX)"
trap 'rm -rf "$dir"' EXIT
scripts/static-echo.sh "$dir/static.json"
for round in $(seq "$rounds"); do
  .build/release/deckhand plugin bench "$dir/static.json" --prefix deckhand. \
    --state-dir "$dir/state" --runtime-dir "$dir/run" | grep -v '^#' | tee -a "$dir/all.txt"
  bash ../shared/peers/goplugin/run.sh 2>/dev/null | grep '^goplugin\.' | tee -a "$dir/all.txt"
done
echo "# medians over $rounds rounds, and ratio deckhand/goplugin"
for figure in getstatus_seq_p50 getstatus_c16_rate apply_64k_throughput launch_median plugin_rss_idle; do
  for side in deckhand goplugin; do
    grep "^$side\.$figure " "$dir/all.txt" | awk '{print $2, $3}' | sort -n |
      awk -v name="median.$side.$figure" '{v[NR]=$1; u=$2} END {print name, v[int((NR+1)/2)], u}'
  done
done | tee "$dir/medians.txt"
awk '{split($1, p, "."); value[p[2] "." p[3]] = $2} END {
  n = split("getstatus_seq_p50 getstatus_c16_rate apply_64k_throughput launch_median plugin_rss_idle", f, " ")
  for (i = 1; i <= n; i++) printf "ratio.%s %.2f x\n", f[i], value["deckhand." f[i]] / value["goplugin." f[i]]
}' "$dir/medians.txt"
