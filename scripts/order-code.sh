#!/usr/bin/env bash
# Writes Linker/plugin.order and Linker/deckhand.order: the functions that a
# plugin and the agent run while starting, serving calls and idling, as
# callgrind saw them, in the order first run: one `.text.NAME` section a line
# for gold (plugins), one symbol name a line for lld (deckhand). The linker
# places them together (Package.swift's pluginCodeOrdering and
# deckhandLinkerSettings), so that the few pages a process touches hold the
# code it runs.
#
# Needs valgrind and builds made by scripts/build-release.sh (which this runs).
# Rerun it when startup or the call path changes much; a stale file costs
# memory, never correctness (a name it lists that no longer exists is skipped).
#
#   scripts/order-code.sh
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
command -v valgrind >/dev/null || { echo "order-code: valgrind is needed (apt-get install valgrind)" >&2; exit 1; }
mapfile -t built < <(scripts/build-release.sh deckhand-example-echo deckhand)
echo_bin="${built[0]}"
deckhand_bin="${built[1]}"
work="$(mktemp -d /tmp/dhorder.XXXX)"
trap 'pkill -f "$work" 2>/dev/null || true; rm -rf "$work"' EXIT
# Valgrind cannot read the DWARF of these binaries; the symbol table is enough.
objcopy --strip-debug "$echo_bin" "$work/echo"
objcopy --strip-debug "$deckhand_bin" "$work/deckhand"
callgrind=(valgrind --tool=callgrind --demangle=no --compress-strings=no)

# The plugin: launched, health-checked, called sequentially, by 16 callers,
# with 64 KiB Apply payloads, stopped (the bench's own phases).
cat > "$work/echo.sh" <<SH
#!/bin/sh
exec ${callgrind[*]} --callgrind-out-file=$work/plugin.%p.out $work/echo "\$@"
SH
chmod +x "$work/echo.sh"
cat > "$work/echo.json" <<JSON
{ "name": "echo-order", "version": "1.0.0", "entrypoint": "$work/echo.sh", "timeouts": {"start_s": 120, "call_s": 60} }
JSON
"$deckhand_bin" plugin bench "$work/echo.json" --launches 1 --calls 300 --duration 2 --apply-calls 30 \
  --warmup 20 --state-dir "$work/bench-state" --runtime-dir "$work/bench-run" >/dev/null

# The agent: starting, answering the command socket, and idling through its
# periodic work (usage sampling, sweeps) with no plugins.
mkdir -p "$work/agent-state" "$work/agent-run"
"${callgrind[@]}" --callgrind-out-file="$work/agent.%p.out" "$work/deckhand" agent \
  --state-dir "$work/agent-state" --runtime-dir "$work/agent-run" --socket "$work/agent-run/c.sock" \
  2>"$work/agent.log" &
agent=$!
for _ in $(seq 120); do [ -S "$work/agent-run/c.sock" ] && break; sleep 0.5; done
for request in agent.status plugins.list; do
  "$deckhand_bin" cmd --socket "$work/agent-run/c.sock" "{\"Command\":\"$request\"}" >/dev/null || true
done
sleep 20
kill -TERM "$agent"
wait "$agent" || true

# Names in the order first seen: callgrind writes a function when it first
# runs or is first called. Unresolved addresses (0x...) are left out.
order() {
  grep -h '^c\?fn=' "$@" | sed 's/^c\?fn=//' | grep -v '^0x' | awk '!seen[$0]++'
}
mkdir -p Linker
# Between the two markers (CDeckhandExecutorHook/deckhand_hot_text.c), which
# the processes map in one call at start.
{
  echo deckhand_hot_text_begin
  order "$work"/plugin.*.out
  echo deckhand_hot_text_end
} | sed 's/^/.text./' > Linker/plugin.order
{
  echo deckhand_hot_text_begin
  order "$work"/agent.*.out
  echo deckhand_hot_text_end
} > Linker/deckhand.order
wc -l Linker/plugin.order Linker/deckhand.order >&2
