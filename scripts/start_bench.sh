#!/usr/bin/env bash
# Node start benchmark (BENCHMARKS.md, "Node start with 1,000 channels and 1,000,000 settled
# payments"): starts the first node of the network in NETDIR (stopped beforehand) with its
# arguments from network.json, and prints
#   - ready:  spawn → the daemon's "start-up" log line (state loaded, chain caught up, RPC up),
#   - answer: spawn → the first `fulmen info` answered (polled every 10 ms),
#   - the start-up phases the daemon logged, RSS at the answer and 3 s later, and the CPU time
#     the daemon used until then (user + system: the reconnection storm after the start);
# then stops the node again and lets the network settle (PAUSE seconds, default 20).
# Usage: [FULMEN=path/to/fulmen] [PAUSE=s] scripts/start_bench.sh NETDIR [RUNS]   (needs jq)
set -euo pipefail
NET=${1:?usage: start_bench.sh NETDIR [RUNS]}
RUNS=${2:-5}
BIN=${FULMEN:-fulmen}
NAME=$(jq -r '.nodes[0].name' "$NET/network.json")
LOG=$(jq -r '.nodes[0].log' "$NET/network.json")
mapfile -t ARGS < <(jq -r '.nodes[0].args[]' "$NET/network.json")
for _ in $(seq "$RUNS"); do
  t0=$(date +%s%N)
  "$BIN" "${ARGS[@]}" >>"$LOG" 2>&1 &
  pid=$!
  until "$BIN" --net "$NET" --node "$NAME" info >/dev/null 2>&1; do sleep 0.01; done
  t1=$(date +%s%N)
  rss1=$(awk '/VmRSS/ {print $2}' "/proc/$pid/status")
  sleep 3
  rss2=$(awk '/VmRSS/ {print $2}' "/proc/$pid/status")
  cpu=$(awk -v hz="$(getconf CLK_TCK)" '{print int(($14 + $15) * 1000 / hz)}' "/proc/$pid/stat")
  line=$(grep -a "start-up" "$LOG" | tail -1 | sed 's/\x1b\[[0-9;]*m//g')
  tr=$(date -d "$(echo "$line" | cut -c1-27)" +%s%N)
  echo "ready $(( (tr - t0) / 1000000 )) ms, answer $(( (t1 - t0) / 1000000 )) ms," \
    "cpu ${cpu} ms, RSS $(( rss1 / 1024 )) → $(( rss2 / 1024 )) MB; ${line##*start-up }"
  "$BIN" --net "$NET" --node "$NAME" stop >/dev/null 2>&1
  wait "$pid" || true
  sleep "${PAUSE:-20}"
done
