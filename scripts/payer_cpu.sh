#!/usr/bin/env bash
# One `bench pay` of 1,000 payments, 100 in flight, on a fresh network of HOPS+1 nodes in
# /tmp/payer_cpu (BENCHMARKS.md, "Issue 17 — an eighth round"): its throughput line, then the
# CPU per payment of the payer's node task (its main thread), of the payer's process and of
# the next node's process, read from /proc (10 ms ticks: about ±10 us per payment).
# Run two builds alternately: this host's speed drifts within minutes.
# Usage: scripts/payer_cpu.sh FULMEN [HOPS]   (needs python3)
set -euo pipefail
F=${1:?usage: payer_cpu.sh FULMEN [HOPS]}
H=${2:-1}
D=/tmp/payer_cpu
N=1000
"$F" net down --dir $D >/dev/null 2>&1 || true
rm -rf $D
"$F" net up --dir $D --nodes $((H + 1)) --channel-sats 5000000 >/dev/null
trap '"$F" net down --dir $D >/dev/null 2>&1 || true' EXIT
pid() { python3 -c "import json;print(json.load(open('$D/network.json'))['nodes'][$1]['pid'])"; }
A=$(pid 0)
B=$(pid 1)
thread() { awk '{print $14+$15}' "/proc/$1/task/$1/stat"; }
process() { awk '{print $14+$15}' "/proc/$1/stat"; }
a0=$(thread "$A"); ap0=$(process "$A"); bp0=$(process "$B")
line=$("$F" bench pay --dir $D --hops "$H" --serial-payments 0 --payments $N --concurrency 100 \
  --amount-msat 2000000 --channel-sats 5000000 2>&1 | grep -E "^concurrent" | head -1)
a1=$(thread "$A"); ap1=$(process "$A"); bp1=$(process "$B")
echo "$line | payer node task $(((a1 - a0) * 10000 / N)) us/payment, payer process" \
  "$(((ap1 - ap0) * 10000 / N)) us, next node's process $(((bp1 - bp0) * 10000 / N)) us"
