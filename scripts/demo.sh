#!/usr/bin/env bash
# The Fulmen demo (the README's main job). Until the node daemon lands, it shows the
# simulated chain — start a chain daemon, mine, fund an address from the faucet, confirm it,
# refuse garbage and a re-sent transaction, restart the daemon and show the chain survived —
# and then a channel between two in-memory parties that opens, pays both ways and closes.
# Cleans up after itself.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --quiet -p fulmen-node --bin fulmen
bin="$PWD/target/debug/fulmen"
dir=$(mktemp -d "${TMPDIR:-/tmp}/fulmen-demo.XXXXXX")
pid=""
cleanup() {
  [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true
  rm -rf "$dir"
}
trap cleanup EXIT

start_chain() {
  "$bin" chain run --datadir "$dir/chain" --rpc-listen 127.0.0.1:0 >"$dir/chain.log" 2>&1 &
  pid=$!
  for _ in $(seq 1 100); do
    [ -f "$dir/chain/chain.json" ] && [ -f "$dir/chain/.cookie" ] && "$bin" chain --datadir "$dir/chain" info >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "chain daemon did not start; log:" >&2; cat "$dir/chain.log" >&2; exit 1
}
stop_chain() { "$bin" chain --datadir "$dir/chain" stop >/dev/null; wait "$pid" 2>/dev/null || true; pid=""; }
chain() { "$bin" chain --datadir "$dir/chain" "$@"; }
step() { printf '\n== %s\n' "$*"; }

# A P2WSH(OP_TRUE) address: anyone can spend it, which keeps the demo keyless.
addr=bcrt1qft5p2uhsdcdc3l2ua4ap5qqfg4pjaqlp250x7us7a8qqhrxrxfsqseac85

step "start a chain daemon in $dir/chain"; start_chain; chain info
step "mine 101 blocks so the faucet's first coinbase matures"; chain mine 101 >/dev/null; chain info
step "fund $addr with 100000 sat from the faucet"; fund=$(chain fund "$addr" 100000); echo "$fund"
txid=$(printf '%s' "$fund" | sed -n 's/.*"txid" *: *"\([0-9a-f]\{64\}\)".*/\1/p')
step "mempool"; chain mempool
step "mine 1 block"; chain mine 1 >/dev/null
step "the funded output is confirmed once"; chain utxo "$txid:0"
raw=$(chain tx "$txid" | sed -n 's/.*"hex" *: *"\([0-9a-f]*\)".*/\1/p')
step "garbage hex is refused with a reason"; chain send 00deadbeef || true
step "re-send the confirmed faucet transaction: the chain refuses it, naming the input and rule"
chain send "$raw" || true
step "restart the daemon: height and UTXO set survive"; stop_chain; start_chain; chain info
stop_chain

step "a payment channel between two in-memory parties (the embeddable fulmen-channel crate):"
step "open, pay both ways, rebuild from persisted records, close cooperatively"
cargo run --quiet -p fulmen-channel --example two_party
echo; echo "demo finished"
