#!/usr/bin/env bash
# Serial payments, two builds alternated (BENCHMARKS.md, "Issue 17 — a fourth round"): one
# standing test network per build, then `bench pay` on each in turn ROUNDS times, and the
# median of the p50s. On a host whose speed drifts within minutes, this compares the two
# builds under the same conditions.
# Usage: scripts/serial_ab.sh FULMEN_A FULMEN_B [HOPS] [PAYMENTS] [ROUNDS]   (needs python3)
set -euo pipefail
A=${1:?usage: serial_ab.sh FULMEN_A FULMEN_B [HOPS] [PAYMENTS] [ROUNDS]}
B=${2:?usage: serial_ab.sh FULMEN_A FULMEN_B [HOPS] [PAYMENTS] [ROUNDS]}
HOPS=${3:-3}
N=${4:-150}
ROUNDS=${5:-8}
WORK=$(mktemp -d)
bin() { if [ "$1" = a ]; then echo "$A"; else echo "$B"; fi; }
cleanup() {
  for x in a b; do "$(bin $x)" net down --dir "$WORK/$x" >/dev/null 2>&1 || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT
for x in a b; do
  "$(bin $x)" net up --dir "$WORK/$x" --nodes $((HOPS + 1)) --channel-sats 16000000 >/dev/null
done
for _ in $(seq "$ROUNDS"); do
  for x in a b; do
    "$(bin $x)" bench pay --dir "$WORK/$x" --hops "$HOPS" --serial-payments "$N" --payments 1 \
      --amount-msat 2000000 2>&1 | grep "serial  " | awk -v x=$x '{print x, $(NF-8), $(NF-5)}'
  done
done | tee "$WORK/runs"
python3 - "$WORK/runs" "$A" "$B" <<'PY'
import statistics, sys
runs = {'a': [], 'b': []}
for line in open(sys.argv[1]):
    x, rate, p50 = line.split()
    runs[x].append((float(rate), float(p50)))
for x, name in (('a', sys.argv[2]), ('b', sys.argv[3])):
    r = runs[x]
    print(f"{name}: median {statistics.median(a for a, _ in r):.1f} payments/s, "
          f"median p50 {statistics.median(p for _, p in r):.2f} ms "
          f"(p50s {' '.join(str(p) for _, p in r)})")
PY
