#!/usr/bin/env bash
# Deckhand's lean path (the echo example and the host built as they ship,
# by scripts/build-release.sh) against HashiCorp go-plugin, alternating
# ROUNDS times on this machine so that both see the same noise. Prints every
# round's figures, then per figure the median of each side and their ratio
# (Deckhand / go-plugin) as `name value unit`; and the resident memory of an
# idle `deckhand agent` with no plugins, each round.
#
#   scripts/compare.sh [ROUNDS]      (default 3; release builds only)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
rounds="${1:-3}"
deckhand="$(scripts/build-release.sh deckhand)"
dir="$(mktemp -d /tmp/dhcompare.XXXX)"
trap 'pkill -f "$dir" 2>/dev/null || true; rm -rf "$dir"' EXIT
scripts/static-echo.sh "$dir/static.json"

# An agent with no plugins, 5 s after its command socket answers.
agent_rss() {
  rm -rf "$dir/agent"
  mkdir -p "$dir/agent/state" "$dir/agent/run"
  "$deckhand" agent --state-dir "$dir/agent/state" --runtime-dir "$dir/agent/run" \
    --socket "$dir/agent/run/c.sock" 2>"$dir/agent/log" &
  local pid=$!
  for _ in $(seq 100); do [ -S "$dir/agent/run/c.sock" ] && break; sleep 0.1; done
  "$deckhand" cmd --socket "$dir/agent/run/c.sock" '{"Command":"agent.status"}' >/dev/null
  sleep 5
  awk '/^VmRSS/ { printf "deckhand.agent_rss_idle %.3f MiB\n", $2 / 1024 }' "/proc/$pid/status"
  kill -TERM "$pid"
  wait "$pid" || true
}

for round in $(seq "$rounds"); do
  agent_rss | tee -a "$dir/all.txt"
  "$deckhand" plugin bench "$dir/static.json" --prefix deckhand. \
    --state-dir "$dir/state" --runtime-dir "$dir/run" | grep -v '^#' | tee -a "$dir/all.txt"
  bash ../shared/peers/goplugin/run.sh 2>/dev/null | grep '^goplugin\.' | tee -a "$dir/all.txt"
done
echo "# medians over $rounds rounds, and ratio deckhand/goplugin"
grep "^deckhand\.agent_rss_idle " "$dir/all.txt" | awk '{print $2}' | sort -n |
  awk '{v[NR]=$1} END {printf "median.deckhand.agent_rss_idle %s MiB\n", v[int((NR+1)/2)]}'
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
