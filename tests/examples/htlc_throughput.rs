//! Throughput of the sans-IO channel state machine: HTLC add→fulfill round trips per second
//! between two in-memory channels on the shared harness (`fulmen_tests::pair`: messages
//! through the wire codec, records "persisted" into memory, invariant checks off), with 1
//! and with 100 HTLCs in flight per commitment round.
//!
//! Run: `cargo run --release -p fulmen-tests --example htlc_throughput [rounds] [amount_msat]`
//! (amount 10,000 msat by default: a dust HTLC; 2,000,000 for real HTLC outputs).
//! Must never: do I/O beyond printing the result (the wall clock is read only to time the
//! measurement, never to drive the channels).

use std::collections::HashMap;
use std::time::Instant;

use fulmen_channel::machine::Event;
use fulmen_htlc::PaymentPreimage;
use fulmen_tests::pair::{onion, Checks, OpenParams, Pair};

fn open() -> Pair {
    Pair::open(OpenParams {
        funding_sat: 16_000_000,
        push_msat: 0,
        feerate: 253,
        height: 1,
        checks: Checks::Off,
        ..OpenParams::new(42)
    })
    .expect("open")
}

/// `rounds` cycles of: add `in_flight` HTLCs, commit, fulfill them all, commit.
fn measure(in_flight: u64, rounds: u64, amount_msat: u64) -> f64 {
    let mut p = open();
    let start = Instant::now();
    let mut n = 0u64;
    let mut fulfilled = 0u64;
    for _ in 0..rounds {
        let mut pres = HashMap::new();
        for _ in 0..in_flight {
            n += 1;
            let mut pre = PaymentPreimage([0u8; 32]);
            pre.0[..8].copy_from_slice(&n.to_be_bytes());
            let h = pre.payment_hash();
            pres.insert(h, pre);
            p.a.ch.add_htlc(amount_msat, h, 100, onion()).expect("add");
        }
        p.run();
        for e in std::mem::take(&mut p.b.events) {
            if let Event::HtlcReceived { id, htlc, .. } = e {
                let pre = pres[&htlc.payment_hash];
                p.b.ch.fulfill_htlc(id, pre).expect("fulfill");
            }
        }
        p.run();
        fulfilled +=
            p.a.events
                .drain(..)
                .filter(|e| matches!(e, Event::HtlcFulfilled { .. }))
                .count() as u64;
    }
    let secs = start.elapsed().as_secs_f64();
    assert_eq!(fulfilled, in_flight * rounds, "every HTLC fulfilled");
    (in_flight * rounds) as f64 / secs
}

fn main() {
    let rounds: u64 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(200);
    let amount_msat: u64 = std::env::args()
        .nth(2)
        .and_then(|s| s.parse().ok())
        .unwrap_or(10_000);
    println!("amount {amount_msat} msat");
    let one = measure(1, rounds * 10, amount_msat);
    println!(
        "1 HTLC in flight:    {one:>10.0} add->fulfill round trips/s ({} HTLCs)",
        rounds * 10
    );
    let hundred = measure(100, rounds / 10 + 1, amount_msat);
    println!(
        "100 HTLCs in flight: {hundred:>10.0} add->fulfill round trips/s ({} HTLCs)",
        100 * (rounds / 10 + 1)
    );
}
