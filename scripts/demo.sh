#!/usr/bin/env bash
# The Fulmen demo (the README's main job): builds the `fulmen` binary, then runs
# `fulmen net demo` — a chain daemon and three node daemons (alice–bob–carol in a line) in a
# temporary directory, 100 micropayments of 1,000 msat alice→bob and carol→bob, cooperative
# closes confirmed on chain, a summary (payments/s, final on-chain balances, fees per node),
# and a teardown that stops every daemon and deletes the directory.
# Extra arguments go to `fulmen net demo` (e.g. `--payments 1000`, `--json`, `--dir DIR`).
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --quiet -p fulmen-node --bin fulmen
bin="${CARGO_TARGET_DIR:-$PWD/target}/debug/fulmen"
exec "$bin" net demo "$@"
